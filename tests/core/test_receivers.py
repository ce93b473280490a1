"""Receivers (pipeline/core/receivers.py): storeys, spacing, offsets, snapping onto the mesh."""

from __future__ import annotations

import numpy as np
import shapely

from pipeline.core.receivers import FacadeSource, facade_receivers, ground_receivers
from tests.core.test_shading import box, ground_plane, outline


def test_storeys_from_floors_and_from_the_storey_height():
    v, f = box((0, 0, 100), (20, 10, 130))  # 30 m walls standing at U = 100
    with_floors = facade_receivers([FacadeSource(3, v, f, [outline(v)], 100.0, 30.0, 6)], window_height=1.5)
    assert sorted(set(with_floors.storey.tolist())) == [1, 2, 3, 4, 5, 6]
    assert np.allclose(sorted(set(np.round(with_floors.position[:, 2], 6))), 100 + 1.5 + 5.0 * np.arange(6))
    without = facade_receivers([FacadeSource(3, v, f, [outline(v)], 100.0, 30.0, None)], storey_height=3.5)
    assert without.storey.max() == 8  # 30 // 3.5
    assert np.allclose(sorted(set(np.round(without.position[:, 2], 6))), 101.5 + 3.5 * np.arange(8))
    assert set(with_floors.building.tolist()) == {3}


def test_receivers_stand_every_spacing_metres_just_out_from_their_wall():
    v, f = box((0, 0, 0), (20, 10, 9))
    rec = facade_receivers([FacadeSource(0, v, f, [outline(v)], 0.0, 9.0, 3)], spacing=2.0, offset=0.05)
    assert len(rec) == (10 + 5 + 10 + 5) * 3
    south = rec.azimuth_deg == 180.0
    assert np.allclose(rec.position[south, 1], -0.05, atol=1e-5)
    assert np.allclose(np.sort(np.unique(np.round(rec.position[south, 0], 5))), 1.0 + 2.0 * np.arange(10))
    east = np.abs(rec.azimuth_deg - 90.0) < 1e-3
    assert np.allclose(rec.position[east, 0], 20.05, atol=1e-5) and np.allclose(rec.normal[east], [1, 0, 0])
    assert sorted(np.unique(np.round(rec.azimuth_deg)).tolist()) == [0.0, 90.0, 180.0, 270.0]


def test_a_model_narrower_than_its_outline_gets_receivers_on_its_own_walls():
    """A model's outline can stand off its walls (a plan outline of a setback, a rounded outline):
    receivers land on the walls themselves, along their normals."""
    v, f = box((0.4, 0.4, 0), (19.6, 9.6, 9))  # 0.4 m inside the outline on every side
    rec = facade_receivers([FacadeSource(0, v, f, [np.array([[0, 0], [20, 0], [20, 10], [0, 10]])], 0.0, 9.0, 3)])
    south = rec.azimuth_deg == 180.0
    assert south.any() and np.allclose(rec.position[south, 1], 0.4 - 0.05, atol=1e-4)


def test_party_walls_and_storeys_above_a_lower_wing_get_no_receivers():
    """Two buildings sharing a wall: no receiver on it (it would stand inside the neighbour); a
    storey higher than the building's wall at that point gets none there."""
    a = box((0, 0, 0), (10, 10, 30))
    b = box((10, 0, 0), (20, 10, 9))
    rec = facade_receivers([FacadeSource(0, *a, [outline(a[0])], 0.0, 30.0, 10),
                            FacadeSource(1, *b, [outline(b[0])], 0.0, 9.0, 3)])
    a_east = (rec.building == 0) & (np.abs(rec.azimuth_deg - 90) < 1)
    assert a_east.any() and np.all(rec.position[a_east, 2] > 9.0)  # only above the lower neighbour
    b_west = (rec.building == 1) & (np.abs(rec.azimuth_deg - 270) < 1)
    assert not b_west.any()
    # and a tower standing on a podium: its upper storeys sit on the tower's own, inset walls
    podium, tower = box((0, 0, 0), (30, 30, 6)), box((10, 10, 6), (20, 20, 60))
    from pipeline.core.meshing import concat_meshes
    v, f = concat_meshes([podium, tower])
    rec = facade_receivers([FacadeSource(0, v, f, [outline(podium[0])], 0.0, 60.0, 20)])
    high = rec.storey > 2
    assert high.any() and np.all((rec.position[high, 0] >= 9.9) & (rec.position[high, 0] <= 20.1))


def test_ground_receivers_stand_on_the_terrain_outside_buildings():
    gv, gf = ground_plane(100)
    gv = gv.copy()
    gv[:, 2] += 0.5 * gv[:, 0] / 100  # a gentle east-west slope
    plan = np.array([[0, 0], [50, 50], [5, 5], [500, 0]], float)
    rec, kept = ground_receivers(plan, gv, gf, [shapely.box(-10, -10, 10, 10)], offset=0.1)
    assert kept.tolist() == [1]  # inside a footprint, off the terrain
    assert np.isclose(rec.position[0, 2], 0.25 + 0.1, atol=1e-3)
    assert rec.building.tolist() == [-1] and rec.storey.tolist() == [0] and np.isnan(rec.azimuth_deg[0])
