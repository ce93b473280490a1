"""Occlusion and sun hours (pipeline/core/shading.py) on scenes whose answer solar geometry gives:
walls facing every way, a wall's shadow, a closed courtyard, the two-scene shortcut."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
import shapely
import trimesh

from pipeline.core.meshing import concat_meshes
from pipeline.core.receivers import FacadeSource, facade_receivers, ground_receivers
from pipeline.core.shading import Scene, SunlightRule, lit_matrix, longest_run, shade, sun_hours
from pipeline.core.sun import sun_table
from tests.sun_reference import noaa_sun

LAT, LON = 37.5770, 126.8898
DAY = date(2026, 12, 22)
RULE = SunlightRule()


@pytest.fixture(scope="module")
def sun():
    return sun_table(DAY, LAT, LON, basis="true_solar", start_h=8, end_h=16, step_min=1)


def directions(table):
    return table.shading_directions()


def noaa_sky(table) -> tuple[np.ndarray, np.ndarray]:
    """(elevation, azimuth) in degrees at the table's true-solar clock readings, from the NOAA
    formulas: the hour angle is the true-solar clock itself (no refraction: it moves the sun by
    under 0.04 degrees at these elevations, well inside one step)."""
    phi = np.radians(LAT)
    el, az = [], []
    for clock in table.clock_min:
        decl, eot = noaa_sun(datetime(2026, 12, 22, tzinfo=timezone.utc) + timedelta(minutes=clock - 4 * LON))
        d, h = np.radians(decl), np.radians(clock / 4.0 - 180.0)
        el.append(np.degrees(np.arcsin(np.sin(phi) * np.sin(d) + np.cos(phi) * np.cos(d) * np.cos(h))))
        az.append(np.degrees(np.arctan2(np.sin(h), np.cos(h) * np.sin(phi) - np.tan(d) * np.cos(phi))) % 360 + 180)
    return np.array(el), np.array(az) % 360


def box(lo, hi, angle_deg: float = 0.0):
    """Vertices and faces of a box (ENU metres) turned ``angle_deg`` clockwise about its centre."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    m = trimesh.creation.box(extents=hi - lo)
    m.apply_translation((lo + hi) / 2)
    if angle_deg:
        c = (lo + hi) / 2
        m.apply_transform(trimesh.transformations.rotation_matrix(np.radians(-angle_deg), [0, 0, 1], c))
    return np.asarray(m.vertices), np.asarray(m.faces)


def ground_plane(size: float = 3000.0):
    return box((-size, -size, -1.0), (size, size, 0.0))


def outline(v):
    """The plan outline (counter-clockwise) of a box's vertices."""
    return np.asarray(shapely.convex_hull(shapely.multipoints(v[:, :2])).exterior.coords)[:-1]


@pytest.mark.parametrize("facing", [180.0, 90.0, 150.0, 225.0, 270.0])
def test_an_unobstructed_wall_sees_the_sun_while_it_is_up_and_in_front(sun, facing):
    """A wall facing ``facing`` degrees (south 180, east 90, ...) of a lone building: lit exactly
    while the sun is above the horizon and in front of it, by the NOAA geometry, within one step
    at each transition; its hours are those of that geometry."""
    v, f = box((-10, -10, 0), (10, 10, 30), angle_deg=facing - 180.0)
    rec = facade_receivers([FacadeSource(0, v, f, [outline(v)], 0.0, 30.0, 10)])
    wall = np.abs((rec.azimuth_deg - facing + 180) % 360 - 180) < 1
    assert wall.sum() == 10 * 10  # 20 m at 2 m, ten storeys
    gv, gf = ground_plane()
    [lit], _ = lit_matrix(rec.position[wall], rec.normal[wall], directions(sun), Scene([(v, f), (gv, gf)]))
    el, az = noaa_sky(sun)
    expected = (el > 0) & (np.cos(np.radians(az - facing)) > 0)
    for row in lit:
        wrong = np.flatnonzero(row != expected)
        edges = np.flatnonzero(expected[1:] != expected[:-1])
        assert all(np.min(np.abs(edges - w)) <= 1 for w in wrong), (facing, wrong, edges)
    hours = sun_hours(lit, sun.clock_min, sun.step_min, RULE)
    want = sun_hours(expected[None, :], sun.clock_min, sun.step_min, RULE)
    assert np.all(np.abs(hours.total_min - want.total_min[0]) <= 2 * sun.step_min)
    assert np.all(np.abs(hours.continuous_min - want.continuous_min[0]) <= 2 * sun.step_min)
    if facing == 180.0:
        assert np.all(hours.total_min == 480) and np.all(hours.continuous_min == 360)
    if facing == 90.0:  # the morning on the true-solar clock: 08-12 and 09-12
        assert np.all(np.abs(hours.total_min - 240) <= 1) and np.all(np.abs(hours.continuous_min - 180) <= 1)


