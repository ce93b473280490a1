"""Point-cloud reading and the on-disk chunk format shared by the stages.

Readers stream: :func:`iter_las_chunks` yields fixed-size chunks and never holds the whole file.
laspy only logs a header point count that disagrees with the data; here it is an error, as are
a zero scale, NaN coordinates and empty files.

Chunks on disk are ``.npy`` files of :data:`POINT_DTYPE` (deterministic bytes, memory-mappable).
The frame of ``x, y, z`` depends on the stage that wrote them (source CRS after ingest, ENU after
georef); the chunk folder's ``meta.json`` says which.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import laspy
import numpy as np
import pyproj

from pipeline.core.geodesy import LINEAR_UNITS, horizontal_unit_factor, with_linear_unit
from pipeline.errors import PointCloudError

POINT_DTYPE = np.dtype([
    ("x", "<f8"), ("y", "<f8"), ("z", "<f8"),
    ("intensity", "<u2"), ("return_number", "u1"), ("number_of_returns", "u1"),
    ("classification", "u1"), ("red", "<u2"), ("green", "<u2"), ("blue", "<u2"),
])

#: ASPRS classes
UNCLASSIFIED, GROUND, LOW_VEGETATION, MEDIUM_VEGETATION, HIGH_VEGETATION = 1, 2, 3, 4, 5
BUILDING, LOW_NOISE, HIGH_NOISE = 6, 7, 18


#: LAS versions this reader supports (major, minor)
SUPPORTED_VERSIONS = {(1, 0), (1, 1), (1, 2), (1, 3), (1, 4)}


def _open(path: Path) -> laspy.LasReader:
    if not path.is_file():
        raise PointCloudError("point cloud file not found", path=path)
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:4] != b"LASF":
        raise PointCloudError("not a LAS/LAZ file (no LASF signature)", path=path)
    if (head[24], head[25]) not in SUPPORTED_VERSIONS:
        raise PointCloudError(f"unsupported LAS version {head[24]}.{head[25]} (supported: 1.0 to 1.4)",
                              path=path)
    try:
        return laspy.open(path)
    except (laspy.errors.LaspyException, OSError, ValueError) as exc:
        raise PointCloudError(f"not a readable LAS/LAZ file ({exc})", path=path) from None


#: GeoTIFF keys for the horizontal and vertical linear units
PROJ_LINEAR_UNITS_KEY, VERTICAL_UNITS_KEY = 3076, 4099


def _geokeys(header: laspy.LasHeader) -> dict[int, int]:
    for vlr in header.vlrs:
        if isinstance(vlr, laspy.vlrs.known.GeoKeyDirectoryVlr):
            return {int(k.id): int(k.value_offset) for k in vlr.geo_keys if k.tiff_tag_location == 0}
    return {}


def read_las_crs(path: Path) -> tuple[pyproj.CRS | None, float]:
    """(CRS, metres per z unit) from the file's WKT or GeoTIFF-key VLRs; (None, 1.0) without one.

    GeoTIFF unit keys that override the named EPSG code's units (ProjLinearUnitsGeoKey,
    VerticalUnitsGeoKey: a "feet" file labelled with a metre EPSG code) are honoured.
    """
    with _open(path) as reader:
        try:
            crs = reader.header.parse_crs()
        except Exception as exc:  # laspy raises assorted errors on malformed CRS VLRs
            raise PointCloudError(f"unreadable CRS record ({exc})", path=path) from None
        keys = _geokeys(reader.header)
    z_factor = 1.0
    for key in (PROJ_LINEAR_UNITS_KEY, VERTICAL_UNITS_KEY):
        if key in keys and keys[key] not in LINEAR_UNITS:
            raise PointCloudError(f"GeoTIFF key {key} names unsupported unit code {keys[key]}", path=path)
    if crs is not None and PROJ_LINEAR_UNITS_KEY in keys:
        code = keys[PROJ_LINEAR_UNITS_KEY]
        if crs.is_projected and abs(LINEAR_UNITS[code][1] - horizontal_unit_factor(crs)) > 1e-12:
            crs = with_linear_unit(crs, code)
    if VERTICAL_UNITS_KEY in keys:
        z_factor = LINEAR_UNITS[keys[VERTICAL_UNITS_KEY]][1]
    return crs, z_factor


def las_point_count(path: Path) -> int:
    """Point count claimed by the header (not trusted: see :func:`iter_las_chunks`)."""
    with _open(path) as reader:
        return int(reader.header.point_count)


def _to_records(points: laspy.ScaleAwarePointRecord) -> np.ndarray:
    out = np.empty(len(points), POINT_DTYPE)
    out["x"], out["y"], out["z"] = points.x, points.y, points.z
    out["intensity"] = points.intensity
    out["return_number"] = points.return_number
    out["number_of_returns"] = points.number_of_returns
    out["classification"] = points.classification
    names = set(points.point_format.dimension_names)
    for c in ("red", "green", "blue"):
        out[c] = points[c] if c in names else 0
    return out


def iter_las_chunks(path: str | Path, chunk_size: int) -> Iterator[np.ndarray]:
    """Yield chunks of :data:`POINT_DTYPE` from a LAS/LAZ file (coordinates in the file's CRS units).

    Raises :class:`PointCloudError` for a zero scale, zero points, NaN/inf coordinates, a
    truncated file or a header count that disagrees with the points actually read.
    """
    path = Path(path)
    with _open(path) as reader:
        header = reader.header
        if np.any(header.scales == 0):
            raise PointCloudError(f"header scale is zero (x, y, z scales {', '.join(f'{s:g}' for s in header.scales)})",
                                  path=path)
        expected = int(header.point_count)
        if expected == 0:
            raise PointCloudError("file holds zero points", path=path)
        seen = 0
        try:
            for points in reader.chunk_iterator(chunk_size):
                if len(points) == 0:
                    break
                rec = _to_records(points)
                if not (np.all(np.isfinite(rec["x"])) and np.all(np.isfinite(rec["y"]))
                        and np.all(np.isfinite(rec["z"]))):
                    raise PointCloudError(f"non-finite coordinates near point {seen}", path=path)
                seen += len(rec)
                yield rec
        except PointCloudError:
            raise
        except Exception as exc:  # lazrs/laspy raise many types on corrupt data
            raise PointCloudError(f"truncated or corrupt point data after {seen} points ({exc})",
                                  path=path) from None
        if seen != expected:
            raise PointCloudError(f"header claims {expected} points but the file holds {seen}",
                                  path=path)


class ChunkStore:
    """A folder of point chunks (``chunk_00000.npy`` ...) plus ``meta.json``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def write(self, index: int, chunk: np.ndarray) -> Path:
        """Write chunk ``index``; returns its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"chunk_{index:05d}.npy"
        np.save(path, np.ascontiguousarray(chunk, dtype=POINT_DTYPE))
        return path

    def write_meta(self, meta: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))

    def meta(self) -> dict:
        return json.loads((self.folder / "meta.json").read_text())

    def paths(self) -> list[Path]:
        return sorted(self.folder.glob("chunk_*.npy"))

    def __iter__(self) -> Iterator[np.ndarray]:
        for p in self.paths():
            yield np.load(p, mmap_mode="r")

    def read_all(self) -> np.ndarray:
        """Every chunk concatenated (whole-cloud read: only for clouds known to fit in memory)."""
        parts = [np.load(p) for p in self.paths()]
        return np.concatenate(parts) if parts else np.empty(0, POINT_DTYPE)
