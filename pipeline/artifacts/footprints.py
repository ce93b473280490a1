"""Building footprints: ingest's repaired layer in its own CRS (``footprints.jsonl``) and georef's
layer in the site frame (``footprints.jsonl``), each as JSON Lines: the layer's own fields on the
first line, then one footprint per line.

Both files are written on every run. Without a footprint input the layer has ``source`` None
and no features, which tells mesh to outline buildings from the LiDAR instead; a layer that was
given but lost every feature to repair has its source and no features.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pipeline.artifacts import ENU_FOOTPRINTS, SOURCE_FOOTPRINTS
from pipeline.artifacts.base import (dump_records, intern_values, iter_record_lines, iter_record_spans, iter_records,
                                     load_header, read_records_at)

@dataclass(frozen=True)
class SourceFootprint:
    """One repaired footprint: its id, attributes (floors above and below ground; height in
    metres; None where the layer has no usable value), (Multi)Polygon as WKT in the layer's CRS, and whether
    it is a design proposal (and the id of the building it replaces); where height and floors
    came from ('layer' or 'register') and the register's use approval date (YYYY-MM-DD)."""

    id: str
    name: str | None
    use: str | None
    floors: int | None
    height: float | None
    wkt: str
    proposed: bool = False
    replaces: str | None = None
    floors_below: int | None = None
    height_origin: str = "layer"
    floors_origin: str = "layer"
    approval_date: str | None = None


@dataclass(frozen=True)
class SourceFootprints:
    """ingest's layer: the file it came from (None: no footprint input), its CRS as WKT, whether
    the landing checks are waived, the features, and those skipped or repaired (id and reason)."""

    source: str | None = None
    crs_wkt: str | None = None
    accept_crs: bool = False
    features: list[SourceFootprint] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)


def write_source_footprints(folder: Path, layer: SourceFootprints) -> None:
    """The layer as JSON Lines: its own fields (with the number of features) first, then one
    footprint per line."""
    dump_records(SOURCE_FOOTPRINTS.locate(folder), {"source": layer.source, "crs_wkt": layer.crs_wkt,
                                                     "accept_crs": layer.accept_crs, "skipped": layer.skipped,
                                                     "repaired": layer.repaired, "features": len(layer.features)},
                 layer.features)


def read_source_footprints(folder: Path, features: bool = True) -> SourceFootprints:
    """ingest's layer; without its ``features`` (see :func:`iter_source_footprints`) when they
    are not wanted, which reads one line."""
    doc = load_header(SOURCE_FOOTPRINTS.locate(folder))
    return SourceFootprints(doc["source"], doc["crs_wkt"], doc["accept_crs"],
                            list(iter_source_footprints(folder)) if features else [], doc["skipped"], doc["repaired"])


def source_footprint_count(folder: Path) -> int:
    """How many footprints ingest's layer has, read from its own fields."""
    return int(load_header(SOURCE_FOOTPRINTS.locate(folder))["features"])


def iter_source_footprints(folder: Path) -> Iterator[SourceFootprint]:
    """ingest's footprints one at a time, in layer order."""
    for doc in iter_records(SOURCE_FOOTPRINTS.locate(folder)):
        yield SourceFootprint(**intern_values(doc, ("use", "height_origin", "floors_origin")))


@dataclass(frozen=True, slots=True)
class Centroid:
    """Where a building's anchor stands: WGS84 degrees, geoid undulation N (m), plan ENU E, N (m)."""

    lon: float
    lat: float
    undulation: float
    en: list[float]


@dataclass(frozen=True, slots=True)
class Ring:
    """One ring, open (first vertex not repeated): plan ENU E, N (m) at orthometric height 0
    and, for rings from a footprint layer, the source coordinates, WGS84 degrees and the geoid
    undulation (m) at each vertex (None for outlines drawn in the plane from the LiDAR)."""

    en: list[list[float]]
    src: list[list[float]] | None = None
    lonlat: list[list[float]] | None = None
    undulation: list[float] | None = None


