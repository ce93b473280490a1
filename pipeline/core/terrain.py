"""Terrain: a heightfield on a regular ENU grid and error-bounded TINs of it (metres, ENU).

The heightfield holds ENU U (not a height: U includes the earth's curvature below the tangent
plane) at the centres of a :class:`~pipeline.core.ground.Grid`, NaN where nothing is known. The
TIN comes from pydelatin (greedy Delaunay refinement until no post is farther than ``max_error``
vertically from the surface), so every vertex is a post and the bound holds on every post.

Nodata is kept out of the mesh, not filled: before triangulating, empty posts are set far below
the terrain, which forces post-sized triangles along every data edge, and every triangle with
an empty corner is then dropped. What remains covers the data with the same bound.

A heightfield too large for one TIN is triangulated in :class:`Block` s that share their border
row or column of posts. Each block's border vertices follow from the border posts alone
(:func:`profile_vertices`), so the two blocks of a shared edge put the same vertices on it and
their TINs meet without a crack; :func:`stitch_tins` joins them into one mesh.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.core.ground import Grid
from pipeline.core.meshing import compact_faces

# scipy.ndimage is imported in the functions that use it: it costs about 0.2 s in every process that
# imports a stage module (the run's and each worker's), and a point-cloud conversion never calls it

#: how far below the lowest post (m) empty posts are put while triangulating: a cliff that no
#: triangle can span within any sensible error bound
_CLIFF = 1000.0
#: heightfield posts resampled at a time (about 100 MB of work arrays)
RESAMPLE_POSTS = 1_000_000


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
    from scipy import ndimage
    rows, cols = values.shape
    ok = (np.isfinite(east) & np.isfinite(north)).ravel()
    # the affine guess needs a few hundred thousand pixels, not a city DEM's 25 million: every
    # k-th, with k prime to the row length so that the sample is not one column
    k = max(1, int(ok.sum()) // 250_000)
    while np.gcd(k, cols) != 1:
        k += 1
    flat = np.flatnonzero(ok[::k]) * k
    if len(flat) < 3:
        flat = np.flatnonzero(ok)
    r, c = np.divmod(flat, cols)
    design = np.column_stack([c, r, np.ones(len(flat))]).astype(np.float64)
    # by row and column: ravel() of a plane strided in the (rows, cols, 3) lattice copies all of it
    coef, *_ = np.linalg.lstsq(design, np.column_stack([east[r, c], north[r, c]]), rcond=None)
    inv = np.linalg.inv(coef[:2].T)  # of d(E, N) / d(col, row)
    out = np.empty((grid.rows, grid.cols))
    # posts a band of rows at a time: memory follows the band, not the heightfield
    band = max(1, RESAMPLE_POSTS // max(grid.cols, 1))
    for r0 in range(0, grid.rows, band):
        rows_here = min(band, grid.rows - r0)
        pe, pn = Grid(grid.e0, grid.n1 - r0 * grid.res, grid.res, rows_here, grid.cols).centers()
        target = np.column_stack([pe.ravel(), pn.ravel()])
        colrow = (target - coef[2]) @ inv.T
        at = [colrow[:, 1], colrow[:, 0]]
        e = ndimage.map_coordinates(east, at, order=1, mode="nearest")
        n = ndimage.map_coordinates(north, at, order=1, mode="nearest")
        step = (target - np.column_stack([e, n])) @ inv.T
        colrow += np.where(np.isfinite(step), step, 0.0)
        c, r = colrow[:, 0], colrow[:, 1]
        got = ndimage.map_coordinates(values, [r, c], order=1, mode="constant", cval=np.nan)
        got[(c < 0) | (r < 0) | (c > cols - 1) | (r > rows - 1)] = np.nan
        out[r0:r0 + rows_here] = got.reshape(rows_here, grid.cols)
    return out


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
    from scipy import ndimage
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
    from scipy import ndimage
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
    u = hf.u
    valid = np.isfinite(u)
    if not valid.any():
        return _empty_tin()
    filled = np.where(valid, u, cliff_floor(float(np.nanmin(u)), max_error))
    post_rc, faces = _delatin(filled, max_error)
    return _tin(hf, valid, post_rc, faces)


def cliff_floor(lowest: float, max_error: float) -> float:
    """Where empty posts are put while triangulating a heightfield whose lowest U is ``lowest``."""
    return lowest - _CLIFF - 10 * max_error


def _empty_tin() -> Tin:
    return Tin(np.empty((0, 3)), np.empty((0, 3), np.int32), np.empty((0, 2), np.int64))


def _delatin(filled: np.ndarray, max_error: float) -> tuple[np.ndarray, np.ndarray]:
    """pydelatin's TIN of a heightfield without gaps: (row, col) of each vertex, faces."""
    from pydelatin import Delatin

    rows = filled.shape[0]
    # pydelatin takes float32 heights; its error is checked against the float64 grid afterwards
    d = Delatin(filled.astype(np.float32), max_error=max_error)
    xy = np.round(d.vertices[:, :2]).astype(np.int64)
    post_rc = np.column_stack([rows - 1 - xy[:, 1], xy[:, 0]])  # pydelatin's y runs south to north
    return post_rc, d.triangles.astype(np.int64)


