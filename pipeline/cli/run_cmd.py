"""``dmctwin run CONFIG``: run the pipeline's stages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.cli.report import georef_tables
from pipeline.config import load_config
from pipeline.runner import Runner, select_stages


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the pipeline on a config")
    p.add_argument("config", type=Path, help="YAML config (see configs/)")
    p.add_argument("--stages", help="a..b, a,b or one stage name (default: all)")
    p.add_argument("--force", action="store_true", help="rerun stages even when unchanged")
    p.add_argument("--workdir", type=Path, help="work directory (default: config's workdir or out/<config name>)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or summary output")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the parallel work on the Dask cluster of this scheduler (tcp://host:8786; "
                        "executor.kind dask); the work directory must be on storage every worker sees")
    p.set_defaults(func=run)


def default_workdir(config_path: Path, configured: Path | None, base: Path) -> Path:
    if configured is not None:
        return configured if configured.is_absolute() else base / configured
    return Path("out") / config_path.stem


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.scheduler:
        cfg.executor = cfg.executor.model_copy(update={"kind": "dask", "scheduler": args.scheduler})
    stages = select_stages(args.stages)
    workdir = args.workdir or default_workdir(args.config, cfg.workdir, cfg.base_dir)
    console = Console(stderr=False, quiet=args.quiet)

    def on_stage(name: str, status: str, entry: dict) -> None:
        if status == "skipped":
            console.print(f"[dim]{name:8s} unchanged, skipped[/dim]")
        else:
            counts = ", ".join(f"{k} {v:,}" for k, v in entry["counts"].items())
            console.print(f"[green]{name:8s}[/green] done in {entry['seconds']:.1f} s  {counts}")

    manifest = Runner(cfg, workdir, quiet=args.quiet).run(stages, force=args.force, on_stage=on_stage)
    if not args.quiet:
        table = Table(title=f"dmc-twin run: {workdir}")
        for col in ("stage", "status", "seconds", "counts"):
            table.add_column(col)
        for name in stages:
            e = manifest["stages"][name]
            table.add_row(name, "skipped" if e.get("skipped") else "ran", f"{e['seconds']:.1f}",
                          ", ".join(f"{k}={v}" for k, v in e["counts"].items()))
        console.print(table)
        georef = manifest["stages"].get("georef")
        report_path = workdir / "reports" / "georef.json"
        if "georef" in stages and georef and not georef.get("skipped") and report_path.is_file():
            for t in georef_tables(json.loads(report_path.read_text())):
                console.print(t)
        console.print(f"manifest: {workdir / 'manifest.json'}   reports: {workdir / 'reports'}")
        if (workdir / "bundle" / "tileset.json").is_file():
            console.print(f"bundle:   {workdir / 'bundle'} (root 3D Tiles: tileset.json)")
    return 0
