"""A procedural Seoul-like city for scale tests: building footprints at Seoul's density and height
mix, and a DEM with Seoul's relief, around the Sangam origin (EPSG:5186, orthometric heights).

Seoul has about 600,000 buildings on 605 km² (about 990 per km²), mostly low-rise houses with a
tail of apartment and office towers, in a basin around the Han river ringed by mountains of
300-840 m. The city here keeps those figures, not Seoul's map:

- buildings: one per cell of a jittered grid at that density (so none overlap), turned with
  their district (500 m squares, each its own street angle); footprint areas log-normal
  (median 110 m², clipped to the cell); floors from a low-rise / mid-rise / tower mixture at
  3.3 m a storey, carried as the ``floors`` and ``height`` attributes;
- terrain: 12 m river plain rising to hills, a few Gaussian mountains and fractal roughness
  (spectral synthesis at 50 m, interpolated to the DEM's cells), written block by block.

Everything follows from ``seed``, so a size is the same city every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.samples.generator import origin_xy

#: buildings per km² (Seoul: about 600,000 on 605 km²)
DENSITY_PER_KM2 = 990.0
STOREY_M = 3.3
DISTRICT_M = 500.0
#: half the side of the square the relief is laid on (Seoul's 605 km²): a smaller city is its centre
SEOUL_HALF_M = 12_300.0


@dataclass(frozen=True)
class City:
    """A generated city: its footprints (GeoPackage), DEM (GeoTIFF), extent (EPSG:5186 west,
    south, east, north, m) and building count."""

    footprints: Path
    dem: Path
    bounds: tuple[float, float, float, float]
    buildings: int


def _footprints(n: int, rng: np.random.Generator, centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(rings (n, 5, 2) EPSG:5186 closed, floors (n,)) of ``n`` buildings around ``centre``."""
    cell = 1000.0 / np.sqrt(DENSITY_PER_KM2)
    side = int(np.ceil(np.sqrt(n)))
    k = rng.permutation(side * side)[:n]
    gx, gy = (k % side - side / 2) * cell, (k // side - side / 2) * cell
    cx = centre[0] + gx + cell / 2 + rng.uniform(-0.05, 0.05, n) * cell
    cy = centre[1] + gy + cell / 2 + rng.uniform(-0.05, 0.05, n) * cell
    district = (np.floor(gx / DISTRICT_M) * 7919 + np.floor(gy / DISTRICT_M)).astype(np.int64)
    angle = np.deg2rad((district * 37 % 90).astype(np.float64))
    area = np.exp(rng.normal(np.log(110.0), 0.7, n))
    aspect = rng.uniform(1.0, 2.5, n)
    w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
    # the footprint's half-diagonal stays inside 45 % of the cell: neighbours never overlap
    shrink = np.minimum(1.0, 0.45 * cell / (0.5 * np.hypot(w, h)))
    w, h = w * shrink, h * shrink
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    local = corners[None] * np.stack([w, h], axis=1)[:, None, :]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    rings = np.stack([local[..., 0] * c - local[..., 1] * s + cx[:, None],
                      local[..., 0] * s + local[..., 1] * c + cy[:, None]], axis=-1)
    kind = rng.uniform(size=n)
    floors = np.where(kind < 0.75, 1 + rng.poisson(2.0, n),
                      np.where(kind < 0.95, rng.integers(5, 13, n), rng.integers(15, 36, n)))
    return rings, floors.astype(np.int64)


def _relief(e: np.ndarray, n: np.ndarray, centre: tuple[float, float], half: float) -> np.ndarray:
    """Orthometric heights (m) at plan points: a river plain, mountains near the edges, roughness."""
    u, v = (e - centre[0]) / half, (n - centre[1]) / half
    plain = 12.0 + 25.0 * np.clip(np.hypot(u, v) - 0.2, 0.0, None) ** 2 + 8.0 * np.abs(v + 0.1 * np.sin(3 * u))
    peaks = np.array([[-0.7, 0.8, 640.0, 0.18], [0.1, 0.95, 830.0, 0.15], [0.6, -0.85, 630.0, 0.14],
                      [-0.9, -0.3, 350.0, 0.12], [0.85, 0.4, 300.0, 0.1]])
    mountains = sum(p[2] * np.exp(-((u - p[0]) ** 2 + (v - p[1]) ** 2) / (2 * p[3] ** 2)) for p in peaks)
    return plain + mountains


def _roughness(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fractal noise (size, size), unit standard deviation, by spectral synthesis (1/f^2 power)."""
    f = np.fft.fftfreq(size)
    k = np.hypot(*np.meshgrid(f, f))
    k[0, 0] = 1.0
    spectrum = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / k ** 1.8
    spectrum[0, 0] = 0.0
    field = np.fft.ifft2(spectrum).real
    return field / field.std()


def generate_city(n: int, out: Path, *, seed: int = 17, dem_res: float = 5.0, margin: float = 200.0) -> City:
    """Write ``n`` buildings (``out/footprints.gpkg``) and a DEM at ``dem_res`` m
    (``out/dem.tif``) covering them and ``margin`` m around; returns what was written."""
    import pyogrio.raw
    import rasterio
    import shapely
    from rasterio.transform import from_origin
    from scipy.ndimage import map_coordinates

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centre = origin_xy()
    rings, floors = _footprints(n, rng, centre)
    heights = np.round(floors * STOREY_M + rng.uniform(-0.5, 0.5, n), 1)
    ids = np.array([f"11{k:017d}" for k in range(n)], dtype=object)
    gpkg = out / "footprints.gpkg"
    gpkg.unlink(missing_ok=True)
    pyogrio.raw.write(gpkg, shapely.to_wkb(shapely.polygons(rings)), [ids, floors, heights],
                      ["id", "floors", "height"], crs="EPSG:5186", geometry_type="Polygon", driver="GPKG")
    lo, hi = rings.reshape(-1, 2).min(axis=0) - margin, rings.reshape(-1, 2).max(axis=0) + margin
    width, height = int(np.ceil((hi[0] - lo[0]) / dem_res)), int(np.ceil((hi[1] - lo[1]) / dem_res))
    half = max(hi[0] - lo[0], hi[1] - lo[1]) / 2
    coarse = _roughness(rng, max(16, int(2 * half / 50.0)))  # 50 m cells over the DEM
    dem = out / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
                       crs="EPSG:5186", transform=from_origin(lo[0], hi[1], dem_res, dem_res), nodata=-9999.0,
                       tiled=True, blockxsize=512, blockysize=512, compress="deflate", predictor=3) as dst:
        cols = np.arange(width)
        for r0 in range(0, height, 512):
            rows = np.arange(r0, min(r0 + 512, height))
            e, nn = np.meshgrid(lo[0] + (cols + 0.5) * dem_res, hi[1] - (rows + 0.5) * dem_res)
            z = _relief(e, nn, centre, SEOUL_HALF_M)
            # roughness: 3 m on the plain, growing with the slope of the mountains
            at = np.stack([(hi[1] - nn) / (2 * half) * (coarse.shape[0] - 1),
                           (e - lo[0]) / (2 * half) * (coarse.shape[1] - 1)])
            z += (3.0 + 0.02 * (z - 12.0)) * map_coordinates(coarse, at, order=1, mode="reflect")
            dst.write(z.astype(np.float32), 1, window=rasterio.windows.Window(0, r0, width, len(rows)))
    return City(gpkg, dem, (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), n)
