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


def test_pairs_given_by_id_hold_whatever_their_overlap_and_the_rest_match_by_overlap():
    layer = [shapely.box(0, 0, 20, 20), shapely.box(40, 0, 50, 10), shapely.box(80, 0, 90, 10)]
    model = [shapely.box(0, 0, 5, 5),          # 0: names layer 0 by id, IoU 1/16
             shapely.box(40, 0, 50, 11),       # 1: matches layer 1 by overlap
             shapely.box(1, 1, 21, 21)]        # 2: would pair with layer 0, which is taken: a conflict
    m = match_outlines(layer, model, given=[(0, 0)])
    assert sorted((i, j) for i, j, _ in m.pairs) == [(0, 0), (1, 1)]
    assert dict(((i, j), iou) for i, j, iou in m.pairs)[(0, 0)] == 0.0625
    assert m.conflicts == [(2, [0])] and m.only_first == [2] and m.only_second == []
    # given pairs stand with the other source empty of overlaps, too
    assert [(i, j) for i, j, _ in match_outlines(layer[:1], [shapely.box(500, 0, 501, 1)], given=[(0, 0)]).pairs] \
        == [(0, 0)]
