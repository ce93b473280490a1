"""Source coordinates -> ENU by interpolation on an exactly transformed grid (metres).

Transforming every LiDAR point through PROJ (projection inverse, geoid grid, geodetic -> ENU) costs
about a microsecond a point, the largest single cost of georeferencing a city. The map is smooth
over a district, so, like GDAL's approximate transformer, we transform a grid of nodes exactly and
interpolate bilinearly between them. Unlike GDAL's error threshold in pixels, the grid here is
refined until the interpolation error, measured against the exact transform at every cell centre
and edge midpoint, is below a tolerance in metres (0.1 mm by default).

Heights enter linearly: ENU(lon, lat, h) = ENU(lon, lat, 0) + h * up(lon, lat), and h is affine in
the source z (h = z * unit + geoid undulation, or h = z * unit for ellipsoidal heights), so each
node stores ENU at z = 0 and the ENU change per unit of z; the result is exact in z.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: points per block of :meth:`GridWarp.apply` (its temporaries stay in the CPU's cache)
APPLY_BLOCK = 8192
#: exact transform: (x, y, z) arrays in source units -> (N, 3) ENU metres
Exact = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class PointMap(Protocol):
    """Anything that maps source x, y, z (arrays) to ENU (N, 3) metres."""

    def apply(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray: ...


@dataclass
class GridWarp:
    """Bilinear ENU interpolation over source (x, y) nodes; ``max_error_m`` was measured at fit time."""

    x0: float
    y0: float
    dx: float
    dy: float
    at_zero: np.ndarray      # (ny, nx, 3) ENU of the node at z = 0
    per_z: np.ndarray        # (ny, nx, 3) ENU change per unit of source z
    max_error_m: float

    def apply(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(N, 3) ENU metres of source points (x, y, z in source units)."""
        ny, nx = self.at_zero.shape[:2]
        coef = self._cell_table()
        # one small 1-D table per (ENU value, bilinear term): 24 gathers of 8 bytes a point from
        # tables that stay in cache, where gathering each point's whole (4, 6) block moved 192
        # bytes a point and took longer; same operations in the same order, so the same bits
        tables = [[np.ascontiguousarray(coef[:, j, k]) for j in range(4)] for k in range(6)]
        x, y, z = (np.asarray(a, np.float64) for a in (x, y, z))
        out = np.empty((len(x), 3))
        for s in range(0, len(x), APPLY_BLOCK):
            fx = (x[s:s + APPLY_BLOCK] - self.x0) / self.dx
            fy = (y[s:s + APPLY_BLOCK] - self.y0) / self.dy
            ix = np.clip(fx.astype(np.int64), 0, nx - 2)
            iy = np.clip(fy.astype(np.int64), 0, ny - 2)
            tx, ty = fx - ix, fy - iy
            cell = iy * (nx - 1) + ix
            zs = z[s:s + APPLY_BLOCK]
            for k in range(3):
                a0, a1, a2, a3 = (t.take(cell) for t in tables[k])
                b0, b1, b2, b3 = (t.take(cell) for t in tables[k + 3])
                out[s:s + APPLY_BLOCK, k] = (a0 + a1 * tx + (a2 + a3 * tx) * ty
                                             + zs * (b0 + b1 * tx + (b2 + b3 * tx) * ty))
        return out

    def _cell_table(self) -> np.ndarray:
        """(cells, 4, 6): per grid cell, the bilinear coefficients (constant, tx, ty, tx * ty)
        of ENU at z = 0 and of its change per unit z."""
        v = np.concatenate([self.at_zero, self.per_z], axis=2)
        v00, v01, v10, v11 = v[:-1, :-1], v[:-1, 1:], v[1:, :-1], v[1:, 1:]
        coef = np.stack([v00, v01 - v00, v10 - v00, v11 - v01 - v10 + v00], axis=-2)
        return np.ascontiguousarray(coef.reshape(-1, 4, 6))


def _nodes(lo: float, hi: float, n: int) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    return lo + span * np.arange(n) / (n - 1)


def fit_grid_warp(exact: Exact, bounds: tuple[float, float, float, float, float, float], *,
                  tol_m: float = 1e-4, start: int = 17, max_nodes: int = 1025) -> GridWarp | None:
    """A :class:`GridWarp` within ``tol_m`` of ``exact`` over ``bounds`` (xmin, ymin, zmin, xmax,
    ymax, zmax in source units), doubling the node density until it is; None if ``max_nodes`` per
    axis is not enough (then transform exactly)."""
    xmin, ymin, zmin, xmax, ymax, zmax = bounds
    n = start
    while n <= max_nodes:
        xs, ys = _nodes(xmin, xmax, n), _nodes(ymin, ymax, n)
        gx, gy = np.meshgrid(xs, ys)
        zero = exact(gx.ravel(), gy.ravel(), np.zeros(gx.size)).reshape(n, n, 3)
        one = exact(gx.ravel(), gy.ravel(), np.ones(gx.size)).reshape(n, n, 3)
        warp = GridWarp(float(xs[0]), float(ys[0]), float(xs[1] - xs[0]), float(ys[1] - ys[0]),
                        zero, one - zero, 0.0)
        # worst case of bilinear interpolation: cell centres and edge midpoints, at both z extremes
        mx, my = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
        probes = [np.meshgrid(mx, my), np.meshgrid(mx, ys), np.meshgrid(xs, my)]
        px = np.concatenate([p[0].ravel() for p in probes])
        py = np.concatenate([p[1].ravel() for p in probes])
        err = 0.0
        for z in (zmin, zmax):
            pz = np.full(px.size, z)
            err = max(err, float(np.abs(warp.apply(px, py, pz) - exact(px, py, pz)).max()))
        if err <= tol_m:
            warp.max_error_m = err
            return warp
        n = 2 * n - 1
    return None


@dataclass
class AffineMap:
    """ENU = matrix @ (x, y, z, 1): for scanner frames fitted to control and for geocentric input."""

    matrix: np.ndarray   # (4, 4)

    def apply(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(N, 3) ENU metres."""
        m = self.matrix
        xyz = np.column_stack([x, y, z]).astype(np.float64)
        return xyz @ m[:3, :3].T + m[:3, 3]
