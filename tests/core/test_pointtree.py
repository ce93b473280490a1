"""The point octree puts every point in exactly one node and halves the spacing per level."""

from __future__ import annotations

import numpy as np

from pipeline.core.content import point_glb, position_step
from pipeline.core.pointtree import build_point_tree
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
