"""Spatial cells on disk: the unit of streaming and of parallel work for point clouds (ENU metres).

A :class:`CellGrid` cuts the ENU plane into square columns of ``size`` metres anchored at E = N = 0,
so the same point falls in the same cell whatever the data's extent. A :class:`CellStore` keeps
each cell's points as ``.npy`` parts in ``<folder>/<i>_<j>/<part>.npy``; parts are numbered by the
input chunk they came from, so reading a cell's parts in order gives its points in input order
(which keeps "first point wins" rules deterministic). Memory then depends on the largest cell,
not on the cloud.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.core.arrayops import take_records
from pipeline.core.atomic import replacing

Cell = tuple[int, int]
_CELL_DIR = re.compile(r"^(-?\d+)_(-?\d+)$")


@dataclass(frozen=True)
class CellGrid:
    """Square ENU columns: cell (i, j) covers E in [i*size, (i+1)*size), N in [j*size, (j+1)*size)."""

    size: float

    def keys(self, e: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell indices (i, j) of each point."""
        return (np.floor(np.asarray(e) / self.size).astype(np.int64),
                np.floor(np.asarray(n) / self.size).astype(np.int64))

    def bounds(self, cell: Cell) -> tuple[float, float, float, float]:
        """(e0, n0, e1, n1) of a cell."""
        i, j = cell
        return i * self.size, j * self.size, (i + 1) * self.size, (j + 1) * self.size

    def split(self, rec: np.ndarray) -> Iterator[tuple[Cell, np.ndarray]]:
        """(cell, records) for every cell that ``rec`` (with ENU x, y fields) touches, in cell order;
        each cell's records keep their input order."""
        i, j = self.keys(rec["x"], rec["y"])
        if len(rec) == 0:
            return
        ci, cj = i - i.min(), j - j.min()
        flat = ci * (int(cj.max()) + 1) + cj
        order = np.argsort(flat, kind="stable")
        flat_sorted = flat[order]
        starts = np.flatnonzero(np.r_[True, flat_sorted[1:] != flat_sorted[:-1]])
        ends = np.r_[starts[1:], len(order)]
        ordered = take_records(rec, order)
        for s, t in zip(starts, ends, strict=True):
            first = order[s]
            yield (int(i[first]), int(j[first])), ordered[s:t]


#: halvings of the largest cell size :func:`choose_cell_size` tries (200 m -> 12.5 m at most)
MAX_HALVINGS = 4
#: the smallest cell edge (m): below it a cell's ring of neighbours outweighs the cell
MIN_CELL_SIZE = 10.0