def test_a_north_face_gets_no_sun_in_winter(sun):
    v, f = box((-10, -10, 0), (10, 10, 30))
    rec = facade_receivers([FacadeSource(0, v, f, [outline(v)], 0.0, 30.0, None)])
    north = np.abs((rec.azimuth_deg + 180) % 360 - 180) < 1
    assert north.sum() == 10 * 10
    hours, rays = shade(rec.position, rec.normal, directions(sun), sun.clock_min, sun.step_min, RULE,
                        Scene([(v, f), ground_plane()]))
    assert np.all(hours[0].total_min[north] == 0) and not hours[0].passes[north].any()
    assert rays == int((rec.normal @ directions(sun).T > 0).sum())  # no ray for a wall facing away


@pytest.mark.parametrize(("height", "distance"), [(20.0, 40.0), (30.0, 60.0), (12.0, 20.0)])
def test_a_point_north_of_a_wall_is_shaded_while_the_sun_is_lower_than_the_wall(sun, height, distance):
    """A long east-west wall H high, a ground point D north of it: shaded exactly while the sun
    stands lower than the wall's top seen from the point; for the sun due south that is an
    elevation below atan(H / D). Checked against the NOAA geometry, within one step."""
    wall = box((-3000, -distance - 1.0, 0.0), (3000, -distance, height))
    origin = np.array([[0.0, 0.0, 0.0]])
    [lit], _ = lit_matrix(origin, np.array([[0.0, 0.0, 1.0]]), directions(sun), Scene([wall]))
    el, az = noaa_sky(sun)
    # the ray climbs tan(el) per metre of horizontal run; it runs D / |cos az| to reach the wall
    top = np.tan(np.radians(el)) * distance / np.abs(np.cos(np.radians(az)))
    expected = top > height
    wrong = np.flatnonzero(lit[0] != expected)
    edges = np.flatnonzero(expected[1:] != expected[:-1])
    assert all(np.min(np.abs(edges - w)) <= 1 for w in wrong), (wrong, edges)
    noon = int(np.argmin(np.abs(az - 180)))
    assert lit[0, noon] == (el[noon] > np.degrees(np.arctan2(height, distance)))


def test_a_closed_courtyard_deeper_than_the_noon_shadow_gets_no_sun(sun):
    """A ring building 30 m high round a 10 m square court: the winter noon shadow (30 m / tan
    29 degrees = 54 m) covers the court all day: its ground point and lowest windows get none."""
    outer = shapely.box(-20, -20, 20, 20)
    court = shapely.box(-5, -5, 5, 5)
    ring = outer.difference(court)
    wings = [box((-20, -20, 0), (20, -5, 30)), box((-20, 5, 0), (20, 20, 30)),  # a ring of four wings
             box((-20, -5, 0), (-5, 5, 30)), box((5, -5, 0), (20, 5, 30))]
    v, f = concat_meshes(wings)
    rings = [np.asarray(ring.exterior.coords)[:-1], np.asarray(ring.interiors[0].coords)[:-1]]
    facades = facade_receivers([FacadeSource(0, v, f, rings, 0.0, 30.0, 10)])
    inner = np.max(np.abs(facades.position[:, :2]), axis=1) < 6
    assert inner.sum() == 4 * 5 * 10  # 10 m walls at 2 m, ten storeys
    # courtyard windows face into the court
    assert np.all(np.einsum("ij,ij->i", facades.normal[inner, :2], -facades.position[inner, :2]) > 0)
    gv, gf = ground_plane()
    grid = np.array([[0.0, 0.0], [2.0, -3.0], [100.0, -100.0]])
    ground, kept = ground_receivers(grid, gv, gf, [ring])
    assert kept.tolist() == [0, 1, 2] and np.allclose(ground.position[:, 2], 0.05, atol=1e-4)
    scene = Scene([(v, f), (gv, gf)])
    hours, _ = shade(ground.position, ground.normal, directions(sun), sun.clock_min, sun.step_min, RULE, scene)
    assert hours[0].total_min[0] == 0 and hours[0].total_min[1] == 0
    assert hours[0].total_min[2] == 480  # open ground south-east of it: no winter shadow falls there
    first = inner & (facades.storey == 1)
    fh, _ = shade(facades.position[first], facades.normal[first], directions(sun), sun.clock_min, sun.step_min,
                  RULE, scene)
    assert np.all(fh[0].total_min == 0)


