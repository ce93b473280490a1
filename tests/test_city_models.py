"""The data Seoul's twin is built from, together: a national building layer (CP949 shapefile in
EPSG:5179, the road-name address layout), a building register export (CP949), a CityJSON and a
CityGML model of part of the district (EPSG:5186) and a classified LiDAR cloud. The published
twin holds each building once, with its Korean name, its height and where that came from, and
the national id the hub joins on; the city models' buildings are tiled as modelled (vertices
where PROJ puts the source coordinates, roof/wall/ground surfaces kept)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio.raw
import pyproj
import pytest
import shapely
from scipy.spatial import cKDTree

from pipeline.artifacts.features import read_feature_index
from pipeline.core.geodesy import ensure_proj_data
from pipeline.core.gltf import gltf_positions, read_glb, read_primitive
from pipeline.core.surfaces import GROUND, ROOF, WALL
from pipeline.samples.generator import origin_xy
from tests.conftest import building_docs, run_cli, validate_gltf
from tests.fixtures_citymodel import block, courtyard, gable, write_citygml, write_cityjson
from tests.fixtures_las import write_las

pytestmark = pytest.mark.slow

GROUND_H = 15.0  # orthometric, the DEM's and the LiDAR ground's
ID = {k: f"1144010100100010{n:04d}000000{n}" for n, k in enumerate("ABCDE", start=1)}
NAME = {"A": "누리꿈스퀘어", "B": "상암 MBC", "C": "월드컵 오피스", "D": "디지털 빌딩", "E": "상암 아파트"}


def _footprints(x0: float, y0: float) -> dict[str, shapely.Polygon]:
    """Plan outlines (EPSG:5186) of the national layer's buildings A..E."""
    return {"A": shapely.box(x0 - 61, y0 - 59, x0 - 36.5, y0 - 34.5),   # the courtyard block B1, shifted 1 m
            "B": shapely.box(x0 + 20, y0 - 60, x0 + 30, y0 - 54),       # a corner of the gable B2 (IoU 0.3)
            "C": shapely.box(x0 - 10, y0 + 10, x0 + 6, y0 + 26),        # LiDAR only
            "D": shapely.box(x0 + 60, y0 + 60, x0 + 80, y0 + 80),       # overlapped by the CityGML's G2
            "E": shapely.box(x0 + 100, y0 - 100, x0 + 115, y0 - 85)}    # register floors only


