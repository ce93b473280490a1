"""The typed contract: every artifact's writer and reader agree, empty layers included, and a run
with nothing but a DEM writes every artifact a later stage reads."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import artifacts
from pipeline.artifacts.citymodels import (CityBuilding, CityModelLayer, CitySource, read_city_models,
                                            read_source_city_models, write_city_models, write_source_city_models)
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
    from pipeline.artifacts.features import FeatureRef, read_feature_index, write_feature_index

    index = {"B1": FeatureRef("tiles/r01.glb", 3, "00ff", {"height": 12.5, "floors": 4}),
             "B2": FeatureRef("tiles/r02.glb", 0, "", {})}
    write_feature_index(tmp_path, index)
    assert read_feature_index(tmp_path) == index
    slim = read_feature_index(tmp_path, properties=False)
    assert slim == {k: FeatureRef(v.tile, v.feature_id, v.geometry) for k, v in index.items()}
    write_feature_index(tmp_path, {})
    assert read_feature_index(tmp_path, properties=False) == {}
