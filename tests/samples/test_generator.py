"""The sample generator is deterministic and the committed assets are its output."""

from __future__ import annotations

import json

import laspy
import numpy as np
import pytest
import rasterio
import shapely

from pipeline.samples.generator import LIDAR_EXTENT, generate, origin_xy, terrain_height
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("regen")
    generate(out)
    return out


@pytest.mark.slow
def test_committed_assets_are_the_generators_output(regenerated):
    for name in ("buildings.geojson", "gcps.csv", "pois.geojson", "landmark_tower.glb", "truth/truth.json"):
        assert (regenerated / name).read_bytes() == (SAMPLE / name).read_bytes(), name
    a, b = laspy.read(regenerated / "dmc_aerial.laz"), laspy.read(SAMPLE / "dmc_aerial.laz")
    assert np.array_equal(a.points.array, b.points.array)
    with rasterio.open(regenerated / "dem.tif") as x, rasterio.open(SAMPLE / "dem.tif") as y:
        assert np.array_equal(x.read(1), y.read(1))


def test_sample_is_realistic_and_located():
    las = laspy.read(SAMPLE / "dmc_aerial.laz")
    h = las.header
    assert (h.version.major, h.version.minor) == (1, 4) and h.point_format.id == 7
    assert h.parse_crs().to_epsg() is None and "Central Belt 2010" in h.parse_crs().name
    area = (LIDAR_EXTENT[2] - LIDAR_EXTENT[0]) * (LIDAR_EXTENT[3] - LIDAR_EXTENT[1])
    assert 8 <= h.point_count / area <= 12  # about 10 points per m^2
    assert np.all(las.classification == 1)  # delivered unclassified
    truth = json.loads((SAMPLE / "truth" / "truth.json").read_text())
    assert 40 <= len(truth["buildings"]) <= 80
    names = {b["name"] for b in truth["buildings"]}
    assert {"DMC Station", "Nuri Dream Square Business Tower", "Sangam World Cup Stadium"} <= names
    stadium = next(b for b in truth["buildings"] if b["name"] == "Sangam World Cup Stadium")
    assert len(shapely.from_wkt(stadium["footprint_wkt"]).interiors) == 1  # the pitch
    x0, y0 = origin_xy()
    assert 10 < float(terrain_height(x0, y0)) < 20  # flat district
    assert float(terrain_height(x0 - 430, y0 - 1060)) > 90  # Haneul Park mound
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total <= 25 * 1024 * 1024
