"""CesiumJS, the consumer most of our users have, loads the sample's bundle offline: every layer,
Draco content, and building metadata that picking returns for the right building.

Headless Debian Chromium renders WebGL through SwiftShader, driven by Playwright; CesiumJS comes
from npm (make setup installs all three). The page is tests/web/cesium_check.html.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import REPO, variant_run

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CESIUM = REPO / "node_modules" / "cesium" / "Build" / "Cesium"
ARGS = ["--headless=new", "--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
        "--disable-background-networking", "--disable-component-update", "--no-first-run"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page(sample_run, tmp_path_factory) -> Iterator:
    if not Path(CHROMIUM).exists() or not CESIUM.is_dir():
        pytest.fail("Chromium or CesiumJS is not installed: run make setup")
    site = tmp_path_factory.mktemp("site")
    (site / "cesium").symlink_to(CESIUM)
    (site / "bundle").symlink_to(sample_run / "bundle")
    # the same twin with every layer EXT_meshopt_compression-encoded, which the glTF validator
    # cannot decode: CesiumJS can
    meshopt = variant_run(sample_run, tmp_path_factory.mktemp("meshopt"),
                          "tile: {compression: meshopt, pointcloud_meshopt: true}", "tile..publish")
    (site / "meshopt").symlink_to(meshopt / "bundle")
    shutil.copy(REPO / "tests" / "web" / "cesium_check.html", site / "index.html")
    (site / "favicon.ico").write_bytes(b"")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 640, "height": 480})
        pg.set_default_timeout(180_000)
        missing: list[str] = []
        pg.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
        pg.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        pg.missing = missing
        yield pg
        browser.close()
    server.shutdown()


def test_cesium_loads_every_layer_without_a_failure(page):
    page.evaluate("window.twin.load('/bundle/tileset.json')")
    assert page.evaluate("window.twin.failures") == []
    assert page.evaluate("window.twin.errors") == []
    assert page.missing == []
    loaded = page.evaluate("window.twin.loaded")
    for layer in ("/bundle/terrain/", "/bundle/buildings/", "/bundle/pointcloud/"):
        assert any(layer in url for url in loaded), (layer, loaded)


@pytest.mark.parametrize("building", ["DMC-B005", "DMC-L001", "DMC-P001"])
def test_picking_in_cesium_returns_the_buildings_metadata(page, sample_run, building):
    if not page.evaluate("window.twin.tileset !== undefined"):
        page.evaluate("window.twin.load('/bundle/tileset.json')")
    anchors = json.loads((sample_run / "bundle" / "anchors" / "anchors.json").read_text())["anchors"]
    a = next(x for x in anchors if x["id"] == f"building:{building}")
    height = a["properties"]["height"]
    got = page.evaluate("([lon, lat, h, r]) => window.twin.pickAt(lon, lat, h, r)",
                        [a["longitude"], a["latitude"], a["ellipsoidal_height"] + height, 2.5 * height + 150])
    props = got.get("properties")
    assert props is not None, got
    mesh = {r["id"]: r for r in json.loads((sample_run / "artifacts" / "mesh" / "buildings.json").read_text())[
        "buildings"]}[building]
    assert props["id"] == building and props["name"] == mesh["name"] and props["lod"] == mesh["lod"]
    assert props["height"] == pytest.approx(mesh["height"], abs=1e-3)
    assert props["roof_type"] == (mesh["roof_type"] or "")
    assert page.evaluate("window.twin.failures") == []


def test_cesium_decodes_meshopt_content(page):
    page.reload()
    page.evaluate("window.twin.load('/meshopt/tileset.json')")
    assert page.evaluate("window.twin.failures") == [] and page.evaluate("window.twin.errors") == []
    loaded = page.evaluate("window.twin.loaded")
    for layer in ("/meshopt/terrain/", "/meshopt/buildings/", "/meshopt/pointcloud/"):
        assert any(layer in url for url in loaded), (layer, loaded)
    got = page.evaluate("([lon, lat, h, r]) => window.twin.pickAt(lon, lat, h, r)", [126.8913, 37.5812, 141.0, 410.0])
    assert got.get("properties", {}).get("id") == "DMC-L001", got