def _tin(hf: Heightfield, valid: np.ndarray, post_rc: np.ndarray, faces: np.ndarray) -> Tin:
    """The TIN of ``faces`` over the posts ``post_rc`` without the triangles that have an empty
    corner, counter-clockwise seen from above."""
    keep = np.all(valid[post_rc[faces, 0], post_rc[faces, 1]], axis=1)
    used, faces = compact_faces(faces[keep], len(post_rc))
    post_rc = post_rc[used]
    e, n = hf.posts()
    verts = np.column_stack([e[post_rc[:, 0], post_rc[:, 1]], n[post_rc[:, 0], post_rc[:, 1]],
                             hf.u[post_rc[:, 0], post_rc[:, 1]]])
    p = verts[faces]
    cross = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
             - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    faces[cross < 0] = faces[cross < 0][:, ::-1]
    return Tin(verts, faces.astype(np.int32), post_rc)


@dataclass(frozen=True)
class Block:
    """Heightfield posts in rows ``r0..r1`` and columns ``c0..c1`` (both inclusive): neighbouring
    blocks share a row or a column of posts. A block owns its last row (column) only at the
    heightfield's edge (``last_row``, ``last_col``): elsewhere its neighbour does, so every post
    is counted once."""

    r0: int
    c0: int
    r1: int
    c1: int
    last_row: bool
    last_col: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.r1 - self.r0 + 1, self.c1 - self.c0 + 1

    def owned(self) -> tuple[slice, slice]:
        """The block's own posts, in block rows and columns."""
        rows, cols = self.shape
        return slice(0, rows if self.last_row else rows - 1), slice(0, cols if self.last_col else cols - 1)


def split_blocks(rows: int, cols: int, size: int) -> list[Block]:
    """Blocks of ``size`` post spacings a side (``size`` + 1 posts) covering a heightfield of
    (rows, cols) posts, at least 2 x 2, row by row from the north-west."""
    if rows < 2 or cols < 2 or size < 1:
        raise ValueError("a heightfield of at least 2 x 2 posts and a block of at least one spacing")
    r_starts = range(0, rows - 1, size)
    c_starts = range(0, cols - 1, size)
    return [Block(r, c, min(r + size, rows - 1), min(c + size, cols - 1), r + size >= rows - 1,
                  c + size >= cols - 1) for r in r_starts for c in c_starts]


def profile_vertices(z: np.ndarray, max_error: float) -> np.ndarray:
    """Indices of the posts of a profile ``z`` (heights at equal spacing) that a polyline keeps so
    that it passes within ``max_error`` vertically of every post, both ends included
    (Douglas-Peucker on vertical distance, which is what a triangle edge along the profile
    interpolates). The result depends on ``z`` alone: it is how two blocks agree on their border."""
    n = len(z)
    keep = np.zeros(n, bool)
    keep[[0, n - 1]] = True
    spans = [(0, n - 1)]
    while spans:
        a, b = spans.pop()
        if b - a < 2:
            continue
        t = np.arange(1, b - a) / (b - a)
        dev = np.abs(z[a + 1:b] - (z[a] + (z[b] - z[a]) * t))
        k = int(np.argmax(dev))
        if dev[k] > max_error:
            m = a + 1 + k
            keep[m] = True
            spans += [(a, m), (m, b)]
    return np.flatnonzero(keep)


