"""The pipeline's YAML config, validated by pydantic.

Every field has a default and a description; unknown keys are errors. Relative paths are resolved
against the folder of the config file, so a config can be run from anywhere.
"""

from __future__ import annotations

import codecs
import hashlib
from datetime import date as date_type
from datetime import datetime as datetime_type
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.core.text import NotText, decode_text
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.core.geodesy import GeoidModel

STAGE_NAMES = ("ingest", "georef", "clean", "mesh", "analysis", "tile", "anchors", "publish")


class _Model(BaseModel):
    # no NaN or infinity anywhere: a .nan height or resolution can only be a mistake
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class Origin(_Model):
    lat: float = Field(37.5770, ge=-90, le=90, description="Site origin latitude, degrees WGS84.")
    lon: float = Field(126.8898, ge=-180, le=180, description="Site origin longitude, degrees WGS84.")
    height: float = Field(
        0.0, ge=-500, le=9000,
        description="Site origin height, metres above the WGS84 ellipsoid (EPSG:4979), on the earth's surface.")


class Site(_Model):
    name: str = Field("Sangam DMC", description="Human-readable site name.")
    origin: Origin = Field(default_factory=Origin, description="Origin of the local ENU frame.")
    crs: str | None = Field(
        None,
        description="CRS for inputs that carry none (e.g. EPSG:5186); unset, such inputs are refused.")
    heights: Literal["orthometric", "ellipsoidal"] = Field(
        "orthometric",
        description="How input heights are referenced when the file does not say: orthometric "
                    "(above mean sea level, converted with the geoid grid) or ellipsoidal.")
    geoid: str = Field(
        "egm96",
        description="Geoid grid: 'egm96' (Debian proj-data egm96_15.gtx) or a path to a grid: GTX, GeoTIFF, "
                    "the Korean national geoid as NGII distributes it (KNGeoid18/24 '.dat', one 'latitude "
                    "longitude N' per line) or a Gravsoft '.gri' (text grids are converted once and cached).")
    geoid_name: str | None = Field(
        None, description="The geoid model's name when the file name does not tell (KNGeoid24.dat, egm96_15.gtx "
                          "name themselves).")
    geoid_accuracy_m: float | None = Field(
        None, gt=0, le=10, description="The geoid model's 1-sigma accuracy in metres; unset: the figure cited for "
                                       "EGM96 and the KNGeoid models, none for other grids.")
    radius_km: float = Field(
        20.0, gt=0, le=1000, description="Inputs must land within this distance of the origin (km).")


class _InputFile(_Model):
    path: Path = Field(description="The input file (relative to the config file).")
    crs: str | None = Field(None, description="Override the CRS read from the file (e.g. EPSG:5186).")
    accept_crs: bool = Field(
        False, description="Accept the CRS even when the data lands outside its area of use or far "
                           "from the site (only for data you have checked).")


class PointCloudInput(_InputFile):
    georeference: Literal["crs", "gcps"] = Field(
        "crs", description="'crs': coordinates are in the file's (or given) CRS. 'gcps': coordinates "
                           "are in a local scanner frame, mapped by the control points' local_x/y/z.")
    align: bool = Field(
        False, description="Fine-align this cloud onto the clouds that are not aligned (ICP).")
    format: Literal["auto", "las", "ply", "text"] = Field(
        "auto", description="las (LAS 1.0-1.4, LAZ, COPC), ply, or text (XYZ/CSV); auto goes by suffix.")
    columns: dict[str, int | str] | None = Field(
        None, description="Text files: field -> column number (from 0) or, with header, column name. "
                          "x, y, z are required; intensity, classification, red, green, blue, "
                          "return_number, number_of_returns are standard; other names are kept as "
                          "extra dimensions.")
    delimiter: str | None = Field(None, description="Text files: column separator (default ',' for .csv, "
                                                    "else whitespace).")
    header: bool = Field(False, description="Text files: the first line names the columns.")


class FootprintFields(_Model):
    """Names of the attributes of the footprint layer that hold each building property."""

    id: str | None = Field("id", description="Stable building id (falls back to the row number).")
    name: str | None = Field("name", description="Building name.")
    use: str | None = Field("use", description="Building use (office, broadcast, ...).")
    floors: str | None = Field("floors", description="Number of floors above ground.")
    height: str | None = Field("height", description="Building height in metres, if surveyed.")
    floors_below: str | None = Field(None, description="Number of floors below ground.")
    approval_date: str | None = Field(None, description="Use approval date (사용승인일; YYYYMMDD or YYYY-MM-DD).")
    proposed: str | None = Field(
        None, description="Attribute marking a design proposal (true/1/yes), judged against what stands: the "
                          "viewer switches it and the sunlight analysis runs with and without it.")
    replaces: str | None = Field(None, description="Attribute naming the id of the building a proposal replaces.")


