"""GLB tile content: triangle meshes (buildings with feature IDs and metadata, terrain) and point
clouds, in four encodings.

Inputs are ENU metres (float64); the GLB's root node carries the translation (and, when
positions are quantized, the scale) that restores them, in the glTF y-up frame, so nothing is
lost to float32. Mesh encodings (``compression``):

- ``none``: float32 positions and normals, the uncompressed reference;
- ``quantized``: KHR_mesh_quantization, unsigned 16-bit positions over the content's box with
  one scale for all axes (so normals need no correction) and signed 8-bit normals;
- ``meshopt``: the quantized layout, triangles reordered for the vertex cache and vertices for
  fetch locality, every buffer view EXT_meshopt_compression-encoded (needs the meshopt extra);
- ``draco``: KHR_draco_mesh_compression (DracoPy), 16-bit positions, 10-bit normals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.core.arrayops import column_bounds
from pipeline.core.gltf import (FLOAT, POINTS, TRIANGLES, UNSIGNED_BYTE, UNSIGNED_INT, UNSIGNED_SHORT,
                                GltfBuilder, enu_to_gltf, string_column)
from pipeline.core.meshing import face_normals
from pipeline.core.surfaces import SURFACE_KINDS

COMPRESSIONS = ("draco", "meshopt", "quantized", "none")
#: Draco's attribute type of attributes that are not positions, normals, colours or texture coordinates
DRACO_GENERIC = 4

#: RGB (0-255) per building use; unknown uses get the last colour
USE_COLOURS: dict[str, tuple[int, int, int]] = {
    "broadcast": (96, 140, 200), "office": (190, 190, 185), "retail": (215, 170, 120),
    "public": (150, 185, 150), "culture": (200, 140, 170), "transport": (120, 120, 135),
    "stadium": (230, 230, 235), "residential": (205, 140, 110), "proposed": (240, 200, 90),
    "other": (175, 175, 175),
}

TERRAIN_COLOUR = [0.55, 0.6, 0.45, 1.0]

#: EXT_structural_metadata class of a building (one property table row per building in a tile)
BUILDING_SCHEMA: dict[str, Any] = {
    "id": "dmc_twin_buildings",
    "classes": {"building": {
        "name": "Building",
        "description": "A building of the Sangam DMC twin. Heights are metres, orthometric (above the geoid).",
        "properties": {
            "id": {"type": "STRING", "description": "Stable building id (anchors refer to it)"},
            "name": {"type": "STRING"},
            "use": {"type": "STRING"},
            "floors": {"type": "SCALAR", "componentType": "UINT16", "noData": 0},
            "floors_below": {"type": "SCALAR", "componentType": "UINT16", "noData": 65535,
                             "description": "Floors below ground (none: 0; not known: no data)"},
            "height": {"type": "SCALAR", "componentType": "FLOAT32",
                       "description": "Highest roof point minus ground height, metres"},
            "ground_height": {"type": "SCALAR", "componentType": "FLOAT32",
                              "description": "Orthometric ground height, metres"},
            "roof_height": {"type": "SCALAR", "componentType": "FLOAT32",
                            "description": "Orthometric height of the highest roof point, metres"},
            "roof_type": {"type": "STRING", "description": "flat, shed, gable, hip (LoD2), or empty"},
            "lod": {"type": "STRING", "description": "LoD2, LoD1 or imported (the full-detail model)"},
            "source": {"type": "STRING", "description": "Where the height came from: lidar, register (the "
                                                        "building register's height), attribute (the footprint "
                                                        "layer's), register floors, floors, default or model"},
            "approval_date": {"type": "STRING", "description": "Use approval date (사용승인일) from the building "
                                                               "register, YYYY-MM-DD, or empty"},
            "proposed": {"type": "BOOLEAN", "description": "A design proposal, not a built building"},
            "replaces": {"type": "STRING",
                         "description": "Id of the standing building a proposal would replace, or empty"},
            "sunlight_fail_share": {"type": "SCALAR", "componentType": "FLOAT32", "noData": -1.0,
                                    "description": "Share (0-1) of the building's windows failing the sunlight "
                                                   "test as the district stands (a proposal: with it built)"},
        }},
        "surface": {
            "name": "Surface",
            "description": "Per vertex (property attribute _SURFACE): the kind of surface its triangle belongs "
                           "to, as a city model states it (CityGML/CityJSON semantics), else from the triangle's "
                           "normal.",
            "properties": {"kind": {"type": "SCALAR", "componentType": "UINT8", "required": True,
                                    "description": ", ".join(f"{code} {name}" for code, name in
                                                             enumerate(SURFACE_KINDS))}}}},
}


@dataclass
class MeshData:
    """An indexed triangle mesh ready to encode: ``positions`` / ``normals`` (V, 3) ENU,
    ``faces`` (F, 3), optional ``colours`` (V, 4) uint8, ``features`` (V,) feature IDs and
    ``surfaces`` (V,) surface codes (:data:`~pipeline.core.surfaces.SURFACE_KINDS`)."""

    positions: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    colours: np.ndarray | None = None
    features: np.ndarray | None = None
    surfaces: np.ndarray | None = None


def flat_mesh(vertices: np.ndarray, faces: np.ndarray, face_feature: np.ndarray | None = None,
              feature_colours: np.ndarray | None = None, face_surface: np.ndarray | None = None) -> MeshData:
    """Flat-shaded mesh: a vertex per (corner, face normal, feature, surface), so coplanar
    triangles of a wall or roof share their vertices and edges between faces keep sharp normals."""
    f = np.asarray(faces, np.int64)
    n = face_normals(vertices, f)
    corner = f.ravel()
    nrm = np.repeat(np.round(n, 4), 3, axis=0)
    feat = np.repeat(face_feature, 3) if face_feature is not None else np.zeros(len(corner), np.int64)
    surf = np.repeat(face_surface, 3) if face_surface is not None else np.zeros(len(corner), np.int64)
    key = np.column_stack([corner.astype(np.float64), nrm, feat.astype(np.float64), surf.astype(np.float64)])
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    first_order = np.argsort(first, kind="stable")
    rank = np.empty_like(first_order)
    rank[first_order] = np.arange(len(first_order))
    corners = first[first_order]
    out_faces = rank[inverse.ravel()].reshape(-1, 3)
    normals = np.repeat(n, 3, axis=0)[corners]
    features = feat[corners] if face_feature is not None else None
    surfaces = surf[corners].astype(np.uint8) if face_surface is not None else None
    colours = None
    if feature_colours is not None and features is not None:
        colours = feature_colours[features]
    return MeshData(np.asarray(vertices, np.float64)[corner[corners]], normals, out_faces, colours, features,
                    surfaces)


def smooth_mesh(vertices: np.ndarray, faces: np.ndarray) -> MeshData:
    """Mesh with area-weighted vertex normals (terrain)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], cross)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    return MeshData(v, vn, f)