def build_block_tin(hf: Heightfield, max_error: float, floor: float) -> Tin:
    """TIN of one block's heightfield within ``max_error`` (m) of every covered post, whose
    vertices on the block's border are :func:`profile_vertices` of each border row and column:
    a neighbour computes the same ones, so the two TINs meet without a crack.

    The interior starts from pydelatin's vertices; they and the fixed border are triangulated
    (Delaunay), and each triangle's worst post farther than ``max_error`` is added until none
    is: the greedy refinement pydelatin runs, which it cannot be told to run around fixed
    vertices. ``floor`` is where empty posts are put (:func:`cliff_floor` of the whole
    heightfield, the same in every block, since the border profiles depend on it). ``posts``
    are in block rows and columns."""
    u = hf.u
    rows, cols = u.shape
    valid = np.isfinite(u)
    if not valid.any():
        return _empty_tin()
    filled = np.where(valid, u, floor)
    top, bottom = profile_vertices(filled[0], max_error), profile_vertices(filled[-1], max_error)
    left, right = profile_vertices(filled[:, 0], max_error), profile_vertices(filled[:, -1], max_error)
    border = np.concatenate([top, (rows - 1) * cols + bottom, left * cols, right * cols + cols - 1])
    start, start_faces = _delatin(filled, max_error)
    start_flat = start @ [cols, 1]
    inside = (start[:, 0] > 0) & (start[:, 0] < rows - 1) & (start[:, 1] > 0) & (start[:, 1] < cols - 1)
    flat = np.unique(np.concatenate([border, start_flat[inside]]))
    # only new triangles need checking: pydelatin checked its own (in float32, as build_tin's
    # are), and one that outlived an insertion held no post farther than the bound
    checked = np.sort(start_flat[start_faces], axis=1)
    while True:
        post_rc = np.column_stack(np.divmod(flat, cols))
        faces = _delaunay(post_rc)
        corners = np.sort(flat[faces], axis=1)
        new = ~_rows_in(corners, checked)
        checked = corners
        worst_t, worst_at, worst = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0)]
        z = filled[post_rc[:, 0], post_rc[:, 1]]
        for rr, cc, t, value in _covered_posts(post_rc, z, faces[new], COVER_CHUNK):
            err = np.abs(value - filled[rr, cc])
            bad = (err > max_error) & (rr > 0) & (rr < rows - 1) & (cc > 0) & (cc < cols - 1)
            worst_t.append(t[bad])
            worst_at.append(rr[bad] * cols + cc[bad])
            worst.append(err[bad])
        t = np.concatenate(worst_t)
        if not len(t):
            break
        order = np.lexsort((-np.concatenate(worst), t))
        _, first = np.unique(t[order], return_index=True)
        flat = np.union1d(flat, np.concatenate(worst_at)[order[first]])
    return _tin(hf, valid, post_rc, faces.astype(np.int64))


def _rows_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each row of ``a`` is a row of ``b`` (both (N, 3) int64)."""
    if not len(b):
        return np.zeros(len(a), bool)
    _, inverse = np.unique(np.concatenate([b, a]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return np.isin(inverse[len(b):], inverse[:len(b)])


def _delaunay(post_rc: np.ndarray) -> np.ndarray:
    """Delaunay faces of integer (row, col) posts that include the block's four corners: the
    corners make the block's rectangle the convex hull, so posts along its border are joined in
    order, and each border edge is one the neighbouring block has too. A post qhull leaves out
    (floating point on a paraboloid lifted from a grid full of cocircular posts) is an error,
    never a silent gap."""
    from scipy.spatial import Delaunay

    tri = Delaunay(post_rc.astype(np.float64))
    if len(tri.coplanar):
        raise ValueError(f"{len(tri.coplanar)} post(s) left out of the terrain block's triangulation")
    return tri.simplices.astype(np.int64)


def stitch_tins(parts: list[tuple[Block, Tin]], hf_grid: Grid) -> Tin:
    """One TIN of blocks' TINs (``posts`` in block rows and columns) over the heightfield of
    ``hf_grid``: the vertices blocks share on their borders become one. ENU E, N follow from the
    post's place on the whole grid, U from the block."""
    if not parts or all(len(t.faces) == 0 for _, t in parts):
        return _empty_tin()
    posts = np.concatenate([t.posts + [b.r0, b.c0] for b, t in parts])
    u = np.concatenate([t.vertices[:, 2] for _, t in parts])
    offsets = np.cumsum([0] + [len(t.vertices) for _, t in parts])
    faces = np.concatenate([t.faces.astype(np.int64) + o for (_, t), o in zip(parts, offsets, strict=False)])
    key = posts[:, 0] * hf_grid.cols + posts[:, 1]
    unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rc = np.column_stack(np.divmod(unique, hf_grid.cols))
    e = hf_grid.e0 + (rc[:, 1] + 0.5) * hf_grid.res
    n = hf_grid.n1 - (rc[:, 0] + 0.5) * hf_grid.res
    return Tin(np.column_stack([e, n, u[first]]), inverse.ravel()[faces].astype(np.int32), rc)


#: posts per step of :func:`_covered_posts`: its dozen temporaries per post then take about 30 MB
#: and stay in cache; at 2 M posts a step, checking a 1.4 km heightfield's TIN took 450 MB a
#: worker (over the 1 GB bound with two) and ran 1.4-2.5x slower
COVER_CHUNK = 262_144


