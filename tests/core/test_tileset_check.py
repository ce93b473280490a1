"""The tileset validator passes a good tileset and flags each deliberate breakage."""

from __future__ import annotations

import copy
import json
import struct

import numpy as np
import pytest

from pipeline.core.content import mesh_glb, smooth_mesh
from pipeline.core.geodesy import SiteFrame, geodetic_to_ecef
from pipeline.core.tiles import aabb_box, matrix_to_json, tileset_doc
from pipeline.core.tileset_check import validate_tileset

SCHEMA = {"id": "s", "classes": {"info": {"properties": {
    "name": {"type": "STRING", "required": True},
    "year": {"type": "SCALAR", "componentType": "UINT16"},
    "origin": {"type": "SCALAR", "componentType": "FLOAT64", "array": True, "count": 3}}}}}


def _quad(offset):
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 10, 2]], float) + offset
    return v, np.array([[0, 1, 2], [1, 3, 2]], np.int32)


def _good(tmp_path):
    for name, off in (("a.glb", [0, 0, 0]), ("b.glb", [20, 0, 0])):
        v, f = _quad(np.array(off, float))
        (tmp_path / name).write_bytes(mesh_glb(smooth_mesh(v, f), compression="draco"))
    child_a = {"boundingVolume": {"box": aabb_box(np.array([0, 0, 0]), np.array([10, 10, 2]), 0.01)},
               "geometricError": 0.0, "content": {"uri": "a.glb"}}
    child_b = {"boundingVolume": {"box": aabb_box(np.array([20, 0, 0]), np.array([30, 10, 2]), 0.01)},
               "geometricError": 0.0, "content": {"uri": "b.glb"}}
    root = {"boundingVolume": {"box": aabb_box(np.array([0, 0, 0]), np.array([30, 10, 2]), 0.02)},
            "geometricError": 5.0, "refine": "ADD",
            "transform": matrix_to_json(SiteFrame(37.577, 126.8898).enu_to_ecef_matrix()),
            "children": [child_a, child_b]}
    return tileset_doc(root, 10.0, schema=SCHEMA,
                       metadata={"class": "info", "properties": {"name": "good", "year": 2026,
                                                                 "origin": [126.8898, 37.577, 0.0]}})


