"""The morphological ground filter on a synthetic block with a building and a tree."""

from __future__ import annotations

import numpy as np

from pipeline.core.ground import Grid, cell_min, fill_linear, smrf_ground


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
