"""The planners' web viewer that ships in every bundle (``bundle/viewer/``).

Our page (``pipeline/web/``: one HTML file, one script, one style sheet, read as they are) and the
part of CesiumJS's prebuilt ``Build/Cesium`` that the page loads. CesiumJS comes from its npm
package (``make setup`` installs it); publish finds it through the config, ``DMCTWIN_CESIUM``, or
the ``node_modules`` of the working directory or of the source checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.geodesy import SiteFrame
from pipeline.errors import ConfigError, InputError

ENV = "DMCTWIN_CESIUM"
PAGE_FILES = ("index.html", "viewer.js", "viewer.css")

#: What the page loads from Build/Cesium (measured by logging every request the browser made
#: while the viewer tests exercised every control). CesiumJS fetches the rest only for features
#: the page does not use (ion, imagery providers, Draco point clouds' KTX2 textures, the sky box,
#: the other widgets).
CESIUM_FILES = (
    "Cesium.js",                                 # the library (IIFE build; no bundler needed)
    "Widgets/CesiumWidget/CesiumWidget.css",     # the canvas and credit container
    "Assets/approximateTerrainHeights.json",     # culling of the ellipsoid globe's tiles
    "Assets/Images/ion-credit.png",              # the CesiumJS credit shown on the canvas
    "ThirdParty/draco_decoder.wasm",             # KHR_draco_mesh_compression content
    # The sun's direction for any date: precession-nutation samples (1000 days per file, 1975 to
    # 2050). Without them CesiumJS falls back to a frame that ignores precession, which for 2026
    # turns the sun (and every shadow) by about 0.35 degrees.
    "Assets/IAU2006_XYS/*.json",
)
LICENCE_FILES = ("LICENSE.md",)


@dataclass(frozen=True)
class CesiumBuild:
    """A CesiumJS npm package: its ``Build/Cesium`` folder, version and licence."""

    package: Path
    version: str
    licence: str

    @property
    def build(self) -> Path:
        return self.package / "Build" / "Cesium"


def _package(folder: Path) -> CesiumBuild | None:
    meta = folder / "package.json"
    if not (meta.is_file() and (folder / "Build" / "Cesium" / "Cesium.js").is_file()):
        return None
    doc = json.loads(meta.read_text(encoding="utf-8"))
    return CesiumBuild(folder, str(doc.get("version", "unknown")), str(doc.get("license", "unknown")))


def find_cesium(configured: Path | None = None) -> CesiumBuild:
    """The CesiumJS package to copy: ``configured`` (a path to the npm package ``cesium``), else
    ``$DMCTWIN_CESIUM``, else ``node_modules/cesium`` under the working directory or the source
    checkout. ConfigError when none is there."""
    if configured is not None or os.environ.get(ENV):
        folder = Path(configured if configured is not None else os.environ[ENV]).expanduser()
        found = _package(folder)
        if found is None:
            where = "stages.publish.viewer.cesium" if configured is not None else ENV
            raise ConfigError(f"{where}: {folder} is not a CesiumJS npm package (no package.json and "
                              "Build/Cesium/Cesium.js): run npm install cesium and name node_modules/cesium")
        return found
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        found = _package(root / "node_modules" / "cesium")
        if found is not None:
            return found
    raise ConfigError("the bundle's viewer needs CesiumJS and none was found: run make setup (npm install), "
                      f"or set {ENV} or stages.publish.viewer.cesium to an npm package 'cesium', or set "
                      "stages.publish.viewer.enabled: false")


def _cesium_files(build: Path) -> list[Path]:
    out: list[Path] = []
    for pattern in CESIUM_FILES:
        found = sorted(build.glob(pattern))
        if not found:
            raise ConfigError(f"{build}: CesiumJS build has no {pattern} (a version this viewer was not made for?)")
        out += found
    return out


def write_imagery(source: Path, out: Path, site: SiteFrame, max_pixels: int = 4096) -> dict[str, Any]:
    """Reproject a georeferenced image (any raster GDAL reads, with a CRS) onto the site's east-north
    plane (the orthographic projection at the site origin, which matches ENU east and north to well
    under a millimetre within 2 km) and write it as PNG at ``out``, at most ``max_pixels`` on a
    side. Returns ``{"href", "enu_bounds": [west, south, east, north] (ENU metres), "enu_to_ecef"}``:
    what the viewer needs to drape it on the terrain."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    plane = CRS.from_proj4(f"+proj=ortho +lat_0={site.lat} +lon_0={site.lon} +ellps=WGS84 +units=m")
    try:
        src = rasterio.open(source)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot read the viewer's imagery: {' '.join(str(exc).split())}", path=source) from exc
    with src:
        if src.crs is None:
            raise InputError("the viewer's imagery has no CRS (a GeoTIFF or an image with a world file "
                             "and .prj is needed)", path=source)
        if src.count not in (1, 3, 4):
            raise InputError(f"the viewer's imagery has {src.count} bands; 1 (grey), 3 (RGB) or 4 (RGBA) "
                             "are shown", path=source)
        transform, width, height = calculate_default_transform(src.crs, plane, src.width, src.height, *src.bounds)
        scale = max(width, height) / max_pixels
        if scale > 1:
            width, height = max(1, int(width / scale)), max(1, int(height / scale))
            transform, width, height = calculate_default_transform(
                src.crs, plane, src.width, src.height, *src.bounds, dst_width=width, dst_height=height)
        bands = np.zeros((src.count, height, width), np.uint8)
        for b in range(src.count):
            data = np.zeros((height, width), np.float64)
            reproject(rasterio.band(src, b + 1), data, dst_transform=transform, dst_crs=plane,
                      resampling=Resampling.bilinear, dst_nodata=np.nan)
            if src.dtypes[b] != "uint8":  # stretch other types to 8 bits over their 2-98 % range
                finite = data[np.isfinite(data)]
                lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
                data = (data - lo) / max(hi - lo, 1e-12) * 255.0
            bands[b] = np.clip(np.nan_to_num(data, nan=0.0), 0, 255).astype(np.uint8)
        if src.count == 1:
            bands = np.repeat(bands, 3, axis=0)
    west, north = transform @ (0, 0)
    east, south = transform @ (width, height)
    # a plain PNG: the bounds travel in settings.json, which is all the viewer reads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(out, "w", driver="PNG", width=width, height=height, count=len(bands),
                           dtype="uint8") as dst:
            dst.write(bands)
    for extra in out.parent.glob(out.name + ".aux.xml"):
        extra.unlink()
    return {"href": out.name, "enu_bounds": [float(west), float(south), float(east), float(north)],
            "enu_to_ecef": site.enu_to_ecef_matrix().tolist()}


