"""The sample's meshes against the generator's truth and PROJ: terrain error bounds, closed
building solids, LoD2 roofs, footprints outlined from the LiDAR, the imported design model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely
from shapely import affinity

from pipeline.core.geodesy import GeoidModel, SiteFrame, ensure_proj_data, geodetic_to_source
from pipeline.core.meshing import is_closed, mesh_volume
from pipeline.core.raster import read_enu_raster
from pipeline.core.tileset_check import validate_tileset
from tests.conftest import SAMPLE, building_docs, raycast_u, variant_run

pytestmark = pytest.mark.slow


def _mesh(workdir: Path) -> tuple[list[dict], dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]]:
    """(building records, (feature, level) -> (vertices ENU, faces)) of a run's mesh stage."""
    folder = workdir / "artifacts" / "mesh"
    records = building_docs(workdir)
    d = np.load(folder / "buildings.npz")
    vs, fs = d["vertex_start"], d["face_start"]
    pieces = {(int(b), int(k)): (d["vertices"][vs[p]:vs[p + 1]], d["faces"][fs[p]:fs[p + 1]])
              for p, (b, k) in enumerate(zip(d["piece_building"], d["piece_level"], strict=True))}
    return records, pieces


def _frame(workdir: Path) -> SiteFrame:
    return SiteFrame.from_origin(json.loads((workdir / "artifacts" / "georef" / "frame.json").read_text())["origin"])


def _local(truth: dict, b: dict) -> shapely.Polygon:
    return affinity.translate(shapely.from_wkt(b["footprint_wkt"]), -truth["origin"]["x"], -truth["origin"]["y"])


def test_every_building_solid_is_closed_outward_and_measured(sample_run):
    records, pieces = _mesh(sample_run)
    assert len(records) == 61  # 60 footprints and the imported tower
    for r in records:
        v, f = pieces[(r["feature_id"], 0)]
        assert is_closed(f), r["id"]
        assert mesh_volume(v, f) > 0, r["id"]  # faces point outward
        if r["lod"] == "LoD1":
            # walls follow the local vertical, so ENU volume is area x height to within the
            # earth's curvature over the building (1e-4 here)
            assert mesh_volume(v, f) == pytest.approx(r["footprint_area_m2"] * r["height"], rel=2e-4), r["id"]
        errors = [lv["error_m"] for lv in r["levels"]]
        assert errors[0] == 0.0 and all(e > 0 for e in errors[1:])
        assert [lv["faces"] for lv in r["levels"]] == sorted((lv["faces"] for lv in r["levels"]), reverse=True)
        assert len(r["levels"]) == len([k for (b, k) in pieces if b == r["feature_id"]])


def test_roofs_match_the_generators_truth(sample_run, truth):
    records, _ = _mesh(sample_run)
    got = {r["id"]: r for r in records}
    t = {b["id"]: b for b in truth["buildings"]}
    lidar = [r for r in records if r["height_source"] == "lidar"]
    assert len(lidar) >= 45
    top = np.array([r["roof_height"] - t[r["id"]]["roof"] for r in lidar])
    assert np.sqrt(np.mean(top ** 2)) < 0.3
    pitched = [b for b in truth["buildings"] if b["roof_shape"]["type"] != "flat" and got[b["id"]]["roof_points"] > 0]
    assert len(pitched) >= 15  # the sample has gable, hip and shed roofs under the LiDAR
    right = [b for b in pitched if got[b["id"]]["roof_type"] == b["roof_shape"]["type"]]
    assert len(right) >= 0.8 * len(pitched)
    for b in right:
        r = got[b["id"]]
        assert r["lod"] == "LoD2" and r["roof_fit_rmse_m"] < 0.1
        assert r["eave_height"] == pytest.approx(b["roof_shape"]["eave"], abs=0.3)
        assert r["levels"][1]["error_m"] > 0.5  # the LoD1 block deviates by about the roof's rise
    flat = [b for b in truth["buildings"] if b["roof_shape"]["type"] == "flat" and got[b["id"]]["lod"] == "LoD2"]
    assert all(got[b["id"]]["roof_type"] == "flat" for b in flat)
    for r in records:
        if r["lod"] == "LoD1":
            assert r["lod2_fallback"], r["id"]  # every LoD1 building says why
    # ground: the lowest LiDAR DTM value under the footprint; its 3 cm noise makes that minimum
    # read a few centimetres low
    base = np.array([got[i]["ground_height"] - b["base"] for i, b in t.items()])
    assert np.abs(base).max() < 0.1 and np.sqrt(np.mean(base ** 2)) < 0.05


