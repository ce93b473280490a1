"""The tileset checker passes a good tileset and flags each deliberate breakage."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from pipeline.core.content import terrain_glb
from pipeline.core.geodesy import SiteFrame
from pipeline.core.tiles import aabb_box, matrix_to_json, tileset_doc
from pipeline.core.tileset_check import check_tileset


def _good(tmp_path):
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 10, 2]], float)
    f = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
    (tmp_path / "a.glb").write_bytes(terrain_glb(v, f, v.mean(0)))
    (tmp_path / "b.glb").write_bytes(terrain_glb(v + [20, 0, 0], f, v.mean(0) + [20, 0, 0]))
    child_a = {"boundingVolume": {"box": aabb_box(v.min(0), v.max(0))}, "geometricError": 0.0,
               "content": {"uri": "a.glb"}}
    child_b = {"boundingVolume": {"box": aabb_box(v.min(0) + [20, 0, 0], v.max(0) + [20, 0, 0])},
               "geometricError": 0.0, "content": {"uri": "b.glb"}}
    root = {"boundingVolume": {"box": aabb_box(np.array([0, 0, 0]), np.array([30, 10, 2]))},
            "geometricError": 5.0, "refine": "ADD",
            "transform": matrix_to_json(SiteFrame(37.577, 126.8898).enu_to_ecef_matrix()),
            "children": [child_a, child_b]}
    return tileset_doc(root, 10.0)


def _write(tmp_path, doc):
    p = tmp_path / "tileset.json"
    p.write_text(json.dumps(doc))
    return p


def test_good_tileset_passes(tmp_path):
    r = check_tileset(_write(tmp_path, _good(tmp_path)))
    assert r.problems == [] and r.contents == 2


@pytest.mark.parametrize("breakage,expect", [
    ("child_outside", "not inside its parent"),
    ("content_outside", "outside the bounding box"),
    ("error_grows", "exceeds its parent"),
    ("missing_content", "does not exist"),
    ("version", "asset.version"),
])
def test_breakages_are_flagged(tmp_path, breakage, expect):
    doc = copy.deepcopy(_good(tmp_path))
    child = doc["root"]["children"][0]
    if breakage == "child_outside":
        child["boundingVolume"]["box"][0] += 100.0
    elif breakage == "content_outside":
        child["boundingVolume"]["box"][9:12] = [0, 0, 0.1]
    elif breakage == "error_grows":
        child["geometricError"] = 50.0
    elif breakage == "missing_content":
        child["content"]["uri"] = "nothere.glb"
    elif breakage == "version":
        doc["asset"]["version"] = "0.0"
    problems = check_tileset(_write(tmp_path, doc)).problems
    assert any(expect in p for p in problems), problems