@dataclass(frozen=True, slots=True)
class Footprint:
    """A footprint in the site frame: its parts (exterior ring, then holes), its centroid, where
    it came from ('input' or 'lidar') and whether it is a proposal (replacing ``replaces``)."""

    id: str
    name: str | None
    use: str | None
    floors: int | None
    height: float | None
    parts: list[list[Ring]]
    centroid: Centroid
    footprint_source: str = "input"
    proposed: bool = False
    replaces: str | None = None
    floors_below: int | None = None
    height_origin: str = "layer"
    floors_origin: str = "layer"
    approval_date: str | None = None
    #: every source that outlined this building ({"source": "input" | "lidar", "id", "iou"}) and
    #: which one's geometry it has ("geometry": true); empty when there was one source only
    sources: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, doc: dict[str, Any], plan_only: bool = False) -> Footprint:
        doc = intern_values(doc, ("use", "footprint_source", "height_origin", "floors_origin"))
        doc["parts"] = [[Ring(r["en"]) if plan_only else Ring(**r) for r in part] for part in doc["parts"]]
        doc["centroid"] = Centroid(**doc["centroid"])
        return cls(**doc)


@dataclass(frozen=True)
class FootprintLayer:
    """georef's layer: the footprints in ENU, the source layer's file (None: no footprint input)
    and CRS, and what ingest skipped or repaired."""

    source: str | None = None
    crs_wkt: str | None = None
    features: list[Footprint] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
    frame: str = "ENU"


def write_footprints(folder: Path, layer: FootprintLayer, features: Iterable[Footprint] | None = None,
                     count: int | None = None) -> int:
    """The layer as JSON Lines: its own fields first, then one footprint per line; the
    footprints are ``layer.features``, or ``features`` written as they come (``count`` of
    them, which the first line states). Returns the number written."""
    if features is None:
        features, count = layer.features, len(layer.features)
    n = dump_records(ENU_FOOTPRINTS.locate(folder), {"source": layer.source, "crs_wkt": layer.crs_wkt,
                                                      "skipped": layer.skipped, "repaired": layer.repaired,
                                                      "frame": layer.frame, "features": count}, features)
    if n != count:
        raise ValueError(f"{n} footprints written where the layer's fields say {count}")
    return n


def read_footprints(folder: Path, features: bool = True, plan_only: bool = False) -> FootprintLayer:
    """georef's layer; without its ``features`` (its source, CRS and what ingest skipped or
    repaired only) when they are not wanted, which reads one line; ``plan_only``: each ring with
    its plan ENU only (``src``, ``lonlat`` and ``undulation`` None), a quarter of its memory."""
    path = ENU_FOOTPRINTS.locate(folder)
    doc = load_header(path)
    return FootprintLayer(doc["source"], doc["crs_wkt"],
                          [Footprint.from_json(f, plan_only) for f in iter_records(path)] if features else [],
                          doc["skipped"], doc["repaired"], doc["frame"])


@dataclass(frozen=True)
class FootprintLines:
    """Some of georef's footprints, by where their lines are in its file: whoever meshes them (an
    executor worker) reads them, so the stage's own process never holds a city's footprints."""

    path: str
    #: (offset, length) in bytes of each footprint's line, int64 (k, 2)
    spans: np.ndarray

    def load(self) -> list[Footprint]:
        """The footprints, plan only (see :func:`read_footprints`)."""
        return [Footprint.from_json(d, plan_only=True) for d in read_records_at(Path(self.path), self.spans)]


