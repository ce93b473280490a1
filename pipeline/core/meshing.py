"""Closed building solids under planar roofs, and small mesh checks (plan metres, heights metres).

Meshes are plain arrays: ``vertices`` (V, 3) and ``faces`` (F, 3) int32, counter-clockwise seen
from outside (normals point out). Solids are built in a plan frame (x, y) with heights (z);
the caller places every vertex on its own plumb line (see ``SiteFrame.plan_to_enu``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import Polygon, box

from pipeline.core.roofs import Plane, envelope

#: precision (m) of roof crease nodes
GRID = 1e-6


def _signed_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _xy_key(xy: np.ndarray) -> np.ndarray:
    """Plan points (N, 2) as complex numbers: exact, hashable by value, and sorted by x, then y."""
    return np.asarray(xy, np.float64) @ np.array([1.0, 1j])


def _triangulate(poly: Polygon, xy: np.ndarray) -> np.ndarray:
    """Triangles (T, 3) of indices into ``xy`` (N, 2; every ring vertex of ``poly`` once), CCW
    seen from above. GEOS's constrained Delaunay keeps every ring vertex, collinear ones
    included (an ear-clipper drops those, leaving T-junctions where a crease or a wall meets a
    straight outline)."""
    tris = shapely.get_parts(shapely.constrained_delaunay_triangles(poly))
    txy = shapely.get_coordinates(tris).reshape(-1, 4, 2)[:, :3]
    cross = ((txy[:, 1, 0] - txy[:, 0, 0]) * (txy[:, 2, 1] - txy[:, 0, 1])
             - (txy[:, 1, 1] - txy[:, 0, 1]) * (txy[:, 2, 0] - txy[:, 0, 0]))
    # GEOS returns the input coordinates bit for bit: find them by exact value
    key = _xy_key(xy)
    order = np.argsort(key, kind="stable")
    query = _xy_key(txy.reshape(-1, 2))
    pos = np.minimum(np.searchsorted(key[order], query), len(order) - 1)
    if not np.array_equal(key[order][pos], query):
        raise ValueError("a triangle corner is not among the polygon's vertices")
    out = order[pos].reshape(-1, 3)
    out[cross < 0] = out[cross < 0][:, ::-1]
    return out[cross != 0]


def _halfplane(bounds: tuple[float, float, float, float], a: float, b: float, c: float) -> Polygon | None:
    """The part of the box ``bounds`` where ``a x + b y + c <= 0`` (None when empty)."""
    corners = np.array([[bounds[0], bounds[1]], [bounds[2], bounds[1]], [bounds[2], bounds[3]],
                        [bounds[0], bounds[3]]])
    f = corners @ np.array([a, b]) + c
    out = []
    for i in range(4):
        j = (i + 1) % 4
        if f[i] <= 0:
            out.append(corners[i])
        if (f[i] < 0 < f[j]) or (f[j] < 0 < f[i]):
            t = f[i] / (f[i] - f[j])
            out.append(corners[i] + t * (corners[j] - corners[i]))
    return Polygon(out) if len(out) >= 3 else None


def roof_regions(footprint: Polygon, planes: Sequence[Plane]) -> list[Polygon]:
    """The faces of the roof over ``footprint``: where each plane is the lowest, split at every
    crease, with every crease and outline vertex shared by the faces that meet there."""
    if len(planes) == 1:
        return [footprint]
    x0, y0, x1, y1 = footprint.bounds
    big = (x0 - 10.0, y0 - 10.0, x1 + 10.0, y1 + 10.0)
    edges = [footprint.boundary]
    for i, p in enumerate(planes):
        region: shapely.Geometry = box(*big)
        for j, q in enumerate(planes):
            if i == j:
                continue
            half = _halfplane(big, p.a - q.a, p.b - q.b, p.c - q.c)
            region = region.intersection(half) if half is not None else Polygon()
        edges.append(region.intersection(footprint).boundary)
    # noding on a micrometre grid: creases meeting at a hip or an outline corner are computed in
    # several ways, and float noise between them would leave sliver faces and doubled vertices
    noded = shapely.unary_union(edges, grid_size=GRID)
    faces = [f for f in shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
             if f.area > 0 and footprint.contains(f.representative_point())]
    return faces


def _along_ring(ring: np.ndarray, pts: np.ndarray, xy: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The points (shapely ``pts`` at ``xy``) within ``tol`` of a closed ring (coordinates, the
    first repeated at the end), and how far along the ring each lies.

    The segments go into an STRtree, so a footprint of 100,000 vertices takes a second, where
    measuring every point against the whole ring (shapely's line_locate_point) takes hours."""
    a, b = ring[:-1, :2], ring[1:, :2]
    seg_length = np.hypot(*(b - a).T)
    start = np.concatenate([[0.0], np.cumsum(seg_length)[:-1]])
    tree = shapely.STRtree(shapely.linestrings(np.stack([a, b], axis=1)))
    p, s = tree.query(pts, predicate="dwithin", distance=tol)
    d = b[s] - a[s]
    length = seg_length[s]
    t = np.clip(np.einsum("ij,ij->i", xy[p] - a[s], d) / np.maximum(length ** 2, 1e-300), 0.0, 1.0)
    off = xy[p] - (a[s] + t[:, None] * d)
    dist = np.hypot(off[:, 0], off[:, 1])
    # each point's nearest segment (the lower one at a shared vertex)
    pick = np.lexsort((s, dist, p))
    first = np.ones(len(pick), bool)
    first[1:] = p[pick][1:] != p[pick][:-1]
    pick = pick[first]
    return p[pick], start[s[pick]] + t[pick] * length[pick]


