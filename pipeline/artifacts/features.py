"""tile's ``buildings/features.json``: where each building's full detail lives in the tiles.

Written on every run (an empty index when there are no buildings); anchors and the hub look a
building id up here to reach its feature in EXT_mesh_features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.artifacts import FEATURE_INDEX
from pipeline.artifacts.base import dump_json, load_json

FILE = FEATURE_INDEX.path


@dataclass(frozen=True)
class FeatureRef:
    """A building's leaf tile (URI relative to ``buildings/``) and its feature ID there."""

    tile: str
    feature_id: int


def write_feature_index(folder: Path, index: dict[str, FeatureRef]) -> None:
    dump_json(folder / FILE, {"buildings": {k: asdict(v) for k, v in index.items()}})


def read_feature_index(folder: Path) -> dict[str, FeatureRef]:
    return {k: FeatureRef(**v) for k, v in load_json(folder / FILE)["buildings"].items()}
