"""georef on small inputs: files whose CRS lies are refused, bad control is refused, grids honoured."""

from __future__ import annotations

import json

import laspy
import numpy as np
import pytest

from tests.cli.test_cli import _one_error_line
from pipeline.artifacts.base import iter_records
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
    assert "geocentric.las" in line and "is geocentric" in line and "km below the earth's surface" in line


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
    assert "cfg.yaml" in line and "inputs.pointclouds[0].crs" in line and "EPSG:999999" in line


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


# --- a stranger's files: units, sidecars, unreadable records --------------------------------------

#: a site in San Francisco for the State Plane fixtures (US feet have no Korean CRS)
SF_ORIGIN = (37.7672, -122.4192)


def _sf_points(n: int = 3000) -> np.ndarray:
    """Ground points (EPSG:26910 metres, orthometric z from 30 to 36 m) around SF_ORIGIN."""
    rng = np.random.default_rng(7)
    g = rng.uniform(0, 300, (n, 2))
    return np.column_stack([551000.0 + g[:, 0], 4180000.0 + g[:, 1], 30.0 + 0.02 * g[:, 0]])


def _sf_config(tmp_path, cloud: dict) -> str:
    p = tmp_path / "sf.yaml"
    p.write_text(f"site: {{origin: {{lat: {SF_ORIGIN[0]}, lon: {SF_ORIGIN[1]}}}}}\n"
                 f"inputs: {{pointclouds: [{json.dumps(cloud)}]}}\n")
    return str(p)


def _enu_bounds(tmp_path) -> np.ndarray:
    meta = json.loads((tmp_path / "w" / "artifacts" / "georef" / "points" / "meta.json").read_text())
    return np.array(meta["bounds"])


def test_state_plane_feet_without_a_vertical_crs_has_z_in_feet(tmp_path):
    """LAS 1.2 in NAD83 / California zone 3 (ftUS), no vertical CRS: Z is in US feet, as PDAL and
    LAStools read it; the heights must equal those of the same ground from a metric file."""
    import pyproj

    met = _sf_points()
    ft = 1200.0 / 3937.0
    x, y = pyproj.Transformer.from_crs(26910, 2227, always_xy=True).transform(met[:, 0], met[:, 1])
    feet = write_las(tmp_path / "sp_ft.las", np.column_stack([x, y, met[:, 2] / ft]), crs="EPSG:2227",
                     version="1.2", fmt=1)
    metric = write_las(tmp_path / "utm_m.las", met, crs="EPSG:26910", version="1.2", fmt=1)
    assert _run(tmp_path, _sf_config(tmp_path, {"path": str(metric)})).returncode == 0
    truth = _enu_bounds(tmp_path)
    proc = _run(tmp_path, _sf_config(tmp_path, {"path": str(feet)}))
    assert proc.returncode == 0, proc.stderr
    got = _enu_bounds(tmp_path)
    assert np.abs(got - truth).max() < 0.01, (got, truth)
    entry = _report(tmp_path)["inputs"][0]
    assert "US survey foot" in entry["z_unit"] and "horizontal" in entry["z_unit"]
    lo, hi = entry["ellipsoidal_height_range_m"]
    # EGM96 around San Francisco is about -32 m: 30..36 m orthometric is about -2..4 m ellipsoidal
    assert -5 < lo < hi < 6


def test_feet_values_in_a_wkt_crs_without_area_of_use_are_refused(tmp_path):
    """A WKT1 record (no area of use in pyproj) of the metric California zone 3 over values in
    feet: the data lands 3.28 times as far from the false origin, outside the zone; the site
    origin is put where it lands, so only the area of use derived from the EPSG match sees it."""
    import laspy
    import pyproj
    from laspy.vlrs.known import WktCoordinateSystemVlr

    met = _sf_points()
    x, y = pyproj.Transformer.from_crs(26910, 26943, always_xy=True).transform(met[:, 0], met[:, 1])
    xyz = np.column_stack([x / FT, y / FT, met[:, 2] / FT])
    crs = pyproj.CRS.from_epsg(26943)
    wkt1 = crs.to_wkt("WKT1_GDAL")
    assert pyproj.CRS.from_wkt(wkt1).area_of_use is None
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.offsets = np.floor(xyz.min(0))
    header.scales = np.array([0.001] * 3)
    header.vlrs.append(WktCoordinateSystemVlr(wkt1))
    header.global_encoding.wkt = True
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.write(tmp_path / "ft_as_m.las")
    lon, lat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True).transform(xyz[:, 0].mean(), xyz[:, 1].mean())
    cfg = tmp_path / "wrong.yaml"
    cfg.write_text(f"site: {{origin: {{lat: {lat}, lon: {lon}}}}}\n"
                   f"inputs: {{pointclouds: [{{path: {tmp_path / 'ft_as_m.las'}}}]}}\n")
    line = _one_error_line(_run(tmp_path, str(cfg)))
    assert "ft_as_m.las" in line and "area of use" in line and "EPSG:26943" in line


