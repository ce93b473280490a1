"""GLB writer: structure, round trip, validator, determinism."""

from __future__ import annotations

import numpy as np

from pipeline.core.content import building_glb, point_glb, terrain_glb
from pipeline.core.gltf import enu_to_gltf, gltf_to_enu, read_accessor, read_glb
from pipeline.core.meshing import prism
from tests.conftest import validate_gltf
from tests.nasty import COURTYARD


def _building():
    rings = [np.asarray(COURTYARD.exterior.coords)[:-1], np.asarray(COURTYARD.interiors[0].coords)[:-1]]
    v, f = prism(rings, [np.column_stack([r, np.zeros(len(r))]) for r in rings],
                 [np.column_stack([r, np.full(len(r), 30.0)]) for r in rings])
    rec = [{"id": "B-1", "name": "Courtyard Hall", "use": "culture", "floors": 7, "height": 30.0,
            "ground_height": 12.0, "height_source": "lidar"}]
    return v + [1000.0, 2000.0, 0.0], f, rec


def test_axes_roundtrip():
    v = np.random.default_rng(0).normal(size=(10, 3))
    assert np.allclose(gltf_to_enu(enu_to_gltf(v)), v)


def test_building_glb_roundtrip_and_metadata(tmp_path):
    v, f, rec = _building()
    centre = np.array([1030.0, 2020.0, 15.0])
    data = building_glb(v, f, np.zeros(len(f), np.int64), rec, centre)
    doc, binary = read_glb(data)
    prim = doc["meshes"][0]["primitives"][0]
    pos = read_accessor(doc, binary, prim["attributes"]["POSITION"])
    world = gltf_to_enu(pos.astype(np.float64) + doc["nodes"][0]["translation"])
    assert np.abs(world - v[f].reshape(-1, 3)).max() < 1e-4
    tab = doc["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
    view = doc["bufferViews"][tab["properties"]["name"]["values"]]
    assert binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]] == b"Courtyard Hall"
    assert all(v["byteOffset"] % 8 == 0 for v in doc["bufferViews"])
    assert data == building_glb(v, f, np.zeros(len(f), np.int64), rec, centre)
    (tmp_path / "b.glb").write_bytes(data)
    (tmp_path / "t.glb").write_bytes(terrain_glb(v, f, centre))
    pts = np.random.default_rng(1).uniform(0, 10, (100, 3))
    (tmp_path / "p.glb").write_bytes(point_glb(pts, np.full((100, 3), 40000, np.uint16),
                                               np.arange(100, dtype=np.uint16),
                                               np.full(100, 2, np.uint8)))
    for report in validate_gltf(sorted(tmp_path.glob("*.glb"))):
        assert report["errors"] == 0 and report["warnings"] == 0, report
