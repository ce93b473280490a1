"""A quadtree over items placed by a plan point (ENU E, N metres): the tile trees of mesh layers.

Each item lies in exactly one node of every level it reaches (half-open quadrants), so a tree
whose leaves hold their items' full detail holds every item exactly once among its leaves.
Keys spell the path from the root: ``r``, then a digit per level (0 south-west, 1 south-east,
2 north-west, 3 north-east).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass
class QuadNode:
    """A square node: ``e0, n0`` its south-west corner, ``size`` its edge (m), ``items`` the
    indices of the items whose point lies in it."""

    key: str
    e0: float
    n0: float
    size: float
    items: np.ndarray
    children: list[QuadNode] = field(default_factory=list)

    @property
    def depth(self) -> int:
        return len(self.key) - 1

    @property
    def height(self) -> int:
        """Levels below this node (0 for a leaf)."""
        return 1 + max(c.height for c in self.children) if self.children else 0

    def contains(self, e: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Which points lie in this node's square (west and south edges included)."""
        return ((e >= self.e0) & (e < self.e0 + self.size) & (n >= self.n0) & (n < self.n0 + self.size))

    def walk(self) -> Iterator[QuadNode]:
        """Every node, parents before their children."""
        yield self
        for c in self.children:
            yield from c.walk()

    def leaves(self) -> Iterator[QuadNode]:
        for node in self.walk():
            if not node.children:
                yield node


def build_quadtree(e: np.ndarray, n: np.ndarray, split: Callable[[QuadNode], bool],
                   bounds: tuple[float, float, float, float] | None = None) -> QuadNode:
    """Quadtree of the points ``e, n``: the root square covers them (or ``bounds``, E min, N min,
    E max, N max); a node is split while ``split(node)`` says so; empty quadrants are left out."""
    e, n = np.asarray(e, np.float64), np.asarray(n, np.float64)
    if bounds is None:
        bounds = (float(e.min()), float(n.min()), float(e.max()), float(n.max()))
    # a hair larger than the extent, so points on the east and north edges fall inside
    size = max(bounds[2] - bounds[0], bounds[3] - bounds[1]) * (1 + 1e-9) + 1e-6
    # 32-bit indices where they fit: every level holds every item once, a city's 600,000 at 8 levels
    root = QuadNode("r", bounds[0], bounds[1], size, np.arange(len(e), dtype=np.int32 if len(e) < 2**31 else np.int64))
    stack = [root]
    while stack:
        node = stack.pop()
        if len(node.items) == 0 or not split(node):
            continue
        half = node.size / 2
        ie, in_ = e[node.items], n[node.items]
        east = ie >= node.e0 + half
        north = in_ >= node.n0 + half
        for digit in range(4):
            sel = ((digit & 1) == east) & ((digit >> 1 & 1) == north)
            if not sel.any():
                continue
            child = QuadNode(node.key + str(digit), node.e0 + half * (digit & 1), node.n0 + half * (digit >> 1 & 1),
                             half, node.items[sel])
            node.children.append(child)
            stack.append(child)
    return root
