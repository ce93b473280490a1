"""Elevation rasters (GeoTIFF) read with rasterio."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import rasterio
from rasterio.errors import RasterioIOError

from pipeline.core.geodesy import parse_crs
from pipeline.errors import CRSError, InputError


@dataclass
class Elevation:
    """A single-band elevation grid: ``values`` (rows, cols) float64 metres, NaN where nodata."""

    values: np.ndarray
    transform: rasterio.Affine   # pixel (col, row) -> CRS x, y of the pixel's upper-left corner
    crs: pyproj.CRS

    def pixel_centers(self) -> tuple[np.ndarray, np.ndarray]:
        """CRS x, y (rows, cols) of every pixel centre."""
        rows, cols = self.values.shape
        c, r = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
        a = self.transform
        return a.a * c + a.b * r + a.c, a.d * c + a.e * r + a.f

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear heights at CRS ``x, y`` between pixel centres; NaN outside or next to nodata."""
        inv = ~self.transform
        col = inv.a * np.asarray(x) + inv.b * np.asarray(y) + inv.c - 0.5
        row = inv.d * np.asarray(x) + inv.e * np.asarray(y) + inv.f - 0.5
        rows, cols = self.values.shape
        c0 = np.clip(np.floor(col).astype(int), 0, cols - 2)
        r0 = np.clip(np.floor(row).astype(int), 0, rows - 2)
        fc, fr = col - c0, row - r0
        v = self.values
        out = ((1 - fr) * ((1 - fc) * v[r0, c0] + fc * v[r0, c0 + 1])
               + fr * ((1 - fc) * v[r0 + 1, c0] + fc * v[r0 + 1, c0 + 1]))
        outside = (col < 0) | (row < 0) | (col > cols - 1) | (row > rows - 1)
        return np.where(outside, np.nan, out)


def read_elevation(path: str | Path, crs: str | None = None, default_crs: str | None = None) -> Elevation:
    """Read band 1 of a GeoTIFF; ``crs`` overrides the file's CRS, ``default_crs`` fills a missing one."""
    path = Path(path)
    if not path.is_file():
        raise InputError("raster file not found", path=path)
    try:
        with rasterio.open(path) as src:
            values = src.read(1).astype(np.float64)
            nodata = src.nodata
            transform = src.transform
            file_crs = src.crs
    except RasterioIOError as exc:
        raise InputError(f"not a readable raster ({exc})", path=path) from None
    if nodata is not None:
        values[values == nodata] = np.nan
    values[~np.isfinite(values)] = np.nan
    if crs:
        out_crs = parse_crs(crs, path=path)
    elif file_crs is not None:
        out_crs = parse_crs(file_crs.to_wkt(), path=path)
    elif default_crs:
        out_crs = parse_crs(default_crs, path=path)
    else:
        raise CRSError("raster has no CRS; set the input's crs (or site.crs) in the config", path=path)
    if transform.is_identity:
        raise CRSError("raster has no geotransform", path=path)
    if np.all(np.isnan(values)):
        raise InputError("raster holds only nodata", path=path)
    return Elevation(values, transform, out_crs)
