"""Anchors on the sample, checked against independent computations: PROJ for frames and the
geoid, trimesh (not open3d) for distances and plumb lines onto the meshes, scipy for rotations."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pyproj
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from pipeline.artifacts.anchors import read_anchors
from pipeline.core.geodesy import GeoidModel, SiteFrame, ensure_proj_data
from tests.conftest import building_docs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def doc(sample_run) -> dict:
    return json.loads((sample_run / "bundle" / "anchors" / "anchors.json").read_text())


@pytest.fixture(scope="module")
def frame(sample_run) -> SiteFrame:
    return SiteFrame.from_origin(json.loads((sample_run / "artifacts" / "georef" / "frame.json").read_text())["origin"])


def _ecef(lon, lat, h):
    ensure_proj_data()
    t = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    return np.array(t.transform(lon, lat, h, errcheck=True))


def _normal(lon, lat):
    """The ellipsoid normal in ECEF, from PROJ: the step of one metre of ellipsoidal height."""
    return _ecef(lon, lat, 1.0) - _ecef(lon, lat, 0.0)


def _enu_axes(lon, lat):
    """East, north, up (ECEF unit vectors) from PROJ by finite differences of lon and lat."""
    up = _normal(lon, lat)
    east = _ecef(lon + 1e-6, lat, 0.0) - _ecef(lon - 1e-6, lat, 0.0)
    east /= np.linalg.norm(east)
    return east, np.cross(up, east), up


def test_heights_and_ecef_agree_with_proj(doc):
    ensure_proj_data()
    geoid = pyproj.Transformer.from_crs("EPSG:4326+5773", "EPSG:4979", always_xy=True)
    back = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
    for a in doc["anchors"]:
        assert a["ellipsoidal_height"] == pytest.approx(a["orthometric_height"] + a["geoid_undulation"], abs=1e-3)
        assert a["geoid_undulation"] == pytest.approx(geoid.transform(a["longitude"], a["latitude"], 0.0)[2],
                                                      abs=2e-3)
        assert a["arkit"]["altitude"] == a["orthometric_height"] and a["arcore"]["altitude"] == a["ellipsoidal_height"]
        # ECEF -> geodetic through PROJ: back where it started within a millimetre
        lon, lat, h = back.transform(*a["cesium"]["ecef"], errcheck=True)
        de = np.radians(lon - a["longitude"]) * 6.38e6 * np.cos(np.radians(lat))
        dn = np.radians(lat - a["latitude"]) * 6.36e6
        assert np.hypot(de, dn) < 1e-3 and abs(h - a["ellipsoidal_height"]) < 1e-3
        m = np.array(a["cesium"]["enu_to_ecef"]).reshape(4, 4).T  # column-major
        assert np.allclose(m[:3, 3], a["cesium"]["ecef"], atol=1e-3)
        assert np.allclose(m[:3, 2], _normal(a["longitude"], a["latitude"]), atol=1e-7)


def _turn(a: float, b: float) -> float:
    """Angle between two azimuths (degrees)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_up_axis_is_the_ellipsoid_normal_in_every_convention(doc):
    for a in doc["anchors"]:
        lon, lat = a["longitude"], a["latitude"]
        east, north, up = _enu_axes(lon, lat)
        o = a["orientation"]
        # ENU: body z is up; body y (forward) points along the heading
        r_enu = Rotation.from_quat(o["enu_xyzw"])
        u = r_enu.apply([0, 0, 1.0])
        assert np.allclose(u[0] * east + u[1] * north + u[2] * up, up, atol=1e-6)
        f = r_enu.apply([0, 1.0, 0])
        assert _turn(np.degrees(np.arctan2(f[0], f[1])), a["heading_deg"]) < 1e-4
        # EUS (x east, y up, z south): body y is up, body -z forward
        r_eus = Rotation.from_quat(o["eus_xyzw"])
        u = r_eus.apply([0, 1.0, 0])
        assert np.allclose(u[0] * east + u[1] * up - u[2] * north, up, atol=1e-6)
        f = r_eus.apply([0, 0, -1.0])
        assert _turn(np.degrees(np.arctan2(f[0], -f[2])), a["heading_deg"]) < 1e-4
        # ECEF: body z maps straight onto the normal
        assert np.allclose(Rotation.from_quat(o["ecef_xyzw"]).apply([0, 0, 1.0]), up, atol=1e-6)
        assert a["arcore"]["eus_xyzw"] == o["eus_xyzw"] == a["arkit"]["eus_xyzw"]


def _mesh_terrain(sample_run) -> trimesh.Trimesh:
    d = np.load(sample_run / "artifacts" / "mesh" / "terrain" / "level_0.npz")
    return trimesh.Trimesh(d["vertices"], d["faces"], process=False)


