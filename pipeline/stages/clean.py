"""clean: noise, duplicates and outliers out, optional thinning, ASPRS classes, DTM and DSM.

Reads georef's ENU cloud binned by cell and works cell by cell through the executor, so memory
follows the densest cell (plus a ``cell_buffer`` ring of its neighbours), not the cloud:

1. per cell: drop points already classed noise (7, 18) and exact duplicates (the first in input
   order stays); query the k nearest neighbours over the cell and the ring around it, which gives
   each point its mean neighbour distance exactly as a whole-cloud query would. On a cloud of
   more than :data:`THRESHOLD_SAMPLE` points only the threshold's sample (every n-th point) and
   one point per small cube without a sample point are queried; the others get an upper bound
   from a measured point of their cube;
2. the statistical outlier threshold (mean + ``outlier_std_ratio`` x std of the mean distances)
   is taken over the whole cloud (or its sample), from every cell's sums. Each neighbour distance
   is capped at ``cell_buffer``: the ring then holds everything a point's capped mean depends on,
   so it is exactly the whole cloud's and does not change with the cell size (and a handful of
   far strays cannot inflate the threshold, as they do in PCL's uncapped filter); per cell: query
   the points whose bound lies above the threshold, drop outliers (so a point is dropped exactly
   when its own distance exceeds the threshold), thin to one point per ``voxel_size`` voxel
   (voxels are anchored at multiples of their size, so none straddles a cell border), and reduce
   to the lowest point per ground-grid cell;
3. the ground filter (SMRF or CSF) runs once on the district's minimum surface;
4. per cell: height above ground gives the classes, and local geometry (surface variation over
   the same neighbourhoods as pass 1, cell and ring) tells roofs from trees; it is computed only
   for the points it decides, single echoes above 2 m that are to be classified, since the
   covariance costs as much as the query itself. Ground means and highest points give the DTM
   and DSM.

Outputs: ``points/`` (:class:`~pipeline.core.cells.CellStore`, ENU, classified, ``index`` =
position in georef's merged order) and ``dtm.tif`` / ``dsm.tif`` (ENU U of the ground / of the
highest point, metres, on a grid in the ENU plane; the CRS is the orthographic projection at the
site origin, which matches ENU E/N to well under a millimetre within 2 km).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.arrayops import take_records
from pipeline.core.atomic import replacing
from pipeline.config import CleanConfig, TwinConfig
from pipeline.core import ground as gnd
from pipeline.core.cells import Cell, CellStore, CloudMeta
from pipeline.core.classify import BUILDING, GROUND, classify_points, may_need_geometry, needs_geometry
from pipeline.core.neighbourhood import (first_of_duplicates, first_per_key, mean_distance, mean_distance_bounds,
                                         spatial_order, surface_variation)
from pipeline.core.pointio import HIGH_NOISE, LOW_NOISE
from pipeline.core.budget import check_grid
from pipeline.core.progress import Clock
from pipeline.core.raster import write_enu_raster
from pipeline import artifacts
from pipeline.stage import StageContext, StageResult, StageSpec

SPEC = StageSpec("clean", reads=(artifacts.ENU_POINTS,), writes=(artifacts.CLEAN_POINTS, artifacts.DTM))

#: points whose mean neighbour distances make the outlier threshold's statistics: every point of
#: a cloud up to this size, every n-th (by georef's ``index``) of a larger one. Two million give
#: the mean and deviation to a few parts in ten thousand, and the other points then need their
#: exact distance only when a cheap upper bound does not already put them under the threshold.
THRESHOLD_SAMPLE = 2_000_000


def _xyz(rec: np.ndarray) -> np.ndarray:
    return np.column_stack([rec["x"], rec["y"], rec["z"]])


def _usable(rec: np.ndarray, dedupe: bool) -> tuple[np.ndarray, int, int]:
    """Points not classed noise and, with ``dedupe``, not an exact copy of an earlier point."""
    noise = np.isin(rec["classification"], (LOW_NOISE, HIGH_NOISE))
    n_noise = int(noise.sum())
    if n_noise:  # most clouds have none: no copy then
        rec = rec[~noise]
    dups = 0
    if dedupe and len(rec):
        first = first_of_duplicates(_xyz(rec))
        dups = len(rec) - len(first)
        if dups:
            rec = take_records(rec, first)
    return rec, n_noise, dups


def _work(tmp: str, what: str, cell: Cell) -> Path:
    return Path(tmp) / f"{what}_{cell[0]}_{cell[1]}.npy"


def measure_cell(src: str, cell: Cell, tmp: str, k: int, buffer: float, dedupe: bool, reclassify: bool,
                 stride: int = 1) -> dict[str, Any]:
    """Pass 1 (executor task): usable points of ``cell`` and their capped mean neighbour
    distances; the sums of the distances of the threshold's sample (``index`` a multiple of
    ``stride``).

    With ``stride`` > 1 (and duplicates removed, which the bounds need), only the sample and a
    representative per small cube without a sample point are measured; the other points get an
    upper bound (:func:`~pipeline.core.neighbourhood.mean_distance_bounds`), which pass 2
    replaces by the exact distance wherever it does not settle the threshold test. The ring of neighbouring
    points is kept for that, and for pass 3 when some point of the cell may need its local
    geometry (:func:`~pipeline.core.classify.may_need_geometry`; a classified input never does).
    """
    store = CellStore(src)
    grid = store.grid()
    pts, noise, dups = _usable(store.read(cell), dedupe)
    e0, n0, e1, n1 = grid.bounds(cell)
    ring = []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            other = (cell[0] + di, cell[1] + dj)
            if other == cell or not store.cell_dir(other).is_dir():
                continue
            for part in store.parts(other):
                # memory-mapped: only the ring's points are copied out of the neighbour. Its
                # points lie within its own bounds, so only the sides facing this cell are tested:
                # one comparison for an edge neighbour, two for a corner, rather than four
                rec = np.load(part, mmap_mode="r")
                near = np.ones(len(rec), bool)
                for step, field, lo, hi in ((di, "x", e0, e1), (dj, "y", n0, n1)):
                    if step < 0:
                        near &= rec[field] >= lo - buffer
                    elif step > 0:
                        near &= rec[field] < hi + buffer
                ring.append(_xyz(_usable(rec[near], dedupe)[0]))
    xyz = _xyz(pts)
    dist = np.zeros(len(pts), np.float32)
    exact = np.ones(len(pts), bool)
    sample = pts["index"] % stride == 0
    if len(pts):
        order = spatial_order(xyz)
        q = xyz[order]
        # every point within ``buffer`` of a point of the cell is in the cell or its ring
        cloud = np.concatenate([q, *ring])
        if stride > 1 and dedupe:
            dist[order], exact[order] = mean_distance_bounds(cloud, q, k, buffer, sample[order])
        else:
            dist[order] = mean_distance(cloud, q, k, cap=buffer)
    with replacing(_work(tmp, "pts", cell)) as f:
        np.save(f, pts)
    with replacing(_work(tmp, "dist", cell)) as f:
        np.save(f, dist)
    bounded = not exact.all()
    if bounded:
        with replacing(_work(tmp, "exact", cell)) as f:
            np.save(f, exact)
    if bounded or np.any(may_need_geometry(pts["number_of_returns"], pts["classification"],
                                           reclassify=reclassify)):
        with replacing(_work(tmp, "ring", cell)) as f:
            np.save(f, np.concatenate([np.empty((0, 3)), *ring]))
    d = dist[sample].astype(np.float64)
    return {"cell": cell, "noise": noise, "duplicates": dups, "n": len(d), "sum": float(d.sum()),
            "sumsq": float((d ** 2).sum()), "measured": int(exact.sum())}


def settle_cell(tmp: str, cell: Cell, threshold: float, k: int, buffer: float) -> int:
    """Measure exactly the points of ``cell`` whose pass-1 bound lies above ``threshold`` (they
    may or may not be outliers), so that every distance left is exact or settles the test;
    returns how many were measured. A no-op for a cell measured exactly in pass 1."""
    exact_path = _work(tmp, "exact", cell)
    if not exact_path.is_file():
        return 0
    dist = np.load(_work(tmp, "dist", cell))
    todo = np.flatnonzero(~np.load(exact_path) & (dist > threshold))
    if len(todo):
        xyz = _xyz(np.load(_work(tmp, "pts", cell)))
        q = xyz[todo]
        order = spatial_order(q)
        dist[todo[order]] = mean_distance(np.concatenate([xyz, np.load(_work(tmp, "ring", cell))]), q[order],
                                          k, cap=buffer)
        with replacing(_work(tmp, "dist", cell)) as f:
            np.save(f, dist)
    exact_path.unlink()
    return len(todo)


def _kept(tmp: str, cell: Cell, threshold: float, voxel: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Positions, among the cell's usable points of pass 1, of those that pass the outlier
    threshold and thinning, with the usable points themselves; the counts of outliers and of
    thinned points."""
    pts = np.load(_work(tmp, "pts", cell))
    inlier = np.load(_work(tmp, "dist", cell)) <= threshold
    kept = np.flatnonzero(inlier)
    thinned = 0
    if voxel > 0 and len(kept):
        first = first_per_key(np.floor(_xyz(pts[kept]) / voxel).astype(np.int64))
        thinned = len(kept) - len(first)
        kept = kept[first]
    return kept, pts, int((~inlier).sum()), thinned


