"""The analysis stage on the sample (pipeline/stages/analysis.py): decisions cross-checked by a
plain segment-triangle test, the proposed tower's shadow, its removal, reruns, GIS files, tiles."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyogrio
import pyproj
import pytest
import rasterio

from pipeline.artifacts.buildings import BuildingMeshes, read_buildings
from pipeline.artifacts.frame import read_frame
from pipeline.artifacts.sunlight import read_receivers, read_sunlight
from pipeline.artifacts.terrain import load_level, read_terrain
from pipeline.core.gltf import read_glb, read_primitive
from pipeline.core.meshing import concat_meshes
from pipeline.core.shading import Scene, lit_matrix, sun_hours
from pipeline.stages.analysis import rule_of
from pipeline.config import load_config
from tests.conftest import SAMPLE, SAMPLE_CONFIG, official_agrees, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analysis(sample_run):
    folder = sample_run / "artifacts" / "analysis"
    return read_sunlight(folder), read_receivers(folder)


@pytest.fixture(scope="module")
def scene_parts(sample_run):
    """The sample's buildings (as the district stands, and the proposals) and terrain at full
    detail, as (vertices, faces) lists."""
    mesh = sample_run / "artifacts" / "mesh"
    records = read_buildings(mesh).buildings
    pieces = BuildingMeshes(mesh)
    standing = [pieces.get(r.feature_id, 0) for r in records if not r.proposed]
    proposed = [pieces.get(r.feature_id, 0) for r in records if r.proposed]
    terrain = load_level(mesh, read_terrain(mesh).levels[0])
    return standing, proposed, terrain


def segment_triangle(origins: np.ndarray, dirs: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                     near_mm: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Plain Moller-Trumbore in float64, every ray against every triangle: (hit, near an edge),
    a hit being any triangle in front of the origin (t > 1 mm) whose barycentric coordinates are
    all non-negative; 'near' when the ray passes within ``near_mm`` of some triangle's edge."""
    tri = vertices[faces].astype(np.float64)
    a, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area2 = np.linalg.norm(np.cross(e1, e2), axis=1)
    edge_len = np.stack([np.linalg.norm(tri[:, 2] - tri[:, 1], axis=1), np.linalg.norm(e2, axis=1),
                         np.linalg.norm(e1, axis=1)], axis=1)
    heights = area2[:, None] / np.maximum(edge_len, 1e-12)  # distance from each vertex to its opposite edge
    hit = np.zeros(len(origins), bool)
    near = np.zeros(len(origins), bool)
    for i in range(len(origins)):
        d = dirs[i]
        p = np.cross(d, e2)
        det = np.einsum("ij,ij->i", e1, p)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = origins[i] - a
        u = np.einsum("ij,ij->i", s, p) * inv
        q = np.cross(s, e1)
        v = (q @ d) * inv
        t = np.einsum("ij,ij->i", e2, q) * inv
        bary = np.stack([1 - u - v, u, v], axis=1)
        signed = np.min(bary * heights, axis=1)  # metres inside (+) or outside (-) the nearest edge
        ahead = ok & (t > 1e-3)
        hit[i] = bool(np.any(ahead & (signed >= 0)))
        near[i] = bool(np.any(ahead & (np.abs(signed) < near_mm / 1000)))
    return hit, near