def _plumb_height(mesh: trimesh.Trimesh, frame: SiteFrame, lon: float, lat: float) -> float:
    """Ellipsoidal height where the plumb line at lon/lat meets ``mesh``: trimesh's ray caster,
    the ray along PROJ's normal expressed in the site frame."""
    top = 1000.0
    start = frame.ecef_to_enu(_ecef(lon, lat, top)[None])[0]
    down = frame.rotation @ -_normal(lon, lat)
    hits, _, _ = mesh.ray.intersects_location([start], [down])
    assert len(hits), (lon, lat)
    return top - float(np.min(np.linalg.norm(hits - start, axis=1)))


def test_terrain_anchors_stand_on_the_terrain_mesh(sample_run, doc, frame):
    tin = _mesh_terrain(sample_run)
    terrain = [a for a in doc["anchors"] if a["kind"] == "terrain"]
    assert len(terrain) == 11
    enu = frame.geodetic_to_enu(np.array([a["longitude"] for a in terrain]), np.array([a["latitude"] for a in terrain]),
                                np.array([a["ellipsoidal_height"] for a in terrain]))
    _, dist, _ = trimesh.proximity.closest_point(tin, enu)
    assert dist.max() < 0.05


def test_relative_heights_agree_with_the_meshes(sample_run, doc, frame):
    """ARCore's heights above terrain and rooftop, against plumb lines cast independently."""
    from pipeline.artifacts.buildings import BuildingMeshes

    tin = _mesh_terrain(sample_run)
    meshes = BuildingMeshes(sample_run / "artifacts" / "mesh")
    buildings = {b["id"]: b for b in building_docs(sample_run)}
    rng = np.random.default_rng(3)
    picked = [a for a in doc["anchors"] if a["kind"] != "rooftop"]
    for a in [picked[i] for i in rng.choice(len(picked), 25, replace=False)]:
        ground = _plumb_height(tin, frame, a["longitude"], a["latitude"])
        assert a["arcore"]["altitude_above_terrain"] == pytest.approx(a["ellipsoidal_height"] - ground, abs=0.01)
    rooftops = [a for a in doc["anchors"] if a["kind"] == "rooftop"]
    assert len(rooftops) == 61
    for a in rooftops:
        b = buildings[a["feature"]["building_id"]]
        v, f = meshes.get(b["feature_id"], 0)
        roof = trimesh.Trimesh(v, f, process=False)
        enu = frame.geodetic_to_enu(np.array([a["longitude"]]), np.array([a["latitude"]]),
                                    np.array([a["ellipsoidal_height"]]))
        _, dist, _ = trimesh.proximity.closest_point(roof, enu)
        assert dist[0] < 0.05
        h = _plumb_height(roof, frame, a["longitude"], a["latitude"])
        assert a["arcore"]["altitude_above_rooftop"] == pytest.approx(a["ellipsoidal_height"] - h, abs=0.01)
        assert a["arcore"]["recommended"] == "rooftop"
        # the roof stands at the building's recorded roof height or below it (a gable's ridge is its top)
        assert a["orthometric_height"] <= b["roof_height"] + 0.05


def test_accuracy_names_its_parts(doc):
    by_kind: dict[str, list[dict]] = {}
    for a in doc["anchors"]:
        by_kind.setdefault(a["kind"], []).append(a)
    for a in doc["anchors"]:
        parts = {p["source"]: p for p in a["accuracy"]["parts"]}
        # the sample's heights are orthometric: N's error reaches the ellipsoidal height only
        assert parts["geoid"] == {"source": "geoid", "horizontal_m": 0.0, "vertical_m": 1.0,
                                  "applies_to": "ellipsoidal", "note": parts["geoid"]["note"]}
        known = [p["vertical_m"] for p in a["accuracy"]["parts"]]
        if None not in known:
            rss = np.sqrt(sum(v * v for v in known))
            assert a["accuracy"]["vertical_m"] == pytest.approx(rss, abs=1e-4)
            ortho = [p["vertical_m"] for p in a["accuracy"]["parts"] if p["applies_to"] != "ellipsoidal"]
            assert a["accuracy"]["vertical_orthometric_m"] == pytest.approx(np.sqrt(sum(v * v for v in ortho)),
                                                                            abs=1e-4)
        else:
            assert a["accuracy"]["complete"] is False and a["accuracy"]["vertical_m"] is None
    gcp = by_kind["gcp"][0]["accuracy"]
    assert gcp["horizontal_m"] == 0.02 and gcp["vertical_orthometric_m"] == 0.03  # the config's survey sigmas
    assert gcp["vertical_m"] == pytest.approx(np.hypot(0.03, 1.0), abs=1e-4)
    lod2 = next(a for a in by_kind["rooftop"] if a["properties"]["lod"] == "LoD2")
    assert {p["source"] for p in lod2["accuracy"]["parts"]} == {"georeferencing", "mesh", "geoid"}
    assert lod2["accuracy"]["complete"] and lod2["accuracy"]["horizontal_m"] == 0.1
    # a LoD1 roof from a height attribute has no measured error, and says so
    lod1 = next(a for a in by_kind["rooftop"] if a["properties"]["height_source"] == "attribute")
    assert not lod1["accuracy"]["complete"] and lod1["accuracy"]["vertical_m"] is None


