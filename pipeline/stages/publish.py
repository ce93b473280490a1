"""publish: the versioned hub bundle (``<workdir>/bundle``) that viewers and AR apps consume.

Layout: ``tileset.json`` + ``terrain/ buildings/ pointcloud/`` (3D Tiles 1.1), ``anchors/``,
``catalog.json`` (a STAC Collection), ``provenance.json`` (inputs with sha256, code version,
georef accuracy), ``README.md`` and ``SHA256SUMS`` over every other file.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.config import TwinConfig
from pipeline.core.atomic import tree_hashes
from pipeline.core.tiles import box_corners
from pipeline import artifacts
from pipeline.artifacts.control import read_control
from pipeline.artifacts.frame import read_frame
from pipeline.artifacts.sunlight import FOLDER, read_sunlight
from pipeline.core import gltf_validator
from pipeline.core.tileset_check import validate_tileset
from pipeline.core.viewer import find_cesium, write_viewer
from pipeline.core.text import markdown_literal
from pipeline.errors import StageError, ValidationWarning
from pipeline.stage import StageContext, StageResult, StageSpec

SPEC = StageSpec("publish", reads=(artifacts.FRAME, artifacts.CONTROL, artifacts.TILESET, artifacts.FEATURE_INDEX,
                                   artifacts.ANCHORS, artifacts.SUNLIGHT),
                 # provenance.json names every input file with its sha256
                 reads_inputs=True, output="bundle")

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
| `anchors/anchors.schema.json` | JSON Schema of anchors.json |{analysis}
| `catalog.json` | STAC Collection describing the bundle |
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
    root = json.loads((tile / "tileset.json").read_text())["root"]
    ecef = box_corners(root["boundingVolume"]["box"])
    lon, lat, h = sf.enu_to_geodetic(sf.ecef_to_enu(ecef))
    bbox = [float(lon.min()), float(lat.min()), float(h.min()), float(lon.max()), float(lat.max()),
            float(h.max())]
    version = cfg.stages.publish.bundle_version
    assets = {
        "tileset": {"href": "tileset.json", "type": "application/json", "roles": ["data"],
                    "title": "Root 3D Tiles 1.1 tileset", "dmctwin:profile": cfg.stages.tile.profile,
                    "dmctwin:compression": cfg.stages.tile.mesh_compression},
        "anchors": {"href": "anchors/anchors.json", "type": "application/json", "roles": ["data"],
                    "title": "AR anchors"},
        "anchors_geojson": {"href": "anchors/anchors.geojson", "type": "application/geo+json",
                            "roles": ["data"]},
        "anchors_csv": {"href": "anchors/anchors.csv", "type": "text/csv", "roles": ["data"]},
        "anchors_schema": {"href": "anchors/anchors.schema.json", "type": "application/schema+json",
                           "roles": ["metadata"]},
        "provenance": {"href": "provenance.json", "type": "application/json", "roles": ["metadata"]},
    }
    for layer, title in LAYER_TITLES.items():
        if (out / layer / "tileset.json").is_file():
            # dmctwin:layer tells viewers what a layer is (shadows, styling); the viewer shows
            # every tileset asset, so an analysis layer added here appears in its toggles
            assets[layer] = {"href": f"{layer}/tileset.json", "type": "application/json",
                             "roles": ["data"], "title": title, "dmctwin:layer": layer}
    analysis = (out / "analysis" / "sunlight" / "tileset.json").is_file()
    if analysis:
        rule = sunlight.settings["rule"]
        title = (f"Sunlight {sunlight.settings['date']} ({sunlight.settings['time_basis_name']}): "
                 f"{rule['continuous_min'] / 60:g} h continuous or {rule['total_min'] / 60:g} h total")
        assets["sunlight"] = {"href": "analysis/sunlight/tileset.json", "type": "application/json",
                                       "roles": ["data"], "title": title, "dmctwin:layer": "analysis",
                                       "dmctwin:analysis": "sunlight"}
        assets["sunlight_report"] = {"href": "analysis/sunlight/sunlight.html", "type": "text/html",
                                     "roles": ["overview"], "title": "Sunlight report"}
        assets["sunlight_data"] = {"href": "analysis/sunlight/sunlight.json", "type": "application/json",
                                   "roles": ["metadata"], "title": "Sunlight analysis: settings and results"}
        if "gpkg" in sunlight.files:
            assets["sunlight_receivers"] = {"href": "analysis/sunlight/receivers.gpkg",
                                            "type": "application/geopackage+sqlite3", "roles": ["data"]}
        if "ground" in sunlight.files:
            assets["sunlight_ground"] = {"href": "analysis/sunlight/ground.tif",
                                         "type": "image/tiff; application=geotiff", "roles": ["data"]}
    viewer_cfg = cfg.stages.publish.viewer
    viewer: dict[str, Any] | None = None
    if viewer_cfg.enabled:
        cesium = find_cesium(cfg.resolve(viewer_cfg.cesium) if viewer_cfg.cesium is not None else None)
        viewer = write_viewer(out, cesium, cfg.resolve(viewer_cfg.imagery) if viewer_cfg.imagery else None, sf)
        (out / "index.html").write_text(INDEX_HTML, encoding="utf-8")
        assets["viewer"] = {"href": "viewer/index.html", "type": "text/html", "roles": ["overview"],
                            "title": f"Web viewer (CesiumJS {cesium.version}, {cesium.licence})"}
    catalog = {"type": "Collection", "stac_version": "1.0.0", "id": "sangam-dmc-twin",
               "title": f"{cfg.site.name} digital twin", "version": version,
               "description": "Georeferenced 3D Tiles 1.1 of terrain, buildings and LiDAR, with AR "
                              "anchors, for the Sangam DMC city twin hub.",
               "license": "other", "links": [],
               "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[None, None]]}},
               "assets": assets}
    (out / "catalog.json").write_text(json.dumps(catalog, indent=1, ensure_ascii=False))
    provenance: dict[str, Any] = {
        "generator": "dmc-twin", "code_version": __version__, "bundle_version": version,
        "site": {"name": cfg.site.name, "origin": {"lat": sf.lat, "lon": sf.lon, "height": sf.height},
                 "geoid_grid": frame.geoid_grid, "geoid": asdict(frame.geoid), "heights": cfg.site.heights},
        "enu_to_ecef": frame.enu_to_ecef().tolist(),
        "inputs": [{"file": p.name, "sha256": ctx.input_hash(p)} for p in cfg.input_paths()],
        "georef_vertical_rmse_m": read_control(georef).vertical_rmse,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1, ensure_ascii=False))
    (out / "README.md").write_text(BUNDLE_README.format(
        name=markdown_literal(cfg.site.name), version=version, code_version=__version__,
        viewer=VIEWER_README if viewer else NO_VIEWER_README, analysis=ANALYSIS_README if analysis else ""),
        encoding="utf-8")
    validation = _validate(out, cfg.stages.publish.validate_bundle,
                           ["tileset.json"] + (["analysis/sunlight/tileset.json"] if analysis else []))
    sums = tree_hashes(out)
    (out / "SHA256SUMS").write_text("".join(f"{h}  {p}\n" for p, h in sums.items()))
    size = int(sum((out / p).stat().st_size for p in sums))
    return StageResult({"files": len(sums) + 1}, {"files": len(sums) + 1, "bbox_wgs84": bbox, "validation": validation,
                                                   "viewer": viewer, "bytes": size})
