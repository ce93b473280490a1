"""Writing the bundle's viewer: which CesiumJS is copied, which of its files, and the orthophoto
reprojected for it (checked against pyproj)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from pipeline.core import viewer
from pipeline.core.geodesy import SiteFrame
from pipeline.core.viewer import CESIUM_FILES, PAGE_FILES, find_cesium, write_imagery, write_viewer
from pipeline.errors import ConfigError, InputError
from tests.conftest import REPO

NPM_CESIUM = REPO / "node_modules" / "cesium"
SITE = SiteFrame(37.5770, 126.8898, 0.0)


def test_the_checkouts_cesium_is_found_with_its_version_and_licence(monkeypatch, tmp_path):
    monkeypatch.delenv(viewer.ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # not found through the working directory: through the checkout
    found = find_cesium()
    assert found.package == NPM_CESIUM.resolve()
    assert found.version == json.loads((NPM_CESIUM / "package.json").read_text())["version"]
    assert found.licence == "Apache-2.0"


def test_the_environment_and_the_config_name_another_cesium(monkeypatch, tmp_path):
    monkeypatch.setenv(viewer.ENV, str(NPM_CESIUM))
    assert find_cesium().package == NPM_CESIUM
    monkeypatch.setenv(viewer.ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=f"{viewer.ENV}: .* is not a CesiumJS npm package"):
        find_cesium()
    with pytest.raises(ConfigError, match="stages.publish.viewer.cesium: .* is not a CesiumJS npm package"):
        find_cesium(tmp_path / "nothing")
    assert find_cesium(NPM_CESIUM).package == NPM_CESIUM  # the config wins over the environment


def test_the_viewer_holds_the_page_and_only_the_cesium_files_it_loads(tmp_path):
    report = write_viewer(tmp_path, find_cesium(NPM_CESIUM))
    out = tmp_path / "viewer"
    for name in PAGE_FILES:
        assert (out / name).read_bytes() == (REPO / "pipeline" / "web" / name).read_bytes()
    build = NPM_CESIUM / "Build" / "Cesium"
    expected = {p.relative_to(build) for pattern in CESIUM_FILES for p in build.glob(pattern)}
    shipped = {p.relative_to(out / "cesium") for p in (out / "cesium").rglob("*") if p.is_file()}
    assert shipped == expected | {Path("LICENSE.md")}
    assert len(list((out / "cesium" / "Assets" / "IAU2006_XYS").glob("*.json"))) == 28
    third = json.loads((out / "THIRD_PARTY.json").read_text())["CesiumJS"]
    assert third["version"] == report["cesium_version"] and third["license"] == "Apache-2.0"
    assert json.loads((out / "settings.json").read_text()) == {}
    on_disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert report["bytes"] == on_disk < 10_000_000  # about 8.5 MB of an 18 MB build
    assert report["files"] == len([p for p in out.rglob("*") if p.is_file()])


def test_a_build_without_a_file_the_page_loads_is_refused(tmp_path):
    fake = tmp_path / "cesium"
    (fake / "Build" / "Cesium").mkdir(parents=True)
    (fake / "Build" / "Cesium" / "Cesium.js").write_text("")
    (fake / "package.json").write_text('{"version": "0.1", "license": "Apache-2.0"}')
    with pytest.raises(ConfigError, match="has no Widgets/CesiumWidget/CesiumWidget.css"):
        write_viewer(tmp_path / "bundle", find_cesium(fake))


def _ortho(path: Path, bands: int = 3, dtype: str = "uint8", crs: str | None = "EPSG:5186") -> Path:
    """A 200 x 100 px orthophoto at 0.5 m on the Korean central belt near Sangam DMC."""
    data = (np.arange(bands * 100 * 200).reshape(bands, 100, 200) % 251).astype(dtype)
    with rasterio.open(path, "w", driver="GTiff", width=200, height=100, count=bands, dtype=dtype, crs=crs,
                       transform=from_origin(190000.0, 553500.0, 0.5, 0.5)) as dst:
        dst.write(data)
    return path


def test_imagery_is_reprojected_onto_the_sites_east_north_plane(tmp_path):
    got = write_imagery(_ortho(tmp_path / "ortho.tif"), tmp_path / "imagery.png", SITE)
    # the photo's corners, by pyproj to WGS84 and by our geodesy to ENU (independent of GDAL's warp)
    to_wgs84 = Transformer.from_crs("EPSG:5186", "EPSG:4979", always_xy=True)
    xs, ys = np.meshgrid(np.linspace(190000, 190100, 21), np.linspace(553450, 553500, 11))
    lon, lat, _ = to_wgs84.transform(xs.ravel(), ys.ravel(), np.zeros(xs.size))
    enu = SITE.geodetic_to_enu(lon, lat, np.zeros(lon.size))
    west, south, east, north = got["enu_bounds"]
    assert west == pytest.approx(enu[:, 0].min(), abs=0.75) and east == pytest.approx(enu[:, 0].max(), abs=0.75)
    assert south == pytest.approx(enu[:, 1].min(), abs=0.75) and north == pytest.approx(enu[:, 1].max(), abs=0.75)
    assert np.allclose(got["enu_to_ecef"], SITE.enu_to_ecef_matrix())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        png = rasterio.open(tmp_path / "imagery.png")
    with png:
        assert png.count == 3 and png.dtypes[0] == "uint8" and png.driver == "PNG"
        assert png.read().std() > 10
    assert got["href"] == "imagery.png" and not list(tmp_path.glob("*.aux.xml"))


def test_imagery_of_another_type_is_stretched_and_a_large_one_shrunk(tmp_path):
    got = write_imagery(_ortho(tmp_path / "dem_like.tif", bands=1, dtype="uint16"), tmp_path / "a.png", SITE,
                        max_pixels=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        png = rasterio.open(tmp_path / "a.png")
    with png:
        assert png.count == 3 and max(png.width, png.height) <= 64
        assert png.read().max() == 255 and png.read().min() == 0
    assert got["enu_bounds"][0] < got["enu_bounds"][2]


def test_imagery_without_a_crs_or_with_odd_bands_is_refused(tmp_path):
    with pytest.raises(InputError, match="no CRS"):
        write_imagery(_ortho(tmp_path / "a.tif", crs=None), tmp_path / "a.png", SITE)
    with pytest.raises(InputError, match="2 bands"):
        write_imagery(_ortho(tmp_path / "b.tif", bands=2), tmp_path / "b.png", SITE)
    (tmp_path / "c.tif").write_text("not an image")
    with pytest.raises(InputError, match="cannot read the viewer's imagery"):
        write_imagery(tmp_path / "c.tif", tmp_path / "c.png", SITE)


def test_the_viewer_carries_the_imagery_it_is_given(tmp_path):
    report = write_viewer(tmp_path, find_cesium(NPM_CESIUM), imagery=_ortho(tmp_path / "ortho.tif"), site=SITE)
    settings = json.loads((tmp_path / "viewer" / "settings.json").read_text())
    assert settings["imagery"]["href"] == "imagery.png" and report["imagery"] == settings["imagery"]
    assert (tmp_path / "viewer" / "imagery.png").is_file()