def test_geojson_and_csv_carry_the_same_anchors(sample_run, doc):
    folder = sample_run / "bundle" / "anchors"
    gj = json.loads((folder / "anchors.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and "crs" not in gj  # RFC 7946 has no crs member
    rows = list(csv.DictReader((folder / "anchors.csv").open(encoding="utf-8")))
    assert len(gj["features"]) == len(rows) == len(doc["anchors"])
    for a, f, r in zip(doc["anchors"], gj["features"], rows, strict=True):
        assert f["id"] == r["id"] == a["id"]
        assert f["geometry"]["coordinates"] == [a["longitude"], a["latitude"], a["ellipsoidal_height"]]
        assert float(r["ecef_x"]) == a["cesium"]["ecef"][0] and float(r["latitude"]) == a["latitude"]


def test_format_1_files_are_read(tmp_path, doc):
    old = {"schema_version": "1.0", "site": doc["site"], "geoid_grid": "egm96_15.gtx",
           "anchors": [{k: a[k] for k in ("id", "kind", "name", "category", "latitude", "longitude",
                                          "ellipsoidal_height", "orthometric_height", "geoid_undulation",
                                          "heading_deg", "feature", "properties")}
                       | {"kind": "poi" if a["kind"] == "terrain" else a["kind"],
                          "orientation": {k: a["orientation"][k] for k in ("enu_xyzw", "eus_xyzw")}}
                       for a in doc["anchors"] if a["kind"] in ("building", "terrain")]}
    (tmp_path / "v1.json").write_text(json.dumps(old))
    got = read_anchors(tmp_path / "v1.json")
    assert got.format_version == "1.0" and len(got.anchors) == 72
    assert {a.kind for a in got.anchors} == {"building", "terrain"}
    assert got.by_id()["poi:001"].latitude == next(a for a in doc["anchors"] if a["id"] == "poi:001")["latitude"]


def test_the_national_geoid_reaches_the_anchors(tmp_path):
    """The same inputs through EGM96 and through a KNGeoid24-layout node list holding EGM96's own
    values: the same anchors within a millimetre, each naming the model it went through."""
    from tests.conftest import SAMPLE, run_cli
    from tests.core.test_geoid_grids import write_ngii

    egm96 = GeoidModel.from_spec("egm96")
    lats, lons = np.arange(38.5, 36.74, -0.25), np.arange(126.0, 128.01, 0.25)
    lon, lat = np.meshgrid(lons, lats)
    grid = tmp_path / "KNGeoid24.dat"
    write_ngii(grid, egm96.undulation(lon.ravel(), lat.ravel()).reshape(lon.shape), lats=lats, lons=lons)
    docs = {}
    for name, geoid in (("egm96", "egm96"), ("kngeoid", str(grid))):
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}, geoid: {geoid}}}\n"
                       f"inputs:\n  footprints: {{path: {SAMPLE / 'buildings.geojson'}}}\n"
                       f"  dem: {{path: {SAMPLE / 'dem.tif'}}}\n  pois: {{path: {SAMPLE / 'pois.geojson'}}}\n"
                       "stages: {analysis: {enabled: false}, publish: {viewer: {enabled: false}, "
                       "validate_bundle: false, elevation: {enabled: false}}}\n")
        proc = run_cli("run", str(cfg), "--workdir", str(tmp_path / name), "--quiet",
                       env={**os.environ, "DMCTWIN_CACHE": str(tmp_path / "cache")})
        assert proc.returncode == 0, proc.stderr[-2000:]
        docs[name] = json.loads((tmp_path / name / "bundle" / "anchors" / "anchors.json").read_text())
    kn = docs["kngeoid"]
    assert kn["geoid"]["name"] == "KNGeoid24" and kn["geoid"]["accuracy_m"] == 0.023
    assert kn["geoid_grid"] == "KNGeoid24.dat"
    georef = json.loads((tmp_path / "kngeoid" / "reports" / "georef.json").read_text())
    assert georef["geoid"]["label"] == "KNGeoid24 (2024), 1 sigma 0.023 m"
    assert len(kn["anchors"]) == len(docs["egm96"]["anchors"]) > 100
    for a, b in zip(kn["anchors"], docs["egm96"]["anchors"], strict=True):
        assert a["id"] == b["id"] and a["arkit"]["geoid"].startswith("KNGeoid24")
        for key in ("ellipsoidal_height", "orthometric_height", "geoid_undulation"):
            assert a[key] == pytest.approx(b[key], abs=1e-3)
        geoid = next(p for p in a["accuracy"]["parts"] if p["source"] == "geoid")
        assert geoid["vertical_m"] == 0.023