def district(rng: np.random.Generator) -> tuple[list, tuple, tuple]:
    """25 boxes 10-80 m tall scattered over 300 m (drawn from ``rng``), a 200 m tower at the
    origin and the ground plane: (buildings, tower, ground) as (vertices, faces)."""
    buildings = [box((x, y, 0), (x + 15, y + 12, h)) for x, y, h in
                 zip(rng.uniform(-150, 150, 25), rng.uniform(-150, 150, 25), rng.uniform(10, 80, 25), strict=True)]
    return buildings, box((0, 0, 0), (20, 20, 200)), ground_plane()


def test_the_two_scene_shortcut_equals_one_scene_and_blocks_do_not_matter(sun):
    """Rays through the common scene, then the open ones through each scenario's extra geometry,
    decide exactly as one scene holding both; and the size of the receiver blocks changes nothing."""
    rng = np.random.default_rng(7)
    buildings, tower, (gv, gf) = district(rng)
    # receivers all round the tower, at every height, some above it and some over its footprint
    origins = np.column_stack([rng.uniform(-200, 200, 400), rng.uniform(-200, 200, 400), rng.uniform(0.05, 250, 400)])
    origins[:20, :2] = rng.uniform(1, 19, (20, 2))
    origins[:10, 2] = rng.uniform(201, 260, 10)
    normals = rng.normal(size=(400, 3))
    normals[:, 2] = np.abs(normals[:, 2]) + 0.2
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    d = directions(sun)
    common = Scene(buildings + [(gv, gf)])
    (alone, both), n = lit_matrix(origins, normals, d, common, [None, Scene([tower])])
    [one], _ = lit_matrix(origins, normals, d, Scene(buildings + [(gv, gf), tower]))
    assert n == int((normals @ d.T > 0).sum())
    assert np.array_equal(both, one) and (alone & ~both).any() and not (both & ~alone).any()
    small, _ = shade(origins, normals, d, sun.clock_min, sun.step_min, RULE, common, [None, Scene([tower])],
                     block_rays=10_000)
    large, _ = shade(origins, normals, d, sun.clock_min, sun.step_min, RULE, common, [None, Scene([tower])])
    for a, b in zip(small, large, strict=True):
        assert np.array_equal(a.total_min, b.total_min) and np.array_equal(a.continuous_min, b.continuous_min)


def test_open_ground_decides_as_any_other_receivers(sun):
    """Receivers that all face the sun at the same steps (open ground, normals up) take
    lit_matrix's broadcast path: the same matrices, with and without an extra scene, as when one
    wall receiver among them sends them down the general path."""
    rng = np.random.default_rng(11)
    buildings, tower, (gv, gf) = district(rng)
    ground = np.column_stack([rng.uniform(-200, 200, 300), rng.uniform(-200, 200, 300), np.full(300, 0.05)])
    up = np.tile([0.0, 0.0, 1.0], (300, 1))
    wall, east = np.array([[160.0, 0.0, 5.0]]), np.array([[1.0, 0.0, 0.0]])
    d = directions(sun)
    common, extra = Scene(buildings + [(gv, gf)]), Scene([tower])
    uniform, n = lit_matrix(ground, up, d, common, [None, extra])
    mixed, m = lit_matrix(np.vstack([ground, wall]), np.vstack([up, east]), d, common, [None, extra])
    [one], _ = lit_matrix(ground, up, d, Scene(buildings + [(gv, gf), tower]))
    assert n == 300 * int((d[:, 2] > 0).sum()) and m > n
    for a, b in zip(uniform, mixed, strict=True):
        assert np.array_equal(a, b[:300])
    assert np.array_equal(uniform[1], one) and (uniform[0] & ~uniform[1]).any() and (~uniform[0]).any()


def test_longest_run_counts_unbroken_samples():
    rng = np.random.default_rng(3)
    for _ in range(300):
        a = rng.random((5, int(rng.integers(0, 40)))) < rng.random()
        want = [max((len(s) for s in "".join("1" if x else "0" for x in row).split("0")), default=0) for row in a]
        assert longest_run(a).tolist() == want


def test_the_rule_passes_on_either_test():
    clock = np.arange(480.5, 960, 1.0)
    lit = np.zeros((3, 480), bool)
    lit[0, 60:180] = True  # 09:00-11:00 unbroken: 2 h continuous
    lit[1, 0:60] = lit[1, 120:160] = lit[1, 200:240] = lit[1, 420:480] = True  # 4 h in pieces, none of 2 h
    lit[2, 60:179] = True  # a minute short of 2 h
    h = sun_hours(lit, clock, 1.0, RULE)
    assert h.continuous_min.tolist() == [120, 40, 119] and h.total_min.tolist() == [120, 200, 119]
    assert h.passes.tolist() == [True, False, False]
    lit[1, 300:340] = True
    assert sun_hours(lit, clock, 1.0, RULE).passes.tolist() == [True, True, False]
