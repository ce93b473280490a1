"""Building register exports: CSV (UTF-8 or CP949) and the open API's JSON, read by key."""

from __future__ import annotations

import json

import pytest

from pipeline.config import RegisterFields
from pipeline.core.register import read_register
from pipeline.errors import InputError

FIELDS = RegisterFields().model_dump()
HEADER = "mgmBldrgstPk,bldNm,heit,grndFlrCnt,ugrndFlrCnt,mainPurpsCd,useAprDay\n"


def test_a_cp949_csv_is_read_with_unknown_heights_as_unknown(tmp_path):
    path = tmp_path / "register.csv"
    path.write_bytes((HEADER + "1,누리꿈스퀘어,80.2,21,3,14000,20080515\n"
                      "2,상암 아파트,0,15,0,02001,\n"
                      "3,,,,,,19991301\n"
                      "2,중복,10,1,0,01000,20000101\n"
                      ",빈 키,1,1,1,01000,\n").encode("cp949"))
    reg = read_register(path, key="mgmBldrgstPk", fields=FIELDS)
    a, b, c = reg.rows["1"], reg.rows["2"], reg.rows["3"]
    assert (a.name, a.height, a.floors, a.floors_below, a.use, a.approval_date) == (
        "누리꿈스퀘어", 80.2, 21, 3, "office", "2008-05-15")
    assert (b.name, b.height, b.floors, b.floors_below, b.use, b.approval_date) == (
        "상암 아파트", None, 15, 0, "residential", None)
    assert (c.name, c.height, c.floors, c.approval_date) == (None, None, None, None)  # month 13: no date
    assert reg.duplicate_keys == ["2"] and b.line == 3
    assert reg.notes == ["row 6: no mgmBldrgstPk; left out"]


def test_the_open_api_json_and_use_names(tmp_path):
    path = tmp_path / "register.json"
    items = [{"mgmBldrgstPk": "11440-100", "bldNm": "MBC", "heit": "104.0", "grndFlrCnt": "23",
              "ugrndFlrCnt": "4", "mainPurpsCd": "방송통신시설", "useAprDay": "2014-06-30"}]
    path.write_text(json.dumps({"response": {"body": {"items": {"item": items}}}}, ensure_ascii=False))
    row = read_register(path, key="mgmBldrgstPk", fields=FIELDS).rows["11440-100"]
    assert (row.height, row.floors, row.floors_below, row.use, row.approval_date) == (
        104.0, 23, 4, "broadcast", "2014-06-30")


def test_broken_registers_are_named(tmp_path):
    missing = tmp_path / "none.csv"
    with pytest.raises(InputError, match="building register not found"):
        read_register(missing, key="mgmBldrgstPk", fields=FIELDS)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("pnu,heit\n1,2\n")
    with pytest.raises(InputError, match=r"no key column 'mgmBldrgstPk' \(it has heit, pnu\)"):
        read_register(wrong, key="mgmBldrgstPk", fields=FIELDS)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"a,b\n\xff\xfe\x00\x01")
    with pytest.raises(InputError, match="building register: it is not a text file"):
        read_register(binary, key="a", fields=FIELDS)
