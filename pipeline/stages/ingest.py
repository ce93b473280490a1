"""ingest: read every declared input, check it, and store it normalised with its CRS.

Outputs (coordinates still in each input's own CRS; records in :mod:`pipeline.artifacts`, an
input that was not given written as an empty layer):
``points/<n>_<stem>/chunk_*.npy`` + ``meta.json`` per point cloud (``meta.json`` alone for an
uncompressed LAS file, checked here and read in place by georef); ``footprints.json`` (repaired
footprints; skipped and repaired ones listed with the reason); ``meshes/<n>_<stem>.npz`` + ``.json``
per imported model (repaired, in the model's own frame, with its placement); ``dem.tif`` +
``dem.json``; ``gcps.json``; ``pois.json``.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely
from shapely.geometry import MultiPolygon

from pipeline.core.atomic import file_stamp, replacing
from pipeline.config import (CityModelInput, FootprintInput, GCPInput, PointCloudInput, POIInput, RasterInput,
                             RegisterInput, TwinConfig)
from pipeline.core.arrayops import field_bounds
from pipeline.core.building_use import use_category
from pipeline.core.cells import dtype_to_json
from pipeline.core.citymodel import read_city_model
from pipeline.core.footprints import MAX_FLOORS, MAX_HEIGHT_M, attribute_number, position_id
from pipeline.core.footprints import repair as repair_footprint
from pipeline.core.geodesy import horizontal_unit_factor, parse_crs, sidecar_crs, vertical_unit_factor
from pipeline.core.meshimport import MAX_MODEL_REACH_M, model_reach, read_mesh, repair_mesh
from pipeline.core.pointio import (POINT_DTYPE, ChunkStore, is_copc, iter_las_chunks, iter_las_range,
                                   iter_ply_chunks, iter_text_chunks, las_checked_count, las_extra_dims,
                                   las_in_place, las_range_stats, las_seekable, point_format_of, point_ranges,
                                   read_las_crs, record_dtype)
from pipeline.core.raster import read_elevation
from pipeline.core.register import read_register
from pipeline.core.text import NotText, decode_text, ymd_date
from pipeline.core.vector import FeatureSet, read_features
from pipeline.errors import (ConfigError, CRSError, CRSOverrideWarning, FeatureRepairedWarning, FeatureSkippedWarning,
                             InputError, UnreadableCRSError)
from pipeline import artifacts
from pipeline.artifacts.citymodels import (CityBuilding, CityMesh, CityModelLayer, CitySource,
                                           write_source_city_models)
from pipeline.artifacts.clouds import SourceCloud, cloud_store, write_source_cloud
from pipeline.artifacts.control import GcpRow, SourceGcps, write_source_gcps
from pipeline.artifacts.dem import SourceDem, write_source_dem
from pipeline.artifacts.footprints import SourceFootprint, SourceFootprints, write_source_footprints
from pipeline.artifacts.models import SourceModel, write_model
from pipeline.artifacts.pois import SourcePoi, SourcePois, write_source_pois
from pipeline.stage import StageContext, StageResult, StageSpec

#: the fields every point record has; the others are a file's extra dimensions
STANDARD_FIELDS = {name for name, _ in dtype_to_json(POINT_DTYPE)}

SPEC = StageSpec("ingest", writes=(artifacts.SOURCE_POINTS, artifacts.SOURCE_FOOTPRINTS, artifacts.SOURCE_MODELS,
                                   artifacts.SOURCE_CITY,
                                   artifacts.SOURCE_DEM, artifacts.SOURCE_GCPS, artifacts.SOURCE_POIS),
                 reads_inputs=True)


def ingest_las_range(path: str, start: int, count: int, dst: str) -> dict[str, Any]:
    """Executor task: read one range of a LAS/LAZ file, check it and store it as a chunk, piece
    by piece (the ``.npy`` header first: the range's count is known), summing up each piece."""
    dtype = record_dtype(las_extra_dims(Path(path)))
    with replacing(dst) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                 "fortran_order": False, "shape": (count,)})

        def written() -> Iterator[dict[str, Any]]:
            for rec in iter_las_range(path, start, count):
                f.write(rec.data.cast("B"))
                yield _chunk_stats(rec)

        return _summed(written(), _extra_fields(dtype))


