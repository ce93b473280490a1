"""Shared fixtures: the repository paths, a full run of the sample, the glTF validator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "assets" / "sample"
SAMPLE_CONFIG = REPO / "configs" / "sample.yaml"


def run_cli(*args: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    """``python -m pipeline ARGS`` in a subprocess, text output captured."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=kw.pop("cwd", REPO), **kw)


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """Work directory of one complete, uninterrupted run of configs/sample.yaml."""
    workdir = tmp_path_factory.mktemp("sample_run")
    proc = run_cli("run", str(SAMPLE_CONFIG), "--workdir", str(workdir), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return workdir


def validate_gltf(paths: list[Path]) -> list[dict]:
    """Khronos glTF validator reports (npm gltf-validator, installed by make setup)."""
    node = shutil.which("node")
    script = REPO / "tools" / "validate_gltf.cjs"
    if node is None or not (REPO / "node_modules" / "gltf-validator").is_dir():
        pytest.fail("the glTF validator is not installed: run make setup")
    reports = []
    for i in range(0, len(paths), 40):
        proc = subprocess.run([node, str(script), *map(str, paths[i:i + 40])], capture_output=True,
                              text=True, timeout=600, cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        reports.extend(json.loads(proc.stdout))
    return reports
