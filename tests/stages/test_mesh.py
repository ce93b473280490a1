"""The mesh stage on bad geometry: every odd footprint is repaired or skipped with a warning and
a count, never a crash and never a silent loss; a model without faces stops the run in one line;
inputs that disagree in height on the same ground are said to."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyproj
import pytest
import rasterio
import trimesh
from rasterio.transform import from_origin
from scipy import ndimage

from pipeline.artifacts.base import load_header
from pipeline.artifacts.frame import read_frame
from pipeline.artifacts.terrain import load_level, read_terrain
from pipeline.config import load_config
from pipeline.core.raster import read_enu_raster
from pipeline.core.terrain import Heightfield, Tin, vertical_error
from pipeline.errors import FeatureRepairedWarning, FeatureSkippedWarning, HeightDisagreementWarning
from pipeline.runner import Runner
from pipeline.samples.generator import origin_xy
from tests.conftest import SAMPLE, building_docs, cracks, run_cli
from tests.fixtures_las import sample_points, write_las


def _site(tmp_path, features: list[dict], meshes: str = "", properties: list[dict] | None = None) -> tuple:
    """A 300 x 300 m site at the sample's origin: a flat 5 m DEM and the given footprints (id F<i>,
    4 floors unless ``properties`` says otherwise)."""
    x0, y0 = origin_xy()
    dem = tmp_path / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=60, height=60, count=1, dtype="float32", crs="EPSG:5186",
                       transform=from_origin(x0 - 150, y0 + 150, 5, 5), nodata=-9999.0) as dst:
        dst.write(np.full((60, 60), 15.0, np.float32), 1)
    fc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::5186"}},
          "features": [{"type": "Feature", "properties": {"id": f"F{i}", **(properties[i] if properties else
                                                                          {"floors": 4})},
                        "geometry": geom} for i, geom in enumerate(features)]}
    fp = tmp_path / "footprints.geojson"
    fp.write_text(json.dumps(fc))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""site: {{name: bad geometry, origin: {{lat: 37.5770, lon: 126.8898}}}}
inputs:
  footprints: {{path: {fp}}}
  dem: {{path: {dem}}}
{meshes}
stages: {{mesh: {{terrain_lods: 2}}}}
executor: {{kind: inline}}
""")
    return cfg, x0, y0


def _square(x0, y0, dx, dy, size, z=None):
    ring = [[x0 + dx, y0 + dy], [x0 + dx + size, y0 + dy], [x0 + dx + size, y0 + dy + size], [x0 + dx, y0 + dy + size]]
    if z is not None:
        ring = [[x, y, z] for x, y in ring]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


