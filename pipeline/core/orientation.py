"""Orientations for AR anchors: headings as quaternions in ENU and in East-Up-South (ARCore).

Quaternions are [x, y, z, w]. ENU identity: local x east, y north, z up. EUS identity (ARCore
Geospatial API): x east, y up, z south. A heading is degrees clockwise from true north, i.e. a
rotation about the up axis by -heading; in both frames that is a right-handed rotation about up
(ENU's z, EUS's y), so the angle is the same and only the axis slot differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from pipeline.core.geodesy import enu_axes_ecef


def heading_quaternions(heading_deg: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ENU quaternions, EUS quaternions), (..., 4) each, turning the anchor's forward axis to
    ``heading_deg`` (a number or an array of them)."""
    half = -np.radians(np.asarray(heading_deg, np.float64)) / 2.0
    s, c, z = np.sin(half), np.cos(half), np.zeros_like(half)
    return np.stack([z, z, s, c], axis=-1), np.stack([z, s, z, c], axis=-1)


def rotate(q: list[float], v: np.ndarray) -> np.ndarray:
    """Rotate vector ``v`` (3,) by unit quaternion ``q`` [x, y, z, w]."""
    x, y, z, w = q
    u = np.array([x, y, z])
    v = np.asarray(v, np.float64)
    return 2.0 * np.dot(u, v) * u + (w * w - np.dot(u, u)) * v + 2.0 * w * np.cross(u, v)


def polygon_headings(outlines: Sequence[shapely.Geometry] | np.ndarray) -> np.ndarray:
    """Headings (degrees clockwise from north, in [0, 180)) of the long axis of each outline's
    minimum rotated rectangle (plan ENU east/north); 0 where the outline has no area."""
    rects = shapely.minimum_rotated_rectangle(np.asarray(outlines, dtype=object))
    out = np.zeros(len(rects))
    # a rectangle is a polygon of five points; a degenerate outline's is a line or a point
    ok = (shapely.get_type_id(rects) == 3) & (shapely.get_num_coordinates(rects) == 5)
    c = shapely.get_coordinates(shapely.get_exterior_ring(rects[ok])).reshape(-1, 5, 2)
    a, b = c[:, 1] - c[:, 0], c[:, 2] - c[:, 1]
    long_edge = np.where((np.hypot(*a.T) >= np.hypot(*b.T))[:, None], a, b)
    out[ok] = np.degrees(np.arctan2(long_edge[:, 0], long_edge[:, 1])) % 180.0
    return out


def ecef_quaternion(q_enu: np.ndarray | list[float], lon: float | np.ndarray, lat: float | np.ndarray) -> np.ndarray:
    """[x, y, z, w] (..., 4) of the rotations ``q_enu`` (given in the ENU frame at ``lon``/``lat``)
    as seen in ECEF axes: body -> ENU -> ECEF; w >= 0."""
    from scipy.spatial.transform import Rotation

    q_enu = np.asarray(q_enu, np.float64)
    axes = enu_axes_ecef(lon, lat)
    body_to_ecef = axes @ Rotation.from_quat(q_enu.reshape(-1, 4)).as_matrix().reshape(axes.shape)
    q = Rotation.from_matrix(body_to_ecef.reshape(-1, 3, 3)).as_quat()
    q = np.where(q[:, 3:] >= 0, q, -q)
    return q.reshape(q_enu.shape)


def enu_to_ecef_columns(lon: float | np.ndarray, lat: float | np.ndarray, ecef: np.ndarray) -> np.ndarray:
    """The 4x4 ENU -> ECEF transforms at points (ECEF ``ecef`` (..., 3), m) as (..., 16) numbers
    in column-major order, as CesiumJS's ``Transforms.eastNorthUpToFixedFrame`` returns them."""
    axes = enu_axes_ecef(lon, lat)
    ecef = np.asarray(ecef, np.float64)
    m = np.zeros((*axes.shape[:-2], 4, 4))
    m[..., :3, :3] = axes
    m[..., :3, 3] = ecef
    m[..., 3, 3] = 1.0
    return np.swapaxes(m, -1, -2).reshape(*axes.shape[:-2], 16)
