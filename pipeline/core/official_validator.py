"""CesiumGS's 3d-tiles-validator (npm ``3d-tiles-validator``), run beside ours when it is installed.

Its verdict is the one users trust, but it cannot be installed everywhere: some npm registries do
not carry it, and its native add-ons download binaries at install time. So it is optional and
found as the command in ``DMCTWIN_3DTILES_VALIDATOR``, then ``node_modules/.bin/3d-tiles-validator``
(``npm install --ignore-scripts 3d-tiles-validator``), then ``3d-tiles-validator`` on the PATH.
Its report (``--reportFile``) is JSON: ``numErrors``, ``numWarnings``, ``numInfos`` and ``issues``
(``type``, ``path``, ``message``, ``severity``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.gltf_validator import ValidatorMissing
from pipeline.errors import TwinError

ENV = "DMCTWIN_3DTILES_VALIDATOR"


@dataclass(frozen=True)
class OfficialReport:
    """The official validator's counts and its issues (dicts as it writes them)."""

    errors: int
    warnings: int
    infos: int
    issues: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.errors == 0


def command() -> list[str] | None:
    """The validator's command line prefix, or None when it is not installed."""
    if os.environ.get(ENV):
        return shlex.split(os.environ[ENV])
    local = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "3d-tiles-validator"
    if local.is_file():
        return [str(local)]
    found = shutil.which("3d-tiles-validator")
    return [found] if found else None


def available() -> bool:
    return command() is not None


def validate_official(tileset: Path, timeout: float = 900) -> OfficialReport:
    """Run the official validator on ``tileset`` (a tileset JSON); ValidatorMissing when it is not
    installed, TwinError when it fails to report."""
    cmd = command()
    if cmd is None:
        raise ValidatorMissing("the official 3d-tiles-validator is not installed (npm install --ignore-scripts "
                               f"3d-tiles-validator, or set {ENV} to its command)")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        proc = subprocess.run([*cmd, "--tilesetFile", str(tileset), "--reportFile", str(report)],
                              capture_output=True, text=True, timeout=timeout)
        if not report.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
            raise TwinError(f"the official 3d-tiles-validator wrote no report (exit {proc.returncode}: {tail})")
        doc = json.loads(report.read_text(encoding="utf-8"))
    return OfficialReport(int(doc.get("numErrors", 0)), int(doc.get("numWarnings", 0)), int(doc.get("numInfos", 0)),
                          list(doc.get("issues", [])))
