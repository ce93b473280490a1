"""A small, deterministic glTF 2.0 binary (GLB) builder for tile content.

Written by hand rather than with pygltflib because tile content needs byte-identical output for
identical input (the runner's skip and resume logic compares hashes), 8-byte aligned buffer views
for EXT_structural_metadata, and a handful of extension blocks; that is ~200 lines of struct and
json, while a generic object model would still leave all of it to us.

Positions given to the builder are in the glTF frame (y up). :func:`enu_to_gltf` converts ENU
(z up) vectors: 3D Tiles rotates glTF y-up content back to z-up when it loads it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.arrayops import column_bounds

FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
POINTS, TRIANGLES = 0, 4
BYTE, SHORT = 5120, 5122
_COMPONENT = {np.dtype("float32"): FLOAT, np.dtype("uint8"): UNSIGNED_BYTE, np.dtype("int8"): BYTE,
              np.dtype("uint16"): UNSIGNED_SHORT, np.dtype("int16"): SHORT, np.dtype("uint32"): UNSIGNED_INT}
_TYPE = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}


def enu_to_gltf(v: np.ndarray) -> np.ndarray:
    """ENU (E, N, U) -> glTF y-up (E, U, -N)."""
    v = np.asarray(v)
    return np.stack([v[..., 0], v[..., 2], -v[..., 1]], axis=-1)


def gltf_to_enu(v: np.ndarray) -> np.ndarray:
    """glTF y-up (x, y, z) -> ENU (x, -z, y)."""
    v = np.asarray(v)
    return np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1)


class GltfBuilder:
    """Accumulates buffers, accessors, meshes and extensions; :meth:`to_glb` serialises."""

    def __init__(self, *, meshopt: bool = False) -> None:
        """``meshopt``: vertex attribute views are stored EXT_meshopt_compression-encoded (the
        uncompressed layout lives in a data-less fallback buffer, as the extension prescribes)."""
        self.meshopt = meshopt
        self._fallback = 0
        self._bin = bytearray()
        self.doc: dict[str, Any] = {"asset": {"version": "2.0", "generator": "dmc-twin"},
                                    "buffers": [], "bufferViews": [], "accessors": [],
                                    "meshes": [], "nodes": [], "scenes": [{"nodes": []}],
                                    "scene": 0}
        self.used: set[str] = set()
        self.required: set[str] = set()

    def buffer_view(self, data: bytes, target: int | None = None, stride: int | None = None,
                    element: int | None = None) -> int:
        """Append ``data`` (8-byte aligned) as a buffer view; returns its index. ``element`` is
        the byte size of one vertex of an attribute view, or of one index of a triangle-list
        index view (needed for meshopt encoding)."""
        if self.meshopt and target == ARRAY_BUFFER and element:
            return self._meshopt_view(data, element)
        if self.meshopt and target == ELEMENT_ARRAY_BUFFER and element:
            return self._meshopt_indices(data, element)
        pad = (-len(self._bin)) % 8
        self._bin.extend(b"\0" * pad)
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self._bin), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        if stride is not None:
            view["byteStride"] = stride
        self._bin.extend(data)
        self.doc["bufferViews"].append(view)
        return len(self.doc["bufferViews"]) - 1

    def _meshopt_view(self, data: bytes, element: int) -> int:
        import meshoptimizer

        # EXT_meshopt_compression is defined on version 0 of the vertex codec
        meshoptimizer.encode_vertex_version(0)
        count = len(data) // element
        encoded = meshoptimizer.encode_vertex_buffer(np.frombuffer(data, np.uint8).reshape(count, element),
                                                     count, element)
        return self._compressed_view(encoded, data, element, count, "ATTRIBUTES", ARRAY_BUFFER)

    def _meshopt_indices(self, data: bytes, size: int) -> int:
        import meshoptimizer

        # EXT_meshopt_compression's TRIANGLES mode is version 1 of the index codec
        meshoptimizer.encode_index_version(1)
        indices = np.frombuffer(data, np.uint16 if size == 2 else np.uint32).astype(np.uint32)
        encoded = meshoptimizer.encode_index_buffer(indices, len(indices), int(indices.max()) + 1)
        return self._compressed_view(encoded, data, size, len(indices), "TRIANGLES", ELEMENT_ARRAY_BUFFER)

    def _compressed_view(self, encoded: bytes, data: bytes, stride: int, count: int, mode: str, target: int) -> int:
        """A buffer view whose ``data`` lives in the data-less fallback buffer and its meshopt
        ``encoded`` form in the GLB's binary chunk. Index views may not declare a byteStride."""
        self._bin.extend(b"\0" * ((-len(self._bin)) % 8))
        ext = {"buffer": 0, "byteOffset": len(self._bin), "byteLength": len(encoded), "byteStride": stride,
               "count": count, "mode": mode}
        self._bin.extend(encoded)
        self._fallback += (-self._fallback) % 8
        view: dict[str, Any] = {"buffer": 1, "byteOffset": self._fallback, "byteLength": len(data)}
        if target == ARRAY_BUFFER:
            view["byteStride"] = stride
        view |= {"target": target, "extensions": {"EXT_meshopt_compression": ext}}
        self._fallback += len(data)
        self.extension("EXT_meshopt_compression", required=True)
        self.doc["bufferViews"].append(view)
        return len(self.doc["bufferViews"]) - 1

    def indices(self, faces: np.ndarray) -> int:
        """Accessor of a triangle list's indices (uint16 when they fit, else uint32)."""
        flat = np.asarray(faces).ravel()
        arr = flat.astype(np.uint16 if flat.size == 0 or flat.max() < 65535 else np.uint32)
        view = self.buffer_view(arr.tobytes(), ELEMENT_ARRAY_BUFFER, element=arr.dtype.itemsize)
        self.doc["accessors"].append({"bufferView": view, "componentType": _COMPONENT[arr.dtype],
                                      "count": int(arr.size), "type": "SCALAR"})
        return len(self.doc["accessors"]) - 1

    def compressed_accessor(self, count: int, component: int, kind: str, *, normalized: bool = False,
                            lo: list[float] | None = None, hi: list[float] | None = None) -> int:
        """An accessor whose data lives in a compressed primitive (no buffer view)."""
        acc: dict[str, Any] = {"componentType": component, "count": int(count), "type": kind}
        if normalized:
            acc["normalized"] = True
        if lo is not None and hi is not None:
            acc["min"], acc["max"] = lo, hi
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def accessor(self, array: np.ndarray, *, target: int | None = ARRAY_BUFFER,
                 normalized: bool = False, minmax: bool = False, components: int | None = None) -> int:
        """Accessor over a (N,) or (N, k) array of float32/uint8/uint16/uint32; returns its index.
        ``components``: the attribute is each row's first ``components`` values and the rest of
        the row is padding the caller wrote (zeros), e.g. uint16 positions laid out 4 to a row."""
        array = np.ascontiguousarray(array)
        if components is not None:
            row = array.shape[1] * array.dtype.itemsize
            view = self.buffer_view(array.tobytes(), target, row, element=row)
            return self._accessor_of(view, array[:, :components], normalized, minmax)
        comps = 1 if array.ndim == 1 else array.shape[1]
        row = comps * array.dtype.itemsize
        if target == ARRAY_BUFFER and row % 4:
            # vertex attributes must start on 4-byte boundaries: pad each element, declare a stride
            stride = row + (-row) % 4
            padded = np.zeros((len(array), stride), np.uint8)
            padded[:, :row] = array.reshape(len(array), -1).view(np.uint8).reshape(len(array), row)
            view = self.buffer_view(padded.tobytes(), target, stride, element=stride)
        else:
            view = self.buffer_view(array.tobytes(), target, element=row if target == ARRAY_BUFFER else None)
        return self._accessor_of(view, array, normalized, minmax)

    def _accessor_of(self, view: int, array: np.ndarray, normalized: bool, minmax: bool) -> int:
        """Declare the accessor of ``array`` (its values, not its padding) stored in ``view``."""
        comps = 1 if array.ndim == 1 else array.shape[1]
        acc: dict[str, Any] = {"bufferView": view, "componentType": _COMPONENT[array.dtype],
                               "count": int(array.shape[0]), "type": _TYPE[comps]}
        if normalized:
            acc["normalized"] = True
        if minmax:
            flat = array.reshape(len(array), comps)
            cast = int if np.issubdtype(array.dtype, np.integer) else float
            lo, hi = column_bounds(flat)
            acc["min"] = [cast(x) for x in lo]
            acc["max"] = [cast(x) for x in hi]
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def material(self, material: dict[str, Any]) -> int:
        self.doc.setdefault("materials", []).append(material)
        return len(self.doc["materials"]) - 1

    def mesh_node(self, primitives: list[dict[str, Any]], translation: np.ndarray | None = None,
                  scale: np.ndarray | None = None) -> int:
        """Add a mesh of ``primitives`` on a root node (optionally translated and scaled, glTF frame)."""
        self.doc["meshes"].append({"primitives": primitives})
        node: dict[str, Any] = {"mesh": len(self.doc["meshes"]) - 1}
        if translation is not None:
            node["translation"] = [float(t) for t in translation]
        if scale is not None:
            node["scale"] = [float(t) for t in scale]
        self.doc["nodes"].append(node)
        idx = len(self.doc["nodes"]) - 1
        self.doc["scenes"][0]["nodes"].append(idx)
        return idx

    def extension(self, name: str, value: dict[str, Any] | None = None, *, required: bool = False) -> None:
        """Declare an extension (and set its root-level block when ``value`` is given)."""
        self.used.add(name)
        if required:
            self.required.add(name)
        if value is not None:
            self.doc.setdefault("extensions", {})[name] = value

    def to_glb(self) -> bytes:
        """The GLB bytes: header, JSON chunk (space padded), BIN chunk (zero padded)."""
        doc = dict(self.doc)
        self._bin.extend(b"\0" * ((-len(self._bin)) % 4))
        doc["buffers"] = [{"byteLength": len(self._bin)}]
        if self._fallback:
            doc["buffers"].append({"byteLength": self._fallback,
                                   "extensions": {"EXT_meshopt_compression": {"fallback": True}}})
        if self.used:
            doc["extensionsUsed"] = sorted(self.used)
        if self.required:
            doc["extensionsRequired"] = sorted(self.required)
        js = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        js += b" " * ((-len(js)) % 4)
        total = 12 + 8 + len(js) + 8 + len(self._bin)
        return b"".join([struct.pack("<4sII", b"glTF", 2, total),
                         struct.pack("<I4s", len(js), b"JSON"), js,
                         struct.pack("<I4s", len(self._bin), b"BIN\0"), bytes(self._bin)])


