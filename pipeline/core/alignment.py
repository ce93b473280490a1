"""How far one plan layer lies off another: the shift that best lays building footprints over
the LiDAR's building points.

Both become masks on one grid (cells a footprint covers; cells holding a building point) and
their cross-correlation, computed with FFTs over every shift up to ``max_shift`` at once, counts
for each shift the footprint cells that would hold points. A layer in place has most of its
cells covered at zero shift; a layer in a sibling CRS (the Korean modified belts, 255 m off) is
covered only once moved. Correlation by FFT is the classic image-registration method; scipy's
FFT does the work, no library offers this for polygons against points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin

# scipy.fft is imported in the functions that use it: it costs about 0.2 s in every process that
# imports a stage module (the run's and each worker's), and a point-cloud conversion never calls it


@dataclass(frozen=True)
class Offset:
    """The plan shift (east, north; m) that moves the footprints onto the points, and the share
    of footprint cells holding points as placed and moved by it (0-1)."""

    shift_en: tuple[float, float]
    covered_as_placed: float
    covered_moved: float

    @property
    def distance_m(self) -> float:
        return float(np.hypot(*self.shift_en))


def footprint_offset(footprints: Sequence[shapely.Geometry], points_en: np.ndarray, *, res: float = 2.0,
                     max_shift: float = 400.0) -> Offset | None:
    """The shift of ``footprints`` (plan polygons, m) that covers the most of them with
    ``points_en`` (N, 2) building points (same plan frame), searched within ``max_shift`` m on
    either axis at ``res`` m cells; None without footprints or points."""
    from scipy import fft
    if not len(footprints) or not len(points_en):
        return None
    lo_e, lo_n, hi_e, hi_n = shapely.total_bounds(np.asarray(footprints, dtype=object))
    margin = int(np.ceil(max_shift / res))
    west, north = lo_e - margin * res, hi_n + margin * res
    width = int(np.ceil((hi_e - lo_e) / res)) + 2 * margin + 1
    height = int(np.ceil((hi_n - lo_n) / res)) + 2 * margin + 1
    transform = from_origin(west, north, res, res)
    mask = rasterize(((g, 1) for g in footprints), out_shape=(height, width), transform=transform,
                     dtype="uint8").astype(np.float32)
    if not mask.any():
        return None
    cols = np.floor((points_en[:, 0] - west) / res).astype(np.int64)
    rows = np.floor((north - points_en[:, 1]) / res).astype(np.int64)
    ok = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    occupied = np.zeros((height, width), np.float32)
    occupied[rows[ok], cols[ok]] = 1.0
    # corr[dr, dc] = sum of mask(r, c) * occupied(r + dr, c + dc); the mask lies ``margin`` cells
    # inside the grid, so shifts up to the margin never wrap around
    corr = fft.irfft2(fft.rfft2(occupied) * np.conj(fft.rfft2(mask)), s=mask.shape, workers=-1)
    corr = np.roll(corr, (margin, margin), axis=(0, 1))[:2 * margin + 1, :2 * margin + 1]
    dr, dc = np.unravel_index(int(np.argmax(corr)), corr.shape)
    total = float(mask.sum())
    # rows grow southwards: a shift of +1 row is res metres south
    return Offset((float((dc - margin) * res), float(-(dr - margin) * res)),
                  round(float(corr[margin, margin]) / total, 3), round(float(corr[dr, dc]) / total, 3))
