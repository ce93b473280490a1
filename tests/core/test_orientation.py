"""Anchor quaternions in ENU and East-Up-South describe the same heading."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.orientation import (ecef_quaternion, enu_to_ecef_columns, heading_quaternions, polygon_headings,
                                      rotate)


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


def test_polygon_headings_of_rotated_rectangles_and_degenerate_outlines():
    import shapely

    rect = np.array([[0, 0], [80, 0], [80, 20], [0, 20]], float)
    outlines, expected = [], []
    for turn in (0.0, 28.0, 90.0, 151.0):
        t = np.radians(turn)
        outlines.append(shapely.Polygon(rect @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])))
        expected.append((90.0 - turn) % 180.0)
    # an L-shaped block: its rectangle's long side runs east
    outlines.append(shapely.Polygon([(0, 0), (60, 0), (60, 10), (10, 10), (10, 30), (0, 30)]))
    expected.append(90.0)
    outlines += [shapely.Polygon([(0, 0), (5, 5), (10, 10)]), shapely.Point(1, 2)]  # no area: heading 0
    expected += [0.0, 0.0]
    got = polygon_headings(outlines)
    assert np.allclose(np.minimum(abs(got - expected), 180 - abs(got - expected)), 0.0, atol=1e-6), got


@pytest.mark.parametrize("lon, lat, heading", [(126.89, 37.58, 0.0), (127.2, 37.4, 117.0), (-70.0, -33.0, 300.0)])
def test_ecef_quaternion_and_enu_frame_match_pyproj(lon, lat, heading):
    import pyproj
    from scipy.spatial.transform import Rotation

    t = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    p0 = np.array(t.transform(lon, lat, 0.0))
    up = np.array(t.transform(lon, lat, 1.0)) - p0
    north = np.array(t.transform(lon, lat + 1e-6, 0.0)) - p0
    north -= up * (north @ up)
    north /= np.linalg.norm(north)
    q = ecef_quaternion(heading_quaternions(heading)[0], lon, lat)
    r = Rotation.from_quat(q)
    assert np.allclose(r.apply([0, 0, 1.0]), up, atol=1e-7)
    forward = r.apply([0, 1.0, 0])
    azimuth = np.degrees(np.arctan2(forward @ np.cross(north, up), forward @ north))
    assert (azimuth - heading + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-4)
    m = np.array(enu_to_ecef_columns(lon, lat, p0)).reshape(4, 4).T
    assert np.allclose(m[:3, 2], up, atol=1e-7) and np.allclose(m[:3, 3], p0)
    assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3))


def test_arrays_give_what_each_place_gives_alone():
    rng = np.random.default_rng(5)
    lon, lat, heading = rng.uniform(120, 130, 20), rng.uniform(30, 40, 20), rng.uniform(0, 360, 20)
    ecef = rng.normal(size=(20, 3)) * 6e6
    q_enu, q_eus = heading_quaternions(heading)
    q = ecef_quaternion(q_enu, lon, lat)
    m = enu_to_ecef_columns(lon, lat, ecef)
    assert q.shape == (20, 4) and m.shape == (20, 16)
    for k in range(20):
        one_enu, one_eus = heading_quaternions(heading[k])
        assert np.allclose(q_enu[k], one_enu) and np.allclose(q_eus[k], one_eus)
        assert np.allclose(q[k], ecef_quaternion(one_enu, lon[k], lat[k]), atol=1e-12)
        assert np.allclose(m[k], enu_to_ecef_columns(lon[k], lat[k], ecef[k]))
    assert (q[:, 3] >= 0).all()