def test_utm_values_labelled_ecef_are_named_geocentric(tmp_path):
    met = _sf_points(500)
    las = write_las(tmp_path / "utm_as_ecef.las", met, crs="EPSG:4978")
    line = _one_error_line(_run(tmp_path, _sf_config(tmp_path, {"path": str(las)})))
    assert "utm_as_ecef.las" in line and "geocentric" in line and "km below the earth's surface" in line


def test_sidecar_prj_gives_the_crs(tmp_path):
    import pyproj

    las = write_las(tmp_path / "side.las", sample_points(2000))
    (tmp_path / "side.prj").write_text(pyproj.CRS.from_epsg(5186).to_wkt("WKT1_ESRI"))
    proc = _run(tmp_path, _config(tmp_path, {"path": str(las)}))
    assert proc.returncode == 0, proc.stderr
    ingest = json.loads((tmp_path / "w" / "reports" / "ingest.json").read_text())
    assert ingest["pointclouds"][0]["crs_source"] == "sidecar side.prj"
    w, s, e, n = _report(tmp_path)["inputs"][0]["wgs84_extent"]
    assert 126.88 < w < e < 126.90 and 37.57 < s < n < 37.59


def test_empty_wkt_record_is_overridden_by_the_config_crs(tmp_path):
    import laspy
    from laspy.vlrs.known import WktCoordinateSystemVlr

    xyz = sample_points(2000)
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.offsets = np.floor(xyz.min(0))
    header.scales = np.array([0.001] * 3)
    header.vlrs.append(WktCoordinateSystemVlr(""))
    header.global_encoding.wkt = True
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.write(tmp_path / "empty_wkt.las")
    line = _one_error_line(_run(tmp_path, _config(tmp_path, {"path": str(tmp_path / "empty_wkt.las")})))
    # laspy reads an empty record as no CRS, or fails on it (then: "unreadable CRS record"): either
    # way the line names the file and says to set its crs
    assert "empty_wkt.las" in line and ("unreadable CRS record" in line or "no CRS record" in line)
    assert "crs" in line.split("empty_wkt.las", 1)[1]
    proc = _run(tmp_path, _config(tmp_path, {"path": str(tmp_path / "empty_wkt.las"), "crs": "EPSG:5186+5773"}))
    assert proc.returncode == 0, proc.stderr
    assert _report(tmp_path)["inputs"][0]["crs"].startswith("KGD2002")


def _squares(path, crs: str, x: np.ndarray, y: np.ndarray) -> str:
    """A GeoJSON layer in ``crs`` of 20 m squares at ``x``, ``y``."""
    corners = ((0, 0), (20, 0), (20, 20), (0, 20), (0, 0))
    feats = [{"type": "Feature", "properties": {"id": f"B{i}"}, "geometry": {
        "type": "Polygon", "coordinates": [[[float(a) + dx, float(b) + dy] for dx, dy in corners]]}}
             for i, (a, b) in enumerate(zip(x, y, strict=True))]
    code = crs.split(":")[1]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats,
                                "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{code}"}}}))
    return str(path)


def _footprint_run(tmp_path, name: str, layer: str, crs: str | None = None) -> tuple:
    cfg = tmp_path / f"{name}.yaml"
    override = f", crs: '{crs}'" if crs else ""
    cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}, radius_km: 40}}\n"
                   f"inputs:\n  footprints: {{path: {layer}{override}}}\n")
    work = tmp_path / name
    proc = run_cli("run", str(cfg), "--workdir", str(work), "--stages", "ingest..georef", "--quiet")
    return proc, work