def _models(x0: float, y0: float) -> tuple[list, list]:
    json_buildings = [courtyard("B1", x0 - 60, y0 - 60, GROUND_H),
                      gable("B2", x0 + 20, y0 - 60, GROUND_H, attributes={"BD_MGT_SN": ID["B"]}),
                      courtyard("B3", x0 + 60, y0 - 20, GROUND_H, size=30, hole=10, height=20,
                                attributes={"name": "DMC 타워", "function": "office", "storeysAboveGround": 6})]
    gml_buildings = [block("G1", x0 - 60, y0 + 60, GROUND_H, attributes={"name": "상암 블록", "function": "14000"}),
                     block("G2", x0 + 70, y0 + 70, GROUND_H, size=20)]
    return json_buildings, gml_buildings


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("city")
    x0, y0 = origin_xy()
    outlines = _footprints(x0, y0)
    to_5179 = pyproj.Transformer.from_crs("EPSG:5186", "EPSG:5179", always_xy=True)
    shp = tmp / "TL_SPBD_BULD.shp"
    geoms = [shapely.transform(outlines[k], lambda xy: np.column_stack(to_5179.transform(xy[:, 0], xy[:, 1])))
             for k in "ABCDE"]
    pyogrio.raw.write(shp, shapely.to_wkb(np.array(geoms, dtype=object)),
                      [np.array([ID[k] for k in "ABCDE"], dtype=object),
                       np.array([NAME[k] for k in "ABCDE"], dtype=object),
                       np.array(["14000", "24000", "14000", "14000", "02001"], dtype=object),
                       np.array([9, 3, 5, 4, 0]), np.array([2, 0, 1, 0, 0])],
                      ["BD_MGT_SN", "BULD_NM", "BDTYP_CD", "GRO_FLO_CO", "UND_FLO_CO"],
                      crs="EPSG:5179", geometry_type="Polygon", encoding="cp949", driver="ESRI Shapefile")
    register = tmp / "register.csv"
    register.write_bytes(("mgmBldrgstPk,bldNm,heit,grndFlrCnt,ugrndFlrCnt,mainPurpsCd,useAprDay\n"
                          f"{ID['A']},누리꿈스퀘어,0,9,2,14000,20090520\n"
                          f"{ID['E']},상암 아파트,0,6,1,02001,20100301\n").encode("cp949"))
    json_buildings, gml_buildings = _models(x0, y0)
    cityjson = write_cityjson(tmp / "dmc.city.json", json_buildings)
    citygml = write_citygml(tmp / "dmc.gml", gml_buildings)
    # a classified cloud: ground (2) on a 1 m grid, and C's flat roof 18 m up (building, 6)
    e, n = np.meshgrid(np.arange(-150, 150, 1.0), np.arange(-150, 150, 1.0))
    ground = np.column_stack([e.ravel() + x0, n.ravel() + y0, np.full(e.size, GROUND_H)])
    c = outlines["C"]
    ground = ground[~shapely.contains_xy(c, ground[:, 0], ground[:, 1])]
    re, rn = np.meshgrid(np.arange(c.bounds[0] + 0.25, c.bounds[2], 0.5),
                         np.arange(c.bounds[1] + 0.25, c.bounds[3], 0.5))
    roof = np.column_stack([re.ravel(), rn.ravel(), np.full(re.size, GROUND_H + 18.0)])
    las = write_las(tmp / "cloud.las", np.vstack([ground, roof]), crs="EPSG:5186+5773",
                    classification=np.r_[np.full(len(ground), 2), np.full(len(roof), 6)].astype(np.uint8))
    dem = tmp / "dem.tif"
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(dem, "w", driver="GTiff", width=80, height=80, count=1, dtype="float32", crs="EPSG:5186",
                       transform=from_origin(x0 - 200, y0 + 200, 5, 5), nodata=-9999.0) as dst:
        dst.write(np.full((80, 80), GROUND_H, np.float32), 1)
    cfg = tmp / "city.yaml"
    cfg.write_text(f"""site: {{name: city models, origin: {{lat: 37.5770, lon: 126.8898}}}}
inputs:
  pointclouds: [{{path: {las}}}]
  footprints: {{path: {shp}, layout: kr-road-address}}
  building_register: {{path: {register}, key: mgmBldrgstPk}}
  dem: {{path: {dem}}}
  city_models:
    - {{path: {cityjson}, join: BD_MGT_SN}}
    - {{path: {citygml}}}
stages:
  clean: {{enabled: false}}
  analysis: {{enabled: false}}
  publish: {{viewer: {{enabled: false}}, elevation: {{enabled: false}}}}
""", encoding="utf-8")
    work = tmp / "w"
    proc = run_cli("run", str(cfg), "--workdir", str(work), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {b["id"]: b for b in building_docs(work)}
    return work, proc.stderr, records, json_buildings + gml_buildings


def test_each_building_is_there_once_with_its_name_height_source_and_national_id(city):
    work, stderr, records, _ = city
    # B1 is A and B2 is B (by id); D gives way to the CityGML's G2 that overlaps it
    assert sorted(records) == sorted([ID["A"], ID["B"], ID["C"], ID["E"], "B3", "G1", "G2"])
    assert "city model building G2 overlaps footprint(s) " + ID["D"] in stderr
    assert "UserWarning" not in stderr  # the national layout's fields stay a model when the config is copied
    a, b = records[ID["A"]], records[ID["B"]]
    assert (a["name"], a["lod"], a["height_source"], a["footprint_source"]) == ("누리꿈스퀘어", "LoD2", "city model",
                                                                             "city model")
    assert a["height"] == pytest.approx(12.0, abs=0.01) and a["ground_height"] == pytest.approx(GROUND_H, abs=0.01)
    assert a["approval_date"] == "2009-05-20" and a["floors"] == 9 and a["floors_below"] == 2
    sources = {s["source"]: s for s in a["footprint_sources"]}
    assert sources["input"]["id"] == ID["A"] and sources["input"]["geometry"] is False
    assert sources["city model"] | {"iou": None} == {"source": "city model", "id": "B1", "file": "dmc.city.json",
                                                     "geometry": True, "iou": None}
    x0, y0 = origin_xy()
    b1 = shapely.box(x0 - 60, y0 - 60, x0 - 36, y0 - 36) - shapely.box(x0 - 52, y0 - 52, x0 - 44, y0 - 44)
    fp = _footprints(x0, y0)["A"]
    assert sources["city model"]["iou"] == pytest.approx((b1 & fp).area / (b1 | fp).area, abs=0.005)
    assert (b["name"], b["height_source"]) == ("상암 MBC", "city model")
    assert {s["source"]: s["id"] for s in b["footprint_sources"]} == {"input": ID["B"], "city model": "B2"}
    assert b["height"] == pytest.approx(12.0, abs=0.01)  # the gable's ridge
    assert (records[ID["C"]]["height_source"], records[ID["C"]]["name"]) == ("lidar", "월드컵 오피스")
    assert records[ID["C"]]["height"] == pytest.approx(18.0, abs=0.1)
    assert (records[ID["E"]]["height_source"], records[ID["E"]]["height"]) == ("register floors", 6 * 3.5)
    assert (records["B3"]["name"], records["B3"]["use"], records["B3"]["floors"]) == ("DMC 타워", "office", 6)
    assert (records["G1"]["name"], records["G1"]["use"], records["G1"]["lod"]) == ("상암 블록", "office", "LoD1")
    g2 = {(s["source"], s["id"]): s["geometry"] for s in records["G2"]["footprint_sources"]}
    assert g2 == {("city model", "G2"): True, ("input", ID["D"]): False}
    report = json.loads((work / "reports" / "mesh.json").read_text(encoding="utf-8"))
    merge = report["buildings"]["footprints"]["city_models"]
    assert (merge["matched"], merge["matched_by_id"], merge["model_only"]) == (2, 1, 2)
    assert merge["conflicts"] == [{"city_model": "G2", "overlaps": [ID["D"]]}]
    # the anchors and the tiles' metadata carry the same names and ids
    anchors = json.loads((work / "bundle" / "anchors" / "anchors.json").read_text(encoding="utf-8"))["anchors"]
    named = {a["feature"]["building_id"]: a["name"] for a in anchors if a["kind"] == "building"}
    assert named[ID["A"]] == "누리꿈스퀘어" and named["G1"] == "상암 블록"
    index = read_feature_index(work / "artifacts" / "tile")
    assert index[ID["A"]].properties["height_source"] == "city model"
    assert index[ID["A"]].properties["name"] == "누리꿈스퀘어"


def _feature(work: Path, ident: str) -> tuple[np.ndarray, np.ndarray]:
    """(ECEF vertices of the building's triangles (T, 3, 3), their surface kinds (T,)) in its leaf tile."""
    ref = read_feature_index(work / "artifacts" / "tile")[ident]
    tileset = json.loads((work / "bundle" / "buildings" / "tileset.json").read_text())
    to_ecef = np.array(tileset["root"]["transform"]).reshape(4, 4).T
    doc, binary = read_glb((work / "bundle" / "buildings" / ref.tile).read_bytes())
    prim = doc["meshes"][0]["primitives"][0]
    data = read_primitive(doc, binary, prim)
    tri = np.asarray(data["indices"]).reshape(-1, 3)
    mine = np.asarray(data["_FEATURE_ID_0"]).astype(int)[tri[:, 0]] == ref.feature_id
    enu = gltf_positions(doc, binary)
    ecef = enu @ to_ecef[:3, :3].T + to_ecef[:3, 3]
    return ecef[tri[mine]], np.asarray(data["_SURFACE"]).astype(int)[tri[mine, 0]]


def test_city_model_vertices_are_where_proj_puts_the_source_coordinates(city):
    """Every tile vertex of a city model building lies within 1 cm of PROJ's ECEF of a source
    vertex (EPSG:5186 + EGM96 heights -> EPSG:4978, one PROJ pipeline), and back."""
    work, _, _, buildings = city
    ensure_proj_data()
    to_ecef = pyproj.Transformer.from_crs("EPSG:5186+5773", "EPSG:4978", always_xy=True)
    tile_id = {"B1": ID["A"], "B2": ID["B"]}
    for b in buildings:
        src = np.unique(np.concatenate([r for _, rings in b.polygons for r in rings]), axis=0)
        ref = np.column_stack(to_ecef.transform(src[:, 0], src[:, 1], src[:, 2], errcheck=True))
        got = _feature(work, tile_id.get(b.id, b.id))[0].reshape(-1, 3)
        assert cKDTree(ref).query(got)[0].max() < 0.01, b.id
        assert cKDTree(got).query(ref)[0].max() < 0.01, b.id
    # PROJ went through the geoid grid (a ballpark transformation would put the geoid at 0 m)
    x0, y0 = origin_xy()
    h = pyproj.Transformer.from_crs("EPSG:5186+5773", "EPSG:4979", always_xy=True).transform(x0, y0, 0.0)[2]
    assert 20 < h < 25


def test_roof_wall_and_ground_surfaces_reach_the_tiles(city):
    work, _, _, _ = city
    expect = {ID["A"]: {GROUND: 8, WALL: 16, ROOF: 8},     # the courtyard block: semantics of the CityJSON
              ID["B"]: {GROUND: 2, WALL: 10, ROOF: 4},     # the gable: two roof planes, two gable ends
              "G1": {GROUND: 2, WALL: 8, ROOF: 2},         # CityGML LoD1 without semantics: by normal
              ID["C"]: None}                                # reconstructed from the LiDAR: by normal
    for ident, counts in expect.items():
        tris, kinds = _feature(work, ident)
        if counts is not None:
            assert dict(zip(*np.unique(kinds, return_counts=True), strict=True)) == counts, ident
        # roof triangles face up, ground triangles down, walls sideways (ECEF up at the site)
        up = tris.mean(axis=(0, 1)) / np.linalg.norm(tris.mean(axis=(0, 1)))
        normal = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
        lean = normal @ up / np.linalg.norm(normal, axis=1)
        assert np.all(lean[kinds == ROOF] > 0.5) and np.all(lean[kinds == GROUND] < -0.99), ident
        assert np.all(np.abs(lean[kinds == WALL]) < 0.01), ident
    reports = validate_gltf(sorted((work / "bundle" / "buildings" / "tiles").glob("*.glb")))
    assert all(r["errors"] == 0 and r["warnings"] == 0 for r in reports), reports
