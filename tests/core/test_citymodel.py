"""City model readers: CityJSON and CityGML buildings as triangles with their surface kinds."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import shapely
import trimesh

from pipeline.core.citymodel import read_city_model, triangulate_polygon
from pipeline.core.surfaces import GROUND, ROOF, UNLABELLED, WALL
from pipeline.errors import FeatureSkippedWarning, InputError
from tests.fixtures_citymodel import block, courtyard, gable, write_citygml, write_cityjson

X0, Y0, Z0 = 190_300.0, 553_100.0, 15.0


def _buildings():
    return [courtyard("B1", X0, Y0, Z0, attributes={"name": "누리꿈스퀘어", "function": "office",
                                                    "storeysAboveGround": 3, "BD_MGT_SN": "1144010100100010001"}),
            gable("B2", X0 + 40, Y0, Z0),
            block("B3", X0 + 70, Y0, Z0)]


@pytest.fixture(params=["cityjson", "citygml 2.0", "citygml 3.0"])
def model(request, tmp_path):
    if request.param == "cityjson":
        return read_city_model(write_cityjson(tmp_path / "m.city.json", _buildings()))
    version = request.param.split()[1]
    found = read_city_model(write_citygml(tmp_path / "m.gml", _buildings(), version=version))
    assert found.format == f"CityGML {version}"
    return found


def test_a_polygon_with_a_hole_is_triangulated_in_its_own_plane_facing_its_normal():
    outer = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    hole = np.array([[3, 3], [3, 7], [7, 7], [7, 3]], float)
    # tilted 30 degrees about x and moved far from the origin, as projected coordinates are
    tilt = np.radians(30)
    rot = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    lift = np.array([190_000.0, 550_000.0, 20.0])
    rings = [np.column_stack([r, np.zeros(len(r))]) @ rot.T + lift for r in (outer, hole)]
    v, t = triangulate_polygon(rings)
    cross = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    assert 0.5 * np.linalg.norm(cross, axis=1).sum() == pytest.approx(100 - 16, abs=1e-6)
    normal = rot @ np.array([0, 0, 1.0])
    assert np.all(cross @ normal > 0)
    # no triangle covers the hole
    centres = (v[t].mean(axis=1) - lift) @ rot
    assert not shapely.contains_xy(shapely.box(3, 3, 7, 7), centres[:, 0], centres[:, 1]).any()
    # turned the other way round, the triangles turn too
    v2, t2 = triangulate_polygon([r[::-1] for r in rings])
    assert np.all(np.cross(v2[t2[:, 1]] - v2[t2[:, 0]], v2[t2[:, 2]] - v2[t2[:, 0]]) @ normal < 0)
    # a closing point repeated (GML) changes nothing; a ring with no area gives nothing
    v3, t3 = triangulate_polygon([np.vstack([r, r[:1]]) for r in rings])
    assert len(t3) == len(t)
    assert len(triangulate_polygon([np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2.0]])])[1]) == 0


def test_buildings_are_closed_outward_solids_with_their_surfaces_and_attributes(model):
    assert [b.id for b in model.buildings] == ["B1", "B2", "B3"]
    assert [b.lod for b in model.buildings] == ["LoD2", "LoD2", "LoD1"]
    assert model.crs is not None and "5186" in model.crs
    volumes = {"B1": 24 * 24 * 12 - 8 * 8 * 12, "B2": 10 * 20 * 8 + 0.5 * 10 * 4 * 20, "B3": 15 * 15 * 20}
    for b in model.buildings:
        mesh = trimesh.Trimesh(b.vertices - b.vertices.mean(axis=0), b.faces, process=False)
        assert mesh.is_watertight and mesh.is_winding_consistent
        assert mesh.volume == pytest.approx(volumes[b.id], rel=1e-9)  # positive: normals point out
    b1, b2, b3 = model.buildings
    kinds = np.bincount(b1.surfaces, minlength=4)
    # ground and roof: a square ring each (8 triangles), walls: 8 quads outside and in the courtyard
    assert kinds[[GROUND, WALL, ROOF]].tolist() == [8, 16, 8]
    # the gable's two roof planes, the two gable ends (pentagons) and two eave walls
    assert np.bincount(b2.surfaces, minlength=4)[[GROUND, WALL, ROOF]].tolist() == [2, 10, 4]
    roof = b2.faces[b2.surfaces == ROOF]
    assert np.ptp(b2.vertices[roof][..., 2]) == pytest.approx(4.0)  # eave to ridge
    assert np.all(b3.surfaces == UNLABELLED)  # LoD1 without semantics: its normals will tell
    assert b1.attributes["name"] == "누리꿈스퀘어"
    assert str(b1.attributes["storeysAboveGround"]) == "3"
    assert b1.attributes["BD_MGT_SN"] == "1144010100100010001"
    # every vertex is a source coordinate (nothing moved by reading)
    src = np.concatenate([r for _, rings in _buildings()[1].polygons for r in rings])
    assert np.abs(b2.vertices[:, None, :] - src[None]).max(axis=2).min(axis=1).max() < 5e-4


def test_cityjson_with_a_bad_vertex_index_skips_that_building_naming_it(tmp_path):
    path = write_cityjson(tmp_path / "m.json", _buildings())
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["CityObjects"]["B2"]["geometry"][0]["boundaries"][0][0][0][0] = 10_000
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.warns(FeatureSkippedWarning, match=r"m\.json: building B2: skipped, vertex index 10000 out of range"):
        model = read_city_model(path)
    assert [b.id for b in model.buildings] == ["B1", "B3"]
    # when no building is left the whole file is unusable: one error naming it
    for name in ("B1", "B3"):
        doc["CityObjects"][name]["geometry"][0]["boundaries"][0][0][0][0] = -1
    path.write_text(json.dumps(doc), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FeatureSkippedWarning)
        with pytest.raises(InputError, match="no usable building in this CityJSON 2.0 file") as err:
            read_city_model(path)
    assert "m.json" in str(err.value)


def test_unusable_city_model_files_are_one_clear_error(tmp_path):
    empty = tmp_path / "empty.gml"
    empty.write_text('<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" '
                     'xmlns:gml="http://www.opengis.net/gml"><gml:name>nothing</gml:name></core:CityModel>')
    with pytest.raises(InputError, match=r"no buildings \(bldg:Building\) in this CityGML 2.0 file"):
        read_city_model(empty)
    broken = tmp_path / "broken.gml"
    broken.write_text("<core:CityModel><unclosed>")
    with pytest.raises(InputError, match="not a readable CityGML file"):
        read_city_model(broken)
    geojson = tmp_path / "layer.json"
    geojson.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match="not a CityJSON file"):
        read_city_model(geojson)
    obj = tmp_path / "model.obj"
    obj.write_text("v 0 0 0")
    with pytest.raises(InputError, match="cannot tell the city model format"):
        read_city_model(obj)
    with pytest.raises(InputError, match="not found"):
        read_city_model(tmp_path / "missing.json")


def test_building_parts_join_their_building_and_templates_are_named(tmp_path):
    path = write_cityjson(tmp_path / "m.json", _buildings()[:2])
    doc = json.loads(path.read_text(encoding="utf-8"))
    objs = doc["CityObjects"]
    part = objs.pop("B2")
    objs["B1"]["children"] = ["B1-part"]
    objs["B1-part"] = part | {"type": "BuildingPart", "parents": ["B1"], "attributes": {"roofType": "gable"}}
    objs["T"] = {"type": "Building", "geometry": [{"type": "GeometryInstance", "template": 0, "boundaries": [0],
                                                   "transformationMatrix": list(np.eye(4).ravel())}]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.warns(FeatureSkippedWarning, match="building T: skipped, only geometry templates"):
        model = read_city_model(path)
    (b,) = model.buildings
    assert b.id == "B1" and len(b.faces) == 32 + 16 and b.attributes["roofType"] == "gable"
    assert b.attributes["name"] == "누리꿈스퀘어"


def test_a_cityjson_sequence_is_read_feature_by_feature(tmp_path):
    path = write_cityjson(tmp_path / "m.json", _buildings())
    doc = json.loads(path.read_text(encoding="utf-8"))
    head = {k: v for k, v in doc.items() if k not in ("CityObjects", "vertices")} | {"CityObjects": {}, "vertices": []}
    lines = [json.dumps(head)]
    for oid, obj in doc["CityObjects"].items():
        lines.append(json.dumps({"type": "CityJSONFeature", "id": oid, "CityObjects": {oid: obj},
                                 "vertices": doc["vertices"]}))
    seq = tmp_path / "m.jsonl"
    seq.write_text("\n".join(lines), encoding="utf-8")
    model = read_city_model(seq)
    assert [b.id for b in model.buildings] == ["B1", "B2", "B3"]
    whole = read_city_model(path)
    for a, b in zip(model.buildings, whole.buildings, strict=True):
        assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.surfaces, b.surfaces)


def test_malformed_geometry_skips_the_building_naming_it(tmp_path):
    path = write_cityjson(tmp_path / "m.json", _buildings())
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["CityObjects"]["B1"]["geometry"][0]["boundaries"] = [[[["a", "b", "c"]]]]
    doc["CityObjects"]["B3"]["geometry"][0]["boundaries"] = 7
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.warns(FeatureSkippedWarning) as seen:
        model = read_city_model(path)
    assert [b.id for b in model.buildings] == ["B2"]
    said = " ".join(str(w.message) for w in seen)
    assert "building B1: skipped, malformed geometry" in said
    assert "building B3: skipped" in said
    gml = write_citygml(tmp_path / "m.gml", _buildings())
    text = gml.read_text(encoding="utf-8")
    gml.write_text(text.replace('srsDimension="3">190300.000', 'srsDimension="3">19O300.000', 1), encoding="utf-8")
    with pytest.warns(FeatureSkippedWarning, match=r"m\.gml: building B1: skipped, malformed geometry"):
        assert [b.id for b in read_city_model(gml).buildings] == ["B2", "B3"]
