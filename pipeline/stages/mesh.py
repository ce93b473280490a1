"""mesh: terrain TINs with measured error, LoD2/LoD1 building solids, imported models, and levels
of detail with their measured deviation.

Terrain: one heightfield on the ENU grid (``stages.mesh.terrain_resolution``): clean's LiDAR
DTM where it has data, the DEM (resampled in its own pixel lattice) elsewhere, blended over
``terrain_blend`` metres; nodata stays nodata. Each level is a pydelatin TIN whose vertical
error bound grows by ``terrain_lod_factor``; the error recorded is measured on every post.

Buildings: footprints from georef (or outlined from the building points, ``footprints_from_points``)
lose their sliver parts; the ground is the lowest heightfield value under the footprint. With
enough LiDAR points the roof is fitted (flat, shed, gable or hip: LoD2), or else the LoD1 roof is
a robust percentile of them; without LiDAR the height comes from the attributes. Solids are built
in plan metres with orthometric heights and every vertex is placed on its own plumb line (ENU of
lon, lat, H + N), so walls are vertical where they stand and corners land where PROJ puts them.
Levels of detail: the LoD2 solid, its LoD1 block, then quadric decimations, each with its
Hausdorff distance to the first. Imported models (georef's ``meshes/``) join as buildings or
replace one, with decimated levels measured the same way. Work runs per block of buildings
in the executor.

Outputs (ENU metres): ``terrain/terrain.tif`` (the heightfield, ENU U), ``terrain/level_<k>.npz``
(vertices, faces) + ``terrain/terrain.json``; ``buildings.npz`` (every building's levels as
pieces: ``vertices``, ``faces`` indexing into their own piece, ``piece_building``, ``piece_level``,
``vertex_start``, ``face_start``) + ``buildings.jsonl`` (attributes in feature-ID order, one
building per line: levels with errors, roof fits) + ``buildings.json`` (what was skipped or
repaired). Heights in the attributes are orthometric.
"""

from __future__ import annotations

import warnings
from array import array
from collections import Counter
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely
from shapely.geometry import MultiPoint, Polygon

from pipeline.core.atomic import replacing
from pipeline.config import MeshConfig, TwinConfig
from pipeline.core.alignment import footprint_offset
from pipeline.core.budget import check_grid
from pipeline.core.crs_hints import crs_for_shift
from pipeline.core.executor import results_in_order
from pipeline.core.cells import CellStore
from pipeline.core.footprint_merge import match_outlines
from pipeline.core.footprints import footprints_from_points, position_id
from pipeline.core.geodesy import GeoidModel, SiteFrame
from pipeline.core.ground import Grid
from pipeline.core.lod import Level, hausdorff, lod_chain
from pipeline.core.meshing import concat_meshes, is_closed, roof_solid
from pipeline.core.pointindex import PointGridIndex
from pipeline.core.pointio import BUILDING
from pipeline.core.progress import Clock
from pipeline.core.raster import EnuRaster, read_enu_raster, write_enu_raster
from pipeline.core.surfaces import GROUND, complete_kinds
from pipeline.core.roofs import Plane, envelope, fit_roof
from pipeline.core.terrain import (Block, Heightfield, Tin, build_block_tin, build_tin, cliff_floor, fuse,
                                   height_difference, post_error, resample_grid, resample_lattice, sample_bilinear,
                                   split_blocks, stitch_tins, vertical_error)
from pipeline.errors import (FeatureSkippedWarning, GroundAssumedWarning, HeightDisagreementWarning,
                             MisalignmentWarning)
from pipeline import artifacts
from pipeline.artifacts.citymodels import CityBuilding, CityMesh, CityModelLayer, read_city_models
from pipeline.artifacts.buildings import BuildingRecord, BuildingWriter, MeshLevel
from pipeline.artifacts.dem import read_enu_dem
from pipeline.artifacts.footprints import (Centroid, Footprint, FootprintLines, FootprintTable, Ring,
                                          first_source_vertex, read_footprints, scan_footprints)
from pipeline.artifacts.frame import read_frame
from pipeline.artifacts.models import PlacedModel, read_models
from pipeline.artifacts.terrain import TerrainLevel, TerrainRecord, write_terrain
from pipeline.stage import StageContext, StageResult, StageSpec

SPEC = StageSpec("mesh", reads=(artifacts.FRAME, artifacts.ENU_FOOTPRINTS, artifacts.ENU_MODELS, artifacts.ENU_CITY,
                                artifacts.ENU_DEM,
                                artifacts.CLEAN_POINTS, artifacts.DTM),
                 writes=(artifacts.TERRAIN, artifacts.BUILDINGS))

#: buildings over the point cloud needed before their misalignment with it is judged
MIN_ALIGNMENT_BUILDINGS = 5
#: cell (m) and reach (m) of the search for the shift between the footprints and the LiDAR
ALIGNMENT_CELL_M, ALIGNMENT_SEARCH_M = 2.0, 400.0
#: city model buildings per executor task (each a few dozen to a few thousand triangles)
CITY_BATCH = 64
#: a TIN needs at least this many heightfield posts with data to be a surface
MIN_TERRAIN_POSTS = 4
#: steps along each axis that the DEM's post spacing is measured on
SPACING_STEPS = 1_000_000
#: ``ground_source`` of buildings on a site without terrain (they stand on the origin's height)
REFERENCE_GROUND = "site reference height"

#: roof points closer than this (m) to the outline are left out of the roof fit: wall hits and
#: points spilling over the eaves belong to no roof plane
ROOF_EDGE_MARGIN = 0.5


# --- terrain ------------------------------------------------------------------------------------

