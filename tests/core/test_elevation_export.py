"""DTM/DSM rasters: each cell the surface's height on its centre's plumb line, checked against
PROJ's own topocentric and geoid transforms; the GeoTIFF says its CRS and heights."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio

from pipeline.core.elevation_export import surface_heights, write_elevation
from pipeline.core.geodesy import GeoidModel, SiteFrame, ensure_proj_data
from pipeline.core.rastergrid import RasterGrid
from pipeline.core.shading import Scene

FRAME = SiteFrame(37.5770, 126.8898, 30.0)
CRS = pyproj.CRS("EPSG:5186")


def _plane(a: float, b: float, c: float, half: float = 700.0, n: int = 29) -> tuple[np.ndarray, np.ndarray]:
    """A TIN of the ENU plane u = a + b e + c n over +-``half`` m."""
    e, nn = np.meshgrid(np.linspace(-half, half, n), np.linspace(-half, half, n))
    v = np.column_stack([e.ravel(), nn.ravel(), a + b * e.ravel() + c * nn.ravel()])
    idx = np.arange(n * n).reshape(n, n)
    p, q, r, s = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return v, np.concatenate([np.column_stack([p, q, s]), np.column_stack([p, s, r])])


def _expected(lon: np.ndarray, lat: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """Ellipsoidal height where each place's normal meets the plane, through PROJ's topocentric
    conversion (not the frame's own): ENU is affine in h along a normal, so two heights solve it."""
    topo = pyproj.Transformer.from_pipeline(
        f"+proj=pipeline +step +proj=cart +ellps=WGS84 +step +proj=topocentric +ellps=WGS84 "
        f"+lat_0={FRAME.lat} +lon_0={FRAME.lon} +h_0={FRAME.height}")
    gap = []
    for h in (0.0, 100.0):
        e, n, u = topo.transform(lon, lat, np.full(lon.shape, h))
        gap.append(u - (a + b * e + c * n))
    return 0.0 + 100.0 * (0 - gap[0]) / (gap[1] - gap[0])


def test_cells_hold_the_height_on_their_plumb_line():
    v, f = _plane(40.0, 0.05, -0.02)
    grid = RasterGrid.covering(FRAME, CRS, np.array([-400.0, 400.0]), np.array([-300.0, 300.0]), 30.0, 10.0)
    h, = surface_heights([Scene([(v, f)])], FRAME, grid, None)
    lon, lat = grid.centres_geodetic()
    assert np.abs(h.ravel() - _expected(lon, lat, 40.0, 0.05, -0.02)).max() < 2e-3  # open3d casts in float32


def test_orthometric_cells_subtract_proj_s_egm96_undulation_and_misses_are_nodata(tmp_path):
    ensure_proj_data()
    v, f = _plane(40.0, 0.0, 0.0, half=300.0)
    grid = RasterGrid.covering(FRAME, CRS, np.array([-500.0, 500.0]), np.array([-100.0, 100.0]), 30.0, 20.0)
    geoid = GeoidModel.from_spec("egm96")
    h, = surface_heights([Scene([(v, f)])], FRAME, grid, geoid)
    lon, lat = grid.centres_geodetic()
    to_msl = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4326+5773", always_xy=True)
    hit = np.isfinite(h.ravel())
    assert 0 < hit.sum() < hit.size  # the plane spans 600 m of the grid's 1 km
    _, _, ortho = to_msl.transform(lon[hit], lat[hit], _expected(lon[hit], lat[hit], 40.0, 0.0, 0.0))
    assert np.abs(h.ravel()[hit] - ortho).max() < 2e-3
    written = write_elevation(tmp_path / "dtm.tif", h, grid, title="DTM", heights="orthometric",
                              geoid_label=geoid.info.label(), geoid_name=geoid.info.name)
    assert written.cells_with_data == hit.sum() and written.min == pytest.approx(np.nanmin(h))
    with rasterio.open(tmp_path / "dtm.tif") as src:
        crs = pyproj.CRS(src.crs.to_wkt())
        assert crs.is_compound and crs.sub_crs_list[0].to_epsg() == 5186 and crs.sub_crs_list[1].to_epsg() == 5773
        assert src.transform == grid.transform and (src.height, src.width) == (grid.rows, grid.cols)
        band = src.read(1)
        assert np.array_equal(np.isnan(band), np.isnan(h))
        assert np.abs(band[np.isfinite(band)] - h[np.isfinite(h)]).max() < 1e-5
        assert src.tags()["HEIGHTS"] == "orthometric" and "EGM96" in src.tags()["VERTICAL_REFERENCE"]
        assert src.units == ("metre",)
        # the centre of cell (row, col) in the file's CRS is the grid's
        x, y = src.xy(3, 7)
        cx, cy = grid.centres(3, 4)
        assert (x, y) == (cx[7], cy[7])


def test_a_dtm_and_dsm_on_one_grid_are_each_their_own_scenes_heights():
    """Two scenes on one set of plumb lines (the DTM's and the DSM's): the ground alone where the
    tower does not stand, the tower's roof where it does, as each scene gives them alone."""
    ground = _plane(40.0, 0.02, 0.0, half=300.0)
    v, f = _plane(0.0, 0.0, 0.0, half=40.0, n=3)
    tower = (v + [60.0, -20.0, 95.0], f)
    grid = RasterGrid.covering(FRAME, CRS, np.array([-250.0, 250.0]), np.array([-150.0, 150.0]), 30.0, 10.0)
    geoid = GeoidModel.from_spec("egm96")
    dtm, dsm = surface_heights([Scene([ground]), Scene([ground, tower])], FRAME, grid, geoid)
    (alone_dtm,), (alone_dsm,) = (surface_heights([Scene(m)], FRAME, grid, geoid) for m in ([ground], [ground, tower]))
    assert np.abs(dtm - alone_dtm).max() < 2e-3 and np.abs(dsm - alone_dsm).max() < 2e-3
    roof = dsm - dtm > 10.0
    assert 0 < roof.sum() < roof.size and np.array_equal(dsm[~roof], dtm[~roof])


def test_ellipsoidal_rasters_name_no_vertical_crs(tmp_path):
    grid = RasterGrid.covering(FRAME, CRS, np.array([-20.0, 20.0]), np.array([-20.0, 20.0]), 30.0, 10.0)
    h, = surface_heights([Scene([_plane(40.0, 0.0, 0.0, half=100.0)])], FRAME, grid, None)
    write_elevation(tmp_path / "dsm.tif", h, grid, title="DSM", heights="ellipsoidal", geoid_label=None,
                    geoid_name=None)
    with rasterio.open(tmp_path / "dsm.tif") as src:
        assert src.crs.to_epsg() == 5186 and src.tags()["HEIGHTS"] == "ellipsoidal"
        assert np.abs(src.read(1) - 70.0).max() < 0.01  # u = 40 m over an origin 30 m up, level this near