class _VectorInput(_InputFile):
    encoding: str | None = Field(
        None, description="Text encoding of the attributes (e.g. cp949, euc-kr, utf-8). Unset: the file's own "
                          "(a shapefile's .cpg); a shapefile without one is read as UTF-8 or CP949, whichever "
                          "decodes all of it, with a warning.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown text encoding {value!r}") from None
        return value


#: attribute names of the national layouts ``inputs.footprints.layout`` names
FOOTPRINT_LAYOUTS: dict[str, dict[str, str | None]] = {
    # 도로명주소 전자지도 건물 (TL_SPBD_BULD, juso.go.kr): 건물관리번호, 건물명, 지상/지하 층수,
    # 건물용도코드; it carries no height (heights come from the LiDAR, else the floors)
    "kr-road-address": {"id": "BD_MGT_SN", "name": "BULD_NM", "use": "BDTYP_CD", "floors": "GRO_FLO_CO",
                        "floors_below": "UND_FLO_CO", "height": None},
    # GIS건물통합정보 (AL_D010, VWorld/NSDI): A1 GIS건물통합식별번호, A9 용도명, A13 사용승인일자, A16 높이,
    # A26/A27 지상/지하 층수 (in files since 2023; older national files stop at A22); its building
    # name column is not mapped: set fields.name where a file has one
    "kr-gis-building": {"id": "A1", "name": None, "use": "A9", "floors": "A26", "floors_below": "A27",
                        "height": "A16", "approval_date": "A13"},
}


class FootprintInput(_VectorInput):
    layout: Literal["custom", "kr-road-address", "kr-gis-building"] = Field(
        "custom", description="The layer's attribute layout: 'custom' (``fields`` names them), "
                              "'kr-road-address', the national road-name address building layer (TL_SPBD_BULD: "
                              "BD_MGT_SN id, BULD_NM name, GRO_FLO_CO/UND_FLO_CO floors, BDTYP_CD use code), or "
                              "'kr-gis-building', GIS건물통합정보 (AL_D010: A1 id, A9 use, A13 approval date, A16 "
                              "height, A26/A27 floors); Korean use codes and class names become use categories; "
                              "``fields`` given as well override single names.")
    fields: FootprintFields = Field(default_factory=FootprintFields,
                                    description="Attribute name mapping.")

    @model_validator(mode="before")
    @classmethod
    def _layout_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("layout") in FOOTPRINT_LAYOUTS:
            given = data.get("fields") or {}
            if isinstance(given, BaseModel):  # revalidating a config: its fields already hold the layout's
                given = given.model_dump(exclude_unset=True)
            # a model, not a dict: assigning another field (validate_assignment) runs this again and
            # keeps what it returns for ``fields`` unvalidated
            data = {**data, "fields": FootprintFields(**{**FOOTPRINT_LAYOUTS[data["layout"]], **given})}
        return data


class RasterInput(_InputFile):
    """A GeoTIFF elevation model (orthometric unless site.heights says otherwise)."""


class GCPInput(_InputFile):
    """CSV of surveyed points: id,x,y,z (in ``crs``), optional local_x,local_y,local_z (the same
    point in a local scanner frame), role (control | check) and sigma_h, sigma_v (the survey's
    1-sigma accuracy of that point, metres)."""

    sigma_h: float | None = Field(
        None, gt=0, le=100, description="Horizontal 1-sigma accuracy of the survey (m) for rows without sigma_h; "
                                        "carried into the gcp anchors.")
    sigma_v: float | None = Field(
        None, gt=0, le=100, description="Vertical 1-sigma accuracy of the survey (m) for rows without sigma_v.")


class POIInput(_VectorInput):
    """A point layer of points of interest (attributes ``name``, ``kind``)."""

    entrance_of: str | None = Field(
        None, description="Attribute holding a building id: a point that names a building is that building's "
                          "entrance, and the building's anchor stands on the ground there (not at its visual "
                          "centre); unset, no point is an entrance.")


