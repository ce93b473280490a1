"""The kind of surface each building triangle belongs to: ground, wall, roof or other.

City models state it (CityGML's and CityJSON's GroundSurface, WallSurface, RoofSurface; closure,
ceiling and floor surfaces are "other"); for meshes that do not (our LoD1/LoD2 solids, imported
models, a city model's unlabelled polygons, the coarser levels of detail) it follows from the
triangle's normal in the ENU frame: near-horizontal normals are walls, upward ones roofs,
downward ones ground (the underside). The codes are the rows of the tiles' ``surfaces`` table.
"""

from __future__ import annotations

import numpy as np

#: surface kinds in code order (a triangle's code is its index here)
SURFACE_KINDS = ("ground", "wall", "roof", "other")
GROUND, WALL, ROOF, OTHER = range(4)
#: a triangle whose kind its normal decides
UNLABELLED = 255
#: a triangle whose normal's up component is within this of 0 is a wall: sin 10 degrees,
#: steeper than any roof pitch but a mansard's lower slope (about 70 degrees) still a roof
WALL_NORMAL_UP = 0.17

#: CityGML / CityJSON semantic surface types -> kind
SEMANTIC_KINDS: dict[str, int] = {
    "GroundSurface": GROUND, "WallSurface": WALL, "RoofSurface": ROOF,
    "ClosureSurface": OTHER, "OuterCeilingSurface": OTHER, "OuterFloorSurface": OTHER,
}


def kinds_by_normal(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) uint8 surface codes of triangles from their normals; ``vertices`` ENU (z up)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if not len(f):
        return np.empty(0, np.uint8)
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    norm = np.linalg.norm(cross, axis=1)
    up = np.divide(cross[:, 2], norm, out=np.zeros(len(f)), where=norm > 0)
    return np.where(np.abs(up) < WALL_NORMAL_UP, WALL, np.where(up > 0, ROOF, GROUND)).astype(np.uint8)


def complete_kinds(vertices: np.ndarray, faces: np.ndarray, kinds: np.ndarray | None) -> np.ndarray:
    """``kinds`` with every :data:`UNLABELLED` triangle given its normal's kind (all of them
    when ``kinds`` is None)."""
    by_normal = kinds_by_normal(vertices, faces)
    if kinds is None:
        return by_normal
    kinds = np.asarray(kinds, np.uint8)
    return np.where(kinds == UNLABELLED, by_normal, kinds).astype(np.uint8)
