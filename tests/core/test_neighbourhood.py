"""Neighbourhood measures against a brute-force reference (scipy's k-d tree in float64 and numpy's
eigh), on clouds with a known geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from pipeline.core.neighbourhood import (first_of_duplicates, first_per_key, mean_distance, mean_distance_bounds,
                                         smallest_eigenvalue, surface_variation)


@pytest.fixture(scope="module")
def cloud() -> np.ndarray:
    """A rough roof-and-canopy scene: a 40 m plane at 10 m and a 5 m ball of scatter on it (ENU, m)."""
    rng = np.random.default_rng(7)
    plane = np.column_stack([rng.uniform(0, 40, 20_000), rng.uniform(0, 40, 20_000), np.full(20_000, 10.0)])
    ball = rng.normal((20, 20, 14), 1.5, (5_000, 3))
    return np.concatenate([plane, ball]) + (312_000.0, 4_160_000.0, 0.0)


def test_mean_distance_matches_a_float64_query(cloud):
    cap = 0.3
    want = np.minimum(cKDTree(cloud).query(cloud, k=11)[0][:, 1:], cap).mean(1)
    got = mean_distance(cloud, cloud, 10, cap=cap)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert got.max() <= cap


def test_capped_mean_distance_needs_only_the_ring(cloud):
    """Queries of a block see their whole-cloud values when given the block and a ring of the cap."""
    cap = 1.0
    inside = (cloud[:, 0] < 15) & (cloud[:, 1] < 15)
    ring = (cloud[:, 0] < 15 + cap) & (cloud[:, 1] < 15 + cap)
    whole = mean_distance(cloud, cloud[inside], 10, cap=cap)
    part = mean_distance(cloud[ring], cloud[inside], 10, cap=cap)
    np.testing.assert_allclose(part, whole, atol=1e-6)


def test_mean_distance_bounds_are_exact_where_measured_and_above_elsewhere(cloud):
    cap = 2.0
    want = mean_distance(cloud, cloud, 10, cap=cap)
    asked = np.zeros(len(cloud), bool)
    asked[::10] = True
    got, exact = mean_distance_bounds(cloud, cloud, 10, cap, asked)
    assert got.dtype == np.float32 and np.all(exact[asked])
    assert np.array_equal(got[exact], want[exact])
    assert np.all(got[~exact] >= want[~exact])
    # most points are bounded, not measured, and the bounds stay near the values
    assert exact.mean() < 0.5
    assert np.median(got[~exact] / want[~exact]) < 2.5


def test_mean_distance_bounds_of_tiny_or_unsampled_clouds_are_exact():
    three = np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0]])
    got, exact = mean_distance_bounds(three, three, 10, 5.0, np.zeros(3, bool))
    assert exact.all() and np.array_equal(got, mean_distance(three, three, 10, cap=5.0))
    # nothing asked for: no measure to size the cubes by, so every point is measured
    line = np.column_stack([np.arange(50.0), np.zeros(50), np.zeros(50)])
    got, exact = mean_distance_bounds(line, line, 4, 5.0, np.zeros(50, bool))
    assert exact.all() and np.array_equal(got, mean_distance(line, line, 4, cap=5.0))


def test_surface_variation_matches_eigh_of_the_same_neighbours(cloud):
    queries = cloud[::97]
    idx = cKDTree(cloud).query(queries, k=11)[1][:, 1:]
    cov = np.array([np.cov(cloud[i].T, bias=True) for i in idx])
    ev = np.linalg.eigvalsh(cov)
    want = ev[:, 0] / ev.sum(1)
    got = surface_variation(cloud, queries, 10)
    np.testing.assert_allclose(got, want, atol=1e-3)
    on_plane = queries[:, 2] == 10.0
    far = np.linalg.norm(queries[:, :2] - (312_020.0, 4_160_020.0), axis=1) > 8
    assert np.all(got[on_plane & far] < 1e-4)
    assert np.median(got[~on_plane]) > 0.1  # scatter: near isotropic


def test_tiny_clouds():
    one = np.array([[1.0, 2.0, 3.0]])
    assert mean_distance(one, one, 10).tolist() == [0.0]
    assert surface_variation(one, one, 10).tolist() == [0.0]
    three = np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0]])
    np.testing.assert_allclose(mean_distance(three, three, 10), [1.5, (1 + 5 ** 0.5) / 2, (2 + 5 ** 0.5) / 2],
                               rtol=1e-6)
    assert surface_variation(three, three, 10).tolist() == [0.0, 0.0, 0.0]  # two neighbours: no plane yet
    empty = np.empty((0, 3))
    assert len(mean_distance(three, empty, 10)) == 0 and len(surface_variation(three, empty, 10)) == 0


def test_smallest_eigenvalue_matches_eigh():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(1000, 3, 3))
    m = a @ a.transpose(0, 2, 1)
    got = smallest_eigenvalue(m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 0, 1], m[:, 0, 2], m[:, 1, 2])
    np.testing.assert_allclose(got, np.linalg.eigvalsh(m)[:, 0], atol=1e-9)


def test_first_of_duplicates_keeps_the_first_copy():
    xyz = np.array([[1.0, 2, 3], [4, 5, 6], [1, 2, 3], [0.0, 0, 0], [4, 5, 6], [1, 2, 3.000001]])
    assert first_of_duplicates(xyz).tolist() == [0, 1, 3, 5]
    assert first_per_key(np.array([[1, 2, 3], [1, 2, 3], [2 ** 40, 0, -2 ** 40]])).tolist() == [0, 2]


def test_first_of_duplicates_matches_a_sort_on_many_copies():
    rng = np.random.default_rng(4)
    base = np.round(rng.uniform(0, 50, (20_000, 3)), 2)
    xyz = base[rng.integers(0, len(base), 100_000)]
    _, want = np.unique(xyz.view(np.dtype((np.void, 24))).ravel(), return_index=True)
    assert np.array_equal(first_of_duplicates(xyz), np.sort(want))


def test_first_of_duplicates_keeps_every_point_of_a_cloud_without_copies_and_finds_a_lone_copy():
    xyz = np.random.default_rng(5).uniform(0, 500, (200_000, 3))
    assert np.array_equal(first_of_duplicates(xyz), np.arange(len(xyz)))
    xyz[150_000] = xyz[7]
    assert np.array_equal(first_of_duplicates(xyz), np.delete(np.arange(len(xyz)), 150_000))


def test_mean_distance_bounds_measure_a_cube_for_its_bound_only_when_no_asked_point_lies_in_it(cloud):
    """With every third point of a surface asked for, most cubes hold one to stand for the others."""
    cap = 2.0
    roof = cloud[cloud[:, 2] == 10.0]
    asked = np.zeros(len(roof), bool)
    asked[::3] = True
    got, exact = mean_distance_bounds(roof, roof, 10, cap, asked)
    want = mean_distance(roof, roof, 10, cap=cap)
    assert np.array_equal(got[exact], want[exact]) and np.all(got[~exact] >= want[~exact])
    # taking each cube's first point, whether asked or not, measured 1.57 times as many
    assert exact.sum() < 1.4 * asked.sum()
