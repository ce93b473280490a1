"""Terrain: a heightfield on a regular ENU grid and error-bounded TINs of it (metres, ENU).

The heightfield holds ENU U (not a height: U includes the earth's curvature below the tangent
plane) at the centres of a :class:`~pipeline.core.ground.Grid`, NaN where nothing is known. The
TIN comes from pydelatin (greedy Delaunay refinement until no post is farther than ``max_error``
vertically from the surface), so every vertex is a post and the bound holds on every post.

Nodata is kept out of the mesh, not filled: before triangulating, empty posts are set far below
the terrain, which forces post-sized triangles along every data edge, and every triangle with
an empty corner is then dropped. What remains covers the data with the same bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline.core.ground import Grid
from pipeline.core.meshing import compact_faces

#: how far below the lowest post (m) empty posts are put while triangulating: a cliff that no
#: triangle can span within any sensible error bound
_CLIFF = 1000.0


@dataclass
class Heightfield:
    """ENU U (rows, cols) metres at the cell centres of ``grid``; NaN = no data."""

    grid: Grid
    u: np.ndarray

    def posts(self) -> tuple[np.ndarray, np.ndarray]:
        """E, N (rows, cols) of every post."""
        return self.grid.centers()


@dataclass
class Tin:
    """A triangulated surface over a heightfield's posts.

    ``vertices`` (V, 3) ENU metres, ``faces`` (F, 3) int32 counter-clockwise seen from above,
    ``posts`` (V, 2) the (row, col) of each vertex in the heightfield it was made from.
    """

    vertices: np.ndarray
    faces: np.ndarray
    posts: np.ndarray


def resample_lattice(values: np.ndarray, east: np.ndarray, north: np.ndarray, grid: Grid) -> np.ndarray:
    """Bilinear resampling of a raster whose pixel centres lie at ENU ``east, north`` (rows, cols;
    e.g. a DEM in its own CRS, georeferenced pixel by pixel) onto ``grid``'s posts.

    The pixel lattice is close to affine in ENU (a projected CRS is turned and scaled against the
    tangent plane; heights shift pixels along the tilted vertical, about a centimetre over the
    district): an affine fit finds each post's fractional pixel and one Newton step on the
    lattice's own bilinear map takes the remaining error to the square of that, micrometres.
    NaN where a post falls outside the raster or next to a NaN pixel.
    """
    rows, cols = values.shape
    rr, cc = np.mgrid[0:rows, 0:cols]
    ok = np.isfinite(east) & np.isfinite(north)
    design = np.column_stack([cc[ok], rr[ok], np.ones(int(ok.sum()))]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, np.column_stack([east[ok], north[ok]]), rcond=None)
    jac = coef[:2].T  # d(E, N) / d(col, row)
    inv = np.linalg.inv(jac)
    pe, pn = grid.centers()
    target = np.column_stack([pe.ravel(), pn.ravel()])
    colrow = (target - coef[2]) @ inv.T
    at = [colrow[:, 1], colrow[:, 0]]
    e = ndimage.map_coordinates(east, at, order=1, mode="nearest")
    n = ndimage.map_coordinates(north, at, order=1, mode="nearest")
    step = (target - np.column_stack([e, n])) @ inv.T
    colrow = colrow + np.where(np.isfinite(step), step, 0.0)
    c, r = colrow[:, 0], colrow[:, 1]
    out = ndimage.map_coordinates(values, [r, c], order=1, mode="constant", cval=np.nan)
    outside = (c < 0) | (r < 0) | (c > cols - 1) | (r > rows - 1)
    out[outside] = np.nan
    return out.reshape(grid.rows, grid.cols)


def resample_grid(values: np.ndarray, src: Grid, dst: Grid) -> np.ndarray:
    """Cell-centre ``values`` of grid ``src`` at the posts of ``dst`` (both ENU): copied when the
    posts coincide, bilinear otherwise (NaN outside ``src`` or next to a NaN cell)."""
    shift_c = (dst.e0 - src.e0) / src.res
    shift_r = (src.n1 - dst.n1) / src.res
    if dst.res == src.res and float(shift_c).is_integer() and float(shift_r).is_integer():
        out = np.full((dst.rows, dst.cols), np.nan)
        r0, c0 = int(shift_r), int(shift_c)
        rs, cs = max(r0, 0), max(c0, 0)
        re, ce = min(r0 + dst.rows, src.rows), min(c0 + dst.cols, src.cols)
        if rs < re and cs < ce:
            out[rs - r0:re - r0, cs - c0:ce - c0] = values[rs:re, cs:ce]
        return out
    e, n = dst.centers()
    return sample_bilinear(values, src, e, n)


def sample_bilinear(values: np.ndarray, grid: Grid, e: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of cell-centre ``values`` of ``grid`` at ENU ``e, n`` (m); NaN
    outside the grid's posts or next to a NaN cell."""
    fc = (np.asarray(e) - grid.e0) / grid.res - 0.5
    fr = (grid.n1 - np.asarray(n)) / grid.res - 0.5
    out = ndimage.map_coordinates(values, [fr, fc], order=1, mode="constant", cval=np.nan)
    out[(fc < 0) | (fr < 0) | (fc > grid.cols - 1) | (fr > grid.rows - 1)] = np.nan
    return out


@dataclass(frozen=True)
class HeightDifference:
    """``a - b`` (m) over the posts where both surfaces have data: median, 5th and 95th
    percentiles, and the number of posts compared."""

    median_m: float
    p05_m: float
    p95_m: float
    posts: int


def height_difference(a: np.ndarray, b: np.ndarray) -> HeightDifference | None:
    """How two heightfields on one grid differ where both have data; None where they do not meet."""
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return None
    d = a[both] - b[both]
    p05, med, p95 = np.percentile(d, [5, 50, 95])
    return HeightDifference(round(float(med), 3), round(float(p05), 3), round(float(p95), 3), int(both.sum()))


