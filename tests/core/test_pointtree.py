"""The point octree puts every point in exactly one node and halves the spacing per level."""

from __future__ import annotations

import numpy as np

from pipeline.core.content import point_glb, position_step
from pipeline.core.pointtree import OctreeFrame, build_point_tree, coarse_levels, column_trees
from pipeline.core.gltf import glb_positions
from pipeline.core.gltf import gltf_to_enu


def _city(n: int = 300_000) -> np.ndarray:
    rng = np.random.default_rng(5)
    xyz = np.column_stack([rng.uniform(0, 500, n), rng.uniform(0, 400, n), rng.normal(15, 0.5, n)])
    roofs = rng.random(n) < 0.2
    xyz[roofs, 2] += rng.choice([20.0, 60.0, 100.0], roofs.sum())
    return xyz


def test_every_point_exactly_once_and_spacing_halves():
    xyz = _city()
    tree = build_point_tree(xyz, max_points=20_000, root_cells=64)
    nodes = list(tree.walk())
    allidx = np.concatenate([n.index for n in nodes])
    assert len(allidx) == len(xyz) and len(np.unique(allidx)) == len(xyz)
    for n in nodes:
        pts = xyz[n.index]
        assert np.all(pts >= n.lo - 1e-9) and np.all(pts <= n.hi + 1e-9)
        if n.children:
            for c in n.children:
                assert c.spacing in (0.0, n.spacing / 2)
                assert np.all(c.lo >= n.lo - 1e-9) and np.all(c.hi <= n.hi + 1e-9)
        else:
            assert len(n.index) <= 20_000 and n.spacing == 0.0
    # a sampled node keeps at most one point per cell of its spacing
    root = xyz[tree.index]
    cells = np.floor((root - root.min(0)) / tree.spacing).astype(int)
    assert len(np.unique(cells, axis=0)) >= 0.5 * len(root)


def test_quantized_positions_decode_within_half_a_step(tmp_path):
    xyz = _city(5000) + [1000.0, -2000.0, 0.0]
    data = point_glb(xyz, np.zeros((len(xyz), 3), np.uint16), np.zeros(len(xyz), np.uint16),
                     np.zeros(len(xyz), np.uint8))
    (tmp_path / "p.glb").write_bytes(data)
    decoded = glb_positions(tmp_path / "p.glb")  # z-up tile frame = ENU here
    step = gltf_to_enu(position_step(xyz))
    assert np.all(np.abs(decoded - xyz) <= np.abs(step) / 2 + 1e-9)
    assert len(data) / len(xyz) < 21  # 8 B position + 4 colour + 4 intensity + 4 class + header


def test_cell_parallel_tree_keeps_the_first_point_of_every_cell_at_every_level():
    """The tile stage's octree, built per cell (``column_trees``) and above the cells from their
    candidates (``coarse_levels``), checked against its definition with float lattices computed
    here: every point in one node; a sampled node keeps the first point, in input order, of each
    of its lattice cells among the points of its subtree, and no second one."""
    rng = np.random.default_rng(11)
    cell_size, n = 50.0, 60_000
    xyz = np.column_stack([rng.uniform(0, 100, n), rng.uniform(0, 100, n), rng.uniform(0, 30, n)])
    xyz[rng.random(n) < 0.3, 2] += 40.0
    frame = OctreeFrame.covering(xyz.min(0), xyz.max(0), cell_size, 16)
    # the stage's order: cells in sorted order, input order within each
    cell = np.floor(xyz[:, :2] / cell_size).astype(int)
    xyz = xyz[np.lexsort((np.arange(n), cell[:, 1], cell[:, 0]))]
    cell = np.floor(xyz[:, :2] / cell_size).astype(int)
    nodes: dict[str, tuple[int, np.ndarray]] = {}
    candidates = []
    for c in np.unique(cell, axis=0):
        members = np.flatnonzero((cell == c).all(axis=1))
        cand, trees = column_trees(xyz[members], frame, max_points=1500)
        candidates.append(members[cand])
        for t in trees:
            for node in t.walk():
                # one octant digit per level after "r"; a leaf (spacing 0) keeps every point
                nodes[node.key] = (len(node.key) - 1 if node.spacing else -1, members[node.index])
    cand = np.concatenate(candidates)
    for key, level, idx in coarse_levels(xyz[cand], frame):
        nodes[key] = (level, cand[idx])
    every = np.concatenate([idx for _, idx in nodes.values()])
    assert len(every) == n and len(np.unique(every)) == n
    assert frame.split > 0 and any(lv > frame.split for lv, _ in nodes.values())
    for key, (level, idx) in nodes.items():
        if level < 0:
            continue  # a leaf keeps all its points
        below = np.sort(np.concatenate([i for k, (_, i) in nodes.items() if k.startswith(key)]))
        lattice = np.floor((xyz[below] - frame.origin) / frame.spacing(level)).astype(np.int64)
        _, first = np.unique(lattice, axis=0, return_index=True)
        kept = set(idx.tolist())
        assert kept <= set(below[first].tolist()), key  # the first of its cell, never a later one
        if level >= frame.split:
            assert kept == set(below[first].tolist()), key  # and in every cell