def read_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(JSON document, BIN chunk) of a GLB."""
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2 or total != len(data):
        raise ValueError("not a glTF 2.0 binary")
    jlen, _ = struct.unpack_from("<I4s", data, 12)
    doc = json.loads(data[20:20 + jlen])
    blen, _ = struct.unpack_from("<I4s", data, 20 + jlen)
    return doc, data[28 + jlen:28 + jlen + blen]


def read_accessor(doc: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    """The data of accessor ``index`` as a numpy array (EXT_meshopt_compression views decoded)."""
    acc = doc["accessors"][index]
    if "bufferView" not in acc:
        raise ValueError(f"accessor {index} has no buffer view (its data is in a compressed primitive: "
                         "see read_primitive)")
    view = doc["bufferViews"][acc["bufferView"]]
    ext = view.get("extensions", {}).get("EXT_meshopt_compression")
    if ext is not None:
        import meshoptimizer

        raw = np.frombuffer(binary[ext.get("byteOffset", 0):ext.get("byteOffset", 0) + ext["byteLength"]], np.uint8)
        if ext["mode"] == "TRIANGLES":
            indices = meshoptimizer.decode_index_buffer(ext["count"], 4, raw).view(np.uint32)[:ext["count"]]
            binary = indices.astype(np.uint16 if ext["byteStride"] == 2 else np.uint32).tobytes()
            view = {"byteOffset": 0}
        else:
            # the decoder returns float32 words whatever the content: only their bytes matter here
            binary = meshoptimizer.decode_vertex_buffer(ext["count"], ext["byteStride"], raw).tobytes()
            view = {"byteOffset": 0, "byteStride": ext["byteStride"]}
    dtype = {FLOAT: np.float32, UNSIGNED_BYTE: np.uint8, UNSIGNED_SHORT: np.uint16, BYTE: np.int8,
             SHORT: np.int16, UNSIGNED_INT: np.uint32}[acc["componentType"]]
    comps = {v: k for k, v in _TYPE.items()}[acc["type"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    size = np.dtype(dtype).itemsize * comps
    stride = view.get("byteStride", size)
    if stride == size:
        arr = np.frombuffer(binary, dtype=dtype, count=acc["count"] * comps, offset=start)
    else:
        raw = np.frombuffer(binary, np.uint8, count=stride * (acc["count"] - 1) + size, offset=start)
        rows = np.lib.stride_tricks.as_strided(raw, (acc["count"], size), (stride, 1))
        arr = np.ascontiguousarray(rows).view(dtype).ravel()
    return arr.reshape(acc["count"], comps) if comps > 1 else arr


def string_column(values: list[str]) -> tuple[bytes, bytes]:
    """EXT_structural_metadata STRING property: (UTF-8 values, UINT32 offsets incl. the end)."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, np.uint32)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    return b"".join(encoded), offsets.tobytes()


