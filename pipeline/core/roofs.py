"""LoD2 roofs: planes found in a building's roof points, and the roof type they make.

Coordinates are plan metres (x, y: E, N of the point's plumb line) and heights in metres (z:
orthometric here); a plane is ``z = a x + b y + c``, its residuals are vertical.

Planes come from sequential RANSAC, written here rather than taken from open3d's
``segment_plane`` because the pipeline's outputs must be byte-identical run to run and open3d
samples in parallel threads: this one draws its hypotheses from a seeded generator and scores
them all at once with numpy. The roofs modelled are those that are the lower envelope of their
planes (every point lies on the lowest plane above it): flat, shed, gable and hip, the shapes of
almost every pitched roof; the envelope is refined jointly and scored on every roof point, and
a poor score sends the building back to LoD1.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plane:
    """``z = a x + b y + c`` (plan metres -> metres)."""

    a: float
    b: float
    c: float

    def z(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.a * np.asarray(x) + self.b * np.asarray(y) + self.c

    @property
    def slope_deg(self) -> float:
        return float(np.degrees(np.arctan(np.hypot(self.a, self.b))))

    @property
    def aspect_deg(self) -> float:
        """Direction the plane falls towards, degrees counter-clockwise from +x."""
        return float(np.degrees(np.arctan2(-self.b, -self.a)) % 360.0)


def fit_plane(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> Plane:
    """Least-squares plane (vertical residuals) through at least three points."""
    x0, y0 = float(np.mean(x)), float(np.mean(y))
    design = np.column_stack([x - x0, y - y0, np.ones(len(x))])
    (a, b, c), *_ = np.linalg.lstsq(design, z, rcond=None)
    return Plane(float(a), float(b), float(c - a * x0 - b * y0))


def ransac_planes(x: np.ndarray, y: np.ndarray, z: np.ndarray, *, threshold: float, min_points: int,
                  max_planes: int, seed: str | int = 0, hypotheses: int = 256, score_sample: int = 4000
                  ) -> list[tuple[Plane, np.ndarray]]:
    """Planes found one after another, each with the indices of its inliers (vertical residual
    below ``threshold`` m), largest first; stops when fewer than ``min_points`` points support a
    plane or ``max_planes`` are found. ``seed`` (e.g. the building id) fixes the draws."""
    key = zlib.crc32(str(seed).encode()) if not isinstance(seed, int) else seed
    rng = np.random.default_rng(key)
    remaining = np.arange(len(x))
    found: list[tuple[Plane, np.ndarray]] = []
    while len(found) < max_planes and len(remaining) >= max(min_points, 3):
        px, py, pz = x[remaining], y[remaining], z[remaining]
        tri = rng.integers(0, len(remaining), (hypotheses, 3))
        m = np.stack([px[tri], py[tri], np.ones(tri.shape)], axis=-1)  # (H, 3, 3)
        det = np.linalg.det(m)
        good = np.abs(det) > 1e-6
        if not good.any():
            break
        coef = np.linalg.solve(m[good], pz[tri[good]][..., None])[..., 0]  # (H', 3): a, b, c
        sample = (rng.choice(len(remaining), score_sample, replace=False)
                  if len(remaining) > score_sample else np.arange(len(remaining)))
        resid = np.abs(pz[sample][None, :] - (coef[:, :1] * px[sample][None, :]
                                              + coef[:, 1:2] * py[sample][None, :] + coef[:, 2:]))
        best = coef[int(np.argmax((resid < threshold).sum(axis=1)))]
        plane = Plane(*map(float, best))
        for _ in range(2):
            inl = np.abs(pz - plane.z(px, py)) < threshold
            if inl.sum() < 3:
                break
            plane = fit_plane(px[inl], py[inl], pz[inl])
        inl = np.abs(pz - plane.z(px, py)) < threshold
        if inl.sum() < min_points:
            break
        found.append((plane, remaining[inl]))
        remaining = remaining[~inl]
    return found


def merge_coplanar(planes: list[Plane], x: np.ndarray, y: np.ndarray, *, max_angle: float = 3.0,
                   max_offset: float = 0.15) -> list[Plane]:
    """Drop planes that repeat an earlier one: normals within ``max_angle`` degrees and heights
    within ``max_offset`` m over the points ``x, y``."""
    out: list[Plane] = []
    for p in planes:
        n1 = np.array([-p.a, -p.b, 1.0]) / np.hypot(np.hypot(p.a, p.b), 1.0)
        dup = False
        for q in out:
            n2 = np.array([-q.a, -q.b, 1.0]) / np.hypot(np.hypot(q.a, q.b), 1.0)
            angle = np.degrees(np.arccos(np.clip(n1 @ n2, -1, 1)))
            if angle < max_angle and np.median(np.abs(p.z(x, y) - q.z(x, y))) < max_offset:
                dup = True
                break
        if not dup:
            out.append(p)
    return out


def _angle_diff(a: float, b: float) -> float:
    return float(abs((a - b + 180.0) % 360.0 - 180.0))


def roof_kind(planes: list[Plane], *, flat_slope: float, angle_tolerance: float = 20.0) -> str | None:
    """flat, shed, gable or hip from a roof's planes (None: none of these)."""
    sloped = [p for p in planes if p.slope_deg >= flat_slope]
    if len(planes) == 1:
        return "shed" if sloped else "flat"
    if len(sloped) != len(planes):
        return None  # a flat part beside sloped ones, or flat roofs at several levels
    aspects = sorted(p.aspect_deg for p in planes)
    if len(planes) == 2:
        return "gable" if _angle_diff(aspects[0] + 180.0, aspects[1]) < angle_tolerance else None
    if len(planes) == 4:
        gaps = [(aspects[(i + 1) % 4] - aspects[i]) % 360.0 for i in range(4)]
        return "hip" if all(abs(g - 90.0) < angle_tolerance for g in gaps) else None
    return None


