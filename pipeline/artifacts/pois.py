"""Points of interest: ingest's ``pois.json`` in the layer's CRS and georef's ``pois.json`` in WGS84
and plan ENU (both always written; without a POI input ingest's has ``source`` None and both
hold no points)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.artifacts import ENU_POIS, SOURCE_POIS
from pipeline.artifacts.base import dump_json, load_json

FILE = ENU_POIS.path


@dataclass(frozen=True)
class SourcePoi:
    """A point of interest as the layer gave it: name, kind and plan x, y in the layer's CRS; the
    id of the building it is an entrance of, if any."""

    name: str
    kind: str
    x: float
    y: float
    entrance_of: str | None = None


@dataclass(frozen=True)
class SourcePois:
    """ingest's POI layer: the file (None: no POI input), its CRS as WKT, whether the landing
    checks are waived, and its points."""

    source: str | None = None
    crs_wkt: str | None = None
    accept_crs: bool = False
    points: list[SourcePoi] = field(default_factory=list)


def write_source_pois(folder: Path, pois: SourcePois) -> None:
    dump_json(SOURCE_POIS.locate(folder), asdict(pois))


def read_source_pois(folder: Path) -> SourcePois:
    doc = load_json(SOURCE_POIS.locate(folder))
    return SourcePois(doc["source"], doc["crs_wkt"], doc["accept_crs"], [SourcePoi(**p) for p in doc["points"]])


@dataclass(frozen=True)
class PoiRecord:
    """A point of interest: WGS84 degrees, the geoid undulation there (m) and plan ENU E, N (m)
    at orthometric height 0, and the id of the building it is an entrance of, if any. It has no
    height of its own: anchors put it on the terrain."""

    name: str
    kind: str
    lon: float
    lat: float
    undulation: float
    en: list[float]
    entrance_of: str | None = None


def write_pois(folder: Path, pois: list[PoiRecord]) -> None:
    dump_json(folder / FILE, {"points": [asdict(p) for p in pois]})


def read_pois(folder: Path) -> list[PoiRecord]:
    return [PoiRecord(**p) for p in load_json(folder / FILE)["points"]]
