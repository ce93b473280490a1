"""Array helpers against their plain numpy spellings."""

from __future__ import annotations

import numpy as np

from pipeline.core.arrayops import field_bounds, first_positions, occurrence_codes, widen_records


def test_first_positions_are_where_each_code_first_appears():
    keys = np.random.default_rng(3).integers(0, 500, 10_000)
    codes = occurrence_codes(keys)
    first = first_positions(codes)
    _, want = np.unique(keys, return_index=True)
    assert np.array_equal(first, np.sort(want))
    assert np.array_equal(codes[first], np.arange(len(first)))
    assert np.array_equal(keys[first][codes], keys)
    assert len(first_positions(occurrence_codes(np.empty(0, np.int64)))) == 0


def test_widen_records_matches_a_field_by_field_copy():
    src = np.zeros(1000, [("x", "<f8"), ("c", "u1"), ("i", "<u2")])
    rng = np.random.default_rng(1)
    src["x"], src["c"], src["i"] = rng.normal(size=1000), rng.integers(0, 255, 1000), rng.integers(0, 9999, 1000)
    # the same fields first (the fast path), then reordered and widened (field by field)
    for dtype in ([("x", "<f8"), ("c", "u1"), ("i", "<u2"), ("index", "<i8"), ("extra", "<f4")],
                  [("i", "<u2"), ("index", "<i8"), ("x", "<f8"), ("c", "u1")]):
        got = widen_records(src, np.dtype(dtype))
        assert got.dtype == np.dtype(dtype)
        for name in src.dtype.names:
            assert np.array_equal(got[name], src[name])
        assert not got["index"].any()
    assert len(widen_records(src[:0], np.dtype([("x", "<f8"), ("c", "u1"), ("i", "<u2"), ("n", "<i8")]))) == 0


def test_field_bounds_and_their_nan():
    rec = np.zeros(3, [("x", "<f8"), ("y", "<f4"), ("z", "<f8")])
    rec["x"], rec["y"], rec["z"] = [3, -1, 2], [0.5, 0.25, 1], [7, 8, 9]
    lo, hi = field_bounds(rec)
    assert lo.tolist() == [-1, 0.25, 7] and hi.tolist() == [3, 1, 9]
    rec["z"][1] = np.nan
    assert np.isnan(field_bounds(rec)[0][2])