def _extra_fields(dtype: np.dtype) -> list[list[str]]:
    """A point record's extra dimensions ([name, numpy type]): its fields beyond the standard ones."""
    return [f for f in dtype_to_json(dtype) if f[0] not in STANDARD_FIELDS]


def _chunk_stats(rec: np.ndarray) -> dict[str, Any]:
    lo, hi = field_bounds(rec)
    return {"count": len(rec), "lo": lo, "hi": hi, "classes": np.bincount(rec["classification"], minlength=256),
            "extra": _extra_fields(rec.dtype)}


def _summed(parts: Iterable[dict[str, Any]], extra: list[list[str]] | None = None) -> dict[str, Any]:
    """The summary of points summed up in ``parts`` (:func:`_chunk_stats`'s): their count, bounds,
    class histogram and the last part's extra dimensions (``extra`` when there is no part)."""
    total: dict[str, Any] = {"count": 0, "lo": np.full(3, np.inf), "hi": np.full(3, -np.inf),
                             "classes": np.zeros(256, np.int64), "extra": extra or []}
    for st in parts:
        total["lo"], total["hi"] = np.minimum(total["lo"], st["lo"]), np.maximum(total["hi"], st["hi"])
        total["classes"] += st["classes"]
        total["count"] += st["count"]
        total["extra"] = st["extra"]
    return total


def _las_in_place(ctx: StageContext, path: Path, chunk_size: int) -> Iterator[dict[str, Any]]:
    """Check an uncompressed LAS file range by range in the executor's workers and sum each range
    up as :func:`_chunk_stats` does a stored chunk, from the stored integers (nothing decoded);
    georef reads its points where they lie."""
    ranges = point_ranges(las_checked_count(path), chunk_size)
    extra = _extra_fields(record_dtype(las_extra_dims(path)))
    futures = [ctx.executor.submit(las_range_stats, str(path), start, count) for start, count in ranges]
    for (_, count), f in zip(ranges, ctx.reporter.track(futures, f"ingest {path.name}"), strict=True):
        lo, hi, classes = f.result()
        yield {"count": count, "lo": lo, "hi": hi, "classes": classes, "extra": extra}


def _las_chunks(ctx: StageContext, path: Path, store: ChunkStore, chunk_size: int) -> Iterator[dict[str, Any]]:
    """Read a LAS/LAZ/COPC file range by range in the executor's workers."""
    store.folder.mkdir(parents=True, exist_ok=True)
    futures = [ctx.executor.submit(ingest_las_range, str(path), start, count, str(store.folder / f"chunk_{k:05d}.npy"))
               for k, (start, count) in enumerate(point_ranges(las_checked_count(path), chunk_size))]
    for f in ctx.reporter.track(futures, f"ingest {path.name}"):
        yield f.result()


def _sequential_chunks(ctx: StageContext, path: Path, store: ChunkStore, chunks: Iterator[np.ndarray]
                       ) -> Iterator[dict[str, Any]]:
    for k, chunk in enumerate(ctx.reporter.track(chunks, f"ingest {path.name}")):
        store.write(k, chunk)
        yield _chunk_stats(chunk)


def _point_chunks(ctx: StageContext, path: Path, pc: PointCloudInput, store: ChunkStore, chunk_size: int
                  ) -> tuple[str, bool, Iterator[dict[str, Any]]]:
    """(format, whether the points are read in place, per-chunk statistics as the chunks are
    stored or checked) of one input cloud."""
    fmt = point_format_of(path, pc.format)
    if fmt == "las":
        if las_in_place(path):
            return "las", True, _las_in_place(ctx, path, chunk_size)
        kind = "copc" if is_copc(path) else "las"
        if las_seekable(path):
            return kind, False, _las_chunks(ctx, path, store, chunk_size)
        # variable-size LAZ chunks (COPC) only read front to back
        return kind, False, _sequential_chunks(ctx, path, store, iter_las_chunks(path, chunk_size))
    if fmt == "ply":
        return "ply", False, _sequential_chunks(ctx, path, store, iter_ply_chunks(path, chunk_size))
    if not pc.columns:
        raise ConfigError("a text point cloud needs its columns mapped (inputs.pointclouds[].columns)",
                          path=path)
    return "text", False, _sequential_chunks(ctx, path, store, iter_text_chunks(
        path, chunk_size, pc.columns, delimiter=pc.delimiter, header=pc.header))


