"""Coordinate frames: source CRSs, geoid heights, WGS84 geodetic, ECEF and the site's local ENU.

Frames used throughout dmc-twin:

- *source*: whatever CRS an input declares (e.g. EPSG:5186 metres, heights orthometric).
- *geodetic*: WGS84 longitude/latitude in degrees and ellipsoidal height in metres (EPSG:4979).
- *ECEF*: earth-centred, earth-fixed cartesian metres (EPSG:4978).
- *ENU*: east/north/up metres in the plane tangent to the WGS84 ellipsoid at the site origin.
  ``U`` is *not* a height: 1 km from the origin a point on the ellipsoid has U = -0.078 m.

All arrays are float64. pyproj is called with ``errcheck=True`` so a point it cannot transform
raises instead of silently becoming ``inf``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import pyproj.datadir
from pyproj.aoi import AreaOfUse
from pyproj.exceptions import CRSError as PyprojCRSError
from pyproj.exceptions import ProjError

from pipeline.core.geoid_grids import GeoidInfo, convert_text_grid, identify, text_format
from pipeline.errors import CRSError, GeoidError

#: Debian's proj-data puts its grids here; pyproj's wheel does not look there by itself.
SYSTEM_PROJ_DIR = Path("/usr/share/proj")
EGM96_GRID = "egm96_15.gtx"

_WGS84 = pyproj.CRS.from_epsg(4979)
_ECEF = pyproj.CRS.from_epsg(4978)


@functools.cache
def ensure_proj_data() -> None:
    """Let pyproj find grids installed by Debian's ``proj-data`` (idempotent)."""
    if SYSTEM_PROJ_DIR.is_dir() and str(SYSTEM_PROJ_DIR) not in pyproj.datadir.get_data_dir():
        pyproj.datadir.append_data_dir(str(SYSTEM_PROJ_DIR))


def parse_crs(text: str | pyproj.CRS, *, path: str | Path | None = None) -> pyproj.CRS:
    """A pyproj CRS from user text (``EPSG:5186``, WKT, PROJ string); CRSError naming ``path``."""
    if isinstance(text, pyproj.CRS):
        return text
    try:
        return pyproj.CRS.from_user_input(text)
    except PyprojCRSError:
        raise CRSError(f"unknown or invalid CRS {text!r}", path=path) from None


def sidecar_crs(path: Path) -> tuple[pyproj.CRS, Path] | None:
    """The CRS of a file's sidecar (``name.las.prj``, ``name.prj``, ``.wkt`` likewise), as
    LAStools and PDAL write them, and the sidecar's path; None without one. CRSError names a
    sidecar that does not parse."""
    for candidate in (path.with_name(path.name + ".prj"), path.with_suffix(".prj"),
                      path.with_name(path.name + ".wkt"), path.with_suffix(".wkt")):
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8", errors="replace").strip()
            if not text:
                raise CRSError("CRS sidecar file is empty", path=candidate)
            try:
                return pyproj.CRS.from_user_input(text), candidate
            except PyprojCRSError:
                raise CRSError("CRS sidecar file does not hold a CRS PROJ can read (WKT expected)",
                               path=candidate) from None
    return None


def horizontal_crs(crs: pyproj.CRS) -> pyproj.CRS:
    """The horizontal part of a CRS (the first component of a compound CRS)."""
    if crs.is_compound:
        return crs.sub_crs_list[0]
    return crs


def gis_crs(site_crs: str | None, layer_crs_wkt: str | None, lon: float, lat: float) -> pyproj.CRS:
    """The projected CRS the files made for GIS use (grids, rasters, layers): ``site_crs``, else
    the layer's (``layer_crs_wkt``; the first of them that is projected: a grid needs metres, or
    feet), else the UTM zone (WGS84) at ``lon``/``lat`` (degrees). Always the horizontal part."""
    for crs in (parse_crs(site_crs) if site_crs else None,
                pyproj.CRS.from_wkt(layer_crs_wkt) if layer_crs_wkt else None):
        if crs is not None and horizontal_crs(crs).is_projected:
            return horizontal_crs(crs)
    info = pyproj.database.query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=pyproj.aoi.AreaOfInterest(lon, lat, lon, lat))
    return pyproj.CRS.from_epsg(int(info[0].code))


