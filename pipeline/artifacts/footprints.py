"""Building footprints: ingest's repaired layer in its own CRS (``footprints.json``) and georef's
layer in the site frame (``footprints.json``).

Both files are written on every run. Without a footprint input the layer has ``source`` None
and no features, which tells mesh to outline buildings from the LiDAR instead; a layer that was
given but lost every feature to repair has its source and no features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.artifacts import ENU_FOOTPRINTS, SOURCE_FOOTPRINTS
from pipeline.artifacts.base import dump_json, dump_records, intern_values, iter_records, load_header, load_json

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
    dump_json(SOURCE_FOOTPRINTS.locate(folder), layer)


def read_source_footprints(folder: Path) -> SourceFootprints:
    doc = load_json(SOURCE_FOOTPRINTS.locate(folder))
    return SourceFootprints(doc["source"], doc["crs_wkt"], doc["accept_crs"],
                            [SourceFootprint(**f) for f in doc["features"]], doc["skipped"], doc["repaired"])


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


def write_footprints(folder: Path, layer: FootprintLayer) -> None:
    """The layer as JSON Lines: its own fields first, then one footprint per line."""
    dump_records(ENU_FOOTPRINTS.locate(folder), {"source": layer.source, "crs_wkt": layer.crs_wkt,
                                                  "skipped": layer.skipped, "repaired": layer.repaired,
                                                  "frame": layer.frame, "features": len(layer.features)},
                 layer.features)


def read_footprints(folder: Path, features: bool = True, plan_only: bool = False) -> FootprintLayer:
    """georef's layer; without its ``features`` (its source, CRS and what ingest skipped or
    repaired only) when they are not wanted, which reads one line; ``plan_only``: each ring with
    its plan ENU only (``src``, ``lonlat`` and ``undulation`` None), a quarter of its memory."""
    path = ENU_FOOTPRINTS.locate(folder)
    doc = load_header(path)
    return FootprintLayer(doc["source"], doc["crs_wkt"],
                          [Footprint.from_json(f, plan_only) for f in iter_records(path)] if features else [],
                          doc["skipped"], doc["repaired"], doc["frame"])


def first_source_vertex(folder: Path) -> tuple[float, float] | None:
    """The first vertex of georef's layer in the source layer's CRS (None: a layer without
    footprints, or footprints drawn from the LiDAR only)."""
    for f in iter_records(ENU_FOOTPRINTS.locate(folder)):
        for part in f["parts"]:
            for ring in part:
                if ring.get("src"):
                    return ring["src"][0][0], ring["src"][0][1]
    return None
