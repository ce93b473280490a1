"""anchors: AR anchors for every platform (``anchors.json`` format 2.0, GeoJSON, CSV, schema).

Kinds:

- ``building``: on the ground (the building's base height) at its footprint's visual centre,
  facing along the footprint's long axis, linked to its feature in the 3D Tiles;
- ``rooftop``: on the building's own finest mesh, where the plumb line through the visual
  centre meets its roof (plus ``rooftop_offset_m``);
- ``terrain``: each point of interest on the terrain TIN (plus ``terrain_offset_m``);
- ``gcp``: each surveyed point as surveyed, with the survey's accuracy;
- ``model``: each imported model at its placement origin, turned by its heading.

Surfaces are found by dropping the plumb line (the ellipsoid normal) onto the meshes the tiles
carry, so ARCore's heights above terrain and rooftop are ours to the millimetre. Each anchor's
accuracy combines the georeferencing residuals, the mesh's error there, the survey and the
geoid model's stated accuracy (``core.accuracy``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Container
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
from shapely.geometry import Polygon

from pipeline import artifacts
from pipeline.artifacts.anchors import (Anchor, AnchorSet, AnchorWriter, ArcorePose, ArkitPose, CesiumPose,
                                        Orientation, Surfaces)
from pipeline.artifacts.buildings import BuildingMeshes, BuildingRecord, building_count, iter_buildings
from pipeline.artifacts.control import ControlRecord, read_control
from pipeline.artifacts.features import FeatureRef, read_feature_index
from pipeline.artifacts.footprints import FootprintLookup, lookup_footprints
from pipeline.artifacts.frame import read_frame
from pipeline.artifacts.models import read_models
from pipeline.artifacts.pois import PoiRecord, read_pois
from pipeline.artifacts.terrain import load_level, read_terrain
from pipeline.config import TwinConfig
from pipeline.core.accuracy import Accuracy, ErrorPart, combine, geoid_part
from pipeline.core.drape import drape, drape_each
from pipeline.core.footprints import visual_centre
from pipeline.core.geodesy import geodetic_to_ecef
from pipeline.core.orientation import ecef_quaternion, enu_to_ecef_columns, heading_quaternions, polygon_headings
from pipeline.core.shading import Scene
from pipeline.errors import FeatureSkippedWarning
from pipeline.stage import StageContext, StageResult, StageSpec

SPEC = StageSpec("anchors", reads=(artifacts.FRAME, artifacts.CONTROL, artifacts.ENU_POIS, artifacts.ENU_FOOTPRINTS,
                                   artifacts.ENU_MODELS, artifacts.TERRAIN, artifacts.BUILDINGS,
                                   artifacts.FEATURE_INDEX),
                 writes=(artifacts.ANCHORS,))
# buildings whose anchors are built and written together: memory follows this, not the city
BATCH = 4096


@dataclass
class _Place:
    """An anchor before the vectorized part: where (WGS84 degrees, ellipsoidal m), what, and the
    error parts of its own (georeferencing and geoid parts are added for all)."""

    id: str
    kind: str
    name: str
    category: str | None
    lon: float
    lat: float
    h: float
    heading: float
    parts: list[ErrorPart]
    feature: dict[str, Any] | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    rooftop: float | None = None
    georeferenced: bool = True


def _outline(b: BuildingRecord, footprints: dict[str, Polygon]) -> Polygon | None:
    """The building's plan outline (plan ENU at orthometric 0): its footprint with courtyards
    when the layer has it and the building was built from it, else the outline the mesh stage
    recorded (a city model's, with its courtyards)."""
    if b.id in footprints and b.footprint_source != "city model":
        return footprints[b.id]
    if len(b.outline_en) >= 3:
        poly = Polygon(b.outline_en, b.outline_holes_en)
        return poly if poly.is_valid and poly.area > 0 else None
    return None


def _footprint_polygons(footprints: FootprintLookup, ids: list[str]) -> dict[str, Polygon]:
    """The largest valid part (with its holes) of the footprints of ``ids`` that the layer has."""
    out = {}
    for f in footprints.load(ids).values():
        polys = [Polygon(part[0].en, [r.en for r in part[1:]]) for part in f.parts if len(part[0].en) >= 3]
        polys = [p for p in polys if p.is_valid and p.area > 0]
        if polys:
            out[f.id] = max(polys, key=lambda p: p.area)
    return out


def _roof_part(b: BuildingRecord) -> ErrorPart:
    if b.lod == "imported":
        return ErrorPart("mesh", 0.0, 0.0, note="the imported model's own roof surface")
    if b.height_source == "city model":
        return ErrorPart("mesh", 0.0, 0.0, note="the city model's own roof surface")
    if b.roof_fit_rmse_m is not None:
        return ErrorPart("mesh", 0.0, b.roof_fit_rmse_m, note="RMSE of the LiDAR roof points about the roof planes")
    return ErrorPart("mesh", 0.0, None, note=f"{b.lod} roof height from {b.height_source}: no measured error")


def _ground_part(b: BuildingRecord, tin_error: float | None) -> ErrorPart:
    if b.ground_source == "terrain" and tin_error is not None:
        return ErrorPart("mesh", 0.0, tin_error, note="terrain TIN's largest vertical error against the heightfield")
    if b.ground_source == "model base":
        return ErrorPart("mesh", 0.0, 0.0, note="the imported model's base")
    return ErrorPart("mesh", 0.0, None, note=f"ground from {b.ground_source}: no measured error")


def _entrance_places(b: BuildingRecord, doors: list[PoiRecord], terrain: Scene, frame: Any, tin_error: float | None,
                     heading: float, feature: dict[str, Any], props: dict[str, Any]) -> list[_Place]:
    """The building's anchors at its entrances: on the terrain at each (the building's base where
    the terrain does not reach), the first as ``building:<id>``, the others ``:entrance-<k>``."""
    ground = drape(terrain, frame.site, np.array([d.lon for d in doors]), np.array([d.lat for d in doors]))
    places = []
    for k, (door, h) in enumerate(zip(doors, ground, strict=True)):
        suffix = "" if k == 0 else f":entrance-{k + 1}"
        on_terrain = bool(np.isfinite(h))
        part = (ErrorPart("mesh", 0.0, tin_error, note="terrain TIN's largest vertical error against the heightfield")
                if on_terrain else _ground_part(b, tin_error))
        places.append(_Place(f"building:{b.id}{suffix}", "building", b.name or b.id, b.use, door.lon, door.lat,
                             float(h) if on_terrain else b.ground_height + b.centroid.undulation, heading, [part],
                             feature, {**props, "placed_at": "entrance", "entrance": door.name}))
    return places


class _BuildingPlaces:
    """Places the building and rooftop anchors of a batch of buildings at a time (the footprints
    are looked up and the meshes opened once; a batch's footprints are read with it)."""

    def __init__(self, ctx: StageContext, cfg: TwinConfig, frame: Any, tin_error: float | None, terrain: Scene,
                 index: dict[str, FeatureRef]) -> None:
        self.cfg, self.frame, self.tin_error, self.terrain, self.index = cfg, frame, tin_error, terrain, index
        self.footprints = lookup_footprints(ctx.input_dir("georef"))
        self.meshes = BuildingMeshes(ctx.input_dir("mesh"))

    def __call__(self, batch: list[BuildingRecord], entrances: dict[str, list[PoiRecord]],
                 skipped: list[dict[str, str]]) -> list[_Place]:
        s = self.cfg.stages.anchors
        standing: list[tuple[BuildingRecord, Polygon]] = []
        footprints = _footprint_polygons(self.footprints, [b.id for b in batch])
        for b in batch:
            poly = _outline(b, footprints)
            if poly is None:
                skipped.append({"anchor": f"building:{b.id}", "reason": "no outline"})
            else:
                standing.append((b, poly))
        if not standing:
            return []
        centres = np.array([visual_centre(poly) for _, poly in standing])
        # plan ENU at orthometric height 0: the plane at the geoid's height above the ellipsoid
        lons, lats = self.frame.site.plan_to_geodetic(centres[:, 0], centres[:, 1],
                                                      np.array([b.centroid.undulation for b, _ in standing]))
        roofs = np.full(len(standing), np.nan)
        if s.include_rooftops:
            roofs = drape_each([self.meshes.get(b.feature_id, 0) for b, _ in standing], self.frame.site, lons, lats)
        headings = polygon_headings([poly for _, poly in standing]).tolist()
        places: list[_Place] = []
        for (b, _), lon, lat, roof, heading in zip(standing, lons.tolist(), lats.tolist(), roofs.tolist(), headings,
                                                   strict=True):
            ref = self.index[b.id]
            feature = {"building_id": b.id, "tileset": "buildings/tileset.json",
                       "content": f"buildings/{ref.tile}", "feature_id": ref.feature_id}
            props = {"height": b.height, "roof_orthometric_height": b.roof_height, "floors": b.floors,
                     "height_source": b.height_source, "ground_source": b.ground_source, "lod": b.lod,
                     "roof_type": b.roof_type, "proposed": b.proposed, "replaces": b.replaces}
            if s.include_buildings and b.id in entrances:
                places += _entrance_places(b, entrances[b.id], self.terrain, self.frame, self.tin_error,
                                           heading, feature, props)
            elif s.include_buildings:
                # on the base as the mesh stage built it: the whole solid stands at its centroid's N, so
                # its base is one ellipsoidal height (orthometric below the anchor differs by the geoid's
                # slope across the footprint, millimetres)
                places.append(_Place(f"building:{b.id}", "building", b.name or b.id, b.use, lon, lat,
                                     b.ground_height + b.centroid.undulation, heading,
                                     [_ground_part(b, self.tin_error)], feature,
                                     {**props, "placed_at": "visual centre"}))
            if s.include_rooftops:
                if not np.isfinite(roof):
                    skipped.append({"anchor": f"rooftop:{b.id}", "reason": "the plumb line through the visual "
                                                                           "centre meets no roof"})
                    warnings.warn(f"building {b.id!r}: no rooftop anchor, the plumb line through its visual centre "
                                  "meets no roof", FeatureSkippedWarning, stacklevel=2)
                    continue
                places.append(_Place(f"rooftop:{b.id}", "rooftop", b.name or b.id, b.use, lon, lat,
                                     roof + s.rooftop_offset_m, heading, [_roof_part(b)], feature, dict(props),
                                     rooftop=roof))
        return places


def _split_entrances(pois: list[PoiRecord], buildings: Container[str]
                     ) -> tuple[list[tuple[int, PoiRecord]], dict[str, list[PoiRecord]]]:
    """(number, POI) of the points of interest, and the entrances by building id, in file order.
    A point naming a building the twin does not have stays a point of interest, with a warning."""
    plain: list[tuple[int, PoiRecord]] = []
    doors: dict[str, list[PoiRecord]] = {}
    for i, p in enumerate(pois):
        if p.entrance_of is None:
            plain.append((i, p))
        elif p.entrance_of in buildings:
            doors.setdefault(p.entrance_of, []).append(p)
        else:
            warnings.warn(f"POI {p.name!r}: the entrance of building {p.entrance_of!r}, which the twin does not "
                          "have: kept as a point of interest", FeatureSkippedWarning, stacklevel=2)
            plain.append((i, p))
    return plain, doors


def _pois(cfg: TwinConfig, pois: list[tuple[int, PoiRecord]], terrain: Scene, tin_error: float | None, frame: Any,
          skipped: list[dict[str, str]]) -> list[_Place]:
    """Terrain anchors of the points of interest; ids keep each point's number in its layer."""
    if not cfg.stages.anchors.include_pois or not pois:
        return []
    lon = np.array([p.lon for _, p in pois])
    lat = np.array([p.lat for _, p in pois])
    ground = drape(terrain, frame.site, lon, lat)
    places = []
    for j, (i, p) in enumerate(pois):
        if not np.isfinite(ground[j]):
            reason = "outside the terrain" if not terrain.is_empty else "no terrain (no point cloud or DEM)"
            skipped.append({"anchor": f"poi:{i + 1:03d}", "poi": p.name, "reason": reason})
            warnings.warn(f"POI {p.name!r}: skipped, {reason}", FeatureSkippedWarning, stacklevel=2)
            continue
        part = ErrorPart("mesh", 0.0, tin_error, note="terrain TIN's largest vertical error against the heightfield")
        places.append(_Place(f"poi:{i + 1:03d}", "terrain", p.name, p.kind, p.lon, p.lat,
                             float(ground[j]) + cfg.stages.anchors.terrain_offset_m, 0.0, [part]))
    return places


def _gcps(cfg: TwinConfig, control: ControlRecord) -> list[_Place]:
    if not cfg.stages.anchors.include_gcps:
        return []
    return [_Place(f"gcp:{p.id}", "gcp", p.id, p.role, p.lon, p.lat, p.h_ellipsoidal, 0.0,
                   [ErrorPart("survey", p.sigma_h, p.sigma_v,
                              note="the survey's stated accuracy" if p.sigma_h is not None or p.sigma_v is not None
                              else "the survey's accuracy is not stated (GCP columns sigma_h, sigma_v)")],
                   properties={"role": p.role, "source": p.source,
                               "dz_lidar_minus_survey": p.dz_lidar_minus_survey},
                   georeferenced=False)
            for p in control.points]


def _models(ctx: StageContext, cfg: TwinConfig, index: dict[str, FeatureRef]) -> list[_Place]:
    if not cfg.stages.anchors.include_models:
        return []
    places = []
    for m in read_models(ctx.input_dir("georef")):
        ref = index.get(m.id)
        feature = ({"building_id": m.id, "tileset": "buildings/tileset.json", "content": f"buildings/{ref.tile}",
                    "feature_id": ref.feature_id} if ref else None)
        places.append(_Place(f"model:{m.id}", "model", m.name or m.id, m.use, m.origin_lonlat[0], m.origin_lonlat[1],
                             m.origin_ellipsoidal_height, m.heading_deg % 360.0,
                             [ErrorPart("placement", None, None,
                                        note="the model's origin as the config places it: its accuracy is not "
                                             "stated")],
                             feature, {"source": m.source, "scale": m.scale, "up_axis": m.up_axis,
                                       "proposed": m.proposed, "replaces": m.replaces},
                             georeferenced=False))
    return places


def _georef_part(control: ControlRecord, inputs_h: float | None) -> ErrorPart:
    h = control.horizontal_rmse if control.horizontal_rmse is not None else inputs_h
    note = ("horizontal: control fit of a locally referenced scan" if control.horizontal_rmse is not None else
            "horizontal: the inputs' stated accuracy (stages.anchors.inputs_horizontal_accuracy_m)"
            if inputs_h is not None else "horizontal: inputs referenced by their CRS, their accuracy not stated")
    note += ("; vertical: LiDAR heights against the surveyed points" if control.vertical_rmse is not None
             else "; vertical: no surveyed points to check against")
    return ErrorPart("georeferencing", h, control.vertical_rmse, note=note)


@functools.lru_cache(maxsize=1 << 16)
def _combined(parts: tuple[ErrorPart, ...]) -> Accuracy:
    """:func:`combine`, once per distinct set of parts: a city's anchors share a few hundred."""
    return combine(parts)


def _r(x: float | None, k: int = 4) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), k)


