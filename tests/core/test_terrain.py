"""Terrain TINs keep their vertical error bound on every post, leave nodata out, and the
heightfield is resampled and fused exactly where it can be checked; TINs made in blocks share
their border vertices and meet without a crack."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pipeline.core.ground import Grid
from pipeline.core.terrain import (Heightfield, build_block_tin, build_tin, cliff_floor, fuse, post_error,
                                   profile_vertices, rasterize, resample_grid, resample_lattice, sample_bilinear,
                                   split_blocks, stitch_tins, vertical_error)
from tests.conftest import cracks, raycast_u


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


def test_rasterize_visits_a_huge_triangle_in_bounded_steps():
    """A coarse level's two triangles span the whole heightfield: the posts are still visited
    about ``chunk`` at a time (a 2 M-post heightfield cost 450 MB a worker before), and the
    surface is the plane they lie on."""
    from pipeline.core.terrain import _covered_posts

    hf = Heightfield(Grid(0.0, 600.0, 1.0, 600, 800), np.add.outer(np.arange(600.0), 0.5 * np.arange(800.0)))
    tin = build_tin(hf, 16.0)
    assert len(tin.faces) == 2
    steps = [len(rr) for rr, *_ in _covered_posts(tin.posts, tin.vertices[:, 2], tin.faces, 10_000)]
    assert len(steps) > 40 and max(steps) <= 10_000
    assert sum(steps) >= 600 * 800  # every post, those on the shared diagonal twice
    np.testing.assert_allclose(rasterize(tin, hf.u.shape, chunk=10_000), hf.u, atol=1e-9)


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


def test_resample_lattice_of_a_large_bent_raster_in_bands(monkeypatch):
    """A raster of 560,000 pixels (the affine guess fitted on a sample of them) whose lattice bends
    by up to a metre, resampled in bands of 5,000 posts: still on the plane it carries."""
    import pipeline.core.terrain as terrain

    monkeypatch.setattr(terrain, "RESAMPLE_POSTS", 5000)
    rows, cols = 800, 700
    r, c = np.mgrid[0:rows, 0:cols].astype(float)
    ang = np.radians(0.8)
    east = 1000 + 5 * (c * np.cos(ang) - r * np.sin(ang)) + 2e-6 * c ** 2
    north = 2000 - 5 * (c * np.sin(ang) + r * np.cos(ang)) + 1e-6 * r * c
    east[:40, :] = np.nan  # pixels whose place is unknown take no part in the fit

    def plane(e, n):
        return 0.01 * (e - 1000) - 0.02 * (n - 2000) + 30

    grid = Grid(1100.0, 1800.0, 2.0, 700, 1200)
    got = resample_lattice(plane(east, north), east, north, grid)
    pe, pn = grid.centers()
    ok = np.isfinite(got)
    assert ok.mean() > 0.8
    assert np.abs(got[ok] - plane(pe, pn)[ok]).max() < 1e-6


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


def test_a_profile_keeps_its_ends_and_passes_within_the_bound_of_every_post():
    rng = np.random.default_rng(3)
    z = np.cumsum(rng.normal(0, 0.4, 500))
    for bound in (0.05, 0.5, 3.0):
        keep = profile_vertices(z, bound)
        assert keep[0] == 0 and keep[-1] == len(z) - 1 and np.all(np.diff(keep) > 0)
        assert np.abs(np.interp(np.arange(len(z)), keep, z[keep]) - z).max() <= bound + 1e-12
    assert len(profile_vertices(z, 0.05)) > len(profile_vertices(z, 0.5)) > len(profile_vertices(z, 3.0))
    assert profile_vertices(np.linspace(0, 9, 50), 0.01).tolist() == [0, 49]  # a straight profile: its ends


def test_blocks_cover_every_post_once():
    for rows, cols, size in [(240, 300, 64), (65, 65, 64), (66, 2, 64), (2, 2, 1), (10, 7, 3)]:
        blocks = split_blocks(rows, cols, size)
        owned = np.zeros((rows, cols), int)
        for b in blocks:
            assert 2 <= b.shape[0] <= size + 1 and 2 <= b.shape[1] <= size + 1
            r, c = b.owned()
            owned[b.r0:b.r1 + 1, b.c0:b.c1 + 1][r, c] += 1
        assert np.all(owned == 1)
    with pytest.raises(ValueError):
        split_blocks(1, 10, 4)


def _block_tins(hf: Heightfield, bound: float, size: int):
    floor = cliff_floor(float(np.nanmin(hf.u)), bound)
    parts = []
    for b in split_blocks(*hf.u.shape, size):
        g = hf.grid
        sub = Heightfield(Grid(g.e0 + b.c0 * g.res, g.n1 - b.r0 * g.res, g.res, *b.shape),
                          hf.u[b.r0:b.r1 + 1, b.c0:b.c1 + 1].copy())
        tin = build_block_tin(sub, bound, floor)
        worst, covered, data = post_error(tin, sub, b.owned())
        assert worst <= bound + 1e-4  # each block within the bound (pydelatin checks in float32), borders too
        parts.append((b, tin))
    return parts


@pytest.mark.parametrize("bound", [0.1, 0.5, 2.0])
def test_blocks_share_their_border_vertices_and_meet_without_a_crack(bound):
    """Blocks of 64 posts over hills with a nodata hole across a block border and a nodata strip:
    both blocks of every shared row or column put the same vertices on it, the stitched TIN has no
    open edge away from the data's edge, keeps the bound on every post of the whole heightfield
    (measured independently by ray casting too) and is little larger than one TIN of it all."""
    hf = _hills()
    hf.u[100:140, 50:90] = np.nan  # across the border at column 64
    hf.u[:, :3] = np.nan
    parts = _block_tins(hf, bound, 64)
    assert len(parts) == 4 * 5
    on_line = {}
    for b, tin in parts:
        rc = tin.posts + [b.r0, b.c0]
        for axis, line, span in ((0, b.r0, (b.c0, b.c1)), (0, b.r1, (b.c0, b.c1)), (1, b.c0, (b.r0, b.r1)),
                                 (1, b.c1, (b.r0, b.r1))):
            on_line.setdefault((axis, line, span), []).append({tuple(p) for p in rc[rc[:, axis] == line].tolist()})
    shared = [sets for sets in on_line.values() if len(sets) == 2]
    assert len(shared) > 20 and all(a == b for a, b in shared)
    whole = stitch_tins(parts, hf.grid)
    assert len(cracks(whole.posts, whole.faces, np.isfinite(hf.u))) == 0
    measured, coverage = vertical_error(whole, hf)
    single = build_tin(hf, bound)
    assert measured <= bound + 1e-4 and coverage == pytest.approx(vertical_error(single, hf)[1], abs=0.002)
    # the borders cost a few triangles per block where the terrain is smooth, a tenth where it is not
    assert len(single.faces) <= len(whole.faces) <= 1.3 * len(single.faces) + 2 * len(parts)
    p = whole.vertices[whole.faces]
    up = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])[:, 2]
    assert np.all(up > 0)  # counter-clockwise seen from above, none degenerate
    e, n = hf.posts()
    # every post away from the data's edge (where float32 rays may slip off the outline)
    inner = ndimage.binary_erosion(np.isfinite(hf.u), np.ones((3, 3), bool), border_value=0)
    got = raycast_u(whole.vertices, whole.faces, e[inner], n[inner])
    assert np.all(np.isfinite(got)) and np.abs(got - hf.u[inner]).max() <= bound + 1e-3


def test_a_block_without_data_has_no_tin_and_the_others_still_stitch():
    hf = _hills(rows=100, cols=100)
    hf.u[:50, :50] = np.nan  # the first block of 49 spacings is all nodata but its far edges
    hf.u[:51, :51] = np.nan
    parts = _block_tins(hf, 0.25, 50)
    assert len(parts[0][1].faces) == 0 and all(len(t.faces) for _, t in parts[1:])
    whole = stitch_tins(parts, hf.grid)
    assert len(cracks(whole.posts, whole.faces, np.isfinite(hf.u))) == 0
    assert vertical_error(whole, hf)[0] <= 0.25 + 1e-4
