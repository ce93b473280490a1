"""The typed contract between stages.

Every artifact a stage hands another has one record type and one reader/writer pair, in one
module here; the writer always writes, so an empty layer (no buildings, no terrain, no control
points) is a file that says so, never a file that is missing. Stages declare what they read and
write with the :class:`~pipeline.artifacts.base.Artifact` constants below; the runner learns a
stage's upstream stages from those declarations.

Frames and units are stated per record: ENU metres at the site origin, WGS84 degrees,
ellipsoidal (EPSG:4979) or orthometric heights as each field's docstring says.
"""

from __future__ import annotations

from pipeline.artifacts.base import Artifact

# ingest: inputs checked and normalised, still in each input's own CRS
SOURCE_POINTS = Artifact("ingest", "points", "point clouds in chunks, source CRS")
SOURCE_FOOTPRINTS = Artifact("ingest", "footprints.jsonl", "repaired footprints, source CRS")
SOURCE_MODELS = Artifact("ingest", "meshes", "repaired imported models in their own frame")
SOURCE_CITY = Artifact("ingest", "city_models.json", "city model buildings (triangles, surface kinds), source CRS",
                       also=("city_models.npz",))
SOURCE_DEM = Artifact("ingest", "dem.json", "the DEM (dem.tif) and its CRS", also=("dem.tif",))
SOURCE_GCPS = Artifact("ingest", "gcps.json", "surveyed points, source CRS")
SOURCE_POIS = Artifact("ingest", "pois.json", "points of interest, source CRS")
# georef: everything in the site's ENU frame
FRAME = Artifact("georef", "frame.json", "the site's ENU frame and geoid")
ENU_POINTS = Artifact("georef", "points", "the merged cloud binned by ENU cell")
ENU_FOOTPRINTS = Artifact("georef", "footprints.jsonl", "footprints in plan ENU, one per line")
ENU_MODELS = Artifact("georef", "meshes", "imported models placed in ENU")
ENU_CITY = Artifact("georef", "city_models.json", "city model buildings in ENU", also=("city_models.npz",))
ENU_DEM = Artifact("georef", "dem_enu.npy", "ENU of every DEM pixel centre")
CONTROL = Artifact("georef", "gcps.json", "surveyed points in ENU and the georef accuracy")
ENU_POIS = Artifact("georef", "pois.json", "points of interest in WGS84 and plan ENU")
# clean
CLEAN_POINTS = Artifact("clean", "points", "denoised, classified cloud binned by ENU cell")
DTM = Artifact("clean", "dtm.tif", "LiDAR ground model (ENU U)")
# mesh
TERRAIN = Artifact("mesh", "terrain/terrain.json", "terrain heightfield and TIN levels", also=("terrain",))
BUILDINGS = Artifact("mesh", "buildings.json", "building records and their levels of detail",
                     also=("buildings.jsonl", "buildings.npz"))
# analysis
SUNLIGHT = Artifact("analysis", "sunlight/sunlight.json",
                    "sun hours per receiver with and without the proposals, report and GIS files", also=("sunlight",))
# tile
TILESET = Artifact("tile", "tileset.json", "root 3D Tiles 1.1 tileset and its layers",
                   also=("terrain", "buildings", "pointcloud", "analysis"))
FEATURE_INDEX = Artifact("tile", "buildings/features.json", "building id -> leaf tile and feature ID")
# anchors
ANCHORS = Artifact("anchors", "anchors.json", "AR anchors, their GeoJSON, CSV, schema and summary",
                   also=("anchors.geojson", "anchors.csv", "anchors.schema.json", "summary.json"))

__all__ = ["Artifact"]