@dataclass(frozen=True)
class FootprintTable:
    """Footprints as columns, one row per footprint in layer order: centroid plan ENU E, N (m), the
    box of its rings in plan ENU (E min, N min, E max, N max; m; infinite for a footprint without
    rings) and whether it came from the footprint layer ('input'); the footprints themselves are
    either in memory (``features``) or lines of georef's file (``path`` and ``spans``)."""

    centroid_en: np.ndarray
    bounds: np.ndarray
    from_input: np.ndarray
    features: list[Footprint] | None = None
    path: Path | None = None
    spans: np.ndarray | None = None

    @classmethod
    def of(cls, features: list[Footprint]) -> FootprintTable:
        """A table of footprints held in memory."""
        return cls(*_columns(features), features=features)

    def __len__(self) -> int:
        return len(self.centroid_en)

    def take(self, rows: np.ndarray) -> list[Footprint] | FootprintLines:
        """The footprints at ``rows``: the records, or where to read them."""
        if self.features is not None:
            return [self.features[k] for k in rows.tolist()]
        assert self.path is not None and self.spans is not None  # a table is one or the other
        return FootprintLines(str(self.path), self.spans[rows])

    def load(self, rows: np.ndarray) -> list[Footprint]:
        """The footprints at ``rows``, in memory."""
        got = self.take(rows)
        return got.load() if isinstance(got, FootprintLines) else got


def _columns(features: Iterable[Footprint]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centroid, bounds, given = [], [], []
    for f in features:
        centroid.append(f.centroid.en)
        xy = [v for part in f.parts for ring in part for v in ring.en]
        if xy:
            a = np.asarray(xy, np.float64)
            bounds.append((*a.min(axis=0), *a.max(axis=0)))
        else:
            bounds.append((np.inf, np.inf, -np.inf, -np.inf))
        given.append(f.footprint_source == "input")
    return (np.asarray(centroid, np.float64).reshape(-1, 2), np.asarray(bounds, np.float64).reshape(-1, 4),
            np.asarray(given, bool))


def scan_footprints(folder: Path) -> FootprintTable:
    """georef's footprints as a table of columns and line spans, read once line by line: a
    city's footprints are never all in memory (600,000 of them, plan only, took 0.8 GB)."""
    path = ENU_FOOTPRINTS.locate(folder)
    spans: list[tuple[int, int]] = []

    def plan() -> Iterator[Footprint]:
        for at, size, doc in iter_record_spans(path):
            spans.append((at, size))
            yield Footprint.from_json(doc, plan_only=True)

    columns = _columns(plan())
    return FootprintTable(*columns, path=path, spans=np.asarray(spans, np.int64).reshape(-1, 2))


@dataclass(frozen=True)
class FootprintLookup:
    """georef's footprints found by id and read from its file a few at a time: a city's
    footprints as polygons took 0.4 GB and more."""

    path: Path
    rows: dict[str, int]
    #: (offset, length) in bytes of each footprint's line, int64 (n, 2)
    spans: np.ndarray

    def load(self, ids: Iterable[str]) -> dict[str, Footprint]:
        """The footprints of those ``ids`` the layer has, by id, plan only (see :func:`read_footprints`)."""
        rows = [self.rows[i] for i in ids if i in self.rows]
        return {f.id: f for f in FootprintLines(str(self.path), self.spans[np.asarray(rows, np.int64)]).load()}


def lookup_footprints(folder: Path) -> FootprintLookup:
    """An id lookup of georef's footprints, read once line by line."""
    path = ENU_FOOTPRINTS.locate(folder)
    rows: dict[str, int] = {}
    spans = array("q")
    for at, line in iter_record_lines(path):
        rows[_line_id(line)] = len(rows)
        spans.extend((at, len(line)))
    return FootprintLookup(path, rows, np.asarray(spans, np.int64).reshape(-1, 2))


def _line_id(line: bytes) -> str:
    # a record's line begins with its id (the first field): read without parsing the rest, a
    # city's rings, unless the id holds an escape
    if line.startswith(b'{"id":"'):
        end = line.index(b'"', 7)
        if b"\\" not in line[7:end]:
            return line[7:end].decode()
    return str(orjson.loads(line)["id"])


def first_source_vertex(folder: Path) -> tuple[float, float] | None:
    """The first vertex of georef's layer in the source layer's CRS (None: a layer without
    footprints, or footprints drawn from the LiDAR only)."""
    for f in iter_records(ENU_FOOTPRINTS.locate(folder)):
        for part in f["parts"]:
            for ring in part:
                if ring.get("src"):
                    return ring["src"][0][0], ring["src"][0][1]
    return None
