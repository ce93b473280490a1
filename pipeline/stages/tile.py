"""tile: 3D Tiles 1.1 of terrain, buildings and the point cloud, tied by one root tileset.

Files are written plainly: the stage writes into a temporary folder the runner swaps in whole.

Outputs: ``tileset.json`` (root, ECEF boxes, layers as external tilesets, provenance metadata)
and per layer ``<layer>/tileset.json`` + ``<layer>/tiles/*.glb`` (a large mesh layer's deeper
levels in external tilesets ``<layer>/tilesets/*.json``); ``buildings/features.json``
(building id -> leaf tile and feature ID). Each layer's root carries the ENU->ECEF transform of
the site, so a layer is usable on its own; content is stored relative to its own box (quantized
or compressed, ``stages.tile.compression``). geometricError values are measurements, never
constants: terrain levels' vertical error on every heightfield post, building levels' Hausdorff
distance to the full detail (both from mesh), each point-tree level's sampling spacing.
Mesh layers are quadtrees with REPLACE refinement (hierarchical levels of detail); the point
cloud is an octree with ADD refinement, every point in exactly one tile.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.atomic import replacing
from pipeline import __version__
from pipeline.core.arrayops import column_bounds, take_records
from pipeline.config import TileConfig, TwinConfig
from pipeline.core.content import (BUILDING_SCHEMA, SUNLIGHT_SCHEMA, TERRAIN_COLOUR, building_colours, flat_mesh,
                                   mesh_glb, point_glb, receiver_glb, smooth_mesh, sun_colours)
from pipeline.core.cells import CellStore
from pipeline.core.executor import TaskWindow
from pipeline.core.pointtree import OctreeFrame, PointNode, coarse_levels, column_trees
from pipeline.core.meshing import compact_faces, concat_meshes, mesh_digest
from pipeline.core.quadtree import QuadNode, build_quadtree
from pipeline.core.gltf import gltf_positions, read_glb
from pipeline.core.tiles import (TileNode, aabb_box, assemble_tree, box_corners, matrix_to_json, rebase_uris,
                                 split_external, tileset_doc, transform_box)
from pipeline.errors import StageError
from pipeline import artifacts
from pipeline.artifacts.buildings import BuildingMeshes, scan_buildings
from pipeline.artifacts.control import read_control
from pipeline.artifacts.features import FeatureRef, write_feature_index
from pipeline.artifacts.sunlight import ReceiverResults, read_receivers, read_sunlight
from pipeline.artifacts.frame import FrameRecord, read_frame
from pipeline.artifacts.terrain import load_level, read_terrain
from pipeline.stage import StageContext, StageResult, StageSpec

SPEC = StageSpec("tile", reads=(artifacts.FRAME, artifacts.CONTROL, artifacts.CLEAN_POINTS, artifacts.TERRAIN,
                                artifacts.BUILDINGS, artifacts.SUNLIGHT),
                 writes=(artifacts.TILESET, artifacts.FEATURE_INDEX),
                 # the root tileset's provenance names every input file with its digest
                 reads_inputs=True)

#: ``xxh3:`` and the first 16 hex digits of an input's XXH3-128: enough to tell files apart by eye
SOURCE_DIGEST_CHARS = len("xxh3:") + 16

PROVENANCE_SCHEMA = {
    "id": "dmc_twin_tileset",
    "classes": {"provenance": {
        "name": "Provenance",
        "description": "Where the twin's data came from and how well it is georeferenced.",
        "properties": {
            "generator": {"type": "STRING", "required": True},
            "version": {"type": "STRING", "required": True, "description": "dmc-twin version"},
            "site": {"type": "STRING"},
            "geoid_grid": {"type": "STRING", "description": "Grid that turned orthometric heights ellipsoidal"},
            "origin": {"type": "SCALAR", "componentType": "FLOAT64", "array": True, "count": 3,
                       "description": "ENU origin: longitude, latitude (degrees), ellipsoidal height (m)"},
            "source_files": {"type": "STRING", "array": True,
                             "description": "Input files with the start of their XXH3-128 digest "
                                            "(xxhsum -H2); the bundle's provenance.json has their sha256"},
            "georef_vertical_rmse_m": {"type": "SCALAR", "componentType": "FLOAT64",
                                       "description": "LiDAR vs surveyed check points, metres"},
            "georef_horizontal_rmse_m": {"type": "SCALAR", "componentType": "FLOAT64",
                                         "description": "Control-point fit of a locally referenced scan, metres"},
        }}},
}


def _dump(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))


def write_mesh_tile(path: str, vertices: np.ndarray, faces: np.ndarray, compression: str, *,
                    smooth: bool = False, face_feature: np.ndarray | None = None,
                    face_surface: np.ndarray | None = None,
                    records: list[dict[str, Any]] | None = None, skirt: float = 0.0,
                    colour: list[float] | None = None, schema_uri: str | None = None
                    ) -> tuple[list[float], list[float], int]:
    """Executor task: write one mesh tile (ENU vertices); returns the (lo, hi) corners of what
    it holds and its size in bytes. ``skirt`` (m) hangs a curtain below every open edge."""
    if skirt > 0:
        vertices, faces = add_skirts(vertices, faces, skirt)
    if smooth:
        mesh = smooth_mesh(vertices, faces)
    else:
        mesh = flat_mesh(vertices, faces, face_feature,
                         building_colours(records) if records is not None else None, face_surface)
    data = mesh_glb(mesh, compression=compression, colour=colour, records=records, schema_uri=schema_uri)
    with replacing(path) as f:
        f.write(data)
    # bounds of what a viewer decodes: quantization moves positions by up to half a step
    lo, hi = column_bounds(gltf_positions(*read_glb(data)))
    return lo.tolist(), hi.tolist(), len(data)


def add_skirts(vertices: np.ndarray, faces: np.ndarray, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """A vertical curtain ``depth`` m deep (ENU U) below every edge used by one face only, facing
    out of the mesh: it hides the gap to a neighbour tile drawn at another level of detail."""
    f = np.asarray(faces, np.int64)
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = np.sort(edges, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    open_edges = edges[counts[inverse.ravel()] == 1]
    if len(open_edges) == 0:
        return vertices, faces
    used = np.unique(open_edges)
    low = np.asarray(vertices, np.float64)[used].copy()
    low[:, 2] -= depth
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = len(vertices) + np.arange(len(used))
    a, b = open_edges[:, 0], open_edges[:, 1]
    # the open edge a->b runs counter-clockwise around the mesh seen from above: (b, a, a') and
    # (b, a', b') face outward
    curtain = np.concatenate([np.column_stack([b, a, remap[a]]), np.column_stack([b, remap[a], remap[b]])])
    return np.vstack([vertices, low]), np.vstack([f, curtain]).astype(np.int32)


def _write_layer(ctx: StageContext, out: Path, docs: dict[str, dict[str, Any]],
                 jobs: TaskWindow, m: np.ndarray, top_error: float, provenance: dict[str, Any], label: str,
                 max_tiles: int, refine: str = "REPLACE") -> tuple[dict[str, Any], np.ndarray, np.ndarray, int]:
    """Wait for a quadtree layer's tile jobs and write its ``tileset.json`` (``refine``, the
    site's ENU->ECEF transform on the root), deeper levels in external tilesets under
    ``tilesets/`` (at most ``max_tiles`` tiles per document); returns (document, lo, hi, content bytes)."""
    nodes, size = {}, 0
    for key, (lo, hi, n) in jobs.results().items():
        nodes[key] = TileNode(key, docs[key]["geometricError"], docs[key]["uri"], tuple(lo), tuple(hi))
        size += n
    for key, doc in docs.items():
        nodes.setdefault(key, TileNode(key, doc["geometricError"]))
    built = assemble_tree(nodes)
    if built is None:
        raise StageError(f"{label}: no tile has content")
    root, lo, hi = built
    root |= {"refine": refine, "transform": matrix_to_json(m)}
    root, external = split_external(root, max_tiles)
    for path, sub in external.items():
        _dump(out / path, tileset_doc(rebase_uris(sub, posixpath.dirname(path)), sub["geometricError"]))
    doc = tileset_doc(root, max(top_error, root["geometricError"]), **provenance)
    _dump(out / "tileset.json", doc)
    return doc, lo, hi, size


def _building_layer(ctx: StageContext, out: Path, m: np.ndarray, t: TileConfig, provenance: dict[str, Any]
                    ) -> dict[str, Any] | None:
    """Quadtree of buildings (by footprint centroid): leaves hold each building once at full
    detail (geometricError 0); a parent holds its subtree's buildings at their coarsest level
    within edge x ``hlod_error_fraction`` of the full detail, leaving out lower buildings, with
    REPLACE refinement; its geometricError is the largest measured deviation it keeps (a level's
    Hausdorff distance from mesh, or a left-out building's height)."""
    mesh = ctx.input_dir("mesh")
    table = scan_buildings(mesh)
    sunlight = read_sunlight(ctx.input_dir("analysis"))
    # a building's share of failing windows as the district stands; a proposal's, with it built
    fail_share = sunlight.fail_share(1) | sunlight.fail_share(0) if sunlight.enabled else {}
    if not len(table):
        write_feature_index(ctx.out_dir, {})
        return None

    def properties(b: int) -> dict[str, Any]:
        # made from the table's columns when a tile or the index needs them: a city's as dicts,
        # held, took 0.9 GB
        return table.properties(b) | {"sunlight_fail_share": fail_share.get(table.ids[b])}

    n = len(table)
    # where each building's full detail is: its leaf tile, its feature ID there, its geometry's
    # digest, and when it was placed there (of buildings sharing an id, the index keeps the last)
    leaf_tile, leaf_local, leaf_order = np.full(n, -1, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    leaf_digest = np.zeros(n, "S16")
    leaf_uris: list[str] = []
    pieces = BuildingMeshes(mesh)
    faces0 = table.level_faces[table.level_start[:-1]]
    lo_all, hi_all = table.box[:2], table.box[3:5]

    def split(node: QuadNode) -> bool:
        return len(node.items) > 1 and (node.size > t.building_tile_size or len(node.items) > t.tile_max_features
                                        or faces0[node.items].sum() > t.tile_max_triangles)

    tree = build_quadtree(table.centroid_en[:, 0], table.centroid_en[:, 1], split, bounds=(*lo_all, *hi_all))
    (out / "tiles").mkdir(parents=True, exist_ok=True)
    # every tile's property table refers to this one schema file
    _dump(out / "schema.json", BUILDING_SCHEMA)
    docs: dict[str, dict[str, Any]] = {}
    jobs = TaskWindow(ctx.executor)
    for node in ctx.reporter.track(list(tree.walk()), "tile buildings"):
        if node.children:
            tau = node.size * t.hlod_error_fraction
            chosen, worst = [], 0.0
            for b, height in zip(node.items.tolist(), table.height[node.items].tolist(), strict=True):
                if height <= tau:
                    worst = max(worst, height)  # left out: the whole building is the error
                    continue
                errors = table.errors(b)
                k = max(i for i, e in enumerate(errors) if e <= tau or i == 0)
                chosen.append((b, k))
                worst = max(worst, errors[k])
            if worst == 0.0 and len(chosen) == len(node.items) and all(k == 0 for _, k in chosen):
                node.children = []  # already the full detail of every building below: a leaf
        else:
            chosen, worst = [(b, 0) for b in node.items.tolist()], 0.0
        uri = f"tiles/{node.key}.glb"
        docs[node.key] = {"geometricError": float(worst), "uri": uri}
        if not chosen:
            continue
        parts = [pieces.get(b, k) for b, k in chosen]
        verts, faces = concat_meshes(parts)
        feature = np.repeat(np.arange(len(parts)), [len(f) for _, f in parts])
        jobs.submit(
            node.key, write_mesh_tile, str(out / uri), verts, faces, t.mesh_compression,
            face_feature=feature, face_surface=np.concatenate([pieces.surface(b, k) for b, k in chosen]),
            records=[properties(b) for b, _ in chosen], schema_uri="../schema.json")
        if not node.children:
            placed = np.array([b for b, _ in chosen], np.int64)
            leaf_tile[placed] = len(leaf_uris)
            leaf_local[placed] = np.arange(len(placed))
            leaf_order[placed] = np.arange(len(placed)) + n * len(leaf_uris)
            leaf_digest[placed] = [mesh_digest(*p) for p in parts]
            leaf_uris.append(uri)
    doc, lo, hi, size = _write_layer(ctx, out, docs, jobs, m, float(table.height.max()), provenance,
                                     "tile buildings", t.tileset_max_tiles)

    def index() -> Iterator[tuple[str, FeatureRef]]:
        last: list[int] = []
        for b in sorted(np.flatnonzero(leaf_tile >= 0).tolist(), key=table.ids.__getitem__):
            if last and table.ids[last[-1]] == table.ids[b]:
                if leaf_order[b] > leaf_order[last[-1]]:
                    last[-1] = b
            else:
                last.append(b)
        for b in last:
            yield table.ids[b], FeatureRef(leaf_uris[leaf_tile[b]], int(leaf_local[b]), leaf_digest[b].decode(),
                                           properties(b))

    write_feature_index(ctx.out_dir, index())
    leaves = sum(1 for _ in tree.leaves())
    return {"box": aabb_box(lo, hi), "geometricError": doc["geometricError"], "tiles": len(jobs),
            "leaf_tiles": leaves, "depth": max(node.depth for node in tree.walk()), "buildings": n,
            "bytes": size, "compression": t.mesh_compression}


def _terrain_layer(ctx: StageContext, out: Path, m: np.ndarray, t: TileConfig, provenance: dict[str, Any]
                   ) -> dict[str, Any] | None:
    """Quadtree over the terrain: a node ``h`` levels above the leaves holds TIN level ``h`` (the
    coarsest for the top of deeper trees) clipped to its square by triangle centroid, so tiles of
    one level share their edge vertices exactly; skirts as deep as the node's and its parent's
    errors together cover the step to a neighbour one level coarser. geometricError is the
    level's vertical error measured on every heightfield post in mesh."""
    mesh = ctx.input_dir("mesh")
    terrain = read_terrain(mesh)
    if terrain.is_empty:
        return None
    levels = [load_level(mesh, lv) for lv in terrain.levels]
    errors = [float(lv.max_vertical_error_m) for lv in terrain.levels]
    cents = [v[f].mean(axis=1) for v, f in levels]
    c0 = cents[0]
    lo_all, hi_all = c0[:, :2].min(0), c0[:, :2].max(0)

    def split(node: QuadNode) -> bool:
        return node.size > t.terrain_tile_size or len(node.items) > t.tile_max_triangles

    tree = build_quadtree(c0[:, 0], c0[:, 1], split, bounds=(*lo_all, *hi_all))
    (out / "tiles").mkdir(parents=True, exist_ok=True)
    docs: dict[str, dict[str, Any]] = {}
    jobs = TaskWindow(ctx.executor)
    parents = {c.key: node for node in tree.walk() for c in node.children}
    for node in ctx.reporter.track(list(tree.walk()), "tile terrain"):
        k = min(node.height, len(levels) - 1)
        v, f = levels[k]
        sel = node.items if k == 0 else np.flatnonzero(node.contains(cents[k][:, 0], cents[k][:, 1]))
        uri = f"tiles/{node.key}.glb"
        docs[node.key] = {"geometricError": errors[k], "uri": uri}
        if len(sel) == 0:
            continue
        used, sub = compact_faces(f[sel], len(v))
        parent = parents.get(node.key)
        coarser = errors[min(parent.height, len(levels) - 1)] if parent is not None else errors[k]
        jobs.submit(node.key, write_mesh_tile, str(out / uri), v[used], sub, t.mesh_compression,
                    smooth=True, skirt=errors[k] + coarser, colour=TERRAIN_COLOUR)
    relief = float(levels[0][0][:, 2].max() - levels[0][0][:, 2].min())
    doc, lo, hi, size = _write_layer(ctx, out, docs, jobs, m, relief, provenance, "tile terrain",
                                     t.tileset_max_tiles)
    return {"box": aabb_box(lo, hi), "geometricError": doc["geometricError"], "tiles": len(jobs),
            "depth": max(n.depth for n in tree.walk()), "level_errors_m": errors, "bytes": size,
            "compression": t.mesh_compression}


def write_receiver_tile(path: str, xyz: np.ndarray, rgba: np.ndarray, properties: dict[str, np.ndarray]
                        ) -> tuple[list[float], list[float], int]:
    """Executor task: one tile of sunlight receivers; returns its decoded bounds and size."""
    data = receiver_glb(xyz, rgba, properties, schema_uri="../schema.json")
    with replacing(path) as f:
        f.write(data)
    lo, hi = column_bounds(gltf_positions(*read_glb(data)))
    return lo.tolist(), hi.tolist(), len(data)


def _receiver_properties(res: ReceiverResults, idx: np.ndarray) -> dict[str, np.ndarray]:
    """The values of :data:`SUNLIGHT_SCHEMA` for receivers ``idx`` (scenario 1 repeats scenario 0
    when there are no proposals)."""
    k1 = min(1, res.present.shape[1] - 1)
    out: dict[str, np.ndarray] = {"storey": res.receivers.storey[idx]}
    for k, suffix in ((0, ""), (k1, "_with_proposals")):
        present = res.present[idx, k]
        out["continuous_hours" + suffix] = np.where(present, res.continuous_min[idx, k] / 60.0, -1.0)
        out["total_hours" + suffix] = np.where(present, res.total_min[idx, k] / 60.0, -1.0)
        out["verdict" + suffix] = np.where(present, np.where(res.passes[idx, k], 1, 2), 0)
    return out


def _sunlight_layer(ctx: StageContext, out: Path, m: np.ndarray, t: TileConfig, provenance: dict[str, Any]
                    ) -> dict[str, Any] | None:
    """The analysis's receivers as glTF points (one quadtree, content at the leaves only) with
    their hours and verdicts as property attributes and baked colours (hours as the district
    stands, red where failing). A contentless parent's geometricError is its square's diagonal:
    drawn alone it shows none of what lies in it."""
    folder = ctx.input_dir("analysis")
    record = read_sunlight(folder)
    if not record.enabled:
        return None
    res = read_receivers(folder)
    if not len(res.receivers):
        return None
    pos = res.receivers.position
    window = record.settings["rule"]["total_window_h"]
    # a receiver absent as the district stands (on a proposal) shows its hours with the proposal
    k = np.where(res.present[:, 0], 0, min(1, res.present.shape[1] - 1))
    rows = np.arange(len(pos))
    colours = sun_colours(res.total_min[rows, k] / 60.0, res.passes[rows, k], window[1] - window[0])

    def split(node: QuadNode) -> bool:
        return len(node.items) > t.pointcloud_max_points

    tree = build_quadtree(pos[:, 0], pos[:, 1], split)
    (out / "tiles").mkdir(parents=True, exist_ok=True)
    _dump(out / "schema.json", SUNLIGHT_SCHEMA)
    jobs, docs = TaskWindow(ctx.executor), {}
    for node in ctx.reporter.track(list(tree.walk()), "tile sunlight"):
        uri = f"tiles/{node.key}.glb"
        docs[node.key] = {"geometricError": 0.0 if not node.children else float(node.size * np.sqrt(2)),
                          "uri": uri}
        if node.children or not len(node.items):
            continue
        idx = np.sort(node.items)
        jobs.submit(node.key, write_receiver_tile, str(out / uri), pos[idx], colours[idx],
                    _receiver_properties(res, idx))
    # the whole layer's error: its horizontal extent (drawn alone, the root shows nothing of it)
    extent = float(np.hypot(*(pos[:, :2].max(axis=0) - pos[:, :2].min(axis=0))))
    doc, lo, hi, size = _write_layer(ctx, out, docs, jobs, m, extent, provenance, "tile sunlight",
                                     t.tileset_max_tiles, refine="ADD")
    top = doc["geometricError"]
    return {"box": aabb_box(lo, hi), "geometricError": top, "tiles": len(jobs), "receivers": len(pos),
            "bytes": size}


#: record fields that become standard point attributes; any other field but ``index`` is an extra
#: dimension carried as a ``_NAME`` attribute
_STANDARD = {"x", "y", "z", "red", "green", "blue", "intensity", "classification", "index",
             "return_number", "number_of_returns"}


def _write_glb(path: Path, pts: np.ndarray, meshopt: bool) -> int:
    xyz = np.column_stack([pts["x"], pts["y"], pts["z"]])
    rgb = np.column_stack([pts["red"], pts["green"], pts["blue"]])
    extras = {n: pts[n] for n in pts.dtype.names or () if n not in _STANDARD}
    data = point_glb(xyz, rgb, pts["intensity"], pts["classification"], extras, meshopt=meshopt)
    with replacing(path) as f:
        f.write(data)
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
            size += _write_glb(Path(out) / f"tiles/{node.key}.glb", take_records(pts, node.index), meshopt)
    return {"candidates": take_records(pts, cand), "nodes": [d for t in trees for d in _node_docs(t)], "bytes": size}


def write_coarse_tile(path: str, pts: np.ndarray, meshopt: bool = False) -> int:
    """Executor task: one node above the split level; returns its size in bytes."""
    return _write_glb(Path(path), pts, meshopt)


def _assemble(frame: OctreeFrame, nodes: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(root tile, its box's lo, hi) of the point tree of ``nodes`` (key -> record): ancestors no
    point fell in are made without content at their level's spacing."""
    tiles = {k: TileNode(k, n["geometricError"], f"tiles/{k}.glb" if n["points"] else None,
                         tuple(n["lo"]) if n["points"] else None, tuple(n["hi"]) if n["points"] else None)
             for k, n in nodes.items()}
    built = assemble_tree(tiles, frame.spacing)
    if built is None:
        raise StageError("the point tree has no tile with points")
    return built


def _point_layer(ctx: StageContext, out: Path, m: np.ndarray, cfg: TwinConfig, provenance: dict[str, Any]
                 ) -> dict[str, Any] | None:
    store = CellStore(ctx.locate(artifacts.CLEAN_POINTS))
    meta = store.meta()
    if meta.is_empty or meta.bounds is None:
        return None
    t = cfg.stages.tile
    frame = OctreeFrame.covering(np.array(meta.bounds[:3]), np.array(meta.bounds[3:]),
                                 meta.cell_size, t.pointcloud_root_cells)
    (out / "tiles").mkdir(parents=True, exist_ok=True)
    cells = store.largest_first()
    futures = [ctx.executor.submit(tile_cell, str(store.folder), cell, frame, t.pointcloud_max_points, str(out),
                                   t.pointcloud_meshopt) for cell in cells]
    nodes: dict[str, dict[str, Any]] = {}
    candidates, size = {}, 0
    for cell, f in zip(cells, ctx.reporter.track(futures, "tile point cloud"), strict=True):
        r = f.result()
        nodes.update((d["key"], d) for d in r["nodes"])
        candidates[cell] = r["candidates"]
        size += r["bytes"]
    # the coarse levels keep the first candidate per lattice cell: in cell order, as always
    cand = np.concatenate([candidates[c] for c in sorted(candidates)])
    if len(cand):
        xyz = np.column_stack([cand["x"], cand["y"], cand["z"]])
        jobs = []
        # on a worker: its first-of-each-cell needs pandas, which a worker has loaded for its
        # cells and this process would import (0.3 s) with every other task of the stage done
        for key, level, idx in ctx.executor.submit(coarse_levels, xyz, frame).result():
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
    _dump(out / "tileset.json", tileset_doc(root, top, **provenance))
    n_tiles = len(list((out / "tiles").glob("*.glb")))
    return {"box": root["boundingVolume"]["box"], "geometricError": top, "tiles": n_tiles,
            "points": int(meta.count), "split_level": frame.split, "root_spacing_m": frame.spacing(0),
            "bytes_per_point": round(size / max(int(meta.count), 1), 2)}


def _provenance(ctx: StageContext, cfg: TwinConfig, frame: FrameRecord) -> dict[str, Any]:
    """Tileset metadata (3D Tiles 1.1): the schema and the tileset's provenance values."""
    props: dict[str, Any] = {"generator": "dmc-twin", "version": __version__, "site": cfg.site.name,
                             "geoid_grid": frame.geoid_grid, "origin": frame.origin_lon_lat_h(),
                             "source_files": [f"{p.name} {ctx.input_digest(p)[:SOURCE_DIGEST_CHARS]}"
                                              for p in cfg.input_paths()]}
    control = read_control(ctx.input_dir("georef"))
    if control.vertical_rmse is not None:
        props["georef_vertical_rmse_m"] = control.vertical_rmse
    if control.horizontal_rmse is not None:
        props["georef_horizontal_rmse_m"] = control.horizontal_rmse
    return {"schema": PROVENANCE_SCHEMA, "metadata": {"class": "provenance", "properties": props}}


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Write the layer tilesets and the root tileset."""
    t = cfg.stages.tile
    frame = read_frame(ctx.input_dir("georef"))
    m = frame.enu_to_ecef()
    provenance = _provenance(ctx, cfg, frame)
    made = {
        "terrain": _terrain_layer(ctx, ctx.out_dir / "terrain", m, t, provenance),
        "buildings": _building_layer(ctx, ctx.out_dir / "buildings", m, t, provenance),
        "pointcloud": _point_layer(ctx, ctx.out_dir / "pointcloud", m, cfg, provenance),
    }
    # the analysis is a layer of its own beside the twin, not one of the root's children: viewers
    # find it in the bundle's catalog (an overlay a planner switches on, not part of the city)
    sunlight = _sunlight_layer(ctx, ctx.out_dir / "analysis" / "sunlight", m, t, provenance)
    layers = {k: v for k, v in made.items() if v is not None}
    if not layers:
        raise StageError("nothing to tile: no terrain, buildings or points came out of the earlier stages")
    corners = np.concatenate([box_corners(v["box"]) for v in layers.values()])
    union = aabb_box(corners.min(0), corners.max(0), margin=0.0)
    children = [{"boundingVolume": {"box": transform_box(v["box"], m)},
                 "geometricError": v["geometricError"], "content": {"uri": f"{k}/tileset.json"}}
                for k, v in layers.items()]
    top_error = max(v["geometricError"] for v in layers.values())
    root = {"boundingVolume": {"box": transform_box(union, m)}, "geometricError": top_error,
            "refine": "ADD", "children": children}
    _dump(ctx.out_dir / "tileset.json", tileset_doc(root, top_error, **provenance))
    counts = {f"{k}_tiles": v["tiles"] for k, v in layers.items()}
    if sunlight is not None:
        counts["sunlight_tiles"] = sunlight["tiles"]
    return StageResult(counts, {"layers": layers, "analysis": {"sunlight": sunlight}})