def _feature_dtype(count: int) -> np.dtype:
    return np.dtype(np.uint8) if count <= 255 else np.dtype(np.uint16) if count <= 65535 else np.dtype(np.float32)


def _optimize_order(mesh: MeshData) -> MeshData:
    """Triangles in vertex-cache order (meshoptimizer), vertices in first-use order: what the
    meshopt codecs compress best."""
    import meshoptimizer

    idx = np.ascontiguousarray(mesh.faces.ravel().astype(np.uint32))
    dest = np.zeros_like(idx)
    meshoptimizer.optimize_vertex_cache(dest, idx, len(idx), len(mesh.positions))
    _, first = np.unique(dest, return_index=True)
    order = np.unique(dest)[np.argsort(first, kind="stable")]
    remap = np.empty(len(mesh.positions), np.int64)
    remap[order] = np.arange(len(order))

    def take(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[order]

    return MeshData(mesh.positions[order], mesh.normals[order], remap[dest].reshape(-1, 3),
                    take(mesh.colours), take(mesh.features), take(mesh.surfaces))


def _metadata(b: GltfBuilder, records: list[dict[str, Any]], schema_uri: str | None, surfaces: bool) -> None:
    """EXT_structural_metadata property table of ``records`` (one row each, in feature-ID order)
    and, with ``surfaces``, the property attribute of surface kinds, with the schema inline or,
    given ``schema_uri``, in a file shared by every tile."""
    props: dict[str, Any] = {}
    for key, src in (("id", "id"), ("name", "name"), ("use", "use"), ("roof_type", "roof_type"),
                     ("lod", "lod"), ("source", "height_source"), ("replaces", "replaces"),
                     ("approval_date", "approval_date")):
        values, offsets = string_column([str(r.get(src) or "") for r in records])
        if not values:
            continue  # all empty: a table may leave a property out, a buffer view may not be empty
        props[key] = {"values": b.buffer_view(values), "stringOffsets": b.buffer_view(offsets),
                      "stringOffsetType": "UINT32"}
    props["floors"] = {"values": b.buffer_view(
        np.array([int(r.get("floors") or 0) for r in records], np.uint16).tobytes())}
    props["floors_below"] = {"values": b.buffer_view(np.array(
        [65535 if r.get("floors_below") is None else int(r["floors_below"]) for r in records], np.uint16).tobytes())}
    for key in ("height", "ground_height", "roof_height"):
        props[key] = {"values": b.buffer_view(np.array([r[key] for r in records], np.float32).tobytes())}
    shares = [r.get("sunlight_fail_share") for r in records]
    if any(v is not None for v in shares):
        props["sunlight_fail_share"] = {"values": b.buffer_view(
            np.array([-1.0 if v is None else v for v in shares], np.float32).tobytes())}
    # BOOLEAN values are a bitstream, least significant bit first (EXT_structural_metadata)
    props["proposed"] = {"values": b.buffer_view(np.packbits(
        np.array([bool(r.get("proposed")) for r in records]), bitorder="little").tobytes())}
    b.extension("EXT_mesh_features")
    schema: dict[str, Any] = {"schemaUri": schema_uri} if schema_uri else {"schema": BUILDING_SCHEMA}
    tables = [{"name": "buildings", "class": "building", "count": len(records), "properties": props}]
    attributes = {"propertyAttributes": [{"class": "surface", "properties": {"kind": {"attribute": "_SURFACE"}}}]}
    b.extension("EXT_structural_metadata", schema | {"propertyTables": tables} | (attributes if surfaces else {}))


def _quantized(b: GltfBuilder, mesh: MeshData) -> tuple[dict[str, int], np.ndarray, float]:
    """KHR_mesh_quantization attributes: (accessors, node translation, node scale), glTF frame."""
    g = enu_to_gltf(mesh.positions)
    lo, hi = column_bounds(g)
    step = max(float((hi - lo).max()), 1e-6) / 65535.0
    q = np.round((g - lo) / step).astype(np.uint16)
    n = np.round(enu_to_gltf(mesh.normals) * 127.0).astype(np.int8)
    b.extension("KHR_mesh_quantization", required=True)
    return ({"POSITION": b.accessor(q, minmax=True), "NORMAL": b.accessor(n, normalized=True)}, lo, step)


def _draco(b: GltfBuilder, mesh: MeshData, centre: np.ndarray, feature_dtype: np.dtype | None
           ) -> dict[str, Any]:
    """A KHR_draco_mesh_compression primitive (positions relative to ``centre``)."""
    import DracoPy

    pos = enu_to_gltf(mesh.positions - centre)
    generic = {}
    if mesh.features is not None:
        generic[0] = mesh.features.astype(np.uint16 if feature_dtype != np.float32 else np.float32).reshape(-1, 1)
    if mesh.surfaces is not None:
        generic[len(generic)] = mesh.surfaces.astype(np.uint8).reshape(-1, 1)
    blob = DracoPy.encode(pos, mesh.faces.astype(np.uint32), quantization_bits=16, compression_level=7,
                          normals=enu_to_gltf(mesh.normals), normal_quantization_bits=10,
                          colors=mesh.colours, generic_attributes=generic or None)
    # accessors must describe the decoded data (Draco drops unused vertices and reorders)
    dec = DracoPy.decode(blob)
    ids = {a["attribute_type"]: a["unique_id"] for a in dec.attributes}
    # generic attributes share one type; they come back in the order they were given
    generic_ids = [a["unique_id"] for a in dec.attributes if a["attribute_type"] == DRACO_GENERIC]
    count = len(dec.points)
    dpos = np.asarray(dec.points, np.float64)
    attrs = {"POSITION": b.compressed_accessor(count, FLOAT, "VEC3", lo=dpos.min(0).tolist(),
                                               hi=dpos.max(0).tolist()),
             "NORMAL": b.compressed_accessor(count, FLOAT, "VEC3")}
    ext_attrs = {"POSITION": ids[0], "NORMAL": ids[1]}
    if mesh.colours is not None:
        attrs["COLOR_0"] = b.compressed_accessor(count, UNSIGNED_BYTE, "VEC4", normalized=True)
        ext_attrs["COLOR_0"] = ids[2]
    if mesh.features is not None:
        comp = FLOAT if feature_dtype == np.float32 else UNSIGNED_SHORT
        attrs["_FEATURE_ID_0"] = b.compressed_accessor(count, comp, "SCALAR")
        ext_attrs["_FEATURE_ID_0"] = generic_ids[0]
    if mesh.surfaces is not None:
        attrs["_SURFACE"] = b.compressed_accessor(count, UNSIGNED_BYTE, "SCALAR")
        ext_attrs["_SURFACE"] = generic_ids[-1]
    faces = np.asarray(dec.faces)
    indices = b.compressed_accessor(faces.size, UNSIGNED_INT if count > 65535 else UNSIGNED_SHORT, "SCALAR")
    view = b.buffer_view(bytes(blob))
    b.extension("KHR_draco_mesh_compression", required=True)
    return {"attributes": attrs, "indices": indices, "mode": TRIANGLES,
            "extensions": {"KHR_draco_mesh_compression": {"bufferView": view, "attributes": ext_attrs}}}


def mesh_glb(mesh: MeshData, *, compression: str = "draco", colour: list[float] | None = None,
             records: list[dict[str, Any]] | None = None, schema_uri: str | None = None) -> bytes:
    """GLB of one triangle mesh. With ``records`` the mesh's ``features`` index them: an
    EXT_mesh_features feature ID attribute and an EXT_structural_metadata table are written
    (``schema_uri``: where the tile finds :data:`BUILDING_SCHEMA`, relative to it; inline if None);
    the mesh's ``surfaces`` become the ``_SURFACE`` attribute, described as an
    EXT_structural_metadata property attribute (class ``surface``), which shaders read per vertex."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}")
    b = GltfBuilder(meshopt=compression == "meshopt")
    if compression == "meshopt":
        mesh = _optimize_order(mesh)
    lo, hi = column_bounds(mesh.positions)
    centre = (lo + hi) / 2
    fdtype = _feature_dtype(len(records)) if records is not None else None
    material = b.material({"pbrMetallicRoughness": {"baseColorFactor": colour or [1.0, 1.0, 1.0, 1.0],
                                                    "metallicFactor": 0.0, "roughnessFactor": 0.9}})
    translation, scale = enu_to_gltf(centre), None
    if compression == "draco":
        prim = _draco(b, mesh, centre, fdtype)
    else:
        if compression == "none":
            attrs = {"POSITION": b.accessor(enu_to_gltf(mesh.positions - centre).astype(np.float32), minmax=True),
                     "NORMAL": b.accessor(enu_to_gltf(mesh.normals).astype(np.float32))}
        else:
            attrs, translation, step = _quantized(b, mesh)
            scale = np.full(3, step)
        if mesh.colours is not None:
            attrs["COLOR_0"] = b.accessor(np.ascontiguousarray(mesh.colours, np.uint8), normalized=True)
        if mesh.features is not None:
            attrs["_FEATURE_ID_0"] = b.accessor(mesh.features.astype(fdtype))
        if mesh.surfaces is not None:
            attrs["_SURFACE"] = b.accessor(mesh.surfaces.astype(np.uint8))
        prim = {"attributes": attrs, "indices": b.indices(mesh.faces), "mode": TRIANGLES}
    prim["material"] = material
    if records is not None:
        sets = [{"featureCount": len(records), "attribute": 0, "propertyTable": 0}]
        prim.setdefault("extensions", {})["EXT_mesh_features"] = {"featureIds": sets}
        if mesh.surfaces is not None:
            prim["extensions"]["EXT_structural_metadata"] = {"propertyAttributes": [0]}
        _metadata(b, records, schema_uri, mesh.surfaces is not None)
    b.mesh_node([prim], translation, scale)
    return b.to_glb()


def building_colours(records: list[dict[str, Any]]) -> np.ndarray:
    """RGBA (N, 4) uint8 per building by its use."""
    rgb = np.array([USE_COLOURS.get(r.get("use") or "other", USE_COLOURS["other"]) for r in records], np.uint8)
    return np.concatenate([rgb, np.full((len(records), 1), 255, np.uint8)], axis=1)


#: quantization levels of point positions (KHR_mesh_quantization, unsigned 16-bit)
POSITION_LEVELS = 65535


def position_step(xyz: np.ndarray) -> np.ndarray:
    """Quantization step (m) per glTF axis of a point set: its extent over 65535 levels."""
    return _position_box(np.asarray(xyz, np.float64))[1]


def _position_box(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low corner, step) of ENU points (N, 3) in glTF axes (E, U, -N), metres: the box of
    :func:`quantized_positions`, reduced column by column (no (N, 3) glTF copy)."""
    lo = np.array([xyz[:, 0].min(), xyz[:, 2].min(), -xyz[:, 1].max()])
    hi = np.array([xyz[:, 0].max(), xyz[:, 2].max(), -xyz[:, 1].min()])
    return lo, np.maximum(hi - lo, 1e-6) / POSITION_LEVELS


def quantized_positions(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ENU points (N, 3, metres) as glTF (y-up) unsigned 16-bit steps over their own box:
    (steps (N, 4) uint16 whose fourth column is the zero pad that aligns a vertex to 4 bytes,
    the box's low corner and the step per glTF axis, metres). Each axis is quantized straight
    from its ENU column: -N - (-max N) is max N - N to the bit."""
    xyz = np.asarray(xyz, np.float64)
    lo, step = _position_box(xyz)
    q = np.zeros((len(xyz), 4), np.uint16)
    for k, (column, sign) in enumerate(((0, 1.0), (2, 1.0), (1, -1.0))):
        v = xyz[:, column] - lo[k] if sign > 0 else -lo[k] - xyz[:, column]
        v /= step[k]
        q[:, k] = np.round(v, out=v)
    return q, lo, step


def point_glb(xyz: np.ndarray, rgb16: np.ndarray, intensity: np.ndarray, classification: np.ndarray,
              extras: dict[str, np.ndarray] | None = None, *, meshopt: bool = False) -> bytes:
    """GLB of a point cloud (mode POINTS) with KHR_mesh_quantization positions.

    Positions are unsigned 16-bit steps over the points' own box; the node's translation and scale
    restore metres (error at most half a step, :func:`position_step`). RGB, _INTENSITY and
    _CLASSIFICATION ride along as attributes, and each of ``extras`` (the input's extra
    dimensions) as a float32 ``_NAME`` attribute. ``meshopt`` stores every attribute
    EXT_meshopt_compression-encoded.
    """
    b = GltfBuilder(meshopt=meshopt)
    q, lo, step = quantized_positions(xyz)
    rgba = np.empty((len(q), 4), np.uint8)
    rgba[:, :3] = np.asarray(rgb16) >> 8
    rgba[:, 3] = 255
    attrs = {"POSITION": b.accessor(q, components=3, minmax=True),
             "COLOR_0": b.accessor(rgba, normalized=True),
             "_INTENSITY": b.accessor(intensity.astype(np.float32)),
             "_CLASSIFICATION": b.accessor(classification.astype(np.float32))}
    for name, values in sorted((extras or {}).items()):
        attrs["_" + name.upper()] = b.accessor(np.asarray(values).astype(np.float32))
    b.extension("KHR_mesh_quantization", required=True)
    b.mesh_node([{"attributes": attrs, "mode": POINTS}], translation=lo, scale=step)
    return b.to_glb()


#: EXT_structural_metadata class of a sunlight receiver (property attributes, one value per point).
#: Hours are on the analysis's clock; -1 where the receiver does not exist in that scenario.
SUNLIGHT_SCHEMA: dict[str, Any] = {
    "id": "dmc_twin_sunlight",
    "classes": {"receiver": {
        "name": "Sunlight receiver",
        "description": "A window (facade, per storey) or a ground point of the sunlight analysis, judged by "
                       "the Korean tolerance test (2 h continuous or 4 h total on the winter solstice).",
        "properties": {
            "continuous_hours": {"type": "SCALAR", "componentType": "FLOAT32", "noData": -1.0,
                                 "description": "Longest continuous sun in the continuous window, hours"},
            "total_hours": {"type": "SCALAR", "componentType": "FLOAT32", "noData": -1.0,
                            "description": "Sun in total in the total window, hours"},
            # property attributes hold numbers only (no ENUM): 0 absent, 1 pass, 2 fail
            "verdict": {"type": "SCALAR", "componentType": "UINT8",
                        "description": "As the district stands: 0 absent, 1 passes, 2 fails"},
            "continuous_hours_with_proposals": {"type": "SCALAR", "componentType": "FLOAT32", "noData": -1.0},
            "total_hours_with_proposals": {"type": "SCALAR", "componentType": "FLOAT32", "noData": -1.0},
            "verdict_with_proposals": {"type": "SCALAR", "componentType": "UINT8",
                                       "description": "With the proposals built: 0 absent, 1 passes, 2 fails"},
            "storey": {"type": "SCALAR", "componentType": "UINT16",
                       "description": "Storey of a facade receiver (1: ground floor); 0 on the ground grid"},
        }}},
}

#: hours ramp of the baked colours: dark (no sun) to bright (the whole window); fails in red
SUN_RAMP = np.array([[20, 12, 60], [120, 28, 109], [237, 105, 37], [252, 255, 164]], np.float64)
FAIL_COLOUR = (220, 20, 30)


def sun_colours(total_hours: np.ndarray, passes: np.ndarray, full_hours: float) -> np.ndarray:
    """RGBA uint8 (N, 4): the hours ramp over [0, ``full_hours``], red where a receiver fails."""
    x = np.clip(np.nan_to_num(total_hours, nan=0.0) / full_hours, 0, 1) * (len(SUN_RAMP) - 1)
    i = np.minimum(x.astype(int), len(SUN_RAMP) - 2)
    f = (x - i)[:, None]
    rgb = SUN_RAMP[i] * (1 - f) + SUN_RAMP[i + 1] * f
    rgb[~passes] = FAIL_COLOUR
    return np.column_stack([np.rint(rgb), np.full(len(rgb), 255)]).astype(np.uint8)


def receiver_glb(xyz: np.ndarray, rgba: np.ndarray, properties: dict[str, np.ndarray], *,
                 schema_uri: str | None = None) -> bytes:
    """GLB of sunlight receivers (mode POINTS, quantized positions as :func:`point_glb`) with
    COLOR_0 and every property of :data:`SUNLIGHT_SCHEMA` as an EXT_structural_metadata property
    attribute (``_NAME`` accessors): viewers can colour the points by any of them."""
    b = GltfBuilder()
    q, lo, step = quantized_positions(xyz)
    attrs = {"POSITION": b.accessor(q, components=3, minmax=True), "COLOR_0": b.accessor(rgba, normalized=True)}
    spec = SUNLIGHT_SCHEMA["classes"]["receiver"]["properties"]
    mapping = {}
    for name in spec:
        dtype = np.uint16 if name == "storey" else (np.uint8 if name.startswith("verdict") else np.float32)
        attr = "_" + name.upper()
        attrs[attr] = b.accessor(np.asarray(properties[name]).astype(dtype))
        mapping[name] = {"attribute": attr}
    b.extension("KHR_mesh_quantization", required=True)
    schema: dict[str, Any] = {"schemaUri": schema_uri} if schema_uri else {"schema": SUNLIGHT_SCHEMA}
    b.extension("EXT_structural_metadata", schema | {
        "propertyAttributes": [{"class": "receiver", "properties": mapping}]})
    b.mesh_node([{"attributes": attrs, "mode": POINTS,
                  "extensions": {"EXT_structural_metadata": {"propertyAttributes": [0]}}}],
                translation=lo, scale=step)
    return b.to_glb()