def vertical_kind(crs: pyproj.CRS, default: str) -> str:
    """'ellipsoidal' or 'orthometric' for the heights of ``crs``; ``default`` when it does not say."""
    if crs.is_compound:
        return "orthometric" if crs.sub_crs_list[1].is_vertical else "ellipsoidal"
    if crs.is_geographic and len(crs.axis_info) == 3:
        return "ellipsoidal"
    return default


def vertical_unit(crs: pyproj.CRS) -> tuple[float, str]:
    """(metres per unit, description) of the heights of data in ``crs``.

    The height axis's unit when the CRS has one. A 2-D projected CRS has none: its heights are
    taken in its horizontal unit, as LAS producers, PDAL and LAStools do (a State Plane file in US
    feet has Z in US feet). Anything else (2-D geographic, geocentric) is metres.
    """
    if crs.is_compound:
        axes = crs.sub_crs_list[1].axis_info
    else:
        axes = [a for a in crs.axis_info if a.direction.lower() == "up"]
    if axes and axes[0].unit_conversion_factor:
        return float(axes[0].unit_conversion_factor), f"{axes[0].unit_name} (height axis)"
    if crs.is_projected:
        axis = horizontal_crs(crs).axis_info[0]
        return float(axis.unit_conversion_factor), f"{axis.unit_name} (horizontal unit; no height axis)"
    return 1.0, "metre (no height axis)"


def vertical_unit_factor(crs: pyproj.CRS) -> float:
    """Metres per unit of the heights of data in ``crs`` (see :func:`vertical_unit`)."""
    return vertical_unit(crs)[0]


#: EPSG linear unit codes used by GeoTIFF keys -> (name, metres per unit)
LINEAR_UNITS = {9001: ("metre", 1.0), 9002: ("foot", 0.3048),
                9003: ("US survey foot", 1200.0 / 3937.0)}


def with_linear_unit(crs: pyproj.CRS, unit_code: int) -> pyproj.CRS:
    """``crs`` with its horizontal axes in EPSG unit ``unit_code`` (same projection otherwise).

    For files whose unit keys override the unit of the EPSG code they name, which most readers
    ignore (laspy does too).
    """
    name, factor = LINEAR_UNITS[unit_code]
    doc = crs.to_json_dict()
    target = doc["components"][0] if doc["type"] == "CompoundCRS" else doc
    if target["type"] != "ProjectedCRS":
        raise CRSError(f"a linear unit override needs a projected CRS, not {crs.name}")
    unit = {"type": "LinearUnit", "name": name, "conversion_factor": factor}
    for axis in target["coordinate_system"]["axis"]:
        axis["unit"] = unit
    target.pop("id", None)
    target["name"] = f"{target['name']} (axes in {name})"
    if doc is not target:
        doc.pop("id", None)
        doc["name"] = f"{target['name']} + {doc['components'][1]['name']}"
    return pyproj.CRS.from_json_dict(doc)


def horizontal_unit_factor(crs: pyproj.CRS) -> float:
    """Metres per unit of the horizontal axes of a projected ``crs``."""
    axes = horizontal_crs(crs).axis_info
    return float(axes[0].unit_conversion_factor) if axes else 1.0


def resolve_geoid(spec: str) -> Path:
    """Path of the grid PROJ reads for ``spec`` ('egm96' or a file path): a GTX or GeoTIFF as
    it is, a text grid (NGII's KNGeoid node list, Gravsoft) converted once into the cache;
    GeoidError if missing or unreadable."""
    return _source_and_grid(spec)[1]


def _source_and_grid(spec: str) -> tuple[Path, Path, str]:
    """(the file named, the grid PROJ reads, its format)."""
    ensure_proj_data()
    if spec.lower() == "egm96":
        for folder in pyproj.datadir.get_data_dir().split(":") + [str(SYSTEM_PROJ_DIR)]:
            candidate = Path(folder) / EGM96_GRID
            if candidate.is_file():
                return candidate, candidate, "gtx"
        raise GeoidError(
            f"EGM96 grid {EGM96_GRID} not found; install Debian's proj-data (make setup) "
            "or set site.geoid to a grid file", path=EGM96_GRID)
    path = Path(spec)
    if not path.is_file():
        raise GeoidError("geoid grid file not found", path=path)
    kind = text_format(path)
    if kind is not None:
        return path, convert_text_grid(path, kind), kind
    _check_grid_file(path)
    return path, path, path.suffix.lower().lstrip(".") or "raster"