def test_a_plain_segment_triangle_test_agrees_with_every_decision(analysis, scene_parts):
    """A random subset of the sample's receivers, every third step: the stage's occlusion
    decisions (open3d/Embree, float32) equal a float64 Moller-Trumbore over every triangle, but
    for rays passing within 5 mm of an edge; and the stage's stored hours are those decisions'."""
    record, res = analysis
    standing, _, terrain = scene_parts
    rng = np.random.default_rng(2026)
    present = res.present[:, 0]
    facade = np.flatnonzero(present & (res.receivers.building >= 0))
    ground = np.flatnonzero(present & (res.receivers.building < 0))
    pick = np.concatenate([rng.choice(facade, 14, replace=False), rng.choice(ground, 10, replace=False)])
    sun = record.sun_table()
    d = sun.shading_directions()
    pos, nrm = res.receivers.position[pick], res.receivers.normal[pick]
    [lit], _ = lit_matrix(pos, nrm, d, Scene(standing + [terrain]))
    hours = sun_hours(lit, sun.clock_min, sun.step_min, rule_of(load_config(SAMPLE_CONFIG).stages.analysis))
    assert np.array_equal(hours.total_min, res.total_min[pick, 0])
    assert np.array_equal(hours.continuous_min, res.continuous_min[pick, 0])
    v, f = concat_meshes(standing + [terrain])
    steps = np.arange(0, len(d), 3)
    r, t = np.nonzero((nrm @ d[steps].T) > 0)
    blocked, near = segment_triangle(pos[r], d[steps][t], v, f)
    stage = ~lit[r, steps[t]]
    disagree = stage != blocked
    assert len(r) > 1500 and blocked.any() and (~blocked).any()
    assert not (disagree & ~near).any(), np.flatnonzero(disagree & ~near)[:10]
    assert disagree.sum() <= max(3, near.sum())


def test_the_towers_lost_windows_lie_in_its_winter_shadow(analysis, sample_run):
    """Every receiver that loses compliance with the proposed tower lies north-west to north-east
    of it: within the span of anti-solar azimuths of the day, widened by the tower's own width seen
    from the receiver; none gains, and every building it affects is listed."""
    record, res = analysis
    assert record.proposals == ["DMC-P001"] and record.changes
    lost = [r for g in record.changes for r in g["receivers"] if r["verdict"] == "loses compliance"]
    assert len(lost) == record.counts["changed_lost"] > 100 and record.counts["changed_gained"] == 0
    sun = record.sun_table()
    up = sun.above_horizon
    shadow = (sun.azimuth_deg[up] % 360) - 180  # anti-solar azimuths, north at 0: -53..53 on the solstice
    west, east = shadow.min(), shadow.max()
    tower = next(b for b in read_buildings(sample_run / "artifacts" / "mesh").buildings if b.id == "DMC-P001")
    radius = float(np.max(np.hypot(*(np.asarray(tower.outline_en) - tower.centroid.en).T)))
    for r in lost:
        bearing = (r["bearing_deg"] + 180) % 360 - 180  # -180..180 with north at 0
        widen = np.degrees(np.arcsin(min(1.0, radius / r["distance_m"])))
        assert west - widen <= bearing <= east + widen, r
        assert r["before"]["total_min"] >= 240 or r["before"]["continuous_min"] >= 120
        assert r["after"]["total_min"] < 240 and r["after"]["continuous_min"] < 120
    assert -60 < west < -40 and 40 < east < 60
    buildings = {g["building"] for g in record.changes}
    assert "ground" in buildings and len(buildings) >= 3
    changed = res.present[:, 0] & res.present[:, 1] & (res.passes[:, 0] != res.passes[:, 1])
    assert changed.sum() == len(lost)


