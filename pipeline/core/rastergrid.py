"""A north-up raster grid in a projected CRS laid over a part of the site.

The GIS rasters the pipeline writes (the sunlight ground grid, the DTM and DSM) are grids of the
CRS a GIS user works in, not of the site's ENU frame: their cells are square in that CRS's own
units (a grid in US feet has cells of as many feet) and their edges fall on whole multiples of
the cell size, so rasters of different runs and layers line up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyproj
from affine import Affine

from pipeline.core.geodesy import SiteFrame


@dataclass(frozen=True)
class RasterGrid:
    """``rows`` x ``cols`` square cells of ``cell`` CRS units, the north-west corner at
    (``west``, ``north``) in ``crs`` (projected, horizontal only); row 0 is the northernmost."""

    crs: pyproj.CRS
    west: float
    north: float
    cell: float
    rows: int
    cols: int

    @classmethod
    def covering(cls, frame: SiteFrame, crs: pyproj.CRS, e: np.ndarray, n: np.ndarray, h0: float,
                 spacing_m: float) -> RasterGrid:
        """The smallest grid of ``spacing_m`` metres (in the CRS's unit) whose cells cover the
        plan ENU points ``e``, ``n`` (m), taken at ellipsoidal height ``h0`` (m)."""
        lon, lat = frame.plan_to_geodetic(np.asarray(e, np.float64), np.asarray(n, np.float64), h0)
        x, y = _to_crs(crs).transform(lon, lat, errcheck=True)
        s = spacing_m / crs.axis_info[0].unit_conversion_factor
        west, east = np.floor(np.min(x) / s) * s, np.ceil(np.max(x) / s) * s
        south, north = np.floor(np.min(y) / s) * s, np.ceil(np.max(y) / s) * s
        return cls(crs, float(west), float(north), float(s), int(round((north - south) / s)),
                   int(round((east - west) / s)))

    @property
    def transform(self) -> Affine:
        """The GeoTIFF's affine transform (pixel corner to CRS coordinates)."""
        return Affine(self.cell, 0.0, self.west, 0.0, -self.cell, self.north)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in CRS units."""
        return (self.west, self.north - self.rows * self.cell, self.west + self.cols * self.cell, self.north)

    def centres(self, first_row: int = 0, last_row: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """CRS x, y of the cell centres of rows ``first_row`` to ``last_row`` (exclusive), row-major."""
        last = self.rows if last_row is None else last_row
        gx, gy = np.meshgrid(self.west + (np.arange(self.cols) + 0.5) * self.cell,
                             self.north - (np.arange(first_row, last) + 0.5) * self.cell)
        return gx.ravel(), gy.ravel()

    def centres_geodetic(self, first_row: int = 0, last_row: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitude, latitude (degrees) of the cell centres of those rows, row-major."""
        x, y = self.centres(first_row, last_row)
        lon, lat = _to_crs(self.crs).transform(x, y, direction="INVERSE", errcheck=True)
        return np.asarray(lon), np.asarray(lat)

    def centres_enu(self, frame: SiteFrame, h0: float) -> np.ndarray:
        """Plan ENU (N, 2) m of every cell centre, row-major, taken at ellipsoidal height ``h0``."""
        lon, lat = self.centres_geodetic()
        return frame.geodetic_to_enu(lon, lat, np.full(lon.shape, h0))[:, :2]

    def row_blocks(self, cells: int = 1 << 20) -> Iterator[tuple[int, int]]:
        """(first, last) row ranges of about ``cells`` cells each: work in bounded memory."""
        step = max(1, cells // max(self.cols, 1))
        for first in range(0, self.rows, step):
            yield first, min(first + step, self.rows)


def _to_crs(crs: pyproj.CRS) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
