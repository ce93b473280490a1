"""Which CRS a file's coordinates fit when the one it declares does not, and how each CRS
reaches WGS84.

Korean data comes in more than twenty projected CRSs: four belts (west, central, east, East
Sea) and the unified system, each on the Korean 1985 (Bessel) datum, on its "modified" variant
(origin 10.405 arc seconds east, the old Tokyo datum's offset), and on KGD2002 with false
northing 500 000 m or, since 2010, 600 000 m. A file labelled with a sibling of its real CRS
lands kilometres (another belt's origin, the 100 km of the 2010 false northing) to hundreds of
kilometres away; the georeferencing refuses it, and this module names the siblings under which
its coordinates do land on the site. The modified-origin variants differ by about 255 m only,
within the near-site check: :func:`crs_for_shift` names them once another layer (the LiDAR) has
measured how far a file lies off.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyproj

from pipeline.core.geodesy import (SiteFrame, check_area_of_use, check_near_site, horizontal_crs,
                                   source_to_lonlat)
from pipeline.errors import CRSError

#: EPSG codes of the projected CRSs Korean data uses (Korean 1985, Tokyo 1892 and KGD2002 belts
#: and unified systems), as PROJ's database lists them
KOREAN_CRS = (2096, 2097, 2098, 5167, 5168, 5169, 5170, 5171, 5172, 5173, 5174, 5175, 5176, 5177, 5178, 5179,
              5180, 5181, 5182, 5183, 5184, 5185, 5186, 5187, 5188)


@dataclass(frozen=True)
class Transformation:
    """How coordinates in a CRS reach WGS84: PROJ's operation (its name, e.g. "Korean 1985 to
    WGS 84 (1)") and its stated accuracy in metres (None when PROJ states none)."""

    name: str
    accuracy_m: float | None


def transformation_to_wgs84(crs: pyproj.CRS) -> Transformation:
    """The operation PROJ uses from ``crs``'s horizontal part to WGS84 (EPSG:4326), the one the
    georeferencing applies."""
    t = pyproj.Transformer.from_crs(horizontal_crs(crs), "EPSG:4326", always_xy=True)
    return Transformation(t.description, float(t.accuracy) if t.accuracy is not None and t.accuracy >= 0 else None)


def _lands_on_site(crs: pyproj.CRS, x: np.ndarray, y: np.ndarray, frame: SiteFrame, radius_km: float) -> bool:
    """Whether the georeferencing's own landing checks accept ``x``, ``y`` in ``crs``."""
    try:
        lon, lat = source_to_lonlat(crs, x, y)
        check_area_of_use(crs, lon, lat, path=crs.name)
        check_near_site(frame, lon, lat, radius_km, crs_name=crs.name, path=crs.name)
    except CRSError:
        return False
    return True


def _siblings(declared: pyproj.CRS) -> Iterator[pyproj.CRS]:
    """The Korean projected CRSs other than ``declared``'s horizontal part."""
    code = horizontal_crs(declared).to_epsg()
    return (pyproj.CRS.from_epsg(c) for c in KOREAN_CRS if c != code)


def fitting_crs(declared: pyproj.CRS, x: np.ndarray, y: np.ndarray, frame: SiteFrame,
                radius_km: float) -> list[pyproj.CRS]:
    """The Korean projected CRSs other than ``declared`` under which the plan coordinates ``x``,
    ``y`` (the file's own, in metres) all land inside the CRS's area of use and within
    ``radius_km`` of the site: the CRS the file was more likely made in. Empty when the file is
    not Korean data or no sibling fits."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if not len(x):
        return []
    # the extent's corners and centre decide: a CRS that places them on the site places the rest
    xs = np.array([x.min(), x.max(), x.min(), x.max(), np.median(x)])
    ys = np.array([y.min(), y.min(), y.max(), y.max(), np.median(y)])
    return [crs for crs in _siblings(declared) if _lands_on_site(crs, xs, ys, frame, radius_km)]


def crs_for_shift(declared: pyproj.CRS, x: float, y: float, frame: SiteFrame, shift_en: tuple[float, float],
                  tolerance_m: float) -> list[pyproj.CRS]:
    """The Korean projected CRSs under which the point ``x``, ``y`` (the file's own coordinates)
    lands ``shift_en`` (plan east, north; m) from where ``declared`` puts it, within
    ``tolerance_m``: the CRS a file shifted by that much against other data was made in (the
    modified belts' 255 m that :func:`fitting_crs` cannot tell apart)."""
    def plan(crs: pyproj.CRS) -> np.ndarray:
        lon, lat = source_to_lonlat(crs, np.array([x]), np.array([y]))
        return frame.geodetic_to_enu(lon, lat, np.zeros(1))[0, :2]

    here = plan(declared)
    out = []
    for crs in _siblings(declared):
        try:
            moved = plan(crs) - here
        except CRSError:
            continue
        if np.hypot(*(moved - np.asarray(shift_en))) <= tolerance_m:
            out.append(crs)
    return out
