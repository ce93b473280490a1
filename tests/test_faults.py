"""Faults of the machine and of other people: a second run on the same work directory, a full or
read-only disk, a worker the system kills, a stop request, a tampered artifact or bundle file.
Each ends in one line and exit code 2 (130 for a stop), never a half-written output, and the
published bundle stays as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.core.atomic import ATTEMPT
from tests.conftest import REPO, SAMPLE, run_cli

CONFIG = (f"site: {{name: faults, origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
          f"inputs: {{footprints: {{path: {SAMPLE / 'buildings.geojson'}}}, dem: {{path: {SAMPLE / 'dem.tif'}}}}}\n"
          # the sunlight analysis is left out and the DTM/DSM coarse: their files would not fit the
          # 24 MB disk these faults fill
          "stages: {mesh: {terrain_lods: 1}, analysis: {enabled: false}, publish: {elevation: {resolution_m: 5}}}\n"
          "executor: {kind: local, workers: 2}\n")


def _config(folder: Path, extra: str = "") -> Path:
    path = folder / "twin.yaml"
    path.write_text(CONFIG + extra)
    return path


def _one_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("dmctwin: warning:")]
    assert proc.returncode == code and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def _copy(workdir: Path, to: Path) -> None:
    """A copy of a work directory as a user makes one (``cp -a``: its bundle/ stays hard links to
    bundles/<version>, not a second copy that would overfill the small disk)."""
    subprocess.run(["cp", "-a", str(workdir), str(to)], check=True)


def _sums(workdir: Path) -> bytes:
    return (workdir / "bundle" / "SHA256SUMS").read_bytes()


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A work directory with a published bundle of the footprints on the DEM."""
    root = tmp_path_factory.mktemp("faults")
    proc = run_cli("run", str(_config(root)), "--workdir", str(root / "w"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return root / "w"


@pytest.fixture
def disk(tmp_path):
    """A 24 MB tmpfs: a disk that can be filled and remounted read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _workers_of(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)
                if "spawn_main" in " ".join(p.cmdline())]
    except psutil.NoSuchProcess:
        return []


def _start(config: Path, workdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(config), "--workdir", str(workdir),
                             "--quiet", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for_workers(proc: subprocess.Popen, timeout: float = 120) -> list[psutil.Process]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        workers = _workers_of(proc.pid)
        if workers:
            return workers
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its workers started: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail("no worker started")


def test_a_second_run_on_the_same_workdir_is_refused(good, tmp_path):
    workdir = tmp_path / "w"
    _copy(good, workdir)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(workdir / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.pwrite(fd, b'4242', 0)\n"
                               "print('held', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = _one_line(run_cli("run", str(_config(tmp_path)), "--workdir", str(workdir), "--force"))
        assert "another dmctwin run (pid 4242)" in line and str(workdir) in line
    finally:
        holder.kill()
        holder.wait()
    # the lock goes with the process that held it, however it ended
    assert run_cli("run", str(_config(tmp_path)), "--workdir", str(workdir), "--quiet").returncode == 0


def test_a_full_disk_is_one_line_and_keeps_the_bundle(good, disk, tmp_path):
    workdir = disk / "w"
    _copy(good, workdir)
    before = _sums(workdir)
    filler = disk / "filler"
    # unbuffered: a buffered file keeps the part of a write that did not fit and raises again
    # when it is closed, depending on how much space the copy left
    with open(filler, "wb", buffering=0) as f:  # then leave about half a megabyte free
        try:
            while True:
                f.write(b"\0" * (1 << 20))
        except OSError:
            pass
    os.truncate(filler, filler.stat().st_size - (1 << 19))
    line = _one_line(run_cli("run", str(_config(tmp_path, "")), "--workdir", str(workdir), "--force"))
    assert "No space left on device" in line
    assert _sums(workdir) == before
    assert not list(workdir.rglob(".tmp-*")) and not list(workdir.rglob(f".*{ATTEMPT}"))
    filler.unlink()
    assert run_cli("run", str(_config(tmp_path)), "--workdir", str(workdir), "--quiet").returncode == 0


def test_a_read_only_workdir_reruns_unchanged_and_refuses_changes_in_one_line(good, disk, tmp_path):
    workdir = disk / "w"
    _copy(good, workdir)
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*")}
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    unchanged = run_cli("run", str(_config(tmp_path)), "--workdir", str(workdir), "--quiet")
    assert unchanged.returncode == 0, unchanged.stderr
    line = _one_line(run_cli("run", str(_config(tmp_path)), "--workdir", str(workdir), "--force"))
    assert "Read-only file system" in line
    assert {p: p.stat().st_mtime_ns for p in workdir.rglob("*")} == before


def test_a_worker_killed_by_the_system_is_one_line(good, tmp_path):
    workdir = tmp_path / "w"
    _copy(good, workdir)
    proc = _start(_config(tmp_path), workdir, "--force")
    victim = _wait_for_workers(proc)[0]
    victim.kill()  # as the OOM killer does
    proc.wait(timeout=300)
    proc.stderr_text = proc.stderr.read()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.stderr_text)
    line = _one_line(done)
    assert "a worker process died" in line
    assert _sums(workdir) == _sums(good)
    assert psutil.wait_procs(_workers_of(proc.pid), timeout=5)[1] == []


def test_a_stop_request_ends_the_run_and_its_workers(good, tmp_path):
    workdir = tmp_path / "w"
    _copy(good, workdir)
    proc = _start(_config(tmp_path), workdir, "--force")
    workers = _wait_for_workers(proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 130 and "interrupted" in proc.stderr.read()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    assert _sums(workdir) == _sums(good)


def test_a_killed_runner_takes_its_workers_with_it(good, tmp_path):
    workdir = tmp_path / "w"
    _copy(good, workdir)
    proc = _start(_config(tmp_path), workdir, "--force")
    workers = _wait_for_workers(proc)
    os.kill(proc.pid, signal.SIGKILL)  # the runner only, as the OOM killer would
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.pid for p in alive]


def test_a_tampered_upstream_artifact_is_refused(good, tmp_path):
    workdir = tmp_path / "w"
    _copy(good, workdir)
    target = workdir / "artifacts" / "mesh" / "buildings.jsonl"
    lines = target.read_text().splitlines()
    first = json.loads(lines[1])
    first["height"] = 999.0
    target.write_text("\n".join([lines[0], json.dumps(first), *lines[2:]]) + "\n")
    line = _one_line(run_cli("run", str(_config(tmp_path)), "--workdir", str(workdir), "--stages", "tile..publish",
                             "--force"))
    assert "the outputs of mesh changed since it ran" in line and "--stages mesh..tile" in line
    assert _sums(workdir) == _sums(good)


def test_a_corrupted_intermediate_artifact_is_recomputed(good, tmp_path):
    workdir = tmp_path / "w"
    _copy(good, workdir)
    target = next((workdir / "artifacts" / "mesh" / "terrain").glob("level_*.npz"))
    target.write_bytes(target.read_bytes()[:-100])
    proc = run_cli("run", str(_config(tmp_path)), "--workdir", str(workdir), "--quiet")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((workdir / "manifest.json").read_text())["stages"]
    assert not manifest["mesh"]["skipped"] and manifest["georef"]["skipped"]
    assert _sums(workdir) == _sums(good)


def test_validate_finds_a_changed_byte_in_a_published_file(good, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(good / "bundle", bundle)
    assert run_cli("validate", str(bundle), "--no-gltf").returncode == 0
    glb = next((bundle / "buildings").rglob("*.glb"))
    data = bytearray(glb.read_bytes())
    data[-1] ^= 0x01
    glb.write_bytes(bytes(data))
    proc = run_cli("validate", str(bundle), "--no-gltf")
    assert proc.returncode == 1 and f"{glb.relative_to(bundle)}: checksum differs from SHA256SUMS" in proc.stdout


def test_names_from_inputs_are_literal_text_in_the_bundle_readme(tmp_path):
    name = "<script>alert(1)</script> [hub](javascript:alert(1))"
    cfg = tmp_path / "twin.yaml"
    cfg.write_text(CONFIG.replace("name: faults", f"name: {json.dumps(name)}"))
    assert run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--quiet").returncode == 0
    readme = (tmp_path / "w" / "bundle" / "README.md").read_text(encoding="utf-8")
    assert "<script>" not in readme and "](javascript" not in readme.replace("\\]", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\[hub\\](javascript:alert(1))" in readme
