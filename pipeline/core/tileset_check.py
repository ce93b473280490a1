"""Validation of 3D Tiles 1.0/1.1 tilesets against the rules of the specification that code can
check, for any tileset on disk (ours or another tool's).

Tileset JSON: ``asset.version``, ``geometricError``, ``root`` and its ``refine``; every content
and external tileset resolves; every extension named in an ``extensions`` object is declared in
``extensionsUsed`` and every required one is used; bounding volumes (box, region, sphere) are
well formed and contain their children's and their content's bounding volumes; geometricError
never grows from a tile to its children (external tilesets included); metadata (tileset,
groups, tiles, contents) matches the ``schema`` (or ``schemaUri``): classes and properties
exist, values have the declared types, required properties are present.

Content: the positions of glTF/GLB (plain, KHR_mesh_quantization, EXT_meshopt_compression,
KHR_draco_mesh_compression), b3dm and pnts content lie inside their tile's bounding volume;
GLB EXT_structural_metadata property tables match their schema (buffer sizes, string offsets)
and EXT_mesh_features feature IDs point at existing rows; the Khronos glTF validator runs on
every GLB (optional). Positions a hair outside their volume (up to 1 cm or 0.1 % of its size)
are a warning, farther an error. Implicit tiling: subtree files (binary and JSON), their
availability bitstreams and counts, template URIs, and every available content against the
volume its tile derives from the root. i3dm and cmpt are reported as not checked.

Findings carry a severity: errors break the specification, warnings are suspicious, infos say
what was not checked. A tileset is valid when there is no error.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import implicit
from pipeline.core.geodesy import ecef_to_geodetic, geodetic_to_ecef
from pipeline.core.gltf import gltf_positions, read_glb, read_primitive
from pipeline.core.tiles import box_corners, matrix_from_json, points_in_box

#: byte sizes of metadata component types
_COMPONENT_SIZE = {"INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "INT32": 4, "UINT32": 4, "INT64": 8,
                   "UINT64": 8, "FLOAT32": 4, "FLOAT64": 8}
_INT_RANGE = {"INT8": (-2**7, 2**7 - 1), "UINT8": (0, 2**8 - 1), "INT16": (-2**15, 2**15 - 1),
              "UINT16": (0, 2**16 - 1), "INT32": (-2**31, 2**31 - 1), "UINT32": (0, 2**32 - 1),
              "INT64": (-2**63, 2**63 - 1), "UINT64": (0, 2**64 - 1)}
#: content positions outside their volume by up to the larger of these (metres, share of the
#: volume's half extent) are a warning, beyond it an error
SLIGHTLY_OUTSIDE_M = 0.01
SLIGHTLY_OUTSIDE_SHARE = 0.001
_TYPE_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


@dataclass
class Finding:
    severity: str   # error | warning | info
    where: str      # file and JSON path
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class ValidationReport:
    findings: list[Finding] = field(default_factory=list)
    tilesets: int = 0
    tiles: int = 0
    contents: int = 0
    gltf_validated: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def problems(self) -> list[str]:
        """The errors as one-line messages."""
        return [f"{f.where}: {f.message}" for f in self.errors]

    @property
    def valid(self) -> bool:
        return not self.errors


# --- bounding volumes -----------------------------------------------------------------------------

class Volume:
    """A bounding volume in world coordinates (after the tile's transform)."""

    def __init__(self, kind: str, values: list[float], world: np.ndarray) -> None:
        self.kind, self.values, self.world = kind, [float(v) for v in values], world

    def samples(self) -> np.ndarray:
        """World points (k, 3) that must lie in a volume containing this one: box corners; a
        sphere's six extreme points; a region's corners and edge midpoints at both heights
        (a region's sides are curved, so this containment is checked at those points)."""
        if self.kind == "box":
            return box_corners(self.values, self.world)
        if self.kind == "sphere":
            c = self.world[:3, :3] @ np.array(self.values[:3]) + self.world[:3, 3]
            r = self.values[3] * np.abs(np.linalg.det(self.world[:3, :3])) ** (1 / 3)
            return c + r * np.vstack([np.eye(3), -np.eye(3)])
        w, s, e, n, lo, hi = self.values
        lon = np.degrees([w, (w + e) / 2, e])
        lat = np.degrees([s, (s + n) / 2, n])
        gl, ga, gh = np.meshgrid(lon, lat, [lo, hi])
        return geodetic_to_ecef(gl.ravel(), ga.ravel(), gh.ravel())

    def size(self) -> float:
        """Half the largest extent of the volume (m): the scale of "slightly outside"."""
        pts = self.samples()
        return float(np.ptp(pts, axis=0).max()) / 2

    def contains(self, points: np.ndarray, tol: float) -> np.ndarray:
        """Which world points (N, 3) lie in the volume, with ``tol`` metres of slack."""
        if len(points) == 0:
            return np.ones(0, bool)
        if self.kind == "box":
            inv = np.linalg.inv(self.world)
            local = points @ inv[:3, :3].T + inv[:3, 3]
            scale = np.abs(np.linalg.det(self.world[:3, :3])) ** (1 / 3) or 1.0
            return points_in_box(local, self.values, tol / scale)
        if self.kind == "sphere":
            c = self.world[:3, :3] @ np.array(self.values[:3]) + self.world[:3, 3]
            r = self.values[3] * np.abs(np.linalg.det(self.world[:3, :3])) ** (1 / 3)
            return np.linalg.norm(points - c, axis=1) <= r + tol
        w, s, e, n, lo, hi = self.values
        lon, lat, h = ecef_to_geodetic(points)
        lon, lat = np.radians(lon), np.radians(lat)
        ang = tol / 6_378_137.0
        lon_ok = (lon >= w - ang) & (lon <= e + ang) if w <= e else (lon >= w - ang) | (lon <= e + ang)
        return lon_ok & (lat >= s - ang) & (lat <= n + ang) & (h >= lo - tol) & (h <= hi + tol)


def _volume(bv: Any, world: np.ndarray, where: str, report: ValidationReport) -> Volume | None:
    if not isinstance(bv, dict):
        report.findings.append(Finding("error", where, "boundingVolume is missing"))
        return None
    kinds = [k for k in ("box", "region", "sphere") if k in bv]
    if len(kinds) != 1:
        if bv.get("extensions"):
            report.findings.append(Finding("info", where, "bounding volume given by an extension "
                                                          f"({', '.join(bv['extensions'])}) is not checked"))
        else:
            report.findings.append(Finding("error", where, "boundingVolume must have exactly one of box, "
                                                           "region, sphere"))
        return None
    kind = kinds[0]
    values = bv[kind]
    size = {"box": 12, "region": 6, "sphere": 4}[kind]
    if not isinstance(values, list) or len(values) != size or not all(isinstance(v, (int, float)) for v in values):
        report.findings.append(Finding("error", where, f"{kind} must be {size} numbers"))
        return None
    if kind == "region":
        w, s, e, n, lo, hi = values
        if not (-np.pi <= w <= np.pi and -np.pi <= e <= np.pi and -np.pi / 2 <= s <= n <= np.pi / 2 and lo <= hi):
            report.findings.append(Finding("error", where, f"region {values} is not [west, south, east, "
                                                           "north (radians), min, max height] in range"))
            return None
    if kind == "sphere" and values[3] < 0:
        report.findings.append(Finding("error", where, "sphere radius is negative"))
        return None
    return Volume(kind, values, world)


# --- content --------------------------------------------------------------------------------------

def _legacy_header(data: bytes, magic: bytes) -> tuple[int, int, int, int, int]:
    got, version, length, ftj, ftb, btj, btb = struct.unpack_from("<4sIIIIII", data, 0)
    if got != magic or version != 1 or length != len(data):
        raise ValueError(f"not a version 1 {magic.decode()} of {len(data)} bytes")
    return 28, ftj, ftb, btj, btb


def b3dm_positions(data: bytes) -> tuple[np.ndarray, dict[str, Any], bytes]:
    """(positions in the tile frame, glTF document, binary) of a b3dm: its GLB plus RTC_CENTER."""
    start, ftj, ftb, btj, btb = _legacy_header(data, b"b3dm")
    ft = json.loads(data[start:start + ftj] or b"{}")
    glb = data[start + ftj + ftb + btj + btb:]
    doc, binary = read_glb(glb)
    pos = gltf_positions(doc, binary)
    return pos + np.asarray(ft.get("RTC_CENTER", [0, 0, 0]), np.float64), doc, binary


def pnts_positions(data: bytes) -> np.ndarray:
    """Positions of a pnts tile in its tile frame (POSITION or POSITION_QUANTIZED, RTC_CENTER)."""
    start, ftj, ftb, _, _ = _legacy_header(data, b"pnts")
    ft = json.loads(data[start:start + ftj])
    body = data[start + ftj:start + ftj + ftb]
    n = int(ft["POINTS_LENGTH"])
    if "POSITION" in ft:
        pos = np.frombuffer(body, np.float32, n * 3, ft["POSITION"]["byteOffset"]).reshape(n, 3).astype(np.float64)
    else:
        q = np.frombuffer(body, np.uint16, n * 3, ft["POSITION_QUANTIZED"]["byteOffset"]).reshape(n, 3)
        pos = (q / 65535.0 * np.asarray(ft["QUANTIZED_VOLUME_SCALE"], np.float64)
               + np.asarray(ft["QUANTIZED_VOLUME_OFFSET"], np.float64))
    return pos + np.asarray(ft.get("RTC_CENTER", [0, 0, 0]), np.float64)


def _check_structural_metadata(doc: dict[str, Any], binary: bytes, folder: Path, where: str,
                               report: ValidationReport) -> None:
    """EXT_structural_metadata property tables against their schema (inline, or ``schemaUri``
    relative to ``folder``), EXT_mesh_features feature IDs against the tables, and property
    attributes against the schema and the primitives' attributes."""
    ext = doc.get("extensions", {}).get("EXT_structural_metadata")
    tables = []
    schema: dict[str, Any] = {}
    if ext is not None:
        schema = ext.get("schema", {})
        if "schemaUri" in ext:
            try:
                schema = json.loads((folder / ext["schemaUri"]).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                report.findings.append(Finding("error", where, f"cannot read schemaUri {ext['schemaUri']} ({exc})"))
                schema = {}
        classes = schema.get("classes", {})
        views = doc.get("bufferViews", [])
        tables = ext.get("propertyTables", [])
        for t, table in enumerate(tables):
            loc = f"{where}: propertyTables[{t}]"
            cls = _schema_class(classes, table, loc, report)
            if cls is None:
                continue
            count = int(table.get("count", -1))
            if count < 1:
                report.findings.append(Finding("error", loc, "count must be at least 1"))
                continue
            for name, prop in table.get("properties", {}).items():
                definition = cls.get("properties", {}).get(name)
                if definition is None:
                    report.findings.append(Finding("error", loc, f"property {name!r} is not in class "
                                                                 f"{table['class']!r}"))
                    continue
                if definition.get("type") == "ENUM":
                    # an enum's values are stored as its enum's valueType (UINT16 unless it says)
                    enum = schema.get("enums", {}).get(definition.get("enumType"), {})
                    definition = definition | {"valueType": enum.get("valueType", "UINT16")}
                _check_table_property(prop, definition, count, views, binary, f"{loc}.{name}", report)
            for name, definition in cls.get("properties", {}).items():
                if definition.get("required") and name not in table.get("properties", {}):
                    report.findings.append(Finding("error", loc, f"required property {name!r} is missing"))
    _check_property_attributes(doc, ext or {}, schema, where, report)
    for m, mesh in enumerate(doc.get("meshes", [])):
        for p, prim in enumerate(mesh.get("primitives", [])):
            features = prim.get("extensions", {}).get("EXT_mesh_features")
            if features is None:
                continue
            data = None
            for k, fid in enumerate(features.get("featureIds", [])):
                loc = f"{where}: meshes[{m}].primitives[{p}] featureIds[{k}]"
                table = fid.get("propertyTable")
                if table is not None and not 0 <= table < len(tables):
                    report.findings.append(Finding("error", loc, f"propertyTable {table} does not exist"))
                    continue
                if "attribute" in fid:
                    name = f"_FEATURE_ID_{fid['attribute']}"
                    if name not in prim.get("attributes", {}):
                        report.findings.append(Finding("error", loc, f"attribute {name} does not exist"))
                        continue
                    data = data or read_primitive(doc, binary, prim)
                    ids = np.asarray(data[name], np.float64)
                    ids = ids[ids != fid.get("nullFeatureId", -1)]
                    if len(ids) and (ids.max() >= fid["featureCount"] or ids.min() < 0):
                        report.findings.append(Finding("error", loc, f"feature IDs reach {ids.max():.0f}, "
                                                                     f"featureCount is {fid['featureCount']}"))
                    rows = tables[table]["count"] if table is not None else None
                    if rows is not None and fid["featureCount"] > rows:
                        report.findings.append(Finding("error", loc, f"featureCount {fid['featureCount']} "
                                                                     f"exceeds the property table's {rows} rows"))


def _schema_class(classes: dict[str, Any], user: dict[str, Any], loc: str,
                  report: ValidationReport) -> dict[str, Any] | None:
    """The schema class a property table or attribute names; None, with an error, when absent."""
    cls = classes.get(str(user.get("class")))
    if cls is None:
        report.findings.append(Finding("error", loc, f"class {user.get('class')!r} is not in the schema"))
    return cls


#: glTF accessor component types of EXT_structural_metadata's numeric component types
_ACCESSOR_COMPONENT = {"INT8": 5120, "UINT8": 5121, "INT16": 5122, "UINT16": 5123, "UINT32": 5125,
                       "FLOAT32": 5126}


def _check_property_attributes(doc: dict[str, Any], ext: dict[str, Any], schema: dict[str, Any], where: str,
                               report: ValidationReport) -> None:
    """EXT_structural_metadata property attributes: their classes and properties exist, and
    every primitive that uses one has each attribute it names, of the property's component type."""
    attributes = ext.get("propertyAttributes", [])
    classes = schema.get("classes", {})
    for a, attr in enumerate(attributes):
        loc = f"{where}: propertyAttributes[{a}]"
        cls = _schema_class(classes, attr, loc, report)
        if cls is None:
            continue
        for name in attr.get("properties", {}):
            definition = cls.get("properties", {}).get(name)
            if definition is None or definition.get("componentType") not in _ACCESSOR_COMPONENT:
                report.findings.append(Finding("error", loc, f"property {name!r} is not a numeric property of "
                                                             f"class {attr['class']!r}"))
    accessors = doc.get("accessors", [])
    for m, mesh in enumerate(doc.get("meshes", [])):
        for p, prim in enumerate(mesh.get("primitives", [])):
            used = prim.get("extensions", {}).get("EXT_structural_metadata", {}).get("propertyAttributes", [])
            for a in used:
                loc = f"{where}: meshes[{m}].primitives[{p}] propertyAttributes[{a}]"
                if not isinstance(a, int) or not 0 <= a < len(attributes):
                    report.findings.append(Finding("error", loc, "does not exist"))
                    continue
                cls = classes.get(attributes[a].get("class"), {})
                for name, prop in attributes[a].get("properties", {}).items():
                    index = prim.get("attributes", {}).get(prop.get("attribute"))
                    if index is None:
                        report.findings.append(Finding("error", loc, f"attribute {prop.get('attribute')} does "
                                                                     "not exist"))
                        continue
                    want = _ACCESSOR_COMPONENT.get(cls.get("properties", {}).get(name, {}).get("componentType", ""))
                    got = accessors[index].get("componentType") if 0 <= index < len(accessors) else None
                    if want is not None and got != want:
                        report.findings.append(Finding("error", loc, f"attribute {prop['attribute']} has component "
                                                                     f"type {got}, property {name!r} needs {want}"))


def _check_table_property(prop: dict[str, Any], definition: dict[str, Any], count: int, views: list[dict[str, Any]],
                          binary: bytes, loc: str, report: ValidationReport) -> None:
    def view_bytes(index: Any) -> bytes | None:
        if not isinstance(index, int) or not 0 <= index < len(views):
            report.findings.append(Finding("error", loc, f"bufferView {index} does not exist"))
            return None
        v = views[index]
        return binary[v.get("byteOffset", 0):v.get("byteOffset", 0) + v["byteLength"]]

    values = view_bytes(prop.get("values"))
    if values is None:
        return
    kind = definition.get("type")
    if kind == "STRING" or definition.get("array") and "count" not in definition:
        offsets_kind = prop.get("stringOffsetType" if kind == "STRING" else "arrayOffsetType", "UINT32")
        offsets_view = view_bytes(prop.get("stringOffsets" if kind == "STRING" else "arrayOffsets"))
        if offsets_view is None:
            return
        dtype = {"UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64}[offsets_kind]
        n = count + 1
        if len(offsets_view) < n * np.dtype(dtype).itemsize:
            report.findings.append(Finding("error", loc, f"offsets hold fewer than count + 1 = {n} values"))
            return
        offs = np.frombuffer(offsets_view, dtype, n).astype(np.int64)
        if np.any(np.diff(offs) < 0) or offs[0] != 0:
            report.findings.append(Finding("error", loc, "offsets must start at 0 and never decrease"))
        elif kind == "STRING" and offs[-1] > len(values):
            report.findings.append(Finding("error", loc, f"offsets reach {offs[-1]} past the {len(values)} "
                                                         "value bytes"))
        return
    if kind in ("SCALAR", "VEC2", "VEC3", "VEC4", "MAT2", "MAT3", "MAT4"):
        size = _COMPONENT_SIZE.get(definition.get("componentType", ""), 0) * _TYPE_COMPONENTS[kind]
    elif kind == "BOOLEAN":
        size = 0
        if len(values) * 8 < count * definition.get("count", 1):
            report.findings.append(Finding("error", loc, "too few bits for count booleans"))
        return
    elif kind == "ENUM":
        size = {"INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "INT32": 4, "UINT32": 4}.get(
            definition.get("valueType", "UINT16"), 2)
    else:
        report.findings.append(Finding("error", loc, f"unknown property type {kind!r}"))
        return
    need = size * count * int(definition.get("count", 1))
    if len(values) < need:
        report.findings.append(Finding("error", loc, f"values hold {len(values)} bytes, count needs {need}"))


def _check_value(value: Any, definition: dict[str, Any], enums: dict[str, Any]) -> str | None:
    """Why ``value`` does not fit a metadata property ``definition`` (None when it does)."""
    if definition.get("array"):
        if not isinstance(value, list):
            return "must be an array"
        if "count" in definition and len(value) != definition["count"]:
            return f"must have {definition['count']} elements"
        inner = {k: v for k, v in definition.items() if k not in ("array", "count")}
        for v in value:
            why = _check_value(v, inner, enums)
            if why:
                return f"element {why}"
        return None
    kind = definition.get("type")
    if kind == "STRING":
        return None if isinstance(value, str) else "must be a string"
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else "must be a boolean"
    if kind == "ENUM":
        names = {v["name"] for v in enums.get(definition.get("enumType") or "", {}).get("values", [])}
        return None if value in names else f"must be one of {sorted(names)}"
    if kind in _TYPE_COMPONENTS:
        n = _TYPE_COMPONENTS[kind]
        vals = value if n > 1 else [value]
        if n > 1 and (not isinstance(value, list) or len(value) != n):
            return f"must be {n} numbers"
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            return "must be numeric"
        comp = definition.get("componentType", "")
        if comp in _INT_RANGE and not definition.get("normalized"):
            lo, hi = _INT_RANGE[comp]
            if not all(float(v).is_integer() and lo <= v <= hi for v in vals):
                return f"must be {comp} integers"
        return None
    return f"has unknown type {kind!r}"


def _check_entity(entity: Any, schema: dict[str, Any] | None, where: str, report: ValidationReport) -> None:
    """A metadata entity (``class`` + ``properties``) against the schema."""
    if schema is None:
        report.findings.append(Finding("error", where, "metadata without a schema (schema or schemaUri)"))
        return
    if not isinstance(entity, dict) or "class" not in entity:
        report.findings.append(Finding("error", where, "metadata entity needs a class"))
        return
    cls = schema.get("classes", {}).get(entity["class"])
    if cls is None:
        report.findings.append(Finding("error", where, f"class {entity['class']!r} is not in the schema"))
        return
    props = cls.get("properties", {})
    for name, value in entity.get("properties", {}).items():
        if name not in props:
            report.findings.append(Finding("error", where, f"property {name!r} is not in class {entity['class']!r}"))
            continue
        why = _check_value(value, props[name], schema.get("enums", {}))
        if why:
            report.findings.append(Finding("error", where, f"property {name!r} {why}"))
    for name, definition in props.items():
        if definition.get("required") and name not in entity.get("properties", {}):
            report.findings.append(Finding("error", where, f"required property {name!r} is missing"))


def _extension_names(obj: Any) -> set[str]:
    """Names of every extension used anywhere in a JSON document."""
    names: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "extensions" and isinstance(v, dict):
                names |= set(v)
            names |= _extension_names(v)
    elif isinstance(obj, list):
        for v in obj:
            names |= _extension_names(v)
    return names


# --- the walk ---------------------------------------------------------------------------------

#: tiles nested deeper than this (external tilesets included) are not followed: a quadtree that
#: deep has tiles below a millimetre, so only a broken or hostile tileset gets there
MAX_TREE_DEPTH = 200


class _Walker:
    def __init__(self, report: ValidationReport, tol: float, glbs: list[Path]) -> None:
        self.report, self.tol, self.glbs = report, tol, glbs
        self.seen: set[Path] = set()
        self.depth = 0

    def add(self, severity: str, where: str, message: str) -> None:
        self.report.findings.append(Finding(severity, where, message))

    def tileset(self, path: Path, world: np.ndarray, parent: dict[str, Any] | None) -> None:
        path = path.resolve()
        if path in self.seen:
            self.add("error", str(path), "tileset references itself (a cycle of external tilesets)")
            return
        self.seen.add(path)
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.add("error", str(path), f"cannot read tileset JSON ({exc})")
            return
        except RecursionError:
            self.add("error", str(path), "cannot read tileset JSON (nested too deeply to parse)")
            return
        if not isinstance(doc, dict):
            self.add("error", str(path), "a tileset JSON must be an object")
            return
        self.report.tilesets += 1
        name = path.name
        asset = doc.get("asset")
        if not isinstance(asset, dict) or asset.get("version") not in ("1.0", "1.1"):
            got = asset.get("version") if isinstance(asset, dict) else None
            self.add("error", f"{name}: asset.version", f"asset.version is {got!r}, expected '1.1' or '1.0'")
        if not isinstance(doc.get("geometricError"), (int, float)) or doc["geometricError"] < 0:
            self.add("error", f"{name}: geometricError", "tileset geometricError must be a number >= 0")
        used = set(doc.get("extensionsUsed", []))
        required = set(doc.get("extensionsRequired", []))
        present = _extension_names({k: v for k, v in doc.items() if k not in ("extensionsUsed", "extensionsRequired")})
        for ext in sorted(present - used):
            self.add("error", f"{name}: extensionsUsed", f"extension {ext} is used but not declared in extensionsUsed")
        for ext in sorted(required - used):
            self.add("error", f"{name}: extensionsRequired", f"{ext} is required but not in extensionsUsed")
        for ext in sorted(used - present):
            self.add("warning", f"{name}: extensionsUsed", f"{ext} is declared but not used")
        schema = doc.get("schema")
        if "schemaUri" in doc:
            try:
                schema = json.loads((path.parent / doc["schemaUri"]).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                self.add("error", f"{name}: schemaUri", f"cannot read schema {doc['schemaUri']} ({exc})")
        if "metadata" in doc:
            _check_entity(doc["metadata"], schema, f"{name}: metadata", self.report)
        groups = doc.get("groups", [])
        for g, group in enumerate(groups):
            _check_entity(group, schema, f"{name}: groups[{g}]", self.report)
        root = doc.get("root")
        if not isinstance(root, dict):
            self.add("error", name, "no root tile")
            return
        if parent is None and root.get("refine") not in ("ADD", "REPLACE"):
            self.add("error", f"{name}: root", "the root tile must have refine ADD or REPLACE")
        top, first = doc.get("geometricError"), root.get("geometricError")
        if isinstance(top, (int, float)) and isinstance(first, (int, float)) and top < first:
            self.add("warning", f"{name}: geometricError", "the tileset's geometricError is below its root's")
        self.tile(path, root, "root", world, parent, schema, len(groups))

    def tile(self, ts: Path, tile: dict[str, Any], where: str, parent_world: np.ndarray,
             parent: dict[str, Any] | None, schema: dict[str, Any] | None, groups: int) -> None:
        if self.depth >= MAX_TREE_DEPTH:
            self.add("error", f"{ts.name}: {where}", f"tiles nested deeper than {MAX_TREE_DEPTH} levels: not followed")
            return
        self.depth += 1
        try:
            self._tile(ts, tile, where, parent_world, parent, schema, groups)
        finally:
            self.depth -= 1

    def _tile(self, ts: Path, tile: dict[str, Any], where: str, parent_world: np.ndarray,
              parent: dict[str, Any] | None, schema: dict[str, Any] | None, groups: int) -> None:
        if not isinstance(tile, dict):
            self.add("error", f"{ts.name}: {where}", "a tile must be an object")
            return
        self.report.tiles += 1
        label = f"{ts.name}: {where}"
        transform = tile.get("transform")
        if transform is not None and (not isinstance(transform, list) or len(transform) != 16):
            self.add("error", label, "transform must be 16 numbers")
            transform = None
        world = parent_world @ matrix_from_json(transform)
        volume = _volume(tile.get("boundingVolume"), world, f"{label}.boundingVolume", self.report)
        if parent is not None and parent.get("volume") is not None and volume is not None:
            outside = ~parent["volume"].contains(volume.samples(), self.tol)
            if outside.any():
                self.add("error", label, "bounding volume is not inside its parent's")
        ge = tile.get("geometricError")
        if not isinstance(ge, (int, float)) or ge < 0:
            self.add("error", label, "geometricError must be a number >= 0")
            ge = None
        elif parent is not None and parent.get("ge") is not None and ge > parent["ge"] + 1e-9:
            self.add("error", label, f"geometricError {ge} exceeds its parent's {parent['ge']}")
        if "refine" in tile and tile["refine"] not in ("ADD", "REPLACE"):
            self.add("error", label, f"refine must be ADD or REPLACE, not {tile['refine']!r}")
        if "metadata" in tile:
            _check_entity(tile["metadata"], schema, f"{label}.metadata", self.report)
        me = {"volume": volume, "ge": ge}
        if "implicitTiling" in tile:
            self.implicit(ts, tile, label, world, volume, ge, schema, groups)
            return
        contents = ([tile["content"]] if "content" in tile else []) + list(tile.get("contents", []))
        for k, content in enumerate(contents):
            self.content(ts, content, f"{where}.content" + (f"[{k}]" if "contents" in tile else ""),
                         world, volume, me, schema, groups)
        for i, child in enumerate(tile.get("children", [])):
            self.tile(ts, child, f"{where}/{i}", world, me, schema, groups)

    def implicit(self, ts: Path, tile: dict[str, Any], label: str, world: np.ndarray, volume: Volume | None,
                 ge: float | None, schema: dict[str, Any] | None, groups: int) -> None:
        """An implicit tree: its subtrees and availability, and every available content against
        the volume its tile derives from the root's (geometricError halves per level)."""
        tiling = tile["implicitTiling"]
        scheme = tiling.get("subdivisionScheme")
        if scheme not in ("QUADTREE", "OCTREE"):
            self.add("error", label, f"implicitTiling.subdivisionScheme must be QUADTREE or OCTREE, not {scheme!r}")
            return
        for key in ("subtreeLevels", "availableLevels"):
            if not isinstance(tiling.get(key), int) or tiling[key] < 1:
                self.add("error", label, f"implicitTiling.{key} must be an integer >= 1")
                return
        if not isinstance(tiling.get("subtrees"), dict) or not isinstance(tiling["subtrees"].get("uri"), str):
            self.add("error", label, "implicitTiling.subtrees.uri (a template URI) is missing")
            return
        if "children" in tile:
            self.add("error", label, "a tile with implicitTiling must not have children")
        contents = ([tile["content"]] if "content" in tile else []) + list(tile.get("contents", []))
        problems: list[str] = []
        n_tiles = 0
        for t in implicit.walk(ts.parent, tiling, len(contents), problems):
            n_tiles += 1
            self.report.tiles += 1
            where = f"{label} implicit {t.level}/{'/'.join(map(str, t.coords))}"
            sub_volume = None
            if volume is not None and volume.kind in ("box", "region"):
                values = (implicit.child_box(volume.values, t.level, t.coords) if volume.kind == "box"
                          else implicit.child_region(volume.values, t.level, t.coords))
                sub_volume = Volume(volume.kind, values, volume.world)
            me = {"volume": sub_volume, "ge": None if ge is None else ge / 2 ** t.level}
            for k, (content, present) in enumerate(zip(contents, t.contents, strict=True)):
                if not present:
                    continue
                uri = content.get("uri")
                if not isinstance(uri, str):
                    self.add("error", where, "content has no uri template")
                    continue
                concrete = dict(content, uri=implicit.expand_template(uri, t.level, *t.coords))
                self.content(ts, concrete, f"{where}.content[{k}]", world, sub_volume, me, schema, groups)
        for problem in problems:
            self.add("error", label, problem)
        if volume is not None and volume.kind not in ("box", "region"):
            self.add("info", label, f"implicit tiles of a {volume.kind} volume are not checked for containment")
        self.add("info", label, f"implicit tiling: {n_tiles} available tile(s) checked")

    def content(self, ts: Path, content: dict[str, Any], where: str, world: np.ndarray, volume: Volume | None,
                me: dict[str, Any], schema: dict[str, Any] | None, groups: int) -> None:
        label = f"{ts.name}: {where}"
        uri = content.get("uri", content.get("url"))
        if not isinstance(uri, str):
            self.add("error", label, "content has no uri")
            return
        if "metadata" in content:
            _check_entity(content["metadata"], schema, f"{label}.metadata", self.report)
        if "group" in content and not 0 <= content["group"] < groups:
            self.add("error", label, f"group {content['group']} does not exist")
        if "://" in uri:
            self.add("info", label, f"remote content {uri} is not checked")
            return
        target = ts.parent / uri.split("?")[0]
        if not target.is_file():
            self.add("error", label, f"content {uri} does not exist")
            return
        inner = volume
        if "boundingVolume" in content:
            inner = _volume(content["boundingVolume"], world, f"{label}.boundingVolume", self.report)
            if inner is not None and volume is not None and not volume.contains(inner.samples(), self.tol).all():
                self.add("error", label, "content bounding volume is not inside the tile's")
        if target.suffix.lower() == ".json":
            self.tileset(target, world, me)
            return
        self.report.contents += 1
        try:
            pts = self.positions(target, label)
        except (ValueError, KeyError, IndexError, struct.error) as exc:
            self.add("error", label, f"cannot read content {uri} ({exc})")
            return
        if pts is None:
            return
        for vol in {id(v): v for v in (volume, inner) if v is not None}.values():
            world_pts = pts @ world[:3, :3].T + world[:3, 3]
            outside = ~vol.contains(world_pts, self.tol)
            if outside.any():
                # the official validator does not look inside content: a hair outside (float32
                # positions, quantization) is reported as a warning, a real miss as an error
                slack = max(SLIGHTLY_OUTSIDE_M, SLIGHTLY_OUTSIDE_SHARE * vol.size())
                far = ~vol.contains(world_pts[outside], slack)
                which = f"the {'content ' if vol is not volume else ''}bounding volume"
                if far.any():
                    self.add("error", label, f"{int(far.sum())} of {len(pts)} positions of {uri} lie outside "
                                             f"{which} by more than {slack:.3g} m")
                else:
                    self.add("warning", label, f"{int(outside.sum())} of {len(pts)} positions of {uri} lie "
                                               f"slightly outside {which} (within {slack:.3g} m)")

    def positions(self, target: Path, label: str) -> np.ndarray | None:
        data = target.read_bytes()
        magic = data[:4]
        if magic == b"glTF":
            doc, binary = read_glb(data)
            self.glbs.append(target)
            _check_structural_metadata(doc, binary, target.parent, label, self.report)
            return gltf_positions(doc, binary)
        if magic == b"b3dm":
            pos, doc, binary = b3dm_positions(data)
            _check_structural_metadata(doc, binary, target.parent, label, self.report)
            return pos
        if magic == b"pnts":
            return pnts_positions(data)
        if magic in (b"i3dm", b"cmpt"):
            self.add("info", label, f"{magic.decode()} content is not checked for containment")
            return None
        if target.suffix.lower() == ".gltf":
            self.add("info", label, "glTF JSON content is not checked for containment")
            return None
        raise ValueError("unknown content format")


#: the checksum list a published bundle carries (``sha256sum -c`` format)
SUMS = "SHA256SUMS"


def _check_sums(folder: Path, report: ValidationReport) -> None:
    """Every file a bundle's SHA256SUMS lists must still have its checksum: a changed byte in a
    published file is an error, as a missing file is (``bundle_check.check_sums`` decides)."""
    from pipeline.core.bundle_check import check_sums

    report.findings += [Finding("error", p.file, p.message) for p in check_sums(folder)]


def validate_tileset(path: str | Path, *, tol: float = 1e-3, gltf: bool = True) -> ValidationReport:
    """Validate the tileset at ``path`` (a tileset JSON or a folder holding ``tileset.json``) and
    every external tileset and content it references. ``tol`` is the containment slack in
    metres; ``gltf`` runs the Khronos glTF validator on every GLB (raises ``ValidatorMissing``
    when it is not installed)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tileset.json"
    report = ValidationReport()
    glbs: list[Path] = []
    _Walker(report, tol, glbs).tileset(path, np.eye(4), None)
    if (path.parent / SUMS).is_file():
        _check_sums(path.parent, report)
    if gltf and glbs:
        from pipeline.core import gltf_validator

        for r in gltf_validator.validate(sorted(set(glbs))):
            report.gltf_validated += 1
            for msg in r["messages"]:
                severity, code, pointer, text = (msg.split(":", 3) + ["", "", ""])[:4]
                kind = {"0": "error", "1": "warning"}.get(severity, "info")
                if kind == "info" and code in ("UNSUPPORTED_EXTENSION", "UNUSED_OBJECT"):
                    continue  # metadata and compression extensions the validator cannot read
                report.findings.append(Finding(kind, f"{Path(r['file']).name}{pointer}", f"glTF {code}: {text}"))
    return report
