"""Heights of surfaces under given places: a plumb line dropped onto a mesh.

A place is WGS84 longitude and latitude; its plumb line here is the ellipsoid normal, a straight
line along which longitude and latitude stay fixed and the ellipsoidal height falls by exactly
the distance travelled. One ray cast down that line from above the mesh therefore gives the
surface's ellipsoidal height at the place itself, with no iteration, wherever the place stands
in the site's ENU frame (whose own up tilts away from the normal by 1.6e-4 rad per km).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.core.geodesy import SiteFrame, ellipsoid_normals_ecef
from pipeline.core.shading import Scene


def normals_enu(frame: SiteFrame, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Unit ellipsoid normals (N, 3) at WGS84 ``lon``/``lat`` (degrees), in the site's ENU."""
    return ellipsoid_normals_ecef(lon, lat) @ frame.rotation.T


def _above(frame: SiteFrame, lo: np.ndarray, hi: np.ndarray) -> float:
    """An ellipsoidal height (m) above every point of the ENU box ``lo``..``hi``, where plumb
    lines start: a point at ENU (e, n, u) stands about u + (e² + n²) / 2R above the origin's
    ellipsoidal height, so this bound clears the box's highest corner."""
    reach = np.maximum(np.abs(lo[:2]), np.abs(hi[:2]))
    return frame.height + float(hi[2]) + float(reach @ reach) / (2 * 6.3e6) + 10.0


def drape(meshes: Sequence[tuple[np.ndarray, np.ndarray]] | Scene, frame: SiteFrame, lon: np.ndarray,
          lat: np.ndarray) -> np.ndarray:
    """Ellipsoidal height (m) of the highest surface of ``meshes`` (ENU vertices, faces) on each
    place's plumb line; NaN where the line meets none."""
    return drape_scenes([meshes if isinstance(meshes, Scene) else Scene(meshes)], frame, lon, lat)[0]


def drape_scenes(scenes: Sequence[Scene], frame: SiteFrame, lon: np.ndarray, lat: np.ndarray) -> list[np.ndarray]:
    """:func:`drape` for each of ``scenes`` over the same places. The plumb lines (the places'
    ENU positions and normals: most of the work beside the ray casting) are computed once and
    start above every scene."""
    lon, lat = np.atleast_1d(np.asarray(lon, np.float64)), np.atleast_1d(np.asarray(lat, np.float64))
    live = [s for s in scenes if not s.is_empty]
    if not live or not len(lon):
        return [np.full(len(lon), np.nan) for _ in scenes]
    top = _above(frame, np.min([s.lo for s in live], axis=0), np.max([s.hi for s in live], axis=0))
    origins = frame.geodetic_to_enu(lon, lat, np.full(len(lon), top))
    rays = np.column_stack([origins, -normals_enu(frame, lon, lat)])
    out = []
    for scene in scenes:
        t = scene.first_hit(rays)
        out.append(np.where(np.isfinite(t), top - t, np.nan))
    return out


#: triangles tested per pass of :func:`drape_each` (bounds its temporaries to ~1 GB)
_CHUNK_TRIANGLES = 2_000_000


def drape_each(meshes: Sequence[tuple[np.ndarray, np.ndarray]], frame: SiteFrame, lon: np.ndarray,
               lat: np.ndarray) -> np.ndarray:
    """Ellipsoidal height (m) of the highest surface of ``meshes[i]`` (ENU vertices, faces) on
    place ``i``'s plumb line, each place meeting only its own mesh (a building's rooftop, not a
    taller neighbour's overhang); NaN where it meets none.

    A ray-tracing scene per mesh costs more to build than to query, so each ray is intersected
    with its own triangles directly (Möller–Trumbore, float64, all meshes in a few passes)."""
    lon, lat = np.atleast_1d(np.asarray(lon, np.float64)), np.atleast_1d(np.asarray(lat, np.float64))
    if len(meshes) != len(lon):
        raise ValueError("one mesh per place")
    out = np.full(len(lon), np.nan)
    counts = np.array([len(f) for _, f in meshes], np.int64)
    if not counts.sum():
        return out
    tris = np.concatenate([np.asarray(v, np.float64)[np.asarray(f, np.int64)] for v, f in meshes if len(f)])
    owner = np.repeat(np.arange(len(meshes)), counts)
    top = _above(frame, tris.reshape(-1, 3).min(axis=0), tris.reshape(-1, 3).max(axis=0))
    origins = frame.geodetic_to_enu(lon, lat, np.full(len(lon), top))
    down = -normals_enu(frame, lon, lat)
    t_min = np.full(len(lon), np.inf)
    for s in range(0, len(tris), _CHUNK_TRIANGLES):
        tri, who = tris[s:s + _CHUNK_TRIANGLES], owner[s:s + _CHUNK_TRIANGLES]
        o, d = origins[who], down[who]
        e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        p = np.cross(d, e2)
        det = np.einsum("ij,ij->i", e1, p)
        ok = np.abs(det) > 1e-12
        inv = np.divide(1.0, det, out=np.zeros_like(det), where=ok)
        rel = o - tri[:, 0]
        u = np.einsum("ij,ij->i", rel, p) * inv
        q = np.cross(rel, e1)
        v = np.einsum("ij,ij->i", d, q) * inv
        t = np.einsum("ij,ij->i", e2, q) * inv
        # a hair of slack keeps a line through a shared edge or vertex from slipping between
        eps = 1e-9
        hit = ok & (u >= -eps) & (v >= -eps) & (u + v <= 1 + eps) & (t >= 0)
        np.minimum.at(t_min, who[hit], t[hit])
    found = np.isfinite(t_min)
    out[found] = top - t_min[found]
    return out
