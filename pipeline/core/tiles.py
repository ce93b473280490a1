"""3D Tiles 1.1 structure: bounding boxes, transforms and tileset documents.

Boxes are the specification's 12-number form (centre, then three half-axis vectors) in the frame
of the tile that holds them, i.e. after that tile's ``transform`` is applied. Transforms are 4x4
column-vector matrices here and 16 numbers in column-major order in JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: a box may exceed its content by float rounding; this margin (m) absorbs it
BOX_MARGIN = 0.001


def aabb_box(lo: np.ndarray, hi: np.ndarray, margin: float = BOX_MARGIN) -> list[float]:
    """Axis-aligned box from min/max corners (same frame), grown by ``margin`` metres."""
    lo, hi = np.asarray(lo, np.float64) - margin, np.asarray(hi, np.float64) + margin
    c, h = (lo + hi) / 2, (hi - lo) / 2
    return [*c.tolist(), h[0], 0.0, 0.0, 0.0, h[1], 0.0, 0.0, 0.0, h[2]]


def box_parts(box: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(centre (3,), half-axes (3, 3) as rows) of a box."""
    b = np.asarray(box, np.float64)
    return b[:3], b[3:].reshape(3, 3)


def box_corners(box: list[float], transform: np.ndarray | None = None) -> np.ndarray:
    """The 8 corners (8, 3) of a box, mapped through ``transform`` when given."""
    c, axes = box_parts(box)
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], np.float64)
    pts = c + signs @ axes
    if transform is not None:
        pts = pts @ transform[:3, :3].T + transform[:3, 3]
    return pts


def transform_box(box: list[float], transform: np.ndarray) -> list[float]:
    """The same box expressed in the frame ``transform`` maps into (rigid transforms)."""
    c, axes = box_parts(box)
    c2 = transform[:3, :3] @ c + transform[:3, 3]
    axes2 = axes @ transform[:3, :3].T
    return [*c2.tolist(), *axes2.ravel().tolist()]


def points_in_box(points: np.ndarray, box: list[float], tol: float = 1e-6) -> np.ndarray:
    """Boolean (N,): which points (box's frame) lie inside the box, with ``tol`` metres slack.

    Works for oriented and for flat boxes (a zero half-axis): the points are expressed in the
    half-axes by least squares and must need no more than one of each, with no residual.
    """
    c, axes = box_parts(box)
    d = (np.asarray(points, np.float64) - c).T
    coef, *_ = np.linalg.lstsq(axes.T, d, rcond=None)
    residual = np.linalg.norm(axes.T @ coef - d, axis=0)
    lengths = np.linalg.norm(axes, axis=1)
    slack = np.where(lengths > 0, tol / np.where(lengths > 0, lengths, 1.0), 0.0)
    return np.all(np.abs(coef) <= 1.0 + slack[:, None], axis=0) & (residual <= tol)


def box_contains(outer: list[float], inner: list[float], inner_to_outer: np.ndarray | None = None,
                 tol: float = 1e-6) -> bool:
    """Whether box ``inner`` (mapped into ``outer``'s frame by ``inner_to_outer``) lies inside ``outer``."""
    return bool(np.all(points_in_box(box_corners(inner, inner_to_outer), outer, tol)))


def matrix_to_json(m: np.ndarray) -> list[float]:
    """A 4x4 matrix as the 16 column-major numbers of a tile ``transform``."""
    return [float(x) for x in np.asarray(m, np.float64).T.ravel()]


def matrix_from_json(values: list[float] | None) -> np.ndarray:
    """A tile ``transform`` (column-major, absent = identity) as a 4x4 matrix."""
    if values is None:
        return np.eye(4)
    return np.asarray(values, np.float64).reshape(4, 4).T


def translation(v: np.ndarray) -> np.ndarray:
    """4x4 translation by ``v`` (3,)."""
    m = np.eye(4)
    m[:3, 3] = v
    return m


def tileset_doc(root: dict[str, Any], geometric_error: float, **extra: Any) -> dict[str, Any]:
    """A 3D Tiles 1.1 tileset document."""
    doc: dict[str, Any] = {"asset": {"version": "1.1", "generator": "dmc-twin"},
                           "geometricError": float(geometric_error), "root": root}
    doc.update(extra)
    return doc