def _write(tmp_path, doc, name="tileset.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_good_tileset_passes_both_validators(tmp_path):
    r = validate_tileset(_write(tmp_path, _good(tmp_path)))
    assert r.valid and r.contents == 2 and r.gltf_validated == 2, [str(f) for f in r.findings]
    assert not r.warnings


BREAKAGES = {
    "child bounds outside parent": (lambda d: d["root"]["children"][0]["boundingVolume"]["box"].__setitem__(0, 100.0),
                                    "not inside its parent"),
    "content outside its box": (lambda d: d["root"]["children"][0]["boundingVolume"].__setitem__(
        "box", aabb_box(np.array([0, 0, 0]), np.array([5, 10, 2]))), "outside the bounding volume"),
    "increasing geometricError": (lambda d: d["root"]["children"][0].__setitem__("geometricError", 50.0),
                                  "exceeds its parent"),
    "missing content file": (lambda d: d["root"]["children"][0]["content"].__setitem__("uri", "nothere.glb"),
                             "does not exist"),
    "undeclared extension": (lambda d: d["root"].__setitem__("extensions", {"3DTILES_bounding_volume_S2": {}}),
                             "not declared in extensionsUsed"),
    "required but unused": (lambda d: d.__setitem__("extensionsRequired", ["3DTILES_content_gltf"]),
                            "not in extensionsUsed"),
    "wrong asset version": (lambda d: d["asset"].__setitem__("version", "0.0"), "asset.version"),
    "no refine on the root": (lambda d: d["root"].pop("refine"), "refine"),
    "negative geometricError": (lambda d: d["root"]["children"][1].__setitem__("geometricError", -1), ">= 0"),
    "metadata of an unknown class": (lambda d: d["metadata"].__setitem__("class", "nope"), "not in the schema"),
    "metadata of the wrong type": (lambda d: d["metadata"]["properties"].__setitem__("year", "MMXXVI"),
                                   "must be numeric"),
    "metadata out of range": (lambda d: d["metadata"]["properties"].__setitem__("year", 70000), "UINT16"),
    "required metadata missing": (lambda d: d["metadata"]["properties"].pop("name"), "required property"),
    "array of the wrong length": (lambda d: d["metadata"]["properties"].__setitem__("origin", [1.0]),
                                  "3 elements"),
    "box of eleven numbers": (lambda d: d["root"]["children"][1]["boundingVolume"]["box"].pop(), "12 numbers"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_breakages_are_flagged(tmp_path, breakage):
    doc = copy.deepcopy(_good(tmp_path))
    change, expect = BREAKAGES[breakage]
    change(doc)
    r = validate_tileset(_write(tmp_path, doc), gltf=False)
    assert not r.valid
    assert any(expect in p for p in r.problems), r.problems


def test_external_tilesets_regions_and_spheres(tmp_path):
    # a child tileset whose root is a region inside its parent's sphere
    lon, lat = np.radians(126.8898), np.radians(37.577)
    region = [lon - 2e-6, lat - 2e-6, lon + 2e-6, lat + 2e-6, 0.0, 50.0]  # about 13 m either way
    centre = geodetic_to_ecef(np.array([126.8898]), np.array([37.577]), np.array([25.0]))[0]
    inner = tileset_doc({"boundingVolume": {"region": region}, "geometricError": 1.0, "refine": "REPLACE"}, 2.0)
    _write(tmp_path, inner, "inner.json")
    outer = tileset_doc({"boundingVolume": {"sphere": [*centre.tolist(), 40.0]}, "geometricError": 3.0,
                         "refine": "ADD", "content": {"uri": "inner.json"}}, 5.0)
    assert validate_tileset(_write(tmp_path, outer), gltf=False).valid
    outer["root"]["boundingVolume"]["sphere"][3] = 5.0  # too small for the region
    r = validate_tileset(_write(tmp_path, outer), gltf=False)
    assert any("not inside its parent" in p for p in r.problems), r.problems


def _pnts(points: np.ndarray, rtc: list[float]) -> bytes:
    ft = json.dumps({"POINTS_LENGTH": len(points), "POSITION": {"byteOffset": 0}, "RTC_CENTER": rtc}).encode()
    ft += b" " * ((-len(ft) - 28) % 8)
    body = points.astype(np.float32).tobytes()
    body += b"\0" * ((-len(body)) % 8)
    return struct.pack("<4sIIIIII", b"pnts", 1, 28 + len(ft) + len(body), len(ft), len(body), 0, 0) + ft + body


def test_legacy_point_tiles_are_checked_for_containment(tmp_path):
    pts = np.random.default_rng(0).uniform(-5, 5, (200, 3))
    (tmp_path / "p.pnts").write_bytes(_pnts(pts, [1000.0, 2000.0, 3000.0]))
    box = aabb_box(pts.min(0) + [1000, 2000, 3000], pts.max(0) + [1000, 2000, 3000], 0.01)
    doc = {"asset": {"version": "1.0"}, "geometricError": 1.0,
           "root": {"boundingVolume": {"box": box}, "geometricError": 0.0, "refine": "ADD",
                    "content": {"uri": "p.pnts"}}}
    assert validate_tileset(_write(tmp_path, doc), gltf=False).valid
    doc["root"]["boundingVolume"]["box"][0] += 3.0
    assert not validate_tileset(_write(tmp_path, doc), gltf=False).valid


def _glb(doc: dict, binary: bytes) -> bytes:
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


def _surface_tile(tmp_path, change=None):
    """A one-building tile with per-vertex surface kinds, changed by ``change(doc)``."""
    from pipeline.core.content import flat_mesh
    from pipeline.core.gltf import read_glb
    from pipeline.core.surfaces import kinds_by_normal

    v, f = _quad(np.zeros(3))
    rec = {"id": "B", "height": 2.0, "ground_height": 0.0, "roof_height": 2.0}
    data = mesh_glb(flat_mesh(v, f, np.zeros(2, int), None, kinds_by_normal(v, f)), compression="none", records=[rec])
    doc, binary = read_glb(data)
    if change is not None:
        change(doc)
    (tmp_path / "a.glb").write_bytes(_glb(doc, binary))
    root = {"boundingVolume": {"box": aabb_box(np.array([0, 0, 0]), np.array([10, 10, 2]), 0.01)},
            "geometricError": 0.0, "refine": "ADD", "content": {"uri": "a.glb"},
            "transform": matrix_to_json(SiteFrame(37.577, 126.8898).enu_to_ecef_matrix())}
    return validate_tileset(_write(tmp_path, tileset_doc(root, 1.0)))


def _meta(doc: dict) -> dict:
    return doc["extensions"]["EXT_structural_metadata"]


def _enum_table(doc: dict) -> None:
    """An ENUM column of UINT8 values, as its enum's valueType says (not the UINT16 default)."""
    meta = _meta(doc)
    meta["schema"]["enums"] = {"kind": {"valueType": "UINT8", "values": [{"name": "a", "value": 0}]}}
    meta["schema"]["classes"]["building"]["properties"]["kind"] = {"type": "ENUM", "enumType": "kind"}
    # a one-byte view (the proposed flags' bitstream): one UINT8 row, half a UINT16 one
    meta["propertyTables"][0]["properties"]["kind"] = {"values": meta["propertyTables"][0]["properties"]["proposed"]
                                                        ["values"]}


@pytest.mark.parametrize(("change", "expect"), [
    (None, None),
    (_enum_table, None),
    (lambda d: _meta(d)["propertyAttributes"][0]["properties"]["kind"].__setitem__("attribute", "_NOPE"),
     "attribute _NOPE does not exist"),
    (lambda d: _meta(d)["propertyAttributes"][0].__setitem__("class", "nope"), "class 'nope' is not in the schema"),
    (lambda d: d["meshes"][0]["primitives"][0]["extensions"]["EXT_structural_metadata"].__setitem__(
        "propertyAttributes", [3]), "propertyAttributes[3]: does not exist"),
    (lambda d: d["accessors"][d["meshes"][0]["primitives"][0]["attributes"]["_SURFACE"]].__setitem__(
        "componentType", 5123), "property 'kind' needs 5121"),
])
def test_property_attributes_and_enum_columns_are_checked(tmp_path, change, expect):
    r = _surface_tile(tmp_path, change)
    if expect is None:
        assert r.valid, r.problems
    else:
        assert any(expect in p for p in r.problems), r.problems
