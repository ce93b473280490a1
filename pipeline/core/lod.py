"""Levels of detail: quadric decimation and the measured deviation of each level (metres).

The deviation of a coarse mesh from the full one is their Hausdorff distance, bounded from
above by branch and bound over the triangles of each mesh. The distance to one triangle is a
convex function of the point, so over a triangle ``T`` it peaks at a corner: the distance from
any point of ``T`` to the other mesh is at most the largest distance from ``T``'s corners to
any single triangle of it (candidates: those nearest to ``T``'s corners and centroid). A
triangle that lies over one face of the other mesh is thus bounded exactly at once; triangles
over creases are cut in four and measured again until no bound exceeds the largest distance
found by more than a tolerance (5 cm, or 5 % of the distance). The number recorded never
understates the error and overstates it by at most that tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Level:
    """One level of detail: ``vertices`` (V, 3), ``faces`` (F, 3) int32, and its Hausdorff
    distance to level 0 (m, an upper bound; 0 for level 0)."""

    vertices: np.ndarray
    faces: np.ndarray
    error: float


def point_triangle_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Distance (N,) from points ``p`` to triangles ``a, b, c`` (all (N, 3)), by the closest
    point on each triangle (its Voronoi regions: vertices, edges, face; Ericson, Real-Time
    Collision Detection, 5.1.5). The closest point is ``a + v ab + w ac``: the regions choose the
    two weights, (N,) each, rather than whole points."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v, w = vb / denom, vc / denom
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    # later regions override earlier ones, in the reverse of Ericson's order of tests
    on_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    v, w = np.where(on_bc, 1.0 - t_bc, v), np.where(on_bc, t_bc, w)
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    v, w = np.where(on_ac, 0.0, v), np.where(on_ac, t_ac, w)
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    v, w = np.where(on_ab, t_ab, v), np.where(on_ab, 0.0, w)
    at_c = (d6 >= 0) & (d5 <= d6)
    v, w = np.where(at_c, 0.0, v), np.where(at_c, 1.0, w)
    at_b = (d3 >= 0) & (d4 <= d3)
    v, w = np.where(at_b, 1.0, v), np.where(at_b, 0.0, w)
    at_a = (d1 <= 0) & (d2 <= 0)
    v, w = np.where(at_a, 0.0, v), np.where(at_a, 0.0, w)
    gap = ap - v[:, None] * ab - w[:, None] * ac
    return np.sqrt(np.einsum("ij,ij->i", gap, gap))


class _Distance:
    """Distance (m) from points to a triangle mesh, and the triangle that is nearest."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        import open3d as o3d

        self._o3d = o3d
        self.tris = np.asarray(vertices, np.float64)[np.asarray(faces, np.int64)]
        self.scene = o3d.t.geometry.RaycastingScene()
        # shifted to the mesh's own centre so float32 keeps a tenth of a millimetre
        self.centre = np.asarray(vertices, np.float64).mean(axis=0)
        # open3d's stubs lack Tensor's NumPy-array overload (here and below)
        self.scene.add_triangles(o3d.core.Tensor((vertices - self.centre).astype(np.float32)),  # type: ignore[call-overload]
                                 o3d.core.Tensor(np.asarray(faces, np.uint32)))  # type: ignore[call-overload]

    def nearest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance, index of the nearest triangle) of each point; the distance is recomputed in
        float64 to that triangle."""
        query = self._o3d.core.Tensor((points - self.centre).astype(np.float32))  # type: ignore[call-overload]
        ids = self.scene.compute_closest_points(query)["primitive_ids"].numpy().astype(np.int64)
        t = self.tris[ids]
        return point_triangle_distance(points, t[:, 0], t[:, 1], t[:, 2]), ids


def one_sided(a: tuple[np.ndarray, np.ndarray], to: _Distance, tolerance: float, relative: float = 0.2,
              budget: int = 4_000_000) -> float:
    """Upper bound (m) of the largest distance from surface ``a`` (vertices, faces) to ``to``,
    above the true value by at most ``tolerance`` m or ``relative`` of it, whichever is larger
    (branch and bound over ``a``'s triangles). When refining further would take more than
    ``budget`` distance queries, the looser bound reached so far is returned."""
    tris = np.asarray(a[0], np.float64)[np.asarray(a[1], np.int64)]
    n = len(tris)
    d, ids = to.nearest(tris.reshape(-1, 3))
    corner_d, corner_ids = d.reshape(n, 3), ids.reshape(n, 3)
    best, slack, settled = 0.0, tolerance, 0.0
    while len(tris):
        n = len(tris)
        centre_d, centre_ids = to.nearest(tris.mean(axis=1))
        best = max(best, float(corner_d.max()), float(centre_d.max()))
        slack = max(tolerance, relative * best)
        # Lipschitz bound, and the convexity bound against each candidate triangle
        longest = np.max(np.linalg.norm(tris - np.roll(tris, 1, axis=1), axis=2), axis=1)
        bound = corner_d.max(axis=1) + longest / np.sqrt(3.0)
        # candidates: the triangles nearest the centroid and the farthest corner, tried only
        # where the Lipschitz bound leaves the triangle open
        far_corner = corner_ids[np.arange(n), np.argmax(corner_d, axis=1)]
        for cand in (centre_ids, far_corner):
            sel = np.flatnonzero(bound > best + slack)
            t = to.tris[cand[sel]]
            corners = tris[sel].transpose(1, 0, 2).reshape(-1, 3)
            far = point_triangle_distance(corners, *(np.tile(t[:, k], (3, 1)) for k in range(3))).reshape(3, -1)
            bound[sel] = np.minimum(bound[sel], far.max(axis=0))
        open_ = bound > best + slack
        if 16 * int(open_.sum()) > budget:
            return float(max(bound.max(), settled))
        if (~open_).any():
            settled = max(settled, float(bound[~open_].max()))
        # an open triangle is cut in four at its edges' midpoints; the children's other corners
        # are the parent's, whose distances are known: only the midpoints are measured
        t, td, ti = tris[open_], corner_d[open_], corner_ids[open_]
        mids = np.stack([(t[:, 0] + t[:, 1]) / 2, (t[:, 1] + t[:, 2]) / 2, (t[:, 2] + t[:, 0]) / 2], 1)
        md, mi = to.nearest(mids.reshape(-1, 3))
        md, mi = md.reshape(-1, 3), mi.reshape(-1, 3)
        # children: (t0, m01, m20), (m01, t1, m12), (m20, m12, t2), (m01, m12, m20)
        tris = np.concatenate([np.stack([t[:, 0], mids[:, 0], mids[:, 2]], 1),
                               np.stack([mids[:, 0], t[:, 1], mids[:, 1]], 1),
                               np.stack([mids[:, 2], mids[:, 1], t[:, 2]], 1), mids])
        corner_d = np.concatenate([np.stack([td[:, 0], md[:, 0], md[:, 2]], 1),
                                   np.stack([md[:, 0], td[:, 1], md[:, 1]], 1),
                                   np.stack([md[:, 2], md[:, 1], td[:, 2]], 1), md])
        corner_ids = np.concatenate([np.stack([ti[:, 0], mi[:, 0], mi[:, 2]], 1),
                                     np.stack([mi[:, 0], ti[:, 1], mi[:, 1]], 1),
                                     np.stack([mi[:, 2], mi[:, 1], ti[:, 2]], 1), mi])
    # every triangle was retired with a bound no larger than best + slack
    return max(best, settled)


def hausdorff(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], tolerance: float = 0.1) -> float:
    """Upper bound (m) of the Hausdorff distance between meshes ``a`` and ``b`` (vertices, faces),
    within ``tolerance`` m (or 5 %) of the true value."""
    if len(a[1]) == 0 or len(b[1]) == 0:
        return float("inf")
    return max(one_sided(a, _Distance(*b), tolerance), one_sided(b, _Distance(*a), tolerance))


def decimate(vertices: np.ndarray, faces: np.ndarray, target_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric-error edge collapses (fast-simplification) down to about ``target_faces``."""
    import fast_simplification

    v, f = fast_simplification.simplify(np.asarray(vertices, np.float64), np.asarray(faces, np.int64),
                                        target_count=int(target_faces))
    return np.asarray(v, np.float64), np.asarray(f, np.int32)


def lod_chain(levels: list[Level], *, ratio: float = 0.25, min_faces: int = 12, max_levels: int = 4,
              tolerance: float = 0.1) -> list[Level]:
    """Extend ``levels`` (level 0 first, coarser ones given by the caller, e.g. an LoD1 block for
    an LoD2 building) with quadric decimations of the last one, each keeping ``ratio`` of its
    faces, while more than ``min_faces`` remain; every new level's error is measured against
    level 0."""
    full = (levels[0].vertices, levels[0].faces)
    while len(levels) < max_levels:
        last = levels[-1]
        target = int(len(last.faces) * ratio)
        if target < min_faces:
            break
        v, f = decimate(last.vertices, last.faces, target)
        if len(f) == 0 or len(f) >= len(last.faces):
            break
        levels.append(Level(v, f, hausdorff(full, (v, f), tolerance)))
    return levels
