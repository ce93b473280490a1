"""City model buildings: ingest's in each file's own CRS and units, georef's in the site's ENU
frame (metres). Records in ``city_models.json``; every building's triangles, with one surface
code per triangle (:mod:`pipeline.core.surfaces`), in ``city_models.npz``.

Both are written on every run; without city models the layer has no files and no buildings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import ENU_CITY, SOURCE_CITY
from pipeline.artifacts.base import dump_json, load_json

MESHES = "city_models.npz"


@dataclass(frozen=True)
class CitySource:
    """One city model file: its format, CRS (WKT; z orthometric unless the CRS says otherwise),
    whether the CRS is accepted unchecked, and the buildings it skipped (id, reason)."""

    path: str
    format: str
    crs_wkt: str
    accept_crs: bool
    buildings: int
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class CityBuilding:
    """One building of a city model: its id in the file, the file, the level of detail used,
    the attributes mapped by ``inputs.city_models[].fields`` (None where it has no usable value),
    the footprint id it names (``join``), and
    georef's mean geoid undulation under it (m; None in ingest's layer)."""

    id: str
    source: str
    lod: str
    name: str | None
    use: str | None
    floors: int | None
    floors_below: int | None
    join: str | None
    undulation: float | None = None


@dataclass
class CityModelLayer:
    """Every city model building in input order, and the files they came from."""

    sources: list[CitySource] = field(default_factory=list)
    buildings: list[CityBuilding] = field(default_factory=list)


#: one building's mesh: vertices (V, 3) float64, faces (F, 3) int32, surface codes (F,) uint8
CityMesh = tuple[np.ndarray, np.ndarray, np.ndarray]


def _write(folder: Path, name: str, layer: CityModelLayer, meshes: list[CityMesh], frame: str) -> None:
    if len(meshes) != len(layer.buildings):
        raise ValueError("one mesh per building")
    v_start = np.cumsum([0] + [len(m[0]) for m in meshes], dtype=np.int64)
    f_start = np.cumsum([0] + [len(m[1]) for m in meshes], dtype=np.int64)
    np.savez(folder / MESHES,
             vertices=np.concatenate([m[0] for m in meshes]) if meshes else np.empty((0, 3)),
             faces=np.concatenate([m[1] for m in meshes]).astype(np.int32) if meshes else np.empty((0, 3), np.int32),
             surfaces=np.concatenate([m[2] for m in meshes]).astype(np.uint8) if meshes else np.empty(0, np.uint8),
             vertex_start=v_start, face_start=f_start)
    dump_json(folder / name, {"sources": layer.sources,
                              "buildings": layer.buildings, "frame": frame})


def write_source_city_models(folder: Path, layer: CityModelLayer, meshes: list[CityMesh]) -> None:
    """ingest's layer: vertices in each file's CRS and units."""
    _write(folder, SOURCE_CITY.path, layer, meshes, "source CRS")


def write_city_models(folder: Path, layer: CityModelLayer, meshes: list[CityMesh]) -> None:
    """georef's layer: vertices ENU metres at the site origin."""
    _write(folder, ENU_CITY.path, layer, meshes, "ENU")


def _read(folder: Path, name: str) -> tuple[CityModelLayer, list[CityMesh]]:
    doc: dict[str, Any] = load_json(folder / name)
    layer = CityModelLayer([CitySource(**s) for s in doc["sources"]], [CityBuilding(**b) for b in doc["buildings"]])
    with np.load(folder / MESHES) as d:  # each key read once: NpzFile decompresses on every access
        v, f, k, vs, fs = (d[n] for n in ("vertices", "faces", "surfaces", "vertex_start", "face_start"))
    meshes = [(v[vs[i]:vs[i + 1]], f[fs[i]:fs[i + 1]], k[fs[i]:fs[i + 1]]) for i in range(len(layer.buildings))]
    return layer, meshes


def read_source_city_models(ingest: Path) -> tuple[CityModelLayer, list[CityMesh]]:
    return _read(ingest, SOURCE_CITY.path)


def read_city_models(georef: Path) -> tuple[CityModelLayer, list[CityMesh]]:
    return _read(georef, ENU_CITY.path)
