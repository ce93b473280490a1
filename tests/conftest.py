"""Shared fixtures: the repository paths, a full run of the sample, the glTF validator."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.core import gltf_validator, official_validator

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "assets" / "sample"
SAMPLE_CONFIG = REPO / "configs" / "sample.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests first, then by their number of tests; each file's tests stay
    together and in order. make test hands xdist's workers whole files in this order
    (``--dist loadfile --no-loadscope-reorder``): by test count alone, the files of one or two
    slow tests (the Dask cluster, the edited bundle: half a minute each) came last, and one
    worker ran them alone for 20-30 s after the other had finished."""
    def file(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    tests, slow = Counter(map(file, items)), Counter(file(i) for i in items if i.get_closest_marker("slow"))
    order = {f: k for k, f in enumerate(dict.fromkeys(map(file, items)))}
    items.sort(key=lambda i: (slow[file(i)] == 0, -tests[file(i)], order[file(i)]))


def run_cli(*args: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    """``python -m pipeline ARGS`` in a subprocess, text output captured."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=kw.pop("cwd", REPO), **kw)


def _shared(root: Path, name: str, make: Callable[[Path], object]) -> Path:
    """``root / name``, made by ``make`` once for all pytest-xdist workers: the first to need it
    makes it while the others wait on a file lock; a done-marker, written only after ``make``
    returns, keeps a failed attempt from being reused."""
    import shutil

    from filelock import FileLock

    workdir, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            make(workdir)
            done.touch()
    return workdir


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory, worker_id: str) -> Path:
    """The base folder common to every pytest-xdist worker (this session's own without xdist)."""
    root = tmp_path_factory.getbasetemp()
    return root if worker_id == "master" else root.parent


@pytest.fixture(scope="session")
def sample_run(shared_root: Path) -> Path:
    """Work directory of one complete, uninterrupted run of configs/sample.yaml, read-only: a test
    that reruns stages works on a hard-linked copy (see :func:`variant_run`). Under pytest-xdist
    the workers share one run."""
    def make(workdir: Path) -> None:
        proc = run_cli("run", str(SAMPLE_CONFIG), "--workdir", str(workdir), "--quiet")
        assert proc.returncode == 0, proc.stderr

    return _shared(shared_root, "sample_run", make)


@pytest.fixture(scope="session")
def shared_variant(sample_run: Path, shared_root: Path) -> Callable[[str, str], Path]:
    """``make(stage_settings, stages)``: :func:`variant_run` of the sample made once a session for
    every test file and xdist worker that asks for the same settings, read-only like the sample
    run (the client profiles' bundles are both checked file by file and loaded in CesiumJS)."""
    import hashlib

    def make(stage_settings: str, stages: str) -> Path:
        key = hashlib.sha256(f"{stage_settings}\0{stages}".encode()).hexdigest()[:16]
        return _shared(shared_root, f"variant-{key}",
                       lambda workdir: variant_run(sample_run, workdir, stage_settings, stages))

    return make


@pytest.fixture(scope="session")
def truth() -> dict:
    """The sample generator's truth (truth/truth.json)."""
    import json

    return json.loads((SAMPLE / "truth" / "truth.json").read_text())


def validate_gltf(paths: list[Path]) -> list[dict]:
    """Khronos glTF validator reports (npm gltf-validator, installed by make setup)."""
    if not gltf_validator.available():
        pytest.fail("the glTF validator is not installed: run make setup")
    return gltf_validator.validate(list(paths))


def official_agrees(tileset: Path) -> None:
    """CesiumGS's 3d-tiles-validator finds no error in ``tileset`` when it is installed (it cannot
    be on every machine; see pipeline/core/official_validator.py); nothing when it is not."""
    if official_validator.available():
        report = official_validator.validate_official(tileset / "tileset.json" if tileset.is_dir() else tileset)
        assert report.valid, report.issues[:5]


def variant_run(sample_run: Path, workdir: Path, stage_settings: str, stages: str) -> Path:
    """Rerun ``stages`` (e.g. ``mesh..publish``) of a copy of the sample run with extra stage
    settings (a YAML line such as ``tile: {compression: none}``). The copy hard-links the
    finished artifacts; earlier stages are skipped because their config is unchanged."""
    import os
    import shutil

    shutil.copytree(sample_run / "artifacts", workdir / "artifacts", copy_function=os.link)
    shutil.copy(sample_run / "manifest.json", workdir / "manifest.json")
    text = SAMPLE_CONFIG.read_text().replace("../assets/sample/", str(SAMPLE) + "/")
    text = text.replace("stages:\n", f"stages:\n  {stage_settings}\n", 1)
    cfg = workdir / "variant.yaml"
    cfg.write_text(text)
    proc = run_cli("run", str(cfg), "--workdir", str(workdir), "--stages", stages, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return workdir


def raycast_u(vertices, faces, e, n):
    """ENU U of a triangle surface below E, N by open3d ray casting: an implementation
    independent of the pipeline's own rasteriser (float32 rays: good to about a millimetre)."""
    import numpy as np
    import open3d as o3d

    c = vertices.mean(axis=0)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor((vertices - c).astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    top = float(vertices[:, 2].max() - c[2]) + 10.0
    rays = np.zeros((len(e), 6), np.float32)
    rays[:, 0], rays[:, 1], rays[:, 2], rays[:, 5] = e - c[0], n - c[1], top, -1.0
    return top - scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().astype(np.float64) + c[2]


def cracks(posts, faces, valid):
    """Edges of a heightfield TIN (vertices at the (row, col) ``posts`` of a grid whose data posts
    are ``valid``) that a crack would show: used by three faces or more, or by one face away from
    the grid's edge and from its nodata (where the surface rightly ends)."""
    import numpy as np
    from scipy import ndimage

    f = np.asarray(faces, np.int64)
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    unique, count = np.unique(edges, axis=0, return_counts=True)
    rows, cols = valid.shape
    rim = np.zeros_like(valid)
    rim[[0, -1], :] = rim[:, [0, -1]] = True
    rim |= ndimage.binary_dilation(~valid, np.ones((3, 3), bool))
    open_ = unique[count == 1]
    at_rim = rim[posts[open_[:, 0], 0], posts[open_[:, 0], 1]] & rim[posts[open_[:, 1], 0], posts[open_[:, 1], 1]]
    return np.concatenate([unique[count > 2], open_[~at_rim]])


def building_docs(workdir: Path) -> list[dict]:
    """Every building's record of a run's mesh stage as written (``buildings.jsonl``, in
    feature-ID order), as JSON objects."""
    from pipeline.artifacts.base import iter_records
    return list(iter_records(workdir / "artifacts" / "mesh" / "buildings.jsonl"))
