"""anchors: one AR anchor per building and per point of interest.

Writes ``anchors.json`` (validated against the shipped ``anchors.schema.json``),
``anchors.geojson`` (points with ellipsoidal heights) and a copy of the schema. Building anchors
sit at the footprint centroid (computed in the footprint's own CRS; for footprints outlined from
the LiDAR or imported models, in plan ENU) on the ground, face along the building's long axis and
name the building's feature in the 3D Tiles. POIs stand on the terrain heightfield (LiDAR DTM and
DEM); a POI off the terrain, or any POI of a site without terrain, is skipped and listed.
Vertical accuracy is the georef check-point RMSE.
"""

from __future__ import annotations

import json
import shutil
import warnings
from importlib import resources
from typing import Any

import numpy as np

from pipeline import artifacts
from pipeline.artifacts.buildings import read_buildings
from pipeline.artifacts.control import read_control
from pipeline.artifacts.features import read_feature_index
from pipeline.artifacts.frame import read_frame
from pipeline.artifacts.pois import read_pois
from pipeline.artifacts.terrain import read_terrain
from pipeline.config import TwinConfig
from pipeline.core.orientation import heading_quaternions, polygon_heading
from pipeline.core.raster import read_enu_raster
from pipeline.core.terrain import sample_bilinear
from pipeline.errors import FeatureSkippedWarning
from pipeline.stage import StageContext, StageResult, StageSpec

SPEC = StageSpec("anchors", reads=(artifacts.FRAME, artifacts.CONTROL, artifacts.ENU_POIS, artifacts.TERRAIN,
                                   artifacts.BUILDINGS, artifacts.FEATURE_INDEX),
                 writes=(artifacts.ANCHORS,))
SCHEMA_VERSION = "1.0"


def schema_path() -> Any:
    """The anchors JSON Schema shipped in the package."""
    return resources.files("pipeline") / "schemas" / "anchors.schema.json"


def _anchor(aid: str, kind: str, name: str, category: str | None, lon: float, lat: float,
            ortho: float, n: float, heading: float, feature: dict | None, props: dict) -> dict:
    q_enu, q_eus = heading_quaternions(heading)
    return {"id": aid, "kind": kind, "name": name, "category": category,
            "latitude": round(lat, 10), "longitude": round(lon, 10),
            "ellipsoidal_height": round(ortho + n, 4), "orthometric_height": round(ortho, 4),
            "geoid_undulation": round(n, 4), "heading_deg": round(heading, 4),
            "orientation": {"enu_xyzw": [round(x, 9) for x in q_enu],
                            "eus_xyzw": [round(x, 9) for x in q_eus]},
            "feature": feature, "properties": props}


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Build the anchors of buildings and POIs."""
    georef, mesh, tile = ctx.input_dir("georef"), ctx.input_dir("mesh"), ctx.input_dir("tile")
    frame = read_frame(georef)
    anchors: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    if cfg.stages.anchors.include_buildings:
        index = read_feature_index(tile)
        for b in read_buildings(mesh).buildings:
            c = b.centroid
            outline = np.asarray(b.outline_en, np.float64)
            ref = index[b.id]
            feature = {"building_id": b.id, "tileset": "buildings/tileset.json",
                       "content": f"buildings/{ref.tile}", "feature_id": ref.feature_id}
            anchors.append(_anchor(f"building:{b.id}", "building", b.name or b.id, b.use,
                                   c.lon, c.lat, b.ground_height, c.undulation,
                                   polygon_heading(outline) if len(outline) >= 3 else 0.0, feature,
                                   {"height": b.height, "roof_orthometric_height": b.roof_height,
                                    "floors": b.floors, "height_source": b.height_source,
                                    "ground_source": b.ground_source, "lod": b.lod, "roof_type": b.roof_type,
                                    "proposed": b.proposed, "replaces": b.replaces}))
    pois = read_pois(georef) if cfg.stages.anchors.include_pois else []
    terrain = read_terrain(mesh)
    heightfield = read_enu_raster(mesh / terrain.heightfield_path) if pois and terrain.heightfield_path else None
    for i, p in enumerate(pois):
        u = np.nan
        if heightfield is not None:
            u = float(sample_bilinear(heightfield[1], heightfield[0], np.array([p.en[0]]), np.array([p.en[1]]))[0])
        if not np.isfinite(u):
            reason = "outside the terrain" if heightfield is not None else "no terrain (no point cloud or DEM)"
            skipped.append({"poi": p.name, "reason": reason})
            warnings.warn(f"POI {p.name!r}: skipped, {reason}", FeatureSkippedWarning, stacklevel=2)
            continue
        _, _, h = frame.site.enu_to_geodetic(np.array([[p.en[0], p.en[1], u]]))
        anchors.append(_anchor(f"poi:{i + 1:03d}", "poi", p.name, p.kind, p.lon, p.lat,
                               float(h[0]) - p.undulation, p.undulation, 0.0, None, {}))
    control = read_control(georef)
    rmse, rmse_h = control.vertical_rmse, control.horizontal_rmse
    doc = {"schema_version": SCHEMA_VERSION,
           "site": {"name": cfg.site.name,
                    "origin": {"latitude": frame.site.lat, "longitude": frame.site.lon,
                               "ellipsoidal_height": frame.site.height}},
           "geoid_grid": frame.geoid_grid,
           "accuracy": {"vertical_rmse_m": rmse, "horizontal_rmse_m": rmse_h,
                        "note": "vertical: LiDAR heights against the surveyed points; horizontal: "
                                "control-point fit of a locally referenced scan (check points when "
                                "given), null when no scan was georeferenced by control points"},
           "anchors": anchors}
    (ctx.out_dir / "anchors.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    features = [{"type": "Feature", "id": a["id"],
                 "geometry": {"type": "Point",
                              "coordinates": [a["longitude"], a["latitude"], a["ellipsoidal_height"]]},
                 "properties": {k: a[k] for k in ("kind", "name", "category", "orthometric_height",
                                                  "heading_deg")}} for a in anchors]
    (ctx.out_dir / "anchors.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": features}, indent=1, ensure_ascii=False))
    with resources.as_file(schema_path()) as src:
        shutil.copyfile(src, ctx.out_dir / "anchors.schema.json")
    kinds = [a["kind"] for a in anchors]
    return StageResult({"anchors": len(anchors), "building_anchors": kinds.count("building"),
                        "poi_anchors": kinds.count("poi")},
                       {"anchors": len(anchors), "skipped": skipped, "vertical_rmse_m": rmse,
                        "horizontal_rmse_m": rmse_h})
