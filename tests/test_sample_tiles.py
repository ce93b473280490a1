"""The sample's 3D Tiles: valid by both validators, HLOD trees whose errors come from the mesh
stage's measurements, compact content that decodes back within its quantization step, every
building once among the leaves with its metadata, readable by 3d-tiles-tools."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xxhash
from scipy.spatial import cKDTree

from pipeline.core.gltf import gltf_positions, read_glb, read_primitive
from pipeline.core.tileset_check import validate_tileset
from tests.conftest import REPO, SAMPLE, building_docs, official_agrees, run_cli, validate_gltf, variant_run

pytestmark = pytest.mark.slow


def _tiles(tile: dict, out: list | None = None) -> list[dict]:
    out = [] if out is None else out
    out.append(tile)
    for c in tile.get("children", []):
        _tiles(c, out)
    return out


def test_every_glb_passes_the_khronos_validator(sample_run):
    glbs = sorted((sample_run / "bundle").rglob("*.glb"))
    assert len(glbs) > 40
    reports = validate_gltf(glbs)
    bad = [r for r in reports if r["errors"] or r["warnings"]]
    assert not bad, bad[:3]
    # the infos left: the validator cannot read the metadata and Draco extensions, and so sees
    # the property tables' and the Draco stream's buffer views as unused
    infos = {m.split(":")[1] for r in reports for m in r["messages"]}
    assert infos <= {"UNSUPPORTED_EXTENSION", "UNUSED_OBJECT"}


def test_the_bundle_is_valid_by_our_validator(sample_run):
    report = validate_tileset(sample_run / "bundle")
    assert report.valid, report.problems[:5]
    assert not report.warnings
    official_agrees(sample_run / "bundle")
    assert report.tilesets == 4 and report.gltf_validated == report.contents > 40
    proc = run_cli("validate", str(sample_run / "bundle"))
    assert proc.returncode == 0 and "valid: 0 errors" in proc.stdout
    root = json.loads((sample_run / "bundle" / "tileset.json").read_text())
    assert root["asset"]["version"] == "1.1"
    props = root["metadata"]["properties"]
    assert props["generator"] == "dmc-twin" and props["georef_vertical_rmse_m"] < 0.05
    laz = SAMPLE / "dmc_aerial.laz"
    assert f"dmc_aerial.laz xxh3:{xxhash.xxh3_128_hexdigest(laz.read_bytes())[:16]}" in props["source_files"]


def _leaf_ids(layer: Path) -> list[str]:
    ts = json.loads((layer / "tileset.json").read_text())
    schema = json.loads((layer / "schema.json").read_text())
    assert set(schema["classes"]["building"]["properties"]) >= {"id", "name", "height", "roof_type", "lod"}
    ids = []
    for tile in _tiles(ts["root"]):
        if tile.get("children") or "content" not in tile:
            continue
        doc, binary = read_glb((layer / tile["content"]["uri"]).read_bytes())
        ext = doc["extensions"]["EXT_structural_metadata"]
        assert ext["schemaUri"] == "../schema.json"
        table = ext["propertyTables"][0]
        view = doc["bufferViews"][table["properties"]["id"]["values"]]
        offs_view = doc["bufferViews"][table["properties"]["id"]["stringOffsets"]]
        offs = np.frombuffer(binary, np.uint32, table["count"] + 1, offs_view["byteOffset"])
        raw = binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]
        ids += [raw[offs[k]:offs[k + 1]].decode() for k in range(table["count"])]
    return ids


def test_every_building_in_exactly_one_leaf(sample_run):
    ids = _leaf_ids(sample_run / "bundle" / "buildings")
    mesh = building_docs(sample_run)
    assert sorted(ids) == sorted(r["id"] for r in mesh)  # nothing lost, nothing repeated


def test_tile_trees_take_their_errors_from_the_meshes(sample_run):
    bundle = sample_run / "bundle"
    terrain = json.loads((bundle / "terrain" / "tileset.json").read_text())
    levels = json.loads((sample_run / "artifacts" / "mesh" / "terrain" / "terrain.json").read_text())["levels"]
    measured = {lv["max_vertical_error_m"] for lv in levels}
    tiles = _tiles(terrain["root"])
    assert all(t["geometricError"] in measured for t in tiles)
    assert terrain["root"]["refine"] == "REPLACE" and len(tiles) >= 5
    assert all(t["geometricError"] == levels[0]["max_vertical_error_m"] for t in tiles if not t.get("children"))
    buildings = json.loads((bundle / "buildings" / "tileset.json").read_text())
    mesh = building_docs(sample_run)
    possible = {lv["error_m"] for r in mesh for lv in r["levels"]} | {r["height"] for r in mesh}
    tiles = _tiles(buildings["root"])
    assert buildings["root"]["refine"] == "REPLACE" and any(t.get("children") for t in tiles)
    for t in tiles:
        if t.get("children"):
            assert t["geometricError"] > 0
            assert t["geometricError"] in possible or t["geometricError"] == max(
                c["geometricError"] for c in t["children"])
        else:
            assert t["geometricError"] == 0.0  # leaves hold the full detail


def test_picking_a_feature_gives_that_buildings_attributes(sample_run):
    bundle = sample_run / "bundle"
    truth = {b["id"]: b for b in json.loads((SAMPLE / "truth" / "truth.json").read_text())["buildings"]}
    anchors = json.loads((bundle / "anchors" / "anchors.json").read_text())["anchors"]
    seen = set()
    for a in anchors:
        if a["kind"] != "building":
            continue
        doc, binary = read_glb((bundle / a["feature"]["content"]).read_bytes())
        prim = doc["meshes"][0]["primitives"][0]
        data = read_primitive(doc, binary, prim)  # Draco decoded
        fids = np.asarray(data["_FEATURE_ID_0"]).astype(int)
        k = a["feature"]["feature_id"]
        assert k in set(fids.tolist())
        table = doc["extensions"]["EXT_structural_metadata"]["propertyTables"][0]

        offs_view = doc["bufferViews"][table["properties"]["id"]["stringOffsets"]]
        offs = np.frombuffer(binary, np.uint32, table["count"] + 1, offs_view["byteOffset"])
        view = doc["bufferViews"][table["properties"]["id"]["values"]]
        picked = binary[view["byteOffset"] + offs[k]:view["byteOffset"] + offs[k + 1]].decode()
        assert picked == a["feature"]["building_id"]
        hview = doc["bufferViews"][table["properties"]["height"]["values"]]
        height = np.frombuffer(binary, np.float32, table["count"], hview["byteOffset"])[k]
        source = a["properties"]["height_source"]
        if picked in truth and source in ("lidar", "attribute"):
            assert abs(height - truth[picked]["height"]) < 0.3
        elif source == "floors":
            assert height == pytest.approx(a["properties"]["floors"] * 3.5)
        else:
            assert source == "model" and height == pytest.approx(320.0, abs=0.5)
        # the picked vertices lie inside the building's own box
        pos = gltf_positions(doc, binary)[fids == k]
        assert len(pos) >= 8
        seen.add(picked)
    assert len(seen) == 61


def _layer_bytes(bundle: Path, layer: str) -> int:
    return sum(p.stat().st_size for p in (bundle / layer / "tiles").glob("*.glb"))


@pytest.fixture(scope="module")
def encodings(sample_run, tmp_path_factory) -> dict[str, Path]:
    runs = {"draco": sample_run}
    for c in ("none", "meshopt"):
        runs[c] = variant_run(sample_run, tmp_path_factory.mktemp(c), f"tile: {{compression: {c}}}", "tile..publish")
    return runs


def test_compressed_layers_are_at_least_3x_smaller(encodings):
    for layer in ("terrain", "buildings"):
        plain = _layer_bytes(encodings["none"] / "bundle", layer)
        for c in ("draco", "meshopt"):
            small = _layer_bytes(encodings[c] / "bundle", layer)
            assert plain / small >= 3.0, (layer, c, plain, small)


def test_compressed_content_decodes_within_its_quantization_step(encodings):
    for c in ("draco", "meshopt"):
        assert validate_tileset(encodings[c] / "bundle").valid
        for layer in ("terrain", "buildings"):
            tiles = encodings["none"] / "bundle" / layer / "tiles"
            for ref_path in sorted(tiles.glob("*.glb")):
                ref = gltf_positions(*read_glb(ref_path.read_bytes()))
                other = encodings[c] / "bundle" / layer / "tiles" / ref_path.name
                got = gltf_positions(*read_glb(other.read_bytes()))
                step = float((ref.max(0) - ref.min(0)).max()) / 65535  # 16-bit positions over the tile
                d1, _ = cKDTree(got).query(ref, p=np.inf)
                d2, _ = cKDTree(ref).query(got, p=np.inf)
                # the float32 reference itself is good to 0.1 mm
                assert max(d1.max(), d2.max()) <= step / 2 + 1e-4, (c, layer, ref_path.name)


def test_3d_tiles_tools_reads_the_bundle(sample_run, tmp_path):
    tool = REPO / "node_modules" / ".bin" / "3d-tiles-tools"
    if not tool.exists() or shutil.which("node") is None:
        pytest.fail("3d-tiles-tools is not installed: run make setup")
    out = tmp_path / "combined"
    proc = subprocess.run([str(tool), "combine", "-i", str(sample_run / "bundle" / "tileset.json"), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    combined = json.loads((out / "tileset.json").read_text())
    ours = validate_tileset(sample_run / "bundle", gltf=False)
    contents = [t for t in _tiles(combined["root"]) if "content" in t]
    assert len(contents) == ours.contents  # it followed every external tileset
    package = tmp_path / "twin.3tz"
    proc = subprocess.run([str(tool), "convert", "-i", str(sample_run / "bundle" / "tileset.json"),
                           "-o", str(package)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and package.stat().st_size > 1_000_000, proc.stderr
    glb = next((sample_run / "bundle" / "buildings" / "tiles").glob("*.glb"))
    proc = subprocess.run([str(tool), "analyze", "-i", str(glb), "-o", str(tmp_path / "analyzed")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("profile, banned", [
    ("unity", {"EXT_meshopt_compression"}),
    ("portable", {"EXT_meshopt_compression", "KHR_draco_mesh_compression"}),
])
def test_client_profiles_use_only_what_their_clients_decode(shared_variant, profile, banned):
    """Cesium for Unity drops meshopt geometry; a portable bundle has no compression extension:
    every GLB of every layer says so, and the bundle passes the validators."""
    run = shared_variant(f"tile: {{profile: {profile}}}", "tile..publish")
    bundle = run / "bundle"
    report = validate_tileset(bundle)
    assert report.valid and report.gltf_validated > 0, report.problems[:5]
    official_agrees(bundle)
    used: set[str] = set()
    for glb in bundle.rglob("*.glb"):
        used |= set(read_glb(glb.read_bytes())[0].get("extensionsUsed", []))
    assert used and not used & banned, used
    if profile == "portable":
        assert "KHR_mesh_quantization" in used
    catalog = json.loads((bundle / "catalog.json").read_text())
    assert catalog["assets"]["tileset"]["dmctwin:profile"] == profile
