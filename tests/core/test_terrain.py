"""Terrain TINs keep their vertical error bound on every post, leave nodata out, and the
heightfield is resampled and fused exactly where it can be checked."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.ground import Grid
from pipeline.core.terrain import (Heightfield, build_tin, fuse, rasterize, resample_grid, resample_lattice,
                                   sample_bilinear, vertical_error)
from tests.conftest import raycast_u


def _hills(rows=240, cols=300, seed=0):
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    u = 8 * np.sin(x / 37.0) * np.cos(y / 23.0) + 0.01 * x + np.random.default_rng(seed).normal(0, 0.02, (rows, cols))
    return Heightfield(Grid(-150.0, 120.0, 1.0, rows, cols), u)


@pytest.mark.parametrize("bound", [0.1, 0.5, 2.0])
def test_tin_stays_within_its_bound_on_every_post(bound):
    hf = _hills()
    tin = build_tin(hf, bound)
    measured, coverage = vertical_error(tin, hf)
    assert measured <= bound + 1e-4 and coverage == 1.0
    e, n = hf.posts()
    inner = (slice(1, -1), slice(1, -1))  # rays along the outline may miss in float32
    got = raycast_u(tin.vertices, tin.faces, e[inner].ravel(), n[inner].ravel())
    ok = np.isfinite(got)
    assert ok.mean() > 0.999
    assert np.abs(got[ok] - hf.u[inner].ravel()[ok]).max() <= bound + 1e-3
    p = tin.vertices[tin.faces]
    up = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])[:, 2]
    assert np.all(up > 0)  # counter-clockwise seen from above


def test_nodata_is_left_out_not_filled():
    hf = _hills()
    hf.u[100:140, 120:180] = np.nan
    hf.u[:, :3] = np.nan
    tin = build_tin(hf, 0.25)
    e, n = hf.posts()
    assert np.all(np.isfinite(tin.vertices))
    # no triangle covers a nodata post
    surface = rasterize(tin, hf.u.shape)
    assert not np.any(np.isfinite(surface) & np.isnan(hf.u))
    measured, coverage = vertical_error(tin, hf)
    assert measured <= 0.25 + 1e-4 and coverage > 0.98
    assert tin.vertices[:, 2].min() > np.nanmin(hf.u) - 1e-9  # nothing dragged to a fill value


def test_rasterize_matches_brute_force():
    hf = _hills(rows=40, cols=50)
    tin = build_tin(hf, 0.3)
    surface = rasterize(tin, hf.u.shape, chunk=997)  # many chunks
    assert np.all(np.isfinite(surface))
    e, n = hf.posts()
    ref = raycast_u(tin.vertices, tin.faces, e.ravel(), n.ravel())
    ok = np.isfinite(ref)
    assert ok.mean() > 0.9
    assert np.allclose(surface.ravel()[ok], ref[ok], atol=1e-3)


def test_resample_lattice_recovers_a_turned_scaled_raster():
    # a 5 m raster turned 0.8 degrees and shifted against ENU, carrying a plane
    rows, cols = 60, 80
    r, c = np.mgrid[0:rows, 0:cols].astype(float)
    ang = np.radians(0.8)
    east = 1000 + 5 * (c * np.cos(ang) - r * np.sin(ang))
    north = 2000 - 5 * (c * np.sin(ang) + r * np.cos(ang))

    def plane(e, n):
        return 0.01 * (e - 1000) - 0.02 * (n - 2000) + 30

    grid = Grid(1020.0, 1980.0, 1.0, 200, 300)
    got = resample_lattice(plane(east, north), east, north, grid)
    pe, pn = grid.centers()
    ok = np.isfinite(got)
    assert ok.mean() > 0.95
    assert np.abs(got[ok] - plane(pe, pn)[ok]).max() < 1e-9


def test_resample_grid_copies_aligned_posts_and_interpolates_others():
    src = Grid(0.0, 100.0, 1.0, 100, 100)
    e, n = src.centers()
    v = 0.5 * e + 0.25 * n
    dst = Grid(10.0, 90.0, 1.0, 50, 50)
    assert np.array_equal(resample_grid(v, src, dst), v[10:60, 10:60])
    half = Grid(10.0, 90.0, 2.0, 25, 25)
    de, dn = half.centers()
    assert np.allclose(resample_grid(v, src, half), 0.5 * de + 0.25 * dn)
    assert np.isnan(sample_bilinear(v, src, np.array([-5.0]), np.array([50.0])))[0]


def test_fuse_prefers_the_primary_and_blends_at_its_edge():
    secondary = np.zeros((50, 50))
    primary = np.full((50, 50), np.nan)
    primary[10:40, 10:40] = 1.0
    out = fuse(primary, secondary, 1.0, blend=5.0)
    assert out[25, 25] == 1.0 and out[0, 0] == 0.0
    assert 0.0 < out[10, 25] < 1.0  # the edge row is blended
    assert np.all(np.diff(out[25, 5:20]) >= 0)  # monotone, no step
