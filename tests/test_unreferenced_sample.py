"""Second sample end to end: a scan in a scanner frame with control points, and a drifting mobile
strip, georeferenced and scored against the generator's truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.core.cells import CellStore
from tests.conftest import SAMPLE, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def unref(tmp_path_factory):
    out = tmp_path_factory.mktemp("unref")
    gen = run_cli("sample", "generate", "--variant", "unreferenced", str(out / "data"), "--from", str(SAMPLE))
    assert gen.returncode == 0, gen.stderr
    # without the sunlight analysis, a third of the run: these tests check where the scans land
    # and what the anchors carry, and the analysis would be the sample's own, tested on it
    config = out / "data" / "config.yaml"
    text = config.read_text()
    assert "\nstages:\n" in text
    config.write_text(text.replace("\nstages:\n", "\nstages:\n  analysis: {enabled: false}\n", 1))
    proc = run_cli("run", str(config), "--workdir", str(out / "w"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


def _cloud(workdir, name: str) -> np.ndarray:
    """ENU points of one input cloud from georef's output (the index numbers points cloud by cloud)."""
    meta = json.loads((workdir / "artifacts" / "ingest" / "points" / name / "meta.json").read_text())
    store = CellStore(workdir / "artifacts" / "georef" / "points")
    pts = store.read_all()
    names = sorted(p.name for p in (workdir / "artifacts" / "ingest" / "points").iterdir())
    start = sum(json.loads((workdir / "artifacts" / "ingest" / "points" / n / "meta.json").read_text())["count"]
                for n in names[:names.index(name)])
    sel = pts[start:start + meta["count"]]
    return np.column_stack([sel["x"], sel["y"], sel["z"]])


def test_scanner_frame_scan_lands_on_the_truth(unref, sample_run):
    truth = json.loads((unref / "data" / "truth.json").read_text())
    report = json.loads((unref / "w" / "reports" / "georef.json").read_text())
    c = report["control"]
    assert sorted(c["rejected"]) == sorted(truth["blunders"])
    assert c["transform"]["scale"] == pytest.approx(truth["scale"], abs=5e-5)
    assert c["transform"]["rotation_xyz_deg"][2] == pytest.approx(truth["euler_xyz_deg"][2], abs=0.01)
    # the report's RMSE is what the generator's noise produced (a fit absorbs a little of it)
    assert 0.7 * truth["true_rmse_horizontal_m"] < c["rmse_horizontal_m"] < 1.1 * truth["true_rmse_horizontal_m"]
    assert 0.6 * truth["true_rmse_vertical_m"] < c["rmse_vertical_m"] < 1.1 * truth["true_rmse_vertical_m"]
    assert c["check_rmse_horizontal_m"] < 0.05 and c["check_rmse_vertical_m"] < 0.05
    # every point against its true ENU position (the main sample's georef of the same points)
    true_enu = CellStore(sample_run / "artifacts" / "georef" / "points").read_all()
    idx = np.load(unref / "data" / "crop_index.npy")
    expected = np.column_stack([true_enu["x"][idx], true_enu["y"][idx], true_enu["z"][idx]])
    got = _cloud(unref / "w", "00_scan_local")
    err = np.linalg.norm(got - expected, axis=1)
    assert np.sqrt(np.mean(err ** 2)) < 0.03


def test_mobile_strip_is_aligned_within_2cm(unref, sample_run):
    report = json.loads((unref / "w" / "reports" / "georef.json").read_text())
    reg = report["registration"][0]
    assert reg["fitness"] > 0.9
    true_enu = CellStore(sample_run / "artifacts" / "georef" / "points").read_all()
    idx = np.load(unref / "data" / "strip_index.npy")
    expected = np.column_stack([true_enu["x"][idx], true_enu["y"][idx], true_enu["z"][idx]])
    got = _cloud(unref / "w", "01_mobile_strip")
    # aligned onto the GCP-referenced scan: the strip inherits that scan's small fit error, so
    # score it against the scan's own georeferenced positions of the same points
    crop = np.load(unref / "data" / "crop_index.npy")
    scan = _cloud(unref / "w", "00_scan_local")
    on_scan = scan[np.searchsorted(crop, idx)]
    assert np.sqrt(np.mean(np.sum((got - on_scan) ** 2, axis=1))) < 0.02
    assert np.sqrt(np.mean(np.sum((got - expected) ** 2, axis=1))) < 0.04


def test_anchors_carry_the_georef_accuracy(unref):
    anchors = json.loads((unref / "w" / "bundle" / "anchors" / "anchors.json").read_text())
    report = json.loads((unref / "w" / "reports" / "georef.json").read_text())
    acc = anchors["accuracy"]
    assert acc["horizontal_rmse_m"] == pytest.approx(report["control"]["check_rmse_horizontal_m"])
    assert acc["vertical_rmse_m"] == pytest.approx(report["lidar_check"]["vertical_rmse_m"])
