"""``dmctwin sample generate DIR``: regenerate the embedded synthetic sample."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import pipeline


#: the embedded sample of a source checkout (absent when the package is installed from a wheel)
EMBEDDED = Path(pipeline.__file__).resolve().parents[1] / "assets" / "sample"


def register(sub: Any) -> None:
    p = sub.add_parser("sample", help="the synthetic Sangam DMC sample")
    ssub = p.add_subparsers(dest="sample_command", required=True)
    g = ssub.add_parser("generate", help="write the sample (deterministic for a seed)")
    g.add_argument("outdir", type=Path, nargs="?", default=None,
                   help="default: assets/sample, or out/sample_unreferenced for that variant")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--variant", choices=("aerial", "unreferenced"), default="aerial",
                   help="unreferenced: a crop of the aerial sample in a scanner frame with control "
                        "points, plus a mis-registered mobile strip, and a config.yaml to run it")
    g.add_argument("--from", dest="source", type=Path, default=None,
                   help="the aerial sample the unreferenced variant is cut from (default: the repository's "
                        "assets/sample, or a freshly generated one when the package runs without it)")
    g.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    # the generator (scipy, shapely, rasterio) is imported here: every dmctwin command builds
    # this parser, and a run should not pay for it
    from pipeline.samples.generator import SEED, generate
    from pipeline.samples.unreferenced import SEED as UNREF_SEED
    from pipeline.samples.unreferenced import generate_unreferenced

    if args.variant == "unreferenced":
        out = args.outdir or Path("out/sample_unreferenced")
        seed = UNREF_SEED if args.seed is None else args.seed
        source = args.source or (EMBEDDED if (EMBEDDED / "dmc_aerial.laz").is_file() else None)
        if source is None:
            with tempfile.TemporaryDirectory() as tmp:
                generate(Path(tmp), SEED)
                truth = generate_unreferenced(Path(tmp), out, seed)
        else:
            truth = generate_unreferenced(source, out, seed)
        print(f"{out}: scanner-frame scan of {truth['crop_points']:,} points, mobile strip of "
              f"{truth['strip_points']:,}; run: dmctwin run {out / 'config.yaml'}")
        return 0
    args.outdir = args.outdir or Path("assets/sample")
    args.seed = SEED if args.seed is None else args.seed
    summary = generate(args.outdir, args.seed)
    print(f"{args.outdir}: {summary['buildings']} buildings, {summary['points']:,} points, "
          f"{summary['trees']} trees (seed {args.seed})")
    return 0
