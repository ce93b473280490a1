"""The quadtree puts every item in exactly one leaf and stops where it is told to."""

from __future__ import annotations

import numpy as np

from pipeline.core.quadtree import build_quadtree


def test_every_item_in_exactly_one_leaf_and_inside_it():
    rng = np.random.default_rng(0)
    e, n = rng.uniform(-500, 800, 3000), rng.uniform(100, 900, 3000)
    e[:5] = e.max()  # points on the east and north edges of the root
    n[5:10] = n.max()
    tree = build_quadtree(e, n, lambda node: len(node.items) > 50)
    leaves = list(tree.leaves())
    held = np.concatenate([leaf.items for leaf in leaves])
    assert np.array_equal(np.sort(held), np.arange(3000))
    for leaf in leaves:
        assert len(leaf.items) <= 50
        assert np.all(leaf.contains(e[leaf.items], n[leaf.items]))
    for node in tree.walk():
        if node.children:
            assert sorted(np.concatenate([c.items for c in node.children]).tolist()) == sorted(node.items.tolist())
            assert all(c.key.startswith(node.key) and len(c.key) == len(node.key) + 1 for c in node.children)


def test_size_rule_and_empty_quadrants():
    e, n = np.array([0.0, 1.0, 999.0]), np.array([0.0, 1.0, 999.0])
    tree = build_quadtree(e, n, lambda node: node.size > 300 and len(node.items) > 1)
    assert tree.height == 2
    assert all(len(node.children) <= 4 for node in tree.walk())
    assert sum(1 for _ in tree.leaves()) == 2  # empty quadrants are left out
