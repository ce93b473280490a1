"""Deterministic synthetic sample of Sangam DMC in EPSG:5186 with orthometric (EGM96) heights.

The sample is synthetic: a terrain function with the district's character (a flat former landfill
plain at 12-20 m with the World Cup Park mounds rising to ~98 m in the south-west), buildings at
approximate real landmark positions plus generated office and housing blocks, street trees, and an
aerial LiDAR scan of the DMC core simulated from that model. Everything is produced from one seed,
so the same seed gives byte-identical files. The generator also writes the truth it used (per-point
classes, building heights), so tests can score the pipeline against it.

Local coordinates ``dx, dy`` are EPSG:5186 metres relative to the site origin's projection.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import laspy
import numpy as np
import numpy.typing as npt
import pyproj
import rasterio
import shapely
from rasterio.transform import from_origin
from scipy.spatial import cKDTree
from shapely import affinity
from shapely.geometry import Point, Polygon, box, mapping

from pipeline.samples.landmarks import LANDMARKS

SEED = 20231027
ORIGIN_LAT, ORIGIN_LON = 37.5770, 126.8898
CRS_EPSG = 5186
VERTICAL_EPSG = 5773  # EGM96 height: the sample's orthometric heights refer to the EGM96 geoid

#: local extents (metres, EPSG:5186 offsets from the origin)
DEM_EXTENT = (-1100.0, -1300.0, 1100.0, 700.0)  # xmin, ymin, xmax, ymax
DEM_RESOLUTION = 5.0
LIDAR_EXTENT = (-240.0, -180.0, 280.0, 460.0)
LIDAR_DENSITY = 10.0  # points per m^2
DISTRICT_GRID_ROTATION = 28.0  # degrees, DMC's street grid relative to grid east

#: ASPRS classes used in the truth
GROUND, LOW_VEGETATION, HIGH_VEGETATION, BUILDING, NOISE = 2, 3, 5, 6, 7


def origin_xy() -> tuple[float, float]:
    """EPSG:5186 easting/northing (m) of the site origin."""
    t = pyproj.Transformer.from_crs("EPSG:4326", f"EPSG:{CRS_EPSG}", always_xy=True)
    x, y = t.transform(ORIGIN_LON, ORIGIN_LAT)
    return float(x), float(y)


def _smoothstep(e0: float, e1: float, v: np.ndarray) -> np.ndarray:
    t = np.clip((v - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mound(dx: np.ndarray, dy: np.ndarray, cx: float, cy: float, a: float, b: float,
           rot_deg: float, rise: float) -> np.ndarray:
    """A flat-topped landfill mound: super-ellipse plateau with steep sides (m)."""
    r = np.radians(rot_deg)
    u = (dx - cx) * np.cos(r) + (dy - cy) * np.sin(r)
    v = -(dx - cx) * np.sin(r) + (dy - cy) * np.cos(r)
    rho = ((np.abs(u) / a) ** 4 + (np.abs(v) / b) ** 4) ** 0.25
    return rise * (1.0 - _smoothstep(0.72, 1.12, rho))


def terrain_local(dx: npt.ArrayLike, dy: npt.ArrayLike) -> np.ndarray:
    """True terrain height (m, orthometric/EGM96) at local offsets ``dx, dy`` (m)."""
    dx = np.asarray(dx, np.float64)
    dy = np.asarray(dy, np.float64)
    plain = (13.5 + 0.0035 * dx + 0.0025 * dy
             + 0.6 * np.sin(dx / 140.0) * np.cos(dy / 170.0)
             + 0.25 * np.sin((dx + dy) / 55.0))
    haneul = _mound(dx, dy, -430.0, -1060.0, 470.0, 190.0, 18.0, 84.0)
    noeul = _mound(dx, dy, -1060.0, -915.0, 330.0, 190.0, 12.0, 78.0)
    return plain + haneul + noeul


def terrain_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True terrain height (m, orthometric/EGM96) at EPSG:5186 ``x, y`` (m)."""
    x0, y0 = origin_xy()
    return terrain_local(np.asarray(x) - x0, np.asarray(y) - y0)