def _pointcloud_crs(cfg: TwinConfig, pc: PointCloudInput, path: Path, fmt: str
                    ) -> tuple[pyproj.CRS | None, str, float | None]:
    """(CRS, where it came from, metres per z unit named by a GeoTIFF key) of one point cloud.

    The input's ``crs:`` wins, then the file's own record, a sidecar ``.prj``/``.wkt``, and
    ``site.crs``. An unreadable record in the file is an error only when nothing overrides it.
    """
    file_crs, z_unit, unreadable = None, None, None
    if fmt in ("las", "copc"):
        try:
            file_crs, z_unit = read_las_crs(path)
        except UnreadableCRSError as exc:
            unreadable = exc
    if pc.crs:
        if unreadable is not None:
            warnings.warn(f"{path.name}: {unreadable.message.split(';')[0]}; using crs {pc.crs} from the config",
                          CRSOverrideWarning, stacklevel=2)
        return parse_crs(pc.crs, path=path), "config (inputs.pointclouds[].crs)", z_unit
    if unreadable is not None:
        raise unreadable
    if file_crs is not None:
        return file_crs, "file", z_unit
    side = sidecar_crs(path)
    if side is not None:
        return side[0], f"sidecar {side[1].name}", z_unit
    if pc.georeference != "crs":
        return None, "local scanner frame", z_unit
    if cfg.site.crs:
        return parse_crs(cfg.site.crs, path=path), "config (site.crs)", z_unit
    raise CRSError("point cloud has no CRS record (nor a .prj/.wkt sidecar); set its crs (or site.crs) in the "
                   "config, or georeference: gcps for a scan in a local frame", path=path)


def _ingest_pointcloud(ctx: StageContext, cfg: TwinConfig, i: int, pc: PointCloudInput) -> dict[str, Any]:
    path = cfg.resolve(pc.path)
    store = cloud_store(ctx.out_dir, i, path)
    chunk_size = cfg.stages.ingest.chunk_size
    stamp = file_stamp(path)
    fmt, in_place, chunks = _point_chunks(ctx, path, pc, store, chunk_size)
    crs, crs_source, z_unit = _pointcloud_crs(cfg, pc, path, fmt)
    # a VerticalUnitsGeoKey names the z unit outright; georef applies the CRS's height unit after
    # this factor, so it is relative to that
    z_factor = z_unit / vertical_unit_factor(crs) if z_unit is not None and crs is not None else 1.0
    if math.isclose(z_factor, 1.0, rel_tol=1e-9):
        z_factor = 1.0  # the key names the CRS's own unit (US survey feet by two routes differ in the last bit)
    total = _summed(chunks)
    count, lo, hi, classes, extra = total["count"], total["lo"], total["hi"], total["classes"], total["extra"]
    cloud = SourceCloud(str(path), fmt, crs.to_wkt() if crs else None, crs.name if crs else "local scanner frame",
                        crs_source, z_factor, pc.georeference, pc.align, pc.accept_crs, count,
                        [*lo.tolist(), *hi.tolist()], extra,
                        {str(c): int(n) for c, n in enumerate(classes) if n})
    if in_place:
        cloud = replace(cloud, chunk_points=chunk_size, source_digest=ctx.input_digest(path), source_stamp=stamp)
    write_source_cloud(store, cloud)
    return {"file": str(path), "format": fmt, "crs": cloud.crs_name, "crs_source": crs_source, "points": count,
            "bounds": cloud.bounds, "extra_dims": [n for n, _ in extra]}


