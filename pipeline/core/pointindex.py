"""Points of a cloud inside polygons, without testing every point against every polygon (metres).

Points are sorted once by the column and row of a square grid; a polygon then reads only the
rows of grid cells its bounding box covers (one contiguous slice per grid column) and tests
those points exactly with shapely. Cost follows the points near each polygon, not
polygons x points.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry


class PointGridIndex:
    """A grid index over 2-D points ``x``, ``y`` (any planar frame; ENU here), cell ``size``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, size: float = 10.0) -> None:
        self.x, self.y, self.size = np.asarray(x, np.float64), np.asarray(y, np.float64), size
        self.col0 = int(np.floor(self.x.min() / size)) if len(self.x) else 0
        self.row0 = int(np.floor(self.y.min() / size)) if len(self.y) else 0
        cols = np.floor(self.x / size).astype(np.int64) - self.col0
        rows = np.floor(self.y / size).astype(np.int64) - self.row0
        self.nrows = int(rows.max()) + 1 if len(rows) else 1
        self.ncols = int(cols.max()) + 1 if len(cols) else 1
        key = cols * self.nrows + rows
        self.order = np.argsort(key, kind="stable")
        self.keys = key[self.order]

    def within(self, polygon: BaseGeometry) -> np.ndarray:
        """Sorted indices of the points in the interior of ``polygon``."""
        minx, miny, maxx, maxy = polygon.bounds
        c0 = max(int(np.floor(minx / self.size)) - self.col0, 0)
        c1 = min(int(np.floor(maxx / self.size)) - self.col0, self.ncols - 1)
        r0 = max(int(np.floor(miny / self.size)) - self.row0, 0)
        r1 = min(int(np.floor(maxy / self.size)) - self.row0, self.nrows - 1)
        if c0 > c1 or r0 > r1:
            return np.empty(0, np.int64)
        cols = np.arange(c0, c1 + 1)
        lo = np.searchsorted(self.keys, cols * self.nrows + r0, side="left")
        hi = np.searchsorted(self.keys, cols * self.nrows + r1, side="right")
        cand = np.concatenate([self.order[a:b] for a, b in zip(lo, hi, strict=True)])
        inside = shapely.contains_xy(polygon, self.x[cand], self.y[cand])
        return np.sort(cand[inside])