def test_removing_the_tower_restores_them(analysis, sample_run, tmp_path_factory):
    """The sample run again without the tower's model: every receiver the report says the tower
    takes compliance from passes, with the hours the first run found as the district stands (a
    scene built without the tower, not the stage's two-scene shortcut)."""
    record, res = analysis
    work = tmp_path_factory.mktemp("no_tower")
    shutil.copytree(sample_run / "artifacts", work / "artifacts", copy_function=os.link)
    shutil.copy(sample_run / "manifest.json", work / "manifest.json")
    text = SAMPLE_CONFIG.read_text().replace("../assets/sample/", str(SAMPLE) + "/")
    start = text.index("  meshes:")
    text = text[:start] + text[text.index("stages:"):]
    cfg = work / "no_tower.yaml"
    cfg.write_text(text)
    proc = run_cli("run", str(cfg), "--workdir", str(work), "--stages", "ingest..analysis", "--quiet")
    assert proc.returncode == 0, proc.stderr
    again, res2 = read_sunlight(work / "artifacts" / "analysis"), read_receivers(work / "artifacts" / "analysis")
    assert again.proposals == [] and again.scenarios == ["existing"]
    lost = np.array([r["index"] for g in record.changes for r in g["receivers"]])
    key = {tuple(np.round(p, 3)): i for i, p in enumerate(res2.receivers.position)}
    # ground receivers within the margin of the tower alone are not gridded without it
    found = [(i, key[tuple(np.round(p, 3))]) for i, p in zip(lost, res.receivers.position[lost], strict=True)
             if tuple(np.round(p, 3)) in key]
    assert len(found) > 0.8 * len(lost)
    first, second = np.array(found).T
    assert res2.passes[second, 0].all()
    assert np.array_equal(res2.total_min[second, 0], res.total_min[first, 0])
    assert np.array_equal(res2.continuous_min[second, 0], res.continuous_min[first, 0])


def test_reruns_give_identical_results_whatever_the_workers(sample_run, tmp_path):
    """The analysis rerun (forced) with one worker instead of two writes the same bytes."""
    work = tmp_path / "rerun"
    shutil.copytree(sample_run / "artifacts", work / "artifacts", copy_function=os.link)
    shutil.copy(sample_run / "manifest.json", work / "manifest.json")
    shutil.rmtree(work / "artifacts" / "analysis")
    shutil.copytree(sample_run / "artifacts" / "analysis", work / "artifacts" / "analysis")
    text = SAMPLE_CONFIG.read_text().replace("../assets/sample/", str(SAMPLE) + "/")
    cfg = work / "one_worker.yaml"
    cfg.write_text(text.replace("executor: {kind: local, workers: 2}", "executor: {kind: local, workers: 1}"))
    proc = run_cli("run", str(cfg), "--workdir", str(work), "--stages", "analysis", "--force", "--quiet")
    assert proc.returncode == 0, proc.stderr
    for name in ("sunlight/sunlight.json", "sunlight/receivers.npz", "sunlight/ground.tif", "sunlight/sunlight.html",
                 "sunlight/receivers.gpkg"):
        a = (sample_run / "artifacts" / "analysis" / name).read_bytes()
        b = (work / "artifacts" / "analysis" / name).read_bytes()
        assert a == b, name


