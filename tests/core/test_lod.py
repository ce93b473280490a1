"""Hausdorff bounds against distances known in closed form, and decimated levels."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from trimesh.triangles import closest_point

from pipeline.core.lod import Level, decimate, hausdorff, lod_chain, point_triangle_distance


def test_point_triangle_distance_matches_trimesh():
    rng = np.random.default_rng(0)
    tri = rng.normal(size=(5000, 3, 3))
    p = rng.normal(size=(5000, 3)) * 2
    d = point_triangle_distance(p, tri[:, 0], tri[:, 1], tri[:, 2])
    assert np.allclose(d, np.linalg.norm(p - closest_point(tri, p), axis=1), atol=1e-12)


def test_hausdorff_of_known_pairs():
    box = trimesh.creation.box((10, 10, 10))
    raised = box.copy()
    raised.vertices[raised.vertices[:, 2] > 0, 2] += 1.0  # the top moves up 1 m
    d = hausdorff((box.vertices, box.faces), (raised.vertices, raised.faces))
    assert 1.0 <= d <= 1.1  # an upper bound, within the tolerance (0.1 m)
    assert hausdorff((box.vertices, box.faces), (box.vertices, box.faces)) <= 0.1
    shifted = box.vertices + [0.0, 0.0, 3.0]
    assert 3.0 <= hausdorff((box.vertices, box.faces), (shifted, box.faces)) <= 3.6


def test_hausdorff_never_understates_a_dense_sample():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=10)
    v, f = decimate(sphere.vertices, sphere.faces, 300)
    bound = hausdorff((sphere.vertices, sphere.faces), (v, f))
    # a dense sample of both surfaces, measured by brute force, gives a lower bound
    coarse = trimesh.Trimesh(v, f, process=False)

    def farthest(points, mesh):
        tris = mesh.triangles
        best = 0.0
        for chunk in np.array_split(points, 20):
            q = closest_point(np.repeat(tris[None], len(chunk), 0).reshape(-1, 3, 3),
                              np.repeat(chunk, len(tris), 0))
            d = np.linalg.norm(np.repeat(chunk, len(tris), 0) - q, axis=1).reshape(len(chunk), -1)
            best = max(best, float(d.min(axis=1).max()))
        return best

    rng = np.random.default_rng(1)
    pts_a = np.vstack([sphere.vertices, trimesh.sample.sample_surface(sphere, 1500, seed=rng)[0]])
    pts_b = np.vstack([v, trimesh.sample.sample_surface(coarse, 1500, seed=rng)[0]])
    low = max(farthest(pts_a, coarse), farthest(pts_b, sphere))
    # the bound exceeds the true distance by at most its tolerance (0.1 m here); a sample falls
    # a little short of the true distance, so allow that too
    assert low <= bound <= low + 0.15


def test_lod_chain_coarsens_and_measures_each_level():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=10)
    chain = lod_chain([Level(sphere.vertices, sphere.faces.astype(np.int32), 0.0)], ratio=0.25, max_levels=4)
    faces = [len(lv.faces) for lv in chain]
    assert faces[0] == 5120 and all(a > b for a, b in zip(faces, faces[1:], strict=False))
    assert chain[0].error == 0.0 and all(lv.error > 0 for lv in chain[1:])
    assert chain[-1].error == pytest.approx(hausdorff((chain[0].vertices, chain[0].faces),
                                                      (chain[-1].vertices, chain[-1].faces)))