class MeshInput(_InputFile):
    """A 3D model (OBJ, PLY, glTF/GLB, STL, OFF), e.g. a photogrammetry model of a landmark or a
    design model of a proposed building, placed on the earth by the georeference below."""

    id: str | None = Field(None, description="Feature id in the twin (default: the file name without suffix).")
    name: str | None = Field(None, description="Name shown when the model is picked.")
    use: str | None = Field(None, description="Building use (colours the model in the tiles).")
    origin: tuple[float, float, float] = Field(
        description="Where the model's (0, 0, 0) goes: x, y in ``crs`` (or site.crs) and z, a height "
                    "(orthometric unless the CRS or site.heights says ellipsoidal).")
    heading_deg: float = Field(
        0.0, ge=-360, le=360, description="Degrees clockwise from north that the model's +y axis points to.")
    scale: float = Field(1.0, gt=0, le=1e6, description="Metres per model unit.")
    up_axis: Literal["auto", "z", "y"] = Field(
        "auto", description="The model's up axis: y for glTF/GLB (its specification), z otherwise, "
                            "unless given.")
    replaces: str | None = Field(
        None, description="Id of a footprint whose LoD1/LoD2 solid this model replaces (its attributes stay).")
    proposed: bool = Field(
        False, description="A design proposal, not a built building: it keeps its own id, the building it "
                           "``replaces`` stays in the twin beside it, and viewers switch the two (the viewer's "
                           "proposal toggle; feature property ``proposed``).")


class CityModelFields(_Model):
    """Names of a city model's building attributes holding each property (CityJSON ``attributes``
    keys; CityGML simple properties by local name, ``name`` for gml:name, and generic attributes)."""

    id: str | None = Field(None, description="Attribute holding the building id (unset: the object's own id).")
    name: str | None = Field("name", description="Building name.")
    use: str | None = Field("function", description="Building use (a Korean use code or class name becomes a "
                                                    "use category).")
    floors: str | None = Field("storeysAboveGround", description="Floors above ground.")
    floors_below: str | None = Field("storeysBelowGround", description="Floors below ground.")


class CityModelInput(_InputFile):
    """A city model: CityJSON 1.0-2.0 (``.json``, ``.city.json``, ``.jsonl``) or CityGML 1.0-3.0
    (``.gml``, ``.xml``). Its buildings go to the tiles as modelled, with their roof, wall and
    ground surfaces, instead of being reconstructed; z is orthometric unless its CRS says otherwise."""

    format: Literal["auto", "cityjson", "citygml"] = Field("auto", description="auto goes by suffix.")
    fields: CityModelFields = Field(default_factory=CityModelFields, description="Attribute name mapping.")
    join: str | None = Field(
        None, description="Attribute holding the id of the footprint this building is (e.g. the national "
                          "building id); such pairs are one building whatever their overlap. Buildings are "
                          "matched by overlap (stages.mesh.footprint_match_iou) as well.")


class RegisterFields(_Model):
    """The register's columns holding each value (default: the open API's 표제부 names)."""

    name: str | None = Field("bldNm", description="Building name.")
    height: str | None = Field("heit", description="Height in metres (0 or empty: not known).")
    floors: str | None = Field("grndFlrCnt", description="Floors above ground.")
    floors_below: str | None = Field("ugrndFlrCnt", description="Floors below ground.")
    use: str | None = Field("mainPurpsCd", description="Main use: a use code (e.g. 14000) or its Korean class name.")
    approval_date: str | None = Field("useAprDay", description="Use approval date (사용승인일, YYYYMMDD).")


class RegisterInput(_Model):
    """A building register (건축물대장) export, CSV (UTF-8 or CP949) or JSON, joined to the
    footprints by a key: its values fill in or replace the footprint layer's."""

    path: Path = Field(description="The register export (relative to the config file).")
    key: str = Field("mgmBldrgstPk", description="The register column holding the join key.")
    join: str | None = Field(
        None, description="The footprint attribute holding the same key (e.g. PNU, the parcel number); "
                          "unset: the footprints' id (``fields.id``).")
    fields: RegisterFields = Field(default_factory=RegisterFields, description="Register column names.")


class Inputs(_Model):
    pointclouds: list[PointCloudInput] = Field(default_factory=list, description="Aerial/mobile LiDAR.")
    footprints: FootprintInput | None = Field(None, description="Building footprints.")
    meshes: list[MeshInput] = Field(default_factory=list, description="Imported 3D models.")
    dem: RasterInput | None = Field(None, description="Digital elevation model of the terrain.")
    gcps: GCPInput | None = Field(None, description="Surveyed control / check points.")
    pois: POIInput | None = Field(None, description="Points of interest for AR anchors.")
    building_register: RegisterInput | None = Field(
        None, description="Building register (건축물대장) export joined to the footprints.")
    city_models: list[CityModelInput] = Field(
        default_factory=list, description="City models (CityJSON, CityGML) whose buildings are tiled as modelled.")


class IngestConfig(_Model):
    chunk_size: int = Field(1_000_000, ge=1000, le=50_000_000, description="Points read per chunk.")


