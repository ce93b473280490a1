"""Matching outlines of two sources: the same building once, conflicts named, the rest kept."""

from __future__ import annotations

import shapely

from pipeline.core.footprint_merge import match_outlines


def test_pairs_conflicts_and_outlines_of_one_source():
    layer = [shapely.box(0, 0, 20, 20),        # 0: the LiDAR sees it a little shifted
             shapely.box(40, 0, 50, 10),       # 1: \\ a row of two houses the LiDAR
             shapely.box(50, 0, 60, 10),       # 2: /  outlines as one
             shapely.box(100, 0, 110, 10)]     # 3: demolished: no LiDAR outline
    lidar = [shapely.box(1, 1, 21, 21),        # 0 -> layer 0
             shapely.box(40, 0, 60, 10),       # 1 overlaps layer 1 and 2, IoU 0.5 with each: the first pairs
             shapely.box(200, 0, 210, 10),     # 2: only the LiDAR has it
             shapely.box(19, 19, 30, 30)]      # 3: brushes layer 0's corner only
    m = match_outlines(layer, lidar, min_iou=0.6)
    assert [(i, j) for i, j, _ in m.pairs] == [(0, 0)] and 0.8 < m.pairs[0][2] < 0.9
    assert m.conflicts == [(1, [1, 2])]
    assert m.only_second == [2, 3] and m.only_first == [1, 2, 3]


def test_each_outline_pairs_once_best_first():
    layer = [shapely.box(0, 0, 10, 10), shapely.box(0, 0, 10, 9)]
    lidar = [shapely.box(0, 0, 10, 9.5)]
    m = match_outlines(layer, lidar)
    assert [(i, j) for i, j, _ in m.pairs] == [(0, 0)] or [(i, j) for i, j, _ in m.pairs] == [(1, 0)]
    assert len(m.pairs) == 1 and len(m.only_first) == 1


def test_empty_sources():
    m = match_outlines([], [shapely.box(0, 0, 1, 1)])
    assert m.only_second == [0] and not m.pairs
    assert match_outlines([shapely.box(0, 0, 1, 1)], []).only_first == [0]
