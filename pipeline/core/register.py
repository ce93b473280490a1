"""The building register (건축물대장): rows of a CSV or JSON export, keyed for joining to footprints.

Exports come from the register's open API (건축HUB / 공공데이터포털 "표제부": ``mgmBldrgstPk``,
``bldNm``, ``heit``, ``grndFlrCnt``, ``ugrndFlrCnt``, ``mainPurpsCd``, ``useAprDay``) as JSON, or
as CSV in UTF-8 or CP949. The register's height is often 0 or empty; such values are read as
"not known", never as a building of height 0.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.building_use import use_category
from pipeline.core.footprints import MAX_FLOORS, MAX_HEIGHT_M, attribute_number
from pipeline.core.text import NotText, decode_text, ymd_date
from pipeline.errors import InputError

@dataclass(frozen=True)
class RegisterRow:
    """One register entry: its key and what it says (None where it says nothing usable);
    heights in metres, the approval date as YYYY-MM-DD; ``line`` its row (CSV line or JSON index)."""

    key: str
    line: int
    name: str | None = None
    height: float | None = None
    floors: int | None = None
    floors_below: int | None = None
    use: str | None = None
    approval_date: str | None = None


@dataclass
class Register:
    """Rows by key (the first of rows sharing a key), the keys given on more than one row, and
    notes on values that could not be used (``line: what``)."""

    source: str
    rows: dict[str, RegisterRow]
    duplicate_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _records(path: Path) -> list[tuple[int, Mapping[str, Any]]]:
    try:
        text = decode_text(path.read_bytes())
    except NotText as exc:
        raise InputError(f"building register: {exc}", path=path) from None
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"building register: not JSON ({exc.msg} at line {exc.lineno})", path=path) from None
        # the open API wraps its list: response.body.items.item
        for key in ("response", "body", "items", "item"):
            if isinstance(doc, dict) and key in doc:
                doc = doc[key]
        if isinstance(doc, dict):
            doc = [doc]
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise InputError("building register: JSON must hold a list of records", path=path)
        return list(enumerate(doc))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return [(line, {(k or "").strip(): (v or "").strip() for k, v in row.items()})
            for line, row in enumerate(reader, start=2)]


def read_register(path: Path, *, key: str, fields: Mapping[str, str | None]) -> Register:
    """The register at ``path`` (CSV or JSON), keyed by its column ``key``; ``fields`` maps
    name, height, floors, floors_below, use and approval_date to its columns. InputError for a
    file that cannot be read or lacks the key column."""
    if not path.is_file():
        raise InputError("building register not found", path=path)
    records = _records(path)
    if not records:
        raise InputError("building register: no rows", path=path)
    columns = set().union(*(r.keys() for _, r in records))
    if key not in columns:
        raise InputError(f"building register: no key column {key!r} (it has {', '.join(sorted(columns))})",
                         path=path)
    out = Register(str(path), {})
    for line, rec in records:
        ident = str(rec.get(key) or "").strip()
        if not ident:
            out.notes.append(f"row {line}: no {key}; left out")
            continue
        if ident in out.rows:
            out.duplicate_keys.append(ident)
            continue
        numbers: dict[str, float | None] = {}
        for name, integer, upper, zero in (("height", False, MAX_HEIGHT_M, False), ("floors", True, MAX_FLOORS, False),
                                           ("floors_below", True, MAX_FLOORS, True)):
            column = fields.get(name)
            value, problem = attribute_number(rec.get(column) if column else None, integer=integer, upper=upper,
                                              zero_known=zero)
            numbers[name] = value
            if problem:
                out.notes.append(f"row {line} ({ident}): {name} {problem}; ignored")
        get = {name: rec.get(column) if (column := fields.get(name)) else None for name in ("name", "use",
                                                                                          "approval_date")}
        floors, below = numbers["floors"], numbers["floors_below"]
        out.rows[ident] = RegisterRow(ident, line, str(get["name"]).strip() or None if get["name"] else None,
                                      numbers["height"], None if floors is None else int(floors),
                                      None if below is None else int(below), use_category(get["use"]),
                                      ymd_date(get["approval_date"]))
    return out
