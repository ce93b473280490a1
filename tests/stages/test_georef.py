"""georef on small inputs: files whose CRS lies are refused, bad control is refused, grids honoured."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.test_cli import _one_error_line
from tests.conftest import run_cli
from tests.core.test_geodesy import write_gtx
from tests.fixtures_las import sample_points, write_las

FT = 0.3048


def _config(tmp_path, cloud: dict, *, gcps: str | None = None, site: str = "") -> str:
    lines = ["site:", "  origin: {lat: 37.5770, lon: 126.8898}", *([site] if site else []),
             "inputs:", "  pointclouds:", "    - " + json.dumps(cloud)]
    if gcps:
        lines += ["  gcps: {path: %s, crs: 'EPSG:5186'}" % gcps]
    p = tmp_path / "cfg.yaml"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def _run(tmp_path, cfg: str):
    return run_cli("run", cfg, "--workdir", str(tmp_path / "w"), "--stages", "ingest..georef", "--quiet")


def _report(tmp_path) -> dict:
    return json.loads((tmp_path / "w" / "reports" / "georef.json").read_text())


def test_honest_file_lands_on_the_site(tmp_path):
    las = write_las(tmp_path / "ok.las", sample_points(), crs="EPSG:5186+5773")
    proc = _run(tmp_path, _config(tmp_path, {"path": str(las)}))
    assert proc.returncode == 0, proc.stderr
    w, s, e, n = _report(tmp_path)["inputs"][0]["wgs84_extent"]
    assert 126.88 < w < e < 126.90 and 37.57 < s < n < 37.59


def test_feet_values_with_a_metre_crs_are_refused(tmp_path):
    las = write_las(tmp_path / "feet.las", sample_points() / FT, crs="EPSG:5186")
    line = _one_error_line(_run(tmp_path, _config(tmp_path, {"path": str(las)})))
    assert "feet.las" in line and "lands at" in line and "KGD2002" in line
    assert not (tmp_path / "w" / "artifacts" / "georef").exists()


def test_projected_values_labelled_geocentric_are_refused(tmp_path):
    las = write_las(tmp_path / "geocentric.las", sample_points(), crs="EPSG:4978")
    line = _one_error_line(_run(tmp_path, _config(tmp_path, {"path": str(las)})))
    assert "geocentric.las" in line and "lands at" in line


def test_override_or_accept_lets_the_data_through(tmp_path):
    las = write_las(tmp_path / "mislabelled.las", sample_points(), crs="EPSG:32652")
    _one_error_line(_run(tmp_path, _config(tmp_path, {"path": str(las)})))
    proc = _run(tmp_path, _config(tmp_path, {"path": str(las), "crs": "EPSG:5186"}))
    assert proc.returncode == 0, proc.stderr
    assert _report(tmp_path)["inputs"][0]["crs"].startswith("KGD2002")


def test_no_crs_and_unknown_epsg(tmp_path):
    las = write_las(tmp_path / "nocrs.las", sample_points(1000))
    line = _one_error_line(_run(tmp_path, _config(tmp_path, {"path": str(las)})))
    assert "nocrs.las" in line and "no CRS" in line
    line = _one_error_line(_run(tmp_path, _config(tmp_path, {"path": str(las), "crs": "EPSG:999999"})))
    assert "nocrs.las" in line and "EPSG:999999" in line


def test_user_grid_is_used_and_its_coverage_enforced(tmp_path):
    las = write_las(tmp_path / "ok.las", sample_points(2000), crs="EPSG:5186+5773")
    grid = write_gtx(tmp_path / "kngeoid_like.gtx", lat0=37.0, lon0=126.0, rows=21, cols=21, step=0.1,
                     value=24.5)
    proc = _run(tmp_path, _config(tmp_path, {"path": str(las)}, site=f"  geoid: {grid}"))
    assert proc.returncode == 0, proc.stderr
    assert _report(tmp_path)["geoid"]["undulation_range_m"] == [24.5, 24.5]
    far = write_gtx(tmp_path / "elsewhere.gtx", lat0=33.0, lon0=128.0, rows=11, cols=11, step=0.1,
                    value=24.5)
    line = _one_error_line(_run(tmp_path, _config(tmp_path, {"path": str(las)}, site=f"  geoid: {far}")))
    assert "elsewhere.gtx" in line and "outside the geoid grid" in line


@pytest.mark.parametrize("rows,expect", [
    ([("A", 0, 0), ("B", 50, 0)], "non-collinear"),
    ([("A", 0, 0), ("B", 50, 0), ("C", 100, 0), ("D", 150, 0)], "non-collinear"),
])
def test_too_few_or_collinear_control(tmp_path, rows, expect):
    xyz = sample_points(2000)
    las = write_las(tmp_path / "local.las", xyz - xyz.min(0))
    x0, y0 = xyz.min(0)[:2]
    csv = tmp_path / "gcps.csv"
    csv.write_text("id,x,y,z,local_x,local_y,local_z\n" + "".join(
        f"{i},{x0 + dx},{y0 + dy},15.0,{dx},{dy},0.0\n" for i, dx, dy in rows))
    line = _one_error_line(_run(tmp_path, _config(tmp_path, {"path": str(las), "georeference": "gcps"},
                                                  gcps=str(csv))))
    assert "gcps.csv" in line and expect in line


def test_control_fit_over_threshold_is_refused(tmp_path):
    xyz = sample_points(2000)
    las = write_las(tmp_path / "local.las", xyz - xyz.min(0))
    x0, y0 = xyz.min(0)[:2]
    rng = np.random.default_rng(0)
    pts = [(f"P{i}", rng.uniform(0, 100), rng.uniform(0, 100)) for i in range(8)]
    csv = tmp_path / "gcps.csv"
    # 8 cm of noise everywhere: no blunders to reject, just a poor survey
    csv.write_text("id,x,y,z,local_x,local_y,local_z\n" + "".join(
        f"{i},{x0 + dx + rng.normal(0, 0.08)},{y0 + dy + rng.normal(0, 0.08)},15.0,{dx},{dy},"
        f"{rng.uniform(-1, 1)}\n" for i, dx, dy in pts))
    cfg = _config(tmp_path, {"path": str(las), "georeference": "gcps"}, gcps=str(csv))
    cfg_text = open(cfg).read() + "stages: {georef: {gcp_ransac_threshold: 1.0, max_gcp_rmse: 0.05}}\n"
    open(cfg, "w").write(cfg_text)
    line = _one_error_line(_run(tmp_path, cfg))
    assert "gcps.csv" in line and "max_gcp_rmse" in line
