"""The grid index finds exactly the points a brute-force test finds."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from pipeline.core.pointindex import PointGridIndex


def test_same_points_as_testing_every_point():
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-500, 500, 200_000), rng.uniform(-300, 700, 200_000)
    index = PointGridIndex(x, y, size=10.0)
    courtyard = Polygon([(0, 0), (60, 0), (60, 40), (0, 40)], [[(20, 10), (40, 10), (40, 30), (20, 30)]])
    shapes = [courtyard,
              Polygon([(-480, -290), (-470, -295), (-465, -280)]),          # a sliver at the edge
              MultiPolygon([Polygon([(100, 100), (130, 100), (130, 130)]),
                            Polygon([(200, 200), (215, 200), (215, 260), (200, 260)])]),
              Polygon([(900, 900), (910, 900), (910, 910)])]                # outside the points
    for shape in shapes:
        want = np.flatnonzero(shapely.contains_xy(shape, x, y))
        assert np.array_equal(index.within(shape), want)