class RegistrationConfig(_Model):
    voxel_size: float = Field(0.5, gt=0, description="Downsampling voxel (m) for registration.")
    max_correspondence: float = Field(1.0, gt=0, description="ICP correspondence distance (m).")
    global_search: Literal["auto", "always", "never"] = Field(
        "auto", description="FPFH + RANSAC coarse alignment first: always, never, or when ICP "
                            "from the initial guess fits poorly.")
    min_fitness: float = Field(0.5, ge=0, le=1, description="Refuse a registration below this fitness.")


class GeorefConfig(_Model):
    gcp_ransac_threshold: float = Field(
        0.10, gt=0, description="Control points whose 3D residual (m) exceeds this are blunders.")
    max_gcp_rmse: float = Field(
        0.10, gt=0, description="Refuse a control fit whose horizontal or vertical RMSE (m) exceeds this.")
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig,
                                             description="Scan-to-scan registration (open3d).")
    gcp_search_radius: float = Field(
        1.5, gt=0, description="Radius (m) around a check point whose LiDAR points measure its height.")
    max_vertical_rmse: float = Field(
        0.5, gt=0, description="Stop when the check points' vertical RMSE (m) exceeds this.")
    cell_size: float = Field(
        200.0, ge=10, le=10_000, description="Largest edge (m) of the ENU columns the cloud is binned into: the "
                                  "unit of streaming and parallel work; memory follows the densest cell. "
                                  "Halved (up to 4 times, not under 10 m) until the densest cell holds at most "
                                  "cell_max_points.")
    cell_max_points: int = Field(
        1_000_000, ge=10_000, description="Points the densest cell may hold before cells are made smaller: "
                                          "about 300 bytes a point at the peak of each worker.")


class CleanConfig(_Model):
    enabled: bool = Field(
        True, description="false: points go to the tiles as delivered (classes, noise and all; no "
                          "DTM/DSM), for clouds a survey vendor has already cleaned and classified.")
    remove_duplicates: bool = Field(True, description="Drop points that repeat an earlier point's coordinates.")
    outlier_neighbors: int = Field(10, ge=2, description="Neighbours of the statistical outlier filter and "
                                                         "of the local geometry.")
    outlier_std_ratio: float = Field(
        8.0, gt=0, description="Std-dev multiplier of the outlier filter. Mean neighbour distances of "
                               "aerial LiDAR are heavy-tailed (canopy fringes): on the sample, 3 (PCL's "
                               "habit) drops 5.9 % of the tree points, 8 drops 5 of them and still every stray.")
    cell_buffer: float = Field(
        10.0, gt=0, description="Ring (m) of neighbouring cells read with each cell, so neighbour "
                                "queries near a cell border see what a whole-cloud query would; "
                                "outlier-filter distances are capped at it.")
    voxel_size: float = Field(0.0, ge=0, description="Voxel thinning size in metres (must divide "
                                                     "stages.georef.cell_size); 0 keeps all points.")
    reclassify: bool = Field(
        False, description="Replace classes already in the input; otherwise only points of class 0 "
                           "or 1 (never classified / unclassified) are classified.")
    ground_method: Literal["smrf", "csf"] = Field(
        "smrf", description="Ground filter: simple morphological filter or cloth simulation (CSF).")
    ground_cell: float = Field(
        1.0, ge=0.01, le=1000, description="Cell size (m) of the ground filter's minimum surface.")
    ground_max_window: float = Field(
        80.0, gt=0, description="SMRF's largest opening window (m): wider than the widest building.")
    ground_slope: float = Field(0.3, gt=0, description="Terrain slope tolerated by SMRF (rise/run).")
    csf_cloth_resolution: float = Field(1.0, gt=0, description="CSF cloth grid spacing (m).")
    csf_rigidness: int = Field(3, ge=1, le=3, description="CSF rigidness: 1 steep terrain ... 3 flat.")
    ground_threshold: float = Field(0.4, gt=0, description="Max height (m) above the ground surface for ground points.")
    building_max_roughness: float = Field(
        0.05, gt=0, description="Above 2 m, single echoes whose neighbourhood's surface variation "
                                "(smallest covariance eigenvalue / sum) is at most this are building.")
    dtm_resolution: float = Field(1.0, ge=0.01, le=1000, description="DTM and DSM raster resolution (m).")