def _check_grid_file(path: Path) -> None:
    """GeoidError unless ``path`` is a raster PROJ can shift heights with: one that GDAL reads
    (GTX, GeoTIFF) on longitude and latitude."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as src:
            projected = src.crs is not None and not src.crs.is_geographic
            identity = src.transform.is_identity
    except RasterioError:
        raise GeoidError("not a geoid grid (expected GTX, GeoTIFF, an NGII KNGeoid node list or a "
                         "Gravsoft grid of undulations)", path=path) from None
    if projected or identity:
        raise GeoidError("not a geoid grid: its pixels are not placed on longitude and latitude", path=path)


class GeoidModel:
    """Geoid undulation N (metres) from a vertical grid: ellipsoidal h = orthometric H + N."""

    def __init__(self, grid: str | Path, info: GeoidInfo | None = None) -> None:
        self.path = Path(grid)
        if info is None:
            name, version, acc, acc_src = identify(self.path)
            info = GeoidInfo(name, version, self.path.name, self.path.suffix.lower().lstrip("."),
                             self.path.name, acc, acc_src)
        self.info = info
        # vgridshift with multiplier +1 gives Z_out = Z_in + N, so transforming height 0 yields N.
        self._t = pyproj.Transformer.from_pipeline(
            "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
            f"+step +proj=vgridshift +grids={self.path} +multiplier=1 "
            "+step +proj=unitconvert +xy_in=rad +xy_out=deg")

    @classmethod
    def from_spec(cls, spec: str, *, name: str | None = None, accuracy_m: float | None = None) -> GeoidModel:
        """'egm96' or a grid path, as in ``site.geoid``; ``name`` and ``accuracy_m`` (1 sigma,
        metres) override what the file name tells (``site.geoid_name``, ``site.geoid_accuracy_m``)."""
        source, grid, kind = _source_and_grid(spec)
        model, version, acc, acc_src = identify(source, name=name, accuracy_m=accuracy_m)
        return cls(grid, GeoidInfo(model, version, source.name, kind, grid.name, acc, acc_src))

    def undulation(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """N in metres at WGS84 ``lon``/``lat`` (degrees); GeoidError outside the grid."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        try:
            _, _, n = self._t.transform(lon, lat, np.zeros_like(lon), errcheck=True)
        except ProjError:
            raise GeoidError(
                f"point outside the geoid grid's coverage (lon {np.min(lon):.5f}..{np.max(lon):.5f}, "
                f"lat {np.min(lat):.5f}..{np.max(lat):.5f})", path=self.path) from None
        n = np.asarray(n, dtype=np.float64)
        if not np.all(np.isfinite(n)):
            raise GeoidError("point outside the geoid grid's coverage", path=self.path)
        return n


@functools.lru_cache(maxsize=32)
def _to_wgs84(crs_wkt: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(crs_wkt), pyproj.CRS.from_epsg(4326),
                                       always_xy=True, only_best=True)