@dataclass(frozen=True)
class _Poser:
    """Turns places into anchors with every platform's pose and the accuracy parts all share."""

    geoid: Any
    terrain: Scene
    site: Any
    shared: tuple[ErrorPart, ErrorPart]  # georeferencing, geoid

    def __call__(self, places: list[_Place]) -> list[Anchor]:
        if not places:
            return []
        lon = np.array([p.lon for p in places])
        lat = np.array([p.lat for p in places])
        und = self.geoid.undulation(lon, lat)
        h = np.array([p.h for p in places])
        ground = drape(self.terrain, self.site, lon, lat)
        ecef = geodetic_to_ecef(lon, lat, h)
        arkit_geoid = self.geoid.info.label()
        q_enu, q_eus = heading_quaternions(np.array([p.heading for p in places]))
        q_ecef = ecef_quaternion(q_enu, lon, lat)
        enu_to_ecef = enu_to_ecef_columns(lon, lat, ecef)
        # rotations to 9 decimals, positions to 0.1 mm
        enu_to_ecef[:, :12] = enu_to_ecef[:, :12].round(9)
        enu_to_ecef[:, 12:] = enu_to_ecef[:, 12:].round(4)
        rows = zip(places, und.round(4).tolist(), ground.tolist(), q_enu.round(9).tolist(), q_eus.round(9).tolist(),
                   q_ecef.round(9).tolist(), ecef.round(4).tolist(), enu_to_ecef.tolist(), strict=True)
        r_part, g_part = self.shared
        anchors = []
        for p, n, on_ground, qn, qs, qe, xyz, m in rows:
            lat_r, lon_r, hh = round(p.lat, 10), round(p.lon, 10), round(p.h, 4)
            ortho = round(p.h - n, 4)
            above_terrain = _r(p.h - on_ground)
            above_roof = _r(p.h - p.rooftop) if p.rooftop is not None else None
            recommended = ("rooftop" if p.kind == "rooftop" else "terrain" if above_terrain is not None else "wgs84")
            parts = ((r_part,) if p.georeferenced else ()) + tuple(p.parts) + (g_part,)
            anchors.append(Anchor(
                p.id, p.kind, p.name, p.category, lat_r, lon_r, hh, ortho, n, round(p.heading, 4),
                Orientation(qn, qs, qe), Surfaces(_r(on_ground), _r(p.rooftop)),
                ArcorePose(lat_r, lon_r, hh, qs, above_terrain, above_roof, recommended),
                ArkitPose(lat_r, lon_r, ortho, arkit_geoid, qs),
                CesiumPose(xyz, m, qe), _combined(parts), p.feature, p.properties))
        return anchors


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Build the anchors of buildings, rooftops, POIs, surveyed points and imported models,
    written a batch of buildings at a time (``BATCH``)."""
    georef, mesh = ctx.input_dir("georef"), ctx.input_dir("mesh")
    frame = read_frame(georef)
    geoid = cfg.geoid_model()
    control = read_control(georef)
    terrain_rec = read_terrain(mesh)
    tin = [load_level(mesh, terrain_rec.levels[0])] if terrain_rec.levels else []
    tin_error = terrain_rec.levels[0].max_vertical_error_m if terrain_rec.levels else None
    terrain = Scene(tin)
    skipped: list[dict[str, str]] = []
    s = cfg.stages.anchors
    # only where each building's feature is: its properties are most of the index (0.9 GB at 600k)
    index = read_feature_index(ctx.input_dir("tile"), properties=False, geometry=False)
    place = _BuildingPlaces(ctx, cfg, frame, tin_error, terrain, index) \
        if s.include_buildings or s.include_rooftops else None
    # every building has its feature in the index (tile puts each in one leaf): the records
    # themselves are read a batch at a time below, never all at once
    plain, entrances = _split_entrances(read_pois(georef), index.keys())
    pose = _Poser(geoid, terrain, frame.site,
                  (_georef_part(control, cfg.stages.anchors.inputs_horizontal_accuracy_m),
                   geoid_part(geoid.info.name, geoid.info.accuracy_m, frame.heights)))
    site = {"name": cfg.site.name, "origin": {"latitude": frame.site.lat, "longitude": frame.site.lon,
                                              "ellipsoidal_height": frame.site.height}}
    accuracy = {"vertical_rmse_m": control.vertical_rmse, "horizontal_rmse_m": control.horizontal_rmse,
                "geoid_accuracy_m": geoid.info.accuracy_m,
                "note": "per anchor: accuracy.parts, 1 sigma, combined by root sum of squares; vertical_m is the "
                        "ellipsoidal height's (ARCore, Cesium), vertical_orthometric_m the orthometric's (ARKit)"}
    with AnchorWriter(ctx.out_dir, AnchorSet(site, geoid.info, frame.geoid_grid, frame.heights, accuracy)) as out:
        if place is not None:
            records = iter_buildings(mesh)
            batches = iter(lambda: list(islice(records, BATCH)), [])
            for batch in ctx.reporter.track(batches, "anchors", total=-(-building_count(mesh) // BATCH)):
                out.add(pose(place(batch, entrances, skipped)))
        out.add(pose(_pois(cfg, plain, terrain, tin_error, frame, skipped) + _gcps(cfg, control)
                     + _models(ctx, cfg, index)))
        summary = out.close(skipped)
    counts = {"anchors": summary.count, **{f"{k}_anchors": n for k, n in summary.kinds.items()}}
    return StageResult(counts, {"anchors": summary.count, "skipped": skipped, "geoid": geoid.info.label(),
                                "vertical_rmse_m": control.vertical_rmse,
                                "horizontal_rmse_m": control.horizontal_rmse})