def test_the_gis_files_place_every_receiver_where_pyproj_does(analysis, sample_run):
    """The GeoPackage's site-CRS layer (EPSG:5186, orthometric EGM96 heights) and WGS84 layer
    (EPSG:4979) hold the same points by an independent pyproj transform (within 1 cm), with the
    receivers' hours; the ground GeoTIFF's pixel under a ground receiver holds its hours."""
    record, res = analysis
    folder = sample_run / "artifacts" / "analysis" / "sunlight"
    layers = [name for name, _ in pyogrio.list_layers(folder / "receivers.gpkg")]
    assert layers == ["receivers", "receivers_wgs84"]
    meta, _, wkb, fields = pyogrio.raw.read(folder / "receivers.gpkg", layer="receivers")
    _, _, wkb84, _ = pyogrio.raw.read(folder / "receivers.gpkg", layer="receivers_wgs84")
    import shapely
    p = shapely.get_coordinates(shapely.from_wkb(wkb), include_z=True)
    q = shapely.get_coordinates(shapely.from_wkb(wkb84), include_z=True)
    n_facade = int((res.receivers.building >= 0).sum())
    assert len(p) == len(q) == n_facade
    assert pyproj.CRS(meta["crs"]).to_epsg() == 5186
    pyproj.datadir.append_data_dir("/usr/share/proj")
    to_site = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:5186+5773", always_xy=True)
    x, y, z = to_site.transform(q[:, 0], q[:, 1], q[:, 2], errcheck=True)
    assert np.max(np.hypot(x - p[:, 0], y - p[:, 1])) < 0.01 and np.max(np.abs(z - p[:, 2])) < 0.01
    frame = read_frame(sample_run / "artifacts" / "georef").site
    enu = frame.geodetic_to_enu(q[:, 0], q[:, 1], q[:, 2])
    assert np.max(np.linalg.norm(enu - res.receivers.position[:n_facade], axis=1)) < 0.01
    names = list(meta["fields"])
    total = fields[names.index("existing_total_min")]
    assert np.allclose(total, res.total_min[:n_facade, 0], equal_nan=True)
    verdicts = fields[names.index("with_proposals_verdict")]
    assert set(verdicts) <= {"pass", "fail", ""} and (verdicts == "").sum() == (~res.present[:n_facade, 1]).sum()
    ground = np.flatnonzero(res.receivers.building < 0)[::997]
    lon, lat, _ = frame.enu_to_geodetic(res.receivers.position[ground])
    gx, gy = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:5186", always_xy=True).transform(lon, lat)
    with rasterio.open(folder / "ground.tif") as src:
        assert src.crs.to_epsg() == 5186 and src.count == 4
        assert src.descriptions[0] == "existing total sun hours"
        band = src.read(1)
        rows, cols = rasterio.transform.rowcol(src.transform, gx, gy)
        values = band[np.asarray(rows), np.asarray(cols)]
    assert np.allclose(values, res.total_min[ground, 0] / 60.0)