@dataclass
class Roof:
    """A pitched roof over a rectangular footprint: ``kind`` gable, hip or shed.

    The rectangle is centred on ``cx, cy`` (local m) with ``width`` along its own u axis, which is
    grid east turned ``rotation`` degrees counter-clockwise, and ``depth`` along v. Gable and hip
    ridges run along the longer side; a shed falls along the shorter one. ``pitch`` in degrees.
    """

    kind: str
    pitch: float
    cx: float
    cy: float
    width: float
    depth: float
    rotation: float

    def rise(self) -> float:
        """Height (m) of the ridge (shed: the high eave) above the low eaves."""
        run = min(self.width, self.depth)
        return float(np.tan(np.radians(self.pitch)) * (run if self.kind == "shed" else run / 2))

    def drop(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """How far (m) the roof surface at local ``x, y`` lies below the ridge (>= 0)."""
        r = np.radians(self.rotation)
        u = (x - self.cx) * np.cos(r) + (y - self.cy) * np.sin(r)
        v = -(x - self.cx) * np.sin(r) + (y - self.cy) * np.cos(r)
        if self.depth > self.width:  # ridge along the longer side: make that u
            u, v = v, -u
        long_half, short_half = max(self.width, self.depth) / 2, min(self.width, self.depth) / 2
        t = np.tan(np.radians(self.pitch))
        if self.kind == "gable":
            return t * np.abs(v)
        if self.kind == "hip":
            return t * np.maximum(np.abs(v), np.abs(u) - (long_half - short_half))
        return t * (v + short_half)  # shed: high eave along v = -short_half


@dataclass
class Building:
    id: str
    name: str
    use: str
    floors: int
    height: float           # true height of the highest roof point above the base, metres
    footprint: Polygon      # local coordinates (m)
    base: float = 0.0       # lowest terrain height under the footprint (m, orthometric)
    height_attribute: bool = True  # whether the footprint file carries the height
    landmark: bool = False
    roof: Roof | None = None  # None: flat roof at base + height
    extra: dict = field(default_factory=dict)

    def roof_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True roof surface (m, orthometric) at local ``x, y`` inside the footprint."""
        top = np.full(np.shape(x), self.base + self.height)
        return top if self.roof is None else top - self.roof.drop(np.asarray(x), np.asarray(y))

    def roof_truth(self) -> dict:
        """The roof as the truth file records it (heights orthometric m)."""
        top = round(self.base + self.height, 4)
        if self.roof is None:
            return {"type": "flat", "ridge": top, "eave": top}
        return {"type": self.roof.kind, "pitch_deg": self.roof.pitch, "ridge": top,
                "eave": round(self.base + self.height - self.roof.rise(), 4)}


def _rect(cx: float, cy: float, w: float, d: float, rot: float) -> Polygon:
    return affinity.rotate(box(cx - w / 2, cy - d / 2, cx + w / 2, cy + d / 2), rot, origin=(cx, cy))


def _landmark_footprint(lm, cx: float, cy: float) -> Polygon:
    if lm.ellipse:
        outer = affinity.scale(Point(cx, cy).buffer(1.0, 64), lm.width / 2, lm.depth / 2)
        inner = affinity.scale(Point(cx, cy).buffer(1.0, 64), lm.courtyard[0] / 2, lm.courtyard[1] / 2)
        poly = Polygon(outer.exterior.coords, [inner.exterior.coords])
        return affinity.rotate(poly, lm.rotation, origin=(cx, cy))
    poly = _rect(cx, cy, lm.width, lm.depth, lm.rotation)
    if lm.courtyard:
        hole = _rect(cx, cy, lm.courtyard[0], lm.courtyard[1], lm.rotation)
        poly = Polygon(poly.exterior.coords, [hole.exterior.coords])
    return poly


def make_buildings(rng: np.random.Generator, core: tuple[float, float, float, float] = (-225.0, -165.0, 265.0, 445.0),
                   n_core: int = 36, roof_seed: int = SEED) -> list[Building]:
    """Landmarks at their approximate real positions, then ``n_core`` office blocks in ``core``
    (local xmin, ymin, xmax, ymax) and housing blocks north-west of the district.

    About half of the rectangular blocks get a gable, hip or shed roof; those draws come from
    their own generator (``roof_seed``), so the placement of everything else does not depend on them.
    """
    x0, y0 = origin_xy()
    roof_rng = np.random.default_rng(roof_seed)
    to_tm = pyproj.Transformer.from_crs("EPSG:4326", f"EPSG:{CRS_EPSG}", always_xy=True)
    buildings: list[Building] = []
    for i, lm in enumerate(LANDMARKS):
        x, y = to_tm.transform(lm.lon, lm.lat)
        fp = _landmark_footprint(lm, x - x0, y - y0)
        buildings.append(Building(f"DMC-L{i + 1:03d}", lm.name, lm.use, lm.floors, lm.height,
                                  fp, landmark=True))
    overlaps = [(a.name, b.name) for i, a in enumerate(buildings) for b in buildings[i + 1:]
                if a.footprint.intersects(b.footprint)]
    if overlaps:
        raise ValueError(f"landmark footprints overlap: {overlaps}")
    occupied = [b.footprint.buffer(10.0) for b in buildings]

    def place(n: int, region: tuple[float, float, float, float], use_choices: list[str],
              floors_range: tuple[int, int], prefix: str, start: int) -> None:
        count, tries = 0, 0
        rot = DISTRICT_GRID_ROTATION
        while count < n and tries < 5000:
            tries += 1
            cx = rng.uniform(region[0], region[2])
            cy = rng.uniform(region[1], region[3])
            w, d = rng.uniform(22, 46), rng.uniform(16, 32)
            fp = box(cx - w / 2, cy - d / 2, cx + w / 2, cy + d / 2)
            l_shaped = rng.random() < 0.3
            if l_shaped:  # L-shaped block: a wing on one corner
                fp = shapely.union(fp, box(cx + w / 2 - 12, cy + d / 2 - 1, cx + w / 2, cy + d / 2 + 12))
                fp = shapely.normalize(shapely.simplify(fp, 0.01))
            fp = affinity.rotate(fp, rot, origin=(cx, cy))
            if any(fp.intersects(o) for o in occupied):
                continue
            floors = int(rng.integers(*floors_range))
            height = round(floors * rng.uniform(3.6, 4.2) + rng.uniform(1.0, 3.0), 2)
            use = str(rng.choice(use_choices))
            idx = start + count
            roof = None
            kind_draw, pitch_draw = roof_rng.random(), roof_rng.random()
            if not l_shaped and kind_draw < 0.55:
                kind = "gable" if kind_draw < 0.25 else "hip" if kind_draw < 0.45 else "shed"
                pitch = round(6.0 + 8.0 * pitch_draw if kind == "shed" else 18.0 + 17.0 * pitch_draw, 1)
                roof = Roof(kind, pitch, cx, cy, w, d, rot)
                height = round(height + roof.rise(), 2)  # the storeys stay; the roof sits on them
            buildings.append(Building(f"DMC-{prefix}{idx:03d}", f"{use.title()} block {idx}", use, floors,
                                      height, fp, height_attribute=bool(rng.random() < 0.5), roof=roof))
            occupied.append(fp.buffer(8.0))
            count += 1

    # office blocks in the LiDAR-covered core, housing blocks north-west outside it
    place(n_core, core, ["office", "office", "office", "retail", "public"], (4, 21), "B", 1)
    place(8, (-900.0, 100.0, -380.0, 650.0), ["residential"], (12, 26), "R", 1)
    for b in buildings:
        b.base = float(_min_terrain_under(b.footprint))
    return buildings


def _min_terrain_under(fp: Polygon) -> float:
    """Lowest true terrain height (m) under a footprint, sampled on a 0.5 m lattice and the ring."""
    minx, miny, maxx, maxy = fp.bounds
    gx, gy = np.meshgrid(np.arange(minx, maxx + 0.5, 0.5), np.arange(miny, maxy + 0.5, 0.5))
    inside = shapely.contains_xy(fp, gx.ravel(), gy.ravel())
    ring = np.asarray(fp.exterior.coords)
    xs = np.concatenate([gx.ravel()[inside], ring[:, 0]])
    ys = np.concatenate([gy.ravel()[inside], ring[:, 1]])
    return float(np.min(terrain_local(xs, ys)))


def make_trees(rng: np.random.Generator, buildings: list[Building],
               extent: tuple[float, float, float, float] = LIDAR_EXTENT, n: int = 1400) -> np.ndarray:
    """Street and park trees in ``extent``: (N, 4) array of dx, dy, crown radius, height (m)."""
    xmin, ymin, xmax, ymax = extent
    blocked = shapely.union_all([b.footprint.buffer(6.0) for b in buildings])
    shapely.prepare(blocked)
    cand = np.column_stack([rng.uniform(xmin, xmax, n * 2), rng.uniform(ymin, ymax, n * 2)])
    free = ~shapely.contains_xy(blocked, cand[:, 0], cand[:, 1])
    cand = cand[free][:n]
    radius = rng.uniform(2.0, 4.5, len(cand))
    height = rng.uniform(6.0, 14.0, len(cand))
    return np.column_stack([cand, radius, height])


def simulate_lidar(rng: np.random.Generator, buildings: list[Building], trees: np.ndarray,
                   extent: tuple[float, float, float, float] = LIDAR_EXTENT, density: float = LIDAR_DENSITY
                   ) -> dict:
    """Aerial LiDAR over ``extent`` at ``density`` points per m²: local x, y, z (m) with
    attributes and true classes."""
    xmin, ymin, xmax, ymax = extent
    s = 1.0 / np.sqrt(density)
    gx = np.arange(xmin + s / 2, xmax, s)
    gy = np.arange(ymin + s / 2, ymax, s)
    # scan lines run west-east and are recorded in order: that coherence is what LAZ compresses well
    yy, xx = np.meshgrid(gy, gx, indexing="ij")
    x = xx.ravel() + rng.uniform(-0.4 * s, 0.4 * s, xx.size)
    y = yy.ravel() + rng.uniform(-0.4 * s, 0.4 * s, yy.size)
    n = x.size
    ground = terrain_local(x, y)
    z = ground.copy()
    cls = np.full(n, GROUND, np.uint8)
    returns = np.ones(n, np.uint8)
    n_returns = np.ones(n, np.uint8)
    use_of = np.full(n, -1, np.int16)

    for i, b in enumerate(buildings):
        minx, miny, maxx, maxy = b.footprint.bounds
        cand = np.flatnonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))
        if cand.size == 0:
            continue
        inside = cand[shapely.contains_xy(b.footprint, x[cand], y[cand])]
        z[inside] = b.roof_height(x[inside], y[inside])
        cls[inside] = BUILDING
        use_of[inside] = i

    tree_xy = trees[:, :2]
    dist, idx = cKDTree(tree_xy).query(np.column_stack([x, y]), distance_upper_bound=float(trees[:, 2].max()))
    hit = np.isfinite(dist) & (cls == GROUND)
    hit[hit] = dist[hit] < trees[idx[hit], 2]
    canopy = hit & (rng.random(n) < 0.65)
    through = hit & ~canopy
    t = idx[canopy]
    crown_depth = 0.45 * trees[t, 3]
    z[canopy] = ground[canopy] + trees[t, 3] - crown_depth * (dist[canopy] / trees[t, 2]) ** 2
    cls[canopy] = HIGH_VEGETATION
    returns[canopy], n_returns[canopy] = 1, 2
    returns[through], n_returns[through] = 2, 2

    z += rng.normal(0.0, 0.03, n)
    outlier = rng.random(n) < 3e-4
    z[outlier] += rng.choice([-1.0, 1.0], outlier.sum()) * rng.uniform(15.0, 60.0, outlier.sum())
    cls[outlier] = NOISE

    palette_ground = np.array([92, 92, 98])
    palette_tree = np.array([62, 112, 52])
    roof_palette = {"broadcast": (150, 160, 175), "office": (175, 175, 170), "retail": (190, 160, 130),
                    "public": (160, 150, 140), "culture": (170, 140, 120), "transport": (130, 130, 140),
                    "stadium": (220, 220, 225), "residential": (185, 120, 100)}
    rgb = np.tile(palette_ground, (n, 1)).astype(np.float64)
    rgb[cls == HIGH_VEGETATION] = palette_tree
    bmask = use_of >= 0
    uses = np.array([roof_palette.get(b.use, (170, 170, 170)) for b in buildings], np.float64)
    rgb[bmask] = uses[use_of[bmask]]
    rgb += rng.normal(0.0, 2.0, (n, 1))
    rgb = (np.clip(rgb, 0, 255) * 257).astype(np.uint16)
    base_int = np.where(cls == BUILDING, 1800, np.where(cls == HIGH_VEGETATION, 700, 1200))
    intensity = np.clip(base_int + rng.normal(0, 25, n), 0, 65535).astype(np.uint16)
    return {"x": x, "y": y, "z": z, "cls": cls, "return_number": returns,
            "number_of_returns": n_returns, "rgb": rgb, "intensity": intensity}


def compound_crs() -> pyproj.CRS:
    """EPSG:5186 + EGM96 height: the sample's horizontal and vertical reference."""
    return pyproj.CRS.from_user_input(f"EPSG:{CRS_EPSG}+{VERTICAL_EPSG}")


def city_cloud(path: str | Path, n_points: int, seed: int = SEED, classes_path: str | Path | None = None,
               density: float = LIDAR_DENSITY, width: float | None = None) -> int:
    """Write an aerial LiDAR file (.las or .laz by suffix) of about ``n_points`` at ``density``
    points per m² over a square around the origin (or a north-south strip ``width`` m wide): the
    sample's model grown to the size asked (for benchmarks and tests). Returns the number of
    points written; ``classes_path`` gets their true ASPRS classes (.npy)."""
    area = n_points / density
    side_e = side_n = float(np.sqrt(area))
    margin = 30.0
    if width:
        side_e, side_n, margin = float(width), area / width, min(margin, width / 4)
    extent = (-side_e / 2, -side_n / 2, side_e / 2, side_n / 2)
    rng = np.random.default_rng(seed)
    buildings = make_buildings(rng, core=(extent[0] + margin, extent[1] + 30, extent[2] - margin, extent[3] - 30),
                               n_core=int(area / 9000))
    trees = make_trees(rng, buildings, extent, n=int(area / 250))
    pts = simulate_lidar(rng, buildings, trees, extent, density)
    x0, y0 = origin_xy()
    write_laz(Path(path), pts, x0, y0)
    if classes_path is not None:
        np.save(classes_path, pts["cls"])
    return int(len(pts["x"]))


def write_laz(path: Path, pts: dict, x0: float, y0: float) -> None:
    """LAS 1.4 point format 7 (RGB), unclassified, with a WKT CRS VLR (LAZ when the suffix says)."""
    header = laspy.LasHeader(point_format=7, version="1.4")
    header.scales = np.array([0.01, 0.01, 0.01])  # 1 cm, as most aerial surveys deliver
    header.offsets = np.array([round(x0, -3), round(y0, -3), 0.0])
    header.add_crs(compound_crs())
    header.creation_date = _dt.date(2023, 10, 27)  # fixed, so the file is byte-reproducible
    header.system_identifier = "dmc-twin synthetic sample"
    header.generating_software = "dmc-twin sample generator"
    las = laspy.LasData(header)
    las.x = pts["x"] + x0
    las.y = pts["y"] + y0
    las.z = pts["z"]
    las.intensity = pts["intensity"]
    las.return_number = pts["return_number"]
    las.number_of_returns = pts["number_of_returns"]
    las.classification = np.ones(len(pts["x"]), np.uint8)  # unclassified (ASPRS 1)
    las.red, las.green, las.blue = pts["rgb"][:, 0], pts["rgb"][:, 1], pts["rgb"][:, 2]
    las.gps_time = 386_000.0 + np.arange(len(pts["x"])) * 2e-6
    las.write(path)


def write_dem(path: Path, x0: float, y0: float) -> None:
    """5 m DEM GeoTIFF (EPSG:5186, float32 orthometric metres, nodata -9999) of the true terrain."""
    xmin, ymin, xmax, ymax = DEM_EXTENT
    r = DEM_RESOLUTION
    cols, rows = int((xmax - xmin) / r), int((ymax - ymin) / r)
    cx = xmin + r / 2 + np.arange(cols) * r
    cy = ymax - r / 2 - np.arange(rows) * r
    gx, gy = np.meshgrid(cx, cy)
    dem = terrain_local(gx, gy).astype(np.float32)
    dem[:6, -10:] = -9999.0  # a nodata patch in a corner, as real DEM tiles have
    profile = dict(driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
                   crs=f"EPSG:{CRS_EPSG}", transform=from_origin(x0 + xmin, y0 + ymax, r, r),
                   nodata=-9999.0, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                   predictor=3)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(dem, 1)


def _feature_collection(features: list[dict], crs_urn: str | None) -> dict:
    fc: dict = {"type": "FeatureCollection"}
    if crs_urn:
        fc["crs"] = {"type": "name", "properties": {"name": crs_urn}}
    fc["features"] = features
    return fc


def _round_coords(geom: dict, nd: int) -> dict:
    def rnd(c):
        return [rnd(v) for v in c] if isinstance(c[0], (list, tuple)) else [round(v, nd) for v in c]
    return {"type": geom["type"], "coordinates": rnd(geom["coordinates"])}


def write_footprints(path: Path, buildings: list[Building], x0: float, y0: float) -> None:
    """Footprints GeoJSON in EPSG:5186 (named by the legacy ``crs`` member GDAL honours)."""
    feats = []
    for b in buildings:
        geom = affinity.translate(b.footprint, x0, y0)
        props = {"id": b.id, "name": b.name, "use": b.use, "floors": b.floors,
                 "height": round(b.height, 2) if b.height_attribute else None}
        feats.append({"type": "Feature", "properties": props,
                      "geometry": _round_coords(mapping(geom), 3)})
    path.write_text(json.dumps(_feature_collection(feats, f"urn:ogc:def:crs:EPSG::{CRS_EPSG}"), indent=1))


def write_gcps(path: Path, rng: np.random.Generator, buildings: list[Building], trees: np.ndarray,
               x0: float, y0: float, n: int = 10) -> None:
    """Surveyed check points on open ground inside the LiDAR extent: id,x,y,z (EPSG:5186, EGM96 m)."""
    xmin, ymin, xmax, ymax = LIDAR_EXTENT
    blocked = shapely.union_all([b.footprint.buffer(8.0) for b in buildings]
                                + [Point(t[0], t[1]).buffer(t[2] + 4.0) for t in trees])
    rows = ["id,x,y,z"]
    k = 0
    while k < n:
        px, py = rng.uniform(xmin + 20, xmax - 20), rng.uniform(ymin + 20, ymax - 20)
        if blocked.contains(Point(px, py)):
            continue
        k += 1
        rows.append(f"GCP{k:02d},{px + x0:.3f},{py + y0:.3f},{float(terrain_local(px, py)):.3f}")
    path.write_text("\n".join(rows) + "\n")


POIS = (
    ("DMC Station Exit 2", "transit_exit", 37.57745, 126.89905),
    ("DMC Station Exit 9", "transit_exit", 37.57660, 126.89860),
    ("Nuri Dream Square Plaza", "plaza", 37.57935, 126.89060),
    ("한국영상자료원 입구", "entrance", 37.57650, 126.89080),
    ("MBC Plaza", "plaza", 37.58070, 126.89050),
    ("Sangam DMC Culture Park", "park", 37.57560, 126.89210),
    ("C-ITS Roadside Unit 1", "c_its_rsu", 37.57830, 126.88990),
    ("C-ITS Roadside Unit 2", "c_its_rsu", 37.57700, 126.89300),
    ("Bus stop DMC Hi-Tech Center", "bus_stop", 37.57580, 126.88850),
    ("World Cup Stadium North Gate", "entrance", 37.56965, 126.89720),
    ("Haneul Park Summit", "viewpoint", 37.56730, 126.88520),
)


def write_pois(path: Path) -> None:
    """POIs GeoJSON in CRS84 (RFC 7946, no crs member)."""
    feats = [{"type": "Feature", "properties": {"name": name, "kind": kind},
              "geometry": {"type": "Point", "coordinates": [lon, lat]}}
             for name, kind, lat, lon in POIS]
    path.write_text(json.dumps(_feature_collection(feats, None), indent=1))


#: a design model of a proposed tower on an empty lot of the LiDAR area (local m, EPSG:5186 offsets
#: from the origin); the real DMC landmark tower (133 floors) was planned in 2009 and never built
TOWER: dict[str, Any] = {"id": "DMC-P001", "name": "DMC Landmark Tower (proposal)", "use": "proposed",
                         "local": (225.0, 290.0), "heading_deg": 332.0, "height": 320.0, "base": 44.0,
                         "top": 22.0, "twist_deg": 90.0, "storey": 4.0, "segments": 32}


def tower_model() -> tuple[np.ndarray, np.ndarray]:
    """The proposed tower in its own frame (metres; x east, y north, z up before the heading):
    a rounded square tapering and twisting upwards, closed by flat caps. Like most CAD exports it
    repeats the vertices along one seam of its sides (where texture coordinates would wrap), so
    the pipeline has something to repair."""
    t = TOWER
    k, levels = t["segments"], int(t["height"] / t["storey"]) + 1
    ang = np.linspace(0.0, 2 * np.pi, k + 1)  # the last column repeats the first: the seam
    # a superellipse of exponent 4: a square with rounded corners
    ux = np.sign(np.cos(ang)) * np.abs(np.cos(ang)) ** 0.5
    uy = np.sign(np.sin(ang)) * np.abs(np.sin(ang)) ** 0.5
    ux[-1], uy[-1] = ux[0], uy[0]
    z = np.linspace(0.0, t["height"], levels)
    half = (t["base"] + (t["top"] - t["base"]) * z / t["height"]) / 2
    twist = np.radians(t["twist_deg"]) * z / t["height"]
    c, s_ = np.cos(twist)[:, None], np.sin(twist)[:, None]
    x = half[:, None] * (ux[None, :] * c - uy[None, :] * s_)
    y = half[:, None] * (ux[None, :] * s_ + uy[None, :] * c)
    side = np.stack([x, y, np.broadcast_to(z[:, None], x.shape)], axis=-1).reshape(-1, 3)
    idx = np.arange(levels * (k + 1)).reshape(levels, k + 1)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    cc, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = [np.column_stack([a, b, d]), np.column_stack([a, d, cc])]
    n = len(side)
    caps = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, t["height"]]])
    ring = np.arange(k)
    faces.append(np.column_stack([np.full(k, n), idx[0, ring + 1], idx[0, ring]]))
    faces.append(np.column_stack([np.full(k, n + 1), idx[-1, ring], idx[-1, ring + 1]]))
    return np.vstack([side, caps]), np.concatenate(faces).astype(np.uint32)