def _read_layer(path: Path, layer: FootprintInput | POIInput, cfg: TwinConfig) -> FeatureSet:
    fs = read_features(path, layer.crs, cfg.site.crs, layer.encoding)
    if fs.encoding_guess:
        warnings.warn(f"{path.name}: the file does not say how its text is encoded (no .cpg); read as "
                      f"{fs.encoding_guess}, which decodes all of it (set the input's encoding if that is wrong)",
                      FeatureRepairedWarning, stacklevel=2)
    return fs


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_TRUE, _FALSE = {"true", "t", "yes", "y", "1", "예"}, {"false", "f", "no", "n", "0", "아니오", ""}


def _flag(value: Any) -> tuple[bool, str | None]:
    """A yes/no attribute (a boolean, a number, or true/yes/1 ... as text) and a note when it
    is neither: such a value is taken as no."""
    if value is None or isinstance(value, bool):
        return bool(value), None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0, None
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE, None
    return False, f"proposed {str(value)[:40]!r} is not yes or no; taken as no"


def _ingest_footprints(ctx: StageContext, cfg: TwinConfig, fp: FootprintInput) -> dict[str, Any]:
    path = cfg.resolve(fp.path)
    fs = _read_layer(path, fp, cfg)
    f = fp.fields
    records, skipped, repaired = [], [], []
    reg = cfg.inputs.building_register
    join = reg.join if reg is not None else None
    if join and join not in fs.fields:
        raise InputError(f"inputs.building_register.join: the footprint layer has no attribute {join!r} "
                         f"(it has {', '.join(sorted(fs.fields)) or 'none'})", path=path)
    join_keys: list[str | None] = []
    # metres per unit of x and y (a degree of latitude is about 111 km)
    unit_m = 111_000.0 if fs.crs.is_geographic else horizontal_unit_factor(fs.crs)
    for i, geom in enumerate(fs.geometries):
        given = _text(fs.value(f.id, i)) if f.id else None
        ident = given or f"feature-{i}"
        fixed = repair_footprint(geom, unit_m)
        if not fixed.polygons:
            skipped.append({"feature": ident, "reason": fixed.reason})
            warnings.warn(f"{path.name}: building {ident}: skipped, {fixed.reason}", FeatureSkippedWarning,
                          stacklevel=2)
            continue
        if fixed.note:
            repaired.append({"feature": ident, "repair": fixed.note, "parts": len(fixed.polygons)})
            warnings.warn(f"{path.name}: building {ident}: {fixed.note}", FeatureRepairedWarning, stacklevel=2)
        geom = fixed.polygons[0] if len(fixed.polygons) == 1 else MultiPolygon(fixed.polygons)
        if not given:
            # no id in the layer: one that follows the building's position (to 0.1 m), so the
            # hub can join on it across reruns and edits of other rows
            at = geom.representative_point()
            ident = position_id("B-", at.x, at.y, 0.1 / unit_m)
        numbers = []
        for key, column, integer, upper, zero in (("floors", f.floors, True, MAX_FLOORS, False),
                                                  ("height", f.height, False, MAX_HEIGHT_M, False),
                                                  ("floors below ground", f.floors_below, True, MAX_FLOORS, True)):
            x, problem = attribute_number(fs.value(column, i), integer=integer, upper=upper, zero_known=zero)
            numbers.append(x)
            if problem:
                note = f"{key} {problem}; ignored"
                repaired.append({"feature": ident, "repair": note, "parts": len(fixed.polygons)})
                warnings.warn(f"{path.name}: building {ident}: {note}", FeatureRepairedWarning, stacklevel=2)
        floors, height, below = numbers
        proposed, problem = _flag(fs.value(f.proposed, i)) if f.proposed else (False, None)
        if problem:
            repaired.append({"feature": ident, "repair": problem, "parts": len(fixed.polygons)})
            warnings.warn(f"{path.name}: building {ident}: {problem}", FeatureRepairedWarning, stacklevel=2)
        replaces = _text(fs.value(f.replaces, i)) if f.replaces and proposed else None
        use = _text(fs.value(f.use, i))
        if fp.layout != "custom":
            use = use_category(use)  # a national use code or class name to the twin's category
        records.append(SourceFootprint(ident, _text(fs.value(f.name, i)), use,
                                       None if floors is None else int(floors), height,
                                       shapely.to_wkt(geom, rounding_precision=-1), proposed, replaces or None,
                                       None if below is None else int(below),
                                       approval_date=ymd_date(fs.value(f.approval_date, i))))
        join_keys.append(_text(fs.value(join, i)) if join else ident)
    if len(fs.geometries) and not records:
        reasons = sorted({str(s["reason"]) for s in skipped})
        raise InputError(f"no usable footprint: all {len(fs.geometries)} feature(s) skipped ({'; '.join(reasons)})",
                         path=path)
    register = None
    if reg is not None:
        records, register = _join_register(cfg, reg, records, join_keys, path)
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = sorted({x for x in ids if ids.count(x) > 1})[0]
        raise InputError(f"building id {dup!r} occurs more than once", path=path)
    write_source_footprints(ctx.out_dir, SourceFootprints(str(path), fs.crs.to_wkt(), fp.accept_crs, records,
                                                          skipped, repaired))
    return {"file": str(path), "crs": fs.crs.name, "features": len(records), "skipped": skipped,
            "repaired": repaired, "register": register}


