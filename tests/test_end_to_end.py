"""End to end on the embedded sample: geometry checked against PROJ and the generator's truth."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pyproj
import pytest
import shapely
import xxhash
from shapely.ops import polylabel

from pipeline.core.geodesy import ensure_proj_data
from pipeline.core.cells import CellStore
from pipeline.core.pointio import BUILDING, GROUND
from pipeline.core.gltf import glb_positions
from pipeline.artifacts.anchors import schema_path
from tests.conftest import REPO, SAMPLE, SAMPLE_CONFIG, building_docs

pytestmark = pytest.mark.slow
STAGES = ("ingest", "georef", "clean", "mesh", "analysis", "tile", "anchors", "publish")


def test_manifest_records_every_stage(sample_run):
    m = json.loads((sample_run / "manifest.json").read_text())
    for name in STAGES:
        e = m["stages"][name]
        assert e["outputs"] and e["config_hash"] and e["version"] and e["seconds"] >= 0
    assert m["stages"]["ingest"]["counts"]["points"] == 3_327_456
    assert m["stages"]["mesh"]["counts"]["buildings"] == 61  # 60 footprints and the imported tower
    assert m["stages"]["mesh"]["counts"]["lod2_buildings"] >= 45
    # outputs are known again by XXH3-128 (checked against the xxhash package's one-shot digest);
    # inputs are known by theirs too, and keep the sha256 publish computed for provenance.json,
    # with the stat that lets a resumed run reuse both
    tile = sample_run / "artifacts" / "tile"
    for rel, digest in m["stages"]["tile"]["outputs"].items():
        assert digest == "xxh3:" + xxhash.xxh3_128_hexdigest((tile / rel).read_bytes())
    for path, entry in m["input_files"].items():
        data = Path(path).read_bytes()
        assert entry["xxh3"] == "xxh3:" + xxhash.xxh3_128_hexdigest(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["stat"][:2] == [Path(path).stat().st_size, Path(path).stat().st_mtime_ns]


def test_building_anchors_stand_at_the_footprints_visual_centres(sample_run):
    """Computed again in the footprints' own CRS (EPSG:5186) with shapely and PROJ: the centroid
    where it lies well inside, else the pole of inaccessibility; on the ground at the building's
    base, with N from PROJ's own EGM96 pipeline."""
    ensure_proj_data()
    to_geo = pyproj.Transformer.from_crs("EPSG:5186", "EPSG:4326", always_xy=True)
    geoid = pyproj.Transformer.from_crs("EPSG:4326+5773", "EPSG:4979", always_xy=True)
    geod = pyproj.Geod(ellps="WGS84")
    anchors = {a["id"]: a for a in json.loads(
        (sample_run / "bundle" / "anchors" / "anchors.json").read_text())["anchors"]}
    buildings = {b["id"]: b for b in building_docs(sample_run)}
    feats = json.loads((SAMPLE / "buildings.geojson").read_text())["features"]
    moved = 0
    for feat in feats:
        poly = shapely.geometry.shape(feat["geometry"])
        poly = max(getattr(poly, "geoms", [poly]), key=lambda p: p.area)
        c, pole = poly.centroid, polylabel(poly, 0.01)
        inside = poly.contains(c) and poly.boundary.distance(c) >= 0.5 * poly.boundary.distance(pole)
        moved += not inside
        a = anchors[f"building:{feat['properties']['id']}"]
        if inside:
            lon, lat = to_geo.transform(c.x, c.y, errcheck=True)
            assert geod.inv(lon, lat, a["longitude"], a["latitude"])[2] < 0.01
        else:
            # a pole need not be unique (a square courtyard ring has four): the anchor is one of
            # them if it stands as far from every edge as the pole, within polylabel's tolerance
            x, y = to_geo.transform(a["longitude"], a["latitude"], errcheck=True, direction="INVERSE")
            at = shapely.Point(x, y)
            assert poly.contains(at) and poly.boundary.distance(at) > poly.boundary.distance(pole) - 0.1
        n = geoid.transform(a["longitude"], a["latitude"], 0.0)[2]
        assert a["geoid_undulation"] == pytest.approx(n, abs=2e-3)
        assert a["ellipsoidal_height"] == pytest.approx(a["orthometric_height"] + a["geoid_undulation"], abs=1e-3)
        # on the base the mesh stage built: the solid stands at its centroid's N throughout
        b = buildings[feat["properties"]["id"]]
        assert a["ellipsoidal_height"] == pytest.approx(b["ground_height"] + b["centroid"]["undulation"], abs=1e-3)
        assert a["orthometric_height"] == pytest.approx(b["ground_height"], abs=5e-3)
    assert 0 < moved < len(feats)  # the sample has L-shaped and courtyard footprints


def test_anchors_follow_their_schema(sample_run):
    folder = sample_run / "bundle" / "anchors"
    doc = json.loads((folder / "anchors.json").read_text())
    schema = json.loads(schema_path().read_text())
    jsonschema.validate(doc, schema)
    kinds = [a["kind"] for a in doc["anchors"]]
    assert (kinds.count("building"), kinds.count("rooftop"), kinds.count("terrain"), kinds.count("gcp"),
            kinds.count("model")) == (61, 61, 11, 10, 1)
    assert doc["geoid"]["name"] == "EGM96" and doc["geoid"]["accuracy_m"] == 1.0


def test_classes_against_truth(sample_run):
    classes = np.load(SAMPLE / "truth" / "point_classes.npz")["classes"]
    clean = CellStore(sample_run / "artifacts" / "clean" / "points").read_all()
    kept, got = clean["index"], clean["classification"]
    want = classes[kept]
    for k in (GROUND, BUILDING):
        assert np.mean(got[want == k] == k) >= 0.95