def test_the_analysis_layer_carries_every_receivers_hours(analysis, sample_run):
    """The bundle's analysis tiles hold each receiver once, with its hours and verdicts as
    property attributes; the buildings' metadata gains their failing share."""
    record, res = analysis
    tiles = sample_run / "bundle" / "analysis" / "sunlight"
    total, verdicts, count = [], [], 0
    for glb in sorted((tiles / "tiles").glob("*.glb")):
        doc, binary = read_glb(glb.read_bytes())
        prim = doc["meshes"][0]["primitives"][0]
        assert doc["extensions"]["EXT_structural_metadata"]["propertyAttributes"][0]["class"] == "receiver"
        values = read_primitive(doc, binary, prim)
        count += len(values["POSITION"])
        total.append(values["_TOTAL_HOURS"])
        verdicts.append(values["_VERDICT_WITH_PROPOSALS"])
    assert count == len(res.receivers)
    total, verdicts = np.concatenate(total), np.concatenate(verdicts)
    want = np.where(res.present[:, 0], res.total_min[:, 0] / 60.0, -1.0).astype(np.float32)
    assert np.array_equal(np.sort(total), np.sort(want))
    assert (verdicts == 2).sum() == (res.present[:, 1] & ~res.passes[:, 1]).sum()
    catalog = json.loads((sample_run / "bundle" / "catalog.json").read_text())
    assert catalog["assets"]["sunlight"]["dmctwin:layer"] == "analysis"
    for name in ("sunlight.html", "sunlight.json", "receivers.gpkg", "ground.tif"):
        assert (tiles / name).is_file(), name
    assert (sample_run / "reports" / "sunlight.html").is_file() and (sample_run / "reports" / "sunlight.json").is_file()
    publish = json.loads((sample_run / "reports" / "publish.json").read_text())
    assert "analysis/sunlight/tileset.json" in publish["validation"]["tilesets"]  # ours and Khronos'
    assert publish["validation"]["gltf_validated"]
    official_agrees(tiles)
    shares = record.fail_share(0)
    doc, binary = read_glb(next((sample_run / "bundle" / "buildings" / "tiles").glob("*.glb")).read_bytes())
    table = doc["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
    assert "sunlight_fail_share" in table["properties"] and shares


def test_the_report_states_the_rule_the_clock_and_the_losers(analysis, sample_run):
    record, _ = analysis
    html = (sample_run / "reports" / "sunlight.html").read_text(encoding="utf-8")
    assert "true solar time (진태양시)" in html and "2 h 00 min of continuous sun between 09:00–15:00" in html
    assert html.count("data:image/png;base64,") == 3  # both scenarios and the change
    assert "loses compliance" in html and "DMC-P001" in html
    for g in record.changes:
        assert f"<td class='l'>{g['building']}</td>" in html
    assert "http://" not in html and "https://" not in html  # self-contained


def test_a_disabled_analysis_leaves_an_empty_result_and_no_layer(sample_run, tmp_path_factory):
    from tests.conftest import variant_run
    work = variant_run(sample_run, tmp_path_factory.mktemp("no_analysis"), "analysis: {enabled: false}",
                       "analysis..publish")
    record = read_sunlight(work / "artifacts" / "analysis")
    assert not record.enabled and len(read_receivers(work / "artifacts" / "analysis").receivers) == 0
    assert not (work / "bundle" / "analysis").exists()
    assert "sunlight" not in json.loads((work / "bundle" / "catalog.json").read_text())["assets"]
    assert "No analysis" in (work / "reports" / "sunlight.html").read_text(encoding="utf-8")


def test_a_footprint_marked_as_a_proposal_is_judged_with_and_without(tmp_path):
    """A stranger's footprint layer whose ``status`` attribute marks a tall proposal south of a
    low block, replacing another building: the proposal and what it replaces are switched by the
    scenarios, and the block's south windows lose compliance with it built."""
    from pipeline.samples.generator import origin_xy

    x0, y0 = origin_xy()

    def square(x, y, half):
        return [[[x - half, y - half], [x + half, y - half], [x + half, y + half], [x - half, y + half],
                 [x - half, y - half]]]

    features = [("BLOCK", square(x0, y0 + 40, 10), 15.0, "no", None),
                ("OLD", square(x0 + 120, y0, 8), 12.0, "no", None),
                ("TOWER", square(x0, y0, 15), 120.0, "yes", "OLD")]
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:5186"}},
           "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": g},
                         "properties": {"id": i, "height": h, "status": s, "replaces": r}}
                        for i, g, h, s, r in features]}
    (tmp_path / "fp.geojson").write_text(json.dumps(doc))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                   f"inputs:\n  footprints: {{path: {tmp_path / 'fp.geojson'}, "
                   "fields: {proposed: status, replaces: replaces}}\n"
                   f"  dem: {{path: {SAMPLE / 'dem.tif'}}}\n"
                   "stages: {analysis: {ground_margin: 10}, publish: {viewer: {enabled: false}}}\n")
    proc = run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--stages", "ingest..analysis", "--quiet")
    assert proc.returncode == 0, proc.stderr
    records = {b.id: b for b in read_buildings(tmp_path / "w" / "artifacts" / "mesh").buildings}
    assert records["TOWER"].proposed and records["TOWER"].replaces == "OLD" and not records["BLOCK"].proposed
    folder = tmp_path / "w" / "artifacts" / "analysis"
    record, res = read_sunlight(folder), read_receivers(folder)
    assert record.proposals == ["TOWER"] and record.replaced == ["OLD"]
    fid = {b.id: b.feature_id for b in records.values()}
    on = {k: res.receivers.building == fid[k] for k in fid}
    assert res.present[on["TOWER"]].tolist() == [[False, True]] * int(on["TOWER"].sum())
    assert res.present[on["OLD"]].tolist() == [[True, False]] * int(on["OLD"].sum())
    south = on["BLOCK"] & (np.abs(res.receivers.azimuth_deg - 180) < 1)
    assert res.passes[south, 0].all() and not res.passes[south, 1].any()
    assert [g["building"] for g in record.changes if g["building"] != "ground"] == ["BLOCK"]
