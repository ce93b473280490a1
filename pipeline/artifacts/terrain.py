"""mesh's terrain: the heightfield (``terrain/terrain.tif``, ENU U on a grid of posts), its TIN
levels (``terrain/level_<k>.npz``: ENU vertices, faces) and ``terrain/terrain.json``.

``terrain.json`` is written on every run; a site without elevation data (no DTM, no DEM, or too
few posts for a surface) has no heightfield and no levels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import TERRAIN
from pipeline.artifacts.base import dump_json, load_json

FILE = TERRAIN.path
FOLDER = FILE.rsplit("/", 1)[0]


@dataclass(frozen=True)
class TerrainLevel:
    """One TIN: its file, the error bound asked for and the vertical error measured on every
    heightfield post (m), the share of posts it covers, its size."""

    file: str
    max_error_bound_m: float
    max_vertical_error_m: float
    coverage: float
    faces: int
    vertices: int


@dataclass
class TerrainRecord:
    """The heightfield's grid (None when there is no terrain), the sources used, the levels
    (finest first) and, when no surface could be made, why."""

    heightfield: dict[str, Any] | None = None
    sources: dict[str, Any] = field(default_factory=dict)
    levels: list[TerrainLevel] = field(default_factory=list)
    note: str | None = None
    #: the blocks each level was triangulated in (``stages.mesh.terrain_block_size``); 1: one TIN
    blocks: int = 1

    @property
    def is_empty(self) -> bool:
        return not self.levels

    @property
    def heightfield_path(self) -> str | None:
        return f"{FOLDER}/{self.heightfield['file']}" if self.heightfield else None


def write_terrain(folder: Path, terrain: TerrainRecord) -> None:
    dump_json(folder / FILE, asdict(terrain))


def read_terrain(folder: Path) -> TerrainRecord:
    doc = load_json(folder / FILE)
    return TerrainRecord(doc["heightfield"], doc["sources"], [TerrainLevel(**lv) for lv in doc["levels"]],
                         doc.get("note"), doc["blocks"])


def load_level(folder: Path, level: TerrainLevel) -> tuple[np.ndarray, np.ndarray]:
    """(ENU vertices (V, 3) m, faces (F, 3)) of one level."""
    d = np.load(folder / FOLDER / level.file)
    return d["vertices"], d["faces"]
