"""``dmctwin diff``: the sample against the sample with one footprint moved and one removed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pipeline.core.bundle_diff import diff_bundles
from tests.conftest import SAMPLE, SAMPLE_CONFIG, run_cli

pytestmark = pytest.mark.slow

MOVED, REMOVED = "DMC-B020", "DMC-B030"


@pytest.fixture(scope="module")
def edited(sample_run, tmp_path_factory) -> Path:
    """The sample rerun with footprint MOVED shifted 4 m east and REMOVED deleted."""
    work = tmp_path_factory.mktemp("edited")
    doc = json.loads((SAMPLE / "buildings.geojson").read_text())
    kept = [f for f in doc["features"] if f["properties"]["id"] != REMOVED]
    assert len(kept) == len(doc["features"]) - 1
    doc["features"] = kept
    moved = next(f for f in kept if f["properties"]["id"] == MOVED)
    assert moved["geometry"]["type"] == "Polygon"
    moved["geometry"]["coordinates"] = [[[x + 4.0, y] for x, y in ring] for ring in moved["geometry"]["coordinates"]]
    (work / "buildings.geojson").write_text(json.dumps(doc))
    shutil.copytree(sample_run / "artifacts", work / "w" / "artifacts", copy_function=os.link)
    shutil.copy(sample_run / "manifest.json", work / "w" / "manifest.json")
    text = SAMPLE_CONFIG.read_text().replace("../assets/sample/buildings.geojson", str(work / "buildings.geojson"))
    (work / "c.yaml").write_text(text.replace("../assets/sample/", str(SAMPLE) + "/"))
    proc = run_cli("run", str(work / "c.yaml"), "--workdir", str(work / "w"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return work / "w" / "bundle"


def test_diff_lists_exactly_the_moved_and_the_removed_building(sample_run, edited):
    d = diff_bundles(sample_run / "bundle", edited)
    assert d.buildings.added == [] and d.buildings.removed == [REMOVED]
    assert [(c.id, c.geometry) for c in d.buildings.changed] == [(MOVED, True)]
    assert d.anchors.added == [] and d.anchors.removed == [f"building:{REMOVED}", f"rooftop:{REMOVED}"]
    assert [c.id for c in d.anchors.changed] == [f"building:{MOVED}", f"rooftop:{MOVED}"]
    assert all(c.geometry for c in d.anchors.changed)
    # sunlight values derived from the whole district are said apart, never as a changed building
    assert all(set(c.fields) == {"sunlight_fail_share"} for c in d.analysis.changed)


def test_diff_of_a_bundle_with_itself_is_empty_and_the_cli_prints_it(sample_run, edited):
    assert diff_bundles(sample_run / "bundle", sample_run / "bundle").empty
    proc = run_cli("diff", str(sample_run / "bundle"), str(edited))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"- building {REMOVED}" in lines and f"~ building {MOVED}: geometry" in lines
    assert lines[-1].startswith("buildings: 0 added, 1 removed, 1 changed; anchors: 0 added, 2 removed, 2 changed")
    doc = json.loads(run_cli("diff", str(sample_run / "bundle"), str(edited), "--json").stdout)
    assert doc["buildings"]["removed"] == [REMOVED] and doc["buildings"]["changed"][0]["id"] == MOVED