def test_bad_footprints_are_repaired_or_counted(tmp_path):
    x0, y0 = origin_xy()
    good = _square(x0, y0, -100, -100, 20)
    bowtie = {"type": "Polygon",
              "coordinates": [[[x0, y0], [x0 + 20, y0 + 20], [x0 + 20, y0], [x0, y0 + 20], [x0, y0]]]}
    empty = {"type": "Polygon", "coordinates": []}
    zero = {"type": "Polygon", "coordinates": [[[x0 + 50, y0], [x0 + 60, y0], [x0 + 70, y0], [x0 + 50, y0]]]}
    nan_z = _square(x0, y0, 40, 40, 15, z=float("nan"))
    sliver = {"type": "MultiPolygon", "coordinates": [
        _square(x0, y0, -60, 30, 25)["coordinates"], _square(x0, y0, -30, 30, 1)["coordinates"]]}
    tiny = _square(x0, y0, 80, -80, 1)
    text = json.dumps([good, bowtie, empty, zero, nan_z, sliver, tiny]).replace("NaN", "null")
    features = json.loads(text)
    features[4]["coordinates"] = [[[x, y, float("nan")] for x, y, _ in features[4]["coordinates"][0]]]
    cfg_path, _, _ = _site(tmp_path, features)
    cfg = load_config(cfg_path)
    with pytest.warns((FeatureSkippedWarning, FeatureRepairedWarning)) as caught:
        Runner(cfg, tmp_path / "w", quiet=True).run(["ingest", "georef", "clean", "mesh"])
    messages = [str(w.message) for w in caught]
    buildings = json.loads((tmp_path / "w" / "artifacts" / "mesh" / "buildings.json").read_text())
    records = building_docs(tmp_path / "w")
    ids = {b["id"] for b in records}
    # good, the repaired bow-tie, the 3-D footprint with NaN z and the multipolygon's large part
    assert ids == {"F0", "F1", "F4", "F5"}
    ingest = load_header(tmp_path / "w" / "artifacts" / "ingest" / "footprints.jsonl")
    assert {s["feature"]: s["reason"] for s in ingest["skipped"]} == {"F2": "empty geometry", "F3": "zero area"}
    assert [r["feature"] for r in ingest["repaired"]] == ["F1"]
    assert buildings["slivers_dropped"] == 1
    assert {s["feature"] for s in buildings["skipped"]} == {"F6"}  # one part, smaller than min_area
    assert any("F1" in m and "made valid" in m for m in messages)
    assert any("F2" in m and "empty" in m for m in messages)
    assert any("F6" in m and "min_area" in m for m in messages)
    # 7 footprints in: 4 meshed, 3 accounted for with a reason
    assert len(ids) + len(ingest["skipped"]) + len(buildings["skipped"]) == 7
    f1 = next(b for b in records if b["id"] == "F1")
    assert f1["footprint_area_m2"] == pytest.approx(200.0, rel=1e-3)  # two triangles of the bow-tie
    report = json.loads((tmp_path / "w" / "reports" / "mesh.json").read_text())
    assert report["buildings"]["slivers_dropped"] == 1 and report["buildings"]["lod"] == {"LoD1": 4}


def test_unusable_floors_and_heights_are_ignored_by_name_and_the_run_goes_on_to_the_tiles(tmp_path):
    """Attribute text and absurd numbers (as real building layers have them) are named at ingest,
    left out, and never reach the tiles' uint16 floors."""
    x0, y0 = origin_xy()
    props = [{"floors": "지상 12층"}, {"floors": 70000}, {"floors": -3}, {"floors": "1e+308"},
             {"floors": "12"}, {"floors": 2.5}, {"height": "abc", "floors": 0}, {"height": "30.5"}]
    squares = [_square(x0, y0, -120 + 30 * i, 0, 20) for i in range(len(props))]
    cfg_path, _, _ = _site(tmp_path, squares, properties=props)
    with pytest.warns(FeatureRepairedWarning) as caught:
        Runner(load_config(cfg_path), tmp_path / "w", quiet=True).run(
            ["ingest", "georef", "clean", "mesh", "analysis", "tile"])
    messages = [str(w.message) for w in caught if issubclass(w.category, FeatureRepairedWarning)]
    # a column of mixed types reads as text: the values are quoted or not as the reader gives them
    for ident, value, problem in [("F0", "지상 12층", "floors '지상 12층' is not a number"),
                                  ("F1", "70000", "is outside 0..300"), ("F2", "-3", "is outside 0..300"),
                                  ("F3", "1e+308", "is outside 0..300"), ("F5", "2.5", "is not a whole number"),
                                  ("F6", "abc", "height 'abc' is not a number")]:
        assert any(f"building {ident}:" in m and value in m and problem in m for m in messages), (ident, messages)
    assert not any("building F4:" in m or "building F7:" in m for m in messages)
    by_id = {b["id"]: b for b in building_docs(tmp_path / "w")}
    assert len(by_id) == len(props)
    assert by_id["F4"]["floors"] == 12 and by_id["F4"]["height_source"] == "floors"
    assert by_id["F4"]["height"] == pytest.approx(12 * 3.5, abs=0.01)  # storey_height 3.5 m
    assert by_id["F7"]["height_source"] == "attribute" and by_id["F7"]["height"] == pytest.approx(30.5, abs=0.01)
    for ident in ("F0", "F1", "F2", "F3", "F5", "F6"):
        assert by_id[ident]["floors"] is None and by_id[ident]["height_source"] == "default"
    assert (tmp_path / "w" / "artifacts" / "tile" / "tileset.json").is_file()


