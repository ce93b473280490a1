"""A task's output file is whole or absent, whichever attempt writes it and however it ends."""

from __future__ import annotations

import pytest

from pipeline.core.atomic import ATTEMPT, replacing, sweep_attempts


def test_a_finished_attempt_replaces_the_file_whole(tmp_path):
    target = tmp_path / "tile.glb"
    target.write_bytes(b"old")
    with replacing(target) as f:
        f.write(b"new ")
        assert target.read_bytes() == b"old"  # readers see the old file until the attempt ends
        f.write(b"content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["tile.glb"]


def test_a_failed_attempt_leaves_nothing(tmp_path):
    target = tmp_path / "cell.npy"
    with pytest.raises(RuntimeError), replacing(target) as f:
        f.write(b"half")
        raise RuntimeError("the task failed")
    assert not list(tmp_path.iterdir())


def test_overlapping_attempts_each_write_their_own_file(tmp_path):
    target = tmp_path / "part.npy"
    with replacing(target) as first, replacing(target) as second:
        first.write(b"first attempt")
        second.write(b"second attempt")
        assert first.name != second.name
    assert target.read_bytes() in (b"first attempt", b"second attempt")
    assert [p.name for p in tmp_path.iterdir()] == ["part.npy"]


def test_the_files_of_dead_attempts_are_swept(tmp_path):
    (tmp_path / "tiles").mkdir()
    (tmp_path / "tiles" / f".r01.glb.0123456789ab{ATTEMPT}").write_bytes(b"torn")
    (tmp_path / "tiles" / "r01.glb").write_bytes(b"whole")
    assert sweep_attempts(tmp_path) == 1
    assert [p.name for p in (tmp_path / "tiles").iterdir()] == ["r01.glb"]
