"""tile: 3D Tiles 1.1 of terrain, buildings and the point cloud, tied by one root tileset.

Outputs: ``tileset.json`` (root, ECEF boxes, layers as external tilesets) and per layer
``<layer>/tileset.json`` + ``<layer>/tiles/*.glb``. Each layer's root carries the ENU->ECEF
transform of the site, so a layer is usable on its own; content positions are float32 relative to
their tile centre. geometricError values come from measurements: the coarse terrain's measured
vertical error, each point-tree level's sampling spacing (octree, additive refinement, every point
in exactly one tile, positions quantized with KHR_mesh_quantization), and the tallest building a
content-less tile omits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import __version__
from pipeline.config import TwinConfig
from pipeline.core.atomic import write_bytes_atomic
from pipeline.core.content import building_glb, point_glb, terrain_glb
from pipeline.core.geodesy import SiteFrame
from pipeline.core.pointio import ChunkStore
from pipeline.core.pointtree import PointNode, build_point_tree
from pipeline.core.tiles import aabb_box, box_corners, matrix_to_json, tileset_doc, transform_box
from pipeline.stage import StageContext, StageResult

NAME = "tile"
REQUIRES = ("georef", "clean", "mesh")

PROVENANCE_SCHEMA = {
    "id": "dmc_twin_tileset",
    "classes": {"provenance": {"properties": {
        "generator": {"type": "STRING"}, "version": {"type": "STRING"},
        "site": {"type": "STRING"}, "geoid_grid": {"type": "STRING"},
        "georef_vertical_rmse_m": {"type": "SCALAR", "componentType": "FLOAT64",
                                   "description": "LiDAR vs surveyed check points, metres"},
    }}},
}


def _dump(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))


def _terrain_layer(ctx: StageContext, out: Path, m: np.ndarray) -> dict[str, Any] | None:
    folder = ctx.input_dir("mesh") / "terrain"
    if not (folder / "terrain.json").is_file():
        return None
    info = json.loads((folder / "terrain.json").read_text())
    children, lo_all, hi_all = [], np.full(3, np.inf), np.full(3, -np.inf)
    for t in info["tiles"]:
        d = np.load(folder / t["file"])
        v, f = d["vertices"], d["faces"]
        lo, hi = v.min(0), v.max(0)
        lo_all, hi_all = np.minimum(lo_all, lo), np.maximum(hi_all, hi)
        name = f"tiles/{Path(t['file']).stem}.glb"
        write_bytes_atomic(out / name, terrain_glb(v, f, (lo + hi) / 2))
        children.append({"boundingVolume": {"box": aabb_box(lo, hi)}, "geometricError": 0.0,
                         "content": {"uri": name}})
    c = np.load(folder / info["coarse"]["file"])
    lo_c, hi_c = c["vertices"].min(0), c["vertices"].max(0)
    lo_all, hi_all = np.minimum(lo_all, lo_c), np.maximum(hi_all, hi_c)
    write_bytes_atomic(out / "tiles/coarse.glb",
                       terrain_glb(c["vertices"], c["faces"], (lo_c + hi_c) / 2))
    coarse_error = float(info["coarse"]["max_vertical_error_m"])
    root = {"boundingVolume": {"box": aabb_box(lo_all, hi_all)}, "geometricError": coarse_error,
            "refine": "REPLACE", "transform": matrix_to_json(m),
            "content": {"uri": "tiles/coarse.glb"}, "children": children}
    relief = float(hi_all[2] - lo_all[2])
    _dump(out / "tileset.json", tileset_doc(root, max(relief, coarse_error)))
    return {"box": aabb_box(lo_all, hi_all), "geometricError": max(relief, coarse_error),
            "tiles": len(children) + 1, "coarse_error_m": coarse_error}


def _building_layer(ctx: StageContext, out: Path, m: np.ndarray, tile_size: float
                    ) -> dict[str, Any] | None:
    mesh = ctx.input_dir("mesh")
    if not (mesh / "buildings.npz").is_file():
        return None
    d = np.load(mesh / "buildings.npz")
    verts, faces, vfeat = d["vertices"], d["faces"], d["vertex_feature"]
    records = json.loads((mesh / "buildings.json").read_text())["buildings"]
    face_feat = vfeat[faces[:, 0]]
    centroids = np.array([r["centroid_en"] for r in records])
    cell = np.floor(centroids / tile_size).astype(np.int64)
    children, index = [], {}
    lo_all, hi_all = verts.min(0), verts.max(0)
    for key in sorted({tuple(c) for c in cell.tolist()}):
        members = np.flatnonzero((cell[:, 0] == key[0]) & (cell[:, 1] == key[1]))
        local = np.full(len(records), -1, np.int64)
        local[members] = np.arange(len(members))
        fsel = np.isin(face_feat, members)
        f = faces[fsel]
        used = np.unique(f)
        lo, hi = verts[used].min(0), verts[used].max(0)
        name = f"tiles/b_{key[0]}_{key[1]}.glb"
        tile_records = [records[i] for i in members]
        write_bytes_atomic(out / name, building_glb(verts, f, local[face_feat[fsel]], tile_records,
                                                    (lo + hi) / 2))
        children.append({"boundingVolume": {"box": aabb_box(lo, hi)}, "geometricError": 0.0,
                         "content": {"uri": name}})
        for i in members:
            index[records[i]["id"]] = {"tile": name, "feature_id": int(local[i])}
    tallest = max(r["height"] for r in records)
    root = {"boundingVolume": {"box": aabb_box(lo_all, hi_all)}, "geometricError": tallest,
            "refine": "ADD", "transform": matrix_to_json(m), "children": children}
    _dump(out / "tileset.json", tileset_doc(root, tallest))
    _dump(out / "features.json", {"buildings": index})
    return {"box": aabb_box(lo_all, hi_all), "geometricError": tallest, "tiles": len(children),
            "buildings": len(records)}


def write_point_tile(path: str, pts: np.ndarray) -> int:
    """Write one point tile (a task for the executor); returns its point count."""
    xyz = np.column_stack([pts["x"], pts["y"], pts["z"]])
    rgb = np.column_stack([pts["red"], pts["green"], pts["blue"]])
    write_bytes_atomic(path, point_glb(xyz, rgb, pts["intensity"], pts["classification"]))
    return int(len(pts))


def _point_tile(node: PointNode) -> dict[str, Any]:
    tile: dict[str, Any] = {"boundingVolume": {"box": aabb_box(node.lo, node.hi)},
                            "geometricError": node.spacing,
                            "content": {"uri": f"tiles/{node.key}.glb"}}
    if node.children:
        tile["children"] = [_point_tile(c) for c in node.children]
    return tile


def _point_layer(ctx: StageContext, out: Path, m: np.ndarray, cfg: TwinConfig) -> dict[str, Any] | None:
    store = ChunkStore(ctx.input_dir("clean") / "points")
    if not store.folder.is_dir():
        return None
    pts = store.read_all()
    t = cfg.stages.tile
    tree = build_point_tree(np.column_stack([pts["x"], pts["y"], pts["z"]]),
                            max_points=t.pointcloud_max_points, root_cells=t.pointcloud_root_cells)
    nodes = list(tree.walk())
    (out / "tiles").mkdir(parents=True, exist_ok=True)
    futures = [ctx.executor.submit(write_point_tile, str(out / f"tiles/{n.key}.glb"), pts[n.index])
               for n in nodes]
    written = sum(f.result() for f in ctx.reporter.track(futures, "tile point cloud"))
    root = _point_tile(tree) | {"refine": "ADD", "transform": matrix_to_json(m)}
    height_range = float(tree.hi[2] - tree.lo[2])
    top = max(tree.spacing, height_range)
    _dump(out / "tileset.json", tileset_doc(root, top))
    return {"box": aabb_box(tree.lo, tree.hi), "geometricError": top, "tiles": len(nodes),
            "points": written, "depth": max(len(n.key) for n in nodes) - 1,
            "root_spacing_m": tree.spacing,
            "bytes_per_point": round(sum((out / f"tiles/{n.key}.glb").stat().st_size for n in nodes)
                                     / max(written, 1), 2)}


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Write the layer tilesets and the root tileset."""
    frame_info = json.loads((ctx.input_dir("georef") / "frame.json").read_text())
    m = SiteFrame.from_origin(frame_info["origin"]).enu_to_ecef_matrix()
    layers = {
        "terrain": _terrain_layer(ctx, ctx.out_dir / "terrain", m),
        "buildings": _building_layer(ctx, ctx.out_dir / "buildings", m, cfg.stages.tile.building_tile_size),
        "pointcloud": _point_layer(ctx, ctx.out_dir / "pointcloud", m, cfg),
    }
    layers = {k: v for k, v in layers.items() if v is not None}
    corners = np.concatenate([box_corners(v["box"]) for v in layers.values()])
    union = aabb_box(corners.min(0), corners.max(0), margin=0.0)
    children = [{"boundingVolume": {"box": transform_box(v["box"], m)},
                 "geometricError": v["geometricError"], "content": {"uri": f"{k}/tileset.json"}}
                for k, v in layers.items()]
    top_error = max(v["geometricError"] for v in layers.values())
    gcps_path = ctx.input_dir("georef") / "gcps.json"
    rmse = json.loads(gcps_path.read_text()).get("vertical_rmse") if gcps_path.is_file() else None
    meta_props: dict[str, Any] = {"generator": "dmc-twin", "version": __version__,
                                  "site": cfg.site.name, "geoid_grid": frame_info["geoid_grid"]}
    if rmse is not None:
        meta_props["georef_vertical_rmse_m"] = rmse
    root = {"boundingVolume": {"box": transform_box(union, m)}, "geometricError": top_error,
            "refine": "ADD", "children": children}
    _dump(ctx.out_dir / "tileset.json", tileset_doc(
        root, top_error, schema=PROVENANCE_SCHEMA,
        metadata={"class": "provenance", "properties": meta_props}))
    counts = {f"{k}_tiles": v["tiles"] for k, v in layers.items()}
    return StageResult(counts, {"layers": layers})
