"""Geoid grids as they are distributed, turned into grids PROJ can shift heights with, and what
each model is: its name, version and stated accuracy.

PROJ's ``vgridshift`` reads GTX and GeoTIFF grids. The Korean national geoid is not distributed
as either: NGII publishes KNGeoid18 and KNGeoid24 as a text list of nodes, one
``latitude longitude N`` per line (degrees on KGD2002, metres; tab or blank separated, no
header), and EPSG's records of KNGeoid14 name a Gravsoft grid (``.gri``: a header
``lat_south lat_north lon_west lon_east dlat dlon`` then the values row by row from north to
south, west to east). Neither has a GDAL driver, so they are read here and written once, as a
GeoTIFF, into a cache keyed by the source file's content. KGD2002 is ITRF-based: at the
centimetre level its latitudes and longitudes are WGS84's, so the grid is tagged EPSG:4326.

Undulations N are metres: ellipsoidal h = orthometric H + N.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import GeoidError

#: 1-sigma accuracy (m) of models we can cite; a grid not listed here states none unless the
#: config gives ``site.geoid_accuracy_m``
KNOWN_MODELS: dict[str, tuple[float, str]] = {
    # NGA's stated global accuracy of the EGM96 geoid is 0.5 to 1.0 m: the conservative end
    "EGM96": (1.0, "NGA: EGM96 geoid undulations, +/-0.5 to 1.0 m globally (upper bound)"),
    # Lee & Kwon 2024 (J. Korean Soc. Surv. Geod. Photogramm. Cartogr. 42(6) 519-528): fit of
    # KNGeoid24 to the national control points about 2.3 cm; the model it replaced about 2-3 cm
    "KNGeoid24": (0.023, "Lee & Kwon 2024, KNGeoid24 fit to NGII control points (~2.3 cm)"),
    "KNGeoid18": (0.03, "Lee & Kwon 2024, KNGeoid18 precision about 2-3 cm (upper bound)"),
    # Lee & Kwon 2022 (TAO 33:7): models before KNGeoid18 evaluated at about 8-15 cm
    "KNGeoid14": (0.15, "Lee & Kwon 2022, earlier KNGeoid models 8-15 cm (upper bound)"),
    "KNGeoid13": (0.15, "Lee & Kwon 2022, earlier KNGeoid models 8-15 cm (upper bound)"),
}

_KNGEOID = re.compile(r"kngeoid[_-]?(\d{2})", re.IGNORECASE)
_GRID_SUFFIXES = {".gtx", ".tif", ".tiff"}


@dataclass(frozen=True)
class GeoidInfo:
    """What a geoid grid is: the model's name and version, the file the user named, the format
    it came in, the grid PROJ reads, and its stated 1-sigma accuracy (m; None when unknown)
    with where that figure comes from."""

    name: str
    version: str | None
    source: str
    format: str
    grid: str
    accuracy_m: float | None
    accuracy_source: str | None

    def label(self) -> str:
        """'KNGeoid24 (2024), 1 sigma 0.023 m' — the line reports and anchors carry."""
        acc = f"1 sigma {self.accuracy_m:g} m" if self.accuracy_m is not None else "accuracy not stated"
        ver = f" ({self.version})" if self.version else ""
        return f"{self.name}{ver}, {acc}"


def identify(path: Path, *, name: str | None = None, accuracy_m: float | None = None) -> tuple[str, str | None,
                                                                                           float | None, str | None]:
    """(name, version, accuracy, accuracy source) of the model in ``path``: from the file name
    (egm96_15.gtx, KNGeoid24.dat, ...) unless ``name`` is given; ``accuracy_m`` overrides the
    cited figure."""
    version = None
    if name is None:
        m = _KNGEOID.search(path.name)
        if m:
            name, version = f"KNGeoid{m.group(1)}", f"20{m.group(1)}"
        elif path.name.lower().startswith("egm96"):
            name, version = "EGM96", "15' grid" if "15" in path.stem else None
        else:
            name = path.stem
    cited = KNOWN_MODELS.get(name)
    if accuracy_m is not None:
        return name, version, accuracy_m, "site.geoid_accuracy_m"
    if cited:
        return name, version, cited[0], cited[1]
    return name, version, None, None


def cache_dir() -> Path:
    """Where converted grids live: $DMCTWIN_CACHE, else $XDG_CACHE_HOME/dmc-twin, else ~/.cache/dmc-twin."""
    if os.environ.get("DMCTWIN_CACHE"):
        return Path(os.environ["DMCTWIN_CACHE"]) / "geoid"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dmc-twin" / "geoid"


def _numbers(path: Path) -> tuple[str, np.ndarray]:
    """The file's first line and all its numbers (whitespace, tab or comma separated)."""
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except UnicodeDecodeError:
        raise GeoidError("not a text geoid grid (binary or non-ASCII content)", path=path) from None
    first = text.split("\n", 1)[0]
    try:
        values = np.array(text.replace(",", " ").split(), np.float64)
    except ValueError:
        raise GeoidError("not a text geoid grid: a value is not a number", path=path) from None
    return first, values