def test_a_model_without_faces_stops_the_run_in_one_line(tmp_path):
    x0, y0 = origin_xy()
    cloud = tmp_path / "scan.ply"
    trimesh.PointCloud(np.random.default_rng(0).normal(size=(50, 3))).export(cloud)
    meshes = f"  meshes: [{{path: {cloud}, crs: EPSG:5186, origin: [{x0}, {y0}, 15.0]}}]"
    cfg, _, _ = _site(tmp_path, [_square(x0, y0, 0, 0, 20)], meshes)
    proc = run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--quiet")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "scan.ply" in lines[0] and "no faces" in lines[0]
    assert not (tmp_path / "w" / "artifacts" / "ingest").exists()


def _hall(tmp_path, origin_height: float) -> tuple:
    """A 10 x 10 x 30 m box model replacing footprint F0 of a :func:`_site` on a flat 15 m DEM,
    its origin at ``origin_height`` (orthometric m)."""
    x0, y0 = origin_xy()
    box = trimesh.creation.box((10, 10, 30))
    box.apply_translation([0, 0, 15])
    model = tmp_path / "hall.obj"
    box.export(model)
    # the model stands on the footprint F0 (20 x 20 m at 0..20, 0..20 from the origin)
    meshes = (f"  meshes: [{{path: {model}, crs: EPSG:5186, origin: [{x0 + 10}, {y0 + 10}, {origin_height}], "
              f"replaces: F0, name: Hall (scanned)}}]")
    cfg, _, _ = _site(tmp_path, [_square(x0, y0, 0, 0, 20), _square(x0, y0, 50, 50, 20)], meshes)
    return cfg, x0, y0


def test_a_model_replaces_the_footprint_it_names(tmp_path):
    cfg, x0, y0 = _hall(tmp_path, 15.0)
    lon, lat = pyproj.Transformer.from_crs("EPSG:5186", "EPSG:4326", always_xy=True).transform(x0 + 10, y0 + 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HeightDisagreementWarning)  # it stands on the ground
        Runner(load_config(cfg), tmp_path / "w", quiet=True).run(["ingest", "georef", "clean", "mesh"])
    buildings = building_docs(tmp_path / "w")
    assert [b["id"] for b in buildings] == ["F0", "F1"]
    hall = buildings[0]
    assert hall["lod"] == "imported" and hall["name"] == "Hall (scanned)" and hall["floors"] == 4
    assert hall["height"] == pytest.approx(30.0, abs=1e-3) and hall["ground_height"] == pytest.approx(15.0, abs=1e-3)
    assert hall["centroid"]["lon"] == pytest.approx(lon, abs=1e-9)


def test_a_proposal_stands_beside_the_building_it_would_replace(tmp_path):
    """A model marked ``proposed`` keeps its own id; the footprint it replaces keeps its solid, and
    both reach the tiles' metadata and the anchors, for viewers to switch between them."""
    cfg, _, _ = _hall(tmp_path, 15.0)
    cfg.write_text(cfg.read_text().replace("replaces: F0,", "replaces: F0, proposed: true, id: HALL,"))
    Runner(load_config(cfg), tmp_path / "w", quiet=True).run(
        ["ingest", "georef", "clean", "mesh", "analysis", "tile", "anchors"])
    buildings = building_docs(tmp_path / "w")
    by_id = {b["id"]: b for b in buildings}
    assert sorted(by_id) == ["F0", "F1", "HALL"]
    assert by_id["F0"]["lod"] != "imported" and not by_id["F0"]["proposed"] and by_id["F0"]["replaces"] is None
    assert by_id["HALL"]["lod"] == "imported" and by_id["HALL"]["proposed"] and by_id["HALL"]["replaces"] == "F0"
    anchors = json.loads((tmp_path / "w" / "artifacts" / "anchors" / "anchors.json").read_text())["anchors"]
    hall = next(a for a in anchors if a["id"] == "building:HALL")
    assert hall["properties"]["proposed"] is True and hall["properties"]["replaces"] == "F0"


