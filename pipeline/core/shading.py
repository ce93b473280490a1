"""Which receivers see the sun, and for how long: occlusion by ray casting and sun-hour counts.

Ray casting is open3d's ``RaycastingScene`` (Intel Embree under the hood: a BVH, all cores, and
a boolean occlusion query that stops at the first hit). Rays are cast only where they can be
lit: the sun above the horizon and in front of the receiver's surface (a positive dot product
with its normal); everything else is dark without a ray.

Scenes with and without a proposal differ only in a few models, so the rays go once through
the scene common to both and then only the still-open rays through each scenario's own extra
geometry (a proposal; the building a proposal replaces): ``lit = open in common and open in
extra``, the same answer as one scene holding both, for a fraction of the rays.

Work goes in blocks of receivers so that a block's rays stay below ``block_rays``: memory
follows the block, not receivers x time steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import open3d as o3d


def as_tensor(array: np.ndarray, dtype: type = np.float32) -> o3d.core.Tensor:
    """An open3d tensor over ``array`` in ``dtype`` (float32 positions and rays, uint32 faces)."""
    import open3d as o3d

    return o3d.core.Tensor.from_numpy(np.ascontiguousarray(array, dtype))


def raycasting_scene() -> o3d.t.geometry.RaycastingScene:
    """An empty open3d ray-casting scene. open3d is imported here, when rays are cast: importing
    it costs a second and 200 MB in every process that imports a stage module (each worker, and
    a run that casts no ray)."""
    import open3d as o3d

    return o3d.t.geometry.RaycastingScene()


class Scene:
    """Triangles (ENU metres) ready for occlusion queries; an empty scene occludes nothing."""

    def __init__(self, meshes: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.triangles = 0
        self._scene: o3d.t.geometry.RaycastingScene | None = None
        self.lo: np.ndarray = np.zeros(3)
        self.hi: np.ndarray = np.zeros(3)
        meshes = [(v, f) for v, f in meshes if len(f)]
        if not meshes:
            return
        # one geometry of every mesh's triangles: a city's 600,000 buildings as as many geometries
        # cost the ray caster far more memory than their triangles (nothing asks which one was hit)
        starts = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
        vertices = np.concatenate([np.asarray(v, np.float64) for v, _ in meshes])
        faces = np.concatenate([np.asarray(f, np.int64) + s for (_, f), s in zip(meshes, starts, strict=True)])
        self._scene = raycasting_scene()
        self._scene.add_triangles(as_tensor(vertices), as_tensor(faces, np.uint32))
        self.triangles = len(faces)
        used = vertices[np.unique(faces)]
        self.lo, self.hi = used.min(axis=0), used.max(axis=0)

    @property
    def is_empty(self) -> bool:
        return self._scene is None

    def occluded(self, rays: np.ndarray) -> np.ndarray:
        """For rays (M, 6) float32 (origin, direction): whether each meets a triangle."""
        if self._scene is None or not len(rays):
            return np.zeros(len(rays), bool)
        return self._scene.test_occlusions(as_tensor(rays)).numpy()

    def first_hit(self, rays: np.ndarray) -> np.ndarray:
        """For rays (M, 6) (origin, unit direction; ENU metres): the distance to the first
        triangle each meets (m, float64), inf where none."""
        if self._scene is None or not len(rays):
            return np.full(len(rays), np.inf)
        return self._scene.cast_rays(as_tensor(rays))["t_hit"].numpy().astype(np.float64)

    def could_shade(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """(R,) conservative mask: whether any ray from receiver r towards the sun's directions
        (T, 3; zero rows ignored) can meet the scene's bounding box: the box's wedge of azimuths
        seen from the receiver meets the day's span of sun azimuths, and the box's top, seen from
        its nearest point, stands higher than the lowest sun. A small scene (a proposal) then
        needs only those receivers' rays: its shadow falls on a sector of the district."""
        if self._scene is None or not len(origins):
            return np.zeros(len(origins), bool)
        o = np.asarray(origins, np.float64)
        d = np.asarray(directions, np.float64)
        d = d[np.any(d != 0, axis=1)]
        if not len(d):
            return np.zeros(len(origins), bool)
        sun_az = np.arctan2(d[:, 0], d[:, 1])
        sun_mid = np.arctan2(np.sin(sun_az).mean(), np.cos(sun_az).mean())
        sun_half = np.max(np.abs(_wrap(sun_az - sun_mid)))
        lowest = np.min(np.arctan2(d[:, 2], np.hypot(d[:, 0], d[:, 1])))
        corners = np.array([[x, y] for x in (self.lo[0], self.hi[0]) for y in (self.lo[1], self.hi[1])])
        rel = corners[None, :, :] - o[:, None, :2]  # (R, 4, 2)
        mid = np.arctan2(rel[..., 0].mean(axis=1), rel[..., 1].mean(axis=1))
        half = np.max(np.abs(_wrap(np.arctan2(rel[..., 0], rel[..., 1]) - mid[:, None])), axis=1)
        near = np.hypot(np.clip(o[:, 0], self.lo[0], self.hi[0]) - o[:, 0],
                        np.clip(o[:, 1], self.lo[1], self.hi[1]) - o[:, 1])
        meets = (near == 0.0) | (np.abs(_wrap(mid - sun_mid)) <= half + sun_half + 1e-9)
        return meets & (np.arctan2(self.hi[2] - o[:, 2], near) >= lowest - 1e-9)


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles (radians) brought into [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def lit_matrix(origins: np.ndarray, normals: np.ndarray, directions: np.ndarray, common: Scene,
               extras: Sequence[Scene | None] = (None,), *, buffer: np.ndarray | None = None
               ) -> tuple[list[np.ndarray], int]:
    """Per scenario (``common`` plus each of ``extras``; None: the common scene alone), a boolean
    matrix (R, T): receiver r sees the sun at step t; and the number of rays cast through the
    common scene. ``directions`` (T, 3) are unit vectors to the sun, zero for steps when it is
    below the horizon; ``buffer`` is scratch space for the rays (float32, at least (rays, 6)),
    reused across blocks because filling fresh pages costs as much as the gather itself. The
    rays open through the common scene go through an extra scene only from receivers it could
    shade (:meth:`Scene.could_shade`)."""
    o32, d32 = np.asarray(origins, np.float32), np.asarray(directions, np.float32)
    facing = np.asarray(normals, np.float32) @ d32.T > 0.0  # also False where the direction is zero
    rows, steps = facing.shape
    n = int(np.count_nonzero(facing))
    if buffer is None or len(buffer) < n:
        buffer = np.empty((n, 6), np.float32)
    lit = np.zeros(facing.shape, bool)
    if rows and np.array_equal(facing, np.broadcast_to(facing[0], facing.shape)):
        # every receiver faces the sun at the same steps (open ground: every step the sun is up),
        # so the rays are receivers x steps in the same order and are written by broadcasting
        # without index arrays
        cols = np.flatnonzero(facing[0])
        width = max(len(cols), 1)  # rays per receiver (a block with none casts no ray)
        rays = buffer[:n]
        grid = rays.reshape(rows, len(cols), 6)
        grid[:, :, :3] = o32[:, None, :]
        grid[:, :, 3:] = d32[cols][None, :, :]
        open_common = ~common.occluded(rays)
        lit[:, cols] = open_common.reshape(rows, len(cols))

        def receiver(ray: np.ndarray) -> np.ndarray:
            return ray // width

        def cell(ray: np.ndarray) -> np.ndarray:
            return receiver(ray) * steps + cols[ray % width]
    else:
        flat = np.flatnonzero(facing)
        r = np.repeat(np.arange(rows, dtype=np.int32), facing.sum(axis=1))
        t = (flat - r.astype(np.int64) * steps).astype(np.int32)
        rays = buffer[:len(flat)]
        for k in range(3):  # column by column: a gather per column beats a strided (M, 3) copy
            rays[:, k] = o32[:, k][r]
            rays[:, 3 + k] = d32[:, k][t]
        open_common = ~common.occluded(rays)
        lit.ravel()[flat[open_common]] = True

        def receiver(ray: np.ndarray) -> np.ndarray:
            return r[ray]

        def cell(ray: np.ndarray) -> np.ndarray:
            return flat[ray]
    out = []
    for extra in extras:
        if extra is None or extra.is_empty:
            out.append(lit)
            continue
        maybe = np.flatnonzero(open_common)
        maybe = maybe[extra.could_shade(origins, directions)[receiver(maybe)]]
        shaded = maybe[extra.occluded(rays[maybe])]
        mine = lit.copy()
        mine.ravel()[cell(shaded)] = False
        out.append(mine)
    return out, len(rays)


def longest_run(lit: np.ndarray) -> np.ndarray:
    """Longest run of True in each row of a boolean matrix (R, T), in samples."""
    rows, cols = lit.shape
    best = np.zeros(rows, np.int64)
    if cols == 0 or rows == 0:
        return best
    padded = np.zeros((rows, cols + 2), np.int8)  # a False on each side: no run crosses rows
    padded[:, 1:-1] = lit
    edges = np.flatnonzero(np.diff(padded.ravel()))  # rises and falls alternate
    if not len(edges):
        return best
    starts, ends = edges[0::2], edges[1::2]
    row = starts // (cols + 2)
    first = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
    best[row[first]] = np.maximum.reduceat(ends - starts, first)
    return best


@dataclass(frozen=True)
class SunlightRule:
    """The tolerance test (Korean courts' reading of 일조권): at least ``continuous_min`` minutes of
    unbroken sun within [continuous_window) hours, or at least ``total_min`` minutes in all within
    [total_window) hours, both on the sun table's clock."""

    continuous_min: float = 120.0
    continuous_window: tuple[float, float] = (9.0, 15.0)
    total_min: float = 240.0
    total_window: tuple[float, float] = (8.0, 16.0)


@dataclass
class SunHours:
    """Per receiver: the longest unbroken sunlit span within the continuous window and the sunlit
    total within the total window (minutes), and the verdicts."""

    continuous_min: np.ndarray
    total_min: np.ndarray
    rule: SunlightRule

    @property
    def pass_continuous(self) -> np.ndarray:
        return self.continuous_min >= self.rule.continuous_min

    @property
    def pass_total(self) -> np.ndarray:
        return self.total_min >= self.rule.total_min

    @property
    def passes(self) -> np.ndarray:
        return self.pass_continuous | self.pass_total


def sun_hours(lit: np.ndarray, clock_min: np.ndarray, step_min: float, rule: SunlightRule) -> SunHours:
    """The rule's measures of a lit matrix (R, T) whose columns sit at ``clock_min``."""
    cont = (clock_min >= rule.continuous_window[0] * 60) & (clock_min < rule.continuous_window[1] * 60)
    total = (clock_min >= rule.total_window[0] * 60) & (clock_min < rule.total_window[1] * 60)
    return SunHours(longest_run(lit[:, cont]) * step_min, lit[:, total].sum(axis=1) * step_min, rule)


def blocks(n_receivers: int, n_steps: int, block_rays: int) -> Iterator[slice]:
    """Slices of receivers whose rays (at most one per step) stay within ``block_rays``."""
    size = max(1, block_rays // max(n_steps, 1))
    for start in range(0, n_receivers, size):
        yield slice(start, min(start + size, n_receivers))


def shade(origins: np.ndarray, normals: np.ndarray, directions: np.ndarray, clock_min: np.ndarray,
          step_min: float, rule: SunlightRule, common: Scene, extras: Sequence[Scene | None] = (None,), *,
          block_rays: int = 4_000_000, track: Callable[[list[slice]], Iterable[slice]] | None = None
          ) -> tuple[list[SunHours], int]:
    """Sun hours of every receiver under each scenario (see :func:`lit_matrix`), block by block
    (``track`` wraps the list of blocks, e.g. in a progress bar); returns them and the number of
    rays cast through the common scene."""
    cont: list[list[np.ndarray]] = [[] for _ in extras]
    tot: list[list[np.ndarray]] = [[] for _ in extras]
    rays = 0
    buffer = np.empty((min(block_rays, len(origins) * len(directions)), 6), np.float32)
    todo = list(blocks(len(origins), len(directions), block_rays))
    for block in (track(todo) if track is not None else todo):
        lits, n = lit_matrix(origins[block], normals[block], directions, common, extras, buffer=buffer)
        rays += n
        first = sun_hours(lits[0], clock_min, step_min, rule)
        for k, lit in enumerate(lits):
            h = first
            if lit is not lits[0]:
                # a scenario's extra geometry shades a few receivers: only those are counted again
                changed = np.flatnonzero(np.any(lit != lits[0], axis=1))
                h = SunHours(first.continuous_min.copy(), first.total_min.copy(), rule)
                again = sun_hours(lit[changed], clock_min, step_min, rule)
                h.continuous_min[changed], h.total_min[changed] = again.continuous_min, again.total_min
            cont[k].append(h.continuous_min)
            tot[k].append(h.total_min)
    empty = np.zeros(0)
    return [SunHours(np.concatenate(c) if c else empty, np.concatenate(t) if t else empty, rule)
            for c, t in zip(cont, tot, strict=True)], rays