def _data_window(enu: np.ndarray) -> np.ndarray:
    """The DEM's ENU lattice cut to the rows and columns that hold data: a DEM clipped to a
    boundary has whole edge rows and columns of nodata."""
    valid = np.isfinite(enu[..., 2])
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    return enu[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _inner_extent(e: np.ndarray, n: np.ndarray) -> tuple[float, float, float, float]:
    """The ENU rectangle inside a raster's pixel-centre lattice (E min, N min, E max, N max): a
    projected grid is turned a little against ENU, so its bounding box would reach past it. Every
    edge row and column must hold data (see :func:`_data_window`)."""
    return (float(np.nanmax(e[:, 0])), float(np.nanmax(n[-1, :])),
            float(np.nanmin(e[:, -1])), float(np.nanmin(n[0, :])))


def _post_grid(lo_e: float, lo_n: float, hi_e: float, hi_n: float, res: float) -> Grid:
    """A grid aligned on multiples of ``res`` whose posts (cell centres) lie within the extent."""
    e0 = np.ceil((lo_e - res / 2) / res) * res
    n1 = np.floor((hi_n + res / 2) / res) * res
    cols = int(np.floor((hi_e - (e0 + res / 2)) / res)) + 1
    rows = int(np.floor(((n1 - res / 2) - lo_n) / res)) + 1
    return Grid(float(e0), float(n1), res, max(rows, 0), max(cols, 0))


def _heightfield(ctx: StageContext, cfg: TwinConfig) -> tuple[Heightfield | None, dict[str, Any]]:
    m = cfg.stages.mesh
    dtm_path = ctx.locate(artifacts.DTM)
    dem = read_enu_dem(ctx.input_dir(artifacts.ENU_DEM.stage))
    res = m.terrain_resolution
    extents = []
    sources: dict[str, Any] = {}
    dtm = None
    if dtm_path.is_file():
        dtm = read_enu_raster(dtm_path)
        g = dtm[0]
        extents.append((g.e0 + g.res / 2, g.n1 - (g.rows - 0.5) * g.res,
                        g.e0 + (g.cols - 0.5) * g.res, g.n1 - g.res / 2))
        sources["lidar_dtm"] = {"resolution_m": g.res, "shape": [g.rows, g.cols]}
    if dem is not None:
        dem = _data_window(dem)
        extents.append(_inner_extent(dem[..., 0], dem[..., 1]))
        sources["dem"] = {"shape": list(dem.shape[:2])}
    if not extents:
        return None, sources
    ext = np.array(extents)
    lo_e, lo_n, hi_e, hi_n = ext[:, 0].min(), ext[:, 1].min(), ext[:, 2].max(), ext[:, 3].max()
    if dtm is None and dem is not None:
        # a DEM alone keeps its own post spacing: posts interpolated between its posts add no
        # detail, only memory and time (a 5 m city DEM on a 1 m grid is 25 times the posts)
        spacing = round(_post_spacing(dem), 3)
        sources["dem"]["resolution_m"] = spacing
        res = max(res, spacing)
    # the heightfield, both sources resampled onto it, their blend and its distance transform
    check_grid("the terrain heightfield", "stages.mesh.terrain_resolution", res, hi_e - lo_e, hi_n - lo_n, 64,
               path=cfg.source)
    grid = _post_grid(lo_e, lo_n, hi_e, hi_n, res)
    u_dtm = resample_grid(dtm[1], dtm[0], grid) if dtm is not None else None
    u_dem = resample_lattice(dem[..., 2], dem[..., 0], dem[..., 1], grid) if dem is not None else None
    if u_dtm is not None and u_dem is not None:
        sources["posts_from_lidar_dtm"] = float(np.isfinite(u_dtm).mean())
        diff = height_difference(u_dtm, u_dem)
        if diff is not None:
            sources["lidar_dtm_minus_dem_m"] = asdict(diff)
            if abs(diff.median_m) > m.height_disagreement:
                area = diff.posts * res * res / 1e6
                warnings.warn(f"the LiDAR ground and the DEM (inputs.dem) disagree: the LiDAR is "
                              f"{diff.median_m:+.2f} m off the DEM (median over {area:.2f} km² of common ground; "
                              f"> stages.mesh.height_disagreement {m.height_disagreement:g} m); one of them is "
                              "probably orthometric where the other is ellipsoidal (a CRS without its vertical "
                              "part, site.heights), or in another vertical unit or datum", HeightDisagreementWarning,
                              stacklevel=2)
        return Heightfield(grid, fuse(u_dtm, u_dem, res, m.terrain_blend)), sources
    u = u_dtm if u_dtm is not None else u_dem
    assert u is not None  # one of the two was read: extents is not empty
    return Heightfield(grid, u), sources


def _post_spacing(lattice: np.ndarray) -> float:
    """The typical distance (m) between neighbouring posts of a (rows, cols, 3) ENU lattice: the
    median step along rows and along columns, over at most about ``SPACING_STEPS`` of each (every
    k-th column's steps down and every k-th row's across; a city DEM's 25 million posts made
    2 GB of differences, and a projected lattice's spacing changes by parts per million across it)."""
    rows, cols = lattice.shape[:2]
    k = max(1, -(-rows * cols // SPACING_STEPS))
    along = [np.hypot(*np.diff(sub[..., :2], axis=a).reshape(-1, 2).T)
             for a, sub in ((0, lattice[:, ::k]), (1, lattice[::k])) if lattice.shape[a] > 1]
    steps = np.concatenate(along) if along else np.empty(0)
    steps = steps[np.isfinite(steps)]
    return float(np.median(steps)) if len(steps) else 0.0


def terrain_level(tif: str, max_error: float, out: str) -> TerrainLevel:
    """Executor task: the TIN of the heightfield in ``tif`` within ``max_error`` (m), saved to
    ``out``; returns its size and its measured error."""
    grid, u = read_enu_raster(tif)
    hf = Heightfield(grid, u)
    tin = build_tin(hf, max_error)
    measured, coverage = vertical_error(tin, hf)
    return _save_level(out, tin, max_error, measured, coverage)


def _save_level(out: str, tin: Tin, max_error: float, measured: float, coverage: float) -> TerrainLevel:
    with replacing(out) as f:
        np.savez(f, vertices=tin.vertices, faces=tin.faces)
    return TerrainLevel(Path(out).name, max_error, round(measured, 6), round(coverage, 6), int(len(tin.faces)),
                        int(len(tin.vertices)))


@dataclass(frozen=True)
class BlockTin:
    """One block's TIN of a level (``posts`` in block rows and columns), its largest vertical error
    on any of its posts (m), and its own data posts and those its TIN covers."""

    block: Block
    tin: Tin
    error_m: float
    covered: int
    data: int


def terrain_block(tif: str, block: Block, max_error: float, floor: float) -> BlockTin:
    """Executor task: the TIN of one block of the heightfield in ``tif`` within ``max_error`` (m),
    with empty posts put at ``floor`` while triangulating (the same in every block)."""
    with EnuRaster(tif) as raster:
        grid, u = raster.read_cells(block.r0, block.c0, *block.shape)
    hf = Heightfield(grid, u)
    tin = build_block_tin(hf, max_error, floor)
    return BlockTin(block, tin, *post_error(tin, hf, block.owned()))


def _block_posts(size_m: float, res: float) -> int:
    """Post spacings along a terrain block's edge of about ``size_m`` metres."""
    return max(int(round(size_m / res)), 2)


def _start_terrain(ctx: StageContext, cfg: TwinConfig) -> tuple[TerrainRecord, list[tuple[float, list[Any]]]]:
    """Write the heightfield and submit its TIN tasks: per level, one task, or one per block when
    the heightfield is larger than one ``terrain_block_size`` block; (terrain, each level's error
    bound (m) and futures), with no levels when there is no elevation input or too little of it
    for a surface. The levels run while the buildings are meshed."""
    m = cfg.stages.mesh
    hf, sources = _heightfield(ctx, cfg)
    if hf is None:
        return TerrainRecord(sources=sources, note="no elevation input (LiDAR DTM or DEM)"), []
    posts = int(np.isfinite(hf.u).sum())
    if hf.grid.rows < 2 or hf.grid.cols < 2 or posts < MIN_TERRAIN_POSTS:
        # one point, or points all in one spot: no surface to triangulate
        return TerrainRecord(sources=sources, note=f"{posts} heightfield post(s) with data on a "
                                                   f"{hf.grid.rows} x {hf.grid.cols} grid: too few for a "
                                                   "terrain surface"), []
    out = ctx.out_dir / "terrain"
    out.mkdir()
    tif = out / "terrain.tif"
    write_enu_raster(tif, hf.grid, hf.u, cfg.site.origin.model_dump(), "the terrain (LiDAR DTM and DEM)")
    errors = [m.terrain_max_error * m.terrain_lod_factor ** k for k in range(m.terrain_lods)]
    g = hf.grid
    blocks = split_blocks(g.rows, g.cols, _block_posts(m.terrain_block_size, g.res))
    futures: list[tuple[float, list[Any]]]
    if len(blocks) == 1:
        # one block: pydelatin alone, with no border to agree on
        futures = [(e, [ctx.executor.submit(terrain_level, str(tif), e, str(out / f"level_{k}.npz"))])
                   for k, e in enumerate(errors)]
    else:
        lowest = float(np.nanmin(hf.u))
        futures = [(e, [ctx.executor.submit(terrain_block, str(tif), b, e, cliff_floor(lowest, e)) for b in blocks])
                   for e in errors]
    info = TerrainRecord({"file": "terrain.tif", "resolution_m": g.res, "shape": [g.rows, g.cols],
                          "e0": g.e0, "n1": g.n1, "data_posts": float(np.isfinite(hf.u).mean())}, sources,
                         blocks=len(blocks))
    return info, futures


def _finish_terrain(ctx: StageContext, info: TerrainRecord, futures: list[tuple[float, list[Any]]]
                    ) -> TerrainRecord:
    """Wait for the TIN tasks; a blocked level's TINs are stitched into one (their border vertices
    are the same posts) and its error is the largest of its blocks', each measured on every post
    of the block, borders included."""
    levels = []
    out = ctx.out_dir / "terrain"
    for k, (bound, jobs) in enumerate(ctx.reporter.track(futures, "mesh terrain")):
        if info.blocks == 1:
            levels.append(jobs[0].result())
            continue
        parts: list[BlockTin] = [j.result() for j in jobs]
        hf = info.heightfield
        assert hf is not None  # there are levels to finish
        tin = stitch_tins([(p.block, p.tin) for p in parts],
                          Grid(hf["e0"], hf["n1"], hf["resolution_m"], *hf["shape"]))
        covered, data = sum(p.covered for p in parts), sum(p.data for p in parts)
        levels.append(_save_level(str(out / f"level_{k}.npz"), tin, bound, max(p.error_m for p in parts),
                                  covered / data if data else 0.0))
    if futures and any(lv.faces == 0 for lv in levels):
        info.note = "the heightfield has no triangle of posts with data: no terrain surface"
        levels = []
    info.levels = levels
    write_terrain(ctx.out_dir, info)
    return info


# --- buildings ----------------------------------------------------------------------------------

def _rings_en(part: list[Ring]) -> list[np.ndarray]:
    return [np.asarray(r.en, np.float64) for r in part]


def _ground_spans(terrain: tuple[Grid, np.ndarray] | None, footprints: list[list[Polygon]], frame: SiteFrame,
                  undulations: list[float]) -> list[tuple[float, float] | None]:
    """Lowest and highest terrain height (orthometric m) under each footprint (its parts
    ``polys``, plan m, with its geoid undulation): from the posts inside it and the heightfield
    along its outline (every vertex, and every post spacing along each edge); None where no
    terrain is under it. One PROJ call for all of them: per building it was a tenth of the
    buildings' time."""
    if terrain is None or terrain[0].rows == 0:
        return [None] * len(footprints)
    grid, u = terrain
    cand: list[np.ndarray] = []
    count: list[int] = []
    for polys in footprints:
        first = len(cand)
        for p in polys:
            # only the posts in the polygon's box can lie inside it: a block's window holds
            # thousands of posts per building, and contains_xy (or even the posts' coordinates)
            # over all of them per building was the mesh stage's hot spot
            lo_e, lo_n, hi_e, hi_n = p.bounds
            (r0, r1), (c0, c1) = (np.sort(x) for x in grid.index(np.array([lo_e, hi_e]), np.array([lo_n, hi_n])))
            be, bn = np.meshgrid(grid.e0 + (np.arange(c0, c1 + 1) + 0.5) * grid.res,
                                 grid.n1 - (np.arange(r0, r1 + 1) + 0.5) * grid.res)
            bu = u[r0:r1 + 1, c0:c1 + 1]
            inside = shapely.contains_xy(p, be, bn) & np.isfinite(bu)
            cand.append(np.column_stack([be[inside], bn[inside], bu[inside]]))
            for ring in [p.exterior, *p.interiors]:
                steps = max(int(np.ceil(ring.length / grid.res)), 1)
                pts = shapely.line_interpolate_point(ring, np.linspace(0, ring.length, steps + 1))
                xy = shapely.get_coordinates(pts)
                val = sample_bilinear(u, grid, xy[:, 0], xy[:, 1])
                ok = np.isfinite(val)
                cand.append(np.column_stack([xy[ok, 0], xy[ok, 1], val[ok]]))
        count.append(sum(len(c) for c in cand[first:]))
    counts = np.array(count, np.int64)
    if not counts.sum():
        return [None] * len(footprints)
    _, _, h = frame.enu_to_geodetic(np.concatenate(cand))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    lo = np.minimum.reduceat(h, starts[has]) - np.asarray(undulations)[has]
    hi = np.maximum.reduceat(h, starts[has]) - np.asarray(undulations)[has]
    out: list[tuple[float, float] | None] = [None] * len(footprints)
    for i, a, b in zip(np.flatnonzero(has).tolist(), lo.tolist(), hi.tolist(), strict=True):
        out[i] = (a, b)
    return out


def _fallback_height(feat: Footprint, ground: float, m: MeshConfig) -> tuple[float, str]:
    """Roof height without LiDAR: the height given (by the building register, else the layer),
    else floors x storey height (the register's floors, else the layer's), else the default."""
    if feat.height:
        return ground + feat.height, "register" if feat.height_origin == "register" else "attribute"
    if feat.floors:
        return ground + feat.floors * m.storey_height, "register floors" if feat.floors_origin == "register" \
            else "floors"
    return ground + m.default_height, "default"


@dataclass
class _Draft:
    """A building's solids in plan metres (x, y, orthometric height) and what its record needs,
    before the block places every vertex of its buildings on its plumb line in one pass (one
    building at a time, PROJ's per-call cost took a third of the stage)."""

    feat: Footprint
    polys: list[Polygon]
    ground: float
    ground_source: str
    roof_h: float
    source: str
    n_pts: int
    fallback: str | None
    lod1: list[tuple[np.ndarray, np.ndarray]]
    lod2: list[tuple[np.ndarray, np.ndarray]] | None = None
    kind: str | None = None
    rmse: float | None = None
    #: roof top and eave (orthometric m): the LoD1 roof's unless an LoD2 solid stands
    top: float = 0.0
    eave: float = 0.0


def _draft_building(feat: Footprint, polys: list[Polygon], pts: dict[str, np.ndarray] | None,
                    index: PointGridIndex | None, ground: float | None, m: MeshConfig, reference: float | None
                    ) -> _Draft | str:
    """The solids of one building in plan metres, or why it was skipped. ``ground`` is the lowest
    terrain under it (orthometric m; None: no terrain there); ``reference`` (ellipsoidal m) is
    the ground of a site with no terrain at all; None skips buildings with no terrain under them."""
    und = feat.centroid.undulation
    ground_source = "terrain"
    if ground is None and reference is not None:
        ground, ground_source = reference - und, REFERENCE_GROUND
    if ground is None:
        return "no terrain height under the footprint"
    sel = np.concatenate([index.within(p) for p in polys]) if index is not None else np.empty(0, np.int64)
    if pts is not None and len(sel):
        px, py, ph = pts["px"][sel], pts["py"][sel], pts["h"][sel] - und
    else:
        px = py = ph = np.empty(0)
    n_pts = int(len(sel))
    fits: list[Any] = []
    fallback = None
    if n_pts >= m.min_roof_points:
        roof_h, source = float(np.percentile(ph, m.roof_percentile)), "lidar"
        if m.lod2:
            for p in polys:
                inner = p.buffer(-ROOF_EDGE_MARGIN)
                inside = shapely.contains_xy(inner, px, py) if not inner.is_empty else np.zeros(n_pts, bool)
                if inside.sum() < m.min_roof_points:
                    fits.append(None)
                    fallback = fallback or "too few roof points inside a footprint part"
                    continue
                fit = fit_roof(px[inside], py[inside], ph[inside], threshold=m.roof_plane_threshold,
                               min_share=m.roof_min_share, max_rmse=m.roof_max_rmse, flat_slope=m.roof_flat_slope,
                               min_points=m.min_roof_points, seed=feat.id)
                fits.append(fit)
                fallback = fallback or fit.reason
    else:
        roof_h, source = _fallback_height(feat, ground, m)
        if pts is None:
            fallback = "no point cloud"
        elif n_pts == 0:
            fallback = "no LiDAR points on the roof (outside the coverage)"
        else:
            fallback = f"{n_pts} LiDAR points on the roof (< stages.mesh.min_roof_points)"
    draft = _Draft(feat, polys, ground, ground_source, roof_h, source, n_pts, fallback,
                   [roof_solid(p, [Plane(0.0, 0.0, roof_h)], ground) for p in polys], top=roof_h, eave=roof_h)
    if fits and all(f is not None and f.reason is None for f in fits):
        parts = [roof_solid(p, f.planes, ground) for p, f in zip(polys, fits, strict=True)]
        if all(is_closed(f) for _, f in parts):
            draft.lod2 = parts
            draft.top = float(max(v[:, 2].max() for v, _ in parts))
            # the eave: the lowest roof point on any outline
            draft.eave = float(min(envelope(f.planes, *np.asarray(p.exterior.coords).T)[0].min()
                                   for p, f in zip(polys, fits, strict=True)))
            main = max(range(len(polys)), key=lambda i: polys[i].area)
            draft.kind, draft.rmse = fits[main].kind, max(f.rmse for f in fits)
        else:
            draft.fallback = "roof solid did not close"
    return draft


def _place_all(frame: SiteFrame, meshes: list[tuple[np.ndarray, float]]) -> list[np.ndarray]:
    """ENU of the vertices of several meshes given as plan x, y and orthometric height (m), each
    with its geoid undulation (m): every vertex on its own plumb line, all in one pass."""
    if not meshes:
        return []
    v = np.concatenate([x for x, _ in meshes])
    und = np.repeat([u for _, u in meshes], [len(x) for x, _ in meshes])
    placed = frame.plan_to_enu(v[:, 0], v[:, 1], und, v[:, 2] + und)
    return np.split(placed, np.cumsum([len(x) for x, _ in meshes])[:-1])


def _finish_building(d: _Draft, lod1: tuple[np.ndarray, np.ndarray], lod2: tuple[np.ndarray, np.ndarray] | None,
                     m: MeshConfig) -> tuple[BuildingRecord, list[Level]]:
    """(record, levels) of a drafted building from its placed LoD1 and LoD2 solids (ENU)."""
    feat, polys, ground, roof_h, top, eave, kind = d.feat, d.polys, d.ground, d.roof_h, d.top, d.eave, d.kind
    if lod2 is not None:
        levels = [Level(*lod2, 0.0)]
        if kind != "flat":
            levels.append(Level(*lod1, hausdorff(lod2, lod1)))
        lod = "LoD2"
    else:
        levels = [Level(*lod1, 0.0)]
        lod = "LoD1"
    levels = lod_chain(levels, ratio=m.lod_ratio, max_levels=m.lod_levels)
    area = float(sum(p.area for p in polys))
    verts = levels[0].vertices
    record = BuildingRecord(
        id=feat.id, name=feat.name, use=feat.use, floors=feat.floors, floors_below=feat.floors_below,
        approval_date=feat.approval_date, footprint_sources=feat.sources,
        height=round(top - ground, 3), ground_height=round(ground, 3), roof_height=round(top, 3),
        eave_height=round(eave, 3), lod1_roof_height=round(roof_h, 3), height_source=d.source,
        lod=lod, roof_type=kind if lod == "LoD2" else None,
        roof_fit_rmse_m=round(d.rmse, 4) if d.rmse is not None else None,
        lod2_fallback=d.fallback if lod != "LoD2" else None, roof_points=d.n_pts,
        footprint_area_m2=round(area, 2), footprint_source=feat.footprint_source,
        bbox_enu=[*verts.min(0).tolist(), *verts.max(0).tolist()],
        centroid=feat.centroid,
        outline_en=np.asarray(max(polys, key=lambda p: p.area).exterior.coords)[:-1].round(3).tolist(),
        ground_source=d.ground_source, proposed=feat.proposed, replaces=feat.replaces)
    return record, levels


def _polygons(feat: Footprint, min_area: float) -> tuple[list[Polygon], int]:
    """The footprint's parts in plan metres, slivers (< ``min_area`` m^2) dropped and counted."""
    polys = []
    for part in feat.parts:
        rings = _rings_en(part)
        p = Polygon(rings[0], rings[1:])
        if not p.is_valid:
            p = shapely.make_valid(p)
        polys += [q for q in shapely.get_parts(p) if q.geom_type == "Polygon"]
    kept = [p for p in polys if p.area >= min_area]
    return kept, len(polys) - len(kept)


def _block_points(store: str | None, cells: list[tuple[int, int]], frame: SiteFrame, undulation: float,
                  bounds: tuple[float, float, float, float]) -> dict[str, np.ndarray] | None:
    """Building-class points of ``cells`` within ``bounds`` (ENU E/N): plan x, y at ellipsoidal
    height ``undulation`` and ellipsoidal h."""
    if store is None:
        return None
    cs = CellStore(store)
    present = set(cs.cells())
    parts = []
    for cell in cells:
        if cell not in present:
            continue
        rec = cs.read(cell)
        rec = rec[(rec["classification"] == BUILDING) & (rec["x"] >= bounds[0]) & (rec["x"] <= bounds[2])
                  & (rec["y"] >= bounds[1]) & (rec["y"] <= bounds[3])]
        parts.append(np.column_stack([rec["x"], rec["y"], rec["z"]]))
    enu = np.concatenate(parts) if parts else np.empty((0, 3))
    if len(enu) == 0:
        return {"px": np.empty(0), "py": np.empty(0), "h": np.empty(0)}
    plan, h = frame.enu_to_plan(enu, undulation)
    return {"px": plan[:, 0], "py": plan[:, 1], "h": h}


def mesh_block(positions: np.ndarray, footprints: list[Footprint] | FootprintLines, store: str | None,
               cells: list[tuple[int, int]], terrain_tif: str | None, origin: dict[str, float], m_dump: dict[str, Any],
               reference: float | None = None) -> dict[str, Any]:
    """Executor task: mesh a block of buildings (``footprints``, or where to read them, at
    ``positions`` in the input order); returns their records (with that position), levels and
    what was skipped."""
    m = MeshConfig.model_validate(m_dump)
    features = list(zip(positions.tolist(),
                        footprints.load() if isinstance(footprints, FootprintLines) else footprints, strict=True))
    frame = SiteFrame.from_origin(origin)
    polys_of = [_polygons(f, m.min_area) for _, f in features]
    shapes = [p for ps, _ in polys_of for p in ps]
    # slivers: parts dropped from buildings that keep others (a building of slivers only is skipped)
    out: dict[str, Any] = {"records": [], "levels": [], "skipped": [],
                           "slivers": sum(s for ps, s in polys_of if ps)}
    if not shapes:
        out["skipped"] = [{"feature": f.id, "reason": "smaller than stages.mesh.min_area"} for _, f in features]
        return out
    bounds = shapely.unary_union(shapes).buffer(2.0).bounds
    und = float(np.mean([f.centroid.undulation for _, f in features]))
    pts = _block_points(store, cells, frame, und, bounds)
    index = PointGridIndex(pts["px"], pts["py"]) if pts is not None and len(pts["px"]) else None
    terrain = read_enu_raster(terrain_tif, bounds) if terrain_tif else None
    drafts: list[tuple[int, _Draft]] = []
    # a building without parts has no ground candidates, so no span
    spans = _ground_spans(terrain, [polys for polys, _ in polys_of], frame,
                          [f.centroid.undulation for _, f in features])
    for (k, feat), (polys, _), span in zip(features, polys_of, spans, strict=True):
        if not polys:
            out["skipped"].append({"feature": feat.id, "reason": "smaller than stages.mesh.min_area"})
            continue
        res = _draft_building(feat, polys, pts, index, None if span is None else span[0], m, reference)
        if isinstance(res, str):
            out["skipped"].append({"feature": feat.id, "reason": res})
            continue
        drafts.append((k, res))
    solids = [(d, concat_meshes(d.lod1), concat_meshes(d.lod2) if d.lod2 is not None else None) for _, d in drafts]
    placed = iter(_place_all(frame, [(mesh[0], d.feat.centroid.undulation) for d, *pair in solids
                                     for mesh in pair if mesh is not None]))
    for (k, _), (d, lod1, lod2) in zip(drafts, solids, strict=True):
        record, levels = _finish_building(d, (next(placed), lod1[1]),
                                          (next(placed), lod2[1]) if lod2 is not None else None, m)
        out["records"].append((k, record))
        out["levels"].append([(lv.vertices, lv.faces, lv.error) for lv in levels])
    return out


def _building_points(store: CellStore, terrain_tif: Path | None) -> tuple[np.ndarray, int]:
    """(ENU points of the building class, how many cells were left unread). With a heightfield,
    a cell it has no post with data over is not read: a building there has no ground to stand
    on and would be skipped after outlining (a DEM that misses the cloud outlined a 20 M-point
    city for nothing). Cells partly covered are read whole: a building half over the terrain
    stands on the part that is."""
    parts, unread = [], 0
    grid = store.grid()
    with EnuRaster(terrain_tif) if terrain_tif is not None else nullcontext() as heightfield:
        for cell in store.cells():
            if heightfield is not None and not np.isfinite(heightfield.read(grid.bounds(cell))[1]).any():
                unread += 1
                continue
            rec = store.read(cell)
            rec = rec[rec["classification"] == BUILDING]
            parts.append(np.column_stack([rec["x"], rec["y"], rec["z"]]))
    return (np.concatenate(parts) if parts else np.empty((0, 3))), unread


def _derived_features(ctx: StageContext, cfg: TwinConfig, frame: SiteFrame, geoid: GeoidModel,
                      terrain_tif: Path | None) -> tuple[list[Footprint], dict[str, Any]]:
    """Footprints outlined from the building-class points over the terrain (``terrain_tif``;
    None: no terrain, buildings stand on the reference height), as feature records."""
    store = CellStore(ctx.locate(artifacts.CLEAN_POINTS))
    if store.meta().is_empty:
        return [], {"source": "lidar", "derived": 0, "note": "no classified points"}
    n0 = float(geoid.undulation(np.array([frame.lon]), np.array([frame.lat]))[0])
    enu, unread = _building_points(store, terrain_tif)
    plan = frame.enu_to_plan(enu, n0)[0] if len(enu) else np.empty((0, 2))
    m = cfg.stages.mesh
    derived, dropped = footprints_from_points(plan[:, 0], plan[:, 1], outline_cell=m.footprint_cell,
                                              min_area=max(m.min_area, 20.0), tolerance=m.footprint_tolerance)
    # north to south, then west to east; ids follow each outline's position (to a metre), not its
    # rank, so a building keeps its id when others appear or vanish
    derived.sort(key=lambda d: (-round(d.polygon.centroid.y, 1), round(d.polygon.centroid.x, 1)))
    feats = []
    for d in derived:
        c = d.polygon.centroid
        lon, lat = frame.plan_to_geodetic(np.array([c.x]), np.array([c.y]), n0)
        und = float(geoid.undulation(lon, lat)[0])
        rings = [Ring(np.asarray(r.coords)[:-1].tolist()) for r in [d.polygon.exterior, *d.polygon.interiors]]
        feats.append(Footprint(position_id("LIDAR-", float(lon[0]), float(lat[0]), 1e-5), None, None, None, None,
                               [rings],
                               Centroid(float(lon[0]), float(lat[0]), und, [c.x, c.y]), footprint_source="lidar"))
    info = {"source": "lidar", "derived": len(feats), "squared": int(sum(d.squared for d in derived)),
            "clusters_too_small": dropped, "building_points": int(len(plan)),
            "cells_without_terrain": unread}
    return feats, info


def _merged(given: list[Footprint], lidar: list[Footprint], m: MeshConfig) -> tuple[list[Footprint], dict[str, Any]]:
    """One footprint per building from the layer and the LiDAR outlines: matched pairs keep the
    layer's id and attributes and the geometry of ``footprint_priority``'s source, with both
    sources in their provenance; outlines only the LiDAR has are added, outlines that overlap
    the layer's without matching (conflicts) are left out and reported."""
    def outline(f: Footprint) -> shapely.Geometry:
        return shapely.union_all(_polygons(f, 0.0)[0])

    match = match_outlines([outline(f) for f in given], [outline(f) for f in lidar], min_iou=m.footprint_match_iou)
    partner = {i: (j, iou) for i, j, iou in match.pairs}
    out = []
    for i, f in enumerate(given):
        if i not in partner:
            out.append(replace(f, sources=[{"source": "input", "id": f.id, "geometry": True}]))
            continue
        j, iou = partner[i]
        use_lidar = m.footprint_priority == "lidar"
        shape = lidar[j] if use_lidar else f
        out.append(replace(f, parts=shape.parts, centroid=shape.centroid, footprint_source=shape.footprint_source,
                           sources=[{"source": "input", "id": f.id, "geometry": not use_lidar},
                                    {"source": "lidar", "id": lidar[j].id, "iou": iou, "geometry": use_lidar}]))
    out += [replace(lidar[j], sources=[{"source": "lidar", "id": lidar[j].id, "geometry": True}])
            for j in match.only_second]
    info = {"matched": len(match.pairs), "input_only": len(match.only_first), "lidar_only": len(match.only_second),
            "conflicts": [{"lidar": lidar[j].id, "overlaps": [given[i].id for i in over]}
                          for j, over in match.conflicts],
            "geometry_from": m.footprint_priority, "min_iou": m.footprint_match_iou}
    return out, info


def _features(ctx: StageContext, cfg: TwinConfig, frame: SiteFrame, terrain_tif: Path | None
              ) -> tuple[FootprintTable, dict[str, Any]]:
    """The footprint layer (as lines of georef's file, which each block's task reads), or
    footprints outlined from the LiDAR over the terrain (``terrain_tif``) when none was given
    (or when ``footprints_from_points`` says always), or both merged (``merge``)."""
    georef = ctx.input_dir(artifacts.ENU_FOOTPRINTS.stage)
    layer = read_footprints(georef, features=False)
    mode = cfg.stages.mesh.footprints_from_points
    if layer.source is not None and mode == "merge":
        derived, lidar_info = _derived_features(ctx, cfg, frame, cfg.geoid_model(), terrain_tif)
        feats, merge = _merged(read_footprints(georef, plan_only=True).features, derived, cfg.stages.mesh)
        for c in merge["conflicts"]:
            warnings.warn(f"LiDAR outline {c['lidar']} overlaps footprint(s) {', '.join(c['overlaps'])} without "
                          "matching one: left out, the layer's kept", FeatureSkippedWarning, stacklevel=2)
        return FootprintTable.of(feats), {"source": "input+lidar", "features": len(feats), "merge": merge,
                                          "lidar": lidar_info, "skipped_at_ingest": layer.skipped,
                                          "repaired_at_ingest": layer.repaired}
    if layer.source is not None and mode != "always":
        table = scan_footprints(georef)
        return table, {"source": "input", "features": len(table), "skipped_at_ingest": layer.skipped,
                       "repaired_at_ingest": layer.repaired}
    if mode != "never":
        derived, info = _derived_features(ctx, cfg, frame, cfg.geoid_model(), terrain_tif)
        return FootprintTable.of(derived), info
    return FootprintTable.of([]), {"source": None}


def _few_measured(feats: FootprintTable, measured: int, store: CellStore) -> bool:
    """Whether fewer than half of the layer's footprints over the point cloud (five at least)
    became buildings with their height from it (``measured`` of them did): the sign of a layer
    that lies off the LiDAR."""
    centre = feats.centroid_en[feats.from_input]
    if len(centre) < MIN_ALIGNMENT_BUILDINGS:
        return False
    present = set(store.cells())
    over = sum((int(i), int(j)) in present for i, j in zip(*store.grid().keys(centre[:, 0], centre[:, 1]),
                                                           strict=True))
    return over >= MIN_ALIGNMENT_BUILDINGS and measured < over / 2


def _alignment(ctx: StageContext, frame: SiteFrame, feats: FootprintTable, store: CellStore) -> dict[str, Any]:
    """How far the footprint layer lies off the LiDAR's building points (the shift that covers
    most of it with them); warns, naming the CRS the shift points to, when it is off."""
    georef = ctx.input_dir(artifacts.ENU_FOOTPRINTS.stage)
    layer = read_footprints(georef, features=False)
    polys = [p for f in feats.load(np.flatnonzero(feats.from_input)) for p in _polygons(f, 0.0)[0]]
    lo = np.min([p.bounds[:2] for p in polys], axis=0) - ALIGNMENT_SEARCH_M
    hi = np.max([p.bounds[2:] for p in polys], axis=0) + ALIGNMENT_SEARCH_M
    parts = []
    grid = store.grid()
    for cell in store.cells():
        b = grid.bounds(cell)
        if b[0] > hi[0] or b[2] < lo[0] or b[1] > hi[1] or b[3] < lo[1]:
            continue
        rec = store.read(cell)
        rec = rec[rec["classification"] == BUILDING]
        # ENU east/north stand for plan coordinates here: they differ by centimetres on a site
        parts.append(np.column_stack([rec["x"], rec["y"]]))
    offset = footprint_offset(polys, np.concatenate(parts) if parts else np.empty((0, 2)),
                              res=ALIGNMENT_CELL_M, max_shift=ALIGNMENT_SEARCH_M)
    if offset is None:
        return {"checked": False}
    off = (offset.distance_m >= 3 * ALIGNMENT_CELL_M and offset.covered_moved >= 0.5
           and offset.covered_moved >= 2 * offset.covered_as_placed)
    info: dict[str, Any] = {"checked": True, "off": off, "shift_en_m": list(offset.shift_en),
                            "covered_as_placed": offset.covered_as_placed, "covered_moved": offset.covered_moved}
    if off:
        name = Path(layer.source or "footprints").name
        candidates = []
        src = first_source_vertex(georef)
        if layer.crs_wkt and src:
            declared = pyproj.CRS.from_wkt(layer.crs_wkt)
            candidates = crs_for_shift(declared, *src, frame, offset.shift_en, tolerance_m=2 * ALIGNMENT_CELL_M)
        info["crs_candidates"] = [f"EPSG:{c.to_epsg()}" for c in candidates]
        de, dn = offset.shift_en
        hint = (f"; moved so, they are where {', '.join(f'EPSG:{c.to_epsg()} ({c.name})' for c in candidates)} "
                "would put them: set inputs.footprints.crs to the one the file was made in" if candidates
                else ": check the layer's CRS")
        where = " and ".join(f"{abs(d):.0f} m {side}" for d, side in
                             ((de, "west" if de > 0 else "east"), (dn, "south" if dn > 0 else "north")) if abs(d) >= 1)
        warnings.warn(f"{name}: the footprints lie {where} of the LiDAR's buildings (building points cover "
                      f"{offset.covered_as_placed:.0%} of them as placed, {offset.covered_moved:.0%} moved by that)"
                      + hint, MisalignmentWarning, stacklevel=2)
    return info


def _blocks(feats: FootprintTable, store: CellStore | None, size: float
            ) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """The footprints' positions in the layer grouped by the ``size`` block their centroid falls
    in (blocks west to east, then south to north; layer order within one), with the point cells
    each group's footprints touch."""
    if not len(feats):
        return []
    key = np.floor(feats.centroid_en / size).astype(np.int64)
    order = np.lexsort((key[:, 1], key[:, 0]))  # stable: layer order within a block
    sk = key[order]
    groups = np.split(order, np.flatnonzero(np.any(sk[1:] != sk[:-1], axis=1)) + 1)
    grid = store.grid() if store is not None else None
    out = []
    for members in groups:
        cells: list[tuple[int, int]] = []
        if grid is not None:
            b = feats.bounds[members]
            (i0, i1), (j0, j1) = grid.keys(np.array([b[:, 0].min() - 2.0, b[:, 2].max() + 2.0]),
                                           np.array([b[:, 1].min() - 2.0, b[:, 3].max() + 2.0]))
            cells = [(int(i), int(j)) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)]
        out.append((members, cells))
    return out


def _stand(label: str, hint: str, vertices: np.ndarray, polys: list[Polygon], undulation: float,
           heightfield: EnuRaster | None, frame: SiteFrame, tolerance: float) -> tuple[float, str, float]:
    """(ground height, its source, top height) of a modelled solid, orthometric m: the ground is
    the lowest terrain under ``polys`` (plan m) or else the model's base; warns (``label``,
    ``hint``) when the base floats above, or sinks below, all the terrain under it by more than
    ``tolerance`` (m)."""
    _, _, h = frame.enu_to_geodetic(vertices)
    bounds = shapely.union_all(polys).buffer(2.0).bounds if polys else None
    # only the heightfield under the model is read
    terrain = heightfield.read(bounds) if heightfield is not None and bounds else None
    span = _ground_spans(terrain, [polys], frame, [undulation])[0]
    base = float(h.min() - undulation)
    if span is not None and not span[0] - tolerance <= base <= span[1] + tolerance:
        off = base - span[1] if base > span[1] else base - span[0]
        warnings.warn(f"{label}'s base is {abs(off):.2f} m {'above' if off > 0 else 'below'} the terrain under it "
                      f"(> stages.mesh.height_disagreement {tolerance:g} m): {hint}", HeightDisagreementWarning,
                      stacklevel=3)
    if span is None:
        return base, "model base", float(h.max() - undulation)
    return span[0], "terrain", float(h.max() - undulation)


def _model_record(meta: PlacedModel, levels: list[Level], heightfield: EnuRaster | None,
                  frame: SiteFrame, tolerance: float) -> BuildingRecord:
    """The building record of an imported model (see :func:`_stand` for its ground)."""
    und = meta.undulation
    v = levels[0].vertices
    hull = MultiPoint(v[:, :2]).convex_hull
    ground, ground_source, top = _stand(
        f"{Path(meta.source).name}: model {meta.id}", "check the origin's height (orthometric in its CRS unless "
        "the CRS says otherwise), the scale and the up axis", v, [hull] if hull.geom_type == "Polygon" else [],
        und, heightfield, frame, tolerance)
    lon, lat = meta.origin_lonlat
    return BuildingRecord(
        id=meta.id, name=meta.name, use=meta.use, floors=None,
        height=round(top - ground, 3), ground_height=round(ground, 3), roof_height=round(top, 3),
        eave_height=None, lod1_roof_height=None, height_source="model", lod="imported",
        roof_type=None, roof_fit_rmse_m=None, lod2_fallback=None, roof_points=0,
        footprint_area_m2=round(float(hull.area), 2), footprint_source="model",
        bbox_enu=[*v.min(0).tolist(), *v.max(0).tolist()],
        centroid=Centroid(lon, lat, und, list(hull.centroid.coords[0])),
        outline_en=np.asarray(hull.exterior.coords)[:-1].round(3).tolist() if hull.geom_type == "Polygon" else [],
        ground_source=ground_source, source_file=Path(meta.source).name, repair=meta.repair)


def _city_outline(frame: SiteFrame, mesh: CityMesh, undulation: float) -> shapely.Geometry:
    """A city model building's outline in plan metres: its ground surfaces (``mesh``'s kinds,
    completed) seen from above (courtyards stay holes), or all of it where it has no ground."""
    v, f, kinds = mesh
    f = f[kinds == GROUND] if (kinds == GROUND).any() else f
    en, _ = frame.enu_to_plan(v, undulation)
    tri = shapely.polygons(en[f])
    tri = tri[shapely.area(tri) > 1e-6]
    outline = shapely.make_valid(shapely.union_all(tri)) if len(tri) else MultiPoint(en).convex_hull
    polys = [g for g in getattr(outline, "geoms", [outline]) if g.geom_type == "Polygon"]
    return shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0] if polys else MultiPoint(en).convex_hull


def _with_city_models(feats: list[Footprint], city: CityModelLayer, outlines: list[shapely.Geometry],
                      m: MeshConfig) -> tuple[list[Footprint], list[tuple[int, Footprint | None, list[dict[str, Any]]]],
                                              dict[str, Any]]:
    """The footprints left to reconstruct, and the city model buildings to tile as modelled
    (index, the footprint each one is, the sources of its outline), one per building: a city
    building pairs with a footprint when ``join`` (else its own id) names it or their outlines
    match (IoU); ``city_model_priority`` picks whose geometry a pair keeps, and a city building
    overlapping footprints without matching one displaces them (or, when the footprints win,
    is left out)."""
    by_id = {f.id: i for i, f in enumerate(feats)}
    given = [(by_id[b.join or b.id], j) for j, b in enumerate(city.buildings) if (b.join or b.id) in by_id]
    match = match_outlines([shapely.union_all(_polygons(f, 0.0)[0]) for f in feats], outlines,
                           min_iou=m.footprint_match_iou, given=given)
    partner = {j: (i, iou) for i, j, iou in match.pairs}
    conflicts = dict(match.conflicts)
    use_model = m.city_model_priority == "city_model"
    feats = list(feats)
    dropped: set[int] = set()
    plan: list[tuple[int, Footprint | None, list[dict[str, Any]]]] = []
    left_out = []

    def earlier(f: Footprint, geometry: bool | None) -> list[dict[str, Any]]:
        own = f.sources or [{"source": f.footprint_source, "id": f.id, "geometry": True}]
        return [s if geometry is None else s | {"geometry": geometry} for s in own]

    for j, b in enumerate(city.buildings):
        mine = {"source": "city model", "id": b.id, "file": Path(b.source).name}
        if j in partner:
            i, iou = partner[j]
            if use_model:
                dropped.add(i)
                plan.append((j, feats[i], earlier(feats[i], False) + [mine | {"iou": iou, "geometry": True}]))
            else:
                feats[i] = replace(feats[i], sources=earlier(feats[i], None) + [mine | {"iou": iou, "geometry": False}])
        elif j in conflicts:
            over = [feats[i] for i in conflicts[j]]
            names = ", ".join(f.id for f in over)
            if use_model:
                dropped.update(conflicts[j])
                plan.append((j, None, [mine | {"geometry": True}] + [s for f in over for s in earlier(f, False)]))
                warnings.warn(f"{mine['file']}: city model building {b.id} overlaps footprint(s) {names} without "
                              "matching one: the city model's stands there (stages.mesh.city_model_priority)",
                              FeatureSkippedWarning, stacklevel=2)
            else:
                left_out.append(b.id)
                warnings.warn(f"{mine['file']}: city model building {b.id} overlaps footprint(s) {names} without "
                              "matching one: left out, the footprints kept (stages.mesh.city_model_priority)",
                              FeatureSkippedWarning, stacklevel=2)
        else:
            plan.append((j, None, [mine | {"geometry": True}]))
    info = {"buildings": len(city.buildings), "files": [s.path for s in city.sources],
            "matched": len(match.pairs), "matched_by_id": len(given), "model_only": len(match.only_second),
            "conflicts": [{"city_model": city.buildings[j].id, "overlaps": [feats[i].id for i in over]}
                          for j, over in match.conflicts],
            "left_out": left_out, "geometry_from": m.city_model_priority, "min_iou": m.footprint_match_iou}
    return [f for i, f in enumerate(feats) if i not in dropped], plan, info


def _city_record(b: CityBuilding, feat: Footprint | None, sources: list[dict[str, Any]], vertices: np.ndarray,
                 outline: shapely.Geometry, heightfield: EnuRaster | None, frame: SiteFrame,
                 tolerance: float) -> BuildingRecord:
    """The record of a city model building; a footprint it matched gives its id and attributes
    (its own fill the gaps), the model its geometry and heights."""
    und = b.undulation or 0.0
    polys = [g for g in getattr(outline, "geoms", [outline]) if g.geom_type == "Polygon"]
    ground, ground_source, top = _stand(f"{Path(b.source).name}: city model building {b.id}",
                                        "check the file's CRS and whether its heights are orthometric", vertices,
                                        polys, und, heightfield, frame, tolerance)
    c = outline.centroid
    lon, lat = frame.plan_to_geodetic(np.array([c.x]), np.array([c.y]), und)
    biggest = max(polys, key=lambda p: p.area) if polys else None

    def pick(name: str) -> Any:
        mine = getattr(feat, name) if feat is not None else None
        return mine if mine is not None else getattr(b, name)

    return BuildingRecord(
        id=feat.id if feat is not None else b.id, name=pick("name"), use=pick("use"), floors=pick("floors"),
        height=round(top - ground, 3), ground_height=round(ground, 3), roof_height=round(top, 3),
        eave_height=None, lod1_roof_height=None, height_source="city model", lod=b.lod,
        roof_type=None, roof_fit_rmse_m=None, lod2_fallback=None, roof_points=0,
        footprint_area_m2=round(float(outline.area), 2), footprint_source="city model",
        bbox_enu=[*vertices.min(0).tolist(), *vertices.max(0).tolist()],
        centroid=Centroid(float(lon[0]), float(lat[0]), und, [c.x, c.y]),
        outline_en=np.asarray(biggest.exterior.coords)[:-1].round(3).tolist() if biggest is not None else [],
        outline_holes_en=[np.asarray(r.coords)[:-1].round(3).tolist() for r in biggest.interiors]
        if biggest is not None else [],
        ground_source=ground_source, source_file=Path(b.source).name,
        proposed=feat.proposed if feat is not None else False, replaces=feat.replaces if feat is not None else None,
        floors_below=pick("floors_below"), approval_date=feat.approval_date if feat is not None else None,
        footprint_sources=sources)


def solid_levels(meshes: list[tuple[np.ndarray, np.ndarray]], m_dump: dict[str, Any]) -> list[list[MeshLevel]]:
    """Executor task: the levels of detail of modelled solids (ENU vertices, faces) each."""
    m = MeshConfig.model_validate(m_dump)
    out = []
    for v, f in meshes:
        levels = lod_chain([Level(v, f.astype(np.int32), 0.0)], ratio=m.lod_ratio, max_levels=m.lod_levels)
        out.append([(lv.vertices, lv.faces, lv.error) for lv in levels])
    return out


def mesh_model(npz: str, m_dump: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Executor task: the levels of detail of one imported model (ENU)."""
    d = np.load(npz)
    return solid_levels([(d["vertices"], d["faces"])], m_dump)[0]


def _buildings(ctx: StageContext, cfg: TwinConfig, frame: SiteFrame, terrain_tif: Path | None) -> dict[str, Any]:
    m = cfg.stages.mesh
    feats, fp_info = _features(ctx, cfg, frame, terrain_tif)
    city, city_meshes = read_city_models(ctx.input_dir(artifacts.ENU_CITY.stage))
    # the kinds the source leaves open are settled once, for the outline and the tiles alike
    city_meshes = [(v, f, complete_kinds(v, f, k)) for v, f, k in city_meshes]
    city_outlines = [_city_outline(frame, mesh, b.undulation or 0.0)
                     for b, mesh in zip(city.buildings, city_meshes, strict=True)]
    city_plan: list[tuple[int, Footprint | None, list[dict[str, Any]]]] = []
    if city.buildings:
        kept, city_plan, fp_info["city_models"] = _with_city_models(feats.load(np.arange(len(feats))), city,
                                                                     city_outlines, m)
        feats = FootprintTable.of(kept)
    clean_points = ctx.locate(artifacts.CLEAN_POINTS)
    cloud = CellStore(clean_points)
    cloud_meta = cloud.meta()
    store = None if cloud_meta.is_empty else cloud
    cell_size = cloud_meta.cell_size
    tif = str(terrain_tif) if terrain_tif is not None else None
    origin = {"lat": frame.lat, "lon": frame.lon, "height": frame.height}
    # a site with no terrain at all stands its buildings where a globe without terrain draws the
    # ground: the site origin's ellipsoidal height
    reference = frame.height if terrain_tif is None else None
    # models first: a detailed model's levels take longest, and nothing waits behind it then
    model_dir = ctx.locate(artifacts.ENU_MODELS)
    metas = read_models(ctx.input_dir(artifacts.ENU_MODELS.stage))
    model_futures = [ctx.executor.submit(mesh_model, str(model_dir / meta.file), m.model_dump(mode="json"))
                     for meta in metas]
    batches = [city_plan[k:k + CITY_BATCH] for k in range(0, len(city_plan), CITY_BATCH)]
    city_futures = [ctx.executor.submit(solid_levels, [city_meshes[j][:2] for j, _, _ in batch],
                                        m.model_dump(mode="json")) for batch in batches]
    futures = [ctx.executor.submit(mesh_block, members, feats.take(members),
                                   str(clean_points) if store is not None else None, cells,
                                   tif, origin, m.model_dump(mode="json"), reference)
               for members, cells in _blocks(feats, store, cell_size)]
    with BuildingWriter(ctx.out_dir) as out:
        # each building goes to disk as its block comes back; what is kept of it is its input
        # position, handle, id and the building it replaces (the few that name one)
        position, made, made_ids = array("q"), array("q"), []
        targets: dict[int, str] = {}
        skipped: list[dict[str, Any]] = []
        slivers = measured = 0
        for r in ctx.reporter.track(results_in_order(futures), "mesh buildings", total=len(futures)):
            for (i, rec), lv in zip(r["records"], r["levels"], strict=True):
                if rec.replaces is not None:
                    targets[len(made)] = rec.replaces
                position.append(i)
                made.append(out.add(rec, lv))
                made_ids.append(rec.id)
                measured += rec.footprint_source == "input" and rec.height_source == "lidar"
            skipped += r["skipped"]
            slivers += r["slivers"]
        order = np.argsort(np.asarray(position, np.int64), kind="stable")
        handles = np.asarray(made, np.int64)[order].tolist()
        ids = [made_ids[k] for k in order.tolist()]
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        replacing = sorted((int(rank[k]), target) for k, target in targets.items())
        del position, made, made_ids, order, rank
        # modelled solids read the heightfield under each of them: one open file for all
        with EnuRaster(terrain_tif) if terrain_tif is not None else nullcontext() as heightfield:
            for batch, solids in zip(batches, results_in_order(city_futures), strict=True):
                for (j, feat, provenance), solid in zip(batch, solids, strict=True):
                    rec = _city_record(city.buildings[j], feat, provenance, solid[0][0], city_outlines[j],
                                       heightfield, frame, m.height_disagreement)
                    handles.append(out.add(rec, solid, city_meshes[j][2]))
                    ids.append(rec.id)
                    if rec.replaces is not None:
                        replacing.append((len(ids) - 1, rec.replaces))
            for s in skipped:
                warnings.warn(f"building {s['feature']}: skipped, {s['reason']}", FeatureSkippedWarning,
                              stacklevel=2)
            if store is not None and _few_measured(feats, measured, store):
                fp_info["alignment"] = _alignment(ctx, frame, feats, store)
            del feats, futures
            by_id = {ident: k for k, ident in enumerate(ids)}
            for k, named in replacing:
                # a footprint proposal, like a model one, stands beside the building it replaces
                if named not in by_id or named == ids[k]:
                    skipped.append({"feature": ids[k], "reason": f"replaces unknown building {named!r}; "
                                                                 "added as a proposal of its own"})
                    out.change(handles[k], replace(out.record(handles[k]), replaces=None))
            models = []
            for meta, fut in zip(metas, model_futures, strict=True):
                lv = fut.result()
                rec = _model_record(meta, [Level(*x) for x in lv], heightfield, frame, m.height_disagreement)
                target = meta.replaces
                rec.proposed = meta.proposed
                if meta.proposed:
                    # a proposal is judged against what stands: both stay, the viewer switches them
                    if target is not None and target not in by_id:
                        skipped.append({"feature": meta.id, "reason": f"replaces unknown building {target!r}; "
                                                                         "added as a proposal of its own"})
                        target = None
                    rec.replaces = target
                    handles.append(out.add(rec, lv))
                elif target is not None and target in by_id:
                    i = by_id[target]
                    old = out.record(handles[i])
                    rec.id, rec.floors = old.id, old.floors
                    rec.name = meta.name or old.name
                    rec.use = meta.use or old.use
                    rec.replaced_footprint = True
                    handles[i] = out.add(rec, lv)
                else:
                    if target is not None:
                        skipped.append({"feature": meta.id, "reason": f"replaces unknown building {target!r}; "
                                                                         "added as a building of its own"})
                    handles.append(out.add(rec, lv))
                models.append({"id": rec.id, "file": rec.source_file, "replaces": target, "proposed": meta.proposed,
                               "repair": meta.repair, "levels": [{"faces": int(len(x[1])), "error_m": round(x[2], 4)}
                                                                    for x in lv]})
        tally = _Tally()
        count = out.close(handles, skipped, slivers, fp_info, seen=tally.add)
    if tally.assumed:
        warnings.warn(f"{tally.assumed} building(s) stand on the site's reference height ({frame.height:g} m "
                      "above the ellipsoid, site.origin.height): there is no terrain (no point cloud or DEM)",
                      GroundAssumedWarning, stacklevel=2)
    return {"buildings": count, **tally.report(), "skipped": skipped, "slivers_dropped": slivers,
            "footprints": fp_info, "models": models}


class _Tally:
    """What the mesh report says of the buildings, counted as their records are written."""

    def __init__(self) -> None:
        self.lod: Counter[str] = Counter()
        self.roof_types: Counter[str] = Counter()
        self.height_sources: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self.assumed = 0
        self.roofs: list[dict[str, Any]] = []

    def add(self, r: BuildingRecord) -> None:
        self.lod[r.lod] += 1
        self.height_sources[r.height_source] += 1
        if r.roof_type:
            self.roof_types[r.roof_type] += 1
        if r.lod2_fallback is not None:
            self.fallbacks[r.lod2_fallback] += 1
        self.assumed += r.ground_source == REFERENCE_GROUND
        # the roofs the LiDAR shaped or had points for (every building's record is in
        # buildings.jsonl: listing a city's attribute-height blocks here made a 150 MB report at
        # 600,000 buildings)
        if r.roof_points or r.roof_type is not None:
            self.roofs.append({"id": r.id, "lod": r.lod, "roof_type": r.roof_type, "fit_rmse_m": r.roof_fit_rmse_m,
                               "roof_points": r.roof_points, "fallback": r.lod2_fallback,
                               "level_errors_m": [x.error_m for x in r.levels]})

    def report(self) -> dict[str, Any]:
        return {"lod": dict(sorted(self.lod.items())), "roof_types": dict(sorted(self.roof_types.items())),
                "height_sources": dict(sorted(self.height_sources.items())),
                "ground_on_reference_height": self.assumed, "lod2_fallbacks": dict(sorted(self.fallbacks.items())),
                "roofs": self.roofs}


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Mesh the terrain, the buildings and the imported models."""
    clock = Clock()
    frame = read_frame(ctx.input_dir("georef")).site
    terrain, futures = _start_terrain(ctx, cfg)
    clock.lap("heightfield")
    tif = ctx.out_dir / terrain.heightfield_path if futures and terrain.heightfield_path else None
    buildings = _buildings(ctx, cfg, frame, tif)
    clock.lap("buildings")
    terrain = _finish_terrain(ctx, terrain, futures)
    clock.lap("terrain_levels")
    counts = {"buildings": buildings["buildings"], "terrain_levels": len(terrain.levels),
              "lod2_buildings": buildings["lod"].get("LoD2", 0)}
    return StageResult(counts, {"terrain": asdict(terrain), "buildings": buildings, "seconds": clock.laps})