def fuse(primary: np.ndarray, secondary: np.ndarray, res: float, blend: float) -> np.ndarray:
    """``primary`` where it has data, ``secondary`` elsewhere (same grid, metres), blended linearly
    over ``blend`` metres inside the primary's data edge so the two meet without a step."""
    have = np.isfinite(primary)
    out = np.where(have, primary, secondary)
    if blend > 0 and have.any() and not have.all():
        inside = ndimage.distance_transform_edt(have) * res
        w = np.clip(inside / blend, 0.0, 1.0)
        both = have & np.isfinite(secondary)
        out[both] = w[both] * primary[both] + (1 - w[both]) * secondary[both]
    return out


def build_tin(hf: Heightfield, max_error: float) -> Tin:
    """TIN of ``hf`` whose vertical distance to every covered post is at most ``max_error`` (m)."""
    from pydelatin import Delatin

    u = hf.u
    valid = np.isfinite(u)
    if not valid.any():
        return Tin(np.empty((0, 3)), np.empty((0, 3), np.int32), np.empty((0, 2), np.int64))
    lo = float(np.nanmin(u))
    filled = np.where(valid, u, lo - _CLIFF - 10 * max_error)
    rows, cols = u.shape
    # pydelatin takes float32 heights; its error is checked against the float64 grid afterwards
    d = Delatin(filled.astype(np.float32), max_error=max_error)
    xy = np.round(d.vertices[:, :2]).astype(np.int64)
    post_rc = np.column_stack([rows - 1 - xy[:, 1], xy[:, 0]])  # pydelatin's y runs south to north
    faces = d.triangles.astype(np.int64)
    keep = np.all(valid[post_rc[faces, 0], post_rc[faces, 1]], axis=1)
    used, faces = compact_faces(faces[keep], len(post_rc))
    post_rc = post_rc[used]
    e, n = hf.posts()
    verts = np.column_stack([e[post_rc[:, 0], post_rc[:, 1]], n[post_rc[:, 0], post_rc[:, 1]],
                             u[post_rc[:, 0], post_rc[:, 1]]])
    p = verts[faces]
    cross = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
             - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    faces[cross < 0] = faces[cross < 0][:, ::-1]
    return Tin(verts, faces.astype(np.int32), post_rc)


def rasterize(tin: Tin, shape: tuple[int, int], chunk: int = 2_000_000) -> np.ndarray:
    """The TIN's U at every post of a (rows, cols) heightfield (NaN where no triangle covers it).

    Each triangle visits the posts of its bounding box (in chunks of ``chunk`` posts) and keeps
    those inside by barycentric coordinates, which are affine in (row, col) and precomputed per
    triangle: about twice the grid's size in work, all numpy.
    """
    out = np.full(shape, np.nan)
    if len(tin.faces) == 0:
        return out
    rc = tin.posts[tin.faces].astype(np.float64)  # (F, 3, 2): row, col of each corner
    z = tin.vertices[tin.faces, 2]
    a, b, c = rc[:, 0], rc[:, 1], rc[:, 2]
    det = (b[:, 0] - c[:, 0]) * (a[:, 1] - c[:, 1]) + (c[:, 1] - b[:, 1]) * (a[:, 0] - c[:, 0])
    # l1 = k[0] row + k[1] col + k[2], l2 = k[3] row + k[4] col + k[5]
    k1r, k1c = (c[:, 1] - b[:, 1]) / det, (b[:, 0] - c[:, 0]) / det
    k2r, k2c = (a[:, 1] - c[:, 1]) / det, (c[:, 0] - a[:, 0]) / det
    coef = np.stack([k1r, k1c, -(k1r * c[:, 0] + k1c * c[:, 1]),
                     k2r, k2c, -(k2r * c[:, 0] + k2c * c[:, 1])], axis=1)
    r0, r1 = rc[..., 0].min(1).astype(np.int64), rc[..., 0].max(1).astype(np.int64)
    c0, c1 = rc[..., 1].min(1).astype(np.int64), rc[..., 1].max(1).astype(np.int64)
    width = c1 - c0 + 1
    size = (r1 - r0 + 1) * width
    ends = np.cumsum(size)
    eps = 1e-9
    start = 0
    while start < len(size):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + chunk, side="right")), start + 1)
        count = size[start:stop]
        t = np.repeat(np.arange(start, stop), count)
        q, m = np.divmod(np.arange(base, ends[stop - 1]) - np.repeat(ends[start:stop] - count, count), width[t])
        rr, cc = r0[t] + q, c0[t] + m
        k = coef[t]
        rf, cf = rr.astype(np.float64), cc.astype(np.float64)
        l1 = k[:, 0] * rf + k[:, 1] * cf + k[:, 2]
        l2 = k[:, 3] * rf + k[:, 4] * cf + k[:, 5]
        inside = (l1 >= -eps) & (l2 >= -eps) & (l1 + l2 <= 1 + eps)
        ti, l1, l2 = t[inside], l1[inside], l2[inside]
        out[rr[inside], cc[inside]] = l1 * z[ti, 0] + l2 * z[ti, 1] + (1 - l1 - l2) * z[ti, 2]
        start = stop
    return out


def vertical_error(tin: Tin, hf: Heightfield) -> tuple[float, float]:
    """(largest |TIN - U| over covered posts in metres, share of the data posts the TIN covers)."""
    surface = rasterize(tin, hf.u.shape)
    have = np.isfinite(hf.u)
    covered = have & np.isfinite(surface)
    if not covered.any():
        return 0.0, 0.0
    return float(np.abs(surface[covered] - hf.u[covered]).max()), float(covered.sum() / have.sum())
