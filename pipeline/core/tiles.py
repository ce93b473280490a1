"""3D Tiles 1.1 structure: bounding boxes, transforms and tileset documents.

Boxes are the specification's 12-number form (centre, then three half-axis vectors) in the frame
of the tile that holds them, i.e. after that tile's ``transform`` is applied. Transforms are 4x4
column-vector matrices here and 16 numbers in column-major order in JSON.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: a box may exceed its content by float rounding; this margin (m) absorbs it
BOX_MARGIN = 0.001


def aabb_box(lo: np.ndarray, hi: np.ndarray, margin: float = BOX_MARGIN) -> list[float]:
    """Axis-aligned box from min/max corners (same frame), grown by ``margin`` metres."""
    lo, hi = np.asarray(lo, np.float64) - margin, np.asarray(hi, np.float64) + margin
    c, h = (lo + hi) / 2, (hi - lo) / 2
    return [*c.tolist(), h[0], 0.0, 0.0, 0.0, h[1], 0.0, 0.0, 0.0, h[2]]


def box_parts(box: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(centre (3,), half-axes (3, 3) as rows) of a box."""
    b = np.asarray(box, np.float64)
    return b[:3], b[3:].reshape(3, 3)


def box_corners(box: list[float], transform: np.ndarray | None = None) -> np.ndarray:
    """The 8 corners (8, 3) of a box, mapped through ``transform`` when given."""
    c, axes = box_parts(box)
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], np.float64)
    pts = c + signs @ axes
    if transform is not None:
        pts = pts @ transform[:3, :3].T + transform[:3, 3]
    return pts


def transform_box(box: list[float], transform: np.ndarray) -> list[float]:
    """The same box expressed in the frame ``transform`` maps into (rigid transforms)."""
    c, axes = box_parts(box)
    c2 = transform[:3, :3] @ c + transform[:3, 3]
    axes2 = axes @ transform[:3, :3].T
    return [*c2.tolist(), *axes2.ravel().tolist()]


def points_in_box(points: np.ndarray, box: list[float], tol: float = 1e-6) -> np.ndarray:
    """Boolean (N,): which points (box's frame) lie inside the box, with ``tol`` metres slack.

    Works for oriented and for flat boxes (a zero half-axis): the points are expressed in the
    half-axes by least squares and must need no more than one of each, with no residual.
    """
    c, axes = box_parts(box)
    d = (np.asarray(points, np.float64) - c).T
    coef, *_ = np.linalg.lstsq(axes.T, d, rcond=None)
    residual = np.linalg.norm(axes.T @ coef - d, axis=0)
    lengths = np.linalg.norm(axes, axis=1)
    slack = np.where(lengths > 0, tol / np.where(lengths > 0, lengths, 1.0), 0.0)
    return np.all(np.abs(coef) <= 1.0 + slack[:, None], axis=0) & (residual <= tol)


def box_contains(outer: list[float], inner: list[float], inner_to_outer: np.ndarray | None = None,
                 tol: float = 1e-6) -> bool:
    """Whether box ``inner`` (mapped into ``outer``'s frame by ``inner_to_outer``) lies inside ``outer``."""
    return bool(np.all(points_in_box(box_corners(inner, inner_to_outer), outer, tol)))


def matrix_to_json(m: np.ndarray) -> list[float]:
    """A 4x4 matrix as the 16 column-major numbers of a tile ``transform``."""
    return [float(x) for x in np.asarray(m, np.float64).T.ravel()]


def matrix_from_json(values: list[float] | None) -> np.ndarray:
    """A tile ``transform`` (column-major, absent = identity) as a 4x4 matrix."""
    if values is None:
        return np.eye(4)
    return np.asarray(values, np.float64).reshape(4, 4).T


def translation(v: np.ndarray) -> np.ndarray:
    """4x4 translation by ``v`` (3,)."""
    m = np.eye(4)
    m[:3, 3] = v
    return m


def tileset_doc(root: dict[str, Any], geometric_error: float, **extra: Any) -> dict[str, Any]:
    """A 3D Tiles 1.1 tileset document."""
    doc: dict[str, Any] = {"asset": {"version": "1.1", "generator": "dmc-twin"},
                           "geometricError": float(geometric_error), "root": root}
    doc.update(extra)
    return doc


@dataclass(frozen=True)
class TileNode:
    """One node of a tile tree before its JSON is written. ``key`` spells its path from the root
    ("r" and one digit per level, as quadtrees and octrees name their children); ``lo``/``hi``
    bound its own content (None without content), in the layer's frame (m)."""

    key: str
    geometric_error: float
    uri: str | None = None
    lo: tuple[float, ...] | None = None
    hi: tuple[float, ...] | None = None