def geodetic_to_source(crs: pyproj.CRS, lon: np.ndarray, lat: np.ndarray, h: np.ndarray, *,
                       heights: str, geoid: GeoidModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 lon/lat (degrees), ellipsoidal h (m) to source coordinates (the inverse of
    :func:`source_to_geodetic`): x/y in the CRS's units, z in its vertical unit."""
    n = geoid.undulation(lon, lat)
    horiz = horizontal_crs(crs)
    x, y = _to_wgs84(horiz.to_wkt()).transform(np.asarray(lon, np.float64), np.asarray(lat, np.float64),
                                               errcheck=True, direction="INVERSE")
    z = np.asarray(h, np.float64)
    if vertical_kind(crs, heights) == "orthometric":
        z = z - n
    return np.asarray(x), np.asarray(y), z / vertical_unit_factor(crs)


def source_to_lonlat(crs: pyproj.CRS, x: np.ndarray, y: np.ndarray, *,
                     path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal source coordinates (in the CRS's own units) to WGS84 lon/lat degrees."""
    horiz = horizontal_crs(crs)
    try:
        lon, lat = _to_wgs84(horiz.to_wkt()).transform(np.asarray(x, np.float64),
                                                       np.asarray(y, np.float64), errcheck=True)
    except ProjError:
        raise CRSError(f"coordinates cannot be transformed from {horiz.name}", path=path) from None
    return np.asarray(lon, np.float64), np.asarray(lat, np.float64)


def ellipsoidal_heights(crs: pyproj.CRS, z: np.ndarray, undulation: np.ndarray, *,
                        heights: str) -> np.ndarray:
    """Source heights ``z`` to WGS84 ellipsoidal metres.

    The CRS's vertical part (or ``heights`` when it has none) says whether ``z`` is orthometric,
    in which case the geoid ``undulation`` N is added (h = H + N); units become metres.
    """
    h = np.asarray(z, dtype=np.float64) * vertical_unit_factor(crs)
    if vertical_kind(crs, heights) == "orthometric":
        h = h + undulation
    return h


def source_to_geodetic(crs: pyproj.CRS, x: np.ndarray, y: np.ndarray, z: np.ndarray, *,
                       heights: str, geoid: GeoidModel,
                       path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source coordinates to WGS84 lon/lat (degrees) and ellipsoidal height (metres, EPSG:4979)."""
    lon, lat = source_to_lonlat(crs, x, y, path=path)
    n = geoid.undulation(lon, lat)
    return lon, lat, ellipsoidal_heights(crs, z, n, heights=heights)


@functools.cache
def _geodetic_ecef() -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(_WGS84, _ECEF, always_xy=True)


def geodetic_to_ecef(lon: np.ndarray, lat: np.ndarray, h: np.ndarray) -> np.ndarray:
    """WGS84 lon/lat (degrees), ellipsoidal h (m) -> ECEF (N, 3) metres (EPSG:4978)."""
    x, y, z = _geodetic_ecef().transform(lon, lat, h, errcheck=True)
    return np.column_stack([np.atleast_1d(x), np.atleast_1d(y), np.atleast_1d(z)]).astype(np.float64)


def ecef_to_geodetic(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF (N, 3) metres -> WGS84 lon, lat (degrees), ellipsoidal h (metres)."""
    xyz = np.atleast_2d(np.asarray(xyz, np.float64))
    lon, lat, h = _geodetic_ecef().transform(xyz[:, 0], xyz[:, 1], xyz[:, 2], errcheck=True,
                                             direction="INVERSE")
    return np.asarray(lon), np.asarray(lat), np.asarray(h)


def ellipsoid_normals_ecef(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Unit ellipsoid normals (N, 3) in ECEF at WGS84 ``lon``/``lat`` (degrees): the up column
    of :func:`enu_axes_ecef`, bit for bit, without its other eight components."""
    phi, lam = np.radians(np.asarray(lat, np.float64).ravel()), np.radians(np.asarray(lon, np.float64).ravel())
    cp = np.cos(phi)
    return np.column_stack([cp * np.cos(lam), cp * np.sin(lam), np.sin(phi)])


def enu_axes_ecef(lon: float | np.ndarray, lat: float | np.ndarray) -> np.ndarray:
    """(..., 3, 3) matrices whose columns are the east, north and up unit vectors (ECEF) of the
    local ENU frame at WGS84 ``lon``/``lat`` (degrees); up is the ellipsoid normal."""
    phi, lam = np.radians(np.asarray(lat, np.float64)), np.radians(np.asarray(lon, np.float64))
    sp, cp, sl, cl = np.sin(phi), np.cos(phi), np.sin(lam), np.cos(lam)
    zero = np.zeros_like(sp * sl)
    return np.stack([np.stack([-sl + zero, -sp * cl, cp * cl], axis=-1),
                     np.stack([cl + zero, -sp * sl, cp * sl], axis=-1),
                     np.stack([zero, cp + zero, sp + zero], axis=-1)], axis=-2)


@dataclass(frozen=True)
class SiteFrame:
    """The site's local ENU frame: tangent plane at ``(lat, lon, height)`` on WGS84.

    ``lat``/``lon`` in degrees, ``height`` in metres above the ellipsoid.
    """

    lat: float
    lon: float
    height: float = 0.0

    @classmethod
    def from_origin(cls, origin: dict[str, float]) -> SiteFrame:
        """From a ``{"lat", "lon", "height"}`` mapping (as georef's ``frame.json`` stores it)."""
        return cls(origin["lat"], origin["lon"], origin.get("height", 0.0))

    @functools.cached_property
    def origin_ecef(self) -> np.ndarray:
        """ECEF position (3,) of the ENU origin, metres."""
        return geodetic_to_ecef(np.array([self.lon]), np.array([self.lat]),
                                np.array([self.height]))[0]

    @functools.cached_property
    def rotation(self) -> np.ndarray:
        """3x3 matrix whose rows are the E, N, U unit vectors in ECEF (ECEF -> ENU rotation)."""
        return enu_axes_ecef(self.lon, self.lat).T

    def enu_to_ecef_matrix(self) -> np.ndarray:
        """4x4 column-vector transform ENU -> ECEF, metres (what a 3D Tiles root transform holds)."""
        m = np.eye(4)
        m[:3, :3] = self.rotation.T
        m[:3, 3] = self.origin_ecef
        return m

    def ecef_to_enu(self, xyz: np.ndarray) -> np.ndarray:
        """ECEF (N, 3) -> ENU (N, 3), metres."""
        return (np.asarray(xyz, np.float64) - self.origin_ecef) @ self.rotation.T

    def enu_to_ecef(self, enu: np.ndarray) -> np.ndarray:
        """ENU (N, 3) -> ECEF (N, 3), metres."""
        return np.asarray(enu, np.float64) @ self.rotation + self.origin_ecef

    def geodetic_to_enu(self, lon: np.ndarray, lat: np.ndarray, h: np.ndarray) -> np.ndarray:
        """WGS84 lon/lat (degrees), ellipsoidal h (m) -> ENU (N, 3) metres."""
        return self.ecef_to_enu(geodetic_to_ecef(lon, lat, h))

    def enu_to_geodetic(self, enu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ENU (N, 3) metres -> WGS84 lon, lat (degrees), ellipsoidal h (metres)."""
        return ecef_to_geodetic(self.enu_to_ecef(enu))

    def plan_to_geodetic(self, e: np.ndarray, n: np.ndarray, h: float | np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 lon, lat (degrees) of the points at ellipsoidal height ``h`` (m) whose ENU E, N
        are ``e, n`` (m): the inverse of ``geodetic_to_enu(lon, lat, h)[:, :2]``.

        Plan coordinates of this kind ("E, N at height h") do not move when a point moves along
        its own vertical, so they are where footprints and roofs are drawn. Fixed point on U: a
        wrong U moves lon/lat by U's error times the deflection of the vertical from ENU up
        (3e-4 at 2 km), so three rounds reach far below a micrometre.
        """
        e, n = np.atleast_1d(np.asarray(e, np.float64)), np.atleast_1d(np.asarray(n, np.float64))
        h = np.broadcast_to(np.asarray(h, np.float64), e.shape)
        u = h - self.height - (e * e + n * n) / (2 * 6_371_000.0)
        for _ in range(3):
            lon, lat, _ = self.enu_to_geodetic(np.column_stack([e, n, u]))
            u = self.geodetic_to_enu(lon, lat, h)[:, 2]
        lon, lat, _ = self.enu_to_geodetic(np.column_stack([e, n, u]))
        return lon, lat

    def enu_to_plan(self, enu: np.ndarray, h0: float) -> tuple[np.ndarray, np.ndarray]:
        """(plan E, N (N, 2) at ellipsoidal height ``h0``, ellipsoidal height (N,)) of ENU points
        (m): where each point's plumb line crosses ``h0``; the inverse of :meth:`plan_to_enu`."""
        lon, lat, h = self.enu_to_geodetic(enu)
        return self.geodetic_to_enu(lon, lat, np.full(len(lon), float(h0)))[:, :2], h

    def plan_to_enu(self, e: np.ndarray, n: np.ndarray, h0: float | np.ndarray, height: np.ndarray) -> np.ndarray:
        """ENU (N, 3) of points given as plan E, N at ellipsoidal height ``h0`` (one, or one per
        point) and their own
        ellipsoidal ``height`` (m): each lands on its own plumb line, so walls follow the local
        vertical wherever they stand."""
        lon, lat = self.plan_to_geodetic(e, n, h0)
        return self.geodetic_to_enu(lon, lat, np.broadcast_to(height, lon.shape))


def area_of_use(crs: pyproj.CRS) -> AreaOfUse | None:
    """The area where ``crs`` is meant to be used: its own, or, for a CRS read from WKT without
    one (WKT1 carries none), that of the EPSG CRS it matches best, or for a Transverse Mercator
    projection a band 10 degrees either side of its central meridian; None when none is known."""
    horiz = horizontal_crs(crs)
    area = horiz.area_of_use or crs.area_of_use
    if area is not None:
        return AreaOfUse(area.west, area.south, area.east, area.north, area.name)
    for match in horiz.list_authority(min_confidence=25):
        if match.auth_name == "EPSG":
            try:
                found = pyproj.CRS.from_epsg(int(match.code)).area_of_use
            except PyprojCRSError:
                continue
            if found is not None:
                return AreaOfUse(found.west, found.south, found.east, found.north,
                                 f"{found.name}, from the closest EPSG match EPSG:{match.code}")
    conversion = horiz.coordinate_operation
    if horiz.is_projected and conversion is not None and "Transverse Mercator" in conversion.method_name:
        lon0 = next((float(p.value) for p in conversion.params if "longitude" in p.name.lower()), None)
        if lon0 is not None:
            return AreaOfUse(lon0 - 10, -84, lon0 + 10, 84, "within 10 degrees of the projection's central meridian")
    return None


def check_area_of_use(crs: pyproj.CRS, lon: np.ndarray, lat: np.ndarray, *,
                      path: str | Path, margin_deg: float = 0.1) -> None:
    """CRSError if the data (WGS84 degrees) falls outside the declared CRS's area of use.

    ``margin_deg`` tolerates data just past the EPSG bounding box (which follows borders).
    """
    area = area_of_use(crs)
    if area is None:
        return
    lon, lat = np.atleast_1d(lon), np.atleast_1d(lat)
    w, s, e, n = area.west - margin_deg, area.south - margin_deg, area.east + margin_deg, area.north + margin_deg
    in_lon = (lon >= w) & (lon <= e) if w <= e else (lon >= w) | (lon <= e)
    inside = in_lon & (lat >= s) & (lat <= n)
    if not np.all(inside):
        raise CRSError(
            f"with the declared CRS {crs.name} the data lands at lon {lon.min():.5f}..{lon.max():.5f}, "
            f"lat {lat.min():.5f}..{lat.max():.5f}, outside that CRS's area of use ({area.name}: "
            f"lon {area.west:g}..{area.east:g}, lat {area.south:g}..{area.north:g}); override the "
            "input's crs in the config if it is wrong, or set accept_crs: true", path=path)


def check_near_site(frame: SiteFrame, lon: np.ndarray, lat: np.ndarray, radius_km: float, *,
                    crs_name: str, path: str | Path) -> None:
    """CRSError if any of ``lon``/``lat`` lies farther than ``radius_km`` from the site origin.

    Catches data whose declared CRS contradicts its coordinates (wrong EPSG, feet labelled metres).
    """
    geod = pyproj.Geod(ellps="WGS84")
    lon = np.atleast_1d(lon)
    lat = np.atleast_1d(lat)
    corners_lon = np.array([lon.min(), lon.max(), lon.min(), lon.max()])
    corners_lat = np.array([lat.min(), lat.min(), lat.max(), lat.max()])
    _, _, dist = geod.inv(np.full(4, frame.lon), np.full(4, frame.lat), corners_lon, corners_lat)
    if np.nanmax(dist) > radius_km * 1000.0 or not np.all(np.isfinite(dist)):
        raise CRSError(
            f"with the declared CRS {crs_name} the data lands at lon {lon.min():.5f}..{lon.max():.5f}, "
            f"lat {lat.min():.5f}..{lat.max():.5f}, {np.nanmax(dist) / 1000:.1f} km from the site origin "
            f"(limit {radius_km:g} km); override the input's crs in the config if it is wrong, "
            "or set accept_crs: true",
            path=path)
