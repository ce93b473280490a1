"""Plumb lines onto meshes: a surface of known ellipsoidal height, anywhere in the frame."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.drape import drape, drape_each, drape_scenes, normals_enu
from pipeline.core.geodesy import SiteFrame, geodetic_to_ecef
from pipeline.core.shading import Scene

FRAME = SiteFrame(37.5770, 126.8898, 30.0)


def _surface(h: float, span_deg: float = 0.03, n: int = 61) -> tuple[np.ndarray, np.ndarray]:
    """A TIN whose vertices all stand at ellipsoidal height ``h`` over about 3 km, in ENU."""
    lon, lat = np.meshgrid(np.linspace(FRAME.lon - span_deg, FRAME.lon + span_deg, n),
                           np.linspace(FRAME.lat - span_deg, FRAME.lat + span_deg, n))
    v = FRAME.geodetic_to_enu(lon.ravel(), lat.ravel(), np.full(lon.size, h))
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return v, np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])


def test_drape_finds_the_height_on_the_plumb_line_far_from_the_origin():
    v, f = _surface(57.0)
    rng = np.random.default_rng(1)
    lon = FRAME.lon + rng.uniform(-0.029, 0.029, 200)
    lat = FRAME.lat + rng.uniform(-0.029, 0.029, 200)
    # open3d casts in float32 (a quarter of a millimetre at 3 km) and a facet sags below the
    # ellipsoid-parallel surface by up to (50 m)^2 / 8R: a millimetre bounds both
    assert np.abs(drape([(v, f)], FRAME, lon, lat) - 57.0).max() < 1e-3


def test_the_highest_surface_wins_and_misses_are_nan():
    low, high = _surface(10.0), _surface(25.0, span_deg=0.005)
    h = drape([low, high], FRAME, np.array([FRAME.lon, FRAME.lon + 0.02, 140.0]),
              np.array([FRAME.lat, FRAME.lat, FRAME.lat]))
    assert h[0] == pytest.approx(25.0, abs=1e-3) and h[1] == pytest.approx(10.0, abs=1e-3) and np.isnan(h[2])
    assert np.isnan(drape([], FRAME, np.array([FRAME.lon]), np.array([FRAME.lat]))).all()


def test_scenes_draped_together_give_each_ones_own_heights():
    """One set of plumb lines for several scenes (they start above the highest): each scene's
    heights as it alone gives them, an empty scene meeting nothing."""
    low, high = _surface(10.0), _surface(25.0, span_deg=0.005)
    rng = np.random.default_rng(5)
    lon = FRAME.lon + rng.uniform(-0.02, 0.02, 300)
    lat = FRAME.lat + rng.uniform(-0.02, 0.02, 300)
    scenes = [Scene([low]), Scene([]), Scene([low, high])]
    together = drape_scenes(scenes, FRAME, lon, lat)
    assert np.isnan(together[1]).all()
    for scene, h in zip(scenes, together, strict=True):
        alone = drape(scene, FRAME, lon, lat)
        assert np.array_equal(np.isnan(h), np.isnan(alone))
        assert np.nanmax(np.abs(h - alone), initial=0.0) < 1e-3  # float32 rays from another start
    under = np.isfinite(together[2]) & (together[2] > 20.0)
    assert 0 < under.sum() < len(lon) and np.abs(together[0][under] - 10.0).max() < 1e-3
    assert all(np.isnan(h).all() for h in drape_scenes([Scene([])], FRAME, lon, lat))


def test_normals_are_the_ellipsoid_normals():
    lon, lat = np.array([126.9, 127.1]), np.array([37.4, 37.7])
    step = geodetic_to_ecef(lon, lat, np.ones(2)) - geodetic_to_ecef(lon, lat, np.zeros(2))
    assert np.allclose(normals_enu(FRAME, lon, lat), step @ FRAME.rotation.T, atol=1e-9)


def test_each_place_meets_only_its_own_mesh_and_agrees_with_the_scene():
    low, high = _surface(10.0), _surface(25.0, span_deg=0.005)
    rng = np.random.default_rng(3)
    lon = FRAME.lon + rng.uniform(-0.004, 0.004, 50)
    lat = FRAME.lat + rng.uniform(-0.004, 0.004, 50)
    own = [low if k % 2 else high for k in range(50)]
    h = drape_each(own, FRAME, lon, lat)
    # under the high patch, the odd places still find their own low surface
    assert np.abs(h[1::2] - 10.0).max() < 1e-3 and np.abs(h[::2] - 25.0).max() < 1e-3
    alone = np.array([drape([m], FRAME, lon[k:k + 1], lat[k:k + 1])[0] for k, m in enumerate(own)])
    assert np.abs(h - alone).max() < 1e-3
    # a place off its mesh, and one with an empty mesh, meet nothing
    empty = (np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    miss = drape_each([high, empty], FRAME, np.array([FRAME.lon + 0.02, FRAME.lon]),
                      np.array([FRAME.lat, FRAME.lat]))
    assert np.isnan(miss).all()
    # a plumb line through a shared edge or vertex of the grid is not lost between its triangles
    v, f = high
    on_vertices = FRAME.enu_to_geodetic(v[:40])
    at = drape_each([high] * 40, FRAME, on_vertices[0], on_vertices[1])
    assert np.abs(at - 25.0).max() < 1e-3
