"""Anchor quaternions in ENU and East-Up-South describe the same heading."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.orientation import heading_quaternions, polygon_heading, rotate


@pytest.mark.parametrize("heading", [0.0, 30.0, 90.0, 135.0, 270.0])
def test_forward_axis_points_at_heading(heading):
    q_enu, q_eus = heading_quaternions(heading)
    f_enu = rotate(q_enu, np.array([0.0, 1.0, 0.0]))      # ENU forward = north
    f_eus = rotate(q_eus, np.array([0.0, 0.0, -1.0]))     # EUS forward = north = -south
    az_enu = np.degrees(np.arctan2(f_enu[0], f_enu[1])) % 360
    az_eus = np.degrees(np.arctan2(f_eus[0], -f_eus[2])) % 360
    assert az_enu == pytest.approx(heading % 360, abs=1e-9)
    assert az_eus == pytest.approx(heading % 360, abs=1e-9)
    assert abs(f_enu[2]) < 1e-12 and abs(f_eus[1]) < 1e-12


def test_polygon_heading_of_rotated_rectangle():
    t = np.radians(28.0)
    rect = np.array([[0, 0], [80, 0], [80, 20], [0, 20]], float)
    rot = rect @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    assert polygon_heading(rot) == pytest.approx(90.0 - 28.0, abs=1e-6)
