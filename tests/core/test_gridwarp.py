"""The interpolated source -> ENU map against PROJ point by point."""

from __future__ import annotations

import numpy as np
import pyproj

from pipeline.core.geodesy import GeoidModel, SiteFrame, ellipsoidal_heights, source_to_lonlat
from pipeline.core.gridwarp import AffineMap, fit_grid_warp

CRS = pyproj.CRS("EPSG:5186+5773")


def _exact(frame: SiteFrame, geoid: GeoidModel):
    def f(x, y, z):
        lon, lat = source_to_lonlat(CRS, x, y)
        h = ellipsoidal_heights(CRS, z, geoid.undulation(lon, lat), heights="orthometric")
        return frame.geodetic_to_enu(lon, lat, h)
    return f


def test_grid_matches_proj_within_a_tenth_of_a_millimetre():
    frame = SiteFrame(37.5770, 126.8898)
    exact = _exact(frame, GeoidModel.from_spec("egm96"))
    # a 6 km square around the site, from below sea level to a skyscraper's roof
    bounds = (187000.0, 550000.0, -30.0, 193000.0, 556000.0, 560.0)
    warp = fit_grid_warp(exact, bounds)
    assert warp is not None and warp.max_error_m <= 1e-4
    rng = np.random.default_rng(11)
    x, y, z = (rng.uniform(bounds[i], bounds[i + 3], 200_000) for i in range(3))
    err = np.abs(warp.apply(x, y, z) - exact(x, y, z)).max()
    assert err < 1e-4
    # and independently of our own exact path: PROJ's pipeline straight to ECEF
    to_ecef = pyproj.Transformer.from_crs(CRS, "EPSG:4978", always_xy=True)
    ecef = np.column_stack(to_ecef.transform(x[:1000], y[:1000], z[:1000]))
    assert np.abs(warp.apply(x[:1000], y[:1000], z[:1000]) - frame.ecef_to_enu(ecef)).max() < 5e-3


def test_tolerance_that_cannot_be_met_gives_none():
    def curved(x, y, z):
        return np.column_stack([np.sin(x), np.cos(y), z])
    assert fit_grid_warp(curved, (0, 0, 0, 1000, 1000, 1), tol_m=1e-6, max_nodes=65) is None


def test_affine_map():
    m = np.eye(4)
    m[:3, 3] = [1, 2, 3]
    m[2, 2] = 0.3048
    out = AffineMap(m).apply(np.array([1.0]), np.array([1.0]), np.array([10.0]))
    assert np.allclose(out, [[2, 3, 6.048]])
