"""ICP recovers a known offset of a crop of the sample's scan."""

from __future__ import annotations

import laspy
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipeline.core.registration import register
from pipeline.samples.generator import origin_xy
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    las = laspy.read(SAMPLE / "dmc_aerial.laz")
    x0, y0 = origin_xy()
    xyz = np.column_stack([las.x - x0, las.y - y0, np.asarray(las.z)])
    keep = (np.abs(xyz[:, 0] - 20) < 90) & (np.abs(xyz[:, 1] - 150) < 90)
    return xyz[keep]


def _moved(xyz: np.ndarray, yaw_deg: float, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.eye(4)
    t[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    t[:3, 3] = shift
    centre = xyz.mean(0)
    moved = (xyz - centre) @ t[:3, :3].T + centre + shift
    return moved, t


@pytest.mark.parametrize("yaw,shift,mode", [
    (0.4, [0.8, -0.6, 0.25], "never"),
    (12.0, [6.0, -4.0, 1.5], "always"),
])
def test_registration_recovers_known_offset(crop, yaw, shift, mode):
    rng = np.random.default_rng(0)
    # the "mobile" scan sees a different subset of the same surfaces, with its own noise
    src = crop[rng.random(len(crop)) < 0.5]
    dst = crop[rng.random(len(crop)) < 0.5]
    moved, _ = _moved(src, yaw, np.array(shift))
    moved = moved + rng.normal(0, 0.01, moved.shape)
    r = register(moved, dst, voxel=0.5, max_correspondence=1.5, global_search=mode)
    err = np.linalg.norm(r.apply(moved) - src, axis=1)
    assert np.sqrt(np.mean(err ** 2)) < 0.02, (r.method, r.fitness, np.sqrt(np.mean(err ** 2)))
    assert r.fitness > 0.9
