"""clean: outliers out, optional thinning, ground / building / vegetation classes, a DTM.

Reads georef's ENU points; writes ``points/chunk_*.npy`` (ENU, classified with ASPRS codes),
``kept_index.npy`` (index of each kept point in georef's order, for scoring and provenance) and
``dtm.tif`` (ENU U of the ground, metres, on a grid in the ENU plane; its CRS is the orthographic
projection at the site origin, which matches ENU E/N to well under a millimetre within 2 km).

First version: the cloud is processed whole (the sample fits in memory); streaming by spatial
cells is a later step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import open3d as o3d
import rasterio
from rasterio.crs import CRS as RioCRS
from rasterio.transform import from_origin

from pipeline.config import TwinConfig
from pipeline.core import ground as gnd
from pipeline.core.pointio import (BUILDING, GROUND, HIGH_NOISE, HIGH_VEGETATION, LOW_NOISE,
                                   LOW_VEGETATION, ChunkStore)
from pipeline.stage import StageContext, StageResult

NAME = "clean"
REQUIRES = ("georef",)
#: above ground (m), points are building or high vegetation; below, low vegetation
HIGH_OBJECT_M = 2.0


def _statistical_outliers(xyz: np.ndarray, neighbors: int, std_ratio: float) -> np.ndarray:
    """Boolean mask of inliers by open3d's statistical outlier filter."""
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    _, kept = pcd.remove_statistical_outlier(nb_neighbors=neighbors, std_ratio=std_ratio)
    mask = np.zeros(len(xyz), bool)
    mask[np.asarray(kept, dtype=np.int64)] = True
    return mask


def _voxel_first(xyz: np.ndarray, size: float) -> np.ndarray:
    """Indices keeping the first point of each ``size`` m voxel (deterministic thinning)."""
    keys = np.floor((xyz - xyz.min(0)) / size).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.sort(first)


def classify(pts: np.ndarray, cfg: TwinConfig) -> tuple[np.ndarray, gnd.Grid, np.ndarray]:
    """ASPRS classes for ENU points, the ground grid and its (rows, cols) ground surface U."""
    c = cfg.stages.clean
    e, n, u = pts["x"], pts["y"], pts["z"]
    grid = gnd.Grid.covering(e, n, c.ground_cell)
    zmin = gnd.cell_min(grid, e, n, u)
    is_ground_cell = gnd.smrf_ground(grid, zmin, slope=c.ground_slope, max_window=c.ground_max_window)
    surface = gnd.fill_linear(grid, np.where(is_ground_cell, zmin, np.nan))
    hag = u - grid.sample(surface, e, n)
    cls = np.full(len(pts), LOW_VEGETATION, np.uint8)
    cls[hag <= c.ground_threshold] = GROUND
    high = hag > HIGH_OBJECT_M
    # Vegetation returns several echoes and is rough; roofs give single echoes on smooth planes.
    rough_grid = gnd.Grid.covering(e, n, 1.0)
    row, col = rough_grid.index(e[high], n[high])
    flat = row * rough_grid.cols + col
    size = rough_grid.rows * rough_grid.cols
    cnt = np.bincount(flat, minlength=size)
    s1 = np.bincount(flat, weights=u[high], minlength=size)
    s2 = np.bincount(flat, weights=u[high] ** 2, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(np.maximum(s2 / cnt - (s1 / cnt) ** 2, 0.0))
    rough = std[flat] > 0.3
    multi = pts["number_of_returns"][high] > 1
    cls[high] = np.where(rough | multi, HIGH_VEGETATION, BUILDING)
    return cls, grid, surface


def _write_dtm(path: Any, grid: gnd.Grid, surface: np.ndarray, cfg: TwinConfig) -> None:
    o = cfg.site.origin
    crs = RioCRS.from_proj4(f"+proj=ortho +lat_0={o.lat} +lon_0={o.lon} +ellps=WGS84 +units=m")
    profile = dict(driver="GTiff", width=grid.cols, height=grid.rows, count=1, dtype="float32",
                   crs=crs, transform=from_origin(grid.e0, grid.n1, grid.res, grid.res),
                   nodata=-9999.0, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                   predictor=3)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(surface.astype(np.float32), 1)
        dst.update_tags(FRAME="ENU", VALUES="U metres (ENU up), not a height",
                        ORIGIN=f"{o.lat},{o.lon},{o.height}")


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Remove noise, thin, classify and grid the ENU cloud."""
    c = cfg.stages.clean
    src = ChunkStore(ctx.input_dir("georef") / "points")
    if not src.folder.is_dir():
        return StageResult({"points": 0}, {"note": "no point clouds"})
    pts = src.read_all()
    index = np.arange(len(pts))
    report: dict[str, Any] = {"input_points": int(len(pts))}
    flagged = np.isin(pts["classification"], (LOW_NOISE, HIGH_NOISE))
    pts, index = pts[~flagged], index[~flagged]
    report["noise_class_points_dropped"] = int(flagged.sum())
    xyz = np.column_stack([pts["x"], pts["y"], pts["z"]])
    inliers = _statistical_outliers(xyz, c.outlier_neighbors, c.outlier_std_ratio)
    report["statistical_outliers_removed"] = int((~inliers).sum())
    pts, index, xyz = pts[inliers], index[inliers], xyz[inliers]
    if c.voxel_size > 0:
        keep = _voxel_first(xyz, c.voxel_size)
        report["thinned_away"] = int(len(pts) - len(keep))
        pts, index = pts[keep], index[keep]
    cls, grid, surface = classify(pts, cfg)
    pts = pts.copy()
    pts["classification"] = cls
    out = ChunkStore(ctx.out_dir / "points")
    step = cfg.stages.ingest.chunk_size
    for k, start in enumerate(range(0, len(pts), step)):
        out.write(k, pts[start:start + step])
    out.write_meta({"frame": "ENU", "count": int(len(pts)), "classified": True})
    np.save(ctx.out_dir / "kept_index.npy", index.astype(np.int64))
    dtm_grid = gnd.Grid.covering(pts["x"], pts["y"], c.dtm_resolution)
    g = cls == GROUND
    dtm = gnd.fill_linear(dtm_grid, gnd.cell_mean(dtm_grid, pts["x"][g], pts["y"][g], pts["z"][g]))
    _write_dtm(ctx.out_dir / "dtm.tif", dtm_grid, dtm, cfg)
    counts_by_class = {str(k): int(v) for k, v in enumerate(np.bincount(cls)) if v}
    report |= {"output_points": int(len(pts)), "classes": counts_by_class,
               "dtm": {"resolution_m": c.dtm_resolution, "shape": [dtm_grid.rows, dtm_grid.cols]}}
    return StageResult({"points": int(len(pts)), "ground": int(g.sum()),
                        "building_points": int((cls == BUILDING).sum())}, report)
