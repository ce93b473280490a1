"""GIS files of a sunlight analysis: facade receivers as a GeoPackage (site CRS and WGS84 layers)
and the ground grid's hours as a GeoTIFF in the site CRS.

Written through pyogrio (GDAL) and rasterio: any GIS opens them. Heights in the site-CRS layer
are orthometric (metres above the geoid the twin used); in the WGS84 layer (EPSG:4979) they are
ellipsoidal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pyproj
import rasterio
import shapely
from rasterio.transform import from_origin

from pipeline.core.geodesy import GeoidModel

if TYPE_CHECKING:
    from pipeline.artifacts.buildings import BuildingRecord
    from pipeline.artifacts.frame import FrameRecord
    from pipeline.artifacts.sunlight import ReceiverResults


def write_receivers_gpkg(path: Path, frame: FrameRecord, geoid: GeoidModel, crs: pyproj.CRS,
                         records: Sequence[BuildingRecord], results: ReceiverResults, scenarios: Sequence[str],
                         count: int) -> None:
    """The first ``count`` receivers (the facades) as 3D points: layer ``receivers`` in ``crs``
    with orthometric heights, layer ``receivers_wgs84`` in EPSG:4979; one row per receiver with
    its building, storey, facade azimuth and per scenario its minutes and verdicts."""
    r = results.receivers
    lon, lat, h = frame.site.enu_to_geodetic(r.position[:count])
    ortho = h - geoid.undulation(lon, lat)
    x, y = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat, errcheck=True)
    ids = {b.feature_id: b.id for b in records}
    fields: dict[str, np.ndarray] = {
        "building": np.array([ids.get(int(b), "") for b in r.building[:count]], dtype=object),
        "storey": r.storey[:count].astype(np.int32),
        "facade_azimuth_deg": r.azimuth_deg[:count].astype(np.float64),
    }
    for k, name in enumerate(scenarios):
        cont = results.continuous_min[:count, k].astype(np.float64)
        tot = results.total_min[:count, k].astype(np.float64)
        fields[f"{name}_continuous_min"] = cont
        fields[f"{name}_total_min"] = tot
        verdict = np.where(np.isnan(tot), "", np.where(results.passes[:count, k], "pass", "fail"))
        fields[f"{name}_verdict"] = verdict.astype(object)
    if len(scenarios) > 1:
        both = results.present[:count, 0] & results.present[:count, 1]
        fields["changed"] = (both & (results.passes[:count, 0] != results.passes[:count, 1])).astype(np.int32)
    names, values = list(fields), list(fields.values())
    # imported here: pyogrio brings GDAL's vector bindings and pandas (~90 MB) into every worker
    # that preloads the analysis stage
    import pyogrio.raw

    # GeoPackages stamp every table with the time of writing: a fixed stamp keeps reruns identical
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2000-01-01T00:00:00.000Z"})
    try:
        for layer, (a, b, c), layer_crs in (("receivers", (x, y, ortho), crs.to_wkt()),
                                            ("receivers_wgs84", (lon, lat, h), "EPSG:4979")):
            geometry = shapely.to_wkb(shapely.points(np.column_stack([a, b, c])), output_dimension=3)
            pyogrio.raw.write(path, geometry, values, names, layer=layer, driver="GPKG", geometry_type="Point Z",
                              crs=layer_crs, append=layer != "receivers")
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})


def write_ground_tif(path: Path, grid: dict[str, Any], crs: pyproj.CRS, cells: np.ndarray,
                     continuous_min: np.ndarray, total_min: np.ndarray, scenarios: Sequence[str]) -> None:
    """The ground grid (``grid``: west, north, cell size, rows, cols in ``crs`` units) as float32 hours,
    two bands per scenario (total, then continuous), NaN where no receiver stands (buildings,
    beyond the margin, off the terrain); ``cells`` are the receivers' flat row-major cell indices."""
    rows, cols = grid["rows"], grid["cols"]
    bands, names = [], []
    for k, name in enumerate(scenarios):
        for label, values in (("total", total_min), ("continuous", continuous_min)):
            band = np.full(rows * cols, np.nan, np.float32)
            band[cells] = values[:, k] / 60.0
            bands.append(band.reshape(rows, cols))
            names.append(f"{name} {label} sun hours")
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": len(bands), "dtype": "float32",
               "crs": crs.to_wkt(), "nodata": float("nan"), "compress": "deflate", "predictor": 3,
               "transform": from_origin(grid["west"], grid["north"], grid["cell"], grid["cell"])}
    with rasterio.open(path, "w", **profile) as dst:
        for i, (band, name) in enumerate(zip(bands, names, strict=True), start=1):
            dst.write(band, i)
            dst.set_band_description(i, name)
        dst.update_tags(units="hours", rule="Korean sunlight tolerance test: see sunlight.json")