def _covered_posts(posts: np.ndarray, z: np.ndarray, faces: np.ndarray, chunk: int
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(row, col, triangle, interpolated U) of every post inside a triangle whose corners are
    the (row, col) ``posts`` with values ``z``, about ``chunk`` posts at a time.

    Each triangle visits the posts of its bounding box and keeps those inside by barycentric
    coordinates, which are affine in (row, col) and precomputed per triangle: about twice the
    covered posts in work, all numpy. A post on a shared edge comes once per triangle.
    """
    rc = posts[faces].astype(np.float64)  # (F, 3, 2): row, col of each corner
    zf = z[faces]
    a, b, c = rc[:, 0], rc[:, 1], rc[:, 2]
    det = (b[:, 0] - c[:, 0]) * (a[:, 1] - c[:, 1]) + (c[:, 1] - b[:, 1]) * (a[:, 0] - c[:, 0])
    # l1 = k[0] row + k[1] col + k[2], l2 = k[3] row + k[4] col + k[5]
    k1r, k1c = (c[:, 1] - b[:, 1]) / det, (b[:, 0] - c[:, 0]) / det
    k2r, k2c = (a[:, 1] - c[:, 1]) / det, (c[:, 0] - a[:, 0]) / det
    coef = np.stack([k1r, k1c, -(k1r * c[:, 0] + k1c * c[:, 1]),
                     k2r, k2c, -(k2r * c[:, 0] + k2c * c[:, 1])], axis=1)
    r0, r1 = rc[..., 0].min(1).astype(np.int64), rc[..., 0].max(1).astype(np.int64)
    c0, c1 = rc[..., 1].min(1).astype(np.int64), rc[..., 1].max(1).astype(np.int64)
    # a triangle whose box holds more than ``chunk`` posts (a coarse level's few triangles span
    # the heightfield) is visited in bands of rows, so no step holds more than about ``chunk``
    band = np.maximum(chunk // (c1 - c0 + 1), 1)
    bands = -(-(r1 - r0 + 1) // band)
    tri = np.repeat(np.arange(len(faces)), bands)
    nth = np.arange(len(tri)) - np.repeat(np.cumsum(bands) - bands, bands)
    r0 = r0[tri] + nth * band[tri]
    r1 = np.minimum(r0 + band[tri] - 1, r1[tri])
    c0, width = c0[tri], (c1 - c0 + 1)[tri]
    size = (r1 - r0 + 1) * width
    ends = np.cumsum(size)
    eps = 1e-9
    start = 0
    while start < len(size):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + chunk, side="right")), start + 1)
        count = size[start:stop]
        piece = np.repeat(np.arange(start, stop), count)
        q, m = np.divmod(np.arange(base, ends[stop - 1]) - np.repeat(ends[start:stop] - count, count),
                         width[piece])
        rr, cc = r0[piece] + q, c0[piece] + m
        t = tri[piece]
        k = coef[t]
        rf, cf = rr.astype(np.float64), cc.astype(np.float64)
        l1 = k[:, 0] * rf + k[:, 1] * cf + k[:, 2]
        l2 = k[:, 3] * rf + k[:, 4] * cf + k[:, 5]
        inside = (l1 >= -eps) & (l2 >= -eps) & (l1 + l2 <= 1 + eps)
        ti, l1, l2 = t[inside], l1[inside], l2[inside]
        yield rr[inside], cc[inside], ti, l1 * zf[ti, 0] + l2 * zf[ti, 1] + (1 - l1 - l2) * zf[ti, 2]
        start = stop


def rasterize(tin: Tin, shape: tuple[int, int], chunk: int = COVER_CHUNK) -> np.ndarray:
    """The TIN's U at every post of a (rows, cols) heightfield (NaN where no triangle covers it)."""
    out = np.full(shape, np.nan)
    if len(tin.faces) == 0:
        return out
    for rr, cc, _, value in _covered_posts(tin.posts, tin.vertices[:, 2], tin.faces, chunk):
        out[rr, cc] = value
    return out


def vertical_error(tin: Tin, hf: Heightfield) -> tuple[float, float]:
    """(largest |TIN - U| over covered posts in metres, share of the data posts the TIN covers)."""
    worst, covered, data = post_error(tin, hf)
    return worst, covered / data if covered else 0.0


def post_error(tin: Tin, hf: Heightfield, region: tuple[slice, slice] = (slice(None), slice(None))
               ) -> tuple[float, int, int]:
    """(largest |TIN - U| over the covered posts in metres, covered data posts in ``region``,
    data posts in ``region``): the worst is taken over every post, the counts over the region
    (a block's own posts, so that blocks sharing a border count it once)."""
    surface = rasterize(tin, hf.u.shape)
    have = np.isfinite(hf.u)
    covered = have & np.isfinite(surface)
    if not covered.any():
        return 0.0, 0, int(have[region].sum())
    return (float(np.abs(surface[covered] - hf.u[covered]).max()), int(covered[region].sum()),
            int(have[region].sum()))
