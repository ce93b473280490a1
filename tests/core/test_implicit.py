"""Implicit tiling: a quadtree tileset with template URIs and a binary subtree, as Cesium's
implicit samples are laid out, passes; a missing content, a broken subtree, a content outside
its implicit tile and availability counts that lie are found."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from pipeline.core.content import mesh_glb, smooth_mesh
from pipeline.core.implicit import child_box, morton_decode
from pipeline.core.tiles import aabb_box, tileset_doc
from pipeline.core.tileset_check import validate_tileset
from tests.conftest import official_agrees

#: root box 0..100 m square, 0..10 m high; available: the root and level-1 tiles (0, 0) and (1, 1)
AVAILABLE = [(0, (0, 0)), (1, (0, 0)), (1, (1, 1))]


def _square(lo: tuple[float, float], size: float) -> bytes:
    e, n = lo
    v = np.array([[e + 1, n + 1, 1], [e + size - 1, n + 1, 1], [e + 1, n + size - 1, 2],
                  [e + size - 1, n + size - 1, 3]])
    return mesh_glb(smooth_mesh(v, np.array([[0, 1, 2], [1, 3, 2]], np.int32)), compression="quantized")


def _subtree(bits: int, count: int, declared: int | None = None) -> bytes:
    binary = bytes([bits]) + b"\0" * 7
    av = {"bitstream": 0, "availableCount": count if declared is None else declared}
    doc = {"buffers": [{"byteLength": 8}], "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": 1}],
           "tileAvailability": av, "contentAvailability": [av], "childSubtreeAvailability": {"constant": 0}}
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 8)
    return struct.pack("<4sIQQ", b"subt", 1, len(js), len(binary)) + js + binary


def _implicit(tmp_path, *, declared: int | None = None):
    (tmp_path / "content").mkdir()
    (tmp_path / "subtrees").mkdir()
    for level, (x, y) in AVAILABLE:
        size = 100.0 / 2 ** level
        (tmp_path / "content" / f"content_{level}__{x}_{y}.glb").write_bytes(_square((x * size, y * size), size))
    # Morton order per level: root = bit 0, level 1 starts at bit 1: (0, 0) -> 1, (1, 1) -> 1 + 3
    (tmp_path / "subtrees" / "0.0.0.subtree").write_bytes(_subtree(0b10011, 3, declared))
    root = {"boundingVolume": {"box": aabb_box(np.array([0, 0, 0]), np.array([100, 100, 10]), 0.0)},
            "geometricError": 8.0, "refine": "REPLACE",
            "content": {"uri": "content/content_{level}__{x}_{y}.glb"},
            "implicitTiling": {"subdivisionScheme": "QUADTREE", "subtreeLevels": 2, "availableLevels": 2,
                               "subtrees": {"uri": "subtrees/{level}.{x}.{y}.subtree"}}}
    (tmp_path / "tileset.json").write_text(json.dumps(tileset_doc(root, 16.0)))
    return tmp_path / "tileset.json"


def test_morton_and_child_boxes():
    assert [morton_decode(m, 2) for m in range(4)] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert morton_decode(7, 3) == (1, 1, 1)
    box = aabb_box(np.array([0, 0, 0]), np.array([100, 100, 10]), 0.0)
    assert child_box(box, 1, (1, 0)) == pytest.approx([75, 25, 5, 25, 0, 0, 0, 25, 0, 0, 0, 5])


def test_implicit_quadtree_is_valid(tmp_path):
    report = validate_tileset(_implicit(tmp_path))
    assert report.valid, report.problems
    official_agrees(tmp_path / "tileset.json")
    assert report.contents == 3
    assert any("3 available tile(s)" in f.message for f in report.findings)


def test_missing_content_and_subtree_are_errors(tmp_path):
    path = _implicit(tmp_path)
    (tmp_path / "content" / "content_1__1_1.glb").unlink()
    problems = validate_tileset(path, gltf=False).problems
    assert len(problems) == 1 and "content_1__1_1.glb does not exist" in problems[0]
    (tmp_path / "subtrees" / "0.0.0.subtree").unlink()
    assert any("subtree subtrees/0.0.0.subtree does not exist" in p for p in validate_tileset(path).problems)


def test_content_outside_its_implicit_tile(tmp_path):
    path = _implicit(tmp_path)
    # the (0, 0) tile's file holds the (1, 1) square: inside the root, outside its own tile
    (tmp_path / "content" / "content_1__0_0.glb").write_bytes(_square((50, 50), 50))
    problems = validate_tileset(path, gltf=False).problems
    assert len(problems) == 1 and "content_1__0_0.glb" in problems[0] and "outside" in problems[0]


def test_available_count_that_lies(tmp_path):
    problems = validate_tileset(_implicit(tmp_path, declared=4), gltf=False).problems
    assert problems and all("availableCount is 4, the bitstream has 3" in p for p in problems)


def test_content_a_hair_outside_is_a_warning(tmp_path):
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 10, 2.004]], float)
    (tmp_path / "a.glb").write_bytes(mesh_glb(smooth_mesh(v, np.array([[0, 1, 2], [1, 3, 2]], np.int32)),
                                              compression="none"))
    root = {"boundingVolume": {"box": aabb_box(np.array([0, 0, 0]), np.array([10, 10, 2]), 0.0)},
            "geometricError": 0.0, "refine": "ADD", "content": {"uri": "a.glb"}}
    (tmp_path / "tileset.json").write_text(json.dumps(tileset_doc(root, 1.0)))
    report = validate_tileset(tmp_path / "tileset.json", gltf=False)
    assert report.valid, report.problems
    assert any("slightly outside" in f.message for f in report.warnings)
