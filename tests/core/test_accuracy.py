"""The anchors' error budget: root sum of squares, and an unknown part leaves the total unknown."""

from __future__ import annotations

import pytest

from pipeline.core.accuracy import ErrorPart, combine, geoid_part


def test_parts_combine_by_root_sum_of_squares_per_height():
    acc = combine([ErrorPart("georeferencing", 0.03, 0.04), ErrorPart("mesh", 0.0, 0.12),
                   geoid_part("KNGeoid24", 0.023, "orthometric")])
    assert acc.complete and acc.horizontal_m == pytest.approx(0.03)
    assert acc.vertical_m == pytest.approx((0.04**2 + 0.12**2 + 0.023**2) ** 0.5, abs=1e-4)
    assert acc.vertical_orthometric_m == pytest.approx((0.04**2 + 0.12**2) ** 0.5, abs=1e-4)


def test_geoid_error_lands_on_the_derived_height():
    assert geoid_part("EGM96", 1.0, "orthometric").applies_to == "ellipsoidal"
    acc = combine([ErrorPart("survey", 0.01, 0.02), geoid_part("EGM96", 1.0, "ellipsoidal")])
    assert acc.vertical_m == pytest.approx(0.02) and acc.vertical_orthometric_m == pytest.approx(1.0002, abs=1e-4)


def test_an_unknown_part_makes_the_total_unknown_but_stays_listed():
    acc = combine([ErrorPart("georeferencing", None, 0.03), ErrorPart("mesh", 0.0, None, note="LoD1 roof"),
                   geoid_part("grid", None, "orthometric")])
    assert not acc.complete
    assert acc.horizontal_m is None and acc.vertical_m is None and acc.vertical_orthometric_m is None
    assert [p.source for p in acc.parts] == ["georeferencing", "mesh", "geoid"]
