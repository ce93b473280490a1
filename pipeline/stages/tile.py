"""tile: 3D Tiles 1.1 of terrain, buildings and the point cloud, tied by one root tileset.

Files are written plainly: the stage writes into a temporary folder the runner swaps in whole.

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
from pipeline.core.arrayops import column_bounds
from pipeline.config import TwinConfig
from pipeline.core.content import building_glb, point_glb, terrain_glb
from pipeline.core.geodesy import SiteFrame
from pipeline.core.cells import CellStore
from pipeline.core.pointtree import OctreeFrame, PointNode, coarse_levels, column_trees
from pipeline.core.tiles import aabb_box, box_corners, matrix_to_json, tileset_doc, transform_box
from pipeline.errors import ConfigError
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
    (out / "tiles").mkdir(parents=True, exist_ok=True)
    children, lo_all, hi_all = [], np.full(3, np.inf), np.full(3, -np.inf)
    for t in info["tiles"]:
        d = np.load(folder / t["file"])
        v, f = d["vertices"], d["faces"]
        lo, hi = v.min(0), v.max(0)
        lo_all, hi_all = np.minimum(lo_all, lo), np.maximum(hi_all, hi)
        name = f"tiles/{Path(t['file']).stem}.glb"
        (out / name).write_bytes(terrain_glb(v, f, (lo + hi) / 2))
        children.append({"boundingVolume": {"box": aabb_box(lo, hi)}, "geometricError": 0.0,
                         "content": {"uri": name}})
    c = np.load(folder / info["coarse"]["file"])
    lo_c, hi_c = c["vertices"].min(0), c["vertices"].max(0)
    lo_all, hi_all = np.minimum(lo_all, lo_c), np.maximum(hi_all, hi_c)
    (out / "tiles/coarse.glb").write_bytes(terrain_glb(c["vertices"], c["faces"], (lo_c + hi_c) / 2))
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
    (out / "tiles").mkdir(parents=True, exist_ok=True)
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
        (out / name).write_bytes(building_glb(verts, f, local[face_feat[fsel]], tile_records, (lo + hi) / 2))
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


#: record fields that become standard point attributes; any other field but ``index`` is an extra
#: dimension carried as a ``_NAME`` attribute
_STANDARD = {"x", "y", "z", "red", "green", "blue", "intensity", "classification", "index",
             "return_number", "number_of_returns"}


def _write_glb(path: Path, pts: np.ndarray, meshopt: bool) -> int:
    xyz = np.column_stack([pts["x"], pts["y"], pts["z"]])
    rgb = np.column_stack([pts["red"], pts["green"], pts["blue"]])
    extras = {n: pts[n] for n in pts.dtype.names if n not in _STANDARD}
    data = point_glb(xyz, rgb, pts["intensity"], pts["classification"], extras, meshopt=meshopt)
    path.write_bytes(data)
    return len(data)


def _node_docs(tree: PointNode) -> list[dict[str, Any]]:
    """Every node of a subtree as a flat record (key, subtree box, geometric error, own points)."""
    return [{"key": n.key, "lo": n.lo.tolist(), "hi": n.hi.tolist(), "geometricError": n.spacing,
             "points": len(n.index)} for n in tree.walk()]


def tile_cell(src: str, cell: tuple[int, int], frame: OctreeFrame, max_points: int, out: str,
              meshopt: bool = False) -> dict[str, Any]:
    """Executor task: write the subtrees of one cell; return them and the cell's candidates for
    the levels above ``frame.split``."""
    pts = CellStore(src).read(cell)
    xyz = np.column_stack([pts["x"], pts["y"], pts["z"]])
    cand, trees = column_trees(xyz, frame, max_points=max_points)
    size = 0
    for tree in trees:
        for node in tree.walk():
            size += _write_glb(Path(out) / f"tiles/{node.key}.glb", pts[node.index], meshopt)
    return {"candidates": pts[cand], "nodes": [d for t in trees for d in _node_docs(t)], "bytes": size}


def write_coarse_tile(path: str, pts: np.ndarray, meshopt: bool = False) -> int:
    """Executor task: one node above the split level; returns its size in bytes."""
    return _write_glb(Path(path), pts, meshopt)


def _assemble(frame: OctreeFrame, nodes: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(root tile, its box's lo, hi) of the tree of ``nodes`` (key -> record): every ancestor is
    made (content-less where no point fell), boxes are the union of content and children."""
    for key in list(nodes):
        for cut in range(1, len(key)):
            nodes.setdefault(key[:cut], {"key": key[:cut], "geometricError": frame.spacing(cut - 1), "points": 0})
    kids: dict[str, list[str]] = {}
    for key in sorted(nodes):
        if key != "r":
            kids.setdefault(key[:-1], []).append(key)

    def build(key: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        n = nodes[key]
        built = [build(k) for k in kids.get(key, [])]
        boxes = ([(np.array(n["lo"]), np.array(n["hi"]))] if n["points"] else []) + [(lo, hi) for _, lo, hi in built]
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        tile: dict[str, Any] = {"boundingVolume": {"box": aabb_box(lo, hi)}, "geometricError": n["geometricError"]}
        if n["points"]:
            tile["content"] = {"uri": f"tiles/{key}.glb"}
        if built:
            tile["children"] = [t for t, _, _ in built]
        return tile, lo, hi

    return build("r")


def _point_layer(ctx: StageContext, out: Path, m: np.ndarray, cfg: TwinConfig) -> dict[str, Any] | None:
    store = CellStore(ctx.input_dir("clean") / "points")
    if not store.folder.is_dir() or not store.meta()["count"]:
        return None
    meta = store.meta()
    t = cfg.stages.tile
    frame = OctreeFrame.covering(np.array(meta["bounds"][:3]), np.array(meta["bounds"][3:]),
                                 meta["cell_size"], t.pointcloud_root_cells)
    (out / "tiles").mkdir(parents=True, exist_ok=True)
    if t.pointcloud_meshopt:
        try:
            import meshoptimizer  # noqa: F401
        except ImportError:
            raise ConfigError("stages.tile.pointcloud_meshopt needs the meshopt extra: "
                              "pip install 'dmc-twin[meshopt]'") from None
    futures = [ctx.executor.submit(tile_cell, str(store.folder), cell, frame, t.pointcloud_max_points, str(out),
                                   t.pointcloud_meshopt) for cell in store.cells()]
    nodes: dict[str, dict[str, Any]] = {}
    candidates, size = [], 0
    for f in ctx.reporter.track(futures, "tile point cloud"):
        r = f.result()
        nodes.update((d["key"], d) for d in r["nodes"])
        candidates.append(r["candidates"])
        size += r["bytes"]
    cand = np.concatenate(candidates)
    if len(cand):
        xyz = np.column_stack([cand["x"], cand["y"], cand["z"]])
        jobs = []
        for key, level, idx in coarse_levels(xyz, frame):
            lo, hi = column_bounds(xyz[idx])
            nodes[key] = {"key": key, "lo": lo.tolist(), "hi": hi.tolist(),
                           "geometricError": frame.spacing(level), "points": len(idx)}
            jobs.append(ctx.executor.submit(write_coarse_tile, str(out / f"tiles/{key}.glb"), cand[idx],
                                            t.pointcloud_meshopt))
        size += sum(j.result() for j in jobs)
    root, lo, hi = _assemble(frame, nodes)
    # the whole layer's error: its height range, or the root's spacing if that is coarser
    top = max(root["geometricError"], float(hi[2] - lo[2]))
    root |= {"refine": "ADD", "transform": matrix_to_json(m)}
    _dump(out / "tileset.json", tileset_doc(root, top))
    n_tiles = len(list((out / "tiles").glob("*.glb")))
    return {"box": root["boundingVolume"]["box"], "geometricError": top, "tiles": n_tiles,
            "points": int(meta["count"]), "split_level": frame.split, "root_spacing_m": frame.spacing(0),
            "bytes_per_point": round(size / max(int(meta["count"]), 1), 2)}


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
