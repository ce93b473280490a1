"""georef's ``pois.json``: points of interest in WGS84 and plan ENU (always written; may be empty)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.artifacts import ENU_POIS
from pipeline.artifacts.base import dump_json, load_json

FILE = ENU_POIS.path


@dataclass(frozen=True)
class PoiRecord:
    """A point of interest: WGS84 degrees, the geoid undulation there (m) and plan ENU E, N (m)
    at orthometric height 0. It has no height of its own: anchors put it on the terrain."""

    name: str
    kind: str
    lon: float
    lat: float
    undulation: float
    en: list[float]


def write_pois(folder: Path, pois: list[PoiRecord]) -> None:
    dump_json(folder / FILE, {"points": [asdict(p) for p in pois]})


def read_pois(folder: Path) -> list[PoiRecord]:
    return [PoiRecord(**p) for p in load_json(folder / FILE)["points"]]
