"""publish: the DTM and DSM agree with the surfaces the anchors stand on, and the catalog dates
the data from the config, the LAS headers or, failing both, the publishing."""

from __future__ import annotations

import datetime as dt
import json

import laspy
import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

from pipeline.config import load_config
from pipeline.stages.publish import _capture_time
from tests.conftest import SAMPLE
from tests.fixtures_las import write_las


def _bilinear(src: rasterio.DatasetReader, band: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``band`` interpolated between cell centres at CRS ``x``, ``y``."""
    col, row = ~src.transform @ (x, y)
    r0, c0 = np.floor(row - 0.5).astype(int), np.floor(col - 0.5).astype(int)
    fy, fx = row - 0.5 - r0, col - 0.5 - c0
    return (band[r0, c0] * (1 - fx) * (1 - fy) + band[r0, c0 + 1] * fx * (1 - fy)
            + band[r0 + 1, c0] * (1 - fx) * fy + band[r0 + 1, c0 + 1] * fx * fy)


@pytest.mark.slow
def test_the_dtm_and_dsm_hold_the_surfaces_the_anchors_stand_on(sample_run):
    bundle = sample_run / "bundle"
    anchors = json.loads((bundle / "anchors" / "anchors.json").read_text())["anchors"]
    to_crs = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:5186", always_xy=True)
    rasters = bundle / "rasters"
    with rasterio.open(rasters / "dtm.tif") as dtm_src, rasterio.open(rasters / "dsm.tif") as dsm_src:
        dtm, dsm = dtm_src.read(1), dsm_src.read(1)
        assert dtm_src.transform == dsm_src.transform and dtm_src.res == (2.0, 2.0)
        assert np.array_equal(np.isnan(dtm), np.isnan(dsm))
        assert np.nanmin(dsm - dtm) > -1e-3  # float32 and float32 casts: the DSM never lies below
        for kind, src, band in (("terrain", dtm_src, dtm), ("rooftop", dsm_src, dsm)):
            sel = [a for a in anchors if a["kind"] == kind and not a["properties"].get("proposed")]
            x, y = to_crs.transform([a["longitude"] for a in sel], [a["latitude"] for a in sel])
            # orthometric surface heights through the anchors' own undulation
            ref = np.array([a["surfaces"][f"{kind}_ellipsoidal_height"] - a["geoid_undulation"] for a in sel])
            err = np.abs(_bilinear(src, band, np.asarray(x), np.asarray(y)) - ref)
            assert len(sel) > 10 and np.median(err) < 1e-3, (kind, np.sort(err)[-5:])
            # a ridge (gable, hip) bends between the cell centres bilinear reads; planes do not
            ridged = np.array([a["properties"].get("roof_type") in ("gable", "hip") for a in sel])
            assert err[~ridged].max() < 0.01 and err.max() < 1.0, (kind, np.sort(err)[-5:])
        with rasterio.open(SAMPLE / "dem.tif") as dem:
            on_grid = np.full(dtm.shape, np.nan, np.float32)
            reproject(dem.read(1).astype(np.float32), on_grid, src_transform=dem.transform, src_crs=dem.crs,
                      src_nodata=dem.nodata, dst_transform=dtm_src.transform, dst_crs=dtm_src.crs, dst_nodata=np.nan,
                      resampling=Resampling.bilinear)
        # the input DEM (EGM96 heights, 5 m) under the published terrain: the same ground
        diff = np.abs(dtm - on_grid)
        assert np.isfinite(diff).sum() > 100_000 and np.nanmedian(diff) < 0.1 and np.nanquantile(diff, 0.95) < 0.3


def _config(tmp_path, extra: str = "", pointcloud: str | None = None):
    p = tmp_path / "c.yaml"
    clouds = f"  pointclouds: [{{path: {pointcloud}}}]\n" if pointcloud else ""
    p.write_text(f"site: {{crs: 'EPSG:5186'}}\ninputs:\n{clouds}  dem: {{path: {SAMPLE / 'dem.tif'}}}\n"
                 f"stages:\n  publish: {{{extra}}}\n")
    return load_config(p)


def test_capture_time_comes_from_the_config_then_the_las_headers_then_the_publishing(tmp_path):
    las = write_las(tmp_path / "a.las", np.array([[190000.0, 553000.0, 20.0], [190001.0, 553001.0, 21.0]]),
                    crs="EPSG:5186")
    data = laspy.read(las)
    data.header.creation_date = dt.date(2021, 3, 4)
    data.write(las)
    start, end, source = _capture_time(_config(tmp_path, pointcloud=str(las)))
    assert (start, end) == (dt.datetime(2021, 3, 4, tzinfo=dt.UTC),) * 2 and source.startswith("LAS")
    start, end, source = _capture_time(_config(tmp_path, "datetime: '2024-06-01T09:30:00+09:00'", str(las)))
    assert start == end == dt.datetime(2024, 6, 1, 0, 30, tzinfo=dt.UTC) and source == "config"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start, end, source = _capture_time(_config(tmp_path))
    assert source == "published" and before <= start == end <= dt.datetime.now(dt.UTC)