def read_primitive(doc: dict[str, Any], binary: bytes, primitive: dict[str, Any]) -> dict[str, np.ndarray]:
    """A primitive's attributes (by name) and ``"indices"`` as numpy arrays in the accessors'
    declared types, whether stored plainly, meshopt-encoded or Draco-compressed (values as the
    accessors define them: quantized positions stay quantized)."""
    draco = primitive.get("extensions", {}).get("KHR_draco_mesh_compression")
    out: dict[str, np.ndarray] = {}
    if draco is None:
        for name, idx in primitive["attributes"].items():
            out[name] = read_accessor(doc, binary, idx)
        if "indices" in primitive:
            out["indices"] = read_accessor(doc, binary, primitive["indices"])
        return out
    import DracoPy

    view = doc["bufferViews"][draco["bufferView"]]
    start = view.get("byteOffset", 0)
    mesh = DracoPy.decode(binary[start:start + view["byteLength"]])
    by_id = {a["unique_id"]: a["data"] for a in mesh.attributes}
    for name, uid in draco["attributes"].items():
        acc = doc["accessors"][primitive["attributes"][name]]
        data = np.asarray(by_id[uid])
        if acc.get("normalized") and acc["componentType"] == UNSIGNED_BYTE:
            data = data.astype(np.uint8)
        out[name] = data[:, 0] if data.ndim == 2 and data.shape[1] == 1 else data
    if "indices" in primitive:
        out["indices"] = np.asarray(mesh.faces).ravel()
    return out


