"""``dmctwin diff OLD NEW``: the buildings and anchors that were added, removed or changed between
two bundles, as text (one line each) or JSON, for a hub that applies updates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.core.bundle_diff import diff_bundles
from pipeline.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser("diff", help="buildings and anchors added, removed or changed between two bundles")
    p.add_argument("old", type=Path, help="the bundle the hub has")
    p.add_argument("new", type=Path, help="the bundle to apply")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for path in (args.old, args.new):
        if not (path / "buildings").is_dir() and not (path / "anchors").is_dir():
            raise InputError("not a bundle folder (no buildings/ or anchors/)", path=path)
    d = diff_bundles(args.old, args.new)
    if args.json:
        print(json.dumps(d.to_json(), indent=1, ensure_ascii=False))
        return 0
    for line in d.lines():
        print(line)
    b, a = d.buildings, d.anchors
    print(f"buildings: {len(b.added)} added, {len(b.removed)} removed, {len(b.changed)} changed; "
          f"anchors: {len(a.added)} added, {len(a.removed)} removed, {len(a.changed)} changed; "
          f"analysis values changed for {len(d.analysis.changed)} buildings")
    return 0
