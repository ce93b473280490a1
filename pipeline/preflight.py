"""Checks of a config that need no data: run by ``dmctwin config validate`` and by the runner
before the first stage, so a config that cannot run fails in a second with one line naming the
file and the key, not minutes later in a stage.

What is checked: there is something to build a twin from; every input file exists, is a
readable, non-empty file of a recognised format (by its first bytes where the format has a
signature); every CRS named resolves; the geoid grid exists; options agree with each other; the
extras the config asks for are installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pipeline.config import TwinConfig
from pipeline.core.citymodel import CITYGML_SUFFIXES, CITYJSON_SUFFIXES
from pipeline.core.geodesy import parse_crs, resolve_geoid
from pipeline.core.meshimport import MESH_SUFFIXES
from pipeline.core.pointio import point_format_of
from pipeline.core.viewer import find_cesium
from pipeline.errors import ConfigError, TwinError

VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb", ".gml", ".kml", ".zip")
RASTER_SUFFIXES = (".tif", ".tiff", ".gtiff", ".vrt", ".img", ".asc")
#: leading bytes of the point-cloud formats we read
_POINT_MAGIC = {"las": (b"LASF",), "ply": (b"ply",)}


def _head(path: Path, key: str, n: int = 512) -> bytes:
    if not path.exists():
        raise ConfigError(f"{key}: input file not found", path=path)
    if not path.is_file():
        raise ConfigError(f"{key}: not a file", path=path)
    try:
        with open(path, "rb") as f:
            head = f.read(n)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read the file ({exc.strerror})", path=path) from None
    if not head:
        raise ConfigError(f"{key}: the file is empty", path=path)
    return head


def _input_file(cfg: TwinConfig, item: Any, key: str, config_path: Path,
                suffixes: tuple[str, ...] | None = None, problem: str = "unexpected file type"
                ) -> tuple[Path, bytes]:
    """(resolved path, first bytes) of one input after checking its ``crs``, that it can be read
    and, given ``suffixes``, that its suffix is one of them."""
    _crs(item.crs, f"{key}.crs", config_path)
    path = cfg.resolve(item.path)
    head = _head(path, f"{key}.path")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{key}.path: {problem} {path.suffix or '(no suffix)'!r} "
                          f"(expected {', '.join(suffixes)})", path=path)
    return path, head


def _pointcloud(path: Path, head: bytes, key: str, declared: str) -> None:
    try:
        fmt = point_format_of(path, declared)
    except TwinError:
        raise ConfigError(f"{key}: not a point cloud format we read (LAS/LAZ/COPC, PLY, XYZ/CSV/TXT); "
                          "set format: if the suffix misleads", path=path) from None
    magic = _POINT_MAGIC.get(fmt)
    if magic and not head.startswith(magic):
        raise ConfigError(f"{key}: not a {fmt.upper()} file (it does not start with {magic[0].decode()!r})",
                          path=path)
    if fmt == "text" and b"\0" in head:
        raise ConfigError(f"{key}: a text point cloud holds binary data", path=path)


def _crs(text: str | None, key: str, path: Path | None) -> None:
    if text:
        try:
            parse_crs(text)
        except TwinError:
            raise ConfigError(f"{key}: unknown or invalid CRS {text!r}", path=path) from None


def check_runnable(cfg: TwinConfig, config_path: Path) -> None:
    """ConfigError naming the config file (or the input file) and the key of the first problem
    that would stop a run of ``cfg``."""
    inp = cfg.inputs
    if not (inp.pointclouds or inp.footprints or inp.dem or inp.meshes or inp.city_models):
        raise ConfigError("inputs: nothing to build a twin from: give a point cloud, footprints, a DEM, a "
                          "model or a city model (gcps and pois alone make no twin)", path=config_path)
    _crs(cfg.site.crs, "site.crs", config_path)
    for i, pc in enumerate(inp.pointclouds):
        key = f"inputs.pointclouds[{i}]"
        _pointcloud(*_input_file(cfg, pc, key, config_path), f"{key}.path", pc.format)
        if pc.georeference == "gcps" and inp.gcps is None:
            raise ConfigError(f"{key}.georeference: gcps needs inputs.gcps (a CSV with local_x,local_y,local_z)",
                              path=config_path)
    for name, suffixes in (("footprints", VECTOR_SUFFIXES), ("dem", RASTER_SUFFIXES), ("gcps", (".csv", ".txt")),
                           ("pois", VECTOR_SUFFIXES)):
        item = getattr(inp, name)
        if item is not None:
            _input_file(cfg, item, f"inputs.{name}", config_path, suffixes)
    register = inp.building_register
    if register is not None:
        if inp.footprints is None:
            raise ConfigError("inputs.building_register: a building register joins to footprints: give "
                              "inputs.footprints", path=config_path)
        _input_file(cfg, SimpleNamespace(path=register.path, crs=None), "inputs.building_register", config_path,
                    (".csv", ".txt", ".json"))
    for i, m in enumerate(inp.meshes):
        _input_file(cfg, m, f"inputs.meshes[{i}]", config_path, MESH_SUFFIXES, "unsupported model format")
        cfg.declared_crs(m, f"inputs.meshes[{i}]", "a model's origin")
    for i, city in enumerate(inp.city_models):
        _input_file(cfg, city, f"inputs.city_models[{i}]", config_path, CITYJSON_SUFFIXES + CITYGML_SUFFIXES
                    if city.format == "auto" else None, "unknown city model format (set format if the suffix misleads)")
    if inp.gcps is not None:
        cfg.declared_crs(inp.gcps, "inputs.gcps", "a GCP CSV")
    viewer = cfg.stages.publish.viewer
    if viewer.enabled:
        # before hours of work, not at publish: the bundle's viewer cannot be written without it
        find_cesium(cfg.resolve(viewer.cesium) if viewer.cesium is not None else None)
        if viewer.imagery is not None:
            _input_file(cfg, SimpleNamespace(path=viewer.imagery, crs=None), "stages.publish.viewer.imagery",
                        config_path, RASTER_SUFFIXES + (".png", ".jpg", ".jpeg"))
    try:
        resolve_geoid(cfg.geoid_spec())
    except TwinError as exc:
        raise ConfigError(f"site.geoid: {exc.message}", path=exc.path) from None
    c = cfg.stages.clean
    if c.cell_buffer > cfg.stages.georef.cell_size:
        raise ConfigError(f"stages.clean.cell_buffer {c.cell_buffer} m exceeds stages.georef.cell_size "
                          f"{cfg.stages.georef.cell_size} m: a cell's ring would reach past its neighbours",
                          path=config_path)
    if c.voxel_size > 0:
        ratio = cfg.stages.georef.cell_size / c.voxel_size
        if abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError(f"stages.clean.voxel_size {c.voxel_size} m must divide stages.georef.cell_size "
                              f"{cfg.stages.georef.cell_size} m, so that no voxel straddles two cells",
                              path=config_path)
    t = cfg.stages.tile
    if (t.mesh_compression == "meshopt" or t.pointcloud_meshopt) and importlib.util.find_spec("meshoptimizer") is None:
        raise ConfigError("stages.tile: meshopt compression needs the meshopt extra: pip install "
                          "'dmc-twin[meshopt]' (or use compression: draco)", path=config_path)
    if cfg.executor.kind == "dask" and importlib.util.find_spec("distributed") is None:
        raise ConfigError("executor.kind: dask needs the dask extra: pip install 'dmc-twin[dask]'", path=config_path)
