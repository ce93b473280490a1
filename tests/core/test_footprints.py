"""Footprint repair, and footprints outlined from building points against the true outlines."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely import affinity
from shapely.geometry import Point, Polygon, box

from pipeline.core.footprints import dominant_direction, footprints_from_points, regularize, repair, visual_centre
from tests.nasty import BOWTIE, COURTYARD, L_SHAPE, SQUARE, ZERO_AREA


def test_repair_keeps_good_footprints_and_says_why_it_drops_bad_ones():
    assert repair(SQUARE).polygons == [SQUARE] and repair(SQUARE).note is None
    bow = repair(BOWTIE)
    assert len(bow.polygons) == 2 and "Self-intersection" in bow.note
    assert sum(p.area for p in bow.polygons) == pytest.approx(50.0)
    assert repair(ZERO_AREA).reason == "zero area"
    assert repair(Polygon()).reason == "empty geometry"
    assert repair(None).reason == "empty geometry"
    assert "not a polygon" in repair(Point(1, 2)).reason
    nan_z = Polygon([(0, 0, np.nan), (10, 0, np.nan), (10, 10, np.nan)])  # 3-D export with NaN z
    fixed = repair(nan_z)
    assert len(fixed.polygons) == 1 and not fixed.polygons[0].has_z
    assert repair(Polygon([(0, 0), (np.nan, 0), (10, 10)])).reason == "non-finite x/y coordinates"


def _points_in(polys, density=10.0, seed=0):
    """Points on a jittered lattice of ``density`` per m^2 inside the polygons (like the sample)."""
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(density)
    xmin, ymin, xmax, ymax = shapely.union_all(polys).bounds
    gx, gy = np.meshgrid(np.arange(xmin - 2, xmax + 2, s), np.arange(ymin - 2, ymax + 2, s))
    x = gx.ravel() + rng.uniform(-0.4 * s, 0.4 * s, gx.size)
    y = gy.ravel() + rng.uniform(-0.4 * s, 0.4 * s, gx.size)
    inside = np.zeros(len(x), bool)
    for p in polys:
        inside |= shapely.contains_xy(p, x, y)
    return x[inside], y[inside]


def test_outlines_of_separate_buildings_match_them():
    truth = [affinity.rotate(box(0, 0, 34, 21), 28, origin=(0, 0)),
             affinity.translate(affinity.rotate(L_SHAPE, -17, origin=(0, 0)), 80, 10),
             affinity.translate(COURTYARD, -20, 70),
             affinity.scale(Point(150, 60).buffer(1.0, 64), 40, 25)]  # an elliptical stadium
    x, y = _points_in(truth)
    found, dropped = footprints_from_points(x, y)
    assert len(found) == 4 and dropped == 0
    for t in truth:
        best = max(found, key=lambda f: f.polygon.intersection(t).area)
        iou = best.polygon.intersection(t).area / best.polygon.union(t).area
        assert iou > 0.93, (t.wkt[:40], iou)
    squares = {round(f.polygon.area): f.squared for f in found}
    ellipse = max(found, key=lambda f: f.polygon.intersection(truth[3]).area)
    assert not ellipse.squared  # no right angles forced on a curve
    assert sum(squares.values()) == 3
    court = max(found, key=lambda f: f.polygon.intersection(truth[2]).area)
    assert len(court.polygon.interiors) == 1  # the courtyard stays a hole


def test_squared_outlines_have_right_angles_along_the_building():
    t = affinity.rotate(box(0, 0, 40, 25), 28, origin=(0, 0))
    x, y = _points_in([t], seed=3)
    (f,), _ = footprints_from_points(x, y)
    c = np.asarray(f.polygon.exterior.coords)
    assert len(c) == 5
    edges = np.diff(c, axis=0)
    ang = np.degrees(np.arctan2(edges[:, 1], edges[:, 0])) % 90
    assert np.all(np.minimum(np.abs(ang - 28), 90 - np.abs(ang - 28)) < 0.5)


def test_small_clusters_are_dropped_and_counted():
    x, y = _points_in([box(0, 0, 30, 20), box(100, 100, 103, 103)])
    found, dropped = footprints_from_points(x, y, min_area=20.0)
    assert len(found) == 1 and dropped == 1


def test_dominant_direction_and_regularize():
    poly = affinity.rotate(L_SHAPE, 33, origin=(0, 0))
    assert dominant_direction(poly) == pytest.approx(33.0, abs=0.1)
    noisy = affinity.rotate(Polygon([(0, 0), (30, 0.3), (30, 10), (10, 9.8), (10.2, 25), (0, 25)]), 0)
    square, squared = regularize(noisy, 0.0, tolerance=0.75)
    assert squared and square.area == pytest.approx(noisy.area, rel=0.03)


def test_visual_centre_stays_inside_l_shapes_and_courtyards():
    # a convex footprint keeps its centroid
    assert visual_centre(box(0, 0, 40, 20)) == pytest.approx((20.0, 10.0))
    thin_l = Polygon([(0, 0), (60, 0), (60, 6), (6, 6), (6, 60), (0, 60)])  # centroid off the building
    ring = box(0, 0, 60, 60).difference(box(8, 8, 52, 52))  # centroid in the courtyard
    for poly in (thin_l, ring):
        assert not poly.contains(poly.centroid)
        x, y = visual_centre(poly)
        at = Point(x, y)
        assert poly.contains(at) and poly.boundary.distance(at) > 2.9  # half the wing's width, within tolerance


def test_zero_floors_below_ground_is_a_count_not_a_missing_value():
    from pipeline.core.footprints import attribute_number

    assert attribute_number(0, integer=True, upper=200) == (None, None)
    assert attribute_number("0", integer=True, upper=200, zero_known=True) == (0.0, None)
    assert attribute_number(-1, integer=True, upper=200, zero_known=True)[1] == "-1 is outside 0..200"