def test_building_corners_land_where_proj_puts_them(sample_run):
    """A footprint corner at EPSG:5186 x, y and its orthometric ground height -> ECEF by PROJ."""
    ensure_proj_data()
    to_ecef = pyproj.Transformer.from_crs("EPSG:5186+5773", "EPSG:4978", always_xy=True)
    records, pieces = _mesh(sample_run)
    frame = _frame(sample_run)
    by_id = {r["id"]: r for r in records}
    checked = 0
    for feat in json.loads((SAMPLE / "buildings.geojson").read_text())["features"][::3]:
        r = by_id[feat["properties"]["id"]]
        world = frame.enu_to_ecef(pieces[(r["feature_id"], 0)][0])
        heights = [r["ground_height"]] + ([r["roof_height"]] if r["roof_type"] in (None, "flat") else [])
        for x, y in feat["geometry"]["coordinates"][0][:-1]:
            for h in heights:
                ex = np.array(to_ecef.transform(x, y, h, errcheck=True))
                assert np.linalg.norm(world - ex, axis=1).min() < 0.005, (r["id"], h)
                checked += 1
    assert checked >= 80


def test_terrain_keeps_its_error_bound_on_the_dtm_grid(sample_run):
    folder = sample_run / "artifacts" / "mesh" / "terrain"
    info = json.loads((folder / "terrain.json").read_text())
    grid, u = read_enu_raster(folder / "terrain.tif")
    e, n = grid.centers()
    assert info["levels"][0]["max_error_bound_m"] == 0.25 and len(info["levels"]) == 4
    for lv in info["levels"]:
        tin = np.load(folder / lv["file"])
        assert lv["max_vertical_error_m"] <= lv["max_error_bound_m"] + 1e-4
        got = raycast_u(tin["vertices"], tin["faces"], e.ravel(), n.ravel())
        ok = np.isfinite(got) & np.isfinite(u.ravel())
        assert ok.sum() > 0.99 * np.isfinite(u).sum()
        measured = np.abs(got[ok] - u.ravel()[ok]).max()
        assert measured <= lv["max_error_bound_m"] + 2e-3  # float32 rays
        assert measured == pytest.approx(lv["max_vertical_error_m"], abs=2e-3)
    # and on clean's LiDAR DTM itself, away from the band where it is blended into the DEM
    dtm_grid, dtm = read_enu_raster(sample_run / "artifacts" / "clean" / "dtm.tif")
    de, dn = dtm_grid.centers()
    inner = np.zeros(dtm.shape, bool)
    inner[15:-15, 15:-15] = True
    inner &= np.isfinite(dtm)
    tin = np.load(folder / "level_0.npz")
    got = raycast_u(tin["vertices"], tin["faces"], de[inner], dn[inner])
    ok = np.isfinite(got)
    assert ok.mean() > 0.999
    assert np.abs(got[ok] - dtm[inner][ok]).max() <= 0.25 + 2e-3


def test_terrain_against_the_true_terrain(sample_run):
    from pipeline.samples.generator import terrain_height

    tin = np.load(sample_run / "artifacts" / "mesh" / "terrain" / "level_0.npz")
    lon, lat, h = _frame(sample_run).enu_to_geodetic(tin["vertices"])
    x, y, height = geodetic_to_source(pyproj.CRS("EPSG:5186+5773"), lon, lat, h, heights="orthometric",
                                      geoid=GeoidModel.from_spec("egm96"))
    err = height - terrain_height(x, y)
    # vertices are heightfield posts: LiDAR DTM (cm) or the 5 m DEM resampled to 1 m
    assert np.sqrt(np.mean(err ** 2)) < 0.1 and np.abs(err).max() < 1.0


def test_imported_model_lands_where_proj_puts_it(sample_run, truth):
    ensure_proj_data()
    from pipeline.samples.generator import tower_model

    records, pieces = _mesh(sample_run)
    r = next(r for r in records if r["id"] == "DMC-P001")
    assert r["lod"] == "imported" and r["height_source"] == "model"
    assert r["height"] == pytest.approx(320.0, abs=0.5) and len(r["levels"]) >= 3
    got = _frame(sample_run).enu_to_ecef(pieces[(r["feature_id"], 0)][0])
    x, y, z = truth["model"]["origin"]
    lon, lat, h = pyproj.Transformer.from_crs("EPSG:5186+5773", "EPSG:4979", always_xy=True).transform(
        x, y, z, errcheck=True)
    topo = pyproj.Transformer.from_pipeline(
        f"+proj=pipeline +step +inv +proj=topocentric +ellps=WGS84 +lon_0={lon} +lat_0={lat} +h_0={h}")
    v, _ = tower_model()
    t = np.radians(truth["model"]["heading_deg"])
    east = v[:, 0] * np.cos(t) + v[:, 1] * np.sin(t)
    north = -v[:, 0] * np.sin(t) + v[:, 1] * np.cos(t)
    expect = np.column_stack(topo.transform(east, north, v[:, 2], errcheck=True))
    from scipy.spatial import cKDTree

    d, _ = cKDTree(got).query(expect)
    assert d.max() < 0.005  # the config rounds the origin to millimetres