def test_legacy_bessel_crs_land_where_proj_puts_them_across_seoul(tmp_path):
    """Footprints across Seoul in EPSG:5174 and 2097 (Korean 1985, Bessel) and the same squares
    carried to EPSG:5186 by PROJ itself land on the same WGS84 coordinates within 1 cm, and the
    georef report names the datum shift and its stated accuracy."""
    import pyproj

    lon, lat = np.meshgrid(np.linspace(126.80, 127.15, 5), np.linspace(37.45, 37.68, 4))
    for legacy in ("EPSG:5174", "EPSG:2097"):
        x, y = pyproj.Transformer.from_crs("EPSG:4326", legacy, always_xy=True).transform(lon.ravel(), lat.ravel())
        ring = [(np.asarray(x) + dx, np.asarray(y) + dy) for dx, dy in ((0, 0), (20, 0), (20, 20), (0, 20))]
        to_5186 = pyproj.Transformer.from_crs(legacy, "EPSG:5186", always_xy=True)
        ref_x, ref_y = to_5186.transform(np.concatenate([r[0] for r in ring]), np.concatenate([r[1] for r in ring]))
        # PROJ's 5186 corners, written as polygons in the same vertex order
        n = lon.size
        ref = tmp_path / f"ref_{legacy[5:]}.geojson"
        feats = [{"type": "Feature", "properties": {"id": f"B{i}"}, "geometry": {"type": "Polygon", "coordinates": [[
            [float(ref_x[k * n + i]), float(ref_y[k * n + i])] for k in (0, 1, 2, 3, 0)]]}} for i in range(n)]
        ref.write_text(json.dumps({"type": "FeatureCollection", "features": feats, "crs": {
            "type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::5186"}}}))
        runs = {}
        for name, layer in ((legacy[5:], _squares(tmp_path / f"{legacy[5:]}.geojson", legacy, x, y)),
                            (f"ref{legacy[5:]}", str(ref))):
            proc, work = _footprint_run(tmp_path, name, layer)
            assert proc.returncode == 0, proc.stderr
            feats = iter_records(work / "artifacts" / "georef" / "footprints.jsonl")
            runs[name] = {f["id"]: np.array(f["parts"][0][0]["lonlat"]) for f in feats}
        report = json.loads((tmp_path / legacy[5:] / "reports" / "georef.json").read_text())
        op = report["inputs"][0]["transformation"]
        assert "Korean 1985 to WGS 84" in op["name"] and op["accuracy_m"] == 1.0
        geod = pyproj.Geod(ellps="WGS84")
        ours, theirs = runs[legacy[5:]], runs[f"ref{legacy[5:]}"]
        assert set(ours) == set(theirs) and len(ours) == lon.size
        for key in ours:
            a, b = ours[key], theirs[key]
            assert len(a) == len(b) == 4, (a, b)
            _, _, dist = geod.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
            assert np.max(dist) < 0.01, (key, dist)


def test_a_layer_labelled_with_the_wrong_false_northing_is_refused_with_the_crs_it_fits(tmp_path):
    import pyproj

    lon, lat = np.meshgrid(np.linspace(126.88, 126.90, 3), np.linspace(37.57, 37.58, 3))
    x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:5186", always_xy=True).transform(lon.ravel(), lat.ravel())
    layer = _squares(tmp_path / "b.geojson", "EPSG:5186", np.asarray(x), np.asarray(y))
    proc, _ = _footprint_run(tmp_path, "w", layer, crs="EPSG:5181")
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "b.geojson" in line and "KGD2002 / Central Belt" in line
    assert "the coordinates land on the site in EPSG:5186 (KGD2002 / Central Belt 2010)" in line


