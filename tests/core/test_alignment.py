"""The shift between footprints and the LiDAR's building points, recovered from synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from pipeline.core.alignment import footprint_offset


def _district(rng: np.random.Generator, n: int = 40) -> list[shapely.Polygon]:
    """``n`` buildings of 10-30 m on a 60 m grid with jitter (plan metres)."""
    out = []
    for k in range(n):
        e, nn = (k % 8) * 60.0 + rng.uniform(-5, 5), (k // 8) * 60.0 + rng.uniform(-5, 5)
        w, h = rng.uniform(10, 30, 2)
        out.append(shapely.box(e, nn, e + w, nn + h))
    return out


def _roof_points(polys: list[shapely.Polygon], rng: np.random.Generator, density: float = 2.0) -> np.ndarray:
    pts = []
    for p in polys:
        lo_e, lo_n, hi_e, hi_n = p.bounds
        count = int(p.area * density)
        pts.append(np.column_stack([rng.uniform(lo_e, hi_e, count), rng.uniform(lo_n, hi_n, count)]))
    return np.concatenate(pts)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (-255.3, 0.0), (120.0, -64.0)])
def test_the_shift_onto_the_points_is_found_within_a_cell(shift):
    rng = np.random.default_rng(7)
    truth = _district(rng)
    points = _roof_points(truth, rng)
    # the layer as a wrong CRS puts it: every building moved against the points by -shift
    layer = [shapely.affinity.translate(p, -shift[0], -shift[1]) for p in truth]
    found = footprint_offset(layer, points, res=2.0, max_shift=400.0)
    assert found is not None
    assert np.allclose(found.shift_en, shift, atol=2.0), found
    assert found.covered_moved > 0.8
    if shift == (0.0, 0.0):
        assert found.covered_as_placed == found.covered_moved
    else:
        assert found.covered_as_placed < found.covered_moved / 2


def test_nothing_to_compare_gives_none():
    assert footprint_offset([], np.zeros((3, 2))) is None
    assert footprint_offset([shapely.box(0, 0, 1, 1)], np.empty((0, 2))) is None
