"""Raster grids in a GIS CRS over the site: aligned, covering, in the CRS's own unit."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest

from pipeline.core.geodesy import SiteFrame
from pipeline.core.rastergrid import RasterGrid

FRAME = SiteFrame(37.5770, 126.8898, 30.0)


def test_a_grid_covers_the_points_on_whole_multiples_of_its_cell():
    e, n = np.array([-812.3, 640.2, 17.0]), np.array([-95.0, 433.7, -420.5])
    crs = pyproj.CRS("EPSG:5186")
    grid = RasterGrid.covering(FRAME, crs, e, n, 30.0, 2.0)
    assert grid.cell == 2.0
    assert grid.west % 2.0 == 0 and grid.north % 2.0 == 0
    lon, lat = FRAME.plan_to_geodetic(e, n, 30.0)
    x, y = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    west, south, east, north = grid.bounds
    assert (west <= x).all() and (x <= east).all() and (south <= y).all() and (y <= north).all()
    assert east - x.max() < 2.0 and x.min() - west < 2.0 and north - y.max() < 2.0 and y.min() - south < 2.0
    cx, cy = grid.centres()
    assert cx.shape == (grid.rows * grid.cols,)
    assert (cx[0], cy[0]) == (grid.west + 1.0, grid.north - 1.0)  # row-major from the north-west
    assert grid.transform @ (0.5, 0.5) == (cx[0], cy[0])


def test_cells_in_a_foot_crs_are_as_many_feet():
    crs = pyproj.CRS("EPSG:2229")  # NAD83 / California zone 5 (ftUS)
    frame = SiteFrame(34.05, -118.25, 100.0)
    grid = RasterGrid.covering(frame, crs, np.array([-100.0, 100.0]), np.array([-100.0, 100.0]), 100.0, 1.0)
    assert grid.cell == pytest.approx(1.0 / (1200 / 3937))
    width_m = grid.cols * grid.cell * 1200 / 3937
    assert 200.0 <= width_m <= 200.0 + 2 * 1.0  # the span, rounded out to whole cells at each edge


def test_centres_in_wgs84_and_in_enu_are_the_crs_centres():
    crs = pyproj.CRS("EPSG:5186")
    grid = RasterGrid.covering(FRAME, crs, np.array([-50.0, 50.0]), np.array([-30.0, 30.0]), 30.0, 5.0)
    lon, lat = grid.centres_geodetic()
    x, y = grid.centres()
    back = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    assert np.abs(back[0] - x).max() < 1e-6 and np.abs(back[1] - y).max() < 1e-6
    en = grid.centres_enu(FRAME, 30.0)
    assert np.allclose(FRAME.geodetic_to_enu(lon, lat, np.full(lon.shape, 30.0))[:, :2], en)
    blocks = list(grid.row_blocks(cells=grid.cols * 3))
    assert blocks[0] == (0, 3) and blocks[-1][1] == grid.rows
    assert sum(b - a for a, b in blocks) == grid.rows
