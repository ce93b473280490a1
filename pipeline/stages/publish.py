"""publish: the versioned hub bundle that viewers and AR apps consume: ``<workdir>/bundles/<version>``,
with ``<workdir>/bundle`` the newest (hard links, swapped in once it is complete; earlier versions stay).

Layout: ``tileset.json`` + ``terrain/ buildings/ pointcloud/`` (3D Tiles 1.1), ``anchors/``,
``rasters/`` (DTM, DSM), ``catalog.json`` (a STAC Collection) and ``stac/`` (its Items),
``provenance.json`` (inputs with sha256, code version, georef accuracy), ``README.md`` and
``SHA256SUMS`` over every other file.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import numpy as np

from pipeline import __version__
from pipeline.config import TwinConfig
from pipeline.core.atomic import tree_hashes
from pipeline.core.tiles import box_corners
from pipeline import artifacts
from pipeline.artifacts.anchors import read_summary
from pipeline.artifacts.buildings import BuildingMeshes, iter_buildings
from pipeline.artifacts.control import read_control
from pipeline.artifacts.footprints import read_footprints
from pipeline.artifacts.frame import FrameRecord, read_frame
from pipeline.artifacts.terrain import load_level, read_terrain
from pipeline.artifacts.sunlight import FOLDER, read_sunlight
from pipeline.core import gltf_validator
from pipeline.core.elevation_export import ElevationRaster, surface_heights, write_elevation
from pipeline.core.geodesy import gis_crs
from pipeline.core.pointio import las_creation_date
from pipeline.core.rastergrid import RasterGrid
from pipeline.core.shading import Scene
from pipeline.core.stac import Layer, LayerAsset, projection_of, write_catalog
from pipeline.core.tileset_check import validate_tileset
from pipeline.core.viewer import find_cesium, write_viewer
from pipeline.core.text import markdown_literal
from pipeline.errors import StageError, ValidationWarning
from pipeline.stage import StageContext, StageResult, StageSpec

SPEC = StageSpec("publish", reads=(artifacts.FRAME, artifacts.CONTROL, artifacts.ENU_FOOTPRINTS, artifacts.TERRAIN,
                                   artifacts.BUILDINGS, artifacts.TILESET, artifacts.FEATURE_INDEX, artifacts.ANCHORS,
                                   artifacts.SUNLIGHT),
                 # provenance.json names every input file with its sha256
                 reads_inputs=True, output="bundle", versions="bundles")


def output_version(cfg: TwinConfig) -> str:
    """The folder under ``bundles/`` this run's bundle goes to."""
    return cfg.stages.publish.bundle_version

BUNDLE_README = """# {name}: digital twin bundle {version}

Produced by dmc-twin {code_version}. Everything a viewer, the city twin hub or an AR app needs:

| path | what |
|---|---|
| `tileset.json` | root 3D Tiles 1.1 tileset with provenance metadata; the layers are external tilesets |
| `terrain/tileset.json` | terrain TINs (LiDAR DTM, DEM) in a quadtree of levels of detail |
| `buildings/tileset.json` | LoD2/LoD1 buildings and imported models in a quadtree of levels of detail |
| `buildings/schema.json` | metadata schema: each building has a feature ID and a property table row |
| `buildings/features.json` | building id -> the leaf tile and feature ID holding its full detail |
| `pointcloud/tileset.json` | classified LiDAR points (glTF POINTS), additive refinement |
| `anchors/anchors.json` | AR anchors (format 2.0; see below) |
| `anchors/anchors.geojson` | the same anchors as GeoJSON points (third coordinate: metres above the WGS84 ellipsoid) |
| `anchors/anchors.csv` | the same anchors as a table for GIS |
| `anchors/anchors.schema.json` | JSON Schema of anchors.json |
| `anchors/summary.json` | the count of anchors of each kind and their extent |{rasters}{analysis}
| `catalog.json` | STAC 1.1 Collection of the bundle (its assets, for clients that read it alone) |
| `stac/<layer>.json` | one STAC Item per layer, with the projection extension and each file's checksum |
| `provenance.json` | inputs with sha256, code version, georeferencing accuracy |
| `SHA256SUMS` | checksums of every file (`sha256sum -c SHA256SUMS`) |
{viewer}

## AR anchors

`anchors/anchors.json` holds one anchor per building (on the ground at its footprint's visual
centre), per rooftop (on the roof mesh), per point of interest (on the terrain mesh), per
surveyed point and per imported model. Each carries the fields each platform's API takes:

- ARCore Geospatial: `arcore.latitude/longitude/altitude` (metres above the WGS84 ellipsoid) and
  `arcore.eus_xyzw` for `Earth.createAnchor`; `arcore.altitude_above_terrain` for
  `resolveAnchorOnTerrainAsync`; `arcore.altitude_above_rooftop` for `resolveAnchorOnRooftopAsync`.
- ARKit: `arkit.altitude` (metres above mean sea level through the geoid named in `arkit.geoid`)
  for `ARGeoAnchor(coordinate:altitude:)`; turn content by `arkit.eus_xyzw`.
- CesiumJS / Cesium for Unity: `cesium.ecef` (EPSG:4978), `cesium.enu_to_ecef` (column-major
  4x4) and `cesium.ecef_xyzw`.

`accuracy` gives 1-sigma horizontal and vertical accuracy in metres (`vertical_m` for the
ellipsoidal height, `vertical_orthometric_m` for the orthometric one) and the parts it combines
(georeferencing, mesh, survey, geoid); `complete` is false when a part is not known. The geoid
model, its version and its stated accuracy are in `geoid`.

## For the hub

`dmctwin verify .` checks this bundle (checksums, schemas, STAC, references, tilesets) and
`dmctwin diff OLD NEW` lists the buildings and anchors one version changes against another.
"""

