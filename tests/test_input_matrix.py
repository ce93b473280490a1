"""Every combination of inputs a stranger tries first gives a valid bundle (checked by our
validator with the Khronos glTF validator, and by publish itself) or one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.core.tileset_check import validate_tileset
from tests.cli.test_cli import _one_error_line
from tests.conftest import SAMPLE, official_agrees, run_cli
from tests.fixtures_las import sample_points, write_las

ORIGIN = "site: {origin: {lat: 37.5770, lon: 126.8898}}\n"


def _run(tmp_path, inputs: str) -> tuple:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(ORIGIN + "inputs:\n" + inputs)
    proc = run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--quiet")
    return proc, tmp_path / "w" / "bundle"


def _cloud(tmp_path, xyz: np.ndarray, name: str = "cloud.las") -> str:
    return f"  pointclouds: [{{path: {write_las(tmp_path / name, xyz, crs='EPSG:5186+5773')}}}]\n"


FOOTPRINTS = f"  footprints: {{path: {SAMPLE / 'buildings.geojson'}}}\n"
DEM = f"  dem: {{path: {SAMPLE / 'dem.tif'}}}\n"


@pytest.fixture(scope="module")
def footprints_alone(tmp_path_factory) -> tuple:
    """One run of the footprint layer alone (the run and its bundle): both the combination test
    and the reference-height test look at it."""
    return _run(tmp_path_factory.mktemp("footprints"), FOOTPRINTS)


def _one_footprint(tmp_path) -> str:
    doc = json.loads((SAMPLE / "buildings.geojson").read_text())
    doc["features"] = doc["features"][:1]
    (tmp_path / "one.geojson").write_text(json.dumps(doc))
    return f"  footprints: {{path: {tmp_path / 'one.geojson'}}}\n"


def _layers(bundle) -> set[str]:
    root = json.loads((bundle / "tileset.json").read_text())["root"]
    return {c["content"]["uri"].split("/")[0] for c in root["children"]}


def _valid(bundle) -> None:
    report = validate_tileset(bundle)
    assert report.valid, report.problems[:5]
    assert report.gltf_validated > 0
    official_agrees(bundle)


@pytest.mark.slow
@pytest.mark.parametrize("combo,layers", [
    ("points", {"pointcloud", "terrain", "buildings"}),  # buildings outlined from the points
    ("footprints", {"buildings"}),
    ("dem", {"terrain"}),
    ("footprints+dem", {"terrain", "buildings"}),
    ("one footprint+dem", {"terrain", "buildings"}),
    ("one point", {"pointcloud"}),
    ("identical points", {"pointcloud"}),
    ("sparse", {"pointcloud", "terrain"}),
])
def test_input_combination_makes_a_valid_bundle(tmp_path, request, combo, layers):
    rng = np.random.default_rng(3)
    inputs = {
        "points": lambda: _cloud(tmp_path, sample_points(150_000)),
        "dem": lambda: DEM,
        "footprints+dem": lambda: FOOTPRINTS + DEM,
        "one footprint+dem": lambda: _one_footprint(tmp_path) + DEM,
        "one point": lambda: _cloud(tmp_path, sample_points(150_000)[:1]),
        "identical points": lambda: _cloud(tmp_path, np.repeat(sample_points(150_000)[:1], 50, axis=0)),
        # 800 points over about a square kilometre (the whole sample's extent)
        "sparse": lambda: _cloud(tmp_path, np.column_stack([rng.uniform(189600, 190600, 800),
                                                            rng.uniform(552800, 553800, 800),
                                                            rng.uniform(10, 30, 800)])),
    }
    if combo == "footprints":
        proc, bundle = request.getfixturevalue("footprints_alone")
    else:
        proc, bundle = _run(tmp_path, inputs[combo]())
    assert proc.returncode == 0, proc.stderr[-3000:]
    _valid(bundle)
    # layers that must be there; a few points can still make a terrain of a few square metres
    assert layers <= _layers(bundle)
    anchors = json.loads((bundle / "anchors" / "anchors.json").read_text())["anchors"]
    if "buildings" in layers:
        kinds = [a["kind"] for a in anchors]
        assert kinds and set(kinds) <= {"building", "rooftop"} and kinds.count("building") == kinds.count("rooftop")
        assert combo != "one footprint+dem" or len(anchors) == 2
    else:
        assert anchors == []


@pytest.mark.slow
def test_footprints_alone_stand_on_the_reference_height(footprints_alone):
    proc, bundle = footprints_alone
    assert proc.returncode == 0, proc.stderr
    mesh = json.loads((bundle.parent / "reports" / "mesh.json").read_text())["buildings"]
    assert mesh["buildings"] > 50 and mesh["ground_on_reference_height"] == mesh["buildings"]
    anchors = json.loads((bundle / "anchors" / "anchors.json").read_text())["anchors"]
    # the site origin's ellipsoidal height (0 m): where a globe without terrain draws the ground
    assert all(abs(a["ellipsoidal_height"]) < 1e-3 for a in anchors if a["kind"] == "building")
    # no terrain: ARCore cannot be told a height above it, only the WGS84 altitude
    assert all(a["arcore"]["altitude_above_terrain"] is None and a["arcore"]["recommended"] != "terrain"
               for a in anchors)
    assert {a["properties"]["ground_source"] for a in anchors} == {"site reference height"}
    # the command line says so in one plain line, not with Python's file:line and source echo
    said = [ln for ln in proc.stderr.splitlines() if "reference height" in ln]
    assert len(said) == 1 and said[0].startswith("dmctwin: warning: ") and "stand on the site" in said[0]
    assert "warnings.warn" not in proc.stderr and ".py:" not in proc.stderr


@pytest.mark.parametrize("inputs,expect", [
    ("  gcps: {path: %s, crs: 'EPSG:5186'}\n" % (SAMPLE / "gcps.csv"), "nothing to build a twin from"),
    ("  pointclouds: [{path: missing.las}]\n", "inputs.pointclouds[0].path: input file not found"),
])
def test_inputs_that_cannot_make_a_twin_are_one_line(tmp_path, inputs, expect):
    proc, bundle = _run(tmp_path, inputs)
    assert expect in _one_error_line(proc)
    assert not bundle.exists()
