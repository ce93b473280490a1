"""Elevation rasters (GeoTIFF) read with rasterio."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import rasterio
from rasterio.crs import CRS as RioCRS
from rasterio.errors import RasterioError
from rasterio.transform import from_origin
from rasterio.windows import Window

from pipeline.core.budget import check_count
from pipeline.core.geodesy import parse_crs
from pipeline.core.ground import Grid
from pipeline.errors import CRSError, InputError

#: nodata value of the ENU rasters the pipeline writes
ENU_NODATA = -9999.0


@dataclass
class Elevation:
    """A single-band elevation grid: ``values`` (rows, cols) float64 metres, NaN where nodata."""

    values: np.ndarray
    transform: rasterio.Affine   # pixel (col, row) -> CRS x, y of the pixel's upper-left corner
    crs: pyproj.CRS

    def pixel_centers(self, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """CRS x, y (rows, cols) of every pixel centre, or of those in ``rows``."""
        height, cols = self.values.shape
        c, r = np.meshgrid(np.arange(cols) + 0.5, np.arange(height)[rows] + 0.5)
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
            # every pixel becomes a float64 height, its ENU position and the resampling's weights
            check_count("DEM pixels", src.width * src.height, 64, path=path,
                        hint="resample it to a coarser grid first (e.g. gdalwarp -tr)")
            values = src.read(1).astype(np.float64)
            nodata = src.nodata
            transform = src.transform
            file_crs = src.crs
    except RasterioError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"not a readable raster ({first})", path=path) from None
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


def write_enu_raster(path: str | Path, grid: Grid, values: np.ndarray, origin: dict[str, float], what: str) -> None:
    """Write ENU U values (rows, cols; NaN = nodata) on ``grid`` as a float32 GeoTIFF.

    The CRS is the orthographic projection at the site ``origin`` (``lat``, ``lon``, ``height``),
    which matches ENU E/N to well under a millimetre within 2 km; tags say the values are ENU U
    metres of ``what``, not heights.
    """
    crs = RioCRS.from_proj4(f"+proj=ortho +lat_0={origin['lat']} +lon_0={origin['lon']} +ellps=WGS84 +units=m")
    profile = dict(driver="GTiff", width=grid.cols, height=grid.rows, count=1, dtype="float32",
                   crs=crs, transform=from_origin(grid.e0, grid.n1, grid.res, grid.res),
                   nodata=ENU_NODATA, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                   predictor=3)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.where(np.isnan(values), ENU_NODATA, values).astype(np.float32), 1)
        dst.update_tags(FRAME="ENU", VALUES=f"U metres (ENU up) of {what}, not a height",
                        ORIGIN=f"{origin['lat']},{origin['lon']},{origin.get('height', 0.0)}")


class EnuRaster:
    """A raster from :func:`write_enu_raster`, open for reading window after window (opening a
    GeoTIFF costs milliseconds: a stage reading thousands of windows keeps it open)."""

    def __init__(self, path: str | Path) -> None:
        self._src = rasterio.open(path)

    def __enter__(self) -> EnuRaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._src.close()

    def read(self, bounds: tuple[float, float, float, float] | None = None) -> tuple[Grid, np.ndarray]:
        """(grid, U values float64 with NaN for nodata); ``bounds`` (E min, N min, E max, N max)
        reads only the cells that cover them."""
        src = self._src
        t = src.transform
        res = float(t.a)
        r0, c0, r1, c1 = 0, 0, src.height, src.width
        if bounds is not None:
            c0 = max(int(np.floor((bounds[0] - t.c) / res)) - 1, 0)
            c1 = min(int(np.ceil((bounds[2] - t.c) / res)) + 1, src.width)
            r0 = max(int(np.floor((t.f - bounds[3]) / res)) - 1, 0)
            r1 = min(int(np.ceil((t.f - bounds[1]) / res)) + 1, src.height)
            if c0 >= c1 or r0 >= r1:
                return Grid(float(t.c), float(t.f), res, 0, 0), np.empty((0, 0))
        return self.read_cells(r0, c0, r1 - r0, c1 - c0)

    def read_cells(self, row: int, col: int, rows: int, cols: int) -> tuple[Grid, np.ndarray]:
        """(grid, U values float64 with NaN for nodata) of ``rows`` x ``cols`` cells from cell
        (``row``, ``col``)."""
        src = self._src
        t = src.transform
        res = float(t.a)
        values = src.read(1, window=Window(col, row, cols, rows)).astype(np.float64)
        if src.nodata is not None:
            values[values == src.nodata] = np.nan
        return Grid(float(t.c + col * res), float(t.f - row * res), res, rows, cols), values


def read_enu_raster(path: str | Path, bounds: tuple[float, float, float, float] | None = None
                    ) -> tuple[Grid, np.ndarray]:
    """(grid, U values float64 with NaN for nodata) of a raster from :func:`write_enu_raster`;
    ``bounds`` (E min, N min, E max, N max) reads only the cells that cover them."""
    with EnuRaster(path) as raster:
        return raster.read(bounds)
