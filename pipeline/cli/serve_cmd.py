"""``dmctwin serve BUNDLE``: serve a bundle read-only over HTTP so a browser can open its viewer."""

from __future__ import annotations

import argparse
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any

from pipeline.core.server import BundleServer


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve a bundle (its viewer and tiles) over HTTP, read-only")
    p.add_argument("bundle", type=Path, help="the bundle folder (a run's <workdir>/bundle)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for the network)")
    p.add_argument("--open", action="store_true", help="open the viewer in the default web browser")
    p.add_argument("--log", action="store_true", help="print one line per request")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print(f"dmctwin: error: --port {args.port}: not a TCP port (0-65535)", file=sys.stderr)
        return 2
    server = BundleServer(args.bundle, args.host, args.port, log_requests=args.log)
    url = server.url + ("viewer/" if (server.root / "viewer" / "index.html").is_file() else "tileset.json")
    try:
        print(f"Serving {server.root} at {url} (Ctrl-C to stop)", flush=True)
        if args.open:
            threading.Timer(0.5, webbrowser.open, (url,)).start()
        server.serve_forever()
    except KeyboardInterrupt:
        print("dmctwin: stopped serving", file=sys.stderr)
    finally:
        server.server_close()
    return 0
