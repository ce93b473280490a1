"""Building solids under planar roofs: closed, outward, with the volume geometry says they have."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from shapely.geometry import Polygon, box

from pipeline.core.meshing import face_normals, is_closed, mesh_volume, roof_regions, roof_solid
from pipeline.core.roofs import Plane
from tests.nasty import CLOCKWISE_SQUARE, COURTYARD, L_SHAPE, SQUARE

T30 = float(np.tan(np.radians(30.0)))
RECT = box(0, 0, 40, 20)  # long axis along x, ridge at y = 10


def _check_closed_outward(v, f):
    mesh = trimesh.Trimesh(v, f, process=False)
    assert is_closed(f) and mesh.is_watertight and mesh.is_winding_consistent
    assert mesh_volume(v, f) > 0  # positive signed volume: faces point out
    return mesh


@pytest.mark.parametrize("poly", [SQUARE, CLOCKWISE_SQUARE, COURTYARD, L_SHAPE])
def test_lod1_prism_volume_is_area_times_height(poly):
    z0, z1 = 12.5, 47.25
    v, f = roof_solid(poly, [Plane(0.0, 0.0, z1)], z0)
    _check_closed_outward(v, f)
    assert mesh_volume(v, f) == pytest.approx(poly.area * (z1 - z0), rel=1e-6)
    n = face_normals(v, f)
    top = np.all(v[f][:, :, 2] == z1, axis=1)
    bottom = np.all(v[f][:, :, 2] == z0, axis=1)
    assert np.all(n[top, 2] > 0.999) and np.all(n[bottom, 2] < -0.999)
    walls = ~(top | bottom)
    assert np.all(np.abs(n[walls, 2]) < 1e-9)  # walls are vertical


@pytest.mark.parametrize("poly", [SQUARE, CLOCKWISE_SQUARE, COURTYARD, L_SHAPE,
                                  Polygon([(0, 0), (10, 0), (20, 0), (20, 10), (0, 10)]),  # a collinear vertex
                                  Polygon([(0, 0), (10, 0), (10, 10), (5, 10), (5, 10), (0, 10)])])  # a repeat
def test_the_lod1_prism_path_builds_the_general_path_s_solid(poly):
    """roof_solid's prism shortcut (one flat roof) against its general path, which two equal
    planes take: the same surface, closed, with every outline vertex on the walls."""
    fast = roof_solid(poly, [Plane(0.0, 0.0, 30.0)], 5.0)
    general = roof_solid(poly, [Plane(0.0, 0.0, 30.0), Plane(0.0, 0.0, 30.0)], 5.0)
    for v, f in (fast, general):
        _check_closed_outward(v, f)
    assert sorted(map(tuple, fast[0])) == sorted(map(tuple, general[0]))
    assert mesh_volume(*fast) == pytest.approx(mesh_volume(*general), rel=1e-12)
    area = [trimesh.Trimesh(*m, process=False).area for m in (fast, general)]
    assert area[0] == pytest.approx(area[1], rel=1e-12)


def test_gable_and_hip_volumes_match_their_formulas():
    ground, ridge = 10.0, 40.0
    rise = T30 * 10.0
    eave = ridge - rise
    gable = [Plane(0, T30, ridge - 10 * T30), Plane(0, -T30, ridge + 10 * T30)]
    v, f = roof_solid(RECT, gable, ground)
    _check_closed_outward(v, f)
    # prism to the eaves + triangular prism of the roof
    assert mesh_volume(v, f) == pytest.approx(800 * (eave - ground) + 0.5 * 20 * rise * 40, rel=1e-9)
    assert v[:, 2].max() == pytest.approx(ridge)
    hip = gable + [Plane(T30, 0, ridge - 10 * T30), Plane(-T30, 0, ridge + 30 * T30)]
    v, f = roof_solid(RECT, hip, ground)
    _check_closed_outward(v, f)
    # hip roof over W x L with rise h: h W (3L - W) / 6
    assert mesh_volume(v, f) == pytest.approx(800 * (eave - ground) + rise * 20 * (3 * 40 - 20) / 6, rel=1e-9)
    assert len(roof_regions(RECT, hip)) == 4


def test_shed_and_skewed_gable_close():
    shed = [Plane(0.0, 0.2, 30.0)]
    v, f = roof_solid(RECT, shed, 10.0)
    _check_closed_outward(v, f)
    assert mesh_volume(v, f) == pytest.approx(800 * (30 + 0.2 * 10 - 10), rel=1e-9)
    quad = Polygon([(0, 0), (30, 10), (25, 25), (-5, 15)])
    v, f = roof_solid(quad, [Plane(0.3, 0.1, 20), Plane(-0.3, -0.1, 30)], 0.0)
    _check_closed_outward(v, f)


def test_gable_over_a_courtyard_closes():
    planes = [Plane(0, 0.3, 40 - 0.3 * 20), Plane(0, -0.3, 40 + 0.3 * 20)]
    v, f = roof_solid(COURTYARD, planes, 0.0)
    _check_closed_outward(v, f)


def test_is_closed_sees_holes_and_flipped_faces():
    v, f = roof_solid(SQUARE, [Plane(0, 0, 10)], 0)
    assert is_closed(f)
    assert not is_closed(f[1:])
    flipped = f.copy()
    flipped[0] = flipped[0][::-1]
    assert not is_closed(flipped)
