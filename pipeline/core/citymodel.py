"""City models: the buildings of a CityJSON (1.0-2.0) or CityGML (2.0, 3.0) file as triangle
meshes in the file's own CRS, each triangle with its surface kind (:mod:`pipeline.core.surfaces`).

A building is a city object of type Building with its BuildingParts; its geometry is that of the
highest level of detail it has (LoD1 solids, LoD2 roof, wall and ground surfaces). Polygons,
holes included (an inner courtyard's roof and ground), are triangulated in their own plane
with earcut (mapbox-earcut); each triangle faces the way its polygon does. CityJSON is read
as plain JSON (its integer vertices scaled by its ``transform``), CityGML with lxml; neither
library does this for us: cjio triangulates only for export and drops the semantics per triangle.
Openings (windows, doors), installations and interior surfaces are left out: they lie on the
outer shell and would z-fight with it.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.surfaces import SEMANTIC_KINDS, UNLABELLED
from pipeline.errors import FeatureSkippedWarning, InputError

CITYJSON_SUFFIXES = (".json", ".cityjson", ".jsonl")
CITYGML_SUFFIXES = (".gml", ".xml", ".citygml")
#: CityGML elements whose polygons are not the building's outer shell
_LEFT_OUT = {"Window", "Door", "BuildingInstallation", "IntBuildingInstallation", "Room", "InteriorWallSurface",
             "FloorSurface", "CeilingSurface", "BuildingFurniture", "Opening", "BuildingConstructiveElement"}
_LOD = re.compile(r"^lod(\d)")


@dataclass
class CityBuilding:
    """One building: its object id, flat attributes (CityJSON's ``attributes``; CityGML's simple
    properties and generic attributes, by local name), the level of detail used ("LoD1", "LoD2",
    ...), vertices (V, 3) in the file's CRS and units, faces (F, 3) and each face's surface code
    (:data:`~pipeline.core.surfaces.UNLABELLED` where the file gives none)."""

    id: str
    attributes: dict[str, Any]
    lod: str
    vertices: np.ndarray
    faces: np.ndarray
    surfaces: np.ndarray


@dataclass
class CityModel:
    """A city model file: its format ("CityJSON 2.0", "CityGML 2.0", ...), the CRS it declares
    (as written, None when it declares none), its buildings and the ones skipped (id, reason)."""

    path: str
    format: str
    crs: str | None
    buildings: list[CityBuilding]
    skipped: list[dict[str, str]] = field(default_factory=list)


class _BadFeature(ValueError):
    """A building this file cannot give: skipped with a warning naming it."""


def _newell_normal(p: np.ndarray) -> np.ndarray:
    """The (unnormalised) normal of a closed ring by Newell's method: area-weighted, robust to
    slightly non-planar rings and collinear runs."""
    q = np.roll(p, -1, axis=0)
    return np.array([np.sum((p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2])),
                     np.sum((p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0])),
                     np.sum((p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1]))])


def triangulate_polygon(rings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3), triangles (T, 3)) of a planar polygon given as its exterior ring and
    hole rings ((n, 3) each; a repeated closing point is dropped). Triangles face along the
    exterior ring's normal (counter-clockwise seen from the front). Empty for a degenerate ring."""
    import mapbox_earcut

    clean = []
    for r in rings:
        r = np.asarray(r, np.float64)
        if len(r) > 1 and np.array_equal(r[0], r[-1]):
            r = r[:-1]
        if len(r) >= 3:
            clean.append(r)
    if not clean:
        return np.empty((0, 3)), np.empty((0, 3), np.int64)
    centre = clean[0].mean(axis=0)
    # centred: Newell's sums and the plane projection lose nothing to coordinates of 10^5-10^6 m
    clean = [r - centre for r in clean]
    normal = _newell_normal(clean[0])
    length = np.linalg.norm(normal)
    if length == 0 or not np.isfinite(length):
        return np.empty((0, 3)), np.empty((0, 3), np.int64)
    nx, ny, nz = normal / length
    # an in-plane basis: u across the normal's smallest component, v = n x u (right-handed, so
    # counter-clockwise in (u, v) faces along n); numpy's cross costs more than these few products
    if abs(nx) <= abs(ny) and abs(nx) <= abs(nz):
        u = np.array([0.0, nz, -ny])
    elif abs(ny) <= abs(nz):
        u = np.array([-nz, 0.0, nx])
    else:
        u = np.array([ny, -nx, 0.0])
    u /= np.sqrt(u @ u)
    v = np.array([ny * u[2] - nz * u[1], nz * u[0] - nx * u[2], nx * u[1] - ny * u[0]])
    pts = np.concatenate(clean)
    xy = np.column_stack([pts @ u, pts @ v])
    ends = np.cumsum([len(r) for r in clean]).astype(np.uint32)
    tri = np.asarray(mapbox_earcut.triangulate_float64(xy, ends), np.int64).reshape(-1, 3)
    if len(tri):
        # the triangles' orientation in (u, v): positive area faces along the normal
        a, b, c = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
        area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        tri = np.where((area < 0)[:, None], tri[:, ::-1], tri)
    return pts + centre, tri


