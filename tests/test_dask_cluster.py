"""The sample on a Dask cluster of separate processes (a ``dask scheduler`` and two ``dask worker``
processes on localhost, each worker in a folder of its own, the work directory shared), with one
worker killed in the middle of the mesh stage: every output, the bundle included, is
byte-identical to the local executor's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE_CONFIG

pytestmark = pytest.mark.slow
# the workers' numpy/BLAS run one thread each, as the local pool's do (a nanny would set this)
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _outputs(workdir: Path) -> dict:
    stages = json.loads((workdir / "manifest.json").read_text())["stages"]
    return {name: e["outputs"] for name, e in stages.items()}


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, env=os.environ | ONE_THREAD,
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"), start_new_session=True)


@pytest.fixture
def cluster(tmp_path):
    """(scheduler address, {worker name: process}) of a scheduler and two nanny-less workers."""
    from dask.distributed import Client

    info = tmp_path / "scheduler.json"
    procs = [_start(["distributed.cli.dask_scheduler", "--scheduler-file", str(info), "--port", "0",
                     "--no-dashboard"], tmp_path / "scheduler", tmp_path / "scheduler.log")]
    deadline = time.time() + 60
    while not info.is_file() and time.time() < deadline:
        time.sleep(0.2)
    assert info.is_file(), (tmp_path / "scheduler.log").read_text()
    workers = {}
    for name in ("w1", "w2"):
        home = tmp_path / name
        workers[name] = _start(["distributed.cli.dask_worker", "--scheduler-file", str(info), "--name", name,
                                "--nthreads", "1", "--no-nanny", "--no-dashboard", "--local-directory", str(home)],
                               home, tmp_path / f"{name}.log")
        procs.append(workers[name])
    with Client(scheduler_file=str(info), timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
        address = client.scheduler.address
    yield address, workers
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_a_cluster_that_loses_a_worker_mid_stage_makes_the_same_bundle(sample_run, tmp_path, cluster):
    from dask.distributed import Client

    address, workers = cluster
    workdir = tmp_path / "work"
    man = workdir / "manifest.json"
    run = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(SAMPLE_CONFIG), "--workdir", str(workdir),
                            "--scheduler", address, "--quiet"], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)

    def done() -> set[str]:
        return set(json.loads(man.read_text())["stages"]) if man.is_file() else set()

    deadline = time.time() + 600
    while "clean" not in done() and run.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # into the mesh stage (15 s on the sample), its blocks spread over both workers
    with Client(address, timeout=60) as client:
        w1 = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "w1")
        busy: list = []
        while not busy and time.time() < deadline:
            busy = client.processing(workers=[w1])[w1]
            time.sleep(0.05)
        assert busy and run.poll() is None and "mesh" not in done(), "w1 held no mesh task"
        workers["w1"].send_signal(signal.SIGKILL)  # with its task: the scheduler must run it again
        workers["w1"].wait()
    out, err = run.communicate(timeout=900)
    assert run.returncode == 0, err
    assert _outputs(workdir) == _outputs(sample_run)
    assert (workdir / "bundle" / "SHA256SUMS").read_bytes() == (sample_run / "bundle" / "SHA256SUMS").read_bytes()
    assert workers["w2"].poll() is None  # the other worker carried the rest
    assert not list(workdir.rglob("*.attempt"))