def _join_register(cfg: TwinConfig, reg: RegisterInput, records: list[SourceFootprint], keys: list[str | None],
                   layer: Path) -> tuple[list[SourceFootprint], dict[str, Any]]:
    """The footprints with what the register says of each (its height, floors, use and name
    replace the layer's where it gives them) and a report of the join. InputError when no
    footprint finds its row: the key or the join attribute is wrong."""
    path = cfg.resolve(reg.path)
    register = read_register(path, key=reg.key, fields=reg.fields.model_dump())
    for note in register.notes:
        warnings.warn(f"{path.name}: {note}", FeatureRepairedWarning, stacklevel=2)
    if register.duplicate_keys:
        warnings.warn(f"{path.name}: {len(register.duplicate_keys)} key(s) on more than one row (e.g. "
                      f"{register.duplicate_keys[0]!r}): the first row of each is used", FeatureRepairedWarning,
                      stacklevel=2)
    out, used, unmatched = [], set(), []
    for rec, key in zip(records, keys, strict=True):
        row = register.rows.get(key) if key is not None else None
        if row is None:
            unmatched.append(rec.id)
            out.append(rec)
            continue
        used.add(row.key)
        out.append(replace(
            rec, name=rec.name or row.name, use=row.use or rec.use,
            height=row.height if row.height is not None else rec.height,
            height_origin="register" if row.height is not None else rec.height_origin,
            floors=row.floors if row.floors is not None else rec.floors,
            floors_origin="register" if row.floors is not None else rec.floors_origin,
            floors_below=row.floors_below if row.floors_below is not None else rec.floors_below,
            approval_date=row.approval_date or rec.approval_date))
    if records and not used:
        on = f"attribute {reg.join!r}" if reg.join else "id"
        example = next((k for k in keys if k), None)
        raise InputError(f"building register: its {reg.key!r} matches no footprint's {on} (e.g. footprint "
                         f"{example!r}, register {next(iter(register.rows), None)!r}): check "
                         "inputs.building_register.key and .join", path=path)
    if unmatched:
        warnings.warn(f"{path.name}: {len(unmatched)} of {len(records)} footprint(s) of {layer.name} have no "
                      f"register row (e.g. {unmatched[0]!r}): their heights come from the layer, LiDAR or floors",
                      FeatureRepairedWarning, stacklevel=2)
    return out, {"file": str(path), "rows": len(register.rows), "matched": len(used),
                 "footprints_without_row": unmatched, "rows_without_footprint": len(register.rows) - len(used),
                 "duplicate_keys": register.duplicate_keys}


