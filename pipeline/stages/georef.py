"""georef: every input into the site's ENU frame, with orthometric heights made ellipsoidal.

Outputs: ``frame.json`` (origin, ENU->ECEF matrix, geoid grid); ``points/`` the merged cloud
binned by ENU cell (:class:`~pipeline.core.cells.CellStore`) with x, y, z = E, N, U metres and
``index`` = the point's position in the merged input order; ``footprints.json`` (rings in
source CRS, WGS84 lon/lat, geoid undulation per vertex, ENU E/N); ``dem_enu.npy`` (rows, cols,
3) ENU of each DEM pixel centre, NaN where nodata; ``meshes/`` imported models in ENU (vertices,
faces) with their placement; ``gcps.json``; ``pois.json``; each with its record in
:mod:`pipeline.artifacts`, written as an empty layer when its input was not given. The report
checks every input lands near the site and scores the LiDAR's heights against the surveyed check points.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import asdict, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely

from pipeline.core.atomic import replacing
from pipeline.core.arrayops import column_bounds, widen_records
from pipeline.config import TwinConfig
from pipeline.core.geodesy import (SiteFrame, check_area_of_use, check_near_site,
                                   ecef_to_geodetic, ellipsoidal_heights, horizontal_crs, source_to_lonlat,
                                   vertical_unit)
from pipeline.core.helmert import robust_similarity
from pipeline.core.meshimport import local_to_site, model_to_local
from pipeline.core.neighbourhood import first_per_key
from pipeline.core.registration import register
from pipeline.core.cells import (MAX_HALVINGS, CellGrid, CellStore, CloudMeta, choose_cell_size, count_bins,
                                 dtype_to_json)
from pipeline.core.crs_hints import fitting_crs, transformation_to_wgs84
from pipeline.core.gridwarp import AffineMap, GridWarp, PointMap, fit_grid_warp
from pipeline.core.pointio import POINT_DTYPE
from pipeline.core.raster import read_elevation
from pipeline.errors import CRSError, StageError
from pipeline import artifacts
from pipeline.artifacts.clouds import SourceChunk, SourceCloud, cloud_chunks, read_source_clouds
from pipeline.artifacts.control import ControlRecord, SurveyedPoint, read_source_gcps, write_control
from pipeline.artifacts.dem import read_source_dem, write_enu_dem, write_enu_dem_bands
from pipeline.artifacts.footprints import (Centroid, Footprint, FootprintLayer, Ring, SourceFootprint,
                                           iter_source_footprints, read_source_footprints, source_footprint_count,
                                           write_footprints)
from pipeline.artifacts.frame import FrameRecord, write_frame
from pipeline.artifacts.citymodels import CityMesh, read_source_city_models, write_city_models
from pipeline.artifacts.models import PlacedModel, load_mesh, read_source_models, write_model
from pipeline.artifacts.pois import PoiRecord, read_source_pois, write_pois
from pipeline.stage import StageContext, StageResult, StageSpec

SPEC = StageSpec("georef", reads=(artifacts.SOURCE_POINTS, artifacts.SOURCE_FOOTPRINTS, artifacts.SOURCE_MODELS,
                                  artifacts.SOURCE_CITY, artifacts.SOURCE_DEM, artifacts.SOURCE_GCPS,
                                  artifacts.SOURCE_POIS),
                 writes=(artifacts.FRAME, artifacts.ENU_POINTS, artifacts.ENU_FOOTPRINTS, artifacts.ENU_MODELS,
                         artifacts.ENU_CITY,
                         artifacts.ENU_DEM, artifacts.CONTROL, artifacts.ENU_POIS))
#: ellipsoidal heights (m) outside this range are not on the earth's surface: a wrong CRS
MIN_HEIGHT, MAX_HEIGHT = -500.0, 9000.0
#: DEM pixels taken through PROJ at a time (a few hundred MB of arrays)
DEM_BAND_PIXELS = 2_000_000
#: footprints read, placed and written at a time
FOOTPRINT_BATCH = 10_000


class _Georeferencer:
    """Source coordinates -> geodetic and ENU for one run (one frame, one geoid)."""

    def __init__(self, cfg: TwinConfig) -> None:
        o = cfg.site.origin
        self.frame = SiteFrame(o.lat, o.lon, o.height)
        self.geoid = cfg.geoid_model()
        self.heights = cfg.site.heights
        self.radius_km = cfg.site.radius_km
        self.extents: list[dict[str, Any]] = []
        self.undulation = [np.inf, -np.inf]

    def geodetic(self, crs: pyproj.CRS, x: np.ndarray, y: np.ndarray, z: np.ndarray, path: str, *,
                 accept: bool = False, z_factor: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """lon, lat (deg), ellipsoidal h (m) and geoid undulation N (m) of source points.

        Unless ``accept``, data must land inside the CRS's area of use, near the site and at a
        terrestrial height; ``z_factor`` converts z to the CRS's vertical unit (GeoTIFF keys).
        """
        z = np.asarray(z, np.float64) * z_factor
        if crs.is_geocentric:
            lon, lat, h = ecef_to_geodetic(np.column_stack([x, y, z]))
            if not accept and (h.min() < MIN_HEIGHT or h.max() > MAX_HEIGHT):
                where = (f"{-h.max() / 1000:,.0f} km below the earth's surface" if h.max() < 0
                         else f"{h.min() / 1000:,.0f} km above it" if h.min() > 0 else "far off the surface")
                raise CRSError(f"the declared CRS {crs.name} is geocentric (earth-centred X, Y, Z) and with it "
                               f"the data lands {where}: these look like projected or local coordinates; set the "
                               "input's crs in the config to the CRS they are in", path=path)
        else:
            lon, lat = source_to_lonlat(crs, x, y, path=path)
        if not accept:
            try:
                check_area_of_use(crs, lon, lat, path=path)
                check_near_site(self.frame, lon, lat, self.radius_km, crs_name=crs.name, path=path)
            except CRSError as exc:
                fits = [] if crs.is_geocentric else fitting_crs(crs, x, y, self.frame, self.radius_km)
                if fits:
                    names = ", ".join(f"EPSG:{c.to_epsg()} ({c.name})" for c in fits)
                    raise CRSError(f"{exc.message}; the coordinates land on the site in {names}: set the input's "
                                   "crs in the config to the one the file was made in", path=path) from None
                raise
        n = self.geoid.undulation(lon, lat)
        if not crs.is_geocentric:
            h = ellipsoidal_heights(crs, z, n, heights=self.heights)
        if not accept and (h.min() < MIN_HEIGHT or h.max() > MAX_HEIGHT):
            raise CRSError(f"with the declared CRS {crs.name} the data lands at ellipsoidal heights "
                           f"{h.min():.0f}..{h.max():.0f} m, not on the earth's surface; override the "
                           "input's crs in the config if it is wrong, or set accept_crs: true", path=path)
        self.undulation = [min(self.undulation[0], float(n.min())),
                           max(self.undulation[1], float(n.max()))]
        return lon, lat, h, n

    def note_extent(self, path: str, crs: pyproj.CRS | str, lon: np.ndarray, lat: np.ndarray,
                    h: np.ndarray | None = None, z_unit: str | None = None, z_factor: float = 1.0) -> None:
        """Record where an input lands: WGS84 extent, the datum transformation PROJ took to get
        there (name, stated accuracy) and, for inputs with heights, their ellipsoidal height
        range (m) and the unit their z was read in (the CRS's unless ``z_unit`` says;
        ``z_factor`` a GeoTIFF VerticalUnits key's scale on it)."""
        name = crs if isinstance(crs, str) else crs.name
        to_wgs84 = (asdict(transformation_to_wgs84(crs))
                    if isinstance(crs, pyproj.CRS) and not crs.is_geocentric else None)
        if z_unit is None and h is not None and isinstance(crs, pyproj.CRS) and not crs.is_geocentric:
            z_unit = vertical_unit(crs)[1]
            if z_factor != 1.0:
                z_unit += f", scaled by {z_factor:g} (GeoTIFF VerticalUnits key)"
        self.extents.append({"file": path, "crs": name, "transformation": to_wgs84,
                             "wgs84_extent": [float(np.min(lon)), float(np.min(lat)),
                                              float(np.max(lon)), float(np.max(lat))],
                             "ellipsoidal_height_range_m": [float(np.min(h)), float(np.max(h))]
                             if h is not None else None, "z_unit": z_unit})


def _control(ctx: StageContext, g: _Georeferencer, cfg: TwinConfig) -> dict[str, Any] | None:
    """Surveyed points in ENU and, when they carry local coordinates, the local -> ENU fit."""
    data = read_source_gcps(ctx.input_dir("ingest"))
    if data.source is None or data.crs_wkt is None:
        return None
    crs = pyproj.CRS.from_wkt(data.crs_wkt)
    pts = data.points
    xyz = np.array([[p.x, p.y, p.z] for p in pts])
    lon, lat, h, n = g.geodetic(crs, xyz[:, 0], xyz[:, 1], xyz[:, 2], data.source, accept=data.accept_crs)
    enu = g.frame.geodetic_to_enu(lon, lat, h)
    g.note_extent(data.source, crs, lon, lat, h)
    out: dict[str, Any] = {"source": data.source, "points": pts, "enu": enu, "lon": lon, "lat": lat,
                           "h": h, "n": n, "fit": None, "rejected": []}
    if not pts[0].has_local:
        return out
    local = np.array([[p.local_x, p.local_y, p.local_z] for p in pts], np.float64)
    role = np.array([p.role for p in pts])
    ctl, chk = role == "control", role == "check"
    s = cfg.stages.georef
    fit = robust_similarity(local[ctl], enu[ctl], threshold=s.gcp_ransac_threshold,
                            check_source=local[chk], check_target=enu[chk], path=data.source)
    out["fit"] = fit
    ctl_ids = [p.id for p in pts if p.role == "control"]
    out["rejected"] = [i for i, ok in zip(ctl_ids, fit.inliers, strict=True) if not ok]
    if fit.rmse_h > s.max_gcp_rmse or fit.rmse_v > s.max_gcp_rmse:
        raise StageError(f"control fit RMSE horizontal {fit.rmse_h:.3f} m / vertical {fit.rmse_v:.3f} m "
                         f"exceeds stages.georef.max_gcp_rmse {s.max_gcp_rmse} m", path=data.source)
    return out


def _control_report(control: dict[str, Any]) -> dict[str, Any]:
    fit = control["fit"]
    if fit is None:
        return {"points": len(control["points"]), "fit": None}
    pts = control["points"]
    ctl_ids = [p.id for p in pts if p.role == "control"]
    chk_ids = [p.id for p in pts if p.role == "check"]
    t = fit.transform
    rows = [{"id": i, "role": "control", "used": bool(u), "residual_enu_m": r.tolist()}
            for i, u, r in zip(ctl_ids, fit.inliers, fit.residuals, strict=True)]
    rows += [{"id": i, "role": "check", "used": False, "residual_enu_m": r.tolist()}
             for i, r in zip(chk_ids, fit.check_residuals, strict=True)]
    return {"points": len(pts), "control": len(ctl_ids), "check": len(chk_ids),
            "rejected": control["rejected"],
            "rmse_horizontal_m": fit.rmse_h, "rmse_vertical_m": fit.rmse_v,
            "check_rmse_horizontal_m": fit.check_rmse_h, "check_rmse_vertical_m": fit.check_rmse_v,
            "transform": {"scale": t.scale, "rotation_xyz_deg": t.rotation_angles_deg(),
                          "translation_enu_m": t.translation.tolist(), "matrix": t.matrix().tolist()},
            "residuals": rows}


def georef_chunk(src: SourceChunk, dst: str, part: int, index0: int | None, transform: PointMap,
                 cell_size: float | None, dtype: list[list[str]]) -> dict[str, Any]:
    """Transform one chunk to ENU (a task for the executor) and bin it into ``dst``'s cells, or
    write it whole to ``dst/<part>.npy`` when ``cell_size`` is None. ``index0`` numbers the points
    (their index in the merged cloud); None keeps the numbers the chunk carries."""
    chunk = src.read()
    enu = transform.apply(chunk["x"], chunk["y"], chunk["z"])
    rec = widen_records(chunk, np.dtype([tuple(f) for f in dtype]))
    rec["x"], rec["y"], rec["z"] = enu[:, 0], enu[:, 1], enu[:, 2]
    if index0 is not None:
        rec["index"] = index0 + np.arange(len(rec))
    if cell_size is None:
        Path(dst).mkdir(parents=True, exist_ok=True)
        with replacing(Path(dst) / f"{part:05d}.npy") as f:
            np.save(f, rec)
    else:
        store = CellStore(dst)
        for cell, sub in CellGrid(cell_size).split(rec):
            store.write(cell, part, sub)
    lo, hi = column_bounds(enu)
    return {"count": len(rec), "lo": lo.tolist(), "hi": hi.tolist()}


#: points of the clouds sampled to estimate where they are densest: a cell at the 1 M-point bound
#: then holds about 500,000 / (cloud points / 1 M) of them, 12,500 for a 40 M cloud (1 % noise)
DENSITY_SAMPLE = 500_000


def chunk_density(src: SourceChunk, transform: PointMap, stride: int, bin_size: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Points per ``bin_size`` m ENU square of one chunk, estimated from every ``stride``-th point
    (a task for the executor; :func:`~pipeline.core.cells.count_bins`)."""
    enu = transform.apply(*src.xyz_sample(stride))
    return count_bins(enu[:, 0], enu[:, 1], bin_size, stride)


def _cell_size(ctx: StageContext, cfg: TwinConfig, chunks: list[tuple[SourceChunk, PointMap]], total: int
               ) -> dict[str, Any]:
    """The cell edge (m) for the clouds' ``chunks`` (source chunk, its map to ENU), from the
    configured largest edge and point bound. Exact maps call PROJ here: they stay in this process.

    Cells are anchored on the ENU lattice, so with every point counted the densest cell would be
    known exactly; a sample of about :data:`DENSITY_SAMPLE` points in file order (scan lines and
    strips cover each square evenly) estimates it to a few per cent at a fraction of a pass.
    """
    g = cfg.stages.georef
    if total <= g.cell_max_points:
        return {"cell_size_m": g.cell_size, "densest_cell_points": total, "estimated_from": "point count"}
    stride = max(1, total // DENSITY_SAMPLE)
    bin_size = g.cell_size / 2 ** MAX_HALVINGS
    futures = [None if isinstance(m, _ExactMap) else ctx.executor.submit(chunk_density, src, m, stride, bin_size)
               for src, m in chunks]
    parts = [chunk_density(src, m, stride, bin_size) if f is None else f.result()
             for (src, m), f in zip(chunks, futures, strict=True)]
    squares = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    # a cell's ring of neighbours reaches cell_buffer beyond it: no further than the next cells
    size, densest = choose_cell_size(squares, counts, bin_size, g.cell_size, g.cell_max_points,
                                     cfg.stages.clean.voxel_size, cfg.stages.clean.cell_buffer)
    return {"cell_size_m": size, "densest_cell_points": densest, "estimated_from": f"every {stride}th point"}


def _merged_dtype(clouds: list[SourceCloud]) -> np.dtype:
    """The merged cloud's record: the common fields, a point index, and every cloud's extra
    dimensions (zero for clouds that lack one)."""
    fields = [*((n, kind) for n, kind in dtype_to_json(POINT_DTYPE)), ("index", "<i8")]
    names = {f[0] for f in fields}
    for m in clouds:
        for name, kind in m.extra_dims:
            if name not in names:
                fields.append((name, kind))
                names.add(name)
    return np.dtype(fields)


def _cloud_transform(g: _Georeferencer, meta: SourceCloud, control: dict[str, Any] | None
                     ) -> tuple[GridWarp | AffineMap | None, pyproj.CRS | None]:
    """The source -> ENU map of one cloud, after checking its extent lands at the site.

    None means the grid could not reach its tolerance; the caller then transforms exactly.
    """
    zf = meta.z_factor
    unit_z = np.diag([1.0, 1.0, zf, 1.0])
    if meta.georeference == "gcps":
        if control is None or control["fit"] is None:
            raise StageError("georeference: gcps needs a GCP file with local_x,local_y,local_z columns",
                             path=meta.source)
        return AffineMap(control["fit"].transform.matrix() @ unit_z), None
    if meta.crs_wkt is None:
        raise StageError("a cloud georeferenced by its CRS has none", path=meta.source)
    crs = pyproj.CRS.from_wkt(meta.crs_wkt)
    xmin, ymin, zmin, xmax, ymax, zmax = meta.bounds
    # the site checks on a grid over the cloud's box see every place a point can be
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, 9), np.linspace(ymin, ymax, 9))
    heights = []
    for z in (zmin, zmax):
        lon, lat, h, _ = g.geodetic(crs, gx.ravel(), gy.ravel(), np.full(gx.size, z), meta.source,
                                    accept=meta.accept_crs, z_factor=zf)
        heights.append(h)
    g.note_extent(meta.source, crs, lon, lat, np.concatenate(heights), z_factor=zf)
    if crs.is_geocentric:
        m = np.eye(4)
        m[:3, :3] = g.frame.rotation
        m[:3, 3] = -g.frame.rotation @ g.frame.origin_ecef
        return AffineMap(m @ unit_z), crs

    def exact(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        lon, lat, h, _ = g.geodetic(crs, x, y, z, meta.source, accept=True, z_factor=zf)
        return g.frame.geodetic_to_enu(lon, lat, h)

    return fit_grid_warp(exact, (xmin, ymin, zmin, xmax, ymax, zmax)), crs


class _ExactMap:
    """Per-point PROJ transform, for clouds too large for the interpolation grid (main process)."""

    def __init__(self, g: _Georeferencer, crs: pyproj.CRS, meta: SourceCloud) -> None:
        self.g, self.crs, self.meta = g, crs, meta

    def apply(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        lon, lat, h, _ = self.g.geodetic(self.crs, x, y, z, self.meta.source, accept=True,
                                         z_factor=self.meta.z_factor)
        return self.g.frame.geodetic_to_enu(lon, lat, h)


def _run_chunks(ctx: StageContext, tasks: list[tuple], label: str) -> list[dict[str, Any]]:
    """Run ``georef_chunk`` tasks: through the executor, or here for those whose map is exact
    (it calls PROJ through this process's georeferencer)."""
    futures = [None if isinstance(t[4], _ExactMap) else ctx.executor.submit(georef_chunk, *t) for t in tasks]
    return [georef_chunk(*t) if f is None else f.result()
            for t, f in zip(tasks, ctx.reporter.track(futures, label), strict=True)]


def _points(ctx: StageContext, g: _Georeferencer, cfg: TwinConfig, control: dict[str, Any] | None
            ) -> dict[str, Any]:
    """Georeference every cloud into one ENU cloud binned by cell (``points/``); aligns clouds
    marked ``align`` onto the others first."""
    clouds = read_source_clouds(ctx.input_dir("ingest"))
    origin = [g.frame.lat, g.frame.lon, g.frame.height]
    if not clouds:
        # the empty cloud is a store with no cells
        CellStore(ctx.out_dir / "points").write_meta(
            CloudMeta("ENU", origin, 0, cfg.stages.georef.cell_size, dtype_to_json(_merged_dtype([])), None, []))
        return {"points": 0}
    metas = [m for _, m in clouds]
    dtype = _merged_dtype(metas)
    dtype_json = dtype_to_json(dtype)
    out = ctx.out_dir / "points"
    staging = ctx.out_dir / "_to_align"
    # (chunk, destination, part, first index, map to ENU, aligned): tasks once the cell size is known
    chunks: list[tuple[SourceChunk, str, int, int, PointMap, bool]] = []
    movers: list[tuple[SourceCloud, Path]] = []
    index0 = part = 0
    report: dict[str, Any] = {"clouds": []}
    for cloud, meta in clouds:
        transform, crs = _cloud_transform(g, meta, control)
        point_map: PointMap | None = _ExactMap(g, crs, meta) if transform is None and crs is not None else transform
        assert point_map is not None  # _cloud_transform gives a map or a CRS
        aligned = meta.align
        dst = staging / cloud.folder.name if aligned else out
        if aligned:
            movers.append((meta, dst))
        for chunk in cloud_chunks(cloud, meta):
            chunks.append((chunk, str(dst), part, index0, point_map, aligned))
            index0 += chunk.count
            part += 1
        report["clouds"].append({"file": meta.source, "transform": type(transform).__name__ if transform
                                 else "exact", "grid_max_error_m": getattr(transform, "max_error_m", None)})
    report["cells"] = _cell_size(ctx, cfg, [(c[0], c[4]) for c in chunks], index0)
    cell_size = report["cells"]["cell_size_m"]
    # clouds to align are staged whole, and binned once registered
    tasks = [(src, dst, k, i0, tr, None if aligned else cell_size, dtype_json)
             for src, dst, k, i0, tr, aligned in chunks]
    results = _run_chunks(ctx, tasks, "georef points")
    if movers:
        report["registration"] = _align(ctx, cfg, movers, out, part, dtype_json, cell_size)
        shutil.rmtree(staging)
    lo = np.min([r["lo"] for r in results], axis=0)
    hi = np.max([r["hi"] for r in results], axis=0)
    CellStore(out).write_meta(CloudMeta("ENU", origin, index0, cell_size, dtype_json, [*lo.tolist(), *hi.tolist()],
                                        [m.source for m in metas]))
    report["points"] = index0
    return report


def _voxel_sample(xyz: np.ndarray, voxel: float) -> np.ndarray:
    """First point of each voxel: registration downsamples anyway, so read the reference thinned."""
    return xyz[first_per_key(np.floor(xyz / voxel).astype(np.int64))]


def _align(ctx: StageContext, cfg: TwinConfig, movers: list[tuple[SourceCloud, Path]], out: Path,
           part: int, dtype_json: list[list[str]], cell_size: float) -> list[dict[str, Any]]:
    """ICP-align every cloud marked ``align`` onto the clouds that are not, then bin it."""
    r = cfg.stages.georef.registration
    store = CellStore(out)
    ref = [_voxel_sample(np.column_stack([c["x"], c["y"], c["z"]]), r.voxel_size / 2) for _, c in store]
    if not ref:
        raise StageError("align: true needs a reference: at least one point cloud without align",
                         path=movers[0][0].source)
    target = np.concatenate(ref)
    results = []
    for meta, staged in movers:
        paths = sorted(staged.glob("*.npy"))
        xyz = np.concatenate([np.column_stack([c["x"], c["y"], c["z"]])
                              for c in (np.load(p, mmap_mode="r") for p in paths)])
        reg = register(xyz, target, voxel=r.voxel_size, max_correspondence=r.max_correspondence,
                       global_search=r.global_search, min_fitness=r.min_fitness)
        info = {"file": meta.source, "reference": "the clouds without align", "method": reg.method,
                "fitness": reg.fitness, "inlier_rmse_m": reg.inlier_rmse, "transform": reg.transform.tolist()}
        if reg.fitness < r.min_fitness:
            raise StageError(f"registration fits only {reg.fitness:.2f} of the points (< stages.georef."
                             f"registration.min_fitness {r.min_fitness}); refusing to publish it",
                             path=meta.source)
        tasks = [(SourceChunk.stored(p), str(out), int(p.stem), None, AffineMap(reg.transform), cell_size, dtype_json)
                 for p in paths]
        _run_chunks(ctx, tasks, f"bin {Path(meta.source).name}")
        results.append(info)
    return results


def _placed(g: _Georeferencer, crs: pyproj.CRS, source: str, accept: bool, batch: list[SourceFootprint]
            ) -> tuple[list[Footprint], np.ndarray]:
    """A batch of the layer's footprints in the site frame, and the WGS84 box of their vertices
    (lon min, lat min, lon max, lat max)."""
    geoms = [shapely.from_wkt(feat.wkt) for feat in batch]
    # every ring of the batch goes through PROJ and the checks in one call: one call per ring
    # took most of the stage for a city
    polys_of = [list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom] for geom in geoms]
    rings_xy = [np.asarray(ring.coords)[:-1] for polys in polys_of for poly in polys
                for ring in [poly.exterior, *poly.interiors]]
    if not rings_xy:
        return [], np.array([np.inf, np.inf, -np.inf, -np.inf])
    xy = np.concatenate(rings_xy)
    lon, lat, _, n = g.geodetic(crs, xy[:, 0], xy[:, 1], np.zeros(len(xy)), source, accept=accept)
    enu = g.frame.geodetic_to_enu(lon, lat, n)  # at orthometric height 0
    centre = shapely.get_coordinates(shapely.centroid(geoms))
    # the outlines were checked just above; their centroids lie within them
    clon, clat, _, cn = g.geodetic(crs, centre[:, 0], centre[:, 1], np.zeros(len(centre)), source, accept=True)
    cenu = g.frame.geodetic_to_enu(clon, clat, cn)
    ends = np.cumsum([len(r) for r in rings_xy])
    # the rings in the order they were flattened: each polygon takes its exterior and holes
    ring_iter = iter(Ring(enu[b - len(r):b, :2].tolist(), r.tolist(),
                          np.column_stack([lon[b - len(r):b], lat[b - len(r):b]]).tolist(),
                          n[b - len(r):b].tolist()) for r, b in zip(rings_xy, ends, strict=True))
    out = []
    for i, (feat, polys) in enumerate(zip(batch, polys_of, strict=True)):
        parts = [[next(ring_iter) for _ in range(1 + len(poly.interiors))] for poly in polys]
        out.append(Footprint(feat.id, feat.name, feat.use, feat.floors, feat.height, parts,
                             Centroid(float(clon[i]), float(clat[i]), float(cn[i]), cenu[i, :2].tolist()),
                             proposed=feat.proposed, replaces=feat.replaces, floors_below=feat.floors_below,
                             height_origin=feat.height_origin, floors_origin=feat.floors_origin,
                             approval_date=feat.approval_date))
    return out, np.array([lon.min(), lat.min(), lon.max(), lat.max()])


def _footprints(ctx: StageContext, g: _Georeferencer) -> int | None:
    """The footprint layer in the site frame and its size (an empty layer, and None, without a
    footprint input). Footprints are read, placed and written ``FOOTPRINT_BATCH`` at a time: a
    city's 600,000 as records with every ring's coordinate lists took 2 GB."""
    ingest = ctx.input_dir("ingest")
    data = read_source_footprints(ingest, features=False)
    if data.source is None or data.crs_wkt is None:
        write_footprints(ctx.out_dir, FootprintLayer())
        return None
    crs = pyproj.CRS.from_wkt(data.crs_wkt)
    box = np.array([np.inf, np.inf, -np.inf, -np.inf])

    def placed() -> Iterator[Footprint]:
        nonlocal box
        source = iter_source_footprints(ingest)
        for batch in iter(lambda: list(islice(source, FOOTPRINT_BATCH)), []):
            feats, got = _placed(g, crs, data.source or "", data.accept_crs, batch)
            box = np.concatenate([np.minimum(box[:2], got[:2]), np.maximum(box[2:], got[2:])])
            yield from feats

    n = write_footprints(ctx.out_dir, FootprintLayer(data.source, data.crs_wkt, [], data.skipped, data.repaired),
                         placed(), source_footprint_count(ingest))
    if n:
        g.note_extent(data.source, crs, box[[0, 2]], box[[1, 3]])
    return n


def _meshes(ctx: StageContext, g: _Georeferencer) -> list[dict[str, Any]]:
    """Each imported model into the site's ENU frame: its origin through the CRS (and geoid),
    its body through the local tangent frame at that origin (an empty folder without models)."""
    src = ctx.locate(artifacts.SOURCE_MODELS)
    out_dir = artifacts.ENU_MODELS.locate(ctx.out_dir)
    out_dir.mkdir()
    out = []
    for model in read_source_models(ctx.input_dir("ingest")):
        crs = pyproj.CRS.from_wkt(model.crs_wkt)
        x, y, z = model.origin
        lon, lat, h, n = g.geodetic(crs, np.array([x]), np.array([y]), np.array([z]), model.source,
                                    accept=model.accept_crs)
        vertices, faces = load_mesh(src, model)
        local = model_to_local(vertices, up_axis=model.up_axis, scale=model.scale, heading_deg=model.heading_deg)
        enu = local_to_site(local, float(lon[0]), float(lat[0]), float(h[0]), g.frame)
        write_model(out_dir, PlacedModel(**asdict(model), origin_lonlat=[float(lon[0]), float(lat[0])],
                                         origin_ellipsoidal_height=float(h[0]), undulation=float(n[0])),
                    enu, faces)
        _, _, hv = g.frame.enu_to_geodetic(enu)
        # a model's heights come from its own units through its scale, not from the origin's CRS
        g.note_extent(model.source, crs, lon, lat, hv, z_unit=f"model units x scale {model.scale:g}")
        lo, hi = enu.min(axis=0), enu.max(axis=0)
        out.append({"file": model.source, "id": model.id, "enu_bounds": [*lo.tolist(), *hi.tolist()]})
    return out


def _city_models(ctx: StageContext, g: _Georeferencer) -> list[dict[str, Any]]:
    """Every city model building's vertices through its file's CRS (and the geoid) into ENU."""
    layer, meshes = read_source_city_models(ctx.input_dir("ingest"))
    out_meshes: list[CityMesh] = list(meshes)
    undulation: list[float | None] = [None] * len(meshes)
    report = []
    for src in layer.sources:
        members = [k for k, b in enumerate(layer.buildings) if b.source == src.path]
        if not members:
            continue
        crs = pyproj.CRS.from_wkt(src.crs_wkt)
        xyz = np.concatenate([meshes[k][0] for k in members])
        lon, lat, h, n = g.geodetic(crs, xyz[:, 0], xyz[:, 1], xyz[:, 2], src.path, accept=src.accept_crs)
        enu = g.frame.geodetic_to_enu(lon, lat, h)
        g.note_extent(src.path, crs, lon, lat, h)
        start = 0
        for k in members:
            count = len(meshes[k][0])
            out_meshes[k] = (enu[start:start + count], meshes[k][1], meshes[k][2])
            undulation[k] = float(n[start:start + count].mean())
            start += count
        lo, hi = enu.min(axis=0), enu.max(axis=0)
        report.append({"file": src.path, "buildings": len(members), "enu_bounds": [*lo.tolist(), *hi.tolist()]})
    layer.buildings = [replace(b, undulation=u) for b, u in zip(layer.buildings, undulation, strict=True)]
    write_city_models(ctx.out_dir, layer, out_meshes)
    return report


def _dem(ctx: StageContext, g: _Georeferencer) -> dict[str, Any] | None:
    """ENU of every DEM pixel centre (an empty array without a DEM)."""
    ingest = ctx.input_dir("ingest")
    meta = read_source_dem(ingest)
    if meta.source is None or meta.crs_wkt is None:
        write_enu_dem(ctx.out_dir, None)
        return None
    elev = read_elevation(meta.raster(ingest), meta.crs_wkt)
    source = meta.source
    rows, cols = elev.values.shape
    # lon, lat, h and N of the band's pixels; the lowest and highest of each over the DEM
    lo, hi = np.full(4, np.inf), np.full(4, -np.inf)
    # a band of rows at a time, written as it is made: a city DEM's 25 million pixels at once
    # took 4 GB of PROJ arrays, and its ENU array is 0.6 GB
    band = max(1, DEM_BAND_PIXELS // cols)

    def bands() -> Iterator[np.ndarray]:
        nonlocal lo, hi
        for r0 in range(0, rows, band):
            part = slice(r0, min(r0 + band, rows))
            enu = np.full((part.stop - r0, cols, 3), np.nan)
            x, y = elev.pixel_centers(part)
            z = elev.values[part]
            valid = np.isfinite(z)
            if valid.any():
                lon, lat, h, n = g.geodetic(elev.crs, x[valid], y[valid], z[valid], source, accept=meta.accept_crs)
                enu[valid] = g.frame.geodetic_to_enu(lon, lat, h)
                got = np.column_stack([lon, lat, h, n])
                lo, hi = np.minimum(lo, got.min(axis=0)), np.maximum(hi, got.max(axis=0))
            yield enu

    write_enu_dem_bands(ctx.out_dir, rows, cols, bands())
    g.note_extent(meta.source, elev.crs, *np.column_stack([lo, hi])[:3])
    return {"shape": [rows, cols], "undulation_range_m": [float(lo[3]), float(hi[3])]}


def _lidar_check(ctx: StageContext, control: dict[str, Any], store: CellStore | None, radius: float,
                 max_rmse: float) -> dict[str, Any]:
    """Score the georeferenced LiDAR's heights at the surveyed points (median U within ``radius``)."""
    enu = control["enu"]
    pts = control["points"]
    dz: list[float | None] = [None] * len(pts)
    if store is not None:
        from scipy.spatial import cKDTree  # ~40 MB; only GCP checks use it

        tree = cKDTree(enu[:, :2])
        near: list[list[np.ndarray]] = [[] for _ in pts]
        grid = store.grid()
        for cell in store.cells():
            e0, n0, e1, n1 = grid.bounds(cell)
            if not np.any((enu[:, 0] > e0 - radius) & (enu[:, 0] < e1 + radius)
                          & (enu[:, 1] > n0 - radius) & (enu[:, 1] < n1 + radius)):
                continue
            chunk = store.read(cell)
            d, idx = tree.query(np.column_stack([chunk["x"], chunk["y"]]), distance_upper_bound=radius)
            hit = np.isfinite(d)
            for j in np.unique(idx[hit]):
                near[j].append(np.asarray(chunk["z"][hit][idx[hit] == j]))
        for j, parts in enumerate(near):
            if parts and sum(len(q) for q in parts) >= 5:
                # surveyed points sit on open ground: the median of the LiDAR around one is its height
                dz[j] = float(np.median(np.concatenate(parts)) - enu[j, 2])
    records = [SurveyedPoint(p.id, p.role, [p.x, p.y, p.z],
                             float(control["lon"][j]), float(control["lat"][j]), float(control["h"][j]),
                             float(control["n"][j]), enu[j].tolist(), dz[j], p.sigma_h, p.sigma_v)
               for j, p in enumerate(pts)]
    fit = control["fit"]
    # a control point the fit rejected is a blunder in the survey: it would only score itself
    rejected = set(control["rejected"])
    used = np.array([v for v, p in zip(dz, pts, strict=True) if v is not None and p.id not in rejected])
    rmse = float(np.sqrt(np.mean(used ** 2))) if used.size else None
    horizontal = None
    if fit is not None:
        horizontal = fit.check_rmse_h if fit.check_rmse_h is not None else fit.rmse_h
    write_control(ctx.out_dir, ControlRecord(records, rmse, horizontal))
    if store is not None and rmse is None:
        # a check that checks nothing must not pass for one that passed
        raise StageError(f"none of the {len(pts)} surveyed points has 5 LiDAR points within "
                         f"stages.georef.gcp_search_radius {radius:g} m: the survey and the point cloud do not "
                         "overlap (swapped local_x/local_y columns? a wrong CRS?)", path=control["source"])
    if rmse is not None and rmse > max_rmse:
        raise StageError(f"LiDAR heights disagree with the surveyed points: vertical RMSE {rmse:.3f} m "
                         f"> stages.georef.max_vertical_rmse {max_rmse} m", path=control["source"])
    return {"checked": int(used.size), "vertical_rmse_m": rmse,
            "mean_dz_m": float(used.mean()) if used.size else None}


def _pois(ctx: StageContext, g: _Georeferencer) -> int | None:
    """Points of interest in WGS84 and plan ENU and their number (none, and None, without a POI
    input)."""
    data = read_source_pois(ctx.input_dir("ingest"))
    if data.source is None or data.crs_wkt is None:
        write_pois(ctx.out_dir, [])
        return None
    crs = pyproj.CRS.from_wkt(data.crs_wkt)
    pts = data.points
    x = np.array([p.x for p in pts])
    y = np.array([p.y for p in pts])
    lon, lat, _, n = g.geodetic(horizontal_crs(crs), x, y, np.zeros(len(pts)), data.source, accept=data.accept_crs)
    enu = g.frame.geodetic_to_enu(lon, lat, n)
    g.note_extent(data.source, crs, lon, lat)
    out = [PoiRecord(p.name, p.kind, float(lon[i]), float(lat[i]), float(n[i]), enu[i, :2].tolist(), p.entrance_of)
           for i, p in enumerate(pts)]
    write_pois(ctx.out_dir, out)
    return len(out)


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Transform every ingested input into the site ENU frame."""
    g = _Georeferencer(cfg)
    frame = FrameRecord(g.frame, g.geoid.info.source, cfg.site.heights, g.geoid.info)
    write_frame(ctx.out_dir, frame)
    report: dict[str, Any] = {"frame": {"origin": {"lat": g.frame.lat, "lon": g.frame.lon, "height": g.frame.height},
                                        "enu_to_ecef": frame.enu_to_ecef().tolist(),
                                        "geoid_grid": frame.geoid_grid, "heights": frame.heights}}
    counts: dict[str, int] = {}
    control = _control(ctx, g, cfg)
    points = _points(ctx, g, cfg, control)
    counts["points"] = points.pop("points")
    if "registration" in points:
        report["registration"] = points.pop("registration")
    report["pointclouds"] = points
    buildings = _footprints(ctx, g)
    if buildings is not None:
        counts["buildings"] = buildings
    models = _meshes(ctx, g)
    cities = _city_models(ctx, g)
    if cities:
        report["city_models"] = cities
        counts["city_buildings"] = sum(c["buildings"] for c in cities)
    if models:
        report["meshes"] = models
        counts["meshes"] = len(models)
    dem = _dem(ctx, g)
    if dem is not None:
        report["dem"] = dem
    if control is not None:
        s = cfg.stages.georef
        report["control"] = _control_report(control)
        store = CellStore(ctx.out_dir / "points") if counts["points"] else None
        report["lidar_check"] = _lidar_check(ctx, control, store, s.gcp_search_radius, s.max_vertical_rmse)
    else:
        write_control(ctx.out_dir, ControlRecord())
    pois = _pois(ctx, g)
    if pois is not None:
        counts["pois"] = pois
    report["geoid"] = {"grid": str(g.geoid.path), "model": asdict(g.geoid.info), "label": g.geoid.info.label(),
                       "undulation_range_m": g.undulation}
    report["inputs"] = g.extents
    return StageResult(counts, report)
