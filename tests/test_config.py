"""Config validation: unknown keys and wrong types name the key path and the file."""

from __future__ import annotations

import pytest

from pipeline.config import config_to_yaml, load_config
from pipeline.errors import ConfigError
from tests.conftest import SAMPLE, SAMPLE_CONFIG


def test_sample_config_is_valid_and_resolves_paths():
    cfg = load_config(SAMPLE_CONFIG)
    assert cfg.resolve(cfg.inputs.pointclouds[0].path).is_file()
    assert "chunk_size" in config_to_yaml(cfg)


@pytest.mark.parametrize("text,where", [
    ("site: {origin: {lat: north}}", "site.origin.lat"),
    ("stages: {clean: {voxel_sise: 0.1}}", "stages.clean.voxel_sise: unknown key"),
    ("inputs: {pointclouds: [{crs: EPSG:5186}]}", "inputs.pointclouds[0].path"),
    ("executor: {kind: spark}", "executor.kind"),
    ("stages: {analysis: {step_minutes: 7}}", "stages.analysis.step_minutes"),
    ("stages: {analysis: {total_window: [16, 8]}}", "stages.analysis.total_window"),
    ("stages: {analysis: {time_basis: local}}", "stages.analysis.time_basis"),
    ("stages: {analysis: {date: 2026-13-40}}", "stages.analysis.date"),
    ("stages: {tile: {profile: unity, compression: meshopt}}", "compression meshopt is not for profile unity"),
    ("stages: {tile: {profile: portable, compression: draco}}", "compression draco is not for profile portable"),
    ("stages: {tile: {profile: unity, pointcloud_meshopt: true}}", "pointcloud_meshopt is not for profile unity"),
    ("site: [1, 2", "not valid YAML"),
    ("- a list", "mapping"),
])
def test_bad_configs_name_file_and_key(tmp_path, text, where):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "bad.yaml" in str(e.value) and where in str(e.value)


def test_stage_hash_changes_only_with_relevant_config(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("stages: {clean: {voxel_size: 0.1}}")
    b = tmp_path / "b.yaml"
    b.write_text("stages: {clean: {voxel_size: 0.2}}")
    ca, cb = load_config(a), load_config(b)
    assert ca.stage_hash("clean") != cb.stage_hash("clean")
    assert ca.stage_hash("mesh") == cb.stage_hash("mesh")


def test_each_profile_has_its_default_encoding(tmp_path):
    got = {}
    for profile in ("cesium", "unity", "portable"):
        p = tmp_path / f"{profile}.yaml"
        p.write_text(f"stages: {{tile: {{profile: {profile}}}}}")
        got[profile] = load_config(p).stages.tile.mesh_compression
    assert got == {"cesium": "draco", "unity": "draco", "portable": "quantized"}


def test_a_national_layout_keeps_its_field_names_through_hashing_and_copies(tmp_path):
    """Assigning a field of a validated input (as the stage hash does to resolve paths) runs the
    layout's validator again: its fields must stay a model, with the layout's names, and no
    serializer warning."""
    import warnings

    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("inputs:\n  footprints: {path: fp.shp, layout: kr-road-address, fields: {name: NAME_KO}}\n")
    cfg = load_config(cfg_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg.stage_hash("ingest", with_inputs=True)
        copy = cfg.inputs.model_copy(deep=True)
        assert copy.footprints is not None
        copy.footprints.path = tmp_path / "other.shp"
        copy.model_dump(mode="json")
    fields = copy.footprints.fields
    assert (fields.id, fields.name, fields.floors_below) == ("BD_MGT_SN", "NAME_KO", "UND_FLO_CO")


@pytest.mark.parametrize("text,where", [
    ("stages: {clean: {cell_buffer: 250}}", "stages.clean.cell_buffer 250.0 m exceeds stages.georef.cell_size"),
    ("stages: {clean: {voxel_size: 0.3}}", "stages.clean.voxel_size 0.3 m must divide stages.georef.cell_size"),
])
def test_cell_geometry_that_cannot_work_is_refused_before_a_run(tmp_path, text, where):
    from pipeline.preflight import check_runnable

    p = tmp_path / "cells.yaml"
    p.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                 f"inputs: {{pointclouds: [{{path: {SAMPLE / 'dmc_aerial.laz'}}}]}}\n{text}\n")
    with pytest.raises(ConfigError) as e:
        check_runnable(load_config(p), p)
    assert "cells.yaml" in str(e.value) and where in str(e.value)