def _ingest_meshes(ctx: StageContext, cfg: TwinConfig) -> list[dict[str, Any]]:
    """Each imported model: read, repaired and stored in its own frame with its placement."""
    out = []
    folder = artifacts.SOURCE_MODELS.locate(ctx.out_dir)
    ids = set()
    for i, m in enumerate(cfg.inputs.meshes):
        path = cfg.resolve(m.path)
        vertices, faces = read_mesh(path)
        vertices, faces, fixed = repair_mesh(vertices, faces)
        if len(faces) == 0:
            raise InputError("mesh has no faces left after dropping degenerate and non-finite ones", path=path)
        crs = parse_crs(cfg.declared_crs(m, f"inputs.meshes[{i}]", "a model's origin"), path=path)
        reach = model_reach(vertices, m.scale)
        if reach > MAX_MODEL_REACH_M:
            raise InputError(f"inputs.meshes[{i}]: the model reaches {reach:,.0f} m from its origin at scale "
                             f"{m.scale:g} (no building reaches {MAX_MODEL_REACH_M:,.0f} m): check its scale "
                             "(metres per model unit), or its vertices are world coordinates rather than the "
                             "model's own", path=path)
        ident = m.id or path.stem
        if ident in ids:
            raise ConfigError(f"inputs.meshes[{i}]: id {ident!r} is used twice", path=path)
        ids.add(ident)
        up = m.up_axis if m.up_axis != "auto" else ("y" if path.suffix.lower() in (".gltf", ".glb") else "z")
        model = SourceModel(str(path), f"{i:02d}_{path.stem}.npz", ident, m.name, m.use, crs.to_wkt(), m.accept_crs,
                            list(m.origin), m.heading_deg, m.scale, up, m.replaces, fixed.as_dict(), m.proposed)
        write_model(folder, model, vertices, faces)
        out.append({"file": str(path), "id": ident, "faces": int(len(faces)), "vertices": int(len(vertices)),
                    "repair": fixed.as_dict()})
    return out


def _city_attribute(attrs: dict[str, Any], name: str | None) -> Any:
    value = attrs.get(name) if name else None
    # CityJSON 1.x and some exporters write code lists as {"value": ..., "codeSpace": ...}
    return value.get("value") if isinstance(value, dict) else value


def _city_building(b: Any, c: CityModelInput, path: Path) -> CityBuilding:
    """The record of one city model building: its attributes mapped by ``c.fields``; a value
    that cannot be used is left out with a warning naming the building."""
    f = c.fields

    def number(key: str | None, what: str, upper: float, integer: bool, zero_known: bool = False) -> float | None:
        value, why = attribute_number(_city_attribute(b.attributes, key), integer=integer, upper=upper,
                                      zero_known=zero_known)
        if why:
            warnings.warn(f"{path.name}: building {b.id}: {what} {why}; left out", FeatureRepairedWarning,
                          stacklevel=3)
        return value

    floors = number(f.floors, "floors", MAX_FLOORS, True)
    below = number(f.floors_below, "floors below ground", MAX_FLOORS, True, zero_known=True)
    ident = _text(_city_attribute(b.attributes, f.id)) if f.id else None
    return CityBuilding(
        id=ident or b.id, source=str(path), lod=b.lod, name=_text(_city_attribute(b.attributes, f.name)),
        use=use_category(_city_attribute(b.attributes, f.use)),
        floors=None if floors is None else int(floors), floors_below=None if below is None else int(below),
        join=_text(_city_attribute(b.attributes, c.join)) if c.join else None)


def _ingest_city_models(ctx: StageContext, cfg: TwinConfig) -> list[dict[str, Any]]:
    """Each city model's buildings, triangulated with their surface kinds, in the file's CRS."""
    layer, out = CityModelLayer(), []
    meshes: list[CityMesh] = []
    ids: dict[str, str] = {}
    for i, c in enumerate(cfg.inputs.city_models):
        path = cfg.resolve(c.path)
        model = read_city_model(path, c.format)
        text = c.crs or model.crs or cfg.site.crs
        if not text:
            raise CRSError(f"the {model.format} file declares no CRS: set inputs.city_models[{i}].crs "
                           "(or site.crs)", path=path)
        if c.crs and model.crs and parse_crs(c.crs, path=path) != parse_crs(model.crs, path=path):
            warnings.warn(f"{path.name}: declares {model.crs}; the config's {c.crs} is used instead",
                          CRSOverrideWarning, stacklevel=2)
        crs = parse_crs(text, path=path)
        if c.join and not any(c.join in b.attributes for b in model.buildings):
            raise InputError(f"inputs.city_models[{i}].join: no building has an attribute {c.join!r}", path=path)
        kept = 0
        for b in model.buildings:
            rec = _city_building(b, c, path)
            if rec.id in ids:
                warnings.warn(f"{path.name}: building {rec.id}: its id is used already (in "
                              f"{Path(ids[rec.id]).name}); skipped, a building appears once", FeatureSkippedWarning,
                              stacklevel=2)
                model.skipped.append({"feature": rec.id, "reason": "duplicate id"})
                continue
            ids[rec.id] = str(path)
            layer.buildings.append(rec)
            meshes.append((b.vertices, b.faces, b.surfaces))
            kept += 1
        layer.sources.append(CitySource(str(path), model.format, crs.to_wkt(), c.accept_crs, kept, model.skipped))
        lods = sorted({b.lod for b in model.buildings})
        out.append({"file": str(path), "format": model.format, "crs": crs.name, "buildings": kept,
                    "lods": lods, "triangles": int(sum(len(b.faces) for b in model.buildings)),
                    "skipped": model.skipped})
    write_source_city_models(ctx.out_dir, layer, meshes)
    return out