def test_every_cleaned_point_is_in_exactly_one_tile(sample_run):
    from scipy.spatial import cKDTree

    from pipeline.core.content import position_step
    from pipeline.core.gltf import gltf_to_enu

    layer = sample_run / "bundle" / "pointcloud"
    clean = CellStore(sample_run / "artifacts" / "clean" / "points").read_all()
    want = np.column_stack([clean["x"], clean["y"], clean["z"]])
    tiles = sorted((layer / "tiles").glob("*.glb"))
    decoded = [glb_positions(p) for p in tiles]
    got = np.concatenate(decoded)
    assert len(got) == len(want)
    dist, idx = cKDTree(want).query(got)
    assert len(np.unique(idx)) == len(want)  # a bijection: nothing lost, nothing repeated
    # within half a quantization step per axis; the largest step is the root tile's
    worst = max(np.abs(gltf_to_enu(position_step(d))).max() for d in decoded)
    assert np.abs(got - want[idx]).max() <= worst / 2 + 1e-6
    ts = json.loads((layer / "tileset.json").read_text())
    assert ts["root"]["refine"] == "ADD" and ts["root"]["geometricError"] > 0


def _hashes(workdir: Path) -> dict:
    m = json.loads((workdir / "manifest.json").read_text())
    return {name: e["outputs"] for name, e in m["stages"].items()}


def test_ten_kills_resume_to_identical_outputs_and_leave_no_process(sample_run, tmp_path):
    """Ten SIGKILLs of the runner at random moments (seeded), each resumed, then a last run to the
    end: every output equals an uninterrupted run's, and no worker of a killed run lives on."""
    import psutil

    rng = random.Random(20261126)
    workdir = tmp_path / "killed"
    interrupted = []
    man = workdir / "manifest.json"

    def done() -> int:
        return len(json.loads(man.read_text())["stages"]) if man.is_file() else 0

    def stage_began(since: float) -> bool:
        # the runner makes a stage's temporary output folder as the stage starts
        for p in workdir.glob("*/.tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_ctime >= since:
                    return True
        return False

    for k in range(10):
        launched = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(SAMPLE_CONFIG),
                                 "--workdir", str(workdir), "--quiet"], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        # the kills strike, in turn, while the run starts up (its workers spawning), soon after a
        # stage ended (so that they move through the pipeline: the sample's stages take 0.1-10 s)
        # and early in a stage, each timed from what the run did, not from the clock alone: the
        # same ten kills land on a fast machine and a loaded one
        kind = ("start-up", "after a stage", "in a stage", "after a stage")[k % 4]
        before = done()
        deadline = launched + (rng.uniform(0.3, 1.5) if kind == "start-up" else 600)
        family: set[psutil.Process] = set()
        while time.time() < deadline and proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                family |= set(psutil.Process(proc.pid).children(recursive=True))
            if kind == "after a stage" and done() > before:
                deadline, kind = time.time() + rng.uniform(0.0, 1.5), "set"
            elif kind == "in a stage" and stage_began(launched):
                deadline, kind = time.time() + rng.uniform(0.2, 1.0), "set"
            time.sleep(0.05)
        if proc.poll() is not None:
            break  # the run finished before this kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(list(family), timeout=10)
        assert not alive, [p.pid for p in alive]
        finished = json.loads(man.read_text())["stages"] if man.is_file() else {}
        interrupted.append(next((s for s in STAGES if s not in finished), "publish"))
    # a kill that waits for a stage to end finds the run done once publish is the last stage
    # left, so not all ten may land; seven, and most stages reached, is the point
    assert len(interrupted) >= 7, interrupted
    assert len(set(interrupted)) >= 4, interrupted  # the kills reached most stages
    again = subprocess.run([sys.executable, "-m", "pipeline", "run", str(SAMPLE_CONFIG),
                            "--workdir", str(workdir), "--quiet"], cwd=REPO, capture_output=True,
                           text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert _hashes(workdir) == _hashes(sample_run)
    assert not list((workdir / "artifacts").glob(".tmp-*"))


def test_dtm_against_the_true_terrain(sample_run):
    import pyproj
    import rasterio

    from pipeline.core.geodesy import GeoidModel, SiteFrame, geodetic_to_source
    from pipeline.samples.generator import terrain_height

    with rasterio.open(sample_run / "artifacts" / "clean" / "dtm.tif") as r:
        u = r.read(1).astype(np.float64)
        rows, cols = np.mgrid[0:r.height, 0:r.width]
        e, n = rasterio.transform.xy(r.transform, rows.ravel(), cols.ravel())
    valid = u.ravel() != -9999.0
    enu = np.column_stack([np.asarray(e)[valid], np.asarray(n)[valid], u.ravel()[valid]])
    frame = SiteFrame.from_origin(json.loads((sample_run / "artifacts" / "georef" / "frame.json")
                                             .read_text())["origin"])
    lon, lat, h = frame.enu_to_geodetic(enu)
    x, y, height = geodetic_to_source(pyproj.CRS("EPSG:5186+5773"), lon, lat, h, heights="orthometric",
                                      geoid=GeoidModel.from_spec("egm96"))
    err = height - terrain_height(x, y)
    assert valid.mean() > 0.99
    rmse = float(np.sqrt(np.mean(err ** 2)))
    assert rmse <= 0.15, rmse


def test_outlier_filter_takes_the_strays_and_keeps_the_city(sample_run):
    classes = np.load(SAMPLE / "truth" / "point_classes.npz")["classes"]
    kept = np.zeros(len(classes), bool)
    kept[CellStore(sample_run / "artifacts" / "clean" / "points").read_all()["index"]] = True
    stray = classes == 7  # the generator's injected noise
    assert not kept[stray].any()
    assert kept[~stray].mean() > 0.9995
