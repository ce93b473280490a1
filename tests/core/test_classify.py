"""ASPRS classes from heights and local geometry: the points said to need geometry are exactly
those whose class reads it."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.classify import (BUILDING, GROUND, HIGH_VEGETATION, LOW_VEGETATION, classify_points,
                                    may_need_geometry, needs_geometry)


@pytest.mark.parametrize("reclassify", [False, True])
def test_geometry_is_read_only_where_it_is_said_to_be_needed(reclassify):
    rng = np.random.default_rng(3)
    n = 50_000
    hag = rng.uniform(-1, 30, n)
    returns = rng.integers(1, 4, n).astype(np.uint8)
    existing = rng.choice(np.array([0, 1, 2, 6, 9], np.uint8), n)
    sv = rng.uniform(0, 0.2, n).astype(np.float32)
    kw = dict(ground_threshold=0.4, reclassify=reclassify)
    base = classify_points(hag, sv, returns, existing, **kw)
    need = needs_geometry(hag, returns, existing, reclassify=reclassify)
    assert need.any() and not need.all()
    scrambled = np.where(need, sv, np.float32(np.nan))
    assert np.array_equal(classify_points(hag, scrambled, returns, existing, **kw), base)
    flipped = np.where(need, np.where(sv <= 0.05, 0.5, 0.0), sv)  # smooth <-> rough where needed
    assert np.all(classify_points(hag, flipped, returns, existing, **kw)[need] != base[need])
    # the height-free test is a superset: pass 1 keeps a cell's ring only where it can matter
    assert np.all(may_need_geometry(returns, existing, reclassify=reclassify)[need])


def test_classes_by_height_echo_and_roughness():
    hag = np.array([0.1, 0.3, 1.0, 5.0, 5.0, 5.0, 5.0])
    sv = np.array([0, 0, 0, 0.01, 0.2, 0.01, 0.01], np.float32)
    returns = np.array([1, 1, 1, 1, 1, 2, 1], np.uint8)
    existing = np.array([1, 1, 0, 1, 1, 1, 9], np.uint8)
    got = classify_points(hag, sv, returns, existing, ground_threshold=0.2)
    assert got.tolist() == [GROUND, LOW_VEGETATION, 4, BUILDING, HIGH_VEGETATION, HIGH_VEGETATION, 9]
