"""Elevation rasters for GIS: the DTM (bare earth) and DSM (earth and what stands on it) as
float32 GeoTIFFs in a projected CRS, sampled from the very meshes the 3D Tiles carry.

Each cell holds the height of the highest surface on the plumb line through its centre
(``core.drape``), so a GIS user reads the same ground and roof heights the twin shows and the
AR anchors use. Heights are metres: orthometric through the site's geoid model (named in the
file's tags and, for EGM96, in its vertical CRS) or ellipsoidal (WGS84), as configured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyproj
import rasterio

from pipeline.core.drape import drape_scenes
from pipeline.core.geodesy import GeoidModel, SiteFrame
from pipeline.core.rastergrid import RasterGrid
from pipeline.core.shading import Scene

#: vertical CRSs by geoid model name, for a compound CRS in the GeoTIFF (others: tags only)
VERTICAL_CRS = {"EGM96": 5773}


@dataclass(frozen=True)
class ElevationRaster:
    """What was written: the file, its grid, how its heights are referenced and its value range."""

    path: Path
    grid: RasterGrid
    heights: Literal["orthometric", "ellipsoidal"]
    vertical: str
    cells_with_data: int
    min: float | None
    max: float | None


def surface_heights(scenes: Sequence[Scene], frame: SiteFrame, grid: RasterGrid, geoid: GeoidModel | None,
                    track: Callable[[list[tuple[int, int]]], Iterable[tuple[int, int]]] = iter) -> list[np.ndarray]:
    """Per scene, (rows, cols) float32 height (m) of its highest surface at every cell centre:
    orthometric through ``geoid``, or ellipsoidal when it is None; NaN where the plumb line meets
    nothing. The scenes share the grid's plumb lines and geoid heights (a DTM and a DSM cost one
    set of them). Worked in blocks of rows; the rasters are float32, what the GeoTIFFs hold
    (30 micrometres at 500 m), so two of them take the memory one float64 raster took.
    ``track`` wraps the blocks (a progress bar)."""
    out = [np.full((grid.rows, grid.cols), np.nan, np.float32) for _ in scenes]
    for first, last in track(list(grid.row_blocks())):
        lon, lat = grid.centres_geodetic(first, last)
        heights = drape_scenes(scenes, frame, lon, lat)
        if geoid is not None:
            hit = np.any([np.isfinite(h) for h in heights], axis=0)
            undulation = np.full(len(lon), np.nan)
            undulation[hit] = geoid.undulation(lon[hit], lat[hit])
            heights = [h - undulation for h in heights]
        for raster, h in zip(out, heights, strict=True):
            raster[first:last] = h.reshape(last - first, grid.cols)
    return out


def write_elevation(path: Path, values: np.ndarray, grid: RasterGrid, *, title: str,
                    heights: Literal["orthometric", "ellipsoidal"], geoid_label: str | None,
                    geoid_name: str | None) -> ElevationRaster:
    """Write ``values`` (rows, cols; m; NaN: no data) as a deflate-compressed float32 GeoTIFF."""
    crs = grid.crs
    if heights == "orthometric":
        vertical = f"orthometric height (m) through {geoid_label}"
        code, vcode = crs.to_epsg(), VERTICAL_CRS.get(geoid_name or "")
        if code is not None and vcode is not None:
            crs = pyproj.CRS(f"EPSG:{code}+{vcode}")
    else:
        vertical = "ellipsoidal height (m) above the WGS84 ellipsoid"
    profile = {"driver": "GTiff", "width": grid.cols, "height": grid.rows, "count": 1, "dtype": "float32",
               "crs": crs.to_wkt(), "nodata": float("nan"), "compress": "deflate", "predictor": 3,
               "tiled": grid.cols >= 256 and grid.rows >= 256, "transform": grid.transform}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.asarray(values, np.float32), 1)
        dst.set_band_description(1, title)
        dst.units = ("metre",)
        dst.update_tags(TITLE=title, VERTICAL_REFERENCE=vertical, HEIGHTS=heights)
    good = np.isfinite(values)
    return ElevationRaster(path, grid, heights, vertical, int(good.sum()),
                           float(values[good].min()) if good.any() else None,
                           float(values[good].max()) if good.any() else None)