def lowest_cell(tmp: str, cell: Cell, threshold: float, c: CleanConfig, grid: gnd.Grid
                ) -> tuple[int, tuple[int, int, np.ndarray] | None]:
    """Pass 2 (executor task): the points pass 1 left undecided measured (:func:`settle_cell`),
    then the cell's block of the ground grid's minimum surface; (points measured, block or None)."""
    settled = settle_cell(tmp, cell, threshold, c.outlier_neighbors, c.cell_buffer)
    kept, usable, _, _ = _kept(tmp, cell, threshold, c.voxel_size)
    if not len(kept):
        return settled, None
    pts = usable[kept]
    r0, c0, rows, cols, flat = gnd.block_index(grid, pts["x"], pts["y"])
    return settled, (r0, c0, gnd.cell_extreme(flat, pts["z"], rows * cols).reshape(rows, cols))


def _surface_variation(tmp: str, cell: Cell, usable: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Surface variation of ``queries`` (positions among the cell's usable points) over the same
    neighbourhoods pass 1 measured: the cell's usable points before outlier removal and thinning,
    and the ring around them."""
    xyz = _xyz(usable)
    order = spatial_order(xyz)
    q = xyz[queries]
    q_order = spatial_order(q)
    sv = np.empty(len(q), np.float32)
    sv[q_order] = surface_variation(np.concatenate([xyz[order], np.load(_work(tmp, "ring", cell))]),
                                    q[q_order], k)
    return sv


def classify_cell(tmp: str, cell: Cell, threshold: float, c: CleanConfig, grid: gnd.Grid,
                  surface_path: str, dtm_grid: gnd.Grid, out: str) -> dict[str, Any]:
    """Pass 3 (executor task): classes of the cell's points, written to ``out``; DTM / DSM blocks.

    Local geometry is computed only for the points whose class it decides (single echoes above
    2 m that are to be classified): on aerial surveys a fifth of the points or fewer, none on a
    classified input.
    """
    kept, usable, outliers, thinned = _kept(tmp, cell, threshold, c.voxel_size)
    pts = usable[kept]
    result: dict[str, Any] = {"outliers": outliers, "thinned": thinned, "points": len(pts),
                              "classes": np.zeros(256, np.int64), "geometry_points": 0}
    if not len(pts):
        return result
    surface = np.load(surface_path, mmap_mode="r")
    r0, c0, rows, cols, _ = gnd.block_index(grid, pts["x"], pts["y"])
    # the block plus one cell each side holds every node bilinear sampling touches
    ra, ca = max(r0 - 1, 0), max(c0 - 1, 0)
    rb, cb = min(r0 + rows + 1, grid.rows), min(c0 + cols + 1, grid.cols)
    sub = gnd.Grid(grid.e0 + ca * grid.res, grid.n1 - ra * grid.res, grid.res, rb - ra, cb - ca)
    hag = pts["z"] - sub.sample(np.asarray(surface[ra:rb, ca:cb]), pts["x"], pts["y"])
    need = needs_geometry(hag, pts["number_of_returns"], pts["classification"], reclassify=c.reclassify)
    sv = np.full(len(pts), np.nan, np.float32)
    if np.any(need):
        sv[need] = _surface_variation(tmp, cell, usable, kept[need], c.outlier_neighbors)
        result["geometry_points"] = int(need.sum())
    pts["classification"] = classify_points(
        hag, sv, pts["number_of_returns"], pts["classification"],
        ground_threshold=c.ground_threshold, max_roughness=c.building_max_roughness,
        reclassify=c.reclassify)
    CellStore(out).write(cell, 0, pts)
    result["classes"] = np.bincount(pts["classification"], minlength=256)
    r0, c0, rows, cols, flat = gnd.block_index(dtm_grid, pts["x"], pts["y"])
    g = pts["classification"] == GROUND
    size = rows * cols
    result["blocks"] = (r0, c0, rows, cols,
                        np.bincount(flat[g], weights=pts["z"][g], minlength=size),
                        np.bincount(flat[g], minlength=size), gnd.cell_extreme(flat, pts["z"], size, highest=True))
    return result


def _ground_surface(grid: gnd.Grid, zmin: np.ndarray, c: CleanConfig) -> np.ndarray:
    if c.ground_method == "csf":
        is_ground = gnd.csf_ground(grid, zmin, cloth_resolution=c.csf_cloth_resolution,
                                   rigidness=c.csf_rigidness, class_threshold=c.ground_threshold)
    else:
        is_ground = gnd.smrf_ground(grid, zmin, slope=c.ground_slope, max_window=c.ground_max_window)
    return gnd.fill_linear(grid, np.where(is_ground, zmin, np.nan))


def _pass_through(src: CellStore, out: CellStore, meta: CloudMeta) -> StageResult:
    """Publish georef's cells unchanged: hard links, so no point is copied."""
    classes = np.zeros(256, np.int64)
    for cell in src.cells():
        out.cell_dir(cell).mkdir(parents=True)
        for part in src.parts(cell):
            os.link(part, out.cell_dir(cell) / part.name)
            classes += np.bincount(np.load(part, mmap_mode="r")["classification"], minlength=256)
    out.write_meta(replace(meta, classified=False))
    report = {"input_points": int(meta.count), "output_points": int(meta.count), "enabled": False,
              "classes": {str(k): int(v) for k, v in enumerate(classes) if v}}
    return StageResult({"points": int(meta.count), "ground": int(classes[GROUND]),
                        "building_points": int(classes[BUILDING])}, report)


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Remove noise, thin, classify and grid the ENU cloud, cell by cell."""
    c = cfg.stages.clean
    src = CellStore(ctx.locate(artifacts.ENU_POINTS))
    meta = src.meta()
    if meta.is_empty or meta.bounds is None:
        CellStore(ctx.out_dir / "points").write_meta(meta)
        return StageResult({"points": 0}, {"note": "no point clouds"})
    if not c.enabled:
        return _pass_through(src, CellStore(ctx.out_dir / "points"), meta)
    cells = src.largest_first()
    tmp = ctx.out_dir / "_work"
    tmp.mkdir(parents=True)
    ex = ctx.executor
    clock = Clock()
    stride = max(1, -(-meta.count // THRESHOLD_SAMPLE))
    measured = [f.result() for f in ctx.reporter.track(
        [ex.submit(measure_cell, str(src.folder), cell, str(tmp), c.outlier_neighbors, c.cell_buffer,
                   c.remove_duplicates, c.reclassify, stride) for cell in cells], "clean: neighbourhoods")]
    n = sum(m["n"] for m in measured)
    mean = sum(m["sum"] for m in measured) / max(n, 1)
    std = np.sqrt(max(sum(m["sumsq"] for m in measured) / max(n, 1) - mean ** 2, 0.0))
    threshold = mean + c.outlier_std_ratio * std
    clock.lap("neighbourhoods")

    lo, hi = meta.bounds[:3], meta.bounds[3:]
    width, height = hi[0] - lo[0], hi[1] - lo[1]
    # the minimum surface and the ground filter's working copies; the DTM's sums, counts and DSM
    check_grid("the ground filter's grids", "stages.clean.ground_cell", c.ground_cell, width, height, 48,
               path=cfg.source)
    check_grid("the DTM and DSM", "stages.clean.dtm_resolution", c.dtm_resolution, width, height, 32,
               path=cfg.source)
    grid = gnd.Grid.covering(np.array([lo[0], hi[0]]), np.array([lo[1], hi[1]]), c.ground_cell)
    zmin = np.full((grid.rows, grid.cols), np.nan)
    settled = 0
    for block in ctx.reporter.track([ex.submit(lowest_cell, str(tmp), cell, threshold, c, grid)
                                     for cell in cells], "clean: minimum surface"):
        more, b = block.result()
        settled += more
        if b is not None:
            r0, c0, values = b
            view = zmin[r0:r0 + values.shape[0], c0:c0 + values.shape[1]]
            view[...] = np.fmin(view, values)
    clock.lap("minimum_surface")
    surface = _ground_surface(grid, zmin, c)
    clock.lap("ground_filter")
    surface_path = tmp / "surface.npy"
    np.save(surface_path, surface)

    dtm_grid = gnd.Grid.covering(np.array([lo[0], hi[0]]), np.array([lo[1], hi[1]]), c.dtm_resolution)
    ground_sum = np.zeros(dtm_grid.rows * dtm_grid.cols)
    ground_n = np.zeros(dtm_grid.rows * dtm_grid.cols)
    dsm = np.full((dtm_grid.rows, dtm_grid.cols), np.nan)
    out = CellStore(ctx.out_dir / "points")
    classes = np.zeros(256, np.int64)
    outliers = thinned = kept = geometry = 0
    for f in ctx.reporter.track([ex.submit(classify_cell, str(tmp), cell, threshold, c, grid, str(surface_path),
                                           dtm_grid, str(out.folder)) for cell in cells], "clean: classify"):
        r = f.result()
        outliers, thinned, kept = outliers + r["outliers"], thinned + r["thinned"], kept + r["points"]
        classes += r["classes"]
        geometry += r["geometry_points"]
        if "blocks" in r:
            r0, c0, rows, cols, s, cnt, top = r["blocks"]
            rr, cc = np.meshgrid(np.arange(r0, r0 + rows), np.arange(c0, c0 + cols), indexing="ij")
            flat = (rr * dtm_grid.cols + cc).ravel()
            ground_sum[flat] += s
            ground_n[flat] += cnt
            view = dsm[r0:r0 + rows, c0:c0 + cols]
            view[...] = np.fmax(view, top.reshape(rows, cols))
    clock.lap("classify")
    shutil.rmtree(tmp)
    out.write_meta(replace(meta, count=kept, classified=True))
    # cells without ground points (under roofs and canopy) are interpolated from the mean ground
    # heights around them: the filter's surface there is made of cell minima, which noise pulls
    # down by centimetres, and building bases are read off this DTM
    with np.errstate(invalid="ignore", divide="ignore"):
        dtm = np.where(ground_n > 0, ground_sum / ground_n, np.nan).reshape(dtm_grid.rows, dtm_grid.cols)
    dtm = gnd.fill_linear(dtm_grid, dtm)
    origin = cfg.site.origin.model_dump()
    write_enu_raster(ctx.out_dir / "dtm.tif", dtm_grid, dtm, origin, "the bare ground")
    write_enu_raster(ctx.out_dir / "dsm.tif", dtm_grid, dsm, origin, "the highest point")
    clock.lap("rasters")
    noise = sum(m["noise"] for m in measured)
    dups = sum(m["duplicates"] for m in measured)
    report = {"input_points": int(meta.count), "cells": len(cells),
              "noise_class_points_dropped": noise, "duplicates_removed": dups,
              "statistical_outliers_removed": outliers,
              "outlier_threshold_m": threshold, "mean_neighbour_distance_m": mean,
              "outlier_threshold_sample": {"every_nth_point": stride, "points": n},
              "neighbour_distances_measured": sum(m["measured"] for m in measured) + settled,
              "thinned_away": thinned, "output_points": kept, "ground_method": c.ground_method,
              "local_geometry_points": geometry,
              "classes": {str(k): int(v) for k, v in enumerate(classes) if v},
              "dtm": {"resolution_m": c.dtm_resolution, "shape": [dtm_grid.rows, dtm_grid.cols]},
              "seconds": clock.laps}
    return StageResult({"points": kept, "ground": int(classes[GROUND]),
                        "building_points": int(classes[BUILDING])}, report)
