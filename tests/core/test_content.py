"""Tile content in every encoding: valid glTF, positions back within the quantization step,
feature IDs that pick the right metadata row, and compression that pays."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.content import (BUILDING_SCHEMA, COMPRESSIONS, building_colours, flat_mesh, mesh_glb, point_glb,
                                   smooth_mesh)
from pipeline.core.gltf import gltf_positions, read_glb, read_primitive
from pipeline.core.meshing import roof_solid
from pipeline.core.roofs import Plane
from pipeline.core.surfaces import GROUND, OTHER, ROOF, WALL, kinds_by_normal
from tests.conftest import validate_gltf
from tests.nasty import COURTYARD, L_SHAPE

RECORDS = [{"id": "B-1", "name": "Courtyard Hall", "use": "culture", "floors": 7, "height": 30.0,
            "ground_height": 12.0, "roof_height": 42.0, "roof_type": "flat", "lod": "LoD2",
            "height_source": "lidar"},
           {"id": "B-2", "name": "세종 타워", "use": "office", "floors": 12, "height": 44.5,
            "ground_height": 13.0, "roof_height": 57.5, "roof_type": None, "lod": "LoD1",
            "height_source": "floors", "proposed": True, "replaces": "B-1"}]


def _buildings():
    """Two solids far from the origin (ENU), as the mesh stage hands them over."""
    a = roof_solid(COURTYARD, [Plane(0, 0, 42.0)], 12.0)
    b = roof_solid(L_SHAPE, [Plane(0, 0.3, 50.0), Plane(0, -0.3, 57.5)], 13.0)
    v = np.vstack([a[0], b[0] + [80.0, 0.0, 0.0]]) + [1200.0, -800.0, 0.0]
    f = np.vstack([a[1], b[1] + len(a[0])])
    feat = np.r_[np.zeros(len(a[1]), int), np.ones(len(b[1]), int)]
    return v, f, feat


def _surfaces():
    """Each face's kind by its normal, but the second building's roof stated as "other" (as a
    city model may say), so what is written is what was given."""
    v, f, feat = _buildings()
    kinds = kinds_by_normal(v, f)
    kinds[(feat == 1) & (kinds == ROOF)] = OTHER
    return kinds


def _terrain():
    e, n = np.meshgrid(np.arange(0, 200, 5.0), np.arange(0, 150, 5.0))
    u = 3 * np.sin(e / 30) + 0.02 * n
    v = np.column_stack([e.ravel(), n.ravel(), u.ravel()]) + [-900.0, 400.0, 15.0]
    r, c = np.meshgrid(np.arange(29), np.arange(39), indexing="ij")
    a = (r * 40 + c).ravel()
    f = np.concatenate([np.column_stack([a, a + 1, a + 41]), np.column_stack([a, a + 41, a + 40])])
    return v, f


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    out = tmp_path_factory.mktemp("content")
    v, f, feat = _buildings()
    tv, tf = _terrain()
    files = {}
    for c in COMPRESSIONS:
        b = mesh_glb(flat_mesh(v, f, feat, building_colours(RECORDS), _surfaces()), compression=c, records=RECORDS)
        t = mesh_glb(smooth_mesh(tv, tf), compression=c, colour=[0.5, 0.6, 0.4, 1.0])
        files[c] = (out / f"b_{c}.glb", out / f"t_{c}.glb")
        files[c][0].write_bytes(b)
        files[c][1].write_bytes(t)
    pts = np.random.default_rng(1).uniform(0, 10, (100, 3))
    (out / "p.glb").write_bytes(point_glb(pts, np.full((100, 3), 40000, np.uint16), np.arange(100, dtype=np.uint16),
                                          np.full(100, 2, np.uint8)))
    return out, files


def test_every_encoding_passes_the_khronos_validator(encoded):
    out, _ = encoded
    reports = validate_gltf(sorted(out.glob("*.glb")))
    assert len(reports) == 2 * len(COMPRESSIONS) + 1
    for r in reports:
        assert r["errors"] == 0 and r["warnings"] == 0, r


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_decoded_positions_are_within_the_quantization_step(encoded, compression):
    v, f, _ = _buildings()
    tv, _ = _terrain()
    for path, source in zip(encoded[1][compression], (v, tv), strict=True):
        doc, binary = read_glb(path.read_bytes())
        got = gltf_positions(doc, binary)  # meshopt and Draco decoded, node transforms applied
        extent = float((source.max(0) - source.min(0)).max())
        step = {"none": 1e-4, "quantized": extent / 65535, "meshopt": extent / 65535,
                "draco": extent / (2 ** 16 - 1)}[compression]
        # every source vertex has a decoded vertex within half a step on each axis, and back
        from scipy.spatial import cKDTree

        d1, _ = cKDTree(got).query(source, p=np.inf)
        d2, _ = cKDTree(source).query(got, p=np.inf)
        assert max(d1.max(), d2.max()) <= step / 2 + 1e-6, (compression, d1.max(), step)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_feature_ids_pick_the_right_row(encoded, compression):
    doc, binary = read_glb(encoded[1][compression][0].read_bytes())
    prim = doc["meshes"][0]["primitives"][0]
    data = read_primitive(doc, binary, prim)
    ids = np.asarray(data["_FEATURE_ID_0"]).astype(int)
    assert set(ids.tolist()) == {0, 1}
    table = doc["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
    assert table["count"] == 2 and doc["extensions"]["EXT_structural_metadata"]["schema"] == BUILDING_SCHEMA
    view = doc["bufferViews"][table["properties"]["name"]["values"]]
    offs_view = doc["bufferViews"][table["properties"]["name"]["stringOffsets"]]
    offs = np.frombuffer(binary, np.uint32, 3, offs_view["byteOffset"])
    names = binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]
    assert names[offs[1]:offs[2]].decode() == "세종 타워"
    # the vertices of feature 1 are the L-shaped building's (east of x = 1260)
    pos = gltf_positions(doc, binary)
    assert np.all(pos[ids == 1, 0] > 1260) and np.all(pos[ids == 0, 0] < 1261)
    # all-empty string columns are left out of the table (a buffer view may not be empty)
    assert "roof_type" in table["properties"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_every_triangle_carries_its_surface_kind_as_a_property_attribute(encoded, compression):
    from scipy.spatial import cKDTree

    doc, binary = read_glb(encoded[1][compression][0].read_bytes())
    prim = doc["meshes"][0]["primitives"][0]
    meta = doc["extensions"]["EXT_structural_metadata"]
    assert meta["propertyAttributes"] == [{"class": "surface", "properties": {"kind": {"attribute": "_SURFACE"}}}]
    assert prim["extensions"]["EXT_structural_metadata"] == {"propertyAttributes": [0]}
    assert BUILDING_SCHEMA["classes"]["surface"]["properties"]["kind"]["componentType"] == "UINT8"
    assert doc["accessors"][prim["attributes"]["_SURFACE"]]["componentType"] == 5121  # UNSIGNED_BYTE
    data = read_primitive(doc, binary, prim)
    tri = np.asarray(data["indices"]).reshape(-1, 3)
    kind = np.asarray(data["_SURFACE"]).astype(int)[tri]
    assert np.all(kind == kind[:, :1])  # one kind per triangle: its corners are its own vertices
    pos = gltf_positions(doc, binary)
    v, f, _ = _buildings()
    want = _surfaces()
    # each decoded triangle is the source face with the same centroid
    _, face = cKDTree(v[f].mean(axis=1)).query(pos[tri].mean(axis=1))
    assert np.array_equal(kind[:, 0], want[face])
    assert set(kind[:, 0].tolist()) == {GROUND, WALL, ROOF, OTHER}


def test_a_proposal_is_flagged_in_a_boolean_bitstream_with_what_it_replaces(encoded):
    doc, binary = read_glb(encoded[1]["none"][0].read_bytes())
    table = doc["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
    view = doc["bufferViews"][table["properties"]["proposed"]["values"]]
    bits = binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]
    assert bits == bytes([0b10])  # row 0 standing, row 1 proposed: least significant bit first
    assert BUILDING_SCHEMA["classes"]["building"]["properties"]["proposed"]["type"] == "BOOLEAN"
    view = doc["bufferViews"][table["properties"]["replaces"]["values"]]
    offs_view = doc["bufferViews"][table["properties"]["replaces"]["stringOffsets"]]
    offs = np.frombuffer(binary, np.uint32, 3, offs_view["byteOffset"])
    text = binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]
    assert [text[offs[i]:offs[i + 1]].decode() for i in range(2)] == ["", "B-1"]


def test_compression_pays_and_output_is_deterministic(encoded):
    _, files = encoded
    size = {c: sum(p.stat().st_size for p in files[c]) for c in COMPRESSIONS}
    assert size["draco"] < size["meshopt"] < size["quantized"] < size["none"]
    v, f, feat = _buildings()
    again = mesh_glb(flat_mesh(v, f, feat, building_colours(RECORDS), _surfaces()), compression="meshopt",
                     records=RECORDS)
    assert again == files["meshopt"][0].read_bytes()


def test_flat_mesh_welds_coplanar_corners():
    v, f = roof_solid(L_SHAPE, [Plane(0, 0, 10)], 0)
    m = flat_mesh(v, f)
    # 6 walls x 4 corners + roof and floor 6 corners each
    assert len(m.positions) == 6 * 4 + 6 + 6
    assert np.allclose(np.linalg.norm(m.normals, axis=1), 1.0)
