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
        fx = (np.asarray(x, np.float64) - self.x0) / self.dx
        fy = (np.asarray(y, np.float64) - self.y0) / self.dy
        ix = np.clip(np.floor(fx), 0, nx - 2).astype(np.int64)
        iy = np.clip(np.floor(fy), 0, ny - 2).astype(np.int64)
        tx, ty = fx - ix, fy - iy
        w00, w01, w10, w11 = (1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty
        k = iy * nx + ix
        z = np.asarray(z, np.float64)
        out = np.empty((len(k), 3))
        for c in range(3):
            a = self.at_zero[..., c].ravel()
            b = self.per_z[..., c].ravel()
            out[:, c] = (w00 * (a[k] + z * b[k]) + w01 * (a[k + 1] + z * b[k + 1])
                         + w10 * (a[k + nx] + z * b[k + nx]) + w11 * (a[k + nx + 1] + z * b[k + nx + 1]))
        return out


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
