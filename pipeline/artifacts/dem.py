"""The DEM: ingest's copy in its own CRS (``dem.tif`` + ``dem.json``) and georef's ENU position of
every pixel centre (``dem_enu.npy``).

Both are written on every run. Without a DEM input ``dem.json`` has ``source`` None and no
``dem.tif`` exists, and ``dem_enu.npy`` is an empty (0, 0, 3) array.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pipeline.artifacts import ENU_DEM, SOURCE_DEM
from pipeline.artifacts.base import dump_json, load_json

RASTER = "dem.tif"


@dataclass(frozen=True)
class SourceDem:
    """The DEM as given: its file (None: no DEM input), CRS, whether the landing checks are
    waived, its shape (rows, cols), nodata pixel count and value range (its own vertical unit)."""

    source: str | None = None
    crs_wkt: str | None = None
    crs_name: str | None = None
    accept_crs: bool = False
    shape: list[int] = field(default_factory=list)
    nodata_pixels: int = 0
    min: float | None = None
    max: float | None = None

    def raster(self, ingest: Path) -> Path:
        """The copied GeoTIFF inside ingest's output folder."""
        return ingest / RASTER


def write_source_dem(folder: Path, dem: SourceDem, raster: Path | None = None) -> None:
    """Write the record and, when there is a DEM, a copy of its GeoTIFF ``raster``."""
    if raster is not None:
        shutil.copyfile(raster, folder / RASTER)
    dump_json(SOURCE_DEM.locate(folder), asdict(dem))


def read_source_dem(folder: Path) -> SourceDem:
    return SourceDem(**load_json(SOURCE_DEM.locate(folder)))


def write_enu_dem(folder: Path, enu: np.ndarray | None) -> None:
    """ENU (m) of every DEM pixel centre, shape (rows, cols, 3), NaN at nodata; None: no DEM."""
    np.save(ENU_DEM.locate(folder), np.empty((0, 0, 3)) if enu is None else enu)


def write_enu_dem_bands(folder: Path, rows: int, cols: int, bands: Iterable[np.ndarray]) -> None:
    """As :func:`write_enu_dem`, the (rows, cols, 3) array given as bands of whole rows, top to
    bottom, each written as it comes: a city DEM's whole array is 0.6 GB. The file's bytes
    are those :func:`numpy.save` writes for the whole array."""
    done = 0
    with ENU_DEM.locate(folder).open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float64)),
                                                 "fortran_order": False, "shape": (rows, cols, 3)})
        for band in bands:
            if band.shape[1:] != (cols, 3):
                raise ValueError(f"a band of shape {band.shape} in a DEM of {cols} columns")
            f.write(np.ascontiguousarray(band, np.float64).tobytes())
            done += len(band)
    if done != rows:
        raise ValueError(f"{done} rows written of a DEM of {rows}")


def read_enu_dem(folder: Path) -> np.ndarray | None:
    """The (rows, cols, 3) ENU pixel centres, or None without a DEM."""
    enu = np.load(ENU_DEM.locate(folder))
    return enu if enu.size else None
