"""Building solids are closed, outward-facing prisms; terrain grids and their measured error."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from pipeline.core.meshing import coarse_grid_error, coarse_indices, face_normals, grid_mesh, prism
from tests.nasty import CLOCKWISE_SQUARE, COURTYARD, L_SHAPE, SQUARE


def _rings(poly):
    return [np.asarray(poly.exterior.coords)[:-1]] + [np.asarray(r.coords)[:-1] for r in poly.interiors]


@pytest.mark.parametrize("poly", [SQUARE, CLOCKWISE_SQUARE, COURTYARD, L_SHAPE])
def test_prism_is_watertight_outward_with_exact_volume(poly):
    rings = _rings(poly)
    z0, z1 = 12.5, 47.25
    bottom = [np.column_stack([r, np.full(len(r), z0)]) for r in rings]
    top = [np.column_stack([r, np.full(len(r), z1)]) for r in rings]
    v, f = prism(rings, bottom, top)
    mesh = trimesh.Trimesh(v, f, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(poly.area * (z1 - z0), rel=1e-6)  # > 0: outward normals
    n = face_normals(v, f)
    centre = v.mean(0)
    roof = np.all(v[f][:, :, 2] == z1, axis=1)
    assert np.all(n[roof, 2] > 0.999) and np.all(n[np.all(v[f][:, :, 2] == z0, axis=1), 2] < -0.999)
    assert centre[2] == pytest.approx((z0 + z1) / 2)


def test_grid_mesh_faces_up_and_skips_nodata():
    rows, cols = 5, 6
    e, n = np.meshgrid(np.arange(cols) * 5.0, -np.arange(rows) * 5.0)  # row 0 north
    grid = np.stack([e, n, 0.1 * e], axis=-1)
    grid[2, 3] = np.nan
    v, f = grid_mesh(grid)
    assert np.all(np.isfinite(v))
    assert len(f) == 2 * (rows - 1) * (cols - 1) - 6  # the NaN vertex touches six triangles
    assert np.all(face_normals(v, f)[:, 2] > 0)


def test_coarse_error_is_exact_for_planes_and_measures_bumps():
    rows, cols = 9, 9
    e, n = np.meshgrid(np.arange(cols, dtype=float), -np.arange(rows, dtype=float))
    plane = np.stack([e, n, 2 * e - 3 * n + 1], axis=-1)
    ri, ci = coarse_indices(rows, 4), coarse_indices(cols, 4)
    assert coarse_grid_error(plane, ri, ci) == pytest.approx(0.0, abs=1e-12)
    bump = plane.copy()
    bump[3, 5, 2] += 0.75  # not a coarse vertex: the coarse mesh misses it by exactly 0.75
    assert coarse_grid_error(bump, ri, ci) == pytest.approx(0.75)


def test_coarse_indices_keep_the_last_row():
    assert coarse_indices(10, 4).tolist() == [0, 4, 8, 9]
    assert coarse_indices(9, 4).tolist() == [0, 4, 8]
