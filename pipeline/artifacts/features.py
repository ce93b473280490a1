"""tile's ``buildings/features.json``: where each building's full detail lives in the tiles,
and what it is: a digest of its finest geometry and its feature properties.

Written on every run (an empty index when there are no buildings); anchors and the hub look a
building id up here to reach its feature in EXT_mesh_features, and ``dmctwin diff`` compares two
bundles' indexes to tell which buildings changed without decoding a tile.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipeline.artifacts import FEATURE_INDEX
from pipeline.artifacts.base import load_json

FILE = FEATURE_INDEX.path
#: bytes of the index read and parsed at a time
CHUNK = 1 << 22


@dataclass(frozen=True, slots=True)
class FeatureRef:
    """A building's leaf tile (URI relative to ``buildings/``), its feature ID there, the sha256
    (16 hex digits) of its finest mesh (ENU vertices to the millimetre, and faces) and its
    feature properties as the tiles' property table holds them."""

    tile: str
    feature_id: int
    geometry: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


def write_feature_index(folder: Path, index: Mapping[str, FeatureRef] | Iterable[tuple[str, FeatureRef]]) -> None:
    """Write the index: a mapping, or (id, entry) pairs in id order, which are written as they
    come, so a city's entries (their properties made on the way) are never all in memory. The
    bytes are those :func:`~pipeline.artifacts.base.dump_json` writes for ``{"buildings": index}``."""
    items = sorted(index.items()) if isinstance(index, Mapping) else index
    path = folder / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(b'{\n  "buildings": {')
        last = None
        for key, ref in items:
            if last is not None and key <= last:
                raise ValueError(f"feature index entries out of id order: {key!r} after {last!r}")
            # an entry as dump_json indents it two levels down (JSON text holds no raw newline)
            f.write(b"," if last is not None else b"")
            f.write(b"\n    " + orjson.dumps(key) + b": "
                    + orjson.dumps(ref, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).replace(b"\n", b"\n    "))
            last = key
        f.write(b"\n  }\n}" if last is not None else b"}\n}")


def iter_feature_index(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The index's entries one at a time, in id order, without its whole document in memory (a
    city's was 2 GB parsed): read ``CHUNK`` bytes at a time and cut between two entries as
    :func:`write_feature_index` lays them out (``,`` then a line indented four spaces that opens
    the next one; JSON text holds no raw newline). An index laid out otherwise is parsed whole."""
    path = folder / FILE
    with path.open("rb") as f:
        head = f.readline() + f.readline()
        if head not in (b'{\n  "buildings": {\n', b'{\n  "buildings": {}\n'):
            yield from load_json(path)["buildings"].items()
            return
        rest = b""
        while True:
            chunk = f.read(CHUNK)
            data = rest + chunk
            if chunk:
                cut = data.rfind(b',\n    "')
                if cut < 0:
                    rest = data
                    continue
                block, rest = data[:cut], data[cut + 1:]
            else:
                # the last entries, before the index's and the document's closing braces
                block = data[:max(data.rfind(b"\n  }"), 0)]
            if block.strip():
                yield from orjson.loads(b"{" + block + b"}").items()
            if not chunk:
                return


def read_feature_index(folder: Path, *, properties: bool = True, geometry: bool = True) -> dict[str, FeatureRef]:
    """The index by building id; without each building's ``properties`` or its ``geometry``
    digest when they are not wanted (the properties are most of its size: 0.9 GB in memory at
    600,000 buildings)."""
    out = {}
    for k, v in iter_feature_index(folder):
        out[k] = FeatureRef(sys.intern(v["tile"]), v["feature_id"], v.get("geometry", "") if geometry else "",
                            v.get("properties", {}) if properties else {})
    return out
