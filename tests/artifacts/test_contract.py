"""The typed contract: every artifact's writer and reader agree, empty layers included, and a run
with nothing but a DEM writes every artifact a later stage reads."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import artifacts
from pipeline.artifacts.buildings import BuildingLayer, BuildingRecord
from pipeline.artifacts.citymodels import (CityBuilding, CityModelLayer, CitySource, read_city_models,
                                            read_source_city_models, write_city_models, write_source_city_models)
from pipeline.artifacts.features import FeatureRef
from pipeline.artifacts.clouds import SourceCloud, cloud_store, read_source_clouds, write_source_cloud
from pipeline.artifacts.control import GcpRow, SourceGcps, read_source_gcps, write_source_gcps
from pipeline.artifacts.dem import SourceDem, read_enu_dem, read_source_dem, write_enu_dem, write_source_dem
from pipeline.artifacts.footprints import (Centroid, Footprint, FootprintLayer, Ring, SourceFootprint,
                                           SourceFootprints, read_footprints, read_source_footprints,
                                           write_footprints, write_source_footprints)
from pipeline.artifacts.models import PlacedModel, load_mesh, read_models, write_model
from pipeline.artifacts.pois import SourcePoi, SourcePois, read_source_pois, write_source_pois
from pipeline.core.cells import CellStore, CloudMeta
from pipeline.config import load_config
from pipeline.runner import Runner, stage_spec
from tests.conftest import SAMPLE


@pytest.mark.parametrize("record, write, read", [
    (SourceFootprints(), write_source_footprints, read_source_footprints),
    (SourceFootprints("a.shp", "WKT", True,
                      [SourceFootprint("B1", "이름", None, 12, 30.5, "POLYGON ((0 0, 1 0, 1 1, 0 0))")],
                      [{"feature": "B2", "reason": "empty geometry"}], []), write_source_footprints,
     read_source_footprints),
    (FootprintLayer(), write_footprints, read_footprints),
    (FootprintLayer("a.shp", "WKT", [Footprint("B1", None, "office", None, None,
                                               [[Ring([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])]],
                                               Centroid(126.9, 37.6, 19.0, [0.5, 0.3]), "lidar")]),
     write_footprints, read_footprints),
    (SourceDem(), write_source_dem, read_source_dem),
    (SourceGcps(), write_source_gcps, read_source_gcps),
    (SourceGcps("g.csv", "WKT", False, [GcpRow("P1", 1.0, 2.0, 3.0, "check", 0.1, 0.2, 0.3)]), write_source_gcps,
     read_source_gcps),
    (SourcePois(), write_source_pois, read_source_pois),
    (SourcePois("p.geojson", "WKT", False, [SourcePoi("Gate", "entrance", 1.0, 2.0)]), write_source_pois,
     read_source_pois),
])
def test_records_round_trip(tmp_path, record, write, read):
    write(tmp_path, record)
    assert read(tmp_path) == record


def test_clouds_models_and_dem_round_trip(tmp_path):
    cloud = SourceCloud("a.laz", "las", None, "local scanner frame", "local scanner frame", 1.0, "gcps", False,
                        False, 3, [0, 0, 0, 1, 1, 1], [["Amplitude", "<f4"]], {"2": 3})
    store = cloud_store(tmp_path, 0, tmp_path / "a.laz")
    write_source_cloud(store, cloud)
    [(found_store, found)] = read_source_clouds(tmp_path)
    assert found == cloud and found_store.folder == store.folder
    assert read_source_clouds(tmp_path / "nothing") == []

    meta = CloudMeta("ENU", [37.5, 126.9, 20.0], 0, 200.0, [["x", "<f8"]], None, [])
    CellStore(tmp_path / "cells").write_meta(meta)
    assert CellStore(tmp_path / "cells").meta() == meta and meta.is_empty

    model = PlacedModel("t.glb", "00_t.npz", "T1", None, None, "WKT", False, [1.0, 2.0, 3.0], 10.0, 1.0, "y", None,
                        {"faces_in": 1}, True, origin_lonlat=[126.9, 37.6], origin_ellipsoidal_height=40.0,
                        undulation=19.0)
    folder = artifacts.ENU_MODELS.locate(tmp_path)
    v, f = np.eye(3), np.array([[0, 1, 2]])
    write_model(folder, model, v, f)
    assert read_models(tmp_path) == [model]
    got_v, got_f = load_mesh(folder, model)
    assert np.array_equal(got_v, v) and np.array_equal(got_f, f)

    write_enu_dem(tmp_path, None)
    assert read_enu_dem(tmp_path) is None
    enu = np.arange(12.0).reshape(2, 2, 3)
    write_enu_dem(tmp_path, enu)
    assert np.array_equal(read_enu_dem(tmp_path), enu)


@pytest.mark.parametrize("write, read", [(write_source_city_models, read_source_city_models),
                                         (write_city_models, read_city_models)])
def test_city_models_round_trip_with_their_meshes_and_surfaces(tmp_path, write, read):
    write(tmp_path, CityModelLayer(), [])
    assert read(tmp_path) == (CityModelLayer(), [])
    layer = CityModelLayer([CitySource("m.json", "CityJSON 2.0", "WKT", False, 2, [{"feature": "X", "reason": "r"}])],
                           [CityBuilding("B1", "m.json", "LoD2", "누리꿈스퀘어", "office", 3, 1, "1144"),
                            CityBuilding("B2", "m.json", "LoD1", None, None, None, None, None, 22.7)])
    meshes = [(np.arange(12.0).reshape(4, 3), np.array([[0, 1, 2], [0, 2, 3]], np.int32), np.array([2, 255], np.uint8)),
              (np.ones((3, 3)), np.array([[0, 1, 2]], np.int32), np.array([1], np.uint8))]
    (tmp_path / "x").mkdir()
    write(tmp_path / "x", layer, meshes)
    got, got_meshes = read(tmp_path / "x")
    assert got == layer
    for a, b in zip(got_meshes, meshes, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_every_declared_artifact_is_written_even_when_its_layer_is_empty(tmp_path):
    """A DEM alone: no clouds, footprints, models, GCPs or POIs, yet every artifact that ingest
    and georef declare exists and reads back as an empty layer."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"site: {{name: dem only, origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
                   f"inputs: {{dem: {{path: {SAMPLE / 'dem.tif'}}}}}\nexecutor: {{kind: inline}}\n")
    Runner(load_config(cfg), tmp_path / "w", quiet=True).run(["ingest", "georef"])
    for name in ("ingest", "georef"):
        spec = stage_spec(name)
        folder = tmp_path / "w" / spec.output_path
        for artifact in spec.writes:
            assert artifact.locate(folder).exists(), artifact
    ingest, georef = tmp_path / "w" / "artifacts" / "ingest", tmp_path / "w" / "artifacts" / "georef"
    assert read_source_footprints(ingest).source is None and read_footprints(georef).features == []
    assert read_source_clouds(ingest) == [] and read_models(georef) == []
    assert read_source_city_models(ingest) == (CityModelLayer(), []) == read_city_models(georef)
    assert read_source_gcps(ingest).points == [] and read_source_pois(ingest).points == []
    assert read_enu_dem(georef) is not None
    assert CellStore(georef / "points").meta().is_empty


def test_json_artifacts_round_trip_dataclasses_and_read_what_earlier_versions_wrote(tmp_path):
    """dump_json writes dataclasses as they stand and NaN as null; load_json also reads the
    NaN that json.dumps wrote into artifacts before, so an older workdir resumes."""
    import json

    from pipeline.artifacts.base import dump_json, load_json

    ring = Ring([[0.0, 1.5]], [[10.0, 11.5]], [[126.9, 37.5]], [float("nan")])
    dump_json(tmp_path / "a.json", {"b": ring, "a": 1, 2: "two"})
    assert load_json(tmp_path / "a.json") == {"2": "two", "a": 1, "b": {
        "en": [[0.0, 1.5]], "src": [[10.0, 11.5]], "lonlat": [[126.9, 37.5]], "undulation": [None]}}
    (tmp_path / "old.json").write_text(json.dumps({"x": float("nan"), "y": "서울"}, ensure_ascii=False))
    old = load_json(tmp_path / "old.json")
    assert np.isnan(old["x"]) and old["y"] == "서울"


def test_the_feature_index_reads_with_or_without_properties(tmp_path):
    from pipeline.artifacts.features import read_feature_index, write_feature_index

    index = {"B1": FeatureRef("tiles/r01.glb", 3, "00ff", {"height": 12.5, "floors": 4}),
             "B2": FeatureRef("tiles/r02.glb", 0, "", {})}
    write_feature_index(tmp_path, index)
    assert read_feature_index(tmp_path) == index
    slim = read_feature_index(tmp_path, properties=False)
    assert slim == {k: FeatureRef(v.tile, v.feature_id, v.geometry) for k, v in index.items()}
    assert read_feature_index(tmp_path, properties=False, geometry=False) == {
        k: FeatureRef(v.tile, v.feature_id) for k, v in index.items()}
    write_feature_index(tmp_path, {})
    assert read_feature_index(tmp_path, properties=False) == {}


@pytest.mark.parametrize("chunk", [7, 1000, 1 << 24])
def test_the_feature_index_is_read_entry_by_entry_as_the_document_parses(tmp_path, monkeypatch, chunk):
    import json

    from pipeline.artifacts import features
    from pipeline.artifacts.features import FILE, iter_feature_index, write_feature_index

    monkeypatch.setattr(features, "CHUNK", chunk)

    # properties that nest, and text with braces, quotes, newlines and indent-like runs of spaces
    index = {f"B{i:03d}": FeatureRef(f"tiles/r{i % 3}.glb", i, f"{i:016x}",
                                     {"name": ['    "x": {', "}\n    }", f"상암 {i}"][i % 3], "floors": i,
                                      "replaces": None, "nested": {"a": [1, {"b": "    }"}]}})
             for i in range(12)}
    write_feature_index(tmp_path, index)
    document = json.loads((tmp_path / FILE).read_text())["buildings"]
    assert list(iter_feature_index(tmp_path)) == list(document.items())
    # laid out otherwise (another tool's writer), the index is parsed whole
    (tmp_path / FILE).write_text(json.dumps({"buildings": document}))
    assert list(iter_feature_index(tmp_path)) == list(document.items())
    write_feature_index(tmp_path, {})
    assert list(iter_feature_index(tmp_path)) == []


@pytest.mark.parametrize("index", [{}, {"B2": FeatureRef("tiles/r1.glb", 0),
                                        "B1": FeatureRef("tiles/r0.glb", 3, "00ff", {"name": "상암\n타워", "h": 1.5})}])
def test_the_feature_index_written_entry_by_entry_is_the_document_dump_json_writes(tmp_path, index):
    from pipeline.artifacts.base import dump_json
    from pipeline.artifacts.features import FILE, write_feature_index

    write_feature_index(tmp_path / "a", iter(sorted(index.items())))
    dump_json(tmp_path / "b" / FILE, {"buildings": index})
    assert (tmp_path / "a" / FILE).read_bytes() == (tmp_path / "b" / FILE).read_bytes()
    with pytest.raises(ValueError, match="out of id order"):
        write_feature_index(tmp_path / "c", iter([("B2", FeatureRef("t", 0)), ("B1", FeatureRef("t", 1))]))


def _record(ident: str) -> BuildingRecord:
    return BuildingRecord(ident, None, "office", 3, 10.0, 5.0, 15.0, None, None, "attribute", "LoD1", None, None,
                          None, 0, 1.0, "input", [0.0] * 6, Centroid(126.9, 37.6, 19.0, [0.5, 0.3]),
                          [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])


def _solid(shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A unit tetrahedron moved up ``shift`` metres: a flat base, a roof face and two walls."""
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float64) + [0, 0, shift]
    return v, np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)


def test_the_building_writer_keeps_the_buildings_close_names_in_their_order(tmp_path):
    """Buildings spooled in one order (one of them dropped, as an imported model's replacement
    drops a footprint's solid, and one record changed) read back under the feature IDs of the
    order close is given, copied a few rows at a time; the spool leaves nothing behind."""
    from dataclasses import replace

    from pipeline.artifacts.buildings import (BuildingMeshes, BuildingWriter, building_count, iter_buildings,
                                              read_buildings)
    from pipeline.core.surfaces import ROOF, UNLABELLED, complete_kinds

    a0, a1, b0, c0 = _solid(0.0), _solid(10.0), _solid(20.0), _solid(30.0)
    seen = []
    with BuildingWriter(tmp_path) as out:
        out.CHUNK = 3
        ha = out.add(_record("A"), [(*a0, 0.0), (*a1, 0.25)])
        out.add(_record("B"), [(*b0, 0.0)])
        hc = out.add(_record("C"), [(*c0, 0.0)], np.array([ROOF, UNLABELLED, UNLABELLED, ROOF], np.uint8))
        assert out.record(ha) == _record("A")
        out.change(ha, replace(out.record(ha), name="에이"))
        assert out.close([hc, ha], [{"feature": "B", "reason": "r"}], 2, {"x": 1}, seen=seen.append) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buildings.json", "buildings.jsonl", "buildings.npz"]
    layer = read_buildings(tmp_path)
    assert seen == layer.buildings
    assert [(r.id, r.name, r.feature_id) for r in layer.buildings] == [("C", None, 0), ("A", "에이", 1)]
    assert [(lv.level, lv.faces, lv.error_m) for lv in layer.buildings[1].levels] == [(0, 4, 0.0), (1, 4, 0.25)]
    assert (layer.skipped, layer.slivers_dropped, layer.footprints) == ([{"feature": "B", "reason": "r"}], 2, {"x": 1})
    assert [r.centroid for r in layer.buildings] == [_record("C").centroid] * 2
    assert list(iter_buildings(tmp_path)) == layer.buildings and building_count(tmp_path) == 2
    assert [(r.id, r.outline_en, r.height) for r in read_buildings(tmp_path, outlines=False).buildings] == [
        ("C", [], 10.0), ("A", [], 10.0)]
    meshes = BuildingMeshes(tmp_path)
    assert len(meshes) == 3
    for (b, k), (v, f) in {(0, 0): c0, (1, 0): a0, (1, 1): a1}.items():
        got_v, got_f = meshes.get(b, k)
        assert np.array_equal(got_v, v) and np.array_equal(got_f, f)
    assert meshes.surface(0, 0).tolist() == [ROOF, *complete_kinds(*c0, None)[1:3].tolist(), ROOF]
    assert np.array_equal(meshes.surface(1, 1), complete_kinds(*a1, None))
    with pytest.raises(KeyError):
        meshes.get(1, 2)


def test_a_building_table_holds_the_columns_and_feature_properties_of_the_records(tmp_path):
    from dataclasses import replace

    from pipeline.artifacts.buildings import BuildingWriter, read_buildings, scan_buildings

    # values of every kind a property takes: text, None, integers, floats and flags
    kinds = [dict(name="상암 \"A\"", floors=1, proposed=True, replaces="B"), dict(floors=None, use=None),
             dict(floors=3, roof_type="gable", approval_date="2020-01-02", floors_below=0)]
    with BuildingWriter(tmp_path) as out:
        handles = [out.add(replace(_record(ident), height=h, ground_height=h / 3, roof_height=h + 0.1,
                                   bbox_enu=[h, -h, 0.0, h + 1, 1 - h, h],
                                   centroid=Centroid(126.9, 37.6, 19.0, [h, 2 * h]), **kind),
                           [(*_solid(0.0), 0.0)] + [(*_solid(1.0), 0.5 * k) for k in range(1, levels)])
                   for ident, h, levels, kind in zip("ABC", (10.0, 20.5, 7.25), (1, 3, 2), kinds, strict=True)]
        out.close(handles, [], 0, {})
    table = scan_buildings(tmp_path)
    records = read_buildings(tmp_path, outlines=False).buildings
    assert len(table) == 3 and table.ids == ["A", "B", "C"]
    assert table.height.tolist() == [r.height for r in records]
    assert table.centroid_en.tolist() == [r.centroid.en for r in records]
    boxes = np.array([r.bbox_enu for r in records])
    assert table.box.tolist() == [*boxes[:, :3].min(axis=0), *boxes[:, 3:].max(axis=0)] == [7.25, -20.5, 0.0,
                                                                                           21.5, 1 - 7.25, 20.5]
    assert [table.errors(b) for b in range(3)] == [[lv.error_m for lv in r.levels] for r in records]
    assert table.level_faces[table.level_start[:-1]].tolist() == [r.levels[0].faces for r in records]
    for b, r in enumerate(records):
        got, want = table.properties(b), r.feature_properties()
        assert list(got.items()) == list(want.items())
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
    with BuildingWriter(tmp_path / "none") as out:
        out.close([], [], 0, {})
    empty = scan_buildings(tmp_path / "none")
    assert len(empty) == 0 and empty.level_start.tolist() == [0] and not np.isfinite(empty.box).any()


def test_footprints_are_looked_up_by_id_and_read_a_few_at_a_time(tmp_path):
    from pipeline.artifacts.footprints import lookup_footprints

    feats = [Footprint(ident, None, None, None, None, [[Ring([[k, 0.0], [k + 1.0, 0.0], [k, 1.0]])]],
                       Centroid(126.9, 37.6, 19.0, [k, 0.3]))
             for k, ident in enumerate(["Z", "A", "M", '상암 "7"', "a\\b", "탑"])]
    write_footprints(tmp_path, FootprintLayer("a.shp", "WKT", feats))
    lookup = lookup_footprints(tmp_path)
    plan = {f.id: f for f in read_footprints(tmp_path, plan_only=True).features}
    assert list(lookup.rows) == list(plan)
    assert lookup.load(["M", "nowhere", "Z"]) == {"M": plan["M"], "Z": plan["Z"]}
    assert lookup.load(['상암 "7"', "a\\b", "탑"]) == {k: plan[k] for k in ('상암 "7"', "a\\b", "탑")}
    assert lookup.load([]) == {}


def test_the_building_writer_leaves_nothing_when_the_stage_fails_or_has_no_buildings(tmp_path):
    from pipeline.artifacts.buildings import BuildingMeshes, BuildingWriter, read_buildings

    with pytest.raises(RuntimeError), BuildingWriter(tmp_path / "a") as out:
        out.add(_record("A"), [(*_solid(0.0), 0.0)])
        raise RuntimeError("the stage failed")
    assert list((tmp_path / "a").iterdir()) == []
    with BuildingWriter(tmp_path / "b") as out:
        out.close([], [], 0, {})
    assert read_buildings(tmp_path / "b") == BuildingLayer()
    meshes = BuildingMeshes(tmp_path / "b")
    assert len(meshes) == 0
    with pytest.raises(KeyError):
        meshes.get(0, 0)


def test_a_layer_of_records_is_read_one_line_at_a_time(tmp_path):
    from pipeline.artifacts.base import dump_records, iter_records, load_header

    path = tmp_path / "layer.jsonl"
    assert dump_records(path, {"source": "서울.shp"}, ({"id": str(i), "x": [i, 0.5]} for i in range(3))) == 3
    assert path.read_text(encoding="utf-8").count("\n") == 4
    assert load_header(path) == {"source": "서울.shp"}
    assert list(iter_records(path)) == [{"id": str(i), "x": [i, 0.5]} for i in range(3)]


def test_footprints_read_in_plan_only_and_their_first_source_vertex(tmp_path):
    from pipeline.artifacts.footprints import first_source_vertex

    lidar = Footprint("L1", None, None, None, None, [[Ring([[5.0, 5.0], [6.0, 5.0], [6.0, 6.0]])]],
                      Centroid(126.9, 37.6, 19.0, [5.5, 5.3]), "lidar")
    given = Footprint("B1", None, "office", 3, None,
                      [[Ring([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], [[200.0, 500.0], [201.0, 500.0], [201.0, 501.0]],
                             [[126.9, 37.6]] * 3, [19.0] * 3)]], Centroid(126.9, 37.6, 19.0, [0.5, 0.3]))
    write_footprints(tmp_path, FootprintLayer("a.shp", "WKT", [lidar, given]))
    plan = read_footprints(tmp_path, plan_only=True).features
    assert [f.parts[0][0] for f in plan] == [Ring(lidar.parts[0][0].en), Ring(given.parts[0][0].en)]
    assert read_footprints(tmp_path).features == [lidar, given]
    assert read_footprints(tmp_path, features=False) == FootprintLayer("a.shp", "WKT")
    assert first_source_vertex(tmp_path) == (200.0, 500.0)
    write_footprints(tmp_path, FootprintLayer("a.shp", "WKT", [lidar]))
    assert first_source_vertex(tmp_path) is None


def test_a_footprint_table_scanned_from_the_file_reads_each_footprint_back_by_its_line(tmp_path):
    from pipeline.artifacts.footprints import FootprintLines, FootprintTable, scan_footprints

    def square(ident: str, e: float, n: float, source: str = "input") -> Footprint:
        ring = [[e, n], [e + 10.0, n], [e + 10.0, n + 4.0], [e, n + 4.0]]
        hole = [[e + 1.0, n + 1.0], [e + 2.0, n + 1.0], [e + 2.0, n + 2.0]]
        return Footprint(ident, "상암 " + ident, None, 2, None, [[Ring(ring, ring, ring, [19.0] * 4), Ring(hole)],
                                                                [Ring([[e - 5.0, n + 9.0], [e - 4.0, n + 9.0],
                                                                       [e - 4.0, n + 10.0]])]],
                         Centroid(126.9, 37.6, 19.0, [e + 5.0, n + 2.0]), source)

    feats = [square("A", 0.0, 0.0), square("B", -300.0, 20.5, "lidar"), square("C", 1e5, -2e4)]
    write_footprints(tmp_path, FootprintLayer("a.shp", "WKT", feats))
    table = scan_footprints(tmp_path)
    plan = read_footprints(tmp_path, plan_only=True).features
    assert len(table) == 3
    assert table.centroid_en.tolist() == [[5.0, 2.0], [-295.0, 22.5], [100005.0, -19998.0]]
    # the box takes in every part and hole: the second part reaches 5 m west and 10 m north
    assert table.bounds.tolist()[1] == [-305.0, 20.5, -290.0, 30.5]
    assert table.from_input.tolist() == [True, False, True]
    got = table.take(np.array([2, 0]))
    assert isinstance(got, FootprintLines) and got.load() == [plan[2], plan[0]]
    in_memory = FootprintTable.of(plan)
    for name in ("centroid_en", "bounds", "from_input"):
        assert np.array_equal(getattr(in_memory, name), getattr(table, name))
    assert in_memory.take(np.array([1])) == [plan[1]] == table.load(np.array([1]))
    write_footprints(tmp_path, FootprintLayer(None, None, []))
    empty = scan_footprints(tmp_path)
    assert len(empty) == 0 and empty.bounds.shape == (0, 4) and empty.spans.shape == (0, 2)


def test_the_enu_dem_written_band_by_band_is_the_file_numpy_saves(tmp_path):
    from pipeline.artifacts.dem import write_enu_dem_bands

    enu = np.random.default_rng(3).normal(size=(7, 5, 3))
    enu[2, 3] = np.nan
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    write_enu_dem(tmp_path / "a", enu)
    write_enu_dem_bands(tmp_path / "b", 7, 5, (enu[r:r + 3] for r in range(0, 7, 3)))
    name = artifacts.ENU_DEM.path
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert np.array_equal(read_enu_dem(tmp_path / "b"), enu, equal_nan=True)
    with pytest.raises(ValueError, match="6 rows written of a DEM of 7"):
        write_enu_dem_bands(tmp_path / "b", 7, 5, [enu[:6]])


def test_building_meshes_read_pieces_from_a_stored_archive_only(tmp_path):
    from pipeline.artifacts.buildings import MESHES, BuildingMeshes, BuildingWriter

    with BuildingWriter(tmp_path) as out:
        out.close([out.add(_record("A"), [(*_solid(2.0), 0.0)])], [], 0, {})
    v, f = BuildingMeshes(tmp_path).get(0, 0)
    assert np.array_equal(v, _solid(2.0)[0]) and not v.flags.writeable
    with np.load(tmp_path / MESHES) as d:
        arrays = dict(d)
    np.savez_compressed(tmp_path / MESHES, **arrays)
    with pytest.raises(ValueError, match="vertices.npy is compressed"):
        BuildingMeshes(tmp_path)
