"""anchors.json, its GeoJSON and CSV written a batch at a time: the same bytes whatever the
batches, an explicit empty set, and a summary that agrees with the anchors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import psutil
import pytest

from pipeline.artifacts.anchors import AnchorSet, AnchorWriter, read_anchors, read_summary

FILES = ("anchors.json", "anchors.geojson", "anchors.csv")


def _write(folder, head: AnchorSet, batches) -> None:
    folder.mkdir()
    with AnchorWriter(folder, head) as out:
        for batch in batches:
            out.add(batch)
        out.close(head.skipped)


@pytest.mark.slow
def test_batches_do_not_change_a_byte(sample_run, tmp_path):
    published = sample_run / "bundle" / "anchors"
    whole = read_anchors(published / "anchors.json")
    anchors, whole.anchors = whole.anchors, []
    for size in (1, 7, len(anchors)):
        folder = tmp_path / f"batch{size}"
        _write(folder, whole, [anchors[i:i + size] for i in range(0, len(anchors), size)] + [[]])
        for name in FILES + ("summary.json",):
            assert (folder / name).read_bytes() == (published / name).read_bytes(), (size, name)


@pytest.mark.slow
def test_the_summary_counts_and_bounds_every_anchor(sample_run):
    folder = sample_run / "bundle" / "anchors"
    doc = json.loads((folder / "anchors.json").read_text())
    summary = read_summary(folder)
    assert summary.count == len(doc["anchors"])
    assert sum(summary.kinds.values()) == summary.count
    for kind, n in summary.kinds.items():
        assert n == sum(a["kind"] == kind for a in doc["anchors"])
    for i, key in enumerate(("longitude", "latitude", "ellipsoidal_height")):
        values = [a[key] for a in doc["anchors"]]
        assert summary.bbox[i] == min(values) and summary.bbox[i + 3] == max(values)


def test_no_anchors_is_an_explicit_empty_set(tmp_path):
    head = AnchorSet({"name": "empty", "origin": {"latitude": 37.5, "longitude": 127.0, "ellipsoidal_height": 0.0}},
                     None, "egm96_15.gtx", "orthometric", {}, skipped=[{"anchor": "poi:001", "reason": "no terrain"}])
    _write(tmp_path / "a", head, [[]])
    folder = tmp_path / "a"
    doc = json.loads((folder / "anchors.json").read_text())
    assert doc["anchors"] == [] and doc["skipped"] == head.skipped
    assert json.loads((folder / "anchors.geojson").read_text())["features"] == []
    assert list(csv.reader((folder / "anchors.csv").open(encoding="utf-8")))[1:] == []
    summary = read_summary(folder)
    assert summary.count == 0 and summary.bbox is None and set(summary.kinds.values()) == {0}
    assert read_anchors(folder / "anchors.json").anchors == []


def test_a_file_that_cannot_be_opened_leaves_none_open(tmp_path):
    head = AnchorSet({"name": "x", "origin": {"latitude": 37.5, "longitude": 127.0, "ellipsoidal_height": 0.0}},
                     None, "egm96_15.gtx", "orthometric", {})
    (tmp_path / "anchors.csv").mkdir()  # the third of the three files cannot be opened
    with pytest.raises(IsADirectoryError) as failure:
        AnchorWriter(tmp_path, head)
    # while the error (and through its traceback the half-made writer) is still held
    assert failure.traceback and not [f for f in psutil.Process().open_files() if Path(f.path).parent == tmp_path]
