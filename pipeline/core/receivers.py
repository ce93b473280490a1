"""Sunlight receivers: window points on every facade, per storey, and a grid over open ground.

All positions are ENU metres at the site origin. A facade receiver is first laid on the
building's outline (plan ENU), then moved onto the building's own mesh by a horizontal ray cast
inward from just outside: imported models and LoD2 walls need not stand exactly on the outline,
and a point whose ray meets a neighbour first or ends inside one (a party wall), or meets no wall
of its own building (a storey above a lower wing), is dropped instead of being left inside
something. The receiver sits
``offset`` metres out along the wall's own normal, so the rays it casts start in the open.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import shapely

from pipeline.core.shading import as_tensor, raycasting_scene

#: how far outside the outline a snapping ray starts (m); walls further out than this are missed
SNAP_REACH_M = 1.0
#: a hit whose normal leans more than this from horizontal is a roof, not a facade
MAX_WALL_NORMAL_Z = 0.5


@dataclass
class Receivers:
    """Receiver points: ENU position (N, 3) m, unit normal (N, 3) (up for ground), the building's
    feature ID (-1: ground), storey (1 = ground floor; 0: ground grid) and facade azimuth
    (degrees clockwise from north the wall faces; NaN for the ground)."""

    position: np.ndarray
    normal: np.ndarray
    building: np.ndarray
    storey: np.ndarray
    azimuth_deg: np.ndarray

    def __len__(self) -> int:
        return len(self.position)

    @classmethod
    def empty(cls) -> Receivers:
        return cls(np.empty((0, 3)), np.empty((0, 3)), np.empty(0, np.int32), np.empty(0, np.int16),
                   np.empty(0, np.float32))

    @classmethod
    def concat(cls, parts: Sequence[Receivers]) -> Receivers:
        parts = [p for p in parts if len(p)] or [cls.empty()]
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def take(self, index: np.ndarray) -> Receivers:
        return Receivers(*(getattr(self, f.name)[index] for f in fields(self)))


@dataclass(frozen=True)
class FacadeSource:
    """A building as the receivers need it: feature ID, finest mesh (ENU vertices, faces), its
    rings in plan ENU (exterior first, then courtyards; any orientation), the ENU height of the
    lowest floor, the wall height (m, ground to eaves) and the number of storeys (None: from
    the wall height and the default storey height)."""

    building: int
    vertices: np.ndarray
    faces: np.ndarray
    rings: Sequence[np.ndarray]
    base_u: float
    wall_height: float
    floors: int | None


def _outward_edges(ring: np.ndarray, exterior: bool, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` m (centred in equal parts of each edge) and their outward plan
    normals (away from the solid: outwards on the exterior, into the courtyard on a hole)."""
    ring = np.asarray(ring, np.float64)[:, :2]
    if len(ring) > 1 and np.allclose(ring[0], ring[-1]):
        ring = ring[:-1]
    area2 = np.sum(ring[:, 0] * np.roll(ring[:, 1], -1) - np.roll(ring[:, 0], -1) * ring[:, 1])
    if (area2 > 0) != exterior:  # exterior counter-clockwise, holes clockwise
        ring = ring[::-1]
    a, b = ring, np.roll(ring, -1, axis=0)
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    parts = np.rint(length / spacing).astype(np.int64)
    keep = parts > 0
    a, d, length, parts = a[keep], d[keep], length[keep], parts[keep]
    edge = np.repeat(np.arange(len(a)), parts)
    first = np.repeat(np.cumsum(parts) - parts, parts)
    frac = (np.arange(len(edge)) - first + 0.5) / parts[edge]
    points = a[edge] + d[edge] * frac[:, None]
    normals = np.column_stack([d[:, 1], -d[:, 0]]) / length[:, None]
    return points, normals[edge]


