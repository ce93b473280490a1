"""Benchmark point clouds laid out as real surveys record them.

An airborne scanner flies parallel strips, each one way then the next the other way, and sweeps
scan lines across its track; a mobile scanner drives a corridor and sweeps across the road. The
points of a LAS file come in that order, which decides how coherent a chunk, a cell and a LAZ
block are. :func:`write_survey` writes the sample generator's city in that order (or shuffled,
the worst case) at a given density, classified by the generator's truth or left unclassified.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import laspy
import numpy as np

from pipeline.samples.generator import city_cloud

#: width (m) of one airborne flight strip: about what a 1,000 m flight height sweeps at ±20°
STRIP_WIDTH_M = 600.0
#: width (m) of the corridor a mobile scanner records
CORRIDOR_WIDTH_M = 30.0


@dataclass(frozen=True)
class Survey:
    """One benchmark input: ``kind`` 'aerial' or 'mobile', ``density`` points per m², points in
    scan ``order`` ('scan' or 'shuffled'), with the true classes or all 'unclassified' (ASPRS 1)."""

    kind: str
    density: float
    order: str = "scan"
    classified: bool = True

    @property
    def name(self) -> str:
        return (f"{self.kind} {self.density:g} pts/m², {'classified' if self.classified else 'unclassified'}"
                + (", shuffled" if self.order == "shuffled" else ""))

    def tag(self, millions: float, fmt: str) -> str:
        return (f"{self.kind}{self.density:g}_{millions:g}M_{'cls' if self.classified else 'raw'}"
                f"{'_shuf' if self.order == 'shuffled' else ''}.{fmt}")


def scan_order(x: np.ndarray, y: np.ndarray, kind: str, spacing: float) -> np.ndarray:
    """Indices putting points (local metres) in the order a scanner records them.

    aerial: strips ``STRIP_WIDTH_M`` wide running north, flown alternately north and south; each
    sweep crosses the strip west-east then east-west. mobile: one pass north along the corridor,
    sweeping across it. ``spacing`` is the point spacing (m): one scan line per row of points.
    """
    line = np.floor((y - y.min()) / spacing).astype(np.int64)
    if kind == "mobile":
        strip = np.zeros(len(x), np.int64)
    else:
        strip = np.floor((x - x.min()) / STRIP_WIDTH_M).astype(np.int64)
    southward = strip % 2 == 1
    along = np.where(southward, -line, line)
    across = np.where((line % 2 == 1) ^ southward, -x, x)
    return np.lexsort((across, along, strip))


def write_survey(path: Path, n_points: int, survey: Survey, seed: int = 7) -> int:
    """Write ``survey`` with about ``n_points`` to ``path`` (.las or .laz); returns the count."""
    width = CORRIDOR_WIDTH_M if survey.kind == "mobile" else None
    raw = path.with_name(path.stem + ".gen.las")
    classes = path.with_name(path.stem + ".classes.npy")
    city_cloud(raw, n_points, seed=seed, classes_path=classes, density=survey.density, width=width)
    las = laspy.read(raw)
    x, y = np.asarray(las.x), np.asarray(las.y)
    if survey.order == "shuffled":
        order = np.random.default_rng(seed).permutation(len(x))
    else:
        order = scan_order(x, y, survey.kind, 1.0 / np.sqrt(survey.density))
    out = laspy.LasData(las.header)
    out.points = las.points[order]
    out.classification = np.load(classes)[order] if survey.classified else np.ones(len(order), np.uint8)
    out.gps_time = las.gps_time[0] + np.arange(len(order)) * 2e-6
    out.write(path)
    raw.unlink()
    classes.unlink()
    return len(order)