def roof_solid(footprint: Polygon, planes: Sequence[Plane], ground: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """A closed solid from ``ground`` (m) up to the lower envelope of ``planes`` over a footprint
    polygon (holes allowed): (vertices (V, 3) as plan x, y and height, faces (F, 3)).

    One horizontal plane gives an LoD1 prism. Roof vertices are shared by the roof faces and the
    wall tops, wall bottoms by the walls and the floor, so the solid is watertight.
    """
    if len(planes) == 1 and planes[0].a == 0.0 and planes[0].b == 0.0:
        prism = _prism(footprint, planes[0].c, ground)
        if prism is not None:
            return prism
    faces_2d = roof_regions(footprint, planes)
    ring_xy = [np.asarray(r.coords)[:-1] for f in faces_2d for r in [f.exterior, *f.interiors]]
    top_xy = np.unique(np.concatenate(ring_xy), axis=0)
    top_z, _ = envelope(list(planes), top_xy[:, 0], top_xy[:, 1])
    roof = np.concatenate([_triangulate(f, top_xy) for f in faces_2d])
    # walls and floor follow the outline through every roof vertex that lies on it
    n_top = len(top_xy)
    rings: list[np.ndarray] = []
    walls: list[np.ndarray] = []
    pts = shapely.points(top_xy)
    for k, ring in enumerate([footprint.exterior, *footprint.interiors]):
        on, along = _along_ring(np.asarray(ring.coords), pts, top_xy, 10 * GRID)
        order = on[np.argsort(along, kind="stable")]
        if (_signed_area(top_xy[order]) > 0) != (k == 0):  # exterior counter-clockwise, holes clockwise
            order = order[::-1]
        base = n_top + sum(len(r) for r in rings)
        rings.append(order)
        i_bot = base + np.arange(len(order))
        j_bot = np.roll(i_bot, -1)
        i_top, j_top = order, np.roll(order, -1)
        walls.append(np.column_stack([i_bot, j_bot, j_top]))
        walls.append(np.column_stack([i_bot, j_top, i_top]))
    bottom = np.concatenate(rings)
    floor_poly = Polygon(top_xy[rings[0]], [top_xy[r] for r in rings[1:]])
    floor = n_top + _triangulate(floor_poly, top_xy[bottom])[:, ::-1]
    vertices = np.vstack([np.column_stack([top_xy, top_z]),
                          np.column_stack([top_xy[bottom], np.full(len(bottom), ground)])])
    faces = np.concatenate([roof, floor, *walls]).astype(np.int32)
    return vertices, faces


def _prism(footprint: Polygon, top: float, ground: float) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`roof_solid` under one horizontal roof at ``top`` (m), straight from the rings: the
    roof's triangles serve the floor too, and the walls run along each ring (LoD1 city blocks
    spend most of their time here). None when a vertex repeats (a hole touching the outline):
    the general path handles that."""
    poly = shapely.orient_polygons(footprint)  # exterior counter-clockwise, holes clockwise
    rings = [np.asarray(r.coords)[:-1] for r in [poly.exterior, *poly.interiors]]
    rings = [r[np.any(r != np.roll(r, 1, axis=0), axis=1)] for r in rings]
    xy = np.concatenate(rings)
    n = len(xy)
    if any(len(r) < 3 for r in rings) or len(np.unique(_xy_key(xy))) != n:
        return None
    roof = _triangulate(poly, xy)
    walls = []
    start = 0
    for r in rings:
        i_top = start + np.arange(len(r))
        j_top = np.roll(i_top, -1)
        walls += [np.column_stack([i_top + n, j_top + n, j_top]), np.column_stack([i_top + n, j_top, i_top])]
        start += len(r)
    vertices = np.vstack([np.column_stack([xy, np.full(n, top)]), np.column_stack([xy, np.full(n, ground)])])
    return vertices, np.concatenate([roof, n + roof[:, ::-1], *walls]).astype(np.int32)


def concat_meshes(meshes: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One mesh (vertices, faces int32) of several, each one's faces offset past the vertices before it."""
    offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
    return (np.concatenate([v for v, _ in meshes]),
            np.concatenate([np.asarray(f, np.int64) + o for (_, f), o in zip(meshes, offsets, strict=True)])
            .astype(np.int32))


def compact_faces(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the vertices ``faces`` use, the faces renumbered over those alone)."""
    used = np.unique(faces)
    remap = np.full(n_vertices, -1, np.int64)
    remap[used] = np.arange(len(used))
    return used, remap[faces]


def is_closed(faces: np.ndarray) -> bool:
    """Whether a mesh is watertight and consistently wound: every directed edge occurs once and
    its reverse once."""
    f = np.asarray(faces, np.int64)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = int(directed.max()) + 1 if len(directed) else 1
    code = directed[:, 0] * n + directed[:, 1]
    rev = directed[:, 1] * n + directed[:, 0]
    uniq = np.unique(code)
    return len(uniq) == len(code) and bool(np.all(np.isin(rev, uniq)))


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals (F, 3) of CCW faces."""
    v = vertices[faces]
    nrm = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    length = np.linalg.norm(nrm, axis=1, keepdims=True)
    return nrm / np.where(length == 0, 1.0, length)


def mesh_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume (m^3) of a closed mesh; positive when its faces point outward."""
    v = vertices[faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def mesh_digest(vertices: np.ndarray, faces: np.ndarray) -> str:
    """16 hex digits of the sha256 of a mesh: vertices rounded to the millimetre (in their own
    metres) and faces; equal for the same geometry written twice, different when it moves."""
    v = np.round(np.asarray(vertices, np.float64) * 1000.0).astype(np.int64)
    h = hashlib.sha256(np.ascontiguousarray(v).tobytes())
    h.update(np.ascontiguousarray(np.asarray(faces, np.int64)).tobytes())
    return h.hexdigest()[:16]