VIEWER_README = """| `viewer/` | the web viewer (offline) and the CesiumJS files it loads (`viewer/THIRD_PARTY.json`) |
| `index.html` | opens the viewer |

View: serve this folder with any static web server and open it in a browser, for example
`dmctwin serve .` (then http://127.0.0.1:8000/) or `python -m http.server 8000`; or upload the
folder to a static host. The viewer needs nothing from the network. Any 3D Tiles 1.1 client can
load `tileset.json` directly (for example CesiumJS's `Cesium3DTileset.fromUrl`)."""

NO_VIEWER_README = """
View: serve this folder over HTTP (`python -m http.server 8000`) and load
`http://localhost:8000/tileset.json` in any 3D Tiles 1.1 viewer (for example CesiumJS's
`Cesium3DTileset.fromUrl`)."""


RASTERS_README = """
| `rasters/dtm.tif` | DTM: the terrain's height at every cell, sampled from the terrain tiles' finest TIN (GeoTIFF) |
| `rasters/dsm.tif` | DSM: the same with the existing buildings (proposals left out) |"""

ANALYSIS_README = """
| `analysis/sunlight/tileset.json` | sunlight analysis: window and ground receivers (glTF points), sun hours and \
verdicts with and without the proposals as property attributes |
| `analysis/sunlight/sunlight.html` | the sunlight report: rule, settings, maps, buildings, what the proposals change |
| `analysis/sunlight/sunlight.json` | the same as data: settings, sun table, per-building summaries, changed verdicts |
| `analysis/sunlight/receivers.gpkg` | facade receivers with hours and verdicts (layers in the site CRS and in WGS84) |
| `analysis/sunlight/ground.tif` | sun hours over open ground (site CRS) |"""

LAYER_TITLES = {"terrain": "Terrain", "buildings": "Buildings", "pointcloud": "LiDAR point cloud"}