def facade_receivers(buildings: Sequence[FacadeSource], *, spacing: float = 2.0, window_height: float = 1.5,
                     storey_height: float = 3.0, offset: float = 0.05) -> Receivers:
    """Window receivers on every building's walls: one per storey (floor + ``window_height``)
    every ``spacing`` m along each wall, ``offset`` m out along the wall's normal. A building with
    ``floors`` has storeys of wall height / floors; one without has ``storey_height`` storeys."""
    if not buildings:
        return Receivers.empty()
    scene = raycasting_scene()
    gid_to_building = {}
    for b in buildings:
        gid = scene.add_triangles(as_tensor(b.vertices), as_tensor(b.faces, np.uint32))
        gid_to_building[gid] = b.building
    origin, inward, owner, storey = [], [], [], []
    for b in buildings:
        if b.floors:
            n, h = int(b.floors), b.wall_height / int(b.floors)
        else:
            n, h = max(1, int(b.wall_height // storey_height)), storey_height
        z = b.base_u + np.arange(n) * h + window_height
        k = np.flatnonzero(z < b.base_u + b.wall_height)
        for i, ring in enumerate(b.rings):
            p, nrm = _outward_edges(ring, i == 0, spacing)
            if not len(p):
                continue
            m, s = len(p), len(k)
            start = p + nrm * SNAP_REACH_M
            origin.append(np.column_stack([np.tile(start, (s, 1)), np.repeat(z[k], m)]))
            inward.append(np.column_stack([-np.tile(nrm, (s, 1)), np.zeros(m * s)]))
            owner.append(np.full(m * s, b.building, np.int32))
            storey.append(np.repeat(k + 1, m).astype(np.int16))
    if not origin:
        return Receivers.empty()
    o, d = np.concatenate(origin), np.concatenate(inward)
    hit = scene.cast_rays(as_tensor(np.hstack([o, d])))
    t = hit["t_hit"].numpy().astype(np.float64)
    gid = hit["geometry_ids"].numpy()
    n = hit["primitive_normals"].numpy().astype(np.float64)
    lookup = np.full(max(gid_to_building) + 2, -2, np.int64)
    for g, bid in gid_to_building.items():
        lookup[g] = bid
    ok = np.isfinite(t)
    hit_building = np.where(ok, lookup[np.where(ok, gid, len(lookup) - 1)], -2)
    ok &= hit_building == np.concatenate(owner)
    ok &= np.abs(n[:, 2]) <= MAX_WALL_NORMAL_Z
    ok &= np.einsum("ij,ij->i", n, d) < 0  # the wall faces the ray: we came from outside
    n = n[ok] / np.linalg.norm(n[ok], axis=1, keepdims=True)
    pos = o[ok] + d[ok] * t[ok, None] + n * offset
    # a window on a wall another building stands against (the two walls coincide) is inside that
    # building: an odd number of surfaces above it says so
    up = np.column_stack([pos, np.zeros((len(pos), 2)), np.ones(len(pos))]).astype(np.float32)
    outside = scene.count_intersections(as_tensor(up)).numpy() % 2 == 0
    ok[np.flatnonzero(ok)[~outside]] = False
    n, pos = n[outside], pos[outside]
    azimuth = (np.degrees(np.arctan2(n[:, 0], n[:, 1])) % 360.0).astype(np.float32)
    return Receivers(pos, n, np.concatenate(owner)[ok], np.concatenate(storey)[ok], azimuth)


def ground_receivers(plan_en: np.ndarray, terrain_vertices: np.ndarray, terrain_faces: np.ndarray,
                     exclude: Sequence[shapely.Geometry] = (), *, offset: float = 0.05
                     ) -> tuple[Receivers, np.ndarray]:
    """Receivers on the terrain mesh below plan ENU points (N, 2), ``offset`` m above it, and the
    indices of the points they stand for: points inside ``exclude`` (building footprints) or
    off the terrain get none."""
    plan_en = np.asarray(plan_en, np.float64).reshape(-1, 2)
    keep = np.ones(len(plan_en), bool)
    if len(exclude) and len(plan_en):
        cover = shapely.union_all(list(exclude))
        keep &= ~shapely.contains_xy(cover, plan_en[:, 0], plan_en[:, 1])
    if len(terrain_faces) == 0:
        keep[:] = False
    index = np.flatnonzero(keep)
    p = plan_en[index]
    if not len(p):
        return Receivers.empty(), index
    scene = raycasting_scene()
    scene.add_triangles(as_tensor(terrain_vertices), as_tensor(terrain_faces, np.uint32))
    top = float(np.max(terrain_vertices[:, 2])) + 10.0
    rays = np.column_stack([p, np.full(len(p), top), np.zeros((len(p), 2)), -np.ones(len(p))]).astype(np.float32)
    t = scene.cast_rays(as_tensor(rays))["t_hit"].numpy().astype(np.float64)
    on = np.isfinite(t)
    pos = np.column_stack([p[on], top - t[on] + offset])
    m = len(pos)
    return Receivers(pos, np.tile([0.0, 0.0, 1.0], (m, 1)), np.full(m, -1, np.int32), np.zeros(m, np.int16),
                     np.full(m, np.nan, np.float32)), index[on]
