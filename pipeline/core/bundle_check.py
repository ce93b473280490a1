"""Whether a published bundle is what it says it is: the hub's check before it takes one.

Checked: every file against ``SHA256SUMS`` (changed, missing, or present but not listed); the
anchors against the schema of their format shipped in this package (not the bundle's own copy,
which travels with the data it would vouch for); the STAC catalog and Items against the STAC
schemas (``core.stac``), with their assets' checksums; that every
reference resolves (catalog assets, anchors' tiles, and every tileset's external tilesets and
contents); and every tileset through ``tileset_check.validate_tileset``. Each problem is one
line naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.atomic import sha256_file

SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class Problem:
    """One finding: the file (relative to the bundle) and what is wrong with it."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


def _load(bundle: Path, name: str, problems: list[Problem]) -> Any:
    path = bundle / name
    if not path.is_file():
        problems.append(Problem(name, "missing"))
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(Problem(name, f"not JSON: {exc}"))
        return None


def check_sums(bundle: Path) -> list[Problem]:
    """Every listed file present with its checksum, and every file listed."""
    problems: list[Problem] = []
    if not (bundle / SUMS).is_file():
        return [Problem(SUMS, "missing: nothing to verify the files against")]
    listed = set()
    for n, line in enumerate((bundle / SUMS).read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        digest, _, name = line.partition("  ")
        if not name or len(digest) != 64:
            problems.append(Problem(f"{SUMS}:{n}", "not a 'sha256  path' line"))
            continue
        listed.add(name)
        target = bundle / name
        if not target.resolve().is_relative_to(bundle.resolve()):
            problems.append(Problem(f"{SUMS}:{n}", f"{name} lies outside the bundle"))
        elif not target.is_file():
            problems.append(Problem(name, f"listed in {SUMS} but missing"))
        elif sha256_file(target) != digest:
            problems.append(Problem(name, f"checksum differs from {SUMS}: changed since it was published"))
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        name = path.relative_to(bundle).as_posix()
        if name != SUMS and name not in listed:
            problems.append(Problem(name, f"not listed in {SUMS}"))
    return problems


def check_anchors(bundle: Path) -> list[Problem]:
    """anchors.json against the shipped schema of its format; its tiles exist."""
    import jsonschema

    from pipeline.artifacts.anchors import FORMAT_VERSION, schema_path

    name = "anchors/anchors.json"
    problems: list[Problem] = []
    doc = _load(bundle, name, problems)
    if doc is None:
        return problems
    if not isinstance(doc, dict) or doc.get("schema_version") != FORMAT_VERSION:
        version = doc.get("schema_version") if isinstance(doc, dict) else None
        return [Problem(name, f"anchors format {version!r}, this dmc-twin verifies {FORMAT_VERSION}")]
    schema = json.loads(schema_path().read_text())
    for err in sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in err.path) or "(root)"
        problems.append(Problem(name, f"schema: {where}: {err.message}"))
    for a in doc.get("anchors", []) if isinstance(doc.get("anchors"), list) else []:
        feature = a.get("feature") if isinstance(a, dict) else None
        if isinstance(feature, dict):
            for key in ("tileset", "content"):
                ref = feature.get(key)
                if isinstance(ref, str) and not (bundle / ref).is_file():
                    problems.append(Problem(name, f"anchor {a.get('id')!r}: {key} {ref} does not exist"))
    return problems


def check_catalog(bundle: Path) -> list[Problem]:
    """catalog.json and the Items it links: each against the STAC schemas (core and extensions,
    offline), every link and asset resolving, every asset's recorded checksum and size."""
    from pipeline.core.stac import check_catalog as check_stac

    return [Problem(name, message) for name, message in check_stac(bundle)]


def catalog_tilesets(bundle: Path) -> list[str]:
    """Tileset JSON files the catalog lists (the root one first)."""
    try:
        assets = json.loads((bundle / "catalog.json").read_text(encoding="utf-8")).get("assets") or {}
    except (OSError, ValueError):
        return ["tileset.json"]
    hrefs = [a.get("href") for a in assets.values() if isinstance(a, dict)]
    found = [h for h in hrefs if isinstance(h, str) and h.endswith("tileset.json") and (bundle / h).is_file()]
    return ["tileset.json"] + [h for h in found if h != "tileset.json"]


def check_tilesets(bundle: Path, *, gltf: bool = True) -> list[Problem]:
    """The root tileset (and through it every layer) and every other tileset the catalog lists,
    each by the specification's rules; errors only (warnings do not fail a bundle)."""
    from pipeline.core.tileset_check import validate_tileset

    problems: list[Problem] = []
    covered: set[str] = set()
    for href in catalog_tilesets(bundle):
        if href in covered:
            continue
        if not (bundle / href).is_file():
            problems.append(Problem(href, "missing"))
            continue
        report = validate_tileset(bundle / href, gltf=gltf)
        covered.update(p.relative_to(bundle).as_posix() for p in (bundle / href).parent.rglob("tileset.json"))
        for f in report.errors:
            if SUMS in f.where or SUMS in f.message:  # check_sums reports these, once
                continue
            problems.append(Problem(href, f"{f.where}: {f.message}"))
    return problems


def verify_bundle(bundle: str | Path, *, gltf: bool = True) -> list[Problem]:
    """Every problem of the bundle at ``bundle`` (a folder); empty when it verifies."""
    bundle = Path(bundle)
    if not bundle.is_dir():
        return [Problem(str(bundle), "not a folder")]
    return check_sums(bundle) + check_anchors(bundle) + check_catalog(bundle) + check_tilesets(bundle, gltf=gltf)
