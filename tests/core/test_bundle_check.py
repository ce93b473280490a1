"""``dmctwin verify`` on the sample's bundle: it verifies, and each kind of damage is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.core.atomic import sha256_file
from pipeline.core.bundle_check import verify_bundle
from pipeline.core.stac import file_fields
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture()
def bundle(sample_run, tmp_path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(sample_run / "bundle", out)
    return out


def _resum(bundle: Path) -> None:
    """Rewrite the STAC assets' checksums and SHA256SUMS as a publisher would after the edit: only
    the edit's own problem stays."""
    for doc_path in [bundle / "catalog.json", *sorted((bundle / "stac").glob("*.json"))]:
        doc = json.loads(doc_path.read_text())
        for asset in doc["assets"].values():
            href = (doc_path.parent / asset["href"]).resolve().relative_to(bundle.resolve()).as_posix()
            asset.update(file_fields(bundle, href))
        doc_path.write_text(json.dumps(doc))
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    (bundle / "SHA256SUMS").write_text("".join(f"{sha256_file(p)}  {p.relative_to(bundle).as_posix()}\n"
                                               for p in files))


def test_the_sample_bundle_verifies(sample_run):
    proc = run_cli("verify", str(sample_run / "bundle"))
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert proc.stdout.strip().endswith("verified")


def test_a_changed_byte_is_found(bundle):
    glb = sorted((bundle / "buildings").rglob("*.glb"))[0]
    data = bytearray(glb.read_bytes())
    data[len(data) // 2] ^= 0x01
    glb.write_bytes(bytes(data))
    problems = verify_bundle(bundle, gltf=False)
    name = glb.relative_to(bundle).as_posix()
    assert [str(p) for p in problems if p.file == name] == [
        f"{name}: checksum differs from SHA256SUMS: changed since it was published"]
    proc = run_cli("verify", str(bundle), "--no-gltf")
    assert proc.returncode == 1 and f"{name}: checksum differs" in proc.stdout


def test_a_missing_file_is_found(bundle):
    (bundle / "anchors" / "anchors.csv").unlink()
    problems = [str(p) for p in verify_bundle(bundle, gltf=False)]
    assert "anchors/anchors.csv: listed in SHA256SUMS but missing" in problems
    assert "catalog.json: asset 'anchors_csv': anchors/anchors.csv does not exist" in problems


def test_a_broken_reference_is_found(bundle):
    anchors = json.loads((bundle / "anchors" / "anchors.json").read_text())
    a = next(x for x in anchors["anchors"] if x["kind"] == "rooftop")
    a["feature"]["content"] = "buildings/tiles/nowhere.glb"
    (bundle / "anchors" / "anchors.json").write_text(json.dumps(anchors))
    ts = json.loads((bundle / "terrain" / "tileset.json").read_text())
    ts["root"]["content"] = {"uri": "tiles/gone.glb"}
    (bundle / "terrain" / "tileset.json").write_text(json.dumps(ts))
    _resum(bundle)
    problems = [str(p) for p in verify_bundle(bundle, gltf=False)]
    assert f"anchors/anchors.json: anchor {a['id']!r}: content buildings/tiles/nowhere.glb does not exist" in problems
    assert any(p.startswith("tileset.json: ") and "gone.glb" in p for p in problems), problems
    assert len(problems) == 2, problems


def test_a_schema_violation_is_found(bundle):
    anchors = json.loads((bundle / "anchors" / "anchors.json").read_text())
    anchors["anchors"][3]["latitude"] = 123.0
    del anchors["anchors"][5]["arcore"]
    (bundle / "anchors" / "anchors.json").write_text(json.dumps(anchors))
    _resum(bundle)
    problems = [str(p) for p in verify_bundle(bundle, gltf=False)]
    assert problems == ["anchors/anchors.json: schema: anchors/3/latitude: 123.0 is greater than the maximum of 90",
                        "anchors/anchors.json: schema: anchors/5: 'arcore' is a required property"]


def test_a_stac_violation_is_found(bundle):
    item = json.loads((bundle / "stac" / "dsm.json").read_text())
    del item["properties"]["datetime"]
    (bundle / "stac" / "dsm.json").write_text(json.dumps(item))
    _resum(bundle)
    problems = [str(p) for p in verify_bundle(bundle, gltf=False)]
    assert len(problems) == 1 and problems[0].startswith("stac/dsm.json: STAC: ") and "datetime" in problems[0], \
        problems
    proc = run_cli("verify", str(bundle), "--no-gltf")
    assert proc.returncode == 1 and "stac/dsm.json: STAC: " in proc.stdout
