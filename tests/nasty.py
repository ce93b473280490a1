"""Nasty fixtures shared by the tests: degenerate and awkward geometry."""

from __future__ import annotations

from shapely.geometry import Polygon

SQUARE = Polygon([(0, 0), (20, 0), (20, 20), (0, 20)])
CLOCKWISE_SQUARE = Polygon([(0, 0), (0, 20), (20, 20), (20, 0)])
COURTYARD = Polygon([(0, 0), (60, 0), (60, 40), (0, 40)], [[(20, 10), (20, 30), (40, 30), (40, 10)]])
L_SHAPE = Polygon([(0, 0), (30, 0), (30, 10), (10, 10), (10, 25), (0, 25)])
BOWTIE = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])  # self-intersecting
ZERO_AREA = Polygon([(0, 0), (10, 0), (20, 0)])