def write_viewer(bundle: Path, cesium: CesiumBuild, imagery: Path | None = None,
                 site: SiteFrame | None = None) -> dict[str, Any]:
    """Write ``bundle/viewer/``: the page, ``settings.json`` (a local imagery layer, if any), the
    CesiumJS files it loads under ``cesium/`` with the package's licence, and
    ``THIRD_PARTY.json`` naming CesiumJS's version and licence; ``imagery`` is draped on the
    terrain of ``site``. Returns what was written (files, bytes, CesiumJS version)."""
    out = bundle / "viewer"
    (out / "cesium").mkdir(parents=True)
    page = resources.files("pipeline") / "web"
    for name in PAGE_FILES:
        (out / name).write_bytes((page / name).read_bytes())
    settings: dict[str, Any] = {}
    if imagery is not None:
        if site is None:
            raise ValueError("draping imagery needs the site frame")
        settings["imagery"] = write_imagery(imagery, out / "imagery.png", site)
    (out / "settings.json").write_text(json.dumps(settings, indent=1))
    build = cesium.build
    for src in _cesium_files(build):
        dst = out / "cesium" / src.relative_to(build)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    for name in LICENCE_FILES:
        if (cesium.package / name).is_file():
            shutil.copyfile(cesium.package / name, out / "cesium" / name)
    third = {"CesiumJS": {"version": cesium.version, "license": cesium.licence, "files": "cesium/",
                          "license_file": "cesium/LICENSE.md", "source": "https://github.com/CesiumGS/cesium"}}
    (out / "THIRD_PARTY.json").write_text(json.dumps(third, indent=1))
    files = [p for p in out.rglob("*") if p.is_file()]
    return {"cesium_version": cesium.version, "files": len(files),
            "bytes": int(sum(p.stat().st_size for p in files)),
            "cesium_bytes": int(sum(p.stat().st_size for p in (out / "cesium").rglob("*") if p.is_file())),
            "imagery": settings.get("imagery")}
