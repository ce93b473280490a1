"""The Khronos glTF validator (npm ``gltf-validator``), run through Node.js.

No Python port of the reference validator exists, so the package ships a small Node script
(``pipeline/tools/validate_gltf.cjs``) and runs it over batches of files. Node and the npm module
are found on the machine: ``make setup`` installs the module into the repository's
``node_modules``; elsewhere point ``DMCTWIN_NODE_MODULES`` at a ``node_modules`` folder holding it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from pipeline.errors import TwinError

#: files per Node process: one start-up amortised, command lines kept short
BATCH = 40


class ValidatorMissing(TwinError):
    """Raised when Node.js or the gltf-validator npm module cannot be found."""


def node_modules() -> Path | None:
    """A ``node_modules`` folder that holds ``gltf-validator``, or None."""
    candidates = [os.environ.get("DMCTWIN_NODE_MODULES"), Path.cwd() / "node_modules",
                  Path(__file__).resolve().parents[2] / "node_modules"]
    for c in candidates:
        if c and (Path(c) / "gltf-validator").is_dir():
            return Path(c)
    return None


def available() -> bool:
    """Whether :func:`validate` can run here."""
    return shutil.which("node") is not None and node_modules() is not None


def validate(paths: list[Path], timeout: float = 600) -> list[dict]:
    """One report per file: ``file``, ``errors``, ``warnings``, ``infos`` (counts) and
    ``messages`` (``severity:code:pointer:message``; severity 0 error ... 3 hint)."""
    node = shutil.which("node")
    modules = node_modules()
    if node is None or modules is None:
        raise ValidatorMissing("the Khronos glTF validator needs Node.js and the npm module gltf-validator "
                               "(make setup installs both; or set DMCTWIN_NODE_MODULES)")
    env = dict(os.environ, NODE_PATH=str(modules))
    reports: list[dict] = []
    with resources.as_file(resources.files("pipeline") / "tools" / "validate_gltf.cjs") as script:
        for i in range(0, len(paths), BATCH):
            proc = subprocess.run([node, str(script), *map(str, paths[i:i + BATCH])], capture_output=True,
                                  text=True, timeout=timeout, env=env)
            if proc.returncode != 0:
                raise TwinError(f"the glTF validator failed: {proc.stderr.strip().splitlines()[-1:]}")
            reports.extend(json.loads(proc.stdout))
    return reports
