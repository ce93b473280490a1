"""mesh: terrain from the DEM and LoD1 building solids with heights from the LiDAR.

Outputs (ENU metres):
``terrain/coarse.npz`` and ``terrain/tile_<r>_<c>.npz`` (vertices, faces) + ``terrain/terrain.json``
(tile layout and the measured vertical error of the coarse level); ``buildings.npz`` (vertices,
faces, vertex_feature) + ``buildings.json`` (per-building attributes in feature order).

Building heights are orthometric metres (above the geoid). The base is the lowest DEM height
under the footprint; the roof is a robust percentile of the building-class LiDAR points inside
it, falling back to the height attribute, then floors x storey height, then a default; the
source is recorded. Every vertex is placed exactly: ENU of (lon, lat, H + N) per vertex, so walls
follow the local vertical and a corner lands where PROJ puts it.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon

from pipeline.config import TwinConfig
from pipeline.core.geodesy import SiteFrame
from pipeline.core.meshing import coarse_grid_error, coarse_indices, grid_mesh, prism
from pipeline.core.cells import CellStore
from pipeline.core.pointindex import PointGridIndex
from pipeline.core.pointio import BUILDING
from pipeline.core.raster import read_elevation
from pipeline.errors import FeatureSkippedWarning
from pipeline.stage import StageContext, StageResult

NAME = "mesh"
REQUIRES = ("ingest", "georef", "clean")


def _terrain(ctx: StageContext, cfg: TwinConfig) -> dict[str, Any]:
    path = ctx.input_dir("georef") / "dem_enu.npy"
    if not path.is_file():
        return {}
    grid = np.load(path)
    rows, cols, _ = grid.shape
    out = ctx.out_dir / "terrain"
    out.mkdir()
    m = cfg.stages.mesh
    ri, ci = coarse_indices(rows, m.terrain_coarse_step), coarse_indices(cols, m.terrain_coarse_step)
    coarse = grid[np.ix_(ri, ci)]
    v, f = grid_mesh(coarse)
    np.savez(out / "coarse.npz", vertices=v, faces=f)
    coarse_faces = len(f)
    error = coarse_grid_error(grid, ri, ci)
    # leaf tiles share their border rows/columns, so neighbours meet without cracks
    n = m.terrain_tiles
    r_edges = np.linspace(0, rows - 1, n + 1).round().astype(int)
    c_edges = np.linspace(0, cols - 1, n + 1).round().astype(int)
    tiles = []
    for a in range(n):
        for b in range(n):
            sub = grid[r_edges[a]:r_edges[a + 1] + 1, c_edges[b]:c_edges[b + 1] + 1]
            v, f = grid_mesh(sub)
            if len(f) == 0:
                continue
            name = f"tile_{a}_{b}.npz"
            np.savez(out / name, vertices=v, faces=f)
            tiles.append({"file": name, "rows": [int(r_edges[a]), int(r_edges[a + 1])],
                          "cols": [int(c_edges[b]), int(c_edges[b + 1])], "faces": int(len(f))})
    info = {"coarse": {"file": "coarse.npz", "step": m.terrain_coarse_step,
                       "max_vertical_error_m": error, "faces": int(coarse_faces)},
            "tiles": tiles, "grid_shape": [rows, cols]}
    (out / "terrain.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    return info


def _polygon_en(part: list[dict[str, Any]]) -> Polygon:
    return Polygon(part[0]["en"], [r["en"] for r in part[1:]])


def _ground_height(dem: Any, feat: dict[str, Any]) -> float | None:
    """Lowest DEM height (orthometric m) under a footprint: pixels inside and the outline."""
    values = []
    for part in feat["parts"]:
        src = Polygon(part[0]["src"], [r["src"] for r in part[1:]])
        ring = np.concatenate([np.asarray(r["src"]) for r in part])
        values.append(dem.sample(ring[:, 0], ring[:, 1]))
        minx, miny, maxx, maxy = src.bounds
        inv = ~dem.transform
        c0, r0 = inv * (minx, maxy)
        c1, r1 = inv * (maxx, miny)
        rs = np.arange(max(int(r0), 0), min(int(np.ceil(r1)) + 1, dem.values.shape[0]))
        cs = np.arange(max(int(c0), 0), min(int(np.ceil(c1)) + 1, dem.values.shape[1]))
        if len(rs) and len(cs):
            cc, rr = np.meshgrid(cs + 0.5, rs + 0.5)
            t = dem.transform
            x, y = t.a * cc + t.b * rr + t.c, t.d * cc + t.e * rr + t.f
            inside = shapely.contains_xy(src, x.ravel(), y.ravel())
            values.append(dem.values[rs[:, None], cs[None, :]].ravel()[inside])
    v = np.concatenate(values)
    v = v[np.isfinite(v)]
    return float(v.min()) if v.size else None


def _buildings(ctx: StageContext, cfg: TwinConfig, frame: SiteFrame) -> dict[str, Any]:
    fp_path = ctx.input_dir("georef") / "footprints.json"
    if not fp_path.is_file():
        return {}
    m = cfg.stages.mesh
    feats = json.loads(fp_path.read_text())["features"]
    ingest = ctx.input_dir("ingest")
    dem = None
    if (ingest / "dem.tif").is_file():
        dem = read_elevation(ingest / "dem.tif",
                             json.loads((ingest / "dem.json").read_text())["crs_wkt"])
    store = CellStore(ctx.input_dir("clean") / "points")
    pts = None
    if store.folder.is_dir():
        # only building points are held: memory follows the roofs, not the cloud
        parts = [rec[rec["classification"] == BUILDING] for _, rec in store]
        pts = np.concatenate(parts) if parts else None
    index = PointGridIndex(pts["x"], pts["y"]) if pts is not None and len(pts) else None
    all_v, all_f, all_id, records, skipped = [], [], [], [], []
    offset = 0
    sources = {"lidar": 0, "attribute": 0, "floors": 0, "default": 0}
    for feat in ctx.reporter.track(feats, "mesh buildings"):
        parts = feat["parts"]
        polys = [_polygon_en(p) for p in parts]
        area = float(sum(p.area for p in polys))
        if area < m.min_area or not all(p.is_valid for p in polys):
            reason = "smaller than stages.mesh.min_area" if area < m.min_area else "invalid polygon"
            skipped.append({"feature": feat["id"], "reason": reason})
            warnings.warn(f"building {feat['id']}: skipped, {reason}", FeatureSkippedWarning,
                          stacklevel=2)
            continue
        ground = _ground_height(dem, feat) if dem is not None else None
        if ground is None:
            skipped.append({"feature": feat["id"], "reason": "no DEM height under the footprint"})
            warnings.warn(f"building {feat['id']}: skipped, no DEM height under the footprint",
                          FeatureSkippedWarning, stacklevel=2)
            continue
        n_c = feat["centroid"]["undulation"]
        roof, source, n_pts = None, None, 0
        if index is not None:
            idx = np.concatenate([index.within(p) for p in polys])
            n_pts = int(len(idx))
            if n_pts >= m.min_roof_points:
                enu = np.column_stack([pts["x"][idx], pts["y"][idx], pts["z"][idx]])
                _, _, h = frame.enu_to_geodetic(enu)
                # N varies by under a millimetre across one building: the centroid's is used
                roof = float(np.percentile(h - n_c, m.roof_percentile))
                source = "lidar"
        if roof is None:
            if feat.get("height"):
                roof, source = ground + float(feat["height"]), "attribute"
            elif feat.get("floors"):
                roof, source = ground + float(feat["floors"]) * m.storey_height, "floors"
            else:
                roof, source = ground + m.default_height, "default"
        sources[source] += 1
        fid = len(records)
        for part in parts:
            rings_xy = [np.asarray(r["en"]) for r in part]
            lonlat = [np.asarray(r["lonlat"]) for r in part]
            und = [np.asarray(r["undulation"]) for r in part]
            bottom = [frame.geodetic_to_enu(ll[:, 0], ll[:, 1], ground + n) for ll, n in zip(lonlat, und, strict=True)]
            top = [frame.geodetic_to_enu(ll[:, 0], ll[:, 1], roof + n) for ll, n in zip(lonlat, und, strict=True)]
            v, f = prism(rings_xy, bottom, top)
            all_v.append(v)
            all_f.append(f + offset)
            all_id.append(np.full(len(v), fid, np.int32))
            offset += len(v)
        verts = np.concatenate(all_v[-len(parts):])
        records.append({
            "feature_id": fid, "id": feat["id"], "name": feat["name"], "use": feat["use"],
            "floors": feat["floors"], "height": round(roof - ground, 3),
            "ground_height": round(ground, 3), "roof_height": round(roof, 3),
            "height_source": source, "roof_points": n_pts,
            "footprint_area_m2": round(area, 2),
            "bbox_enu": [*verts.min(0).tolist(), *verts.max(0).tolist()],
            "centroid_en": feat["centroid"]["en"],
        })
    if records:
        np.savez(ctx.out_dir / "buildings.npz", vertices=np.concatenate(all_v),
                 faces=np.concatenate(all_f), vertex_feature=np.concatenate(all_id))
    (ctx.out_dir / "buildings.json").write_text(json.dumps(
        {"buildings": records, "skipped": skipped, "height_units": "metres, orthometric"},
        indent=1, sort_keys=True))
    return {"buildings": len(records), "skipped": skipped, "height_sources": sources}


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Mesh the terrain and the buildings."""
    frame = SiteFrame.from_origin(json.loads((ctx.input_dir("georef") / "frame.json").read_text())["origin"])
    terrain = _terrain(ctx, cfg)
    buildings = _buildings(ctx, cfg, frame)
    counts = {"buildings": buildings.get("buildings", 0),
              "terrain_tiles": len(terrain.get("tiles", []))}
    return StageResult(counts, {"terrain": terrain, "buildings": buildings})