def test_dense_clouds_get_smaller_cells(tmp_path):
    """A mobile-LiDAR-like corridor (30 m x 400 m, ~17 points per m²) with a bound of 20,000
    points a cell is binned into 25 m cells, none over the bound; a sparse file keeps 200 m."""
    from pipeline.core.cells import CellStore

    x0, y0 = sample_points(1).min(0)[:2]
    rng = np.random.default_rng(5)
    t = np.sort(rng.uniform(0, 400, 200_000))  # driven along the street: points in scan order
    xyz = np.column_stack([x0 + t, y0 + rng.uniform(0, 30, len(t)), rng.uniform(10, 30, len(t))])
    las = write_las(tmp_path / "street.las", xyz, crs="EPSG:5186+5773")
    cfg = _config(tmp_path, {"path": str(las)}, site="  crs: 'EPSG:5186+5773'")
    cfg_text = open(cfg).read() + "stages: {ingest: {chunk_size: 30000}, georef: {cell_max_points: 20000}}\n"
    open(cfg, "w").write(cfg_text)
    proc = _run(tmp_path, cfg)
    assert proc.returncode == 0, proc.stderr
    store = CellStore(tmp_path / "w" / "artifacts" / "georef" / "points")
    sizes = [sum(len(np.load(p, mmap_mode="r")) for p in store.parts(c)) for c in store.cells()]
    cells = _report(tmp_path)["pointclouds"]["cells"]
    assert store.meta().cell_size == cells["cell_size_m"] == 25.0
    assert max(sizes) == cells["densest_cell_points"] <= 20_000 and sum(sizes) == len(xyz)

    sparse = write_las(tmp_path / "sparse.las", xyz[::20], crs="EPSG:5186+5773")
    proc = run_cli("run", _config(tmp_path, {"path": str(sparse)}), "--workdir", str(tmp_path / "s"),
                   "--stages", "ingest..georef", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert CellStore(tmp_path / "s" / "artifacts" / "georef" / "points").meta().cell_size == 200.0


def test_a_sampled_density_estimate_is_close(tmp_path):
    from pipeline.artifacts.clouds import SourceChunk
    from pipeline.core.cells import choose_cell_size
    from pipeline.core.gridwarp import AffineMap
    from pipeline.stages.georef import chunk_density

    rng = np.random.default_rng(2)
    rec = np.zeros(400_000, [("x", "<f8"), ("y", "<f8"), ("z", "<f8")])
    rec["x"] = np.sort(rng.uniform(0, 500, len(rec)))  # scan order
    rec["y"], rec["z"] = rng.uniform(0, 100, len(rec)), 5.0
    np.save(tmp_path / "c.npy", rec)
    chunk = SourceChunk(str(tmp_path / "c.npy"), len(rec))
    full = chunk_density(chunk, AffineMap(np.eye(4)), 1, 12.5)
    est = chunk_density(chunk, AffineMap(np.eye(4)), 10, 12.5)
    assert np.array_equal(full[0], est[0]) and full[1].sum() == len(rec)
    # per 12.5 m square a tenth is ~125 points (±9 %); per cell, where it counts, far closer
    for size in (200.0, 50.0):
        exact = choose_cell_size(*full, 12.5, size, 10**9)[1]
        assert abs(choose_cell_size(*est, 12.5, size, 10**9)[1] - exact) < 0.03 * exact


def test_clouds_the_grid_cannot_map_are_transformed_exactly_with_the_same_cells(tmp_path, monkeypatch):
    """When no interpolation grid reaches its tolerance, every point goes through PROJ in this
    process, the density estimate included: same points, same cells, within the grid's 0.1 mm."""
    import pipeline.stages.georef as georef_stage
    from pipeline.config import load_config
    from pipeline.core.cells import CellStore
    from pipeline.runner import Runner

    las = write_las(tmp_path / "ok.las", sample_points(40_000), crs="EPSG:5186+5773")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\nexecutor: {kind: inline}\n"
                   f"inputs: {{pointclouds: [{{path: {las}}}]}}\n"
                   "stages: {ingest: {chunk_size: 10000}, georef: {cell_max_points: 10000}}\n")
    Runner(load_config(cfg), tmp_path / "grid", quiet=True).run(["ingest", "georef"])
    monkeypatch.setattr(georef_stage, "fit_grid_warp", lambda *a, **k: None)
    Runner(load_config(cfg), tmp_path / "exact", quiet=True).run(["ingest", "georef"])
    grid, exact = (CellStore(tmp_path / w / "artifacts" / "georef" / "points") for w in ("grid", "exact"))
    report = json.loads((tmp_path / "exact" / "reports" / "georef.json").read_text())["pointclouds"]
    assert report["clouds"][0]["transform"] == "exact" and report["cells"]["estimated_from"] != "point count"
    assert grid.meta().cell_size == exact.meta().cell_size < 200.0
    assert grid.cells() == exact.cells()
    a, b = grid.read_all(), exact.read_all()
    assert np.array_equal(a["index"], b["index"])
    assert max(np.abs(a[f] - b[f]).max() for f in ("x", "y", "z")) < 1e-4