class MeshConfig(_Model):
    terrain_resolution: float = Field(
        1.0, ge=0.01, le=1000, description="Post spacing (m) of the terrain heightfield on the ENU grid: the LiDAR "
                               "DTM where it has data, the DEM elsewhere. A DEM without LiDAR keeps its own "
                               "spacing where that is coarser.")
    terrain_max_error: float = Field(
        0.25, gt=0, description="Largest vertical distance (m) of the full-detail terrain TIN from any "
                                "heightfield post.")
    terrain_lods: int = Field(4, ge=1, le=8, description="Terrain levels of detail, the full one included.")
    terrain_block_size: float = Field(
        2000.0, ge=10, le=100_000, description="Edge (m) of the square blocks a larger heightfield is "
                                               "triangulated in, in parallel and in bounded memory; neighbouring "
                                               "blocks share their border vertices, so they meet without a crack.")
    terrain_lod_factor: float = Field(
        4.0, gt=1, description="Each coarser terrain level's error bound is this times the previous one's.")
    terrain_blend: float = Field(
        10.0, ge=0, description="Distance (m) inside the LiDAR DTM's edge over which it is blended into "
                                "the DEM, so the two meet without a step.")
    height_disagreement: float = Field(
        3.0, gt=0, description="Warn when two inputs on the same ground (the LiDAR DTM and the DEM, an "
                               "imported model's base and the terrain) differ in height by more than this "
                               "(m, median over their common ground).")
    roof_percentile: float = Field(
        90.0, gt=50, le=100, description="Percentile of in-footprint points taken as the LoD1 roof height.")
    min_roof_points: int = Field(20, ge=1, description="Fewer LiDAR points than this: fall back to attributes.")
    storey_height: float = Field(3.5, gt=0, le=20, description="Metres per floor when only floors are known.")
    default_height: float = Field(10.0, gt=0, le=1000, description="Height (m) when nothing else is known.")
    min_area: float = Field(
        4.0, ge=0, description="Footprint parts smaller than this (m^2) are slivers: dropped and counted.")
    lod2: bool = Field(True, description="Reconstruct flat, shed, gable and hip roofs (LoD2) from the LiDAR.")
    roof_plane_threshold: float = Field(
        0.15, gt=0, description="Vertical distance (m) within which a roof point belongs to a plane (RANSAC).")
    roof_max_rmse: float = Field(0.2, gt=0, description="A roof model fitting worse than this (m) falls back to LoD1.")
    roof_min_share: float = Field(
        0.85, gt=0, le=1, description="Share of roof points the model must explain, else LoD1.")
    roof_flat_slope: float = Field(5.0, gt=0, lt=45, description="Roof planes flatter than this (degrees) are flat.")
    footprints_from_points: Literal["auto", "always", "never", "merge"] = Field(
        "auto", description="Outline buildings from the building-class points: auto (when no footprints "
                            "are given), always (instead of the given ones), never, or merge (both: one "
                            "footprint per building, matched by overlap, the buildings only the LiDAR has added).")
    footprint_priority: Literal["input", "lidar"] = Field(
        "input", description="merge: whose outline a building matched in both sources takes (it keeps the "
                             "layer's id and attributes either way).")
    city_model_priority: Literal["city_model", "input"] = Field(
        "city_model", description="Whose geometry a building a city model and the footprints (or LiDAR outlines) "
                                  "both hold takes: the city model's solid, or the footprint reconstructed (the "
                                  "other is recorded in the building's footprint_sources). Either way the "
                                  "footprint's id and attributes are kept.")
    footprint_match_iou: float = Field(
        0.5, gt=0, le=1, description="merge: the least intersection over union of two outlines of one building.")
    footprint_cell: float = Field(0.5, ge=0.01, le=100, description="Grid cell (m) footprints are outlined on.")
    footprint_tolerance: float = Field(
        0.75, gt=0, description="Simplification tolerance (m) of outlines before they are squared.")
    lod_ratio: float = Field(
        0.25, gt=0, lt=1, description="Each coarser level of a building or model keeps this share of faces "
                                      "(quadric decimation).")
    lod_levels: int = Field(4, ge=1, le=8, description="Most levels of detail per building or model.")


#: the client profiles: the content encodings each allows, its default first
PROFILES: dict[str, tuple[str, ...]] = {
    "cesium": ("draco", "meshopt", "quantized", "none"),
    # Cesium for Unity drops EXT_meshopt_compression geometry on desktop: Draco instead
    "unity": ("draco", "quantized", "none"),
    # engines with neither decoder: quantized positions and normals, no compression extension
    "portable": ("quantized", "none"),
}