def _ingest_dem(ctx: StageContext, cfg: TwinConfig, dem: RasterInput) -> dict[str, Any]:
    path = cfg.resolve(dem.path)
    elev = read_elevation(path, dem.crs, cfg.site.crs)
    valid = np.isfinite(elev.values)
    rec = SourceDem(str(path), elev.crs.to_wkt(), elev.crs.name, dem.accept_crs, list(elev.values.shape),
                    int((~valid).sum()), float(np.nanmin(elev.values)), float(np.nanmax(elev.values)))
    write_source_dem(ctx.out_dir, rec, path)
    return {"file": str(path), "crs": elev.crs.name, "shape": rec.shape,
            "nodata_pixels": rec.nodata_pixels, "range_m": [rec.min, rec.max]}


def _positive_metres(cell: str) -> float | None:
    """A cell's positive finite number, else None."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def read_gcp_csv(path: Path, *, sigma_h: float | None = None, sigma_v: float | None = None) -> list[GcpRow]:
    """Rows of a GCP CSV: id,x,y,z [,local_x,local_y,local_z] [,role] [,sigma_h,sigma_v].

    ``role`` is ``control`` (used in fits; the default) or ``check`` (held out); ``sigma_h`` and
    ``sigma_v`` are the survey's 1-sigma accuracy in metres (an empty cell takes the given
    default). InputError names the line for a missing or non-numeric cell.
    """
    if not path.is_file():
        raise InputError("GCP file not found", path=path)
    try:
        text = decode_text(path.read_bytes())
    except NotText as exc:
        raise InputError(f"GCP file: {exc}", path=path) from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        columns = {c.strip() for c in (reader.fieldnames or [])}
        if not {"id", "x", "y", "z"} <= columns:
            raise InputError(f"CSV needs columns id,x,y,z (found {reader.fieldnames})", path=path)
        local = {"local_x", "local_y", "local_z"}
        if columns & local and not local <= columns:
            raise InputError("local coordinates need all of local_x,local_y,local_z", path=path)
        numeric = ["x", "y", "z"] + (["local_x", "local_y", "local_z"] if local <= columns else [])
        rows = []
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            try:
                vals = {c: float(row[c]) for c in numeric}
            except ValueError:
                cells = ", ".join(f"{c}={row.get(c)!r}" for c in numeric)
                raise InputError(f"line {line}: coordinates must be numbers ({cells})", path=path) from None
            if not all(map(math.isfinite, vals.values())):
                raise InputError(f"line {line}: non-finite coordinate", path=path)
            role = row.get("role", "") or "control"
            if role not in ("control", "check"):
                raise InputError(f"line {line}: role must be control or check, not {role!r}", path=path)
            sigmas = {c: default for c, default in (("sigma_h", sigma_h), ("sigma_v", sigma_v))}
            for c in sigmas:
                if row.get(c):
                    sigmas[c] = _positive_metres(row[c])
                    if sigmas[c] is None:
                        raise InputError(f"line {line}: {c} must be a positive number of metres, not "
                                         f"{row[c]!r}", path=path)
            rows.append(GcpRow(row["id"] or f"row{line}", role=role, **vals, sigma_h=sigmas["sigma_h"],
                               sigma_v=sigmas["sigma_v"]))
    if not rows:
        raise InputError("GCP file has no rows", path=path)
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise InputError(f"point id {sorted({i for i in ids if ids.count(i) > 1})[0]!r} occurs twice",
                         path=path)
    return rows


def _ingest_gcps(ctx: StageContext, cfg: TwinConfig, g: GCPInput) -> dict[str, Any]:
    path = cfg.resolve(g.path)
    crs = parse_crs(cfg.declared_crs(g, "inputs.gcps", "a GCP CSV"), path=path)
    rows = read_gcp_csv(path, sigma_h=g.sigma_h, sigma_v=g.sigma_v)
    write_source_gcps(ctx.out_dir, SourceGcps(str(path), crs.to_wkt(), g.accept_crs, rows))
    return {"file": str(path), "crs": crs.name, "points": len(rows)}


def _ingest_pois(ctx: StageContext, cfg: TwinConfig, p: POIInput) -> dict[str, Any]:
    path = cfg.resolve(p.path)
    fs = _read_layer(path, p, cfg)
    pois = []
    for i, geom in enumerate(fs.geometries):
        if geom is None or geom.geom_type != "Point" or not np.all(np.isfinite(shapely.get_coordinates(geom))):
            raise InputError(f"feature {i}: POIs must be points with finite coordinates", path=path)
        pois.append(SourcePoi(str(fs.value("name", i) or f"POI {i + 1}"), str(fs.value("kind", i) or "poi"),
                              geom.x, geom.y, _text(fs.value(p.entrance_of, i))))
    if p.entrance_of and p.entrance_of not in fs.fields:
        raise InputError(f"inputs.pois.entrance_of: the layer has no attribute {p.entrance_of!r} "
                         f"(it has {', '.join(sorted(fs.fields)) or 'none'})", path=path)
    write_source_pois(ctx.out_dir, SourcePois(str(path), fs.crs.to_wkt(), p.accept_crs, pois))
    return {"file": str(path), "crs": fs.crs.name, "points": len(pois),
            "entrances": sum(q.entrance_of is not None for q in pois)}


def run(ctx: StageContext, cfg: TwinConfig) -> StageResult:
    """Read, check and normalise every input of ``cfg``."""
    report: dict[str, Any] = {"pointclouds": []}
    counts = {"points": 0}
    # every artifact is written, an input that was not given as an empty layer
    artifacts.SOURCE_POINTS.locate(ctx.out_dir).mkdir()
    artifacts.SOURCE_MODELS.locate(ctx.out_dir).mkdir()
    for i, pc in enumerate(cfg.inputs.pointclouds):
        info = _ingest_pointcloud(ctx, cfg, i, pc)
        report["pointclouds"].append(info)
        counts["points"] += info["points"]
    if cfg.inputs.footprints:
        report["footprints"] = _ingest_footprints(ctx, cfg, cfg.inputs.footprints)
        counts["buildings"] = report["footprints"]["features"]
    else:
        write_source_footprints(ctx.out_dir, SourceFootprints())
    if cfg.inputs.meshes:
        report["meshes"] = _ingest_meshes(ctx, cfg)
        counts["meshes"] = len(report["meshes"])
    report_cities = _ingest_city_models(ctx, cfg)
    if report_cities:
        report["city_models"] = report_cities
        counts["city_buildings"] = sum(c["buildings"] for c in report_cities)
    if cfg.inputs.dem:
        report["dem"] = _ingest_dem(ctx, cfg, cfg.inputs.dem)
    else:
        write_source_dem(ctx.out_dir, SourceDem())
    if cfg.inputs.gcps:
        report["gcps"] = _ingest_gcps(ctx, cfg, cfg.inputs.gcps)
        counts["gcps"] = report["gcps"]["points"]
    else:
        write_source_gcps(ctx.out_dir, SourceGcps())
    if cfg.inputs.pois:
        report["pois"] = _ingest_pois(ctx, cfg, cfg.inputs.pois)
        counts["pois"] = report["pois"]["points"]
    else:
        write_source_pois(ctx.out_dir, SourcePois())
    return StageResult(counts, report)
