"""Checks of 3D Tiles 1.1 rules that code can verify, for any tileset on disk.

- ``asset.version`` is "1.1" (or "1.0"); the root tile has ``refine``;
- every content and external tileset referenced exists;
- every tile's bounding box contains its children's boxes and its glTF content's positions;
- ``geometricError`` never grows from a tile to its children (or an external tileset's root).

Boxes only (regions and spheres are reported as unchecked). GLB positions are taken through
each scene's node translations/matrices and the glTF y-up -> z-up rotation 3D Tiles applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.gltf import read_accessor, read_glb
from pipeline.core.tiles import box_corners, matrix_from_json, points_in_box

#: glTF's y-up to 3D Tiles' z-up (x, y, z) -> (x, -z, y)
Y_UP_TO_Z_UP = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)
    tiles: int = 0
    contents: int = 0
    tilesets: int = 0


def _node_matrix(node: dict[str, Any]) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], np.float64).reshape(4, 4).T
    m = np.eye(4)
    if "rotation" in node or "scale" in node:
        x, y, z, w = node.get("rotation", [0, 0, 0, 1])
        r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        m[:3, :3] = r * np.asarray(node.get("scale", [1, 1, 1]), np.float64)
    m[:3, 3] = node.get("translation", [0, 0, 0])
    return m


def glb_positions(path: Path) -> np.ndarray:
    """All POSITION values of a GLB's default scene, in the tile frame (z up), float64 (N, 3)."""
    doc, binary = read_glb(path.read_bytes())
    out = []

    def visit(idx: int, parent: np.ndarray) -> None:
        node = doc["nodes"][idx]
        m = parent @ _node_matrix(node)
        if "mesh" in node:
            for prim in doc["meshes"][node["mesh"]]["primitives"]:
                pos = read_accessor(doc, binary, prim["attributes"]["POSITION"]).astype(np.float64)
                out.append(pos @ m[:3, :3].T + m[:3, 3])
        for child in node.get("children", []):
            visit(child, m)

    for root in doc["scenes"][doc.get("scene", 0)]["nodes"]:
        visit(root, Y_UP_TO_Z_UP)
    return np.concatenate(out) if out else np.empty((0, 3))


def check_tileset(path: str | Path, tol: float = 1e-3) -> CheckResult:
    """Check the tileset at ``path`` and every external tileset it references. ``tol`` in metres."""
    res = CheckResult()

    def walk_tileset(ts_path: Path, parent_world: np.ndarray, parent: dict[str, Any] | None) -> None:
        try:
            doc = json.loads(ts_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            res.problems.append(f"{ts_path}: cannot read tileset ({exc})")
            return
        res.tilesets += 1
        version = doc.get("asset", {}).get("version")
        if version not in ("1.0", "1.1"):
            res.problems.append(f"{ts_path}: asset.version is {version!r}, expected '1.1'")
        root = doc.get("root", {})
        if "refine" not in root and parent is None:
            res.problems.append(f"{ts_path}: root tile has no refine")
        walk_tile(ts_path, root, "root", parent_world, parent)

    def walk_tile(ts_path: Path, tile: dict[str, Any], where: str, parent_world: np.ndarray,
                  parent: dict[str, Any] | None) -> None:
        res.tiles += 1
        world = parent_world @ matrix_from_json(tile.get("transform"))
        bv = tile.get("boundingVolume", {})
        box = bv.get("box")
        label = f"{ts_path.name}:{where}"
        if box is None:
            res.problems.append(f"{label}: bounding volume is not a box (not checked)")
        if parent is not None and box is not None and parent.get("box") is not None:
            corners = box_corners(box, world)
            local = (corners - parent["world"][:3, 3]) @ np.linalg.inv(parent["world"][:3, :3]).T
            if not np.all(points_in_box(local, parent["box"], tol)):
                res.problems.append(f"{label}: bounding box is not inside its parent's")
        ge = tile.get("geometricError")
        if ge is None:
            res.problems.append(f"{label}: no geometricError")
        elif parent is not None and parent.get("ge") is not None and ge > parent["ge"] + 1e-9:
            res.problems.append(f"{label}: geometricError {ge} exceeds its parent's {parent['ge']}")
        me = {"box": box, "world": world, "ge": ge}
        content = tile.get("content")
        if content is not None:
            uri = content.get("uri", "")
            target = ts_path.parent / uri
            if not target.is_file():
                res.problems.append(f"{label}: content {uri} does not exist")
            elif uri.endswith(".json"):
                walk_tileset(target, world, me)
            elif uri.endswith(".glb"):
                res.contents += 1
                if box is not None:
                    pts = glb_positions(target)
                    outside = ~points_in_box(pts, box, tol)
                    if outside.any():
                        res.problems.append(f"{label}: {int(outside.sum())} of {len(pts)} positions "
                                            f"of {uri} lie outside the bounding box")
        for i, child in enumerate(tile.get("children", [])):
            walk_tile(ts_path, child, f"{where}/{i}", world, me)

    walk_tileset(Path(path), np.eye(4), None)
    return res
