"""``dmctwin validate PATH``: check a 3D Tiles tileset (ours or anyone's) against the specification,
and with ``--official`` by CesiumGS's 3d-tiles-validator as well (when it is installed)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.core.official_validator import validate_official
from pipeline.core.tileset_check import validate_tileset
from pipeline.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a 3D Tiles tileset and its glTF content; exit 1 on errors")
    p.add_argument("path", type=Path, help="a tileset JSON, or a folder holding tileset.json")
    p.add_argument("--no-gltf", action="store_true", help="skip the Khronos glTF validator")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="slack (m) for bounding-volume containment (default 0.001)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--max", type=int, default=50, help="findings printed per severity (default 50)")
    p.add_argument("--official", action="store_true",
                   help="also run CesiumGS's 3d-tiles-validator (npm 3d-tiles-validator) and fail on its errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = args.path / "tileset.json" if args.path.is_dir() else args.path
    if not path.is_file():
        raise InputError("no tileset here", path=path)
    report = validate_tileset(path, tol=args.tolerance, gltf=not args.no_gltf)
    official = validate_official(path) if args.official else None
    valid = report.valid and (official is None or official.valid)
    if args.json:
        print(json.dumps({"valid": valid, "tilesets": report.tilesets, "tiles": report.tiles,
                          "contents": report.contents, "gltf_validated": report.gltf_validated,
                          "findings": [f.__dict__ for f in report.findings],
                          "official": official.__dict__ if official is not None else None}, indent=1))
        return 0 if valid else 1
    for severity in ("error", "warning", "info"):
        found = [f for f in report.findings if f.severity == severity]
        for f in found[:args.max]:
            print(f)
        if len(found) > args.max:
            print(f"... and {len(found) - args.max} more {severity}s")
    gltf = f", {report.gltf_validated} GLBs through the glTF validator" if report.gltf_validated else ""
    verdict = "valid" if report.valid else "INVALID"
    print(f"{path}: {verdict}: {len(report.errors)} errors, {len(report.warnings)} warnings in "
          f"{report.tilesets} tilesets, {report.tiles} tiles, {report.contents} contents{gltf}")
    if official is not None:
        for issue in [i for i in official.issues if i.get("severity") == "ERROR"][:args.max]:
            print(f"official: {issue.get('type')}: {issue.get('path')}: {issue.get('message')}")
        print(f"{path}: official 3d-tiles-validator: {'valid' if official.valid else 'INVALID'}: "
              f"{official.errors} errors, {official.warnings} warnings")
    return 0 if valid else 1
