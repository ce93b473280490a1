"""Orientations for AR anchors: headings as quaternions in ENU and in East-Up-South (ARCore).

Quaternions are [x, y, z, w]. ENU identity: local x east, y north, z up. EUS identity (ARCore
Geospatial API): x east, y up, z south. A heading is degrees clockwise from true north, i.e. a
rotation about the up axis by -heading; in both frames that is a right-handed rotation about up
(ENU's z, EUS's y), so the angle is the same and only the axis slot differs.
"""

from __future__ import annotations

import numpy as np
import shapely


def heading_quaternions(heading_deg: float) -> tuple[list[float], list[float]]:
    """(ENU quaternion, EUS quaternion) turning the anchor's forward axis to ``heading_deg``."""
    half = -np.radians(heading_deg) / 2.0
    s, c = float(np.sin(half)), float(np.cos(half))
    return [0.0, 0.0, s, c], [0.0, s, 0.0, c]


def rotate(q: list[float], v: np.ndarray) -> np.ndarray:
    """Rotate vector ``v`` (3,) by unit quaternion ``q`` [x, y, z, w]."""
    x, y, z, w = q
    u = np.array([x, y, z])
    v = np.asarray(v, np.float64)
    return 2.0 * np.dot(u, v) * u + (w * w - np.dot(u, u)) * v + 2.0 * w * np.cross(u, v)


def polygon_heading(en: np.ndarray) -> float:
    """Heading (degrees clockwise from north, in [0, 180)) of the long axis of a footprint's
    minimum rotated rectangle; ``en`` is (k, 2) ENU east/north of its outline."""
    rect = shapely.minimum_rotated_rectangle(shapely.MultiPoint(en))
    if rect.geom_type != "Polygon":
        return 0.0
    c = np.asarray(rect.exterior.coords)[:3]
    edges = [c[1] - c[0], c[2] - c[1]]
    long_edge = max(edges, key=lambda e: float(np.hypot(*e)))
    return float(np.degrees(np.arctan2(long_edge[0], long_edge[1])) % 180.0)


def enu_axes_ecef(lon: float, lat: float) -> np.ndarray:
    """3x3 matrix whose columns are the east, north and up unit vectors (ECEF) of the local ENU
    frame at WGS84 ``lon``/``lat`` (degrees); up is the ellipsoid normal."""
    phi, lam = np.radians(lat), np.radians(lon)
    sp, cp, sl, cl = np.sin(phi), np.cos(phi), np.sin(lam), np.cos(lam)
    return np.array([[-sl, -sp * cl, cp * cl],
                     [cl, -sp * sl, cp * sl],
                     [0.0, cp, sp]])


def ecef_quaternion(q_enu: list[float], lon: float, lat: float) -> list[float]:
    """[x, y, z, w] of the rotation ``q_enu`` (given in the ENU frame at ``lon``/``lat``) as seen
    in ECEF axes: body -> ENU -> ECEF."""
    from scipy.spatial.transform import Rotation

    body_to_ecef = enu_axes_ecef(lon, lat) @ Rotation.from_quat(q_enu).as_matrix()
    q = Rotation.from_matrix(body_to_ecef).as_quat()
    return [float(x) for x in (q if q[3] >= 0 else -q)]


def enu_to_ecef_columns(lon: float, lat: float, ecef: np.ndarray) -> list[float]:
    """The 4x4 ENU -> ECEF transform at a point (ECEF ``ecef``, m) as 16 numbers in column-major
    order, as CesiumJS's ``Transforms.eastNorthUpToFixedFrame`` returns it."""
    m = np.eye(4)
    m[:3, :3] = enu_axes_ecef(lon, lat)
    m[:3, 3] = ecef
    return [float(x) for x in m.T.ravel()]