class TileConfig(_Model):
    profile: Literal["cesium", "unity", "portable"] = Field(
        "cesium", description="The clients the tiles are for: cesium (CesiumJS: any encoding), unity (Cesium for "
                              "Unity: no EXT_meshopt_compression) or portable (no compression extension at all).")
    compression: Literal["draco", "meshopt", "quantized", "none"] | None = Field(
        None, description="Terrain and building content: draco (KHR_draco_mesh_compression), meshopt "
                          "(KHR_mesh_quantization + EXT_meshopt_compression; the meshopt extra), "
                          "quantized (KHR_mesh_quantization only) or none (float32); unset: the profile's "
                          "(draco for cesium and unity, quantized for portable).")
    building_tile_size: float = Field(
        1000.0, ge=10, le=100_000, description="Largest edge (m) of a building leaf tile (quadtree over the site).")
    tile_max_features: int = Field(
        500, ge=1, description="Building tiles holding more buildings than this are split further.")
    terrain_tile_size: float = Field(2000.0, ge=10, le=100_000, description="Largest edge (m) of a terrain leaf tile.")
    tileset_max_tiles: int = Field(
        500, ge=5, description="Tiles one tileset JSON holds (about 230 kB at 500) before a mesh layer's deeper "
                               "levels go to external tilesets (<layer>/tilesets/*.json): the root of a city of "
                               "600,000 buildings loads as fast as a district's.")
    tile_max_triangles: int = Field(
        100_000, ge=1000, description="Tiles whose content would hold more triangles than this are split further.")
    hlod_error_fraction: float = Field(
        0.03, gt=0, lt=1, description="A coarser building tile of edge S shows each building at its coarsest "
                                      "level within S x this of the full detail, and leaves out buildings "
                                      "lower than that; its geometricError is the largest deviation it keeps.")
    pointcloud_max_points: int = Field(
        200_000, ge=1000, description="Point-tree nodes with more points than this are split (octree).")
    pointcloud_root_cells: int = Field(
        128, ge=8, le=4096, description="Root sampling grid: cells per edge of the cloud's bounding cube; "
                               "each level halves the spacing.")
    pointcloud_meshopt: bool = Field(
        False, description="Compress point tiles with EXT_meshopt_compression (needs the meshopt "
                           "extra: pip install 'dmc-twin[meshopt]'; CesiumJS decodes it; profile cesium only).")

    @model_validator(mode="after")
    def _fits_the_profile(self) -> TileConfig:
        allowed = PROFILES[self.profile]
        if self.compression is not None and self.compression not in allowed:
            raise ValueError(f"compression {self.compression} is not for profile {self.profile} "
                             f"(it allows {', '.join(allowed)})")
        if self.pointcloud_meshopt and "meshopt" not in allowed:
            raise ValueError(f"pointcloud_meshopt is not for profile {self.profile} (no EXT_meshopt_compression)")
        return self

    @property
    def mesh_compression(self) -> str:
        """The encoding of terrain and building content: ``compression``, else the profile's default."""
        return self.compression or PROFILES[self.profile][0]


class AnalysisConfig(_Model):
    """Sunlight (일조권) analysis: sun hours at every window and over open ground on one day, with and
    without the proposals, judged by the Korean tolerance test."""

    enabled: bool = Field(True, description="Run the sunlight analysis (false: the stage writes an empty result).")
    date: date_type | None = Field(
        None, description="The day analysed (YYYY-MM-DD); default the winter solstice (동지, in KST) of ``year``.")
    year: int = Field(2026, ge=1900, le=2100,
                      description="Year whose winter solstice is analysed when no date is given.")
    time_basis: Literal["true_solar", "kst"] = Field(
        "true_solar", description="Clock the windows are read on: true solar time (진태양시, the sun due south at "
                                  "12:00; in Seoul about 31 min behind KST on the winter solstice), as Korean "
                                  "sunlight assessments count, or Korea Standard Time.")
    step_minutes: float = Field(1.0, gt=0, le=30, description="Time step (minutes); must divide an hour.")
    continuous_hours: float = Field(2.0, gt=0, description="Continuous sun required within the continuous window.")
    continuous_window: tuple[float, float] = Field((9.0, 15.0),
                                                   description="Hours [start, end) of the continuous test.")
    total_hours: float = Field(4.0, gt=0, description="Total sun required within the total window.")
    total_window: tuple[float, float] = Field((8.0, 16.0), description="Hours [start, end) of the total test.")
    facade_spacing: float = Field(2.0, ge=0.25, description="Receivers every this many metres along each wall.")
    window_height: float = Field(1.5, gt=0, description="Receiver height above each storey's floor (m).")
    storey_height: float = Field(
        3.5, ge=2.0, description="Storey height (m) for buildings whose floors are not known (as the mesh "
                                 "stage assumes); with floors, "
                                 "the wall height divided by the floors.")
    offset: float = Field(0.05, gt=0, le=1, description="Receivers stand this far (m) out from their surface.")
    ground: bool = Field(True, description="Also a grid of receivers over open ground.")
    ground_spacing: float = Field(2.0, ge=0.25, description="Ground grid spacing (m, in the output CRS).")
    ground_margin: float = Field(
        50.0, ge=0, description="The ground grid covers open ground within this distance (m) of a building.")
    block_rays: int = Field(
        4_000_000, ge=10_000, description="Rays per block of receivers: memory follows this (24 bytes a ray).")

    @field_validator("step_minutes")
    @classmethod
    def _divides_hour(cls, v: float) -> float:
        if abs(60.0 / v - round(60.0 / v)) > 1e-9:
            raise ValueError("must divide an hour (1, 2, 5, 10, 15, 30 ...)")
        return v

    @field_validator("continuous_window", "total_window")
    @classmethod
    def _window(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] < v[1] <= 24:
            raise ValueError("must be [start, end) hours with 0 <= start < end <= 24")
        return v