def test_entrances_named_in_the_poi_layer_carry_their_buildings_anchors(tmp_path):
    """Two entrances of one building, one of a building the twin lacks, one plain POI: the
    building's anchors stand on the terrain at its entrances, the rest stays as it was."""
    from tests.conftest import SAMPLE, run_cli

    ring = json.loads((SAMPLE / "buildings.geojson").read_text())["features"][0]["geometry"]["coordinates"][0]
    (a, b, c) = (np.array(p) for p in ring[:3])
    doors = [(a + b) / 2, (b + c) / 2]  # the middles of the first two walls (EPSG:5186)
    feats = [{"type": "Feature", "properties": {"name": f"Door {k + 1}", "kind": "entrance", "bldg": "DMC-L001"},
              "geometry": {"type": "Point", "coordinates": list(d)}} for k, d in enumerate(doors)]
    feats += [{"type": "Feature", "properties": {"name": "Lost door", "kind": "entrance", "bldg": "NOPE"},
               "geometry": {"type": "Point", "coordinates": [190300.0, 553400.0]}},
              {"type": "Feature", "properties": {"name": "Kiosk", "kind": "shop", "bldg": None},
               "geometry": {"type": "Point", "coordinates": [190250.0, 553350.0]}}]
    pois = tmp_path / "pois.geojson"
    pois.write_text(json.dumps({"type": "FeatureCollection", "features": feats,
                                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::5186"}}}))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
                   f"inputs:\n  footprints: {{path: {SAMPLE / 'buildings.geojson'}}}\n"
                   f"  dem: {{path: {SAMPLE / 'dem.tif'}}}\n  pois: {{path: {pois}, entrance_of: bldg}}\n"
                   "stages: {analysis: {enabled: false}, publish: {viewer: {enabled: false}, validate_bundle: false,"
                   " elevation: {enabled: false}}}\n")
    work = tmp_path / "w"
    proc = run_cli("run", str(cfg), "--workdir", str(work), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "POI 'Lost door': the entrance of building 'NOPE', which the twin does not have" in proc.stderr
    anchors = {x["id"]: x for x in json.loads((work / "bundle" / "anchors" / "anchors.json").read_text())["anchors"]}
    frame = SiteFrame.from_origin(json.loads((work / "artifacts" / "georef" / "frame.json").read_text())["origin"])
    tin = _mesh_terrain(work)
    to_wgs84 = pyproj.Transformer.from_crs("EPSG:5186", "EPSG:4326", always_xy=True)
    for anchor_id, door, name in (("building:DMC-L001", doors[0], "Door 1"),
                                  ("building:DMC-L001:entrance-2", doors[1], "Door 2")):
        x = anchors[anchor_id]
        lon, lat = to_wgs84.transform(*door)
        assert (x["longitude"], x["latitude"]) == (pytest.approx(lon, abs=1e-9), pytest.approx(lat, abs=1e-9))
        assert x["properties"]["placed_at"] == "entrance" and x["properties"]["entrance"] == name
        assert x["feature"]["building_id"] == "DMC-L001"
        assert x["ellipsoidal_height"] == pytest.approx(_plumb_height(tin, frame, lon, lat), abs=0.05)
        assert x["arcore"]["altitude_above_terrain"] == pytest.approx(0.0, abs=1e-3)
    others = [x for x in anchors.values() if x["kind"] == "building" and x["feature"]["building_id"] != "DMC-L001"]
    assert len(others) > 50 and {x["properties"]["placed_at"] for x in others} == {"visual centre"}
    terrain = sorted(x["name"] for x in anchors.values() if x["kind"] == "terrain")
    assert terrain == ["Kiosk", "Lost door"]
    assert {x["id"] for x in anchors.values() if x["kind"] == "terrain"} == {"poi:003", "poi:004"}


def test_an_entrance_attribute_the_layer_lacks_is_named(tmp_path):
    from tests.conftest import SAMPLE, run_cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"inputs:\n  dem: {{path: {SAMPLE / 'dem.tif'}}}\n"
                   f"  pois: {{path: {SAMPLE / 'pois.geojson'}, entrance_of: building_no}}\n")
    proc = run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--stages", "ingest", "--quiet")
    assert proc.returncode == 2
    assert "inputs.pois.entrance_of: the layer has no attribute 'building_no' (it has kind, name)" in proc.stderr
    assert "pois.geojson" in proc.stderr