def read_node_list(path: Path) -> tuple[np.ndarray, float, float, float, float]:
    """NGII's node list (``lat lon N`` per line, any order) as (rows north to south, lat of the
    north row, lon of the west column, dlat, dlon); GeoidError unless the nodes fill a regular
    grid exactly once each."""
    first, values = _numbers(path)
    if len(first.split()) != 3 or len(values) % 3 or not len(values):
        raise GeoidError("not an NGII geoid node list (expected 'latitude longitude N' per line)", path=path)
    lat, lon, n = values.reshape(-1, 3).T
    return _grid_from_nodes(path, lat, lon, n)


def _grid_from_nodes(path: Path, lat: np.ndarray, lon: np.ndarray,
                     n: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
    if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 360):
        raise GeoidError("latitude or longitude out of range (columns must be latitude, longitude, N)", path=path)
    # nodes are printed with a few decimals: round them onto their grid before finding its step
    lats, lons = np.unique(np.round(lat, 7)), np.unique(np.round(lon, 7))
    if len(lats) < 2 or len(lons) < 2:
        raise GeoidError("a geoid grid needs at least two rows and two columns of nodes", path=path)
    dlat, dlon = float(np.median(np.diff(lats))), float(np.median(np.diff(lons)))
    rows = np.round((lats[-1] - lat) / dlat).astype(np.int64)
    cols = np.round((lon - lons[0]) / dlon).astype(np.int64)
    shape = (int(round((lats[-1] - lats[0]) / dlat)) + 1, int(round((lons[-1] - lons[0]) / dlon)) + 1)
    off = np.maximum(np.abs(lats[-1] - rows * dlat - lat), np.abs(lons[0] + cols * dlon - lon))
    if np.any(off > 1e-6 * max(dlat, dlon) + 1e-9):
        raise GeoidError("nodes do not lie on a regular latitude/longitude grid", path=path)
    flat = rows * shape[1] + cols
    if len(np.unique(flat)) != len(flat) or len(flat) != shape[0] * shape[1]:
        raise GeoidError(f"the grid is not complete: {len(np.unique(flat))} distinct nodes of "
                         f"{shape[0]} x {shape[1]}", path=path)
    grid = np.empty(shape[0] * shape[1])
    grid[flat] = n
    return grid.reshape(shape), float(lats[-1]), float(lons[0]), dlat, dlon


def read_gravsoft(path: Path) -> tuple[np.ndarray, float, float, float, float]:
    """A Gravsoft grid (header ``lat1 lat2 lon1 lon2 dlat dlon``, rows north to south) in the
    same form as :func:`read_node_list`."""
    _, values = _numbers(path)
    if len(values) < 6:
        raise GeoidError("not a Gravsoft grid: the header needs six numbers", path=path)
    lat1, lat2, lon1, lon2, dlat, dlon = values[:6]
    if dlat <= 0 or dlon <= 0 or lat2 <= lat1 or lon2 <= lon1:
        raise GeoidError("not a Gravsoft grid: header bounds or steps are not increasing", path=path)
    shape = (int(round((lat2 - lat1) / dlat)) + 1, int(round((lon2 - lon1) / dlon)) + 1)
    if len(values) - 6 != shape[0] * shape[1]:
        raise GeoidError(f"Gravsoft grid holds {len(values) - 6} values, its header promises "
                         f"{shape[0]} x {shape[1]}", path=path)
    return values[6:].reshape(shape), float(lat2), float(lon1), float(dlat), float(dlon)


def text_format(path: Path) -> str | None:
    """'ngii' (node list), 'gravsoft' or None (a raster GDAL reads) from the file's first line."""
    if path.suffix.lower() in _GRID_SUFFIXES:
        return None
    with open(path, "rb") as f:
        head = f.read(256)
    try:
        first = head.decode("ascii").split("\n", 1)[0].replace(",", " ").split()
        [float(x) for x in first]
    except (UnicodeDecodeError, ValueError):
        return None
    if len(first) == 3:
        return "ngii"
    if len(first) == 6:
        return "gravsoft"
    return None


def write_geotiff(path: Path, grid: np.ndarray, lat_north: float, lon_west: float, dlat: float,
                  dlon: float) -> None:
    """Write undulations (rows north to south) as a float32 GeoTIFF PROJ reads: pixel centres
    on the nodes, EPSG:4326, written to a temporary name and renamed."""
    import rasterio
    from rasterio.transform import from_origin

    if not np.all(np.isfinite(grid)):
        raise GeoidError("the grid holds non-finite undulations", path=path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    transform = from_origin(lon_west - dlon / 2, lat_north + dlat / 2, dlon, dlat)
    with rasterio.open(tmp, "w", driver="GTiff", height=grid.shape[0], width=grid.shape[1], count=1,
                       dtype="float32", crs="EPSG:4326", transform=transform) as dst:
        dst.write(grid.astype(np.float32), 1)
        dst.update_tags(AREA_OR_POINT="Area")
    os.replace(tmp, path)


def convert_text_grid(path: Path, kind: str) -> Path:
    """The cached GeoTIFF of a text geoid grid, converted on first use (keyed by the file's
    sha256, so an edited file converts again)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    out = cache_dir() / f"{path.stem}-{digest}.tif"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    grid = read_node_list(path) if kind == "ngii" else read_gravsoft(path)
    write_geotiff(out, *grid)
    return out