def assemble_tree(nodes: Mapping[str, TileNode], ancestor_error: Callable[[int], float] = lambda depth: 0.0
                  ) -> tuple[dict[str, Any], np.ndarray, np.ndarray] | None:
    """The root tile JSON of the tree whose nodes are ``nodes`` (key -> node), with its box's
    corners; None when nothing in it has content.

    Children come from the keys; a missing ancestor is made without content, with the
    geometricError ``ancestor_error(depth)`` (root depth 0). Every box is the
    union of its content's and its children's, and no child's geometricError exceeds its
    parent's (a parent is raised to its largest child's), as 3D Tiles requires. Subtrees without
    content are left out.
    """
    kids: dict[str, list[str]] = {}
    everything = set(nodes)
    for key in nodes:
        everything.update(key[:cut] for cut in range(1, len(key)))
    for key in sorted(everything):
        if len(key) > 1:
            kids.setdefault(key[:-1], []).append(key)

    def build(key: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray] | None:
        node = nodes.get(key)
        built = [b for b in (build(k) for k in kids.get(key, [])) if b is not None]
        content = node if node is not None and node.uri is not None and node.lo is not None else None
        if content is None and not built:
            return None
        boxes = [(np.asarray(content.lo), np.asarray(content.hi))] if content is not None else []
        boxes += [(lo, hi) for _, lo, hi in built]
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        own = node.geometric_error if node is not None else ancestor_error(len(key) - 1)
        tile: dict[str, Any] = {"boundingVolume": {"box": aabb_box(lo, hi)},
                                "geometricError": float(max([own] + [t["geometricError"] for t, _, _ in built]))}
        if content is not None:
            tile["content"] = {"uri": content.uri}
        if built:
            tile["children"] = [t for t, _, _ in built]
        return tile, lo, hi

    return build("r")


def split_external(root: dict[str, Any], max_tiles: int, folder: str = "tilesets"
                   ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Cut the tile tree under ``root`` (URIs relative to the layer's folder) into a root tree and
    external tilesets of at most ``max_tiles`` tiles each (``max_tiles`` >= the most children a
    tile has, plus one), so a city's tileset.json stays small and a client reads only the parts
    it looks at. A tree that fits is returned whole.

    Each document takes its levels breadth first while they fit: a tile whose children would
    not moves, with its subtree, to be the root of ``<folder>/<name>.json`` (name: ``r`` and the
    child indices down to it); in its place stays a tile with its box and no content but that
    tileset. That tile keeps its parent's geometricError: it is refined exactly when its parent
    is, so a client that refines by error alone reaches the moved tile's own content. Returns the
    new root tile and the external tilesets' root tiles by path, their URIs still relative to the
    layer's folder (see :func:`rebase_uris`).
    """
    external: dict[str, dict[str, Any]] = {}

    def document(top: dict[str, Any], name: str, refine: str) -> dict[str, Any]:
        top = dict(top, refine=top.get("refine", refine))
        count = 1
        # (a tile of this document, its name, the refinement it inherits, its parent's error)
        queue = deque([(top, name, refine, top["geometricError"])])
        while queue:
            tile, key, inherited, parent_error = queue.popleft()
            kids = tile.get("children")
            if not kids:
                continue
            if tile is top or count + len(kids) <= max_tiles:
                count += len(kids)
                tile["children"] = [dict(k) for k in kids]  # copies: the caller's tree is left as it was
                own = tile.get("refine", inherited)
                names = [f"{key}{i}" if len(kids) <= 10 else f"{key}_{i}" for i in range(len(kids))]
                queue.extend((child, child_name, own, tile["geometricError"])
                             for child, child_name in zip(tile["children"], names, strict=True))
                continue
            # its children do not fit: the tile (already counted) moves out, a reference in its place
            path = f"{folder}/{key}.json"
            external[path] = document(tile, key, inherited)
            tile.clear()
            tile.update({"boundingVolume": external[path]["boundingVolume"], "geometricError": parent_error,
                         "content": {"uri": path}})
        return top

    if _count(root) <= max_tiles:
        return root, {}
    return document(root, "r", root.get("refine", "REPLACE")), external


def _count(tile: dict[str, Any]) -> int:
    return 1 + sum(_count(c) for c in tile.get("children", []))


def rebase_uris(tile: dict[str, Any], start: str) -> dict[str, Any]:
    """A copy of the tile tree with every content URI (relative to the layer's folder) made
    relative to ``start``, a folder inside it (POSIX)."""
    out = dict(tile)
    if "content" in out:
        out["content"] = dict(out["content"], uri=posixpath.relpath(out["content"]["uri"], start))
    if "children" in out:
        out["children"] = [rebase_uris(c, start) for c in out["children"]]
    return out
