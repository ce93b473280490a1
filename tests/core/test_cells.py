"""Cell lattice helpers: point counts per square and the choice of cell size by point count."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.cells import CellGrid, choose_cell_size, count_bins


def _reference(e, n, size):
    keys = np.column_stack([np.floor(e / size), np.floor(n / size)]).astype(np.int64)
    return np.unique(keys, axis=0, return_counts=True)


@pytest.mark.parametrize("spread", [300.0, 3e6])  # a compact strip, and squares far apart
def test_count_bins_matches_a_sort(spread):
    rng = np.random.default_rng(0)
    e, n = rng.uniform(-spread, spread, 50_000), rng.uniform(-spread / 3, spread, 50_000)
    squares, counts = count_bins(e, n, 12.5, weight=3)
    want_sq, want_n = _reference(e, n, 12.5)
    order = np.lexsort((squares[:, 1], squares[:, 0]))
    assert np.array_equal(squares[order], want_sq) and np.array_equal(counts[order], 3 * want_n)
    empty = count_bins(np.empty(0), np.empty(0), 12.5)
    assert empty[0].shape == (0, 2) and len(empty[1]) == 0


def test_the_largest_cell_under_the_bound_is_chosen():
    # 1 point per m² over 400 m x 400 m, and a dense 20 m x 20 m patch of 100 per m² in it
    g = np.arange(-200, 200) + 0.5
    e, n = [a.ravel() for a in np.meshgrid(g, g)]
    pe, pn = [a.ravel() for a in np.meshgrid(np.arange(60, 80, 0.1), np.arange(20, 40, 0.1))]
    e, n = np.concatenate([e, pe]), np.concatenate([n, pn])
    squares, counts = count_bins(e, n, 12.5)

    def densest(size):
        i, j = CellGrid(size).keys(e, n)
        return int(np.unique(np.column_stack([i, j]), axis=0, return_counts=True)[1].max())

    sizes = [200.0, 100.0, 50.0, 25.0, 12.5]
    counted = [densest(s) for s in sizes]
    assert counted == sorted(counted, reverse=True) and counted[0] > counted[-1]
    for bound in (10**6, counted[0], counted[0] - 1, counted[2], counted[3] - 1, 10):
        want = next((s for s, c in zip(sizes, counted, strict=True) if c <= bound), 12.5)
        assert choose_cell_size(squares, counts, 12.5, 200.0, bound) == (want, densest(want)), bound
    # the thinning voxel must divide the cell: 4 m divides 200 and 100, not 50 and under
    assert choose_cell_size(squares, counts, 12.5, 200.0, 10, divisor=4.0) == (100.0, counted[1])
    # never under the ring a cell reads around it, nor under 10 m
    assert choose_cell_size(squares, counts, 12.5, 200.0, 10, smallest=30.0) == (50.0, counted[2])
    assert choose_cell_size(*count_bins(e, n, 3.75), 3.75, 60.0, 10)[0] == 15.0


def test_largest_cells_come_first(tmp_path):
    from pipeline.core.cells import CellStore

    store = CellStore(tmp_path / "s")
    rec = np.zeros(10_000, [("x", "<f8"), ("y", "<f8")])
    for cell, n in (((0, 0), 2000), ((0, 1), 7000), ((-1, 0), 7000), ((3, 3), 1000)):
        store.write(cell, 0, rec[:n])
    store.write((0, 0), 1, rec[:4000])  # 2,000 + 4,000 points over two parts
    assert store.largest_first() == [(-1, 0), (0, 1), (0, 0), (3, 3)]
    assert sorted(store.largest_first()) == store.cells()