def write_tower(path: Path) -> None:
    """The tower as a GLB (glTF is y-up: x, z, -y), written by the pipeline's own deterministic
    glTF writer so the bytes never change."""
    from pipeline.core.gltf import ARRAY_BUFFER, TRIANGLES, GltfBuilder, enu_to_gltf

    v, f = tower_model()
    b = GltfBuilder()
    pos = b.accessor(enu_to_gltf(v).astype(np.float32), target=ARRAY_BUFFER, minmax=True)
    b.mesh_node([{"attributes": {"POSITION": pos}, "indices": b.indices(f), "mode": TRIANGLES}])
    path.write_bytes(b.to_glb())


def tower_origin() -> tuple[float, float, float]:
    """EPSG:5186 x, y and orthometric (EGM96) height of the tower model's origin: the lowest
    ground under its base."""
    x0, y0 = origin_xy()
    lx, ly = TOWER["local"]
    r = TOWER["base"] / 2 * 1.5
    gx, gy = np.meshgrid(np.linspace(lx - r, lx + r, 41), np.linspace(ly - r, ly + r, 41))
    return x0 + lx, y0 + ly, round(float(terrain_local(gx, gy).min()), 3)


def generate(out_dir: str | Path, seed: int = SEED) -> dict:
    """Write the sample into ``out_dir``; return a summary. Same seed, same bytes."""
    out = Path(out_dir)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x0, y0 = origin_xy()
    buildings = make_buildings(rng)
    trees = make_trees(rng, buildings)
    pts = simulate_lidar(rng, buildings, trees)
    write_laz(out / "dmc_aerial.laz", pts, x0, y0)
    write_dem(out / "dem.tif", x0, y0)
    write_footprints(out / "buildings.geojson", buildings, x0, y0)
    write_gcps(out / "gcps.csv", rng, buildings, trees, x0, y0)
    write_pois(out / "pois.geojson")
    write_tower(out / "landmark_tower.glb")
    np.savez_compressed(out / "truth" / "point_classes.npz", classes=pts["cls"])
    truth = {
        "seed": seed, "crs": f"EPSG:{CRS_EPSG}+{VERTICAL_EPSG}",
        "origin": {"lat": ORIGIN_LAT, "lon": ORIGIN_LON, "x": x0, "y": y0},
        "lidar_extent_local": LIDAR_EXTENT, "dem_extent_local": DEM_EXTENT,
        "buildings": [{"id": b.id, "name": b.name, "use": b.use, "floors": b.floors,
                       "base": round(b.base, 4), "height": b.height,
                       "roof": round(b.base + b.height, 4), "roof_shape": b.roof_truth(),
                       "landmark": b.landmark,
                       "footprint_wkt": shapely.to_wkt(affinity.translate(b.footprint, x0, y0),
                                                       rounding_precision=3)}
                      for b in buildings],
        "trees": int(len(trees)),
        "points": int(len(pts["x"])),
        "model": {"file": "landmark_tower.glb", "id": TOWER["id"], "origin": list(tower_origin()),
                  "heading_deg": TOWER["heading_deg"], "height": TOWER["height"], "up_axis": "y"},
    }
    (out / "truth" / "truth.json").write_text(json.dumps(truth, indent=1))
    return {"buildings": len(buildings), "points": int(len(pts["x"])), "trees": int(len(trees))}
