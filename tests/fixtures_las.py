"""LAS fixtures cut from the sample, with CRS records that tell the truth or lie."""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pyproj
from laspy.vlrs.known import GeoKeyDirectoryVlr, GeoKeyEntryStruct

from tests.conftest import SAMPLE


def sample_points(n: int = 20000) -> np.ndarray:
    """The first ``n`` points of the sample as (n, 3) EPSG:5186 metres (orthometric z)."""
    with laspy.open(SAMPLE / "dmc_aerial.laz") as r:
        pts = r.read_points(n)
    return np.column_stack([np.asarray(pts.x), np.asarray(pts.y), np.asarray(pts.z)])


def write_las(path: Path, xyz: np.ndarray, *, crs: str | None = None, version: str = "1.4",
              fmt: int = 6, geokeys: dict[int, int] | None = None, scale: float = 0.001,
              classification: np.ndarray | None = None) -> Path:
    """A LAS file of ``xyz`` (and ASPRS ``classification``) with a WKT CRS (``crs``) or a
    hand-made GeoTIFF key directory."""
    header = laspy.LasHeader(point_format=fmt, version=version)
    header.scales = np.array([scale] * 3)
    header.offsets = np.floor(xyz.min(0))
    if crs:
        header.add_crs(pyproj.CRS.from_user_input(crs))
    if geokeys:
        vlr = GeoKeyDirectoryVlr()
        for key, value in geokeys.items():
            e = GeoKeyEntryStruct()
            e.id, e.tiff_tag_location, e.count, e.value_offset = key, 0, 1, value
            vlr.geo_keys.append(e)
        vlr.geo_keys_header.number_of_keys = len(vlr.geo_keys)
        header.vlrs.append(vlr)
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if classification is not None:
        las.classification = classification
    las.write(path)
    return path