class AnchorsConfig(_Model):
    include_buildings: bool = Field(True, description="One anchor per building, on the ground at its footprint's "
                                                      "visual centre.")
    include_rooftops: bool = Field(True, description="One anchor per building on its roof mesh, above the "
                                                     "visual centre.")
    include_pois: bool = Field(True, description="One terrain anchor per point of interest, on the terrain mesh.")
    include_gcps: bool = Field(True, description="One anchor per surveyed point, with its survey accuracy.")
    include_models: bool = Field(True, description="One anchor per imported model, at its placement origin.")
    rooftop_offset_m: float = Field(0.0, ge=0, le=500, description="Rooftop anchors stand this far above the roof (m).")
    terrain_offset_m: float = Field(0.0, ge=0, le=500,
                                    description="POI anchors stand this far above the terrain (m).")
    inputs_horizontal_accuracy_m: float | None = Field(
        None, gt=0, le=100,
        description="Horizontal 1-sigma accuracy (m) of inputs referenced by their own CRS (a footprint layer, a "
                    "LiDAR survey), when known; unset, anchors say that part is not stated.")


class ViewerConfig(_Model):
    """The planners' web viewer written into ``bundle/viewer/`` with the CesiumJS files it loads."""

    enabled: bool = Field(True, description="Write the viewer (about 8 MB, most of it CesiumJS).")
    cesium: Path | None = Field(
        None, description="The CesiumJS npm package to copy from (a folder ``node_modules/cesium``); default: "
                          "$DMCTWIN_CESIUM, else node_modules/cesium in the working directory or the checkout.")
    imagery: Path | None = Field(
        None, description="A georeferenced image (GeoTIFF, or any raster with a CRS) draped on the globe "
                          "under the twin, e.g. an orthophoto; reprojected to WGS84 and shipped as PNG. "
                          "Default: a plainly coloured globe, nothing from the network.")


class ElevationConfig(_Model):
    """The DTM and DSM GeoTIFFs of the bundle (``rasters/``), sampled from the published meshes."""

    enabled: bool = Field(True, description="Write rasters/dtm.tif (terrain) and rasters/dsm.tif (terrain and "
                                            "existing buildings; proposals left out) into the bundle.")
    resolution_m: float = Field(1.0, gt=0, le=100, description="Cell size in metres (in the raster CRS's unit: a "
                                                               "CRS in US feet gets cells of as many feet).")
    heights: Literal["orthometric", "ellipsoidal"] = Field(
        "orthometric", description="Cell values: metres above the site's geoid model, or above the WGS84 ellipsoid.")


class PublishConfig(_Model):
    bundle_version: str = Field(
        "0.1.0", pattern=r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$",
        description="The bundle's version: its folder under <workdir>/bundles/ (the previous versions stay there; "
                    "<workdir>/bundle points at the newest) and the catalog's version.")
    datetime: datetime_type | None = Field(
        None, description="When the data were captured (ISO 8601, UTC when no zone is given), for the STAC "
                          "catalog; default the LAS/LAZ headers' creation dates, else the time of publishing.")
    elevation: ElevationConfig = Field(default_factory=ElevationConfig, description="DTM and DSM GeoTIFFs.")
    viewer: ViewerConfig = Field(default_factory=ViewerConfig, description="The bundle's web viewer.")
    validate_bundle: bool = Field(
        True, description="Check the bundle (3D Tiles specification, Khronos glTF validator) before it "
                          "replaces the published one; an invalid bundle is not published.")


