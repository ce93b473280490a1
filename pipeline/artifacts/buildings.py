"""mesh's buildings: one record per building (``buildings.json``) and every building's levels of
detail as mesh pieces (``buildings.npz``).

Both files are written on every run; a layer without buildings has no records and no pieces.
Heights are metres, orthometric (above the geoid); ``bbox_enu``, ``outline_en`` and the pieces'
vertices are ENU metres at the site origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import BUILDINGS
from pipeline.artifacts.base import dump_json, load_json
from pipeline.artifacts.footprints import Centroid
from pipeline.core.surfaces import complete_kinds

FILE = BUILDINGS.path
MESHES = "buildings.npz"


@dataclass(frozen=True)
class LevelInfo:
    """One level of detail: its face count and Hausdorff distance to level 0 (m)."""

    level: int
    faces: int
    error_m: float


@dataclass
class BuildingRecord:
    """A building as the mesh stage made it. ``lod`` is LoD2, LoD1, a city model's LoD3, or
    imported; ``height_source`` lidar, register, attribute, register floors, floors, default, model or
    city model; ``footprint_source`` input, lidar, model or city model; ``ground_source`` terrain, model
    base or site reference height; ``feature_id`` its row in the layer. A ``proposed`` building (a design
    model) stands beside the building it ``replaces``, which keeps its own record."""

    id: str
    name: str | None
    use: str | None
    floors: int | None
    height: float
    ground_height: float
    roof_height: float
    eave_height: float | None
    lod1_roof_height: float | None
    height_source: str
    lod: str
    roof_type: str | None
    roof_fit_rmse_m: float | None
    lod2_fallback: str | None
    roof_points: int
    footprint_area_m2: float
    footprint_source: str
    bbox_enu: list[float]
    centroid: Centroid
    outline_en: list[list[float]]
    ground_source: str = "terrain"
    feature_id: int = -1
    levels: list[LevelInfo] = field(default_factory=list)
    source_file: str | None = None
    repair: dict[str, Any] | None = None
    replaced_footprint: bool = False
    proposed: bool = False
    replaces: str | None = None
    floors_below: int | None = None
    approval_date: str | None = None
    footprint_sources: list[dict[str, Any]] = field(default_factory=list)
    #: the outline's holes (courtyards) where the mesh stage drew the outline itself (a city model's)
    outline_holes_en: list[list[list[float]]] = field(default_factory=list)

    def feature_properties(self) -> dict[str, Any]:
        """The values of the tiles' building metadata class (``core.content.BUILDING_SCHEMA``)."""
        return {"id": self.id, "name": self.name, "use": self.use, "floors": self.floors,
                "floors_below": self.floors_below, "height": self.height,
                "ground_height": self.ground_height, "roof_height": self.roof_height,
                "roof_type": self.roof_type, "lod": self.lod, "height_source": self.height_source,
                "proposed": self.proposed, "replaces": self.replaces, "approval_date": self.approval_date}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BuildingRecord:
        doc = dict(doc)
        doc["centroid"] = Centroid(**doc["centroid"])
        doc["levels"] = [LevelInfo(**lv) for lv in doc.get("levels", [])]
        return cls(**doc)


#: one level of a building: ENU vertices (V, 3) float64, faces (F, 3) int32, Hausdorff error (m)
MeshLevel = tuple[np.ndarray, np.ndarray, float]


@dataclass
class BuildingLayer:
    """Every building in feature-ID order, with what was skipped (id and reason), the number of
    sliver parts dropped and how the footprints were obtained."""

    buildings: list[BuildingRecord] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    slivers_dropped: int = 0
    footprints: dict[str, Any] = field(default_factory=dict)


def write_buildings(folder: Path, layer: BuildingLayer, levels: list[list[MeshLevel]],
                    surfaces: list[np.ndarray | None] | None = None) -> None:
    """Write the records (numbering their feature IDs and levels) and their meshes, one list of
    levels per building in the same order. ``surfaces`` gives a building's level-0 surface codes
    where its source states them (a city model's; :data:`~pipeline.core.surfaces.UNLABELLED`
    where it does not); every other face's kind follows from its normal."""
    if len(levels) != len(layer.buildings) or (surfaces is not None and len(surfaces) != len(levels)):
        raise ValueError("one list of levels (and of surface codes) per building")
    vs, fs, ks, p_building, p_level = [], [], [], [], []
    for fid, (rec, lv) in enumerate(zip(layer.buildings, levels, strict=True)):
        rec.feature_id = fid
        rec.levels = [LevelInfo(k, int(len(f)), round(float(e), 4)) for k, (_, f, e) in enumerate(lv)]
        for k, (v, f, _) in enumerate(lv):
            vs.append(np.asarray(v, np.float64))
            fs.append(np.asarray(f, np.int32))
            ks.append(complete_kinds(v, f, surfaces[fid] if surfaces is not None and k == 0 else None))
            p_building.append(fid)
            p_level.append(k)
    v_start = np.concatenate([[0], np.cumsum([len(v) for v in vs], dtype=np.int64)]).astype(np.int64)
    f_start = np.concatenate([[0], np.cumsum([len(f) for f in fs], dtype=np.int64)]).astype(np.int64)
    np.savez(folder / MESHES, vertices=np.concatenate(vs) if vs else np.empty((0, 3)),
             faces=np.concatenate(fs) if fs else np.empty((0, 3), np.int32),
             face_surface=np.concatenate(ks) if ks else np.empty(0, np.uint8),
             piece_building=np.array(p_building, np.int32), piece_level=np.array(p_level, np.int16),
             vertex_start=v_start, face_start=f_start)
    dump_json(folder / FILE, {"buildings": layer.buildings, "skipped": layer.skipped,
                              "slivers_dropped": layer.slivers_dropped, "footprints": layer.footprints,
                              "height_units": "metres, orthometric"})


def read_buildings(folder: Path) -> BuildingLayer:
    doc = load_json(folder / FILE)
    return BuildingLayer([BuildingRecord.from_json(b) for b in doc["buildings"]], doc["skipped"],
                         doc["slivers_dropped"], doc["footprints"])


class BuildingMeshes:
    """The levels of detail in ``buildings.npz``: (feature ID, level) -> ENU vertices, faces and
    each face's surface code."""

    def __init__(self, folder: Path) -> None:
        d = np.load(folder / MESHES)
        self.vertices, self.faces, self.surfaces = d["vertices"], d["faces"], d["face_surface"]
        self.vs, self.fs = d["vertex_start"], d["face_start"]
        self.index = {(int(b), int(k)): p for p, (b, k) in enumerate(zip(d["piece_building"], d["piece_level"],
                                                                           strict=True))}

    def get(self, building: int, level: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.index[(building, level)]
        return self.vertices[self.vs[p]:self.vs[p + 1]], self.faces[self.fs[p]:self.fs[p + 1]]

    def surface(self, building: int, level: int) -> np.ndarray:
        """The surface code of each face (:mod:`pipeline.core.surfaces`)."""
        p = self.index[(building, level)]
        return self.surfaces[self.fs[p]:self.fs[p + 1]]