@pytest.mark.parametrize("origin_height, where", [(55.0, "40.00 m above"), (5.0, "10.00 m below")])
def test_a_model_off_the_ground_is_said_to_be(tmp_path, origin_height, where):
    cfg, _, _ = _hall(tmp_path, origin_height)
    with pytest.warns(HeightDisagreementWarning, match=f"model .*base is {where} the terrain under it"):
        Runner(load_config(cfg), tmp_path / "w", quiet=True).run(["ingest", "georef", "clean", "mesh"])


def test_lidar_and_a_dem_that_disagree_in_height_are_said_to(tmp_path):
    """The sample's DEM raised by 20 m (what a DEM of ellipsoidal heights read as orthometric
    looks like in Seoul) against the sample's own LiDAR: a warning with the offset, and the
    report's numbers; the unchanged DEM agrees to centimetres."""
    cloud = write_las(tmp_path / "cloud.las", sample_points(200_000), crs="EPSG:5186+5773")
    with rasterio.open(SAMPLE / "dem.tif") as src:
        profile, band = src.profile, src.read(1)
    raised = tmp_path / "dem_raised.tif"
    with rasterio.open(raised, "w", **profile) as dst:
        dst.write(np.where(band == profile["nodata"], band, band + 20.0), 1)
    for dem, expect in ((SAMPLE / "dem.tif", None), (raised, -20.0)):
        cfg = tmp_path / f"{dem.stem}.yaml"
        cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
                       f"inputs: {{pointclouds: [{{path: {cloud}}}], dem: {{path: {dem}}}}}\n"
                       "stages: {mesh: {terrain_lods: 1, footprints_from_points: never}}\nexecutor: {kind: inline}\n")
        work = tmp_path / dem.stem
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Runner(load_config(cfg), work, quiet=True).run(["ingest", "georef", "clean", "mesh"])
        said = [str(w.message) for w in caught if issubclass(w.category, HeightDisagreementWarning)]
        diff = json.loads((work / "reports" / "mesh.json").read_text())["terrain"]["sources"]["lidar_dtm_minus_dem_m"]
        if expect is None:
            assert not said and abs(diff["median_m"]) < 0.1
        else:
            assert diff["median_m"] == pytest.approx(expect, abs=0.1)
            assert len(said) == 1 and "-20.0" in said[0] and "orthometric" in said[0]


