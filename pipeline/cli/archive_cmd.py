"""``dmctwin archive BUNDLE [OUT]``: the bundle as one 3D Tiles archive (``.3tz``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.core.archive3tz import write_3tz
from pipeline.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser("archive", help="pack a bundle into one .3tz file (3D Tiles archive) for hubs that take one")
    p.add_argument("bundle", type=Path, help="the bundle folder")
    p.add_argument("out", type=Path, nargs="?", help="the archive to write (default: BUNDLE.3tz beside it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (args.bundle / "tileset.json").is_file():
        raise InputError("not a bundle folder (no tileset.json)", path=args.bundle)
    out = args.out or args.bundle.with_name(args.bundle.name + ".3tz")
    try:
        n = write_3tz(args.bundle, out)
    except ValueError as exc:
        raise InputError(str(exc), path=args.bundle) from None
    print(f"{out}: {n} files, {out.stat().st_size / 1e6:.1f} MB")
    return 0
