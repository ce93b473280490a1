"""Similarity fits recover known transforms; RANSAC flags blunders; degenerate sets are refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipeline.core.helmert import Similarity, fit_similarity, is_degenerate, robust_similarity
from pipeline.errors import InputError


def _truth(seed: int) -> Similarity:
    rng = np.random.default_rng(seed)
    rot = Rotation.random(random_state=seed).as_matrix()
    return Similarity(1.0 + rng.uniform(-1e-3, 1e-3), rot, rng.uniform(-5000, 5000, 3))


@pytest.mark.parametrize("seed", range(8))
def test_closed_form_recovers_any_transform(seed):
    t = _truth(seed)
    src = np.random.default_rng(seed + 100).uniform(-300, 300, (12, 3))
    got = fit_similarity(src, t.apply(src))
    probe = np.random.default_rng(seed + 200).uniform(-500, 500, (100, 3))
    assert np.abs(got.apply(probe) - t.apply(probe)).max() < 1e-3
    assert got.scale == pytest.approx(t.scale, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_ransac_with_20_percent_blunders(seed):
    t = _truth(seed)
    rng = np.random.default_rng(seed + 300)
    src = rng.uniform(-400, 400, (20, 3))
    src[:, 2] *= 0.1  # control is mostly on the ground: a flat-ish set, as in practice
    dst = t.apply(src)
    bad = rng.choice(20, 4, replace=False)
    dst[bad] += rng.uniform(0.5, 5.0, (4, 3)) * rng.choice([-1, 1], (4, 3))
    check = rng.uniform(-400, 400, (5, 3))
    r = robust_similarity(src, dst, threshold=0.05, check_source=check, check_target=t.apply(check))
    assert set(np.flatnonzero(~r.inliers)) == set(bad.tolist())
    probe = rng.uniform(-500, 500, (100, 3))
    assert np.abs(r.transform.apply(probe) - t.apply(probe)).max() < 1e-3
    assert r.rmse_h < 1e-6 and r.rmse_v < 1e-6 and r.check_rmse_h < 1e-6


def test_noise_is_reported_as_rmse():
    t = _truth(1)
    rng = np.random.default_rng(9)
    src = rng.uniform(-300, 300, (30, 3))
    dst = t.apply(src) + rng.normal(0, [0.02, 0.02, 0.03], (30, 3))
    r = robust_similarity(src, dst, threshold=0.15)
    assert r.inliers.all()
    assert 0.015 < r.rmse_h < 0.04 and 0.015 < r.rmse_v < 0.045


def test_degenerate_sets_are_refused():
    line = np.column_stack([np.arange(5.0) * 10, np.arange(5.0) * 5, np.zeros(5)])
    assert is_degenerate(line) and is_degenerate(line[:2])
    with pytest.raises(InputError, match="non-collinear") as e:
        robust_similarity(line, line + 1.0, path="gcps.csv")
    assert "gcps.csv" in str(e.value)
    with pytest.raises(InputError):
        robust_similarity(line[:2], line[:2], path="gcps.csv")
