"""The bundle as one .3tz: 3d-tiles-tools (CesiumGS, Node) unpacks it to the same bytes, and its
index finds every file where the ZIP's own directory says it is."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from pipeline.core.archive3tz import INDEX, read_index, write_3tz
from tests.conftest import REPO, run_cli

TOOL = REPO / "node_modules" / ".bin" / "3d-tiles-tools"


def _unpack_with_3d_tiles_tools(archive: Path, out: Path) -> None:
    if not TOOL.exists():
        pytest.fail("3d-tiles-tools is not installed: run make setup")
    proc = subprocess.run([str(TOOL), "convert", "-i", str(archive), "-o", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _same_tree(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _check_index(archive: Path) -> None:
    index = read_index(archive)
    with zipfile.ZipFile(archive) as z:
        infos = [i for i in z.infolist() if i.filename != INDEX]
        assert infos[0].filename == "tileset.json"
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    assert len(index) == len(infos)
    for i in infos:
        assert index[hashlib.md5(i.filename.encode()).digest()] == i.header_offset


def test_a_small_bundle_round_trips_through_3d_tiles_tools(tmp_path):
    bundle = tmp_path / "b"
    (bundle / "tiles" / "deep").mkdir(parents=True)
    (bundle / "tileset.json").write_text('{"asset": {"version": "1.1"}, "geometricError": 0, '
                                         '"root": {"boundingVolume": {"sphere": [0, 0, 0, 1]}, "geometricError": 0}}')
    (bundle / "tiles" / "deep" / "a.glb").write_bytes(bytes(range(256)) * 40)
    (bundle / "README.md").write_text("상암 DMC\n")
    assert write_3tz(bundle, tmp_path / "b.3tz") == 3
    _check_index(tmp_path / "b.3tz")
    _unpack_with_3d_tiles_tools(tmp_path / "b.3tz", tmp_path / "out")
    _same_tree(bundle, tmp_path / "out")


@pytest.mark.slow
def test_the_sample_bundle_as_3tz(sample_run, tmp_path):
    proc = run_cli("archive", str(sample_run / "bundle"), str(tmp_path / "sample.3tz"))
    assert proc.returncode == 0, proc.stderr
    _check_index(tmp_path / "sample.3tz")
    _unpack_with_3d_tiles_tools(tmp_path / "sample.3tz", tmp_path / "out")
    _same_tree(sample_run / "bundle", tmp_path / "out")
    assert run_cli("verify", str(tmp_path / "out"), "--no-gltf").returncode == 0


def test_non_ascii_paths_are_refused(tmp_path):
    """3d-tiles-tools misreads entries whose names are not ASCII: no archive is better than one
    its readers cannot open."""
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tileset.json").write_text("{}")
    (tmp_path / "b" / "상암.json").write_text("{}")
    with pytest.raises(ValueError, match="must be ASCII"):
        write_3tz(tmp_path / "b", tmp_path / "b.3tz")
    assert not (tmp_path / "b.3tz").exists()
