"""What a stage declares it reads and writes, and the JSON helpers every artifact writer uses."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

import orjson


@dataclass(frozen=True)
class Artifact:
    """One artifact: the stage that writes it, its path inside that stage's output folder (a file
    or a folder) and the other files or folders that belong to it (``also``: a raster beside its
    record, a record's mesh pieces). A stage that reads it reruns exactly when one of these changes."""

    stage: str
    path: str
    description: str
    also: tuple[str, ...] = ()

    def locate(self, folder: Path) -> Path:
        """Its path inside ``folder``, the producing stage's output folder."""
        return folder / self.path

    def covers(self, relative: str) -> bool:
        """Whether a file of the stage's output (POSIX path relative to it) belongs to this artifact."""
        return any(relative == p or relative.startswith(p + "/") for p in (self.path, *self.also))


#: how every artifact's JSON is written (dict keys sorted, numpy values as numbers), indented or
#: one record to a line
_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dump_json(path: Path, doc: Any) -> None:
    """Write ``doc`` as stable, readable JSON (UTF-8 text kept as such; dict keys sorted,
    dataclasses written as they stand, their fields in their order; NaN as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # orjson: a city's records went through json.dumps at 0.5 ms per building
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | _JSON_OPTIONS))


def load_json(path: Path) -> Any:
    """The JSON document in ``path`` (UTF-8)."""
    data = path.read_bytes()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # NaN and Infinity, which json.dumps wrote before the artifacts moved to orjson: a
        # workdir of an earlier version still resumes
        return json.loads(data)


def dump_records(path: Path, header: dict[str, Any], records: Iterable[Any]) -> int:
    """Write a layer as JSON Lines: ``header`` (the layer's own fields) on the first line, then
    one record per line; returns the number of records. A reader then holds one record's text
    at a time, not the layer's: a city's 600,000 footprints were 1.3 GB of JSON, and parsing them
    as one document held 3 to 4 times that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("wb") as f:
        f.write(orjson.dumps(header, option=_JSON_OPTIONS) + b"\n")
        for record in records:
            f.write(orjson.dumps(record, option=_JSON_OPTIONS) + b"\n")
            n += 1
    return n


def intern_values(doc: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A copy of ``doc`` whose text values under ``names`` are interned: a city's records share
    a handful of such values (a use, a source), which a parser makes one string per record."""
    doc = dict(doc)
    for name in names:
        if isinstance(doc.get(name), str):
            doc[name] = sys.intern(doc[name])
    return doc


def load_header(path: Path) -> dict[str, Any]:
    """The first line of a layer written by :func:`dump_records`."""
    with path.open("rb") as f:
        return orjson.loads(f.readline())


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a layer written by :func:`dump_records`, one at a time, in file order."""
    with path.open("rb") as f:
        f.readline()
        for line in f:
            yield orjson.loads(line)


def iter_record_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The records' lines of a layer written by :func:`dump_records`, unparsed, each with its
    byte offset in the file."""
    with path.open("rb") as f:
        at = len(f.readline())
        for line in f:
            yield at, line
            at += len(line)


def iter_record_spans(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """As :func:`iter_records`, each record with where its line is in the file (byte offset and
    length, for :func:`read_records_at`)."""
    for at, line in iter_record_lines(path):
        yield at, len(line), orjson.loads(line)


def read_records_at(path: Path, spans: Iterable[tuple[int, int]]) -> list[dict[str, Any]]:
    """The records whose lines are at ``spans`` ((byte offset, length) pairs), in that order."""
    with path.open("rb") as f:
        fd = f.fileno()
        return [orjson.loads(os.pread(fd, int(size), int(at))) for at, size in spans]
