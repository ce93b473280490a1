"""7-parameter similarity (Helmert) transforms: closed-form fit, RANSAC against blunders, residuals.

``target = scale * R @ source + t`` with a proper rotation R (det +1). The closed form is Umeyama
(1991), the least-squares solution in one SVD. Written here because no maintained Python
package offers a robust 3D similarity fit with residual reporting (scikit-image's is 2D-first and
has no RANSAC hold-out logic we can drive); it is ~60 lines of numpy. Coordinates are metres in
any Cartesian frame (ENU in the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import InputError


@dataclass(frozen=True)
class Similarity:
    """target = scale * rotation @ source + translation (metres)."""

    scale: float
    rotation: np.ndarray      # (3, 3), det +1
    translation: np.ndarray   # (3,)

    def apply(self, xyz: np.ndarray) -> np.ndarray:
        """Transform (N, 3) points."""
        return self.scale * (np.asarray(xyz, np.float64) @ self.rotation.T) + self.translation

    def matrix(self) -> np.ndarray:
        """4x4 column-vector matrix."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = self.translation
        return m

    def rotation_angles_deg(self) -> list[float]:
        """Rotation as x, y, z Euler angles (degrees, R = Rz @ Ry @ Rx), for reports."""
        r = self.rotation
        return np.degrees([np.arctan2(r[2, 1], r[2, 2]), -np.arcsin(np.clip(r[2, 0], -1, 1)),
                           np.arctan2(r[1, 0], r[0, 0])]).tolist()


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """Least-squares similarity mapping ``source`` (N, 3) onto ``target`` (N, 3), N >= 3."""
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[2, 2] = -1.0
    rot = u @ s @ vt
    var_s = (a ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(d) @ s) / var_s)
    return Similarity(scale, rot, mu_d - scale * rot @ mu_s)


def is_degenerate(points: np.ndarray, min_spread: float = 0.5) -> bool:
    """True when points are too few or (nearly) collinear to fix a 3D rotation.

    ``min_spread`` (m) is the smallest allowed second singular value of the centred set, i.e.
    the points must spread at least that far off their best-fit line.
    """
    pts = np.asarray(points, np.float64)
    if len(pts) < 3:
        return True
    sv = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
    return bool(sv[1] / np.sqrt(len(pts)) < min_spread)


@dataclass
class HelmertResult:
    transform: Similarity
    inliers: np.ndarray                     # bool over the control points
    residuals: np.ndarray                   # (N, 3) target - fitted, control points
    rmse_h: float                           # horizontal RMSE of inliers (m)
    rmse_v: float                           # vertical RMSE of inliers (m)
    check_residuals: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    check_rmse_h: float | None = None
    check_rmse_v: float | None = None


def _rmse(res: np.ndarray) -> tuple[float, float]:
    return (float(np.sqrt(np.mean(res[:, 0] ** 2 + res[:, 1] ** 2))),
            float(np.sqrt(np.mean(res[:, 2] ** 2))))


def robust_similarity(source: np.ndarray, target: np.ndarray, *, threshold: float = 0.1,
                      iterations: int = 2000, seed: int = 0,
                      check_source: np.ndarray | None = None, check_target: np.ndarray | None = None,
                      path: str | None = None) -> HelmertResult:
    """RANSAC over minimal 3-point fits, then a least-squares refit on the inliers.

    A point is an inlier when its 3D residual is below ``threshold`` metres. Residuals are
    ``target - transform(source)`` in the target frame (E, N, U when the target is ENU). Check
    points are not used in the fit; their residuals measure it independently. Raises InputError
    (naming ``path``) when fewer than 3 usable, non-collinear points remain.
    """
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if len(src) < 3 or is_degenerate(src) or is_degenerate(dst):
        raise InputError(f"need at least 3 non-collinear control points, got {len(src)} usable",
                         path=path)
    rng = np.random.default_rng(seed)
    best = np.zeros(len(src), bool)
    best_err = np.inf
    n = len(src)
    trials = min(iterations, n * (n - 1) * (n - 2) // 6 * 3)
    for _ in range(max(trials, 1)):
        pick = rng.choice(n, 3, replace=False)
        if is_degenerate(src[pick]):
            continue
        t = fit_similarity(src[pick], dst[pick])
        err = np.linalg.norm(t.apply(src) - dst, axis=1)
        inl = err < threshold
        score = err[inl].sum()
        if inl.sum() > best.sum() or (inl.sum() == best.sum() and score < best_err):
            best, best_err = inl, score
    if best.sum() < 3 or is_degenerate(src[best]):
        raise InputError(f"no 3 non-collinear control points agree within {threshold} m "
                         "(blunders everywhere, or the wrong CRS)", path=path)
    # refit on the consensus, then recompute it once with the refined transform
    t = fit_similarity(src[best], dst[best])
    inl = np.linalg.norm(t.apply(src) - dst, axis=1) < threshold
    if inl.sum() >= 3 and not is_degenerate(src[inl]):
        t = fit_similarity(src[inl], dst[inl])
        best = inl
    res = dst - t.apply(src)
    rh, rv = _rmse(res[best])
    out = HelmertResult(t, best, res, rh, rv)
    if check_source is not None and len(check_source):
        cres = np.asarray(check_target, np.float64) - t.apply(check_source)
        out.check_residuals = cres
        out.check_rmse_h, out.check_rmse_v = _rmse(cres)
    return out
