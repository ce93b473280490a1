"""``dmctwin verify BUNDLE``: checksums, schemas, references and tilesets of a published bundle;
one line per problem, exit 0 when it verifies and 1 when it does not."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.core.bundle_check import verify_bundle
from pipeline.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="verify a published bundle (checksums, schemas, references, tilesets); "
                                      "exit 1 on problems")
    p.add_argument("bundle", type=Path, help="the bundle folder (holding SHA256SUMS, catalog.json, tileset.json)")
    p.add_argument("--no-gltf", action="store_true", help="skip the Khronos glTF validator")
    p.add_argument("--json", action="store_true", help="print the problems as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.bundle.is_dir():
        raise InputError("not a bundle folder", path=args.bundle)
    problems = verify_bundle(args.bundle, gltf=not args.no_gltf)
    if args.json:
        print(json.dumps({"valid": not problems, "problems": [p.__dict__ for p in problems]}, indent=1))
    else:
        for p in problems:
            print(p)
        print(f"{args.bundle}: {'verified' if not problems else f'NOT VERIFIED: {len(problems)} problems'}")
    return 0 if not problems else 1