def _convex_fans(rings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """For single-ring polygons (each (n, 3), not closed): which are convex and planar enough to
    fan from their first corner (all turns one way about their Newell normal), and those fans'
    triangles as indices into the rings concatenated. Walls and roof planes are nearly all such,
    and one vectorised pass over them all spares earcut's per-polygon cost."""
    lens = np.array([len(r) for r in rings])
    start = np.cumsum(lens) - lens
    pts = np.concatenate(rings)
    centre = np.add.reduceat(pts, start, axis=0) / lens[:, None]
    local = pts - np.repeat(centre, lens, axis=0)
    nxt = np.arange(len(pts)) + 1
    nxt[start + lens - 1] = start
    p, q = local, local[nxt]
    normal = np.add.reduceat(np.column_stack([(p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2]),
                                              (p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0]),
                                              (p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1])]), start, axis=0)
    length = np.linalg.norm(normal, axis=1)
    unit = normal / np.where(length > 0, length, 1.0)[:, None]
    edge = q - p
    turn = np.einsum("ij,ij->i", np.cross(edge, edge[nxt]), np.repeat(unit, lens, axis=0))
    size = np.linalg.norm(edge, axis=1) * np.linalg.norm(edge[nxt], axis=1)
    convex = np.logical_and.reduceat(turn >= -1e-9 * size, start) & (length > 0)
    fan_start, fan_len = start[convex], lens[convex]
    count = fan_len - 2
    first = np.repeat(fan_start, count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + 1
    return convex, np.column_stack([first, first + k, first + k + 1])


Polygons = list[tuple[list[np.ndarray], int]]


def _assemble(groups: list[Polygons]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One welded mesh (vertices, faces, surface codes) per group of (rings, surface code)
    polygons (a building's): the convex single-ring polygons of every group fanned in one pass,
    the rest (holes, concave outlines) by earcut one by one; coincident corners of a group merged."""
    single = [(g, rings[0], kind) for g, polys in enumerate(groups) for rings, kind in polys
              if len(rings) == 1 and len(rings[0]) >= 3]
    rest = [(g, rings, kind) for g, polys in enumerate(groups) for rings, kind in polys
            if not (len(rings) == 1 and len(rings[0]) >= 3)]
    verts, faces, kinds, v_owner, f_owner = [], [], [], [], []
    offset = 0
    if single:
        lens = np.array([len(r) for _, r, _ in single])
        convex, fans = _convex_fans([r for _, r, _ in single])
        owners = np.array([g for g, _, _ in single])
        fanned = np.flatnonzero(convex)
        per_fan = np.repeat(fanned, lens[convex] - 2)
        verts.append(np.concatenate([r for _, r, _ in single]))
        v_owner.append(np.repeat(owners, lens))
        faces.append(fans)
        kinds.append(np.array([k for _, _, k in single], np.uint8)[per_fan])
        f_owner.append(owners[per_fan])
        offset = len(verts[0])
        rest += [(single[i][0], [single[i][1]], single[i][2]) for i in np.flatnonzero(~convex)]
    for g, rings, kind in rest:
        v, t = triangulate_polygon(rings)
        if not len(t):
            continue
        verts.append(v)
        v_owner.append(np.full(len(v), g))
        faces.append(t + offset)
        kinds.append(np.full(len(t), kind, np.uint8))
        f_owner.append(np.full(len(t), g))
        offset += len(v)
    empty = (np.empty((0, 3)), np.empty((0, 3), np.int64), np.empty(0, np.uint8))
    if not sum(len(f) for f in faces):
        return [empty] * len(groups)
    # one weld for every group: rows (group, x, y, z) sort by group, so each group's corners are
    # one run of the unique rows
    keys, inverse = np.unique(np.column_stack([np.concatenate(v_owner).astype(np.float64), np.concatenate(verts)]),
                              axis=0, return_inverse=True)
    tri = inverse.ravel()[np.concatenate(faces)]
    owner, codes = np.concatenate(f_owner), np.concatenate(kinds)
    keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    tri, owner, codes = tri[keep], owner[keep], codes[keep]
    order = np.argsort(owner, kind="stable")
    tri, owner, codes = tri[order], owner[order], codes[order]
    v_start = np.searchsorted(keys[:, 0], np.arange(len(groups) + 1))
    f_start = np.searchsorted(owner, np.arange(len(groups) + 1))
    return [(keys[v_start[g]:v_start[g + 1], 1:], tri[f_start[g]:f_start[g + 1]] - v_start[g],
             codes[f_start[g]:f_start[g + 1]]) for g in range(len(groups))]


class _Collected:
    """Buildings as a reader finds them (id, attributes, level of detail, polygons) and the ones
    it skips; triangulated together once the file is read."""

    def __init__(self) -> None:
        self.found: list[tuple[str, dict[str, Any], str, Polygons]] = []
        self.skipped: list[dict[str, str]] = []

    def add(self, oid: str, attrs: dict[str, Any], lod: str, polygons: Polygons) -> None:
        if not polygons:
            raise _BadFeature("no surface geometry")
        if any(not np.isfinite(r).all() for rings, _ in polygons for r in rings):
            raise _BadFeature("non-finite coordinates")
        self.found.append((oid, attrs, lod, polygons))

    def skip(self, oid: str, exc: Exception) -> None:
        reason = str(exc) if isinstance(exc, _BadFeature) else f"malformed geometry ({type(exc).__name__}: {exc})"
        self.skipped.append({"feature": oid, "reason": reason})

    def buildings(self) -> list[CityBuilding]:
        out = []
        for (oid, attrs, lod, _), (v, f, k) in zip(self.found, _assemble([p for *_, p in self.found]), strict=True):
            if len(f):
                out.append(CityBuilding(oid, attrs, lod, v, f, k))
            else:
                self.skipped.append({"feature": oid, "reason": "every polygon is degenerate (no area)"})
        return out


def _lod_label(value: float) -> str:
    return f"LoD{int(value)}"


# ---------------------------------------------------------------- CityJSON


def _cityjson_surfaces(geom: dict[str, Any]) -> list[tuple[list[list[int]], Any]]:
    """(rings as vertex indices, semantic surface index or None) of every surface of a geometry."""
    kind, bounds = geom.get("type"), geom.get("boundaries") or []
    values = (geom.get("semantics") or {}).get("values")
    if kind in ("MultiSurface", "CompositeSurface"):
        depth = 0
    elif kind == "Solid":
        depth = 1
    elif kind in ("MultiSolid", "CompositeSolid"):
        depth = 2
    else:
        raise _BadFeature(f"geometry type {kind!r} is not a surface or solid (geometry templates and "
                          "points are not read)")
    out: list[tuple[list[list[int]], Any]] = []

    def walk(b: Any, vals: Any, level: int) -> None:
        if level == 0:
            for k, surface in enumerate(b):
                out.append((surface, vals[k] if isinstance(vals, list) and k < len(vals) else None))
            return
        for k, part in enumerate(b):
            walk(part, vals[k] if isinstance(vals, list) and k < len(vals) else None, level - 1)

    walk(bounds, values, depth)
    return out


def _cityjson_polygons(obj: dict[str, Any], vertices: np.ndarray) -> tuple[list[tuple[list[np.ndarray], int]], float]:
    """The polygons of an object's highest level of detail, and that level (-1: no geometry)."""
    geoms = [g for g in obj.get("geometry") or [] if g.get("type") != "GeometryInstance"]
    if not geoms:
        if obj.get("geometry"):
            raise _BadFeature("only geometry templates (GeometryInstance), which are not read")
        return [], -1.0
    lods = [float(g.get("lod", 0)) for g in geoms]
    best = max(lods)
    polygons = []
    for g, lod in zip(geoms, lods, strict=True):
        if lod != best:
            continue
        semantic = (g.get("semantics") or {}).get("surfaces") or []
        for rings, sem in _cityjson_surfaces(g):
            idx = [np.asarray(r, dtype=np.int64) for r in rings]
            for r in idx:
                if r.ndim != 1:
                    raise _BadFeature("a ring that is not a list of vertex indices")
                bad = r[(r < 0) | (r >= len(vertices))]
                if len(bad):
                    raise _BadFeature(f"vertex index {bad[0]} out of range (the file has {len(vertices):,} vertices)")
            kind = UNLABELLED
            if isinstance(sem, int) and 0 <= sem < len(semantic):
                kind = SEMANTIC_KINDS.get(str(semantic[sem].get("type")), SEMANTIC_KINDS["ClosureSurface"])
            polygons.append(([vertices[r] for r in idx], kind))
    return polygons, best


def read_cityjson(path: Path) -> CityModel:
    """The buildings of a CityJSON file (1.0, 1.1 or 2.0; a CityJSONSequence ``.jsonl`` too)."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".jsonl":
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            doc, features = lines[0], lines[1:]
        else:
            doc, features = json.loads(text), []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable CityJSON file ({type(exc).__name__}: {exc})", path=path) from None
    if not isinstance(doc, dict) or doc.get("type") != "CityJSON":
        raise InputError("not a CityJSON file (its root object has no \"type\": \"CityJSON\")", path=path)
    version = str(doc.get("version", "?"))
    scale = np.asarray((doc.get("transform") or {}).get("scale", [1, 1, 1]), np.float64)
    translate = np.asarray((doc.get("transform") or {}).get("translate", [0, 0, 0]), np.float64)
    chunks = [(doc.get("CityObjects") or {}, doc.get("vertices") or [])]
    chunks += [(f.get("CityObjects") or {}, f.get("vertices") or []) for f in features]
    crs = (doc.get("metadata") or {}).get("referenceSystem")
    found = _Collected()
    for objects, raw in chunks:
        try:
            vertices = np.asarray(raw, np.float64).reshape(-1, 3) * scale + translate
        except ValueError:
            raise InputError("its vertices are not a list of [x, y, z] triples", path=path) from None
        for oid, obj in objects.items():
            if obj.get("type") != "Building" or obj.get("parents"):
                continue
            try:
                polygons, lod = _cityjson_polygons(obj, vertices)
                attrs = dict(obj.get("attributes") or {})
                for child in obj.get("children") or []:
                    part = objects.get(child)
                    if part is None or part.get("type") != "BuildingPart":
                        continue
                    more, part_lod = _cityjson_polygons(part, vertices)
                    polygons += more
                    lod = max(lod, part_lod)
                    attrs = dict(part.get("attributes") or {}) | attrs
                found.add(str(oid), attrs, _lod_label(lod), polygons)
            except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:  # _BadFeature too
                found.skip(str(oid), exc)
    return CityModel(str(path), f"CityJSON {version}", crs, found.buildings(), found.skipped)


# ---------------------------------------------------------------- CityGML


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _ring(elem: Any, dim: int) -> np.ndarray:
    """Coordinates (n, 3) of a gml:LinearRing (posList, pos list, or the old gml:coordinates)."""
    for child in elem:
        name = _local(child.tag)
        if name == "posList":
            d = int(child.get("srsDimension") or dim)
            vals = np.array((child.text or "").split(), np.float64)
            if d != 3 or len(vals) % 3:
                raise _BadFeature(f"a ring with {d}-D or incomplete coordinates (3-D posList expected)")
            return vals.reshape(-1, 3)
        if name == "coordinates":
            return np.array([t.split(",") for t in (child.text or "").split()], np.float64).reshape(-1, 3)
    pos = [np.array((p.text or "").split(), np.float64) for p in elem if _local(p.tag) == "pos"]
    if pos and all(len(p) == 3 for p in pos):
        return np.array(pos)
    raise _BadFeature("a ring without 3-D coordinates")


def _polygon_rings(poly: Any, dim: int) -> list[np.ndarray]:
    """A gml:Polygon's rings, exterior first, each without GML's repeated closing point."""
    rings = []
    for boundary in poly:
        if _local(boundary.tag) in ("exterior", "interior", "outerBoundaryIs", "innerBoundaryIs"):
            for ring in boundary:
                if _local(ring.tag) == "LinearRing":
                    r = _ring(ring, dim)
                    rings.append(r[:-1] if len(r) > 1 and np.array_equal(r[0], r[-1]) else r)
    return rings


def _gml_attributes(building: Any) -> dict[str, Any]:
    """Simple properties (by local name), gml:name as ``name``, and generic attributes."""
    attrs: dict[str, Any] = {}
    for child in building:
        name = _local(child.tag)
        if name.endswith("Attribute") or name == "genericAttribute":
            # CityGML 2.0: <gen:stringAttribute name="n"><gen:value>v</gen:value>; 3.0 wraps
            # <gen:StringAttribute><gen:name>n</gen:name><gen:value>v</gen:value> in genericAttribute
            items = [child] if child.get("name") else list(child)
            for item in items:
                key = item.get("name") or next((c.text for c in item if _local(c.tag) == "name"), None)
                value = next((c.text for c in item if _local(c.tag) == "value"), None)
                if key:
                    attrs[key.strip()] = value.strip() if isinstance(value, str) else value
        elif len(child) == 0 and child.text and child.text.strip():
            attrs.setdefault(name, child.text.strip())
    return attrs


def _gml_polygons(building: Any, dim: int) -> tuple[list[tuple[list[np.ndarray], int]], float]:
    """Polygons of the building's (and its parts') highest level of detail with their kinds."""
    found: list[tuple[float, list[np.ndarray], int]] = []
    for poly in building.iter("{*}Polygon"):
        lod, kind, left_out = -1.0, UNLABELLED, False
        node = poly.getparent()
        while node is not None and node is not building.getparent():
            name = _local(node.tag)
            match = _LOD.match(name)
            if match and lod < 0:
                lod = float(match.group(1))
            if name in _LEFT_OUT:
                left_out = True
                break
            if kind == UNLABELLED and name in SEMANTIC_KINDS:
                kind = SEMANTIC_KINDS[name]
            node = node.getparent()
        if not left_out:
            found.append((lod, _polygon_rings(poly, dim), kind))
    if not found:
        return [], -1.0
    best = max(lod for lod, _, _ in found)
    return [(rings, kind) for lod, rings, kind in found if lod == best], best


def read_citygml(path: Path) -> CityModel:
    """The buildings of a CityGML 1.0, 2.0 or 3.0 file (bldg:Building and its BuildingParts)."""
    from lxml import etree

    try:
        tree = etree.parse(str(path), etree.XMLParser(huge_tree=True, resolve_entities=False))
    except (OSError, etree.XMLSyntaxError) as exc:
        raise InputError(f"not a readable CityGML file ({type(exc).__name__}: {exc})", path=path) from None
    root = tree.getroot()
    namespaces = " ".join(v for v in (root.nsmap or {}).values() if v)
    version = next((v for v in ("3.0", "2.0", "1.0") if f"citygml/{v}" in namespaces), "?")
    if _local(root.tag) != "CityModel" and "citygml" not in namespaces:
        raise InputError(f"not a CityGML file (its root element is {_local(root.tag)!r}, not CityModel)", path=path)
    envelope = next(root.iter("{*}Envelope"), None)
    crs = envelope.get("srsName") if envelope is not None else None
    if crs is None:
        crs = next((e.get("srsName") for e in root.iter() if isinstance(e.tag, str) and e.get("srsName")), None)
    dim = int(envelope.get("srsDimension") or 3) if envelope is not None else 3
    found = _Collected()
    for n, b in enumerate(root.iter("{*}Building")):
        oid = next((v for k, v in b.attrib.items() if _local(k) == "id"), None) or f"building-{n}"
        try:
            polygons, lod = _gml_polygons(b, dim)
            found.add(oid, _gml_attributes(b), _lod_label(lod), polygons)
        except (TypeError, ValueError) as exc:  # _BadFeature too
            found.skip(oid, exc)
    if not found.found and not found.skipped:
        raise InputError(f"no buildings (bldg:Building) in this CityGML {version} file", path=path)
    return CityModel(str(path), f"CityGML {version}", crs, found.buildings(), found.skipped)


def read_city_model(path: str | Path, fmt: str = "auto") -> CityModel:
    """The buildings of a city model file (``fmt`` cityjson, citygml or auto: by suffix). Raises
    :class:`InputError` when the file is unreadable or holds no building it can use; warns,
    naming each, of buildings it skips."""
    path = Path(path)
    if not path.is_file():
        raise InputError("city model file not found", path=path)
    if fmt == "auto":
        if path.suffix.lower() in CITYJSON_SUFFIXES:
            fmt = "cityjson"
        elif path.suffix.lower() in CITYGML_SUFFIXES:
            fmt = "citygml"
        else:
            raise InputError(f"cannot tell the city model format from {path.suffix!r} (CityJSON: "
                             f"{', '.join(CITYJSON_SUFFIXES)}; CityGML: {', '.join(CITYGML_SUFFIXES)}); set format",
                             path=path)
    model = read_cityjson(path) if fmt == "cityjson" else read_citygml(path)
    for s in model.skipped:
        warnings.warn(f"{path.name}: building {s['feature']}: skipped, {s['reason']}", FeatureSkippedWarning,
                      stacklevel=2)
    if not model.buildings:
        reasons = "; ".join(f"{s['feature']}: {s['reason']}" for s in model.skipped[:3])
        raise InputError(f"no usable building in this {model.format} file"
                         + (f" ({reasons})" if reasons else ""), path=path)
    return model
