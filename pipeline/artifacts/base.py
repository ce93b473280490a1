"""What a stage declares it reads and writes, and the JSON helpers every artifact writer uses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
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


def dump_json(path: Path, doc: Any) -> None:
    """Write ``doc`` as stable, readable JSON (UTF-8 text kept as such; dict keys sorted,
    dataclasses written as they stand, their fields in their order; NaN as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # orjson: a city's records went through json.dumps at 0.5 ms per building
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
                                  | orjson.OPT_SERIALIZE_NUMPY))


def load_json(path: Path) -> Any:
    """The JSON document in ``path`` (UTF-8)."""
    data = path.read_bytes()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # NaN and Infinity, which json.dumps wrote before the artifacts moved to orjson: a
        # workdir of an earlier version still resumes
        return json.loads(data)
