"""analysis: sunlight (일조권) at every window and over open ground, with and without the proposals.

Receivers stand on every facade, per storey, and on a grid over open ground near the buildings
(:mod:`pipeline.core.receivers`); the sun comes from NREL's SPA for the site on the configured day
(:mod:`pipeline.core.sun`); a receiver is lit at a step when its ray to the sun leaves the scene
(every building at full detail, imported models, the terrain TIN) without a hit
(:mod:`pipeline.core.shading`). The Korean tolerance test is read on the configured clock (true
solar time by default). With proposals, the district is judged twice: as it stands (proposals
left out) and with them built (the buildings they replace removed); every receiver whose verdict
differs is listed by building.

Outputs (``sunlight/``): ``sunlight.json`` and ``receivers.npz`` (the artifact), ``sunlight.html``
(the planners' report), ``receivers.gpkg`` (facade receivers in the site CRS and in WGS84) and
``ground.tif`` (the ground grid's hours in the site CRS). The JSON and HTML are also copied to
``reports/``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import shapely

from pipeline import artifacts
from pipeline.artifacts.buildings import BuildingMeshes, BuildingRecord, read_buildings
from pipeline.artifacts.footprints import read_footprints
from pipeline.artifacts.frame import FrameRecord, read_frame
from pipeline.artifacts.sunlight import FOLDER, SCENARIOS, ReceiverResults, SunlightRecord, write_sunlight
from pipeline.artifacts.terrain import load_level, read_terrain
from pipeline.config import AnalysisConfig, TwinConfig
from pipeline.core.geodesy import gis_crs
from pipeline.core.rastergrid import RasterGrid
from pipeline.core.receivers import FacadeSource, Receivers, facade_receivers, ground_receivers
from pipeline.core.shading import Scene, SunHours, SunlightRule, shade
from pipeline.core.sun import TIME_BASIS_NAMES, solstice_date, sun_table
from pipeline.core.sunlight_output import write_ground_tif, write_receivers_gpkg
from pipeline.core.sunlight_report import write_report
from pipeline.stage import StageContext, StageResult, StageSpec

SPEC = StageSpec("analysis", reads=(artifacts.FRAME, artifacts.ENU_FOOTPRINTS, artifacts.TERRAIN, artifacts.BUILDINGS),
                 writes=(artifacts.SUNLIGHT,), reports=(f"{FOLDER}/sunlight.json", f"{FOLDER}/sunlight.html"))

def rule_of(a: AnalysisConfig) -> SunlightRule:
    return SunlightRule(a.continuous_hours * 60.0, (a.continuous_window[0], a.continuous_window[1]),
                        a.total_hours * 60.0, (a.total_window[0], a.total_window[1]))


def _sources(records: list[BuildingRecord], meshes: BuildingMeshes, rings: dict[str, list[np.ndarray]]
             ) -> list[FacadeSource]:
    out = []
    for r in records:
        v, f = meshes.get(r.feature_id, 0)
        top = r.eave_height if r.eave_height is not None else r.roof_height
        out.append(FacadeSource(r.feature_id, v, f, rings.get(r.id) or [np.asarray(r.outline_en)],
                                float(v[:, 2].min()), float(top - r.ground_height), r.floors))
    return out


def _polygon(rings: list[np.ndarray]) -> shapely.Geometry:
    return shapely.make_valid(shapely.Polygon(rings[0], rings[1:]))


def _summaries(records: list[BuildingRecord], rec: Receivers, present: np.ndarray, hours: list[SunHours],
               names: list[str]) -> list[dict[str, Any]]:
    """Per building and scenario: receivers, failing ones and share, the worst storey (the
    largest failing share, the lowest such storey on a tie) and the least sun."""
    out = []
    passes = [h.passes for h in hours]  # a property computed over every receiver: once, not per building
    for r in records:
        mine = rec.building == r.feature_id
        entry: dict[str, Any] = {"id": r.id, "name": r.name, "feature_id": r.feature_id, "proposed": r.proposed,
                                 "replaces": r.replaces}
        for k, name in enumerate(names):
            sel = mine & present[:, k]
            if not sel.any():
                entry[name] = None
                continue
            fail = ~passes[k][sel]
            storeys = rec.storey[sel]
            levels = np.unique(storeys)
            shares = np.array([fail[storeys == s].mean() for s in levels])
            worst = int(levels[int(np.argmax(shares))]) if fail.any() else None
            entry[name] = {"receivers": int(sel.sum()), "failing": int(fail.sum()),
                           "fail_share": round(float(fail.mean()), 4), "worst_storey": worst,
                           "worst_storey_fail_share": round(float(shares.max()), 4) if fail.any() else 0.0,
                           "min_total_min": float(hours[k].total_min[sel].min()),
                           "min_continuous_min": float(hours[k].continuous_min[sel].min())}
        out.append(entry)
    return out


def _changes(records: list[BuildingRecord], rec: Receivers, present: np.ndarray, hours: list[SunHours],
             frame: FrameRecord, proposals: list[BuildingRecord]) -> list[dict[str, Any]]:
    """Receivers present in both scenarios whose verdict the proposals change, by building
    (ground receivers under ``"ground"``), with their bearing and distance from the nearest
    proposal's centroid (degrees clockwise from north, metres)."""
    both = present[:, 0] & present[:, 1]
    changed = np.flatnonzero(both & (hours[0].passes != hours[1].passes))
    if not len(changed):
        return []
    by_fid = {r.feature_id: r for r in records}
    centres = np.array([p.centroid.en for p in proposals], np.float64)
    d = rec.position[changed, None, :2] - centres[None, :, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    near = np.argmin(dist, axis=1)
    vec = d[np.arange(len(changed)), near]
    bearing = np.degrees(np.arctan2(vec[:, 0], vec[:, 1])) % 360.0
    groups: dict[str, dict[str, Any]] = {}
    for j, i in enumerate(changed.tolist()):
        fid = int(rec.building[i])
        b = by_fid.get(fid)
        key = b.id if b is not None else "ground"
        g = groups.setdefault(key, {"building": key, "name": b.name if b is not None else "open ground",
                                    "lost": 0, "gained": 0, "storeys": set(), "receivers": []})
        lost = bool(hours[0].passes[i]) and not bool(hours[1].passes[i])
        g["lost" if lost else "gained"] += 1
        g["storeys"].add(int(rec.storey[i]))
        g["receivers"].append({
            "index": i, "storey": int(rec.storey[i]),
            "facade_azimuth_deg": None if np.isnan(rec.azimuth_deg[i]) else round(float(rec.azimuth_deg[i]), 1),
            "enu": [round(float(c), 3) for c in rec.position[i]],
            "before": {"continuous_min": float(hours[0].continuous_min[i]), "total_min": float(hours[0].total_min[i])},
            "after": {"continuous_min": float(hours[1].continuous_min[i]), "total_min": float(hours[1].total_min[i])},
            "verdict": "loses compliance" if lost else "gains compliance",
            "from_proposal": proposals[int(near[j])].id, "bearing_deg": round(float(bearing[j]), 2),
            "distance_m": round(float(dist[j, near[j]]), 2)})
    out = []
    for g in groups.values():
        g["storeys"] = sorted(g["storeys"])
        out.append(g)
    return sorted(out, key=lambda g: (-g["lost"], g["building"]))


def _disabled(ctx: StageContext, reason: str) -> StageResult:
    record = SunlightRecord(False, settings={"note": reason})
    write_sunlight(ctx.out_dir, record, ReceiverResults.empty())
    write_report(ctx.out_dir / FOLDER / "sunlight.html", record, None, None)
    return StageResult({"receivers": 0}, {"enabled": False, "note": reason})


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Receivers, sun, occlusion, verdicts, outputs."""
    a = cfg.stages.analysis
    if not a.enabled:
        return _disabled(ctx, "stages.analysis.enabled is false")
    t0 = time.perf_counter()
    georef, mesh = ctx.input_dir("georef"), ctx.input_dir("mesh")
    frame = read_frame(georef)
    layer = read_buildings(mesh)
    records = layer.buildings
    terrain = read_terrain(mesh)
    if not records:
        return _disabled(ctx, "no buildings: nothing to judge")
    meshes = BuildingMeshes(mesh)
    footprints = read_footprints(georef, plan_only=True)
    rings = {f.id: [np.asarray(r.en, np.float64) for part in f.parts[:1] for r in part]
             for f in footprints.features if len(f.parts) == 1}
    proposals = [r for r in records if r.proposed]
    replaced_ids = sorted({r.replaces for r in proposals if r.replaces})
    replaced = [r for r in records if r.id in replaced_ids]
    fixed = [r for r in records if not r.proposed and r.id not in replaced_ids]
    names = list(SCENARIOS[:2] if proposals else SCENARIOS[:1])
    rule = rule_of(a)

    facades = facade_receivers(_sources(records, meshes, rings), spacing=a.facade_spacing,
                               window_height=a.window_height, storey_height=a.storey_height, offset=a.offset)
    proposed_fids = np.array([r.feature_id for r in proposals], np.int64)
    replaced_fids = np.array([r.feature_id for r in replaced], np.int64)
    f_present = np.column_stack([~np.isin(facades.building, proposed_fids),
                                 ~np.isin(facades.building, replaced_fids)])[:, :len(names)]

    tv, tf = load_level(mesh, terrain.levels[0]) if not terrain.is_empty else (np.empty((0, 3)), np.empty((0, 3)))
    polygons = {r.id: _polygon(rings.get(r.id) or [np.asarray(r.outline_en)]) for r in records}
    crs = gis_crs(cfg.site.crs, footprints.crs_wkt, frame.site.lon, frame.site.lat)
    h0 = float(np.median([r.centroid.undulation for r in records]))  # plan ENU is drawn at orthometric 0
    ground_info = None
    grounds, g_index = Receivers.empty(), np.zeros(0, np.int64)
    g_present = np.zeros((0, len(names)), bool)
    if a.ground and len(tf):
        near = shapely.union_all([p.buffer(a.ground_margin) for p in polygons.values()])
        e, n = np.asarray(shapely.get_coordinates(shapely.envelope(near))).T
        grid = RasterGrid.covering(frame.site, crs, e, n, h0, a.ground_spacing)
        plan = grid.centres_enu(frame.site, h0)
        inside_margin = shapely.contains_xy(near, plan[:, 0], plan[:, 1])
        fixed_cover = [polygons[r.id] for r in fixed]
        grounds, kept = ground_receivers(plan[inside_margin], tv, tf, fixed_cover, offset=a.offset)
        g_index = np.flatnonzero(inside_margin)[kept]
        def under(buildings: list[BuildingRecord]) -> np.ndarray:
            """Which ground receivers lie inside one of ``buildings``' footprints."""
            cover = shapely.union_all([polygons[r.id] for r in buildings])
            return shapely.contains_xy(cover, grounds.position[:, 0], grounds.position[:, 1])

        g_present = np.ones((len(grounds), len(names)), bool)
        if proposals:
            g_present[:, 1] = ~under(proposals)  # a proposal stands there
        if replaced:
            g_present[:, 0] = ~under(replaced)  # the building a proposal replaces still stands there
        ground_info = {"crs": crs.to_wkt(), "crs_name": crs.name, "epsg": crs.to_epsg(),
                       "west": grid.west, "north": grid.north, "cell": grid.cell, "rows": grid.rows,
                       "cols": grid.cols}
    receivers = Receivers.concat([facades, grounds])
    present = np.concatenate([f_present, g_present]) if len(receivers) else np.zeros((0, len(names)), bool)
    t_receivers = time.perf_counter() - t0

    day = a.date or solstice_date(a.year)
    start = min(rule.continuous_window[0], rule.total_window[0])
    end = max(rule.continuous_window[1], rule.total_window[1])
    sun = sun_table(day, frame.site.lat, frame.site.lon, basis=a.time_basis, start_h=start, end_h=end,
                    step_min=a.step_minutes)
    directions = sun.shading_directions()
    common = Scene([meshes.get(r.feature_id, 0) for r in fixed] + [(tv, tf)])
    extras: list[Scene | None] = [Scene([meshes.get(r.feature_id, 0) for r in replaced])]
    if proposals:
        extras.append(Scene([meshes.get(r.feature_id, 0) for r in proposals]))
    t1 = time.perf_counter()
    hours, rays = shade(receivers.position, receivers.normal, directions, sun.clock_min, sun.step_min, rule,
                        common, extras, block_rays=a.block_rays,
                        track=lambda todo: ctx.reporter.track(todo, "sunlight"))
    t_shade = time.perf_counter() - t1
    cont = np.column_stack([h.continuous_min for h in hours]).astype(np.float32)
    total = np.column_stack([h.total_min for h in hours]).astype(np.float32)
    cont[~present] = np.nan
    total[~present] = np.nan

    utc = [str(np.datetime_as_string(u, unit="s")) + "Z" for u in sun.utc]
    settings = {"date": day.isoformat(), "date_rule": "given" if a.date else f"winter solstice {a.year} (KST)",
                "time_basis": a.time_basis, "time_basis_name": TIME_BASIS_NAMES[a.time_basis],
                "step_min": sun.step_min, "window_h": [start, end],
                "rule": {"continuous_min": rule.continuous_min, "continuous_window_h": list(rule.continuous_window),
                         "total_min": rule.total_min, "total_window_h": list(rule.total_window),
                         "pass": "continuous or total"},
                "site": {"lat": frame.site.lat, "lon": frame.site.lon},
                "sun_model": "NREL SPA (pvlib), topocentric azimuth, apparent (refracted) elevation",
                "facade_spacing_m": a.facade_spacing, "window_height_m": a.window_height,
                "storey_height_m": a.storey_height, "offset_m": a.offset, "ground": a.ground,
                "ground_spacing_m": a.ground_spacing, "ground_margin_m": a.ground_margin,
                "scene": {"buildings": len(records), "terrain_triangles": int(len(tf)),
                          "triangles": common.triangles + sum(e.triangles for e in extras if e is not None)},
                "lit_when": "sun above the horizon, in front of the receiver's surface, and the ray to it "
                            "leaves the scene (buildings at full detail, imported models, terrain TIN) unhit"}
    sun_doc = {"clock_min": sun.clock_min.tolist(), "utc": utc,
               "azimuth_deg": np.round(sun.azimuth_deg, 4).tolist(),
               "elevation_deg": np.round(sun.elevation_deg, 4).tolist()}
    facade_n = len(facades)
    counts: dict[str, Any] = {"receivers": len(receivers), "facade_receivers": facade_n,
                              "ground_receivers": len(grounds), "rays": rays, "time_steps": len(sun.clock_min)}
    for k, name in enumerate(names):
        sel = present[:, k]
        fac = sel.copy()
        fac[facade_n:] = False
        counts[f"{name}_facade_failing"] = int((~hours[k].passes[fac]).sum())
        counts[f"{name}_ground_failing"] = int((~hours[k].passes[sel & ~fac]).sum())
    changes = _changes(records, receivers, present, hours, frame, proposals) if proposals else []
    counts["changed_lost"] = sum(g["lost"] for g in changes)
    counts["changed_gained"] = sum(g["gained"] for g in changes)
    record = SunlightRecord(True, settings, sun_doc, names, [r.id for r in proposals], replaced_ids,
                            _summaries(records, receivers, present, hours, names), changes, ground_info,
                            counts=counts)
    passes = np.column_stack([h.passes for h in hours]) & present
    results = ReceiverResults(receivers, present, cont, total, passes)
    out = ctx.out_dir / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    geoid = cfg.geoid_model()
    files = {"receivers": "receivers.npz", "report": "sunlight.html"}
    if facade_n:
        files["gpkg"] = "receivers.gpkg"
    if ground_info is not None:
        ground_info["file"] = files["ground"] = "ground.tif"
    record.files = files
    # the report's maps take matplotlib seconds on one core: a worker draws them while this
    # process writes the other outputs (the shading before used every core)
    report = ctx.executor.submit(write_report, out / "sunlight.html", record, results, polygons)
    if facade_n:
        write_receivers_gpkg(out / "receivers.gpkg", frame, geoid, crs, records, results, names, facade_n)
    if ground_info is not None:
        write_ground_tif(out / "ground.tif", ground_info, crs, g_index, cont[facade_n:], total[facade_n:], names)
    write_sunlight(ctx.out_dir, record, results)
    report.result()
    perf = {"receivers_s": round(t_receivers, 3), "shading_s": round(t_shade, 3),
            "rays_per_s": round(rays / t_shade) if t_shade > 0 else None,
            "total_s": round(time.perf_counter() - t0, 3)}
    return StageResult({k: v for k, v in counts.items() if isinstance(v, int)},
                       {"enabled": True, "counts": counts, "performance": perf, "settings": settings,
                        "changed_buildings": [{k: g[k] for k in ("building", "name", "lost", "gained", "storeys")}
                                              for g in changes]})
