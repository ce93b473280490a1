"""The ``dmctwin`` command: parses arguments, calls the library, prints.

Errors of the :class:`~pipeline.errors.TwinError` family become one line on stderr and exit
code 2; anything else is a bug and keeps its traceback. Warnings are one line each on stderr,
without the source line Python would print under them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from typing import TextIO

from pipeline import __version__
from pipeline.cli import (archive_cmd, config_cmd, diff_cmd, run_cmd, sample_cmd, serve_cmd, validate_cmd,
                          verify_cmd)
from pipeline.errors import TwinError, TwinWarning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmctwin", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dmc-twin {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (run_cmd, config_cmd, sample_cmd, validate_cmd, verify_cmd, diff_cmd, archive_cmd, serve_cmd):
        module.register(sub)
    return parser


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the command line: ``dmctwin: warning: ...`` on one line; a
    library's own warning names the library."""
    text = " ".join(str(message).split())
    if not issubclass(category, TwinWarning):
        module = filename.replace("\\", "/").split("site-packages/")[-1].split("/")[0].removesuffix(".py")
        text = f"{category.__name__} from {module}: {text}"
    print(f"dmctwin: warning: {text}", file=file or sys.stderr)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    warnings.showwarning = show_warning
    # a service manager's stop (SIGTERM) ends the run as Ctrl-C does: workers stopped, finished
    # stages kept
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args) or 0)
    except TwinError as exc:
        print(f"dmctwin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dmctwin: interrupted; finished stages are kept, rerun to resume", file=sys.stderr)
        return 130
