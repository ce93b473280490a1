"""Bounding-volume arithmetic of 3D Tiles boxes."""

from __future__ import annotations

import numpy as np

from pipeline.core.geodesy import SiteFrame
from pipeline.core.tiles import (aabb_box, box_contains, box_corners, matrix_from_json,
                                 matrix_to_json, points_in_box, transform_box, translation)


def test_aabb_box_contains_its_points():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-50, 50, (500, 3))
    box = aabb_box(pts.min(0), pts.max(0))
    assert points_in_box(pts, box).all()
    assert not points_in_box(np.array([[60.0, 0, 0]]), box).any()


def test_containment_through_transforms():
    parent = aabb_box(np.array([-100, -100, 0]), np.array([100, 100, 50]))
    child = aabb_box(np.array([-10, -10, 0]), np.array([10, 10, 10]))
    assert box_contains(parent, child)
    assert box_contains(parent, child, translation(np.array([80.0, 0, 0])))
    assert not box_contains(parent, child, translation(np.array([95.0, 0, 0])))


def test_transform_box_to_ecef_keeps_corners():
    frame = SiteFrame(37.577, 126.8898)
    m = frame.enu_to_ecef_matrix()
    box = aabb_box(np.array([-300, -200, 0]), np.array([400, 500, 120]))
    ecef_box = transform_box(box, m)
    a = np.sort(box_corners(box, m), axis=0)
    b = np.sort(box_corners(ecef_box), axis=0)
    assert np.allclose(a, b, atol=1e-6)
    assert box_contains(ecef_box, box, m, tol=1e-4)


def test_matrix_json_is_column_major():
    m = translation(np.array([1.0, 2.0, 3.0]))
    js = matrix_to_json(m)
    assert js[12:15] == [1.0, 2.0, 3.0]
    assert np.array_equal(matrix_from_json(js), m)


def test_flat_box():
    box = [0, 0, 0, 10, 0, 0, 0, 10, 0, 0, 0, 0]
    assert points_in_box(np.array([[5.0, -5.0, 0.0]]), box).all()
    assert not points_in_box(np.array([[5.0, -5.0, 0.1]]), box).any()
