"""Octree of a point cloud for 3D Tiles with additive refinement (ENU metres).

Each node keeps one point per cell of a grid whose spacing halves at every level (the first point
of the cell in input order, so the result is deterministic); the points it does not keep go to
its eight children. A node with few enough points keeps them all and becomes a leaf. Every input
point therefore sits in exactly one node, and a node's sampling spacing is the geometric error of
showing it and its ancestors only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pipeline.core.arrayops import column_bounds, first_of_each


@dataclass
class PointNode:
    key: str                      # "r", "r0", "r07", ... (octant digits from the root)
    index: np.ndarray             # indices of this node's own points into the input array
    spacing: float                # sampling spacing of this node's points (m); 0 for a leaf
    lo: np.ndarray                # AABB of the whole subtree (content and children)
    hi: np.ndarray
    children: list[PointNode] = field(default_factory=list)

    def walk(self) -> Iterator[PointNode]:
        yield self
        for c in self.children:
            yield from c.walk()


def _node(xyz: np.ndarray, q: np.ndarray, idx: np.ndarray, pos: np.ndarray, shift: int, cells: int,
          spacing: float, key: str, max_points: int, depth: int, max_depth: int) -> PointNode:
    """The subtree of the points ``idx`` in the node at integer position ``pos`` of its depth.

    ``q`` holds every point's integer coordinates on the finest lattice of the tree (``max_depth``'s
    spacing): a point's lattice cell at this node's spacing is ``q >> shift``, and the node covers
    ``cells`` of them per axis from ``pos * cells``. Integer shifts replace a floor division of
    float coordinates at every level, and coordinates are gathered as 12 bytes, not 24.
    """
    if len(idx) <= max_points or depth >= max_depth:
        lo, hi = column_bounds(xyz[idx])
        return PointNode(key, idx, 0.0, lo, hi)
    # the children split the lattice exactly, so every relative cell lies in [0, cells)
    qi = q[idx]
    kind = np.int32 if cells <= 1024 else np.int64
    rel = [((qi[:, a] >> shift) - int(pos[a]) * cells).astype(kind, copy=False) for a in range(3)]
    keep = first_of_each((rel[2] * cells + rel[1]) * cells + rel[0])
    own = idx[keep]
    lo, hi = column_bounds(xyz[own])
    node = PointNode(key, own, spacing, lo, hi)
    moved = ~keep
    rest = idx[moved]
    upper = [(r >= cells // 2).view(np.uint8) for r in rel]
    octant = (upper[0] | (upper[1] << 1) | (upper[2] << 2))[moved]
    # one stable sort of 8-bit keys (a radix sort in numpy) splits the points into octants in
    # input order, where a mask per octant made eight passes
    order = np.argsort(octant, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(octant, minlength=8))]
    for o in range(8):
        sub = rest[order[bounds[o]:bounds[o + 1]]]
        if len(sub):
            child = _node(xyz, q, sub, 2 * pos + np.array([o & 1, (o >> 1) & 1, (o >> 2) & 1]), shift - 1,
                          cells, spacing / 2, f"{key}{o}", max_points, depth + 1, max_depth)
            node.children.append(child)
            node.lo, node.hi = np.minimum(node.lo, child.lo), np.maximum(node.hi, child.hi)
    return node


def _subtree(xyz: np.ndarray, idx: np.ndarray, corner: np.ndarray, spacing: float, cells: int, key: str,
             max_points: int, depth: int, max_depth: int) -> PointNode:
    """The octree of ``xyz[idx]`` in the cube of edge ``cells * spacing`` from ``corner`` (m),
    rooted at ``depth``; node indices point into ``xyz``."""
    levels = max(max_depth - depth, 0)
    pts = xyz[idx]
    fine = spacing / 2 ** levels
    top = cells * 2 ** levels - 1
    q = np.clip(np.floor((pts - corner) / fine), 0, top).astype(np.int32 if top < 2 ** 31 else np.int64)
    tree = _node(pts, q, np.arange(len(idx)), np.zeros(3, np.int64), levels, cells, spacing, key, max_points,
                 depth, max_depth)
    for n in tree.walk():
        n.index = idx[n.index]
    return tree


def build_point_tree(xyz: np.ndarray, *, max_points: int = 100_000, root_cells: int = 128,
                     max_depth: int = 16) -> PointNode:
    """Octree over ``xyz`` (N, 3) metres; the root samples on a grid of ``root_cells`` per edge of
    the bounding cube, each level halving the spacing, until nodes hold at most ``max_points``."""
    xyz = np.asarray(xyz, np.float64)
    lo, hi = column_bounds(xyz)
    half = float((hi - lo).max()) / 2 * 1.0001 + 1e-9
    centre = (lo + hi) / 2
    return _subtree(xyz, np.arange(len(xyz)), centre - half, 2 * half / root_cells, root_cells, "r", max_points,
                    0, max_depth)


@dataclass(frozen=True)
class OctreeFrame:
    """An octree cube anchored on the cell lattice (ENU metres) for cell-parallel tiling.

    The cube's corner sits on a multiple of ``cell_size`` and its edge is ``cell_size * 2**split``,
    so every node at depth ``split`` is one cell column (in E, N) by ``cell_size`` in U: workers
    build those subtrees from their own cell. Levels above ``split`` are sampled from every cell's
    candidates, which are one point per cell of the level ``split - 1`` lattice (that lattice
    divides a cell, so the candidates of different cells never share a lattice cell).
    """

    origin: tuple[float, float, float]
    cell_size: float
    split: int
    root_cells: int

    @classmethod
    def covering(cls, lo: np.ndarray, hi: np.ndarray, cell_size: float, root_cells: int) -> OctreeFrame:
        if root_cells % 2:
            raise ValueError("root_cells must be even so that lattice cells nest in a cell")
        first = np.floor(np.asarray(lo) / cell_size)
        cells = np.floor(np.asarray(hi) / cell_size) - first + 1
        split = int(np.ceil(np.log2(max(float(cells.max()), 1.0))))
        return cls(tuple((first * cell_size).tolist()), float(cell_size), split, root_cells)

    @property
    def edge(self) -> float:
        return self.cell_size * 2 ** self.split

    def spacing(self, level: int) -> float:
        """Sampling spacing (m) of nodes at ``level``."""
        return self.edge / self.root_cells / 2 ** level

    def key(self, coord: np.ndarray | tuple[int, int, int], level: int) -> str:
        """Node name: "r" and one octant digit per level (bit 1 = E, 2 = N, 4 = U)."""
        x, y, z = (int(v) for v in coord)
        digits = [str(((x >> b) & 1) | (((y >> b) & 1) << 1) | (((z >> b) & 1) << 2))
                  for b in range(level - 1, -1, -1)]
        return "r" + "".join(digits)

    def lattice(self, xyz: np.ndarray, level: int) -> np.ndarray:
        """(N, 3) integer cells of ``level``'s sampling lattice (``spacing(level)`` m) counted
        from the origin, clipped to the cube.

        Every coarser lattice and every node follows from it by integer arithmetic: the spacings
        are this one's times powers of two (exactly, in floating point too), so ``cells >> k`` is
        the lattice ``k`` levels up and ``(cells >> k) // root_cells`` the node there. A point
        thus lands in the same cell at every level, which separate float divisions at each level
        need not give on a boundary.
        """
        top = self.root_cells * 2 ** level - 1
        c = np.floor((xyz - np.asarray(self.origin)) / self.spacing(level))
        return np.clip(c, 0, top).astype(np.int32 if top < 2 ** 31 else np.int64)


def _packed(cells: np.ndarray, span: int) -> np.ndarray:
    """One int64 key per (N, 3) integer cell in [0, span), ordered by U, then N, then E."""
    c = cells.astype(np.int64, copy=False)
    return (c[:, 2] * span + c[:, 1]) * span + c[:, 0]


def _first_per_cell(cells: np.ndarray, span: int) -> np.ndarray:
    """Sorted indices of the first row of each distinct (N, 3) integer cell in [0, span)."""
    return np.flatnonzero(first_of_each(_packed(cells, span)))


def column_trees(xyz: np.ndarray, frame: OctreeFrame, *, max_points: int, max_depth: int = 16
                 ) -> tuple[np.ndarray, list[PointNode]]:
    """Split one cell's points: indices of its candidates for the levels above ``frame.split``,
    and the subtrees (one per occupied node at depth ``split``) holding every other point."""
    finest = max(max_depth, frame.split)
    q = frame.lattice(xyz, finest)  # every level's cells and nodes come from these by shifts
    if frame.split > 0:
        up = finest - (frame.split - 1)
        cand = _first_per_cell(q >> up, frame.root_cells * 2 ** (frame.split - 1))
        is_cand = np.zeros(len(xyz), bool)
        is_cand[cand] = True
        rest = np.flatnonzero(~is_cand)
    else:
        cand, rest = np.empty(0, np.int64), np.arange(len(xyz))
    trees = []
    if len(rest):
        shift = finest - frame.split
        nodes = ((q[rest] >> shift) // frame.root_cells).astype(np.int64)
        for c, members in _groups(nodes, frame.split):
            # ``_node`` takes the node's absolute position: its cells are (q >> shift) - c * root_cells
            trees.append(_node(xyz, q, rest[members], c, shift, frame.root_cells, frame.spacing(frame.split),
                               frame.key(c, frame.split), max_points, frame.split, max_depth))
    return cand, trees


def coarse_levels(xyz: np.ndarray, frame: OctreeFrame) -> list[tuple[str, int, np.ndarray]]:
    """(key, level, indices) of the nodes above ``frame.split`` built from all cells' candidates:
    each level keeps the first remaining point per lattice cell; the last keeps the rest (one per
    lattice cell by construction)."""
    if frame.split == 0:
        return []
    last = frame.split - 1
    q = frame.lattice(xyz, last)
    remaining = np.arange(len(xyz))
    out = []
    for level in range(frame.split):
        if level < last:
            pick = remaining[_first_per_cell(q[remaining] >> (last - level), frame.root_cells * 2 ** level)]
        else:
            pick = remaining
        nodes = ((q[pick] >> (last - level)) // frame.root_cells).astype(np.int64)
        for c, members in _groups(nodes, level):
            out.append((frame.key(c, level), level, pick[members]))
        taken = np.zeros(len(xyz), bool)
        taken[pick] = True
        remaining = remaining[~taken[remaining]]
    return out


def _groups(coords: np.ndarray, level: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(node coordinate, member indices in input order) per distinct node of ``coords``."""
    if len(coords) == 0:
        return []  # a sparse cloud can run out of points before the last coarse level
    flat = _packed(coords, 2 ** level)
    order = np.argsort(flat, kind="stable")
    starts = np.flatnonzero(np.r_[True, flat[order][1:] != flat[order][:-1]])
    ends = np.r_[starts[1:], len(order)]
    return [(coords[order[a]], order[a:b]) for a, b in zip(starts, ends, strict=True)]
