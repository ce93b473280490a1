"""Korean building-use codes to the twin's categories."""

from __future__ import annotations

from pipeline.core.building_use import USE_CLASSES, use_of_code


def test_codes_map_by_their_class():
    assert use_of_code("14000") == ("office", "업무시설")
    assert use_of_code("24001") == ("broadcast", "방송통신시설")
    assert use_of_code("2001") == ("residential", "공동주택")  # 02001 read as a number
    assert use_of_code(" 01000 ") == ("residential", "단독주택")
    assert use_of_code("99000") == ("other", None) and use_of_code("office") == ("other", None)
    assert use_of_code(None) == (None, None) and use_of_code("") == (None, None)


def test_the_table_covers_the_building_act_classes_01_to_29():
    assert sorted(USE_CLASSES) == [f"{k:02d}" for k in range(1, 30)]
