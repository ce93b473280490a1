"""Per-cell reductions, and the morphological ground filter on a synthetic block with a building."""

from __future__ import annotations

import numpy as np

from pipeline.core.ground import Grid, cell_extreme, cell_min, fill_linear, smrf_ground


def test_smrf_separates_building_from_sloped_ground():
    rng = np.random.default_rng(3)
    e = rng.uniform(0, 200, 200_000)
    n = rng.uniform(0, 200, 200_000)
    ground = 10 + 0.05 * e + 0.5 * np.sin(n / 20)
    z = ground.copy()
    bldg = (e > 60) & (e < 120) & (n > 50) & (n < 100)
    z[bldg] += 25.0
    grid = Grid.covering(e, n, 1.0)
    is_ground = smrf_ground(grid, cell_min(grid, e, n, z), slope=0.3, max_window=80.0)
    surface = fill_linear(grid, np.where(is_ground, cell_min(grid, e, n, z), np.nan))
    hag = z - grid.sample(surface, e, n)
    assert np.mean(np.abs(hag[~bldg]) < 0.3) > 0.99
    assert np.all(hag[bldg] > 20.0)


def test_cell_extreme_gives_each_cells_lowest_and_highest_and_nan_where_empty():
    rng = np.random.default_rng(8)
    flat = rng.integers(0, 40, 1_000)
    flat = flat[flat % 7 != 3]  # cells 3, 10, 17, ... hold no point
    pts = np.zeros(len(flat), [("x", "f8"), ("z", "f8")])  # a strided field, as clean passes
    pts["z"] = rng.normal(30.0, 5.0, len(flat))
    low, high = cell_extreme(flat, pts["z"], 42), cell_extreme(flat, pts["z"], 42, highest=True)
    for cell in range(42):
        z = pts["z"][flat == cell]
        if len(z):
            assert (low[cell], high[cell]) == (z.min(), z.max())
        else:
            assert np.isnan(low[cell]) and np.isnan(high[cell])
    assert np.isnan(low[40:]).all()
