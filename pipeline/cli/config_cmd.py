"""``dmctwin config validate|show FILE``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.config import config_to_yaml, load_config
from pipeline.preflight import check_runnable


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="validate or show a config")
    csub = p.add_subparsers(dest="config_command", required=True)
    v = csub.add_parser("validate", help="check a config; exit 2 naming the first problem")
    v.add_argument("file", type=Path)
    v.set_defaults(func=validate)
    s = csub.add_parser("show", help="print the config with every default filled in")
    s.add_argument("file", type=Path)
    s.set_defaults(func=show)


def validate(args: argparse.Namespace) -> int:
    check_runnable(load_config(args.file), args.file)
    print(f"{args.file}: valid (inputs found and recognised, CRSs resolved)")
    return 0


def show(args: argparse.Namespace) -> int:
    print(config_to_yaml(load_config(args.file)), end="")
    return 0