# The bundle's front page: static hosts serve index.html for the folder itself
INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Digital twin bundle</title>
<meta http-equiv="refresh" content="0; url=viewer/index.html"></head>
<body><p><a href="viewer/index.html">Open the twin's viewer</a></p></body></html>
"""


def _validate(bundle: Path, enabled: bool, tilesets: list[str]) -> dict[str, Any]:
    """Check the bundle's tilesets (the root and every other one the catalog names) against the
    3D Tiles specification and their GLBs with the Khronos glTF validator (when Node and the
    validator are installed); StageError on any error, so an invalid bundle never replaces the
    published one."""
    if not enabled:
        return {"checked": False}
    gltf = gltf_validator.available()
    if not gltf:
        warnings.warn("publish: the glTF validator is not installed (make setup): GLB content not validated",
                      ValidationWarning, stacklevel=2)
    tiles, found = 0, []
    for name in tilesets:
        report = validate_tileset(bundle / name, gltf=gltf)
        if not report.valid:
            first = report.problems[0]
            more = f" (and {len(report.errors) - 1} more error(s))" if len(report.errors) > 1 else ""
            raise StageError(f"the bundle is not valid 3D Tiles, not published: {name}: {first}{more}; "
                             "the previous bundle is kept")
        tiles += report.tiles
        found += [f"{name}: {f}" for f in report.warnings]
    return {"checked": True, "gltf_validated": gltf, "tilesets": tilesets, "tiles": tiles, "warnings": found}


def _capture_time(cfg: TwinConfig) -> tuple[dt.datetime, dt.datetime, str]:
    """When the data were captured (UTC start, end) and where that came from: the config, the
    LAS/LAZ headers' creation days, else the time of publishing (the only case in which a rerun
    of the same inputs gives a different catalog)."""
    given = cfg.stages.publish.datetime
    if given is not None:
        when = given if given.tzinfo else given.replace(tzinfo=dt.UTC)
        return when, when, "config"
    days = [d for d in (las_creation_date(cfg.resolve(pc.path)) for pc in cfg.inputs.pointclouds
                        if cfg.resolve(pc.path).suffix.lower() in (".las", ".laz")) if d is not None]
    if days:
        first, last = (dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC) for d in (min(days), max(days)))
        return first, last, "LAS headers (creation day)"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return now, now, "published"


@dataclass(frozen=True)
class _Extent:
    """Where a tileset's root box lies: WGS84 (west, south, lowest ellipsoidal height, east,
    north, highest) and ECEF (x, y, z minima then maxima), degrees and metres."""

    wgs84: tuple[float, float, float, float, float, float]
    ecef: list[float]

    @property
    def plan(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) degrees."""
        w, s, _, e, n, _ = self.wgs84
        return w, s, e, n


def _tileset_extent(path: Path, frame: FrameRecord) -> _Extent:
    """The extent of a tileset's root box."""
    ecef = box_corners(json.loads(path.read_text())["root"]["boundingVolume"]["box"])
    lon, lat, h = frame.site.enu_to_geodetic(frame.site.ecef_to_enu(ecef))
    return _Extent((float(lon.min()), float(lat.min()), float(h.min()), float(lon.max()), float(lat.max()),
                    float(h.max())), [*(float(v) for v in ecef.min(axis=0)), *(float(v) for v in ecef.max(axis=0))])


