"""Bounding-volume arithmetic of 3D Tiles boxes, and a tile tree cut into external tilesets."""

from __future__ import annotations

import numpy as np

from pipeline.core.geodesy import SiteFrame
from pipeline.core.tiles import (TileNode, aabb_box, assemble_tree, box_contains, box_corners, matrix_from_json,
                                 matrix_to_json, points_in_box, rebase_uris, split_external, transform_box,
                                 translation)


def test_aabb_box_contains_its_points():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-50, 50, (500, 3))
    box = aabb_box(pts.min(0), pts.max(0))
    assert points_in_box(pts, box).all()
    assert not points_in_box(np.array([[60.0, 0, 0]]), box).any()


def test_containment_through_transforms():
    parent = aabb_box(np.array([-100, -100, 0]), np.array([100, 100, 50]))
    child = aabb_box(np.array([-10, -10, 0]), np.array([10, 10, 10]))
    assert box_contains(parent, child)
    assert box_contains(parent, child, translation(np.array([80.0, 0, 0])))
    assert not box_contains(parent, child, translation(np.array([95.0, 0, 0])))


def test_transform_box_to_ecef_keeps_corners():
    frame = SiteFrame(37.577, 126.8898)
    m = frame.enu_to_ecef_matrix()
    box = aabb_box(np.array([-300, -200, 0]), np.array([400, 500, 120]))
    ecef_box = transform_box(box, m)
    a = np.sort(box_corners(box, m), axis=0)
    b = np.sort(box_corners(ecef_box), axis=0)
    assert np.allclose(a, b, atol=1e-6)
    assert box_contains(ecef_box, box, m, tol=1e-4)


def test_matrix_json_is_column_major():
    m = translation(np.array([1.0, 2.0, 3.0]))
    js = matrix_to_json(m)
    assert js[12:15] == [1.0, 2.0, 3.0]
    assert np.array_equal(matrix_from_json(js), m)


def test_flat_box():
    box = [0, 0, 0, 10, 0, 0, 0, 10, 0, 0, 0, 0]
    assert points_in_box(np.array([[5.0, -5.0, 0.0]]), box).all()
    assert not points_in_box(np.array([[5.0, -5.0, 0.1]]), box).any()


def _full_quadtree(depth: int) -> dict:
    """The root tile of a full quadtree ``depth`` levels deep: every tile has content named by
    its key, the geometricError halves per level, the root has a transform."""
    nodes = {}
    keys = ["r"]
    for level in range(depth + 1):
        for key in keys:
            i = np.array([int(c) for c in key[1:]] or [0])
            lo = np.array([float(i.sum()), float(len(key)), 0.0])
            nodes[key] = TileNode(key, 64.0 / 2 ** level, f"tiles/{key}.glb", tuple(lo), tuple(lo + 1))
        keys = [k + str(c) for k in keys for c in range(4)]
    root, _, _ = assemble_tree(nodes)
    return root | {"refine": "REPLACE", "transform": [1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 5, 6, 7, 1]}


def _levels(tile: dict) -> int:
    return 1 + max((_levels(c) for c in tile.get("children", [])), default=0)


def _count(tile: dict) -> int:
    return 1 + sum(_count(c) for c in tile.get("children", []))


def _expand(tile: dict, docs: dict[str, dict], seen: list[str]) -> dict:
    """The tree with every external tileset's root put back in place of the tile that refers to it."""
    uri = tile.get("content", {}).get("uri", "")
    if uri.endswith(".json"):
        seen.append(uri)
        return _expand(docs[uri], docs, seen)
    return dict(tile, children=[_expand(c, docs, seen) for c in tile.get("children", [])]) if "children" in tile \
        else tile


def _strip(tile: dict) -> dict:
    return {k: (_strip_all(v) if k == "children" else v) for k, v in tile.items() if k != "refine" or v != "REPLACE"}


def _strip_all(tiles: list[dict]) -> list[dict]:
    return [_strip(t) for t in tiles]


def test_split_external_cuts_a_deep_tree_into_small_tilesets_that_put_back_give_it_whole():
    import copy

    whole = _full_quadtree(6)
    kept = copy.deepcopy(whole)
    root, docs = split_external(whole, 100)
    assert whole == kept  # the input is left as it was
    assert _count(whole) == 5461 and all(_count(d) <= 100 for d in [root, *docs.values()])
    # breadth first: the root keeps its upper levels whole (1 + 4 + 16 + 64 tiles) and the children
    # of the first three level-3 tiles, which still fit
    assert _count(root) == 85 + 3 * 4
    assert 5461 / 100 < len(docs) < 3 * 5461 / 100
    seen: list[str] = []
    assert _strip(_expand(root, docs, seen)) == _strip(whole)  # the same tiles, boxes, errors and contents
    assert sorted(seen) == sorted(docs) and len(set(seen)) == len(seen)  # each tileset referred to once
    assert "transform" in root and not any("transform" in d for d in docs.values())

    def refs(tile: dict, parent_error: float):
        for child in tile.get("children", []):
            if child.get("content", {}).get("uri", "").endswith(".json"):
                yield child, parent_error, tile["geometricError"]
            yield from refs(child, tile["geometricError"])

    for doc in [root, *docs.values()]:
        for ref, _, parent_error in refs(doc, doc["geometricError"]):
            moved = docs[ref["content"]["uri"]]
            # the referring tile is refined with its parent, onto the moved tile's own content
            assert ref["geometricError"] == parent_error >= moved["geometricError"]
            assert ref["boundingVolume"] == moved["boundingVolume"] and "children" not in ref
            assert moved["content"]["uri"].endswith(".glb") and moved["refine"] == "REPLACE"


def test_a_shallow_tree_is_left_whole():
    import copy

    whole = _full_quadtree(2)
    root, docs = split_external(copy.deepcopy(whole), 21)
    assert docs == {} and root == whole


def test_rebased_uris_point_at_the_same_files():
    tile = {"content": {"uri": "tiles/r01.glb"}, "children": [{"content": {"uri": "tilesets/r012.json"}}]}
    out = rebase_uris(tile, "tilesets")
    assert out["content"]["uri"] == "../tiles/r01.glb" and out["children"][0]["content"]["uri"] == "r012.json"
    assert tile["content"]["uri"] == "tiles/r01.glb"  # the input is left as it was
