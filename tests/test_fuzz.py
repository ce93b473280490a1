"""Property-based fuzzing (hypothesis) of the readers and the config model: whatever bytes or
values they are given, they return a result or raise the project's one-line error (a TwinError),
never another exception, and never hang (each example has a deadline)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import load_config
from pipeline.core.pointio import iter_las_chunks, las_checked_count, read_las_crs
from pipeline.core.vector import read_features
from pipeline.errors import TwinError
from pipeline.stages.ingest import read_gcp_csv
from tests.fixtures_las import sample_points, write_las

FUZZ = settings(max_examples=120, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: config-like documents: the real sections and keys, with values of every kind
KEYS = st.sampled_from(["site", "inputs", "stages", "executor", "origin", "lat", "lon", "height", "crs", "geoid",
                        "pointclouds", "footprints", "dem", "meshes", "path", "scale", "heading_deg", "mesh",
                        "terrain_resolution", "clean", "dtm_resolution", "kind", "workers", "georef", "cell_size",
                        "tile", "compression", "radius_km", "encoding", "fields", "origin_x"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25)


@pytest.fixture(scope="module")
def las_bytes(tmp_path_factory) -> bytes:
    return write_las(tmp_path_factory.mktemp("las") / "ok.las", sample_points(300), crs="EPSG:5186+5773").read_bytes()


def _expect_result_or_twin_error(fn, *args) -> None:
    try:
        fn(*args)
    except TwinError as exc:
        assert "\n" not in str(exc)  # one line


@FUZZ
@given(doc=st.dictionaries(KEYS, VALUES, max_size=6))
def test_any_config_document_loads_or_is_one_line(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    _expect_result_or_twin_error(load_config, path)


@FUZZ
@given(data=st.binary(max_size=400))
def test_any_bytes_as_a_config_load_or_are_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(data)
    _expect_result_or_twin_error(load_config, path)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("id,xyzrolecheck\n\r\t 0123456789.-+eE가\ufeff\"")), max_size=300))
def test_any_gcp_csv_reads_or_is_one_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("gcp") / "g.csv"
    path.write_text(text, encoding="utf-8")
    _expect_result_or_twin_error(read_gcp_csv, path)


@FUZZ
@given(offset=st.integers(0, 374), value=st.binary(min_size=1, max_size=8))
def test_a_las_header_with_any_bytes_overwritten_reads_or_is_one_line(tmp_path_factory, las_bytes, offset, value):
    data = bytearray(las_bytes)
    data[offset:offset + len(value)] = value
    path = tmp_path_factory.mktemp("las") / "f.las"
    path.write_bytes(bytes(data[:len(las_bytes)]))

    def read(p: Path) -> None:
        las_checked_count(p)
        read_las_crs(p)
        for chunk in iter_las_chunks(p, 1000):
            assert np.all(np.isfinite(chunk["x"]))

    _expect_result_or_twin_error(read, path)


@FUZZ
@given(cut=st.integers(0, 20000), flip=st.integers(0, 20000))
def test_a_truncated_or_flipped_las_reads_or_is_one_line(tmp_path_factory, las_bytes, cut, flip):
    data = bytearray(las_bytes[:max(len(las_bytes) - cut, 0)])
    if data:
        data[flip % len(data)] ^= 0xFF
    path = tmp_path_factory.mktemp("las") / "t.las"
    path.write_bytes(bytes(data))
    _expect_result_or_twin_error(lambda p: [len(c) for c in iter_las_chunks(p, 1000)], path)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.builds(lambda d: yaml.safe_dump(d).encode(),
                                                        st.dictionaries(st.sampled_from(
                                                            ["type", "features", "geometry", "coordinates", "crs",
                                                             "properties"]), VALUES, max_size=4))))
def test_any_vector_file_reads_or_is_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("vec") / "v.geojson"
    path.write_bytes(data)
    _expect_result_or_twin_error(read_features, path, None, "EPSG:5186")


def test_a_header_byte_helper_is_what_the_las_layout_says():
    """The fuzz targets bytes of the header it means: point count at 247 (LAS 1.4)."""
    data = write_las(Path(__import__("tempfile").mkdtemp()) / "a.las", sample_points(10)).read_bytes()
    assert struct.unpack_from("<Q", data, 247)[0] == 10
