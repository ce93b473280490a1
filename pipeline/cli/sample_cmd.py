"""``dmctwin sample generate DIR``: regenerate the embedded synthetic sample."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.samples.generator import SEED, generate


def register(sub: Any) -> None:
    p = sub.add_parser("sample", help="the synthetic Sangam DMC sample")
    ssub = p.add_subparsers(dest="sample_command", required=True)
    g = ssub.add_parser("generate", help="write the sample (deterministic for a seed)")
    g.add_argument("outdir", type=Path, nargs="?", default=Path("assets/sample"))
    g.add_argument("--seed", type=int, default=SEED)
    g.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    summary = generate(args.outdir, args.seed)
    print(f"{args.outdir}: {summary['buildings']} buildings, {summary['points']:,} points, "
          f"{summary['trees']} trees (seed {args.seed})")
    return 0
