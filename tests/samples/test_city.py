"""The procedural city has Seoul's density and height mix, no overlapping buildings, a DEM
under all of them, and is the same city every time."""

from __future__ import annotations

import numpy as np
import pyogrio.raw
import rasterio
import shapely

from pipeline.samples.city import DENSITY_PER_KM2, generate_city


def test_a_small_city_is_dense_low_rise_with_towers_and_stands_on_its_dem(tmp_path):
    city = generate_city(2_000, tmp_path / "a")
    _, _, wkb, fields = pyogrio.raw.read(city.footprints)
    geoms = shapely.from_wkb(wkb)
    assert len(geoms) == 2_000 and shapely.is_valid(geoms).all()
    assert shapely.area(geoms).sum() - shapely.union_all(geoms).area < 1e-6  # no two overlap
    hull_km2 = shapely.convex_hull(shapely.union_all(geoms)).area / 1e6
    assert 0.8 * DENSITY_PER_KM2 < len(geoms) / hull_km2 < 1.2 * DENSITY_PER_KM2
    floors = fields[1]
    assert np.median(floors) <= 4 and (floors >= 15).mean() > 0.02 and floors.max() <= 35
    assert np.allclose(fields[2], floors * 3.3, atol=0.5)
    with rasterio.open(city.dem) as dem:
        assert dem.crs.to_epsg() == 5186
        west, south, east, north = dem.bounds
        lo, hi = shapely.bounds(geoms).min(axis=0)[:2], shapely.bounds(geoms).max(axis=0)[2:]
        assert west < lo[0] and south < lo[1] and east > hi[0] and north > hi[1]
        z = dem.read(1)
        assert np.isfinite(z).all() and 0 < z.min() and z.max() < 900
    again = generate_city(2_000, tmp_path / "b")
    assert list(pyogrio.raw.read(again.footprints)[2]) == list(wkb)
    with rasterio.open(city.dem) as a, rasterio.open(again.dem) as b:
        assert np.array_equal(a.read(1), b.read(1))
