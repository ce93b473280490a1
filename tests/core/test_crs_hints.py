"""Korean legacy CRSs: PROJ's datum transformation named with its accuracy, and the sibling CRS
a mislabelled file's coordinates fit."""

from __future__ import annotations

import numpy as np
import pyproj

from pipeline.core.crs_hints import KOREAN_CRS, crs_for_shift, fitting_crs, transformation_to_wgs84
from pipeline.core.geodesy import SiteFrame

FRAME = SiteFrame(37.5770, 126.8898)


def _site_points(crs: str) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.meshgrid(np.linspace(126.88, 126.90, 4), np.linspace(37.57, 37.585, 4))
    x, y = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon.ravel(), lat.ravel())
    return np.asarray(x), np.asarray(y)


def test_every_listed_code_is_a_korean_projected_crs():
    for code in KOREAN_CRS:
        crs = pyproj.CRS.from_epsg(code)
        assert crs.is_projected and any(w in crs.name for w in ("Korea", "KGD2002")), crs.name


def test_the_bessel_datum_shift_is_named_with_its_accuracy():
    t = transformation_to_wgs84(pyproj.CRS("EPSG:5174"))
    assert "Korean 1985 to WGS 84" in t.name and t.accuracy_m == 1.0
    assert "KGD2002 to WGS 84" in transformation_to_wgs84(pyproj.CRS("EPSG:5186+5773")).name


def test_the_2010_false_northing_and_the_belt_are_recognised():
    x, y = _site_points("EPSG:5186")
    fits = {c.to_epsg() for c in fitting_crs(pyproj.CRS("EPSG:5181"), x, y, FRAME, 20.0)}
    assert fits == {5186}  # 100 km of false northing apart: only the 2010 system places them here
    x, y = _site_points("EPSG:2097")
    fits = {c.to_epsg() for c in fitting_crs(pyproj.CRS("EPSG:5187"), x, y, FRAME, 20.0)}
    # the Bessel central belt, its modified-origin variant (255 m east) and KGD2002's central belt
    # with the same false origin all land within 20 km: each is named
    assert {2097, 5174, 5181} <= fits and 5186 not in fits


def test_data_of_another_country_finds_no_korean_crs():
    x, y = _site_points("EPSG:5186")
    assert fitting_crs(pyproj.CRS("EPSG:5186"), x + 3e6, y, FRAME, 20.0) == []
    assert fitting_crs(pyproj.CRS("EPSG:5186"), np.zeros(0), np.zeros(0), FRAME, 20.0) == []


def test_the_modified_belt_is_named_from_the_shift_another_layer_measured():
    """A point written in EPSG:2097 but labelled EPSG:5174 lands about 255 m west of where it
    belongs; the shift back names 2097 (and only CRSs that move it so)."""
    x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:2097", always_xy=True).transform(126.8898, 37.5770)

    def plan(code: int) -> np.ndarray:
        lon, lat = pyproj.Transformer.from_crs(f"EPSG:{code}", "EPSG:4326", always_xy=True).transform(x, y)
        return FRAME.geodetic_to_enu(np.array([lon]), np.array([lat]), np.zeros(1))[0, :2]

    shift = plan(2097) - plan(5174)
    assert 250 < -shift[0] < 260 and abs(shift[1]) < 1
    found = [c.to_epsg() for c in crs_for_shift(pyproj.CRS.from_epsg(5174), x, y, FRAME, tuple(shift), 4.0)]
    assert found == [2097]
    assert crs_for_shift(pyproj.CRS.from_epsg(5174), x, y, FRAME, (40.0, 40.0), 4.0) == []
