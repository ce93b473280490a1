"""The CLI: bad config and bad inputs give one clear line naming the file and exit code 2."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import SAMPLE, SAMPLE_CONFIG, run_cli


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_config_validate_and_show():
    ok = run_cli("config", "validate", str(SAMPLE_CONFIG))
    assert ok.returncode == 0 and "valid" in ok.stdout
    show = run_cli("config", "show", str(SAMPLE_CONFIG))
    assert show.returncode == 0 and "outlier_std_ratio" in show.stdout


def test_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  clean:\n    voxel_size: lots\n")
    for args in (("config", "validate", str(bad)), ("run", str(bad), "--workdir", str(tmp_path / "w"))):
        line = _one_error_line(run_cli(*args))
        assert "bad.yaml" in line and "stages.clean.voxel_size" in line
    assert not (tmp_path / "w").exists()


def _config_with(tmp_path, **paths):
    text = SAMPLE_CONFIG.read_text().replace("../assets/sample/", str(SAMPLE) + "/")
    for name, new in paths.items():
        text = text.replace(str(SAMPLE / name), str(new))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    return cfg


def test_missing_input_is_one_line(tmp_path):
    cfg = _config_with(tmp_path, **{"dem.tif": tmp_path / "nowhere" / "dem.tif"})
    line = _one_error_line(run_cli("run", str(cfg), "--workdir", str(tmp_path / "w")))
    assert "nowhere/dem.tif" in line and "not found" in line
    assert not (tmp_path / "w" / "artifacts" / "ingest").exists()


@pytest.mark.parametrize("content,expect", [
    ("id,x,y,z\nG1,190000,553000,abc\n", "line 2"),
    ("name,east,north\n", "columns"),
])
def test_bad_gcp_csv_is_one_line_and_leaves_nothing(tmp_path, content, expect):
    gcps = tmp_path / "gcps.csv"
    gcps.write_text(content)
    cfg = _config_with(tmp_path, **{"gcps.csv": gcps})
    workdir = tmp_path / "w"
    line = _one_error_line(run_cli("run", str(cfg), "--workdir", str(workdir), "--stages", "ingest"))
    assert "gcps.csv" in line and expect in line and line.startswith("dmctwin: error: ingest:")
    assert not (workdir / "artifacts" / "ingest").exists()
    assert not list((workdir / "artifacts").glob(".tmp-*"))


def test_corrupt_laz_is_one_line(tmp_path):
    laz = tmp_path / "cut.laz"
    laz.write_bytes((SAMPLE / "dmc_aerial.laz").read_bytes()[:400_000])
    cfg = _config_with(tmp_path, **{"dmc_aerial.laz": laz})
    line = _one_error_line(run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--stages", "ingest"))
    assert "cut.laz" in line


def test_unknown_stage_name(tmp_path):
    line = _one_error_line(run_cli("run", str(SAMPLE_CONFIG), "--stages", "ingest..tiles",
                                   "--workdir", str(tmp_path / "w")))
    assert "tiles" in line


def test_stage_without_upstream_outputs(tmp_path):
    line = _one_error_line(run_cli("run", str(SAMPLE_CONFIG), "--stages", "mesh",
                                   "--workdir", str(tmp_path / "w")))
    assert "run it first" in line
    shutil.rmtree(tmp_path / "w", ignore_errors=True)


def _bad_las(tmp_path, kind: str):
    import laspy
    import numpy as np

    from tests.fixtures_las import sample_points, write_las
    path = write_las(tmp_path / f"{kind}.las", sample_points(2000), crs="EPSG:5186+5773")
    data = bytearray(path.read_bytes())
    header = laspy.read(path).header
    if kind == "count":
        path.write_bytes(bytes(data[: header.offset_to_point_data + 1000 * header.point_format.size]))
    elif kind == "scale":
        data[131:139] = np.float64(0.0).tobytes()
        path.write_bytes(bytes(data))
    elif kind == "nan":
        data[131:139] = np.float64(np.nan).tobytes()
        path.write_bytes(bytes(data))
    elif kind == "version":
        data[24:26] = bytes([3, 9])  # LAS 3.9 does not exist
        path.write_bytes(bytes(data))
    elif kind == "empty":
        empty = laspy.LasHeader(point_format=6, version="1.4")
        laspy.LasData(empty).write(path)
    return path


@pytest.mark.parametrize("kind", ["count", "scale", "nan", "version", "empty"])
def test_lying_point_files_are_one_line_and_leave_nothing(tmp_path, kind):
    las = _bad_las(tmp_path, kind)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"site: {{crs: 'EPSG:5186'}}\ninputs: {{pointclouds: [{{path: {las}}}]}}\n")
    workdir = tmp_path / "w"
    line = _one_error_line(run_cli("run", str(cfg), "--workdir", str(workdir), "--stages", "ingest"))
    assert f"{kind}.las" in line
    expect = {"count": "header claims 2000 points", "scale": "scale is zero", "nan": "non-finite",
              "version": "unsupported LAS version 3.9", "empty": "zero points"}[kind]
    assert expect in line
    assert not (workdir / "artifacts" / "ingest").exists()
    assert not list((workdir / "artifacts").glob(".tmp-*"))


def test_validate_command_exit_codes(tmp_path):
    import json

    from tests.core.test_tileset_check import _good

    good = tmp_path / "tileset.json"
    good.write_text(json.dumps(_good(tmp_path)))
    ok = run_cli("validate", str(tmp_path))
    assert ok.returncode == 0 and "valid: 0 errors" in ok.stdout and "2 GLBs" in ok.stdout
    doc = _good(tmp_path)
    doc["root"]["children"][0]["geometricError"] = 99.0
    doc["root"]["children"][1]["content"]["uri"] = "gone.glb"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    broken = run_cli("validate", str(bad), "--json")
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    messages = [f["message"] for f in report["findings"] if f["severity"] == "error"]
    assert any("exceeds its parent" in m for m in messages) and any("gone.glb" in m for m in messages)
    line = _one_error_line(run_cli("validate", str(tmp_path / "nowhere")))
    assert "nowhere" in line


@pytest.mark.parametrize("change,expect", [
    ({"dmc_aerial.laz": "missing.laz"}, "inputs.pointclouds[0].path: input file not found"),
    ({"crs": "EPSG:999999"}, "inputs.gcps.crs: unknown or invalid CRS 'EPSG:999999'"),
    ({"dem.tif": "empty.tif"}, "inputs.dem.path: the file is empty"),
    ({"dmc_aerial.laz": "notes.md"}, "inputs.pointclouds[0].path: not a point cloud format"),
    ({"dmc_aerial.laz": "notes.las"}, "inputs.pointclouds[0].path: not a LAS file"),
    ({"inputs": None}, "inputs: nothing to build a twin from"),
])
def test_config_validate_rejects_configs_that_cannot_run(tmp_path, change, expect):
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "notes.md").write_text("# survey notes\n")
    (tmp_path / "notes.las").write_text("# survey notes\n")
    text = SAMPLE_CONFIG.read_text().replace("../assets/sample/", str(SAMPLE) + "/")
    if "crs" in change:
        text = text.replace("crs: EPSG:5186                              # a CSV", f"crs: {change['crs']}  # a CSV")
    elif "inputs" in change:
        text = text[:text.index("inputs:")] + "inputs: {}\n" + text[text.index("stages:"):]
    else:
        for name, new in change.items():
            text = text.replace(str(SAMPLE / name), str(tmp_path / new))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    line = _one_error_line(run_cli("config", "validate", str(cfg)))
    assert expect in line, line
    assert "cfg.yaml" in line or str(tmp_path) in line


def test_unreferenced_sample_generates_from_another_directory(tmp_path):
    proc = run_cli("sample", "generate", "--variant", "unreferenced", str(tmp_path / "unref"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "unref" / "config.yaml").is_file()