def test_footprints_outlined_from_the_lidar_match_the_true_ones(sample_run, truth, tmp_path_factory):
    work = variant_run(sample_run, tmp_path_factory.mktemp("from_points"),
                       "mesh: {footprints_from_points: always}\n  analysis: {enabled: false}",
                       "mesh..publish")
    records, pieces = _mesh(work)
    derived = [r for r in records if r["footprint_source"] == "lidar"]
    assert len(derived) >= 45
    report = json.loads((work / "reports" / "mesh.json").read_text())["buildings"]["footprints"]
    assert report["source"] == "lidar" and report["derived"] == len(derived)
    frame = _frame(work)
    xmin, ymin, xmax, ymax = truth["lidar_extent_local"]
    cover = shapely.box(xmin, ymin, xmax, ymax).buffer(-3.0)
    outlines = [shapely.Polygon(r["outline_en"]) for r in derived]
    ious = []
    for b in truth["buildings"]:
        t = _local(truth, b)
        if not cover.contains(t):
            continue
        # the truth in plan ENU: its corners through PROJ's geodetic conversion
        x0, y0 = truth["origin"]["x"], truth["origin"]["y"]
        ring = np.asarray(t.exterior.coords)
        lon, lat = pyproj.Transformer.from_crs("EPSG:5186", "EPSG:4326", always_xy=True).transform(
            ring[:, 0] + x0, ring[:, 1] + y0)
        plan = frame.geodetic_to_enu(np.asarray(lon), np.asarray(lat), np.full(len(ring), 22.7))[:, :2]
        true_en = shapely.Polygon(plan, [])
        best = max(outlines, key=lambda o: o.intersection(true_en).area)
        ious.append(best.intersection(true_en).area / best.union(true_en).area)
    assert len(ious) >= 40
    assert min(ious) >= 0.85, sorted(ious)[:5]
    assert all(r["lod"] in ("LoD2", "LoD1") for r in derived)
    assert validate_tileset(work / "bundle", gltf=False).valid


def test_merged_footprint_sources_give_each_building_once_with_both_named(sample_run, tmp_path_factory):
    """The layer and the LiDAR outlines together: every building once, matched ones naming both
    sources with their overlap, and the layer's ids and attributes kept."""
    work = variant_run(sample_run, tmp_path_factory.mktemp("merge"), "mesh: {footprints_from_points: merge}", "mesh")
    records, _ = _mesh(work)
    alone = {r["id"]: r for r in _mesh(sample_run)[0]}
    report = json.loads((work / "reports" / "mesh.json").read_text())["buildings"]["footprints"]
    merge = report["merge"]
    assert report["source"] == "input+lidar"
    assert merge["matched"] >= 40 and merge["matched"] + merge["input_only"] == 60  # the layer's footprints
    given = [r for r in records if r["footprint_source"] == "input" and r["lod"] != "imported"]
    assert {r["id"] for r in given} == {i for i in alone if alone[i]["lod"] != "imported"}
    both = [r for r in given if len(r["footprint_sources"]) == 2]
    assert len(both) == merge["matched"]
    for r in both:
        (a, b) = r["footprint_sources"]
        assert (a["source"], a["id"], a["geometry"]) == ("input", r["id"], True)
        assert b["source"] == "lidar" and b["id"].startswith("LIDAR-") and b["iou"] >= 0.5 and not b["geometry"]
        assert (r["name"], r["use"]) == (alone[r["id"]]["name"], alone[r["id"]]["use"])
    standing = [r for r in records if r["lod"] != "imported"]
    outlines = [shapely.Polygon(r["outline_en"]) for r in standing]
    tree = shapely.STRtree(outlines)
    for i, j in zip(*tree.query(outlines, predicate="intersects"), strict=True):
        if i < j:  # no building stands twice on one piece of ground
            share = outlines[i].intersection(outlines[j]).area / min(outlines[i].area, outlines[j].area)
            assert share < 0.1, (standing[i]["id"], standing[j]["id"], share)
    assert len({r["id"] for r in records}) == len(records) == len(alone) + merge["lidar_only"]
