"""Per-point neighbourhood measures of ENU point clouds (metres), from one k-nearest-neighbour query.

The statistical outlier filter (mean distance to the k nearest neighbours, as PCL, open3d and
PDAL's ``filters.outlier`` define it) and the local geometry used to tell roofs from vegetation
(covariance eigenvalues of the same neighbourhood) share the query, which is the costly part.
pykdtree answers it about 3x faster than scipy's cKDTree on spatially sorted points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pykdtree.kdtree import KDTree

#: points per block of the covariance step (bounds its (block, k, 3) temporaries)
BLOCK = 65_536


@dataclass
class Neighbourhood:
    """Per query point: mean distance to its k neighbours (m), the k-th distance (m) and surface
    variation λ3 / (λ1 + λ2 + λ3) of the neighbourhood covariance (0 on a plane, 1/3 for isotropic
    scatter)."""

    mean_distance: np.ndarray
    kth_distance: np.ndarray
    surface_variation: np.ndarray


def smallest_eigenvalue(cov: np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of each symmetric (N, 3, 3) matrix, in closed form (Smith 1961).

    About ten times faster than ``numpy.linalg.eigh`` on millions of 3x3 matrices, which is the
    only reason it is written out here.
    """
    a00, a11, a22 = cov[:, 0, 0], cov[:, 1, 1], cov[:, 2, 2]
    a01, a02, a12 = cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 2]
    q = (a00 + a11 + a22) / 3
    p1 = a01 ** 2 + a02 ** 2 + a12 ** 2
    p = np.sqrt(((a00 - q) ** 2 + (a11 - q) ** 2 + (a22 - q) ** 2 + 2 * p1) / 6)
    safe = np.where(p > 0, p, 1.0)
    b00, b11, b22 = (a00 - q) / safe, (a11 - q) / safe, (a22 - q) / safe
    b01, b02, b12 = a01 / safe, a02 / safe, a12 / safe
    det = b00 * (b11 * b22 - b12 ** 2) - b01 * (b01 * b22 - b12 * b02) + b02 * (b01 * b12 - b11 * b02)
    phi = np.arccos(np.clip(det / 2, -1.0, 1.0)) / 3
    return np.where(p > 0, q + 2 * p * np.cos(phi + 2 * np.pi / 3), q)


def spatial_order(xyz: np.ndarray, block: float = 8.0) -> np.ndarray:
    """A permutation that groups points by ``block`` m squares: k-d tree queries in this order
    reuse the tree's cache and run several times faster than in acquisition order."""
    b = np.floor(xyz[:, :2] / block).astype(np.int64)
    return np.lexsort((b[:, 1], b[:, 0]))


def neighbourhood(points: np.ndarray, queries: np.ndarray, k: int) -> Neighbourhood:
    """Measures for each of ``queries`` (M, 3) over its ``k`` nearest other points of ``points``
    (N, 3), which must contain the queries themselves and hold no duplicate coordinates."""
    n = len(points)
    kk = min(k + 1, n)
    tree = KDTree(np.ascontiguousarray(points, np.float64))
    dist, idx = tree.query(np.ascontiguousarray(queries, np.float64), k=kk)
    dist, idx = dist.reshape(len(queries), kk), idx.reshape(len(queries), kk)
    # column 0 is the query point itself (no duplicates): the neighbours are the rest
    nd = dist[:, 1:] if kk > 1 else np.zeros((len(queries), 1))
    mean_d = nd.mean(1)
    sv = np.zeros(len(queries), np.float32)
    if kk >= 4:
        for s in range(0, len(queries), BLOCK):
            q = queries[s:s + BLOCK]
            nb = points[idx[s:s + BLOCK]] - q[:, None, :]        # (b, kk, 3), local for precision
            mean = nb.mean(1)
            cov = np.matmul(nb.transpose(0, 2, 1), nb) / kk - mean[:, :, None] * mean[:, None, :]
            total = np.trace(cov, axis1=1, axis2=2)
            with np.errstate(invalid="ignore", divide="ignore"):
                sv[s:s + BLOCK] = np.where(total > 0, np.maximum(smallest_eigenvalue(cov), 0) / total, 0.0)
    return Neighbourhood(mean_d.astype(np.float32), nd[:, -1].astype(np.float32), sv)


def first_per_key(keys: np.ndarray) -> np.ndarray:
    """Sorted indices of the first occurrence of each distinct row/value of ``keys``."""
    if keys.ndim == 2:
        keys = np.ascontiguousarray(keys).view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1])))
        keys = keys.ravel()
    _, first = np.unique(keys, return_index=True)
    return np.sort(first)