def count_bins(e: np.ndarray, n: np.ndarray, size: float, weight: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Points per ``size`` m square of the ENU plane (anchored at E = N = 0, as cells are): the
    occupied squares' (i, j) as an (M, 2) int64 array and their counts, each point counting
    ``weight`` (the stride of a sample)."""
    i, j = CellGrid(size).keys(e, n)
    if len(i) == 0:
        return np.empty((0, 2), np.int64), np.empty(0, np.int64)
    i0, j0 = i.min(), j.min()
    width, height = int(j.max() - j0) + 1, int(i.max() - i0) + 1
    key = (i - i0) * width + (j - j0)
    if width * height <= 4 * len(key) + 1_000_000:
        # a dense count over the squares' bounding box, ten times faster than sorting: a chunk
        # in scan order covers a compact strip of the plane
        counts = np.bincount(key)
        flat = np.flatnonzero(counts)
        counts = counts[flat]
    else:
        flat, counts = np.unique(key, return_counts=True)
    return np.column_stack([flat // width + i0, flat % width + j0]), counts * weight


def choose_cell_size(squares: np.ndarray, counts: np.ndarray, bin_size: float, largest: float,
                     max_points: int, divisor: float = 0.0, smallest: float = MIN_CELL_SIZE) -> tuple[float, int]:
    """The largest cell edge ``largest / 2**k`` (k <= :data:`MAX_HALVINGS`, not under
    ``smallest`` nor :data:`MIN_CELL_SIZE`, a multiple of ``divisor`` when that is > 0) whose
    densest cell holds at most ``max_points``, and that cell's point count; the smallest allowed
    edge when none does.

    ``squares`` and ``counts`` are points per ``bin_size`` m square (:func:`count_bins`);
    ``bin_size`` must divide every candidate, so a cell is a union of whole squares and its
    count is exact for a complete histogram.
    """
    best: tuple[float, int] | None = None
    for k in range(MAX_HALVINGS + 1):
        size = largest / 2 ** k
        if k and size < max(smallest, MIN_CELL_SIZE):
            break
        if k and divisor > 0 and abs(size / divisor - round(size / divisor)) > 1e-9:
            continue
        per = round(size / bin_size)
        if len(counts):
            _, inverse = np.unique(np.floor_divide(squares, per), axis=0, return_inverse=True)
            densest = int(np.bincount(inverse.ravel(), weights=counts).max())
        else:
            densest = 0
        best = (size, densest)
        if densest <= max_points:
            break
    assert best is not None
    return best


def cell_name(cell: Cell) -> str:
    return f"{cell[0]}_{cell[1]}"


@dataclass(frozen=True)
class CloudMeta:
    """A binned cloud's ``meta.json``: its frame ('ENU'), the frame's origin (WGS84 lat, lon
    degrees, ellipsoidal height m), point count, cell size (m), record dtype
    (:func:`dtype_to_json`), bounds (E, N, U min then max, m; None when empty), the input files
    it came from, and whether clean classified it (None before clean)."""

    frame: str
    origin: list[float]
    count: int
    cell_size: float
    dtype: list[list[str]]
    bounds: list[float] | None
    sources: list[str]
    classified: bool | None = None

    @property
    def is_empty(self) -> bool:
        return self.count == 0


class CellStore:
    """Points binned by :class:`CellGrid` cell, plus ``meta.json`` (:class:`CloudMeta`)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def cell_dir(self, cell: Cell) -> Path:
        return self.folder / cell_name(cell)

    def write(self, cell: Cell, part: int, rec: np.ndarray) -> Path:
        """Write one part of a cell (``part`` orders the parts within the cell)."""
        d = self.cell_dir(cell)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{part:05d}.npy"
        with replacing(path) as f:
            np.save(f, np.ascontiguousarray(rec))
        return path

    def cells(self) -> list[Cell]:
        """Cells that hold points, sorted."""
        out = []
        if self.folder.is_dir():
            for d in self.folder.iterdir():
                m = _CELL_DIR.match(d.name)
                if m and d.is_dir():
                    out.append((int(m.group(1)), int(m.group(2))))
        return sorted(out)

    def largest_first(self) -> list[Cell]:
        """Cells by decreasing size on disk (then sorted): submitted in this order, the last
        tasks of a pass are the smallest, so no worker is left with a big cell while the other
        idles (longest-processing-time-first scheduling)."""
        size = {c: sum(p.stat().st_size for p in self.parts(c)) for c in self.cells()}
        return sorted(size, key=lambda c: (-size[c], c))

    def parts(self, cell: Cell) -> list[Path]:
        return sorted(self.cell_dir(cell).glob("*.npy"))

    def read(self, cell: Cell) -> np.ndarray:
        """All points of a cell in input order (empty array of the store's dtype if none)."""
        parts = [np.load(p) for p in self.parts(cell)]
        if not parts:
            return np.empty(0, self.dtype())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __iter__(self) -> Iterator[tuple[Cell, np.ndarray]]:
        for c in self.cells():
            yield c, self.read(c)

    def read_all(self) -> np.ndarray:
        """The whole cloud in input order (by ``index``): only for clouds known to fit in memory."""
        parts = [rec for _, rec in self]
        if not parts:
            return np.empty(0, self.dtype())
        rec = np.concatenate(parts)
        return rec[np.argsort(rec["index"], kind="stable")]

    def write_meta(self, meta: CloudMeta) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "meta.json").write_text(json.dumps(asdict(meta), indent=1, sort_keys=True))

    def meta(self) -> CloudMeta:
        return CloudMeta(**json.loads((self.folder / "meta.json").read_text()))

    def grid(self) -> CellGrid:
        return CellGrid(float(self.meta().cell_size))

    def dtype(self) -> np.dtype:
        return np.dtype([tuple(f) for f in self.meta().dtype])


def dtype_to_json(dtype: np.dtype) -> list[list[str]]:
    """A structured dtype as JSON ([[name, type-string], ...]) for ``meta.json``."""
    return [[name, dtype[name].str] for name in dtype.names or ()]
