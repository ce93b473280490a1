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

from pipeline.core.geodesy import SiteFrame
from pipeline.core.shading import Scene


def normals_enu(frame: SiteFrame, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Unit ellipsoid normals (N, 3) at WGS84 ``lon``/``lat`` (degrees), in the site's ENU."""
    phi, lam = np.radians(np.asarray(lat, np.float64)), np.radians(np.asarray(lon, np.float64))
    ecef = np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
    return ecef @ frame.rotation.T


def drape(meshes: Sequence[tuple[np.ndarray, np.ndarray]] | Scene, frame: SiteFrame, lon: np.ndarray,
          lat: np.ndarray) -> np.ndarray:
    """Ellipsoidal height (m) of the highest surface of ``meshes`` (ENU vertices, faces) on each
    place's plumb line; NaN where the line meets none."""
    scene = meshes if isinstance(meshes, Scene) else Scene(meshes)
    lon, lat = np.atleast_1d(np.asarray(lon, np.float64)), np.atleast_1d(np.asarray(lat, np.float64))
    if scene.is_empty or not len(lon):
        return np.full(len(lon), np.nan)
    # start above everything: a point at ENU (e, n, u) stands about u + (e² + n²) / 2R above
    # the origin's ellipsoidal height, so this bound clears the scene's highest vertex
    reach = np.maximum(np.abs(scene.lo[:2]), np.abs(scene.hi[:2]))
    top = frame.height + scene.hi[2] + float(reach @ reach) / (2 * 6.3e6) + 10.0
    origins = frame.geodetic_to_enu(lon, lat, np.full(len(lon), top))
    rays = np.column_stack([origins, -normals_enu(frame, lon, lat)])
    t = scene.first_hit(rays)
    return np.where(np.isfinite(t), top - t, np.nan)