def envelope(planes: list[Plane], x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(height of the lowest plane at each point, index of that plane)."""
    zs = np.stack([p.z(x, y) for p in planes])
    active = np.argmin(zs, axis=0)
    return zs[active, np.arange(len(x))], active


def refine_envelope(planes: list[Plane], x: np.ndarray, y: np.ndarray, z: np.ndarray, *,
                    threshold: float, rounds: int = 3) -> list[Plane]:
    """Refit each plane to the points where it is the envelope and lies within 2 ``threshold``."""
    for _ in range(rounds):
        env, active = envelope(planes, x, y)
        near = np.abs(z - env) < 2 * threshold
        new = []
        for i, p in enumerate(planes):
            sel = near & (active == i)
            new.append(fit_plane(x[sel], y[sel], z[sel]) if sel.sum() >= 3 else p)
        planes = new
    return planes


@dataclass
class RoofFit:
    """A roof model and how well it fits its points."""

    kind: str | None            # flat, shed, gable, hip; None = not one of these
    planes: list[Plane]
    rmse: float                 # m, over points within ``outlier`` m of the model
    share: float                # of roof points within 2 x threshold of the model
    points: int
    reason: str | None = None   # why it is not usable (None: usable)


def fit_roof(x: np.ndarray, y: np.ndarray, z: np.ndarray, *, threshold: float, min_share: float,
             max_rmse: float, flat_slope: float, max_planes: int = 4, min_points: int = 20,
             seed: str | int = 0, outlier: float = 1.0) -> RoofFit:
    """The roof through points ``x, y, z`` (plan m, heights m)."""
    n = len(x)
    support = max(min_points, int(0.03 * n))
    found = ransac_planes(x, y, z, threshold=threshold, min_points=support, max_planes=max_planes, seed=seed)
    if not found:
        return RoofFit(None, [], float("nan"), 0.0, n, "no roof plane found")
    planes = merge_coplanar([p for p, _ in found], x, y, max_offset=threshold)
    kind = roof_kind(planes, flat_slope=flat_slope)
    if kind is None:
        return RoofFit(None, planes, float("nan"), 0.0, n,
                       f"{len(planes)} roof planes in no flat/shed/gable/hip arrangement")
    if kind == "flat":
        inl = found[0][1]
        planes = [Plane(0.0, 0.0, float(np.median(z[inl])))]
    else:
        planes = refine_envelope(planes, x, y, z, threshold=threshold)
        kind = roof_kind(planes, flat_slope=flat_slope)
        if kind is None:
            return RoofFit(None, planes, float("nan"), 0.0, n, "refined planes lost their arrangement")
    env, _ = envelope(planes, x, y)
    r = z - env
    share = float(np.mean(np.abs(r) < 2 * threshold))
    kept = np.abs(r) < outlier
    rmse = float(np.sqrt(np.mean(r[kept] ** 2))) if kept.any() else float("inf")
    reason = None
    if share < min_share:
        reason = f"only {share:.0%} of roof points on the model (< {min_share:.0%})"
    elif rmse > max_rmse:
        reason = f"fit RMSE {rmse:.2f} m > {max_rmse} m"
    return RoofFit(kind, planes, rmse, share, n, reason)