def _city_site(tmp_path, priority: str) -> list[dict]:
    """Footprints F0 (matching the city model's courtyard block C1), F1 (half under its block
    C2: a conflict) and F2 (alone), meshed with ``city_model_priority``."""
    from tests.fixtures_citymodel import block, courtyard, write_cityjson

    x0, y0 = origin_xy()
    tmp_path.mkdir()
    model = write_cityjson(tmp_path / "m.json", [courtyard("C1", x0, y0, 15.0), block("C2", x0 + 60, y0 + 10, 15.0)])
    cfg, _, _ = _site(tmp_path, [_square(x0, y0, 0, 0, 24), _square(x0, y0, 60, 0, 20), _square(x0, y0, 120, 0, 10)],
                      f"  city_models: [{{path: {model}}}]")
    cfg.write_text(cfg.read_text().replace("stages: {mesh: {terrain_lods: 2}}",
                                           f"stages: {{mesh: {{terrain_lods: 2, city_model_priority: {priority}}}}}"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        Runner(load_config(cfg), tmp_path / "w", quiet=True).run(["ingest", "georef", "clean", "mesh"])
    said = " ".join(str(w.message) for w in seen if issubclass(w.category, FeatureSkippedWarning))
    assert "city model building C2 overlaps footprint(s) F1" in said
    return building_docs(tmp_path / "w")


def test_city_models_replace_the_footprints_they_match_or_give_way(tmp_path):
    """city_model_priority city_model: the matched footprint keeps its id and attributes on the
    city model's solid, and a city building overlapping a footprint without matching it stands
    in its place; input: the footprints are reconstructed and the city model is only recorded."""
    first = {b["id"]: b for b in _city_site(tmp_path / "a", "city_model")}
    assert sorted(first) == ["C2", "F0", "F2"]
    assert (first["F0"]["height_source"], first["F0"]["floors"], first["F0"]["lod"]) == ("city model", 4, "LoD2")
    assert [(s["source"], s["id"], s["geometry"]) for s in first["F0"]["footprint_sources"]] == [
        ("input", "F0", False), ("city model", "C1", True)]
    assert [(s["source"], s["id"], s["geometry"]) for s in first["C2"]["footprint_sources"]] == [
        ("city model", "C2", True), ("input", "F1", False)]
    second = {b["id"]: b for b in _city_site(tmp_path / "b", "input")}
    assert sorted(second) == ["F0", "F1", "F2"]
    assert second["F0"]["height_source"] == "floors" and second["F0"]["lod"] == "LoD1"
    assert [(s["source"], s["id"], s["geometry"]) for s in second["F0"]["footprint_sources"]] == [
        ("input", "F0", True), ("city model", "C1", False)]


def test_footprints_in_the_modified_belts_sibling_are_found_off_the_lidar_and_the_crs_named(tmp_path):
    """A layer made in EPSG:2097 but labelled EPSG:5174 lands 255 m east of the LiDAR's
    buildings (inside every landing check): the mesh stage measures the shift against the
    building points and names EPSG:2097."""
    from pipeline.errors import MisalignmentWarning
    from tests.fixtures_las import write_las

    x0, y0 = origin_xy()
    truth = [(x0 + dx, y0 + dy) for dx in (-60, 0, 60) for dy in (-60, 0, 60) if (dx, dy) != (0, 0)]
    to_2097 = pyproj.Transformer.from_crs("EPSG:5186", "EPSG:2097", always_xy=True)
    feats = []
    for k, (e, n) in enumerate(truth):
        ring = [list(to_2097.transform(x, y)) for x, y in ((e, n), (e + 20, n), (e + 20, n + 20), (e, n + 20), (e, n))]
        feats.append({"type": "Feature", "properties": {"id": f"F{k}", "floors": 4},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    fp = tmp_path / "old_layer.geojson"
    fp.write_text(json.dumps({"type": "FeatureCollection", "features": feats, "crs": {
        "type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::5174"}}}))
    ge, gn = np.meshgrid(np.arange(-400.0, 400.0, 2.0), np.arange(-400.0, 400.0, 2.0))
    ground = np.column_stack([ge.ravel() + x0, gn.ravel() + y0, np.full(ge.size, 15.0)])
    re, rn = np.meshgrid(np.arange(0.25, 20.0, 0.7), np.arange(0.25, 20.0, 0.7))
    roofs = np.concatenate([np.column_stack([re.ravel() + e, rn.ravel() + n, np.full(re.size, 35.0)])
                            for e, n in truth])
    las = write_las(tmp_path / "cloud.las", np.vstack([ground, roofs]), crs="EPSG:5186+5773",
                    classification=np.r_[np.full(len(ground), 2), np.full(len(roofs), 6)].astype(np.uint8))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
                   f"inputs: {{footprints: {{path: {fp}}}, pointclouds: [{{path: {las}}}]}}\n"
                   "stages: {mesh: {terrain_lods: 2}, clean: {enabled: false}}\nexecutor: {kind: inline}\n")
    with pytest.warns(MisalignmentWarning, match=r"old_layer\.geojson: the footprints lie 25[4-6] m east .* EPSG:2097"):
        Runner(load_config(cfg), tmp_path / "w", quiet=True).run(["ingest", "georef", "clean", "mesh"])
    report = json.loads((tmp_path / "w" / "reports" / "mesh.json").read_text())["buildings"]["footprints"]["alignment"]
    assert report["off"] and report["crs_candidates"] == ["EPSG:2097"]
    assert report["shift_en_m"][0] == pytest.approx(-255.3, abs=2.0) and abs(report["shift_en_m"][1]) <= 2.0
    assert report["covered_as_placed"] < 0.1 < 0.8 < report["covered_moved"]


def test_a_dem_alone_keeps_its_spacing_and_the_tin_lies_on_it(tmp_path):
    """A 5 m DEM without LiDAR is triangulated at 5 m (not resampled to the 1 m LiDAR spacing:
    25 times the posts for nothing), and the finest TIN stands on the DEM's own surface: a tilted
    plane in EPSG:5186 with orthometric heights, checked through PROJ and the geoid."""
    cfg, x0, y0 = _site(tmp_path, [_square(x0, y0, 0, 0, 20) for x0, y0 in [origin_xy()]])
    a, b, c = 0.02, -0.035, 30.0
    with rasterio.open(tmp_path / "dem.tif", "r+") as dst:
        cols, rows = np.meshgrid(np.arange(60), np.arange(60))
        x, y = x0 - 150 + (cols + 0.5) * 5, y0 + 150 - (rows + 0.5) * 5  # pixel centres
        dst.write((a * (x - x0) + b * (y - y0) + c).astype(np.float32), 1)
    Runner(load_config(cfg), workdir=tmp_path / "w").run(["ingest", "georef", "clean", "mesh"])
    mesh = tmp_path / "w" / "artifacts" / "mesh"
    terrain = read_terrain(mesh)
    assert terrain.heightfield["resolution_m"] == pytest.approx(5.0, abs=0.01)
    assert terrain.sources["dem"]["resolution_m"] == pytest.approx(5.0, abs=0.01)
    v, _ = load_level(mesh, terrain.levels[0])
    site = read_frame(tmp_path / "w" / "artifacts" / "georef").site
    to_geo = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
    to_tm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:5186", always_xy=True)
    lon, lat, h = to_geo.transform(*site.enu_to_ecef(v).T)
    x, y = to_tm.transform(lon, lat)
    egm96 = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4326+5773", always_xy=True)
    ortho = egm96.transform(lon, lat, h)[2]
    assert np.abs(ortho - (a * (x - x0) + b * (y - y0) + c)).max() < 0.01


def test_a_heightfield_larger_than_a_block_is_triangulated_in_blocks_that_meet_without_a_crack(tmp_path):
    """A rough 5 m DEM with a nodata hole, in blocks of 60 m (12 post spacings): every level is one
    mesh without an open edge away from the data's edge, within its bound on every post of the
    heightfield (measured again here on the stage's own heightfield file), and little larger than
    the one TIN of the same DEM in a single block."""
    cfg, x0, y0 = _site(tmp_path, [_square(x0, y0, 0, 0, 20) for x0, y0 in [origin_xy()]])
    rng = np.random.default_rng(7)
    u = 20 + 6 * ndimage.gaussian_filter(rng.normal(0, 1, (60, 60)), 3) * 10
    u[20:32, 25:40] = -9999.0  # across block borders
    with rasterio.open(tmp_path / "dem.tif", "r+") as dst:
        dst.write(u.astype(np.float32), 1)
    text = cfg.read_text()
    counts = {}
    for name, size in (("blocks", 60), ("one", 2000)):
        cfg.write_text(text.replace("terrain_lods: 2", f"terrain_lods: 2, terrain_block_size: {size}"))
        Runner(load_config(cfg), workdir=tmp_path / name).run(["ingest", "georef", "clean", "mesh"])
        mesh = tmp_path / name / "artifacts" / "mesh"
        terrain = read_terrain(mesh)
        grid, hu = read_enu_raster(mesh / terrain.heightfield_path)
        hf = Heightfield(grid, hu)
        counts[name] = (terrain.blocks, [lv.faces for lv in terrain.levels])
        for lv in terrain.levels:
            v, f = load_level(mesh, lv)
            posts = np.column_stack([np.round((grid.n1 - v[:, 1]) / grid.res - 0.5),
                                     np.round((v[:, 0] - grid.e0) / grid.res - 0.5)]).astype(np.int64)
            assert len(cracks(posts, f, np.isfinite(hu))) == 0
            measured, coverage = vertical_error(Tin(v, f, posts), hf)
            assert measured == pytest.approx(lv.max_vertical_error_m, abs=1e-6)
            assert measured <= lv.max_error_bound_m + 1e-4 and coverage == pytest.approx(lv.coverage, abs=1e-6)
            assert coverage > 0.97
    assert counts["one"][0] == 1 and counts["blocks"][0] == 25
    for blocked, one in zip(counts["blocks"][1], counts["one"][1], strict=True):
        assert one <= blocked <= 1.3 * one + 2 * 25


def test_a_city_dems_post_spacing_is_measured_on_a_sample_of_its_steps_to_the_micrometre():
    from pipeline.stages.mesh import SPACING_STEPS, _post_spacing

    # a projected 5 m lattice turned 1.3° against ENU and scaled by a factor that drifts across
    # it, as a TM grid's does, larger than the steps the spacing is measured on
    rows, cols = 1100, 1000
    assert rows * cols > SPACING_STEPS
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    scale = 5.0 * (1.0 + 2e-4 * c / cols + 1e-4 * r / rows)
    a = np.radians(1.3)
    lattice = np.stack([scale * (c * np.cos(a) - r * np.sin(a)), -scale * (c * np.sin(a) + r * np.cos(a)),
                        np.zeros_like(c)], axis=-1)
    lattice[100:200, 300:400] = np.nan
    steps = np.concatenate([np.hypot(*np.diff(lattice[..., :2], axis=k).reshape(-1, 2).T) for k in (0, 1)])
    exact = float(np.median(steps[np.isfinite(steps)]))
    assert _post_spacing(lattice) == pytest.approx(exact, abs=1e-6)
    assert _post_spacing(lattice[:50, :40]) == float(np.median(np.concatenate(
        [np.hypot(*np.diff(lattice[:50, :40, :2], axis=k).reshape(-1, 2).T) for k in (0, 1)])))


@pytest.mark.parametrize("dem_offset_m", [0.0, 3000.0])
def test_buildings_are_outlined_only_where_a_terrain_can_stand_them(tmp_path, dem_offset_m):
    """A classified cloud (flat ground, one 30 m box of roof points) with cleaning off and a DEM:
    under the cloud, the box is outlined and stands on the DEM; 3 km away, no cell of the cloud
    has terrain, so none is read for outlining and no building is made (it could only be
    skipped for having no ground)."""
    x0, y0 = origin_xy()
    rng = np.random.default_rng(3)
    xy = rng.uniform(-60, 60, (60_000, 2))
    roof = (np.abs(xy[:, 0]) < 15) & (np.abs(xy[:, 1]) < 15)
    z = np.where(roof, 52.0, 30.0) + rng.normal(0, 0.02, len(xy))
    cloud = write_las(tmp_path / "cloud.las", np.column_stack([xy[:, 0] + x0, xy[:, 1] + y0, z]),
                      crs="EPSG:5186+5773", classification=np.where(roof, 6, 2).astype(np.uint8))
    dem = tmp_path / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=40, height=40, count=1, dtype="float32", crs="EPSG:5186",
                       transform=from_origin(x0 + dem_offset_m - 100, y0 + 100, 5, 5)) as dst:
        dst.write(np.full((40, 40), 30.0, np.float32), 1)
    cfg = tmp_path / "site.yaml"
    cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
                   f"inputs: {{pointclouds: [{{path: {cloud}}}], dem: {{path: {dem}}}}}\n"
                   "stages: {clean: {enabled: false}, mesh: {terrain_lods: 1}}\nexecutor: {kind: inline}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FeatureSkippedWarning)
        Runner(load_config(cfg), tmp_path / "w", quiet=True).run(["ingest", "georef", "clean", "mesh"])
    report = json.loads((tmp_path / "w" / "reports" / "mesh.json").read_text())["buildings"]
    outlined = report["footprints"]
    if dem_offset_m:
        assert outlined["cells_without_terrain"] >= 1 and outlined["building_points"] == 0
        assert outlined["derived"] == 0 and report["buildings"] == 0
    else:
        assert outlined["cells_without_terrain"] == 0 and outlined["derived"] == 1 and report["buildings"] == 1
