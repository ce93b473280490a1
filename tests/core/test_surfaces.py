"""Surface kinds from normals, and stated kinds kept."""

from __future__ import annotations

import numpy as np

from pipeline.core.surfaces import GROUND, OTHER, ROOF, UNLABELLED, WALL, complete_kinds, kinds_by_normal


def _tilted(pitch_deg: float) -> np.ndarray:
    """A triangle whose normal leans ``pitch_deg`` from straight up."""
    t = np.radians(pitch_deg)
    return np.array([[0, 0, 0], [1, 0, 0], [0, np.cos(t), np.sin(t)]])


def test_kinds_follow_the_normal_up_to_a_steep_mansard():
    faces = np.array([[0, 1, 2]])
    kinds = {pitch: int(kinds_by_normal(_tilted(pitch), faces)[0]) for pitch in (0, 30, 70, 79, 81, 90, 95, 110, 180)}
    assert kinds == {0: ROOF, 30: ROOF, 70: ROOF, 79: ROOF, 81: WALL, 90: WALL, 95: WALL, 110: GROUND, 180: GROUND}
    # a triangle with no area is a wall (it shows nothing either way)
    assert kinds_by_normal(np.zeros((3, 3)), faces).tolist() == [WALL]


def test_stated_kinds_are_kept_and_only_unlabelled_ones_follow_the_normal():
    v = np.vstack([_tilted(0), _tilted(90) + 5, _tilted(180) + 9])
    f = np.arange(9).reshape(3, 3)
    assert complete_kinds(v, f, np.array([OTHER, UNLABELLED, WALL], np.uint8)).tolist() == [OTHER, WALL, WALL]
    assert complete_kinds(v, f, None).tolist() == [ROOF, WALL, GROUND]
