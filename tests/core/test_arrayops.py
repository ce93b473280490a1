"""Array helpers against their plain numpy spellings."""

from __future__ import annotations

import numpy as np

from pipeline.core.arrayops import first_positions, occurrence_codes


def test_first_positions_are_where_each_code_first_appears():
    keys = np.random.default_rng(3).integers(0, 500, 10_000)
    codes = occurrence_codes(keys)
    first = first_positions(codes)
    _, want = np.unique(keys, return_index=True)
    assert np.array_equal(first, np.sort(want))
    assert np.array_equal(codes[first], np.arange(len(first)))
    assert np.array_equal(keys[first][codes], keys)
    assert len(first_positions(occurrence_codes(np.empty(0, np.int64)))) == 0
