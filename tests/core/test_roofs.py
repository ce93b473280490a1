"""Roof planes and roof types recovered from synthetic roof points with survey-like noise."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.roofs import Plane, fit_plane, fit_roof, ransac_planes, roof_kind

FIT = {"threshold": 0.15, "min_share": 0.85, "max_rmse": 0.2, "flat_slope": 5.0, "min_points": 20}


def _roof(kind: str, rng: np.random.Generator, pitch: float = 30.0, w: float = 40.0, d: float = 20.0,
          noise: float = 0.03, turn: float = 23.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (10 per m^2) of a roof over a w x d rectangle turned by ``turn`` degrees, ridge 50 m."""
    n = int(w * d * 10)
    u, v = rng.uniform(-w / 2, w / 2, n), rng.uniform(-d / 2, d / 2, n)
    t = np.tan(np.radians(pitch))
    drop = {"flat": np.zeros(n), "shed": t * (v + d / 2), "gable": t * np.abs(v),
            "hip": t * np.maximum(np.abs(v), np.abs(u) - (w - d) / 2)}[kind]
    z = 50.0 - drop + rng.normal(0, noise, n)
    r = np.radians(turn)
    return u * np.cos(r) - v * np.sin(r) + 300.0, u * np.sin(r) + v * np.cos(r) - 120.0, z


def test_fit_plane_is_exact_on_a_plane():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-10, 10, 50), rng.uniform(-10, 10, 50)
    p = fit_plane(x, y, 0.2 * x - 0.1 * y + 7)
    assert (p.a, p.b, p.c) == pytest.approx((0.2, -0.1, 7.0))
    assert p.slope_deg == pytest.approx(np.degrees(np.arctan(np.hypot(0.2, 0.1))))


@pytest.mark.parametrize("kind,planes", [("flat", 1), ("shed", 1), ("gable", 2), ("hip", 4)])
def test_roof_types_and_planes_are_recovered(kind, planes):
    rng = np.random.default_rng(7)
    x, y, z = _roof(kind, rng)
    fit = fit_roof(x, y, z, seed="B-1", **FIT)
    assert fit.reason is None and fit.kind == kind and len(fit.planes) == planes
    assert fit.rmse < 0.05  # the 3 cm noise, not model error
    env = np.min([p.z(x, y) for p in fit.planes], axis=0)
    assert env.max() == pytest.approx(50.0, abs=0.1)
    if kind != "flat":
        assert all(p.slope_deg == pytest.approx(30.0 if kind != "shed" else 30.0, abs=1.0) for p in fit.planes)


def test_ransac_is_deterministic_per_seed():
    rng = np.random.default_rng(3)
    x, y, z = _roof("hip", rng)
    a = ransac_planes(x, y, z, threshold=0.15, min_points=20, max_planes=4, seed="DMC-B005")
    b = ransac_planes(x, y, z, threshold=0.15, min_points=20, max_planes=4, seed="DMC-B005")
    assert [p for p, _ in a] == [p for p, _ in b]
    assert all(np.array_equal(i, j) for (_, i), (_, j) in zip(a, b, strict=True))


def test_unmodelled_roofs_fall_back_with_a_reason():
    rng = np.random.default_rng(5)
    # a butterfly roof (valley in the middle) is not the lower envelope of its planes
    x, y, z = _roof("gable", rng)
    fit = fit_roof(x, y, 100.0 - z, seed=1, **FIT)
    assert fit.reason is not None
    # a tree-like cloud
    n = 4000
    x, y, z = rng.uniform(0, 20, n), rng.uniform(0, 20, n), rng.uniform(10, 20, n)
    fit = fit_roof(x, y, z, seed=2, **FIT)
    assert fit.reason is not None


def test_roof_kind_rules():
    t = np.tan(np.radians(25))
    assert roof_kind([Plane(0, 0, 10)], flat_slope=5) == "flat"
    assert roof_kind([Plane(t, 0, 10)], flat_slope=5) == "shed"
    assert roof_kind([Plane(t, 0, 10), Plane(-t, 0, 10)], flat_slope=5) == "gable"
    assert roof_kind([Plane(t, 0, 10), Plane(0, t, 10)], flat_slope=5) is None  # not opposite
    hip = [Plane(t, 0, 1), Plane(-t, 0, 1), Plane(0, t, 1), Plane(0, -t, 1)]
    assert roof_kind(hip, flat_slope=5) == "hip"
    assert roof_kind([Plane(0, 0, 10), Plane(t, 0, 10)], flat_slope=5) is None
