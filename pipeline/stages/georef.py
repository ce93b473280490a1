"""georef: every input into the site's ENU frame, with orthometric heights made ellipsoidal.

Outputs: ``frame.json`` (origin, ENU->ECEF matrix, geoid grid); ``points/chunk_*.npy`` with
x, y, z = E, N, U metres; ``footprints.json`` (rings in source CRS, WGS84 lon/lat, geoid
undulation per vertex, ENU E/N); ``dem_enu.npy`` (rows, cols, 3) ENU of each DEM pixel centre,
NaN where nodata; ``gcps.json``; ``pois.json``. The report checks every input lands near the
site and scores the LiDAR's heights against the surveyed check points.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely
from scipy.spatial import cKDTree

from pipeline.config import TwinConfig
from pipeline.core.geodesy import (GeoidModel, SiteFrame, check_near_site, ellipsoidal_heights,
                                   horizontal_crs, source_to_lonlat)
from pipeline.core.pointio import ChunkStore
from pipeline.core.raster import read_elevation
from pipeline.errors import StageError
from pipeline.stage import StageContext, StageResult

NAME = "georef"
REQUIRES = ("ingest",)


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


class _Georeferencer:
    """Source coordinates -> geodetic and ENU for one run (one frame, one geoid)."""

    def __init__(self, cfg: TwinConfig) -> None:
        o = cfg.site.origin
        self.frame = SiteFrame(o.lat, o.lon, o.height)
        self.geoid = GeoidModel.from_spec(str(cfg.resolve(Path(cfg.site.geoid)))
                                          if cfg.site.geoid.lower() != "egm96" else "egm96")
        self.heights = cfg.site.heights
        self.radius_km = cfg.site.radius_km
        self.extents: list[dict[str, Any]] = []
        self.undulation = [np.inf, -np.inf]

    def geodetic(self, crs: pyproj.CRS, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                 path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """lon, lat (deg), ellipsoidal h (m) and geoid undulation N (m) of source points."""
        lon, lat = source_to_lonlat(crs, x, y, path=path)
        check_near_site(self.frame, lon, lat, self.radius_km, crs_name=crs.name, path=path)
        n = self.geoid.undulation(lon, lat)
        self.undulation = [min(self.undulation[0], float(n.min())),
                           max(self.undulation[1], float(n.max()))]
        return lon, lat, ellipsoidal_heights(crs, z, n, heights=self.heights), n

    def note_extent(self, path: str, crs: pyproj.CRS, lon: np.ndarray, lat: np.ndarray) -> None:
        self.extents.append({"file": path, "crs": crs.name,
                             "wgs84_extent": [float(lon.min()), float(lat.min()),
                                              float(lon.max()), float(lat.max())]})


def _points(ctx: StageContext, g: _Georeferencer) -> tuple[int, list[np.ndarray]]:
    out = ChunkStore(ctx.out_dir / "points")
    k, total = 0, 0
    clouds = sorted(p for p in (ctx.input_dir("ingest") / "points").glob("*") if p.is_dir())
    for cloud in clouds:
        store = ChunkStore(cloud)
        meta = store.meta()
        crs = pyproj.CRS.from_wkt(meta["crs_wkt"])
        lo_lon = lo_lat = np.inf
        hi_lon = hi_lat = -np.inf
        for chunk in ctx.reporter.track(list(store), f"georef {cloud.name}"):
            lon, lat, h, _ = g.geodetic(crs, chunk["x"], chunk["y"], chunk["z"], meta["source"])
            enu = g.frame.geodetic_to_enu(lon, lat, h)
            rec = np.array(chunk)
            rec["x"], rec["y"], rec["z"] = enu[:, 0], enu[:, 1], enu[:, 2]
            out.write(k, rec)
            k += 1
            total += len(rec)
            lo_lon, hi_lon = min(lo_lon, lon.min()), max(hi_lon, lon.max())
            lo_lat, hi_lat = min(lo_lat, lat.min()), max(hi_lat, lat.max())
        g.note_extent(meta["source"], crs, np.array([lo_lon, hi_lon]), np.array([lo_lat, hi_lat]))
    if clouds:
        out.write_meta({"frame": "ENU", "origin": [g.frame.lat, g.frame.lon, g.frame.height],
                        "count": total, "sources": [str(c.name) for c in clouds]})
    return total, out.paths()


def _footprints(ctx: StageContext, g: _Georeferencer) -> list[dict[str, Any]]:
    data = _load(ctx.input_dir("ingest") / "footprints.json")
    crs = pyproj.CRS.from_wkt(data["crs_wkt"])
    out = []
    all_lon, all_lat = [], []
    for feat in data["features"]:
        geom = shapely.from_wkt(feat["wkt"])
        polys = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
        parts = []
        for poly in polys:
            rings = []
            for ring in [poly.exterior, *poly.interiors]:
                xy = np.asarray(ring.coords)[:-1]
                lon, lat, _, n = g.geodetic(crs, xy[:, 0], xy[:, 1], np.zeros(len(xy)), data["source"])
                enu = g.frame.geodetic_to_enu(lon, lat, n)  # at orthometric height 0
                rings.append({"src": xy.tolist(), "lonlat": np.column_stack([lon, lat]).tolist(),
                              "undulation": n.tolist(), "en": enu[:, :2].tolist()})
                all_lon.append(lon)
                all_lat.append(lat)
            parts.append(rings)
        c = geom.centroid
        clon, clat, _, cn = g.geodetic(crs, np.array([c.x]), np.array([c.y]), np.zeros(1), data["source"])
        cenu = g.frame.geodetic_to_enu(clon, clat, cn)[0]
        out.append({k: feat[k] for k in ("id", "name", "use", "floors", "height")}
                   | {"parts": parts, "centroid": {"src": [c.x, c.y], "lon": float(clon[0]),
                                                   "lat": float(clat[0]), "undulation": float(cn[0]),
                                                   "en": cenu[:2].tolist()}})
    if all_lon:
        g.note_extent(data["source"], crs, np.concatenate(all_lon), np.concatenate(all_lat))
    (ctx.out_dir / "footprints.json").write_text(json.dumps(
        {"frame": "ENU", "crs_wkt": data["crs_wkt"], "features": out, "skipped": data["skipped"]},
        indent=1, sort_keys=True))
    return out


def _dem(ctx: StageContext, g: _Georeferencer) -> dict[str, Any]:
    meta = _load(ctx.input_dir("ingest") / "dem.json")
    elev = read_elevation(ctx.input_dir("ingest") / "dem.tif", meta["crs_wkt"])
    x, y = elev.pixel_centers()
    valid = np.isfinite(elev.values)
    lon, lat, h, n = g.geodetic(elev.crs, x[valid], y[valid], elev.values[valid], meta["source"])
    enu = np.full(elev.values.shape + (3,), np.nan)
    enu[valid] = g.frame.geodetic_to_enu(lon, lat, h)
    np.save(ctx.out_dir / "dem_enu.npy", enu)
    g.note_extent(meta["source"], elev.crs, lon, lat)
    return {"shape": list(elev.values.shape), "undulation_range_m": [float(n.min()), float(n.max())]}


def _gcps(ctx: StageContext, g: _Georeferencer, point_paths: list[Path], radius: float,
          max_rmse: float) -> dict[str, Any]:
    data = _load(ctx.input_dir("ingest") / "gcps.json")
    crs = pyproj.CRS.from_wkt(data["crs_wkt"])
    pts = data["points"]
    xyz = np.array([[p["x"], p["y"], p["z"]] for p in pts])
    lon, lat, h, n = g.geodetic(crs, xyz[:, 0], xyz[:, 1], xyz[:, 2], data["source"])
    enu = g.frame.geodetic_to_enu(lon, lat, h)
    g.note_extent(data["source"], crs, lon, lat)
    residuals: list[float | None] = [None] * len(pts)
    if point_paths:
        tree = cKDTree(enu[:, :2])
        near: list[list[np.ndarray]] = [[] for _ in pts]
        for p in point_paths:
            chunk = np.load(p, mmap_mode="r")
            d, idx = tree.query(np.column_stack([chunk["x"], chunk["y"]]), distance_upper_bound=radius)
            hit = np.isfinite(d)
            for j in np.unique(idx[hit]):
                near[j].append(np.asarray(chunk["z"][hit][idx[hit] == j]))
        for j, parts in enumerate(near):
            if parts:
                u = np.concatenate(parts)
                if len(u) >= 5:
                    # the median of the points around a ground target is its LiDAR height
                    residuals[j] = float(np.median(u) - enu[j, 2])
    records = []
    for j, p in enumerate(pts):
        records.append({"id": p["id"], "source": [p["x"], p["y"], p["z"]], "lon": float(lon[j]),
                        "lat": float(lat[j]), "h_ellipsoidal": float(h[j]), "undulation": float(n[j]),
                        "enu": enu[j].tolist(), "dz_lidar_minus_survey": residuals[j]})
    used = np.array([r for r in residuals if r is not None])
    rmse = float(np.sqrt(np.mean(used ** 2))) if used.size else None
    (ctx.out_dir / "gcps.json").write_text(json.dumps({"points": records, "vertical_rmse": rmse},
                                                      indent=1, sort_keys=True))
    if rmse is not None and rmse > max_rmse:
        raise StageError(f"LiDAR heights disagree with the check points: vertical RMSE {rmse:.3f} m "
                         f"> stages.georef.max_vertical_rmse {max_rmse} m", path=data["source"])
    return {"points": len(pts), "checked": int(used.size), "vertical_rmse_m": rmse,
            "mean_dz_m": float(used.mean()) if used.size else None}


def _pois(ctx: StageContext, g: _Georeferencer) -> int:
    data = _load(ctx.input_dir("ingest") / "pois.json")
    crs = pyproj.CRS.from_wkt(data["crs_wkt"])
    pts = data["points"]
    x = np.array([p["x"] for p in pts])
    y = np.array([p["y"] for p in pts])
    lon, lat, _, n = g.geodetic(horizontal_crs(crs), x, y, np.zeros(len(pts)), data["source"])
    enu = g.frame.geodetic_to_enu(lon, lat, n)
    g.note_extent(data["source"], crs, lon, lat)
    out = [{"name": p["name"], "kind": p["kind"], "lon": float(lon[i]), "lat": float(lat[i]),
            "undulation": float(n[i]), "en": enu[i, :2].tolist()} for i, p in enumerate(pts)]
    (ctx.out_dir / "pois.json").write_text(json.dumps({"points": out}, indent=1, sort_keys=True))
    return len(out)


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Transform every ingested input into the site ENU frame."""
    g = _Georeferencer(cfg)
    ingest = ctx.input_dir("ingest")
    frame_info = {"origin": {"lat": g.frame.lat, "lon": g.frame.lon, "height": g.frame.height},
                  "enu_to_ecef": g.frame.enu_to_ecef_matrix().tolist(),
                  "geoid_grid": g.geoid.path.name, "heights": cfg.site.heights}
    (ctx.out_dir / "frame.json").write_text(json.dumps(frame_info, indent=1, sort_keys=True))
    report: dict[str, Any] = {"frame": frame_info}
    counts: dict[str, int] = {}
    n_points, paths = _points(ctx, g)
    counts["points"] = n_points
    if (ingest / "footprints.json").is_file():
        counts["buildings"] = len(_footprints(ctx, g))
    if (ingest / "dem.json").is_file():
        report["dem"] = _dem(ctx, g)
    if (ingest / "gcps.json").is_file():
        s = cfg.stages.georef
        report["gcps"] = _gcps(ctx, g, paths, s.gcp_search_radius, s.max_vertical_rmse)
    if (ingest / "pois.json").is_file():
        counts["pois"] = _pois(ctx, g)
    report["geoid"] = {"grid": str(g.geoid.path), "undulation_range_m": g.undulation}
    report["inputs"] = g.extents
    return StageResult(counts, report)