def _las_and_laz(tmp_path, fmt: int, version: str):
    """The same 40,000 sample points (with classes, intensities and an ExtraBytes dimension) as
    an uncompressed LAS file and as a LAZ file."""
    xyz = sample_points(40_000)
    header = laspy.LasHeader(point_format=fmt, version=version)
    header.scales, header.offsets = np.array([0.001] * 3), np.floor(xyz.min(0))
    header.add_extra_dim(laspy.ExtraBytesParams("Amplitude", "f4"))
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    k = np.arange(len(xyz))
    las.classification = np.where(k % 7 == 0, 6, 2).astype(np.uint8)
    las.intensity, las.return_number, las.number_of_returns = k % 4000, 1 + k % 2, np.full(len(k), 2)
    las.Amplitude = (k % 100).astype(np.float32) / 4
    paths = tmp_path / "cloud.las", tmp_path / "cloud.laz"
    for p in paths:
        las.write(p)
    return paths


@pytest.mark.parametrize("fmt, version", [(1, "1.2"), (7, "1.4")])
def test_an_uncompressed_las_read_in_place_gives_the_cells_of_the_same_points_decoded(tmp_path, fmt, version):
    """ingest reads an uncompressed LAS file in place (no chunks written); georef then reads its
    records from the file: the same cells, records, bounds and classes as the LAZ, which is
    decoded into chunks, in both the old and the 1.4 point formats (classes in a bit field or a
    byte), the density estimate included (the cells are sized from a sample)."""
    from pipeline.artifacts.clouds import read_source_clouds
    from pipeline.config import load_config
    from pipeline.core.cells import CellStore
    from pipeline.runner import Runner

    stores = {}
    for path in _las_and_laz(tmp_path, fmt, version):
        cfg = tmp_path / f"{path.suffix[1:]}.yaml"
        cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                       f"inputs: {{pointclouds: [{{path: {path}, crs: 'EPSG:5186+5773'}}]}}\n"
                       "stages: {ingest: {chunk_size: 7000}, georef: {cell_max_points: 10000}}\n")
        work = tmp_path / path.suffix[1:]
        Runner(load_config(cfg), work, quiet=True).run(["ingest", "georef"])
        [(chunks, cloud)] = read_source_clouds(work / "artifacts" / "ingest")
        stores[path.suffix] = chunks, cloud, CellStore(work / "artifacts" / "georef" / "points")
    (las_chunks, las_cloud, las_cells), (laz_chunks, laz_cloud, laz_cells) = stores[".las"], stores[".laz"]
    assert las_chunks.paths() == [] and len(laz_chunks.paths()) == 6
    assert las_cloud.chunk_points == 7000 and laz_cloud.chunk_points == 0
    assert las_cloud.source_digest.startswith("xxh3:") and len(las_cloud.source_stamp) == 4
    for field in ("count", "bounds", "classes", "extra_dims"):
        assert getattr(las_cloud, field) == getattr(laz_cloud, field), field
    assert las_cloud.classes == {"2": 34285, "6": 5715}
    assert las_cells.meta().cell_size == laz_cells.meta().cell_size < 200.0
    assert las_cells.cells() == laz_cells.cells() and len(las_cells.cells()) > 1
    a, b = las_cells.read_all(), laz_cells.read_all()
    assert a.dtype == b.dtype and "Amplitude" in a.dtype.names
    assert a.tobytes() == b.tobytes()


def test_a_las_file_changed_or_gone_after_ingest_is_not_read_as_if_it_were_the_same(tmp_path):
    """georef reads an in-place cloud only while the file is the one ingest checked: a file
    rewritten since then stops a forced georef with one line, exit 2, before any point is read;
    rerun from ingest, it goes through."""
    from pipeline.artifacts.clouds import cloud_chunks, read_source_clouds
    from pipeline.errors import StageError

    las = write_las(tmp_path / "ok.las", sample_points(5000), crs="EPSG:5186+5773")
    cfg = _config(tmp_path, {"path": str(las)})
    assert _run(tmp_path, cfg).returncode == 0
    write_las(las, sample_points(5000) + [0.0, 0.0, 1.0], crs="EPSG:5186+5773")
    r = run_cli("run", cfg, "--workdir", str(tmp_path / "w"), "--stages", "georef", "--force", "--quiet")
    assert r.returncode == 2
    assert "changed since ingest read it" in _one_error_line(r) and "ok.las" in _one_error_line(r)
    assert _run(tmp_path, cfg).returncode == 0
    [(store, cloud)] = read_source_clouds(tmp_path / "w" / "artifacts" / "ingest")
    las.unlink()
    with pytest.raises(StageError, match="ingest read in place is gone"):
        cloud_chunks(store, cloud)