#: glTF's y-up to 3D Tiles' z-up (x, y, z) -> (x, -z, y)
Y_UP_TO_Z_UP = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


def _node_matrix(node: dict[str, Any]) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], np.float64).reshape(4, 4).T
    m = np.eye(4)
    if "rotation" in node or "scale" in node:
        x, y, z, w = node.get("rotation", [0, 0, 0, 1])
        r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        m[:3, :3] = r * np.asarray(node.get("scale", [1, 1, 1]), np.float64)
    m[:3, 3] = node.get("translation", [0, 0, 0])
    return m


def _dequantize(doc: dict[str, Any], accessor: int, values: np.ndarray) -> np.ndarray:
    acc = doc["accessors"][accessor]
    out = values.astype(np.float64)
    if acc.get("normalized"):
        limit = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}[acc["componentType"]]
        out = np.maximum(out / limit, -1.0)
    return out


def gltf_positions(doc: dict[str, Any], binary: bytes, up: np.ndarray = Y_UP_TO_Z_UP) -> np.ndarray:
    """All POSITION values of a glTF's default scene through its node transforms and ``up``
    (glTF y-up to the tile's z-up), float64 (N, 3)."""
    out = []

    def visit(idx: int, parent: np.ndarray) -> None:
        node = doc["nodes"][idx]
        m = parent @ _node_matrix(node)
        if "mesh" in node:
            for prim in doc["meshes"][node["mesh"]]["primitives"]:
                data = read_primitive(doc, binary, prim)
                pos = _dequantize(doc, prim["attributes"]["POSITION"], data["POSITION"])
                out.append(pos @ m[:3, :3].T + m[:3, 3])
        for child in node.get("children", []):
            visit(child, m)

    scene = doc.get("scene", 0)
    for root in doc.get("scenes", [{"nodes": []}])[scene]["nodes"]:
        visit(root, up)
    return np.concatenate(out) if out else np.empty((0, 3))


def glb_positions(path: Path) -> np.ndarray:
    """Positions of a GLB file's default scene in its tile's frame (z up), float64 (N, 3)."""
    doc, binary = read_glb(Path(path).read_bytes())
    return gltf_positions(doc, binary)
