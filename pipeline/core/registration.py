"""Rigid registration of overlapping scans with open3d (metres, any Cartesian frame; ENU here).

Coarse: FPFH features matched by RANSAC, when the initial guess is poor. Fine: point-to-plane
ICP, coarse to fine over voxel sizes. Both clouds are centred on the target's centroid first so
open3d's float math never sees large coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import open3d as o3d


@dataclass
class Registration:
    """``transform`` maps source points onto the target (4x4, column vectors)."""

    transform: np.ndarray
    fitness: float          # share of source points with a target correspondence (0..1)
    inlier_rmse: float      # RMSE of those correspondences (m)
    method: str

    def apply(self, xyz: np.ndarray) -> np.ndarray:
        return np.asarray(xyz, np.float64) @ self.transform[:3, :3].T + self.transform[:3, 3]


def _cloud(xyz: np.ndarray, voxel: float) -> o3d.geometry.PointCloud:
    # open3d is imported where used: it costs 2 s and 200 MB in every worker process otherwise
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(xyz, np.float64)))
    pcd = pcd.voxel_down_sample(voxel)
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=voxel * 3, max_nn=30))
    return pcd


def _icp(src: o3d.geometry.PointCloud, dst: o3d.geometry.PointCloud, max_corr: float,
         init: np.ndarray) -> o3d.pipelines.registration.RegistrationResult:
    import open3d as o3d

    reg = o3d.pipelines.registration
    return reg.registration_icp(src, dst, max_corr, init,
                                reg.TransformationEstimationPointToPlane(),
                                reg.ICPConvergenceCriteria(relative_fitness=1e-7, relative_rmse=1e-7,
                                                           max_iteration=60))


def _global(src: o3d.geometry.PointCloud, dst: o3d.geometry.PointCloud, voxel: float) -> np.ndarray:
    import open3d as o3d

    reg = o3d.pipelines.registration
    param = o3d.geometry.KDTreeSearchParamHybrid(radius=voxel * 5, max_nn=100)
    # open3d's stubs list only the overload with point indices
    f_src = reg.compute_fpfh_feature(src, param)  # type: ignore[call-arg]
    f_dst = reg.compute_fpfh_feature(dst, param)  # type: ignore[call-arg]
    o3d.utility.random.seed(0)
    result = reg.registration_ransac_based_on_feature_matching(
        src, dst, f_src, f_dst, True, voxel * 1.5,
        reg.TransformationEstimationPointToPoint(False), 3,
        [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9),
         reg.CorrespondenceCheckerBasedOnDistance(voxel * 1.5)],
        reg.RANSACConvergenceCriteria(100_000, 0.999))
    return np.asarray(result.transformation)


def register(source: np.ndarray, target: np.ndarray, *, voxel: float = 0.5, max_correspondence: float = 1.0,
             global_search: str = "auto", min_fitness: float = 0.5) -> Registration:
    """Align ``source`` (N, 3) onto ``target`` (M, 3); returns the transform and its quality.

    ``global_search``: 'always' / 'never' run FPFH + RANSAC first or not; 'auto' runs it when ICP
    from the identity reaches less than ``min_fitness``.
    """
    centre = np.asarray(target, np.float64).mean(0)
    src_xyz = np.asarray(source, np.float64) - centre
    dst_xyz = np.asarray(target, np.float64) - centre
    voxels = [voxel, voxel / 2]
    clouds = [(_cloud(src_xyz, v), _cloud(dst_xyz, v)) for v in voxels]
    init = np.eye(4)
    method = "icp"
    first = _icp(clouds[0][0], clouds[0][1], max_correspondence, init)
    if global_search == "always" or (global_search == "auto" and first.fitness < min_fitness):
        # features need context: describe the scene at four times the ICP voxel
        coarse = 4 * voxel
        init = _global(_cloud(src_xyz, coarse), _cloud(dst_xyz, coarse), coarse)
        method = "fpfh+ransac+icp"
    else:
        init = np.asarray(first.transformation)
    result: Any = None
    # the last level's distance stays above the point spacing, or fitness only measures sparsity
    for (s, d), corr in zip(clouds, (max_correspondence, voxel), strict=True):
        result = _icp(s, d, corr, init)
        init = np.asarray(result.transformation)
    # express the transform for uncentred coordinates: T = C @ T_c @ C^-1
    c = np.eye(4)
    c[:3, 3] = centre
    t = c @ init @ np.linalg.inv(c)
    return Registration(t, float(result.fitness), float(result.inlier_rmse), method)