def _elevation(ctx: StageContext, cfg: TwinConfig, out: Path, frame: FrameRecord) -> dict[str, ElevationRaster]:
    """rasters/dtm.tif (the terrain TIN) and rasters/dsm.tif (the TIN and every existing building
    at full detail) on one grid in the GIS CRS; nothing without terrain."""
    e_cfg = cfg.stages.publish.elevation
    mesh = ctx.input_dir("mesh")
    terrain = read_terrain(mesh)
    if not e_cfg.enabled or terrain.is_empty:
        return {}
    tin = load_level(mesh, terrain.levels[0])
    meshes = BuildingMeshes(mesh)
    standing = [meshes.get(b.feature_id, 0) for b in iter_buildings(mesh, outlines=False) if not b.proposed]
    footprints = read_footprints(ctx.input_dir("georef"), features=False)
    crs = gis_crs(cfg.site.crs, footprints.crs_wkt, frame.site.lon, frame.site.lat)
    v = tin[0]
    e = np.array([v[:, 0].min(), v[:, 0].max(), v[:, 0].max(), v[:, 0].min()])
    n = np.array([v[:, 1].min(), v[:, 1].min(), v[:, 1].max(), v[:, 1].max()])
    grid = RasterGrid.covering(frame.site, crs, e, n, frame.site.height, e_cfg.resolution_m)
    geoid = cfg.geoid_model() if e_cfg.heights == "orthometric" else None
    label, name = (geoid.info.label(), geoid.info.name) if geoid else (None, None)
    (out / "rasters").mkdir()

    def track(blocks: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
        return ctx.reporter.track(blocks, "publish: DTM, DSM")

    dtm, dsm = surface_heights([Scene([tin]), Scene([tin, *standing])], frame.site, grid, geoid, track=track)
    written = {}
    for key, title, values in (("dtm", "DTM: bare-earth terrain", dtm),
                               ("dsm", "DSM: terrain and existing buildings", dsm)):
        written[key] = write_elevation(out / "rasters" / f"{key}.tif", values, grid, title=title,
                                       heights=e_cfg.heights, geoid_label=label, geoid_name=name)
    return written


def _layers(out: Path, frame: FrameRecord, sunlight: Any, rasters: dict[str, ElevationRaster],
            bbox2: tuple[float, float, float, float]) -> list[Layer]:
    """One STAC Item per layer of the bundle at ``out``."""
    import rasterio.warp

    layers = []
    tiles = {"terrain": ("Terrain (3D Tiles)", "Terrain TINs in a quadtree of levels of detail.", []),
             "buildings": ("Buildings (3D Tiles)", "LoD2/LoD1 buildings and imported models with their metadata.",
                           [LayerAsset("schema", "buildings/schema.json", "application/json", ("metadata",),
                                       "3D Metadata schema"),
                            LayerAsset("features", "buildings/features.json", "application/json", ("metadata",),
                                       "Building id -> leaf tile and feature ID")]),
             "pointcloud": ("LiDAR point cloud (3D Tiles)", "Classified LiDAR points (glTF POINTS).", [])}
    for key, (title, description, extra) in tiles.items():
        path = out / key / "tileset.json"
        if not path.is_file():
            continue
        extent = _tileset_extent(path, frame)
        layers.append(Layer(key, title, description, extent.plan,
                            [LayerAsset("tileset", f"{key}/tileset.json", "application/json", ("data",),
                                        "3D Tiles 1.1 tileset")] + extra,
                            {"proj:epsg": 4978, "proj:bbox": extent.ecef}, {"dmctwin:layer": key}))
    summary = read_summary(out / "anchors")
    if summary.bbox is not None:
        west, south, _, east, north, _ = summary.bbox
        abox = (west, south, east, north)
        proj = {"proj:epsg": 4979, "proj:bbox": summary.bbox}
    else:
        abox, proj = bbox2, {"proj:epsg": 4979}
    layers.append(Layer("anchors", "AR anchors", "Anchors for ARCore, ARKit and CesiumJS (format 2.0) with their "
                        "accuracy; GeoJSON and CSV copies for GIS.", abox,
                        [LayerAsset("anchors", "anchors/anchors.json", "application/json", ("data",), "anchors.json"),
                         LayerAsset("geojson", "anchors/anchors.geojson", "application/geo+json", ("data",)),
                         LayerAsset("csv", "anchors/anchors.csv", "text/csv", ("data",)),
                         LayerAsset("schema", "anchors/anchors.schema.json", "application/schema+json",
                                    ("metadata",)),
                         LayerAsset("summary", "anchors/summary.json", "application/json", ("metadata",),
                                    "count of each kind and extent")], proj, {"dmctwin:anchors": summary.count}))
    for key, r in rasters.items():
        g = r.grid
        w, s, e, n = rasterio.warp.transform_bounds(g.crs.to_wkt(), "EPSG:4326", *g.bounds, densify_pts=21)
        t = g.transform
        layers.append(Layer(key, r.path.stem.upper() + (" (terrain)" if key == "dtm" else " (surface)"),
                            f"{'Bare-earth' if key == 'dtm' else 'Surface'} elevation: {r.vertical}, sampled from "
                            "the published meshes on the plumb line through each cell centre.", (w, s, e, n),
                            [LayerAsset("elevation", f"rasters/{key}.tif", "image/tiff; application=geotiff",
                                        ("data",), r.path.name)],
                            {**projection_of(g.crs), "proj:bbox": list(g.bounds), "proj:shape": [g.rows, g.cols],
                             "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f]},
                            {"gsd": g.cell * g.crs.axis_info[0].unit_conversion_factor, "dmctwin:heights": r.heights,
                             "dmctwin:vertical_reference": r.vertical}))
    if (out / "analysis" / "sunlight" / "tileset.json").is_file():
        files = [LayerAsset("tileset", "analysis/sunlight/tileset.json", "application/json", ("data",),
                            "3D Tiles 1.1 tileset of the receivers")]
        if "gpkg" in sunlight.files:
            files.append(LayerAsset("receivers", "analysis/sunlight/receivers.gpkg",
                                    "application/geopackage+sqlite3", ("data",)))
        sproj: dict[str, Any] = {}
        if "ground" in sunlight.files:
            files.append(LayerAsset("ground", "analysis/sunlight/ground.tif", "image/tiff; application=geotiff",
                                    ("data",)))
            ground = sunlight.ground or {}
            sproj = {"proj:epsg": ground.get("epsg")}
            if not ground.get("epsg"):
                sproj["proj:wkt2"] = ground.get("crs")
        plan = _tileset_extent(out / "analysis" / "sunlight" / "tileset.json", frame).plan
        layers.append(Layer("sunlight", "Sunlight analysis", "Sun hours and verdicts at windows and over open "
                            "ground, with and without the proposals.", plan, files, sproj,
                            {"dmctwin:layer": "analysis"}))
    reports = [LayerAsset("readme", "README.md", "text/markdown", ("overview",), "The bundle's README"),
               LayerAsset("provenance", "provenance.json", "application/json", ("metadata",),
                          "Inputs with sha256, code version, georeferencing accuracy")]
    if (out / "analysis" / "sunlight" / "sunlight.html").is_file():
        reports += [LayerAsset("sunlight_report", "analysis/sunlight/sunlight.html", "text/html", ("overview",)),
                    LayerAsset("sunlight_data", "analysis/sunlight/sunlight.json", "application/json", ("metadata",))]
    layers.append(Layer("reports", "Reports", "What the bundle holds and how it was made.", bbox2, reports))
    return layers


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Assemble the bundle."""
    out = ctx.out_dir
    tile, anchors, georef = ctx.input_dir("tile"), ctx.input_dir("anchors"), ctx.input_dir("georef")
    for item in sorted(tile.iterdir()):
        dst = out / item.name
        if item.is_dir():
            shutil.copytree(item, dst)
        else:
            shutil.copyfile(item, dst)
    shutil.copytree(anchors, out / "anchors")
    sunlight = read_sunlight(ctx.input_dir("analysis"))
    if sunlight.enabled and (out / "analysis" / "sunlight" / "tileset.json").is_file():
        src = ctx.input_dir("analysis") / FOLDER
        for name in ("sunlight.json", "sunlight.html", *sunlight.files.values()):
            if name != "receivers.npz":  # the stage's own arrays; the GeoPackage carries them for GIS
                shutil.copyfile(src / name, out / "analysis" / "sunlight" / name)
    frame = read_frame(georef)
    sf = frame.site
    extent = _tileset_extent(tile / "tileset.json", frame)
    bbox, bbox2 = list(extent.wgs84), extent.plan
    version = cfg.stages.publish.bundle_version
    rasters = _elevation(ctx, cfg, out, frame)
    assets = {
        "tileset": LayerAsset("tileset", "tileset.json", "application/json", ("data",), "Root 3D Tiles 1.1 tileset",
                              {"dmctwin:profile": cfg.stages.tile.profile,
                               "dmctwin:compression": cfg.stages.tile.mesh_compression}),
        "anchors": LayerAsset("anchors", "anchors/anchors.json", "application/json", ("data",), "AR anchors"),
        "anchors_geojson": LayerAsset("anchors_geojson", "anchors/anchors.geojson", "application/geo+json"),
        "anchors_csv": LayerAsset("anchors_csv", "anchors/anchors.csv", "text/csv"),
        "anchors_schema": LayerAsset("anchors_schema", "anchors/anchors.schema.json", "application/schema+json",
                                     ("metadata",)),
        "anchors_summary": LayerAsset("anchors_summary", "anchors/summary.json", "application/json", ("metadata",)),
    }
    for layer, title in LAYER_TITLES.items():
        if (out / layer / "tileset.json").is_file():
            # dmctwin:layer tells viewers what a layer is (shadows, styling); the viewer shows
            # every tileset asset, so an analysis layer added here appears in its toggles
            assets[layer] = LayerAsset(layer, f"{layer}/tileset.json", "application/json", ("data",), title,
                                       {"dmctwin:layer": layer})
    for key, r in rasters.items():
        assets[key] = LayerAsset(key, f"rasters/{key}.tif", "image/tiff; application=geotiff", ("data",),
                                 f"{key.upper()} GeoTIFF ({r.grid.crs.name}; {r.vertical})")
    analysis = (out / "analysis" / "sunlight" / "tileset.json").is_file()
    if analysis:
        rule = sunlight.settings["rule"]
        title = (f"Sunlight {sunlight.settings['date']} ({sunlight.settings['time_basis_name']}): "
                 f"{rule['continuous_min'] / 60:g} h continuous or {rule['total_min'] / 60:g} h total")
        assets["sunlight"] = LayerAsset("sunlight", "analysis/sunlight/tileset.json", "application/json", ("data",),
                                        title, {"dmctwin:layer": "analysis", "dmctwin:analysis": "sunlight"})
        assets["sunlight_report"] = LayerAsset("sunlight_report", "analysis/sunlight/sunlight.html", "text/html",
                                               ("overview",), "Sunlight report")
        assets["sunlight_data"] = LayerAsset("sunlight_data", "analysis/sunlight/sunlight.json", "application/json",
                                             ("metadata",), "Sunlight analysis: settings and results")
        if "gpkg" in sunlight.files:
            assets["sunlight_receivers"] = LayerAsset("sunlight_receivers", "analysis/sunlight/receivers.gpkg",
                                                      "application/geopackage+sqlite3")
        if "ground" in sunlight.files:
            assets["sunlight_ground"] = LayerAsset("sunlight_ground", "analysis/sunlight/ground.tif",
                                                   "image/tiff; application=geotiff")
    viewer_cfg = cfg.stages.publish.viewer
    viewer: dict[str, Any] | None = None
    if viewer_cfg.enabled:
        cesium = find_cesium(cfg.resolve(viewer_cfg.cesium) if viewer_cfg.cesium is not None else None)
        viewer = write_viewer(out, cesium, cfg.resolve(viewer_cfg.imagery) if viewer_cfg.imagery else None, sf)
        (out / "index.html").write_text(INDEX_HTML, encoding="utf-8")
        assets["viewer"] = LayerAsset("viewer", "viewer/index.html", "text/html", ("overview",),
                                      f"Web viewer (CesiumJS {cesium.version}, {cesium.licence})")
    start, end, when_source = _capture_time(cfg)
    provenance: dict[str, Any] = {
        "generator": "dmc-twin", "code_version": __version__, "bundle_version": version,
        "site": {"name": cfg.site.name, "origin": {"lat": sf.lat, "lon": sf.lon, "height": sf.height},
                 "geoid_grid": frame.geoid_grid, "geoid": asdict(frame.geoid), "heights": cfg.site.heights},
        "enu_to_ecef": frame.enu_to_ecef().tolist(),
        "inputs": [{"file": p.name, "sha256": ctx.input_hash(p)} for p in cfg.input_paths()],
        "georef_vertical_rmse_m": read_control(georef).vertical_rmse,
        "captured": {"start": start.isoformat(), "end": end.isoformat(), "source": when_source},
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1, ensure_ascii=False))
    (out / "README.md").write_text(BUNDLE_README.format(
        name=markdown_literal(cfg.site.name), version=version, code_version=__version__,
        viewer=VIEWER_README if viewer else NO_VIEWER_README, analysis=ANALYSIS_README if analysis else "",
        rasters=RASTERS_README if rasters else ""), encoding="utf-8")
    layers = _layers(out, frame, sunlight, rasters, bbox2)
    write_catalog(out, collection_id="sangam-dmc-twin", title=f"{cfg.site.name} digital twin",
                  description="Georeferenced 3D Tiles 1.1 of terrain, buildings and LiDAR, with AR anchors, "
                              "elevation rasters and reports, for the Sangam DMC city twin hub.",
                  version=version, bbox=bbox, start=start, end=end, assets=assets, layers=layers,
                  properties={"dmctwin:captured_from": when_source})
    validation = _validate(out, cfg.stages.publish.validate_bundle,
                           ["tileset.json"] + (["analysis/sunlight/tileset.json"] if analysis else []))
    sums = tree_hashes(out)
    (out / "SHA256SUMS").write_text("".join(f"{h}  {p}\n" for p, h in sums.items()))
    size = int(sum((out / p).stat().st_size for p in sums))
    raster_report = {k: {"file": f"rasters/{k}.tif", "crs": r.grid.crs.name, "shape": [r.grid.rows, r.grid.cols],
                         "cell": r.grid.cell, "heights": r.vertical, "cells_with_data": r.cells_with_data,
                         "min": r.min, "max": r.max} for k, r in rasters.items()}
    return StageResult({"files": len(sums) + 1, "stac_items": len(layers)},
                       {"files": len(sums) + 1, "bbox_wgs84": bbox, "validation": validation, "viewer": viewer,
                        "bytes": size, "version": version, "stac_items": [layer.id for layer in layers],
                        "captured": provenance["captured"], "rasters": raster_report})
