"""Triangle meshes for the twin: terrain grids and extruded building solids (ENU metres).

Meshes are plain arrays: ``vertices`` (V, 3) float64 ENU and ``faces`` (F, 3) int32, counter-
clockwise seen from outside (normals point out / up).
"""

from __future__ import annotations

import mapbox_earcut
import numpy as np


def grid_faces(rows: int, cols: int) -> np.ndarray:
    """Triangles (F, 3) of a rows x cols vertex grid (row 0 north, col 0 west), CCW seen from above.

    Each cell (NW a, NE b, SW c, SE d) splits into (a, c, b) and (b, c, d).
    """
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (r * cols + c).ravel()
    b, cc = a + 1, a + cols
    d = cc + 1
    return np.concatenate([np.column_stack([a, cc, b]), np.column_stack([b, cc, d])]).astype(np.int64)


def grid_mesh(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mesh of a (rows, cols, 3) vertex grid; triangles touching a NaN vertex are dropped and
    unused vertices removed."""
    rows, cols, _ = points.shape
    verts = points.reshape(-1, 3)
    faces = grid_faces(rows, cols)
    valid = np.all(np.isfinite(verts), axis=1)
    faces = faces[np.all(valid[faces], axis=1)]
    used = np.unique(faces)
    remap = np.full(len(verts), -1, np.int64)
    remap[used] = np.arange(len(used))
    return verts[used], remap[faces].astype(np.int32)


def coarse_indices(n: int, step: int) -> np.ndarray:
    """Every ``step``-th index of 0..n-1, always including the last."""
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def coarse_grid_error(points: np.ndarray, rows_idx: np.ndarray, cols_idx: np.ndarray) -> float:
    """Max vertical (U) distance (m) between a full grid and its coarse version at every full vertex.

    The coarse surface is interpolated with the same triangle split as :func:`grid_faces`.
    Cells with a NaN corner are skipped (they are not part of either mesh).
    """
    rows, cols, _ = points.shape
    u = points[..., 2]
    ri = np.clip(np.searchsorted(rows_idx, np.arange(rows), side="right") - 1, 0, len(rows_idx) - 2)
    ci = np.clip(np.searchsorted(cols_idx, np.arange(cols), side="right") - 1, 0, len(cols_idx) - 2)
    r0, r1 = rows_idx[ri], rows_idx[ri + 1]
    c0, c1 = cols_idx[ci], cols_idx[ci + 1]
    fr = ((np.arange(rows) - r0) / (r1 - r0))[:, None]
    fc = ((np.arange(cols) - c0) / (c1 - c0))[None, :]
    A = u[np.ix_(r0, c0)]
    B = u[np.ix_(r0, c1)]
    C = u[np.ix_(r1, c0)]
    D = u[np.ix_(r1, c1)]
    upper = fr + fc <= 1.0
    interp = np.where(upper, A + fr * (C - A) + fc * (B - A),
                      D + (1 - fr) * (B - D) + (1 - fc) * (C - D))
    err = np.abs(u - interp)
    return float(np.nanmax(err)) if np.any(np.isfinite(err)) else 0.0


def _signed_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def prism(rings_xy: list[np.ndarray], bottom: list[np.ndarray], top: list[np.ndarray]
          ) -> tuple[np.ndarray, np.ndarray]:
    """A closed solid between a floor and a roof polygon with holes.

    ``rings_xy``: exterior then holes, (k, 2) plan coordinates without the closing vertex, used
    to triangulate the caps; ``bottom``/``top``: matching (k, 3) positions of each ring's floor
    and roof vertices. Vertices are shared, so the result is watertight; faces face outward.
    """
    rings_xy = [np.asarray(r, np.float64) for r in rings_xy]
    bottom = [np.asarray(b, np.float64) for b in bottom]
    top = [np.asarray(t, np.float64) for t in top]
    # exterior counter-clockwise, holes clockwise: then the inside is left of every edge
    for i, r in enumerate(rings_xy):
        want_ccw = i == 0
        if (_signed_area(r) > 0) != want_ccw:
            rings_xy[i], bottom[i], top[i] = r[::-1], bottom[i][::-1], top[i][::-1]
    sizes = [len(r) for r in rings_xy]
    n = sum(sizes)
    verts = np.concatenate(bottom + top)
    flat_xy = np.concatenate(rings_xy)
    tri = np.asarray(mapbox_earcut.triangulate_float64(flat_xy, np.cumsum(sizes).astype(np.uint32)),
                     np.int64).reshape(-1, 3)
    p = flat_xy[tri]
    cross = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
             - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    tri[cross < 0] = tri[cross < 0][:, ::-1]
    roof = tri + n
    floor = tri[:, ::-1]
    walls = []
    start = 0
    for k in sizes:
        i = np.arange(start, start + k)
        j = np.roll(i, -1)
        walls.append(np.column_stack([i, j, j + n]))
        walls.append(np.column_stack([i, j + n, i + n]))
        start += k
    faces = np.concatenate([roof, floor, *walls]).astype(np.int32)
    return verts, faces


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals (F, 3) of CCW faces."""
    v = vertices[faces]
    nrm = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    length = np.linalg.norm(nrm, axis=1, keepdims=True)
    return nrm / np.where(length == 0, 1.0, length)