class Stages(_Model):
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    georef: GeorefConfig = Field(default_factory=GeorefConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    tile: TileConfig = Field(default_factory=TileConfig)
    anchors: AnchorsConfig = Field(default_factory=AnchorsConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)


class ExecutorConfig(_Model):
    kind: Literal["local", "inline", "dask"] = Field(
        "local", description="local processes, inline (one process, for debugging) or a Dask cluster.")
    workers: int = Field(2, ge=1, le=512, description="Worker processes for kind=local.")
    scheduler: str | None = Field(None, description="Dask scheduler address (tcp://host:8786) for kind=dask.")


class TwinConfig(_Model):
    site: Site = Field(default_factory=Site)
    inputs: Inputs = Field(default_factory=Inputs)
    stages: Stages = Field(default_factory=Stages)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    workdir: Path | None = Field(None, description="Work directory (default out/<config name>).")

    #: folder the config was read from; relative paths are resolved against it
    base_dir: Path = Field(default=Path("."), exclude=True)
    #: the config file itself (None for a config built in code)
    source: Path | None = Field(default=None, exclude=True)

    def resolve(self, path: Path) -> Path:
        """Absolute path of an input named in this config."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def geoid_spec(self) -> str:
        """``site.geoid`` for :meth:`GeoidModel.from_spec`: 'egm96', or the grid's absolute path."""
        return "egm96" if self.site.geoid.lower() == "egm96" else str(self.resolve(Path(self.site.geoid)))

    def geoid_model(self) -> GeoidModel:
        """The :class:`~pipeline.core.geodesy.GeoidModel` this config names, with its name and accuracy."""
        from pipeline.core.geodesy import GeoidModel

        return GeoidModel.from_spec(self.geoid_spec(), name=self.site.geoid_name,
                                    accuracy_m=self.site.geoid_accuracy_m)

    def declared_crs(self, item: _InputFile, key: str, what: str) -> str:
        """The CRS of an input that carries none of its own (a CSV, a model's origin): its
        ``crs``, else ``site.crs``; ConfigError naming the config and ``key`` when neither is set."""
        text = item.crs or self.site.crs
        if not text:
            raise ConfigError(f"{key}: {what} carries no CRS: set {key}.crs (or site.crs)", path=self.source)
        return text

    def input_paths(self) -> list[Path]:
        """Absolute paths of every input file this config names (geoid grid included)."""
        paths = [self.resolve(pc.path) for pc in self.inputs.pointclouds]
        paths += [self.resolve(m.path) for m in self.inputs.meshes]
        paths += [self.resolve(c.path) for c in self.inputs.city_models]
        for item in (self.inputs.footprints, self.inputs.dem, self.inputs.gcps, self.inputs.pois,
                     self.inputs.building_register):
            if item is not None:
                paths.append(self.resolve(item.path))
        if self.geoid_spec() != "egm96":
            paths.append(Path(self.geoid_spec()))
        viewer = self.stages.publish.viewer
        if viewer.enabled and viewer.imagery is not None:
            paths.append(self.resolve(viewer.imagery))
        return paths

    def stage_hash(self, stage: str, *, with_inputs: bool = False) -> str:
        """sha256 of everything in the config that affects ``stage``'s outputs (the inputs
        section too for a stage that reads the input files)."""
        relevant: dict[str, Any] = {
            "site": self.site.model_dump(mode="json"),
            "stage": getattr(self.stages, stage).model_dump(mode="json"),
        }
        if with_inputs:
            # resolved paths: the same file named relative to another config is the same input
            inputs = self.inputs.model_copy(deep=True)
            for item in [*inputs.pointclouds, *inputs.meshes, *inputs.city_models, inputs.footprints, inputs.dem,
                         inputs.gcps,
                         inputs.pois, inputs.building_register]:
                if item is not None:
                    item.path = self.resolve(item.path)
            relevant["inputs"] = inputs.model_dump(mode="json")
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first at line {first[key]})", key_node.start_mark)
            first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


# dates stay text for pydantic to check and name: YAML's own date constructor raises a bare
# ValueError on a date such as 2026-13-40
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _read_config_text(path: Path) -> str:
    try:
        return decode_text(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError("config file not found", path=path) from None
    except IsADirectoryError:
        raise ConfigError("config file is a directory", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", path=path) from None
    except NotText as exc:
        raise ConfigError(f"config file: {exc}", path=path) from None


def load_config(path: str | Path) -> TwinConfig:
    """Read and validate a YAML config; raise :class:`ConfigError` naming the file and key path."""
    path = Path(path)
    text = _read_config_text(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", path=path) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping of sections (site, inputs, stages, ...)", path=path)
    try:
        cfg = TwinConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigError(f"{_format_loc(tuple(err['loc']))}: {msg}{more}", path=path) from None
    cfg.base_dir = path.resolve().parent
    cfg.source = path
    return cfg


def config_to_yaml(cfg: TwinConfig) -> str:
    """The config with every default filled in, as YAML."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
