"""CesiumGS's 3d-tiles-validator beside ours: how we run it and read its report (checked with a
stand-in that writes the official report format), ``dmctwin validate --official``, and the
real validator on our own implicit tileset when it is installed."""

from __future__ import annotations

import json
import sys

import pytest

from pipeline.core import official_validator
from pipeline.core.official_validator import ENV, validate_official
from tests.conftest import run_cli

#: writes what the official validator writes: a report of the tileset it was given
STAND_IN = """
import json, sys
args = sys.argv[1:]
tileset, report = args[args.index("--tilesetFile") + 1], args[args.index("--reportFile") + 1]
doc = json.load(open(tileset))
bad = "geometricError" not in doc
issues = [{"type": "PROPERTY_MISSING", "path": "/geometricError",
           "message": "The 'geometricError' property is required", "severity": "ERROR"}] if bad else []
json.dump({"date": "2026-11-26", "numErrors": len(issues), "numWarnings": 0, "numInfos": 0, "issues": issues},
          open(report, "w"))
"""


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    monkeypatch.setenv(ENV, f"{sys.executable} {script}")
    return script


def _tileset(path, **extra):
    doc = {"asset": {"version": "1.1"}, "root": {"boundingVolume": {"box": [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]},
                                                 "geometricError": 0}} | extra
    path.write_text(json.dumps(doc))
    return path


def test_its_report_is_read(tmp_path, stand_in):
    good = validate_official(_tileset(tmp_path / "good.json", geometricError=1))
    assert good.valid and good.errors == good.warnings == 0
    bad = validate_official(_tileset(tmp_path / "bad.json"))
    assert not bad.valid and bad.errors == 1 and bad.issues[0]["type"] == "PROPERTY_MISSING"


def test_validate_official_fails_on_its_errors(tmp_path, stand_in):
    # ours finds the missing geometricError too; the official verdict is printed beside it
    proc = run_cli("validate", str(_tileset(tmp_path / "bad.json")), "--official", "--no-gltf")
    assert proc.returncode == 1
    assert "official: PROPERTY_MISSING: /geometricError" in proc.stdout
    assert "official 3d-tiles-validator: INVALID: 1 errors" in proc.stdout


def test_validate_official_without_the_validator_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    if official_validator.available():
        pytest.skip("the official validator is installed here")
    proc = run_cli("validate", str(_tileset(tmp_path / "t.json", geometricError=1)), "--official")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "3d-tiles-validator is not installed" in proc.stderr
