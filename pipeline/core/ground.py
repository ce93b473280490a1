"""Ground filtering and gridding of ENU point clouds (metres).

:func:`smrf_ground` is a Simple Morphological Filter (Pingel, Clarke & McBride 2013, the
algorithm behind PDAL's ``filters.smrf``): a minimum surface is opened with growing windows and
cells that drop by more than the slope allows are objects. scipy's separable min/max filters
make each opening O(cells), so square windows are used instead of SMRF's disks. Written here
because no maintained Python package offers SMRF without PDAL's C++ stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scipy.ndimage is imported in the functions that use it: it costs about 0.2 s in every process that
# imports a stage module (the run's and each worker's), and a point-cloud conversion never calls it


@dataclass
class Grid:
    """A regular grid over ENU: cell (row, col) covers E in [e0 + col*res, e0 + (col+1)*res),
    N in (n1 - (row+1)*res, n1 - row*res]. Row 0 is the northern edge, as in a GeoTIFF."""

    e0: float
    n1: float
    res: float
    rows: int
    cols: int

    @classmethod
    def covering(cls, e: np.ndarray, n: np.ndarray, res: float) -> Grid:
        e0 = np.floor(e.min() / res) * res
        n1 = np.ceil(n.max() / res) * res
        if n1 == n.max():
            n1 += res
        cols = int(np.floor((e.max() - e0) / res)) + 1
        rows = int(np.floor((n1 - n.min()) / res)) + 1
        return cls(float(e0), float(n1), res, rows, cols)

    def index(self, e: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of each point (clipped into the grid)."""
        col = np.clip(((e - self.e0) / self.res).astype(np.int64), 0, self.cols - 1)
        row = np.clip(((self.n1 - n) / self.res).astype(np.int64), 0, self.rows - 1)
        return row, col

    def centers(self) -> tuple[np.ndarray, np.ndarray]:
        """E, N (rows, cols) of cell centres."""
        e = self.e0 + (np.arange(self.cols) + 0.5) * self.res
        n = self.n1 - (np.arange(self.rows) + 0.5) * self.res
        return np.meshgrid(e, n)

    def sample(self, values: np.ndarray, e: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of cell-centre ``values`` at E, N."""
        from scipy import ndimage
        fc = (e - self.e0) / self.res - 0.5
        fr = (self.n1 - n) / self.res - 0.5
        return ndimage.map_coordinates(values, [fr, fc], order=1, mode="nearest")


def cell_extreme(flat: np.ndarray, z: np.ndarray, size: int, *, highest: bool = False) -> np.ndarray:
    """Lowest (or ``highest``) z of the points in each of ``size`` cells, by each point's flat
    cell index; NaN where a cell holds no point."""
    out = np.full(size, -np.inf if highest else np.inf)
    # ufunc.at's fast loop wants contiguous float64: a structured array's field runs 20x slower
    (np.maximum if highest else np.minimum).at(out, flat, np.ascontiguousarray(z, np.float64))
    out[np.isinf(out)] = np.nan
    return out


def cell_min(grid: Grid, e: np.ndarray, n: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Lowest z per cell of ``grid`` (NaN where a cell holds no point)."""
    row, col = grid.index(e, n)
    return cell_extreme(row * grid.cols + col, z, grid.rows * grid.cols).reshape(grid.rows, grid.cols)


def cell_mean(grid: Grid, e: np.ndarray, n: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Mean z per cell (NaN where a cell holds no point)."""
    row, col = grid.index(e, n)
    flat = row * grid.cols + col
    size = grid.rows * grid.cols
    s = np.bincount(flat, weights=z, minlength=size)
    c = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / c
    out[c == 0] = np.nan
    return out.reshape(grid.rows, grid.cols)


def fill_nearest(values: np.ndarray) -> np.ndarray:
    """NaN cells take the value of the nearest valid cell."""
    from scipy import ndimage
    mask = np.isnan(values)
    if not mask.any():
        return values
    idx = ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True)
    return values[tuple(idx)]


def _interpolate_holes(values: np.ndarray, holes: np.ndarray, out: np.ndarray, r0: int, c0: int) -> None:
    """Linear interpolation of the ``holes`` of window ``values`` (at r0, c0 in ``out``) from the
    valid cells within two cells of them."""
    # imported here: scipy.interpolate brings scipy.optimize and linalg (~50 MB a process) to every
    # process that grids or samples rasters, and only hole filling triangulates
    from scipy import interpolate, ndimage

    rim = ndimage.binary_dilation(holes, iterations=2) & ~np.isnan(values)
    if rim.sum() < 3:
        return
    rr, cc = np.nonzero(rim)
    hr, hc = np.nonzero(holes)
    try:
        out[r0 + hr, c0 + hc] = interpolate.griddata((rr, cc), values[rr, cc], (hr, hc), method="linear")
    except Exception:  # Qhull refuses a rim on one line: the nearest fill takes over
        return


def fill_linear(grid: Grid, values: np.ndarray, block: int = 256) -> np.ndarray:
    """NaN cells interpolated linearly from the valid cells around them (nearest outside their hull).

    Only the rims of holes (valid cells within two cells of one) are triangulated. Holes that fit
    in a ``block``-cell square are done together per block, larger ones one at a time, so memory
    follows a block or the largest hole, not the whole district.
    """
    from scipy import ndimage
    mask = np.isnan(values)
    if not mask.any():
        return values
    labels, _ = ndimage.label(mask)
    filled = values.copy()
    groups: dict[tuple[int, int], list[int]] = {}
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl[0].stop - sl[0].start <= block and sl[1].stop - sl[1].start <= block:
            groups.setdefault((sl[0].start // block, sl[1].start // block), []).append(lab)
        else:
            r0, r1 = max(sl[0].start - 2, 0), min(sl[0].stop + 2, grid.rows)
            c0, c1 = max(sl[1].start - 2, 0), min(sl[1].stop + 2, grid.cols)
            _interpolate_holes(values[r0:r1, c0:c1], labels[r0:r1, c0:c1] == lab, filled, r0, c0)
    for (bi, bj), labs in groups.items():
        # a group's holes start in this block and are at most a block long: two blocks hold them
        r0, r1 = max(bi * block - 2, 0), min((bi + 2) * block + 2, grid.rows)
        c0, c1 = max(bj * block - 2, 0), min((bj + 2) * block + 2, grid.cols)
        window = labels[r0:r1, c0:c1]
        _interpolate_holes(values[r0:r1, c0:c1], np.isin(window, labs), filled, r0, c0)
    return fill_nearest(filled)


def smrf_ground(grid: Grid, zmin: np.ndarray, *, slope: float, max_window: float) -> np.ndarray:
    """Boolean (rows, cols): cells whose minimum surface is ground.

    ``zmin`` is the per-cell minimum (NaN = empty); ``slope`` is rise/run; ``max_window`` (m)
    must exceed the widest building so rooftops are opened away. Each window's opening is
    compared with the original surface (as in Zhang et al.'s progressive filter), so a wide
    building flagged late is still caught with a threshold that grows with the window.
    """
    from scipy import ndimage
    surface = fill_nearest(zmin)
    objects = np.zeros(zmin.shape, bool)
    max_radius = max(1, int(np.ceil(max_window / 2 / grid.res)))
    radius = 1
    while True:
        opened = ndimage.grey_opening(surface, size=(2 * radius + 1, 2 * radius + 1))
        objects |= (surface - opened) > slope * radius * grid.res
        if radius >= max_radius:
            break
        radius = min(max_radius, radius + max(1, min(radius, 8)))
    return ~objects & ~np.isnan(zmin)


def csf_ground(grid: Grid, zmin: np.ndarray, *, cloth_resolution: float, rigidness: int,
               class_threshold: float) -> np.ndarray:
    """Boolean (rows, cols): cells whose minimum surface is ground by the Cloth Simulation Filter
    (Zhang et al. 2016; pip ``cloth-simulation-filter``) run on the cells' lowest points.

    The cloth sees the same minimum surface SMRF does: one point per cell, so its cost and memory
    follow the area, not the point count.
    """
    import CSF  # optional at import time: only this method needs the C++ extension

    e, n = grid.centers()
    valid = ~np.isnan(zmin)
    xyz = np.column_stack([e[valid], n[valid], zmin[valid]])
    csf = CSF.CSF()
    csf.params.bSloopSmooth = False
    csf.params.cloth_resolution = cloth_resolution
    csf.params.rigidness = rigidness
    csf.params.class_threshold = class_threshold
    csf.setPointCloud(xyz)
    ground, other = CSF.VecInt(), CSF.VecInt()
    csf.do_filtering(ground, other, exportCloth=False)
    flags = np.zeros(len(xyz), bool)
    flags[np.asarray(ground, np.int64)] = True
    out = np.zeros(zmin.shape, bool)
    out[valid] = flags
    return out


def block_index(grid: Grid, e: np.ndarray, n: np.ndarray) -> tuple[int, int, int, int, np.ndarray]:
    """(row0, col0, rows, cols, flat index into that block) of the grid block spanned by the points:
    per-cell reductions return blocks the caller merges into the whole grid."""
    row, col = grid.index(e, n)
    r0, c0 = int(row.min()), int(col.min())
    rows, cols = int(row.max()) - r0 + 1, int(col.max()) - c0 + 1
    return r0, c0, rows, cols, (row - r0) * cols + (col - c0)
