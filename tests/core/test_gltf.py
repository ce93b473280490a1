"""The GLB builder and reader: axes, alignment, meshopt-encoded views decoded back exactly."""

from __future__ import annotations

import numpy as np

from pipeline.core.gltf import (ELEMENT_ARRAY_BUFFER, TRIANGLES, GltfBuilder, enu_to_gltf, gltf_to_enu,
                                read_accessor, read_glb, read_primitive)


def test_axes_roundtrip():
    v = np.random.default_rng(0).normal(size=(10, 3))
    assert np.allclose(gltf_to_enu(enu_to_gltf(v)), v)
    assert np.allclose(enu_to_gltf(np.array([1.0, 2.0, 3.0])), [1.0, 3.0, -2.0])  # north is -z


def test_meshopt_views_decode_to_the_bytes_that_went_in():
    rng = np.random.default_rng(2)
    pos = rng.integers(0, 65535, (300, 3)).astype(np.uint16)
    faces = rng.integers(0, 300, (400, 3)).astype(np.uint32)
    b = GltfBuilder(meshopt=True)
    acc = b.accessor(pos, minmax=True)
    idx = b.indices(faces)
    b.mesh_node([{"attributes": {"POSITION": acc}, "indices": idx, "mode": TRIANGLES}])
    doc, binary = read_glb(b.to_glb())
    assert "EXT_meshopt_compression" in doc["extensionsRequired"]
    assert doc["bufferViews"][doc["accessors"][idx]["bufferView"]]["extensions"]["EXT_meshopt_compression"][
        "mode"] == "TRIANGLES"
    assert np.array_equal(read_accessor(doc, binary, acc), pos)
    data = read_primitive(doc, binary, doc["meshes"][0]["primitives"][0])
    got = data["indices"].reshape(-1, 3).astype(np.int64)
    # the index codec may start a triangle at another corner; order and winding stay
    def canonical(t):
        k = np.argmin(t, axis=1)
        return np.stack([t[np.arange(len(t)), (k + i) % 3] for i in range(3)], axis=1)
    assert np.array_equal(canonical(got), canonical(faces.astype(np.int64)))


def test_views_are_eight_byte_aligned_and_attributes_four_byte_strided():
    b = GltfBuilder()
    b.buffer_view(b"abc")
    a = b.accessor(np.zeros((5, 3), np.uint8), normalized=True)
    b.buffer_view(b"x" * 13, ELEMENT_ARRAY_BUFFER)
    doc, _ = read_glb(b.to_glb())
    assert all(v["byteOffset"] % 8 == 0 for v in doc["bufferViews"])
    assert doc["bufferViews"][doc["accessors"][a]["bufferView"]]["byteStride"] == 4
