"""GLB tile content: building meshes with feature IDs and metadata, terrain meshes, point clouds.

Inputs are ENU metres (float64) plus the tile centre (ENU); output positions are float32
relative to the centre, in the glTF y-up frame, and the root node carries the centre as its
translation so nothing is lost to float32 rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.core.arrayops import column_bounds
from pipeline.core.gltf import (ELEMENT_ARRAY_BUFFER, POINTS, TRIANGLES, GltfBuilder, enu_to_gltf,
                                string_column)
from pipeline.core.meshing import face_normals

#: RGB (0-255) per building use; unknown uses get the last colour
USE_COLOURS: dict[str, tuple[int, int, int]] = {
    "broadcast": (96, 140, 200), "office": (190, 190, 185), "retail": (215, 170, 120),
    "public": (150, 185, 150), "culture": (200, 140, 170), "transport": (120, 120, 135),
    "stadium": (230, 230, 235), "residential": (205, 140, 110), "other": (175, 175, 175),
}

BUILDING_SCHEMA: dict[str, Any] = {
    "id": "dmc_twin_buildings",
    "classes": {"building": {
        "name": "Building",
        "description": "A building of the Sangam DMC twin. Heights are metres, orthometric.",
        "properties": {
            "id": {"type": "STRING", "description": "Stable building id (anchors refer to it)"},
            "name": {"type": "STRING"},
            "use": {"type": "STRING"},
            "floors": {"type": "SCALAR", "componentType": "UINT16", "noData": 0},
            "height": {"type": "SCALAR", "componentType": "FLOAT32",
                       "description": "Roof minus ground height, metres"},
            "ground_height": {"type": "SCALAR", "componentType": "FLOAT32",
                              "description": "Orthometric ground height, metres"},
            "source": {"type": "STRING", "description": "Where the height came from"},
        }}},
}


def _material(b: GltfBuilder) -> int:
    return b.material({"pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                                                "metallicFactor": 0.0, "roughnessFactor": 0.9}})


def _flat(vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Unwelded positions and normals (glTF frame, float32) for flat shading."""
    normals = np.repeat(face_normals(vertices, faces), 3, axis=0)
    pos = (vertices[faces].reshape(-1, 3) - centre)
    return (enu_to_gltf(pos).astype(np.float32), enu_to_gltf(normals).astype(np.float32))


def building_glb(vertices: np.ndarray, faces: np.ndarray, face_feature: np.ndarray,
                 records: list[dict[str, Any]], centre: np.ndarray) -> bytes:
    """GLB of building solids with EXT_mesh_features IDs and an EXT_structural_metadata table.

    ``face_feature`` gives each face's row in ``records`` (the tile-local feature ID).
    """
    b = GltfBuilder()
    pos, nrm = _flat(vertices, faces, centre)
    fid = np.repeat(face_feature, 3).astype(np.float32)
    colours = np.array([USE_COLOURS.get(r.get("use") or "other", USE_COLOURS["other"])
                        for r in records], np.uint8)
    rgba = np.concatenate([colours[np.repeat(face_feature, 3)],
                           np.full((len(fid), 1), 255, np.uint8)], axis=1)
    attrs = {"POSITION": b.accessor(pos, minmax=True), "NORMAL": b.accessor(nrm),
             "COLOR_0": b.accessor(rgba, normalized=True), "_FEATURE_ID_0": b.accessor(fid)}
    prim = {"attributes": attrs, "mode": TRIANGLES, "material": _material(b),
            "extensions": {"EXT_mesh_features": {"featureIds": [
                {"featureCount": len(records), "attribute": 0, "propertyTable": 0}]}}}
    props: dict[str, Any] = {}
    for key, src in (("id", "id"), ("name", "name"), ("use", "use"), ("source", "height_source")):
        values, offsets = string_column([str(r.get(src) or "") for r in records])
        props[key] = {"values": b.buffer_view(values), "stringOffsets": b.buffer_view(offsets),
                      "stringOffsetType": "UINT32"}
    props["floors"] = {"values": b.buffer_view(
        np.array([int(r.get("floors") or 0) for r in records], np.uint16).tobytes())}
    for key in ("height", "ground_height"):
        props[key] = {"values": b.buffer_view(np.array([r[key] for r in records], np.float32).tobytes())}
    b.extension("EXT_mesh_features")
    b.extension("EXT_structural_metadata", {
        "schema": BUILDING_SCHEMA,
        "propertyTables": [{"name": "buildings", "class": "building", "count": len(records),
                            "properties": props}]})
    b.mesh_node([prim], enu_to_gltf(centre))
    return b.to_glb()


def terrain_glb(vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray) -> bytes:
    """GLB of an indexed terrain mesh with smooth vertex normals."""
    b = GltfBuilder()
    fn = face_normals(vertices, faces)
    vn = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    pos = enu_to_gltf(vertices - centre).astype(np.float32)
    attrs = {"POSITION": b.accessor(pos, minmax=True),
             "NORMAL": b.accessor(enu_to_gltf(vn).astype(np.float32))}
    idx = b.accessor(faces.astype(np.uint32).ravel(), target=ELEMENT_ARRAY_BUFFER)
    material = b.material({"pbrMetallicRoughness": {"baseColorFactor": [0.55, 0.6, 0.45, 1.0],
                                                    "metallicFactor": 0.0, "roughnessFactor": 1.0}})
    b.mesh_node([{"attributes": attrs, "indices": idx, "mode": TRIANGLES, "material": material}],
                enu_to_gltf(centre))
    return b.to_glb()


#: quantization levels of point positions (KHR_mesh_quantization, unsigned 16-bit)
POSITION_LEVELS = 65535


def position_step(xyz: np.ndarray) -> np.ndarray:
    """Quantization step (m) per glTF axis of a point set: its extent over 65535 levels."""
    g = enu_to_gltf(np.asarray(xyz, np.float64))
    lo, hi = column_bounds(g)
    return np.maximum(hi - lo, 1e-6) / POSITION_LEVELS


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
    g = enu_to_gltf(np.asarray(xyz, np.float64))
    lo = column_bounds(g)[0]
    step = position_step(xyz)
    q = np.round((g - lo) / step).astype(np.uint16)
    rgba = np.concatenate([(rgb16 >> 8).astype(np.uint8), np.full((len(g), 1), 255, np.uint8)], axis=1)
    attrs = {"POSITION": b.accessor(q, minmax=True),
             "COLOR_0": b.accessor(rgba, normalized=True),
             "_INTENSITY": b.accessor(intensity.astype(np.float32)),
             "_CLASSIFICATION": b.accessor(classification.astype(np.float32))}
    for name, values in sorted((extras or {}).items()):
        attrs["_" + name.upper()] = b.accessor(np.asarray(values).astype(np.float32))
    b.extension("KHR_mesh_quantization", required=True)
    b.mesh_node([{"attributes": attrs, "mode": POINTS}], translation=lo, scale=step)
    return b.to_glb()
