"""Imported meshes (OBJ, PLY, glTF/GLB): read, repaired and placed on the earth.

Reading and repair use trimesh. A model's own frame is metres after ``scale``, x east, y north
and z up once ``up_axis`` is applied (glTF is y-up by its specification: x, -z, y); its origin is
put at a geodetic position and turned by a heading, in the local tangent frame of that position,
so a model's vertical is the plumb line where it stands, not the site origin's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.geodesy import SiteFrame
from pipeline.errors import InputError

#: suffixes trimesh reads for us
MESH_SUFFIXES = (".obj", ".ply", ".gltf", ".glb", ".stl", ".off")


@dataclass
class Repair:
    """What repairing a mesh did (counts of faces/vertices removed or fixed)."""

    faces_in: int
    vertices_in: int
    nonfinite_faces: int
    degenerate_faces: int
    duplicate_faces: int
    merged_vertices: int
    watertight: bool
    winding_fixed: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64, faces (F, 3) int64) of a mesh file, every part of a scene
    concatenated with its node transforms. Raises :class:`InputError` when it cannot be read
    or holds no triangles."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise InputError("mesh file not found", path=path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(f"unsupported mesh format {path.suffix!r} (expected one of "
                         f"{', '.join(MESH_SUFFIXES)})", path=path)
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise InputError(f"not a readable mesh ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                         path=path) from None
    if isinstance(loaded, trimesh.Scene):
        parts = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)]
        if not parts:
            raise InputError("mesh has no faces (a point cloud belongs under inputs.pointclouds)", path=path)
        mesh = trimesh.util.concatenate(parts)
    elif isinstance(loaded, trimesh.Trimesh):
        mesh = loaded
    else:
        raise InputError("mesh has no faces (a point cloud belongs under inputs.pointclouds)", path=path)
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError("mesh has no faces (a point cloud belongs under inputs.pointclouds)", path=path)
    vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(f"corrupt index data: faces refer to vertex {int(faces.max()):,} of {len(vertices):,}",
                         path=path)
    return vertices, faces


def repair_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, Repair]:
    """Faces touching non-finite vertices, degenerate and duplicate faces dropped, coincident
    vertices merged, winding made consistent (and outward when the mesh is closed)."""
    import trimesh

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    finite = np.all(np.isfinite(v), axis=1)
    ok = np.all(finite[f], axis=1)
    nonfinite = int((~ok).sum())
    mesh = trimesh.Trimesh(np.where(finite[:, None], v, 0.0), f[ok], process=False)
    n_vert = len(mesh.vertices)
    mesh.merge_vertices()
    merged = n_vert - len(mesh.vertices)
    good = mesh.nondegenerate_faces()
    degenerate = int((~good).sum())
    mesh.update_faces(good)
    unique = mesh.unique_faces()
    duplicate = int((~unique).sum())
    mesh.update_faces(unique)
    mesh.remove_unreferenced_vertices()
    before = mesh.faces.copy()
    trimesh.repair.fix_normals(mesh)
    fixed = not np.array_equal(before, mesh.faces)
    report = Repair(len(f), len(v), nonfinite, degenerate, duplicate, merged, bool(mesh.is_watertight), fixed)
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int32), report


#: no building or landmark reaches farther than this (m) from its own origin; a model that does
#: has the wrong scale (millimetres read as metres) or world coordinates in its vertices
MAX_MODEL_REACH_M = 5000.0


def model_reach(vertices: np.ndarray, scale: float) -> float:
    """The farthest any vertex lies from the model's origin (m), after ``scale``."""
    return float(np.max(np.abs(np.asarray(vertices, np.float64)))) * scale if len(vertices) else 0.0


def model_to_local(vertices: np.ndarray, *, up_axis: str, scale: float, heading_deg: float) -> np.ndarray:
    """Model coordinates -> local east, north, up (m) at the model's origin: scaled, the up axis
    made z, then turned so the model's +y (north) points to ``heading_deg`` (clockwise from north)."""
    v = np.asarray(vertices, np.float64) * scale
    if up_axis == "y":
        v = np.column_stack([v[:, 0], -v[:, 2], v[:, 1]])
    t = np.radians(heading_deg)
    rot = np.array([[np.cos(t), np.sin(t), 0.0], [-np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    return v @ rot.T


def local_to_site(local: np.ndarray, lon: float, lat: float, h: float, site: SiteFrame) -> np.ndarray:
    """Local east, north, up (m) at geodetic ``lon, lat`` (degrees), ellipsoidal ``h`` (m) ->
    the site's ENU (m), through ECEF."""
    here = SiteFrame(lat, lon, h)
    return site.ecef_to_enu(here.enu_to_ecef(local))
