"""A read-only static HTTP server for one bundle folder (``dmctwin serve``).

Python's ``http.server`` lists directories, follows symlinks out of its root and ignores Range
headers; a twin hub's files need none of the first two and the third for large tiles, so the
request handling here is our own, on the standard library's HTTP server. Only GET and HEAD, only
regular files whose real path lies inside the bundle, no listings.
"""

from __future__ import annotations

import email.utils
import errno
import io
import re
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from pipeline.errors import InputError, TwinError

MIME_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".geojson": "application/geo+json", ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json", ".b3dm": "application/octet-stream", ".pnts": "application/octet-stream",
    ".subtree": "application/octet-stream", ".bin": "application/octet-stream", ".wasm": "application/wasm",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
    ".ktx2": "image/ktx2", ".md": "text/markdown; charset=utf-8", ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8", ".tif": "image/tiff", ".tiff": "image/tiff",
}
#: Tile content and CesiumJS's files may be kept for an hour; the page, its settings and the
#: tilesets are revalidated (ETag) so a republished bundle shows at once.
CACHED_SUFFIXES = (".glb", ".b3dm", ".pnts", ".subtree", ".bin", ".wasm", ".png", ".jpg", ".jpeg", ".ktx2")
CACHE_LONG = "public, max-age=3600"
CACHE_REVALIDATE = "no-cache"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def content_type(path: Path) -> str:
    return MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")


def resolve_request(root: Path, target: str) -> Path | None:
    """The file a request target names inside ``root`` (a resolved folder), or None when it
    names nothing servable: a ``..`` or ``.`` segment (after percent-decoding, once), a NUL or
    backslash, a path whose real location (symlinks followed) is outside ``root``. A folder
    stands for its ``index.html``."""
    path = unquote(urlsplit(target).path)
    if "\x00" in path or "\\" in path:
        return None
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return None
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if real != root and root not in real.parents:
        return None
    if real.is_dir():
        real = real / "index.html"
        if not real.is_file():
            return None
    return real if real.is_file() else None


class BundleHandler(BaseHTTPRequestHandler):
    """GET and HEAD of files in ``server.root``, with Range, ETag and Cache-Control."""

    server: BundleServer
    server_version = "dmctwin"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)

    def _refuse(self, status: HTTPStatus) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_allowed(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        raw = urlsplit(self.path).path
        if not raw.startswith("/"):
            return self._refuse(HTTPStatus.BAD_REQUEST)
        if any(seg in (".", "..") for seg in unquote(raw).split("/")):
            return self._refuse(HTTPStatus.FORBIDDEN)
        path = resolve_request(self.server.root, raw)
        if path is None:
            return self._refuse(HTTPStatus.NOT_FOUND)
        if path.name == "index.html" and not raw.endswith("/") and not raw.endswith(".html"):
            # a folder without its slash: relative links in its page must resolve inside it
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", raw + "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        st = path.stat()
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        common = {"Content-Type": content_type(path), "ETag": etag, "Accept-Ranges": "bytes",
                  "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
                  "Cache-Control": CACHE_LONG if path.suffix.lower() in CACHED_SUFFIXES
                  or "/cesium/" in raw else CACHE_REVALIDATE,
                  "X-Content-Type-Options": "nosniff"}
        if self.headers.get("If-None-Match") == etag:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            for k, v in common.items():
                if k != "Content-Type":
                    self.send_header(k, v)
            self.end_headers()
            return None
        start, end = 0, st.st_size - 1
        status = HTTPStatus.OK
        wanted = self.headers.get("Range")
        if wanted and self.headers.get("If-Range", etag) == etag:
            m = _RANGE.match(wanted.strip())
            if m and (m.group(1) or m.group(2)):  # one range; several are answered whole (RFC 9110)
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), st.st_size - 1) if m.group(2) else st.st_size - 1
                else:
                    start = max(0, st.st_size - int(m.group(2)))
                if start >= st.st_size or start > end:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{st.st_size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                status = HTTPStatus.PARTIAL_CONTENT
        length = end - start + 1 if st.st_size else 0
        self.send_response(status)
        for k, v in common.items():
            self.send_header(k, v)
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{st.st_size}")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if not body or not length:
            return None
        with path.open("rb") as f:
            f.seek(start)
            try:
                _copy(f, self.wfile, length)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser cancelled a tile it no longer needs
        return None


def _copy(src: BinaryIO, dst: io.BufferedIOBase, length: int) -> None:
    remaining = length
    while remaining:
        chunk = src.read(min(1 << 20, remaining))
        if not chunk:
            break
        dst.write(chunk)
        remaining -= len(chunk)


class BundleServer(ThreadingHTTPServer):
    """Serves ``root`` (a bundle folder) at ``host:port``; port 0 picks a free one."""

    daemon_threads = True

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 8000, log_requests: bool = False):
        root = Path(root)
        if not root.is_dir():
            raise InputError("not a folder: give the bundle folder (a run's <workdir>/bundle)", path=root)
        if not (root / "tileset.json").is_file():
            raise InputError("not a twin bundle: no tileset.json in it (a run's <workdir>/bundle)", path=root)
        self.root = root.resolve()
        self.log_requests = log_requests
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), BundleHandler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise TwinError(f"port {port} on {host} is already in use (another server?): choose another "
                                "with --port") from None
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES) or isinstance(exc, socket.gaierror):
                raise TwinError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            raise

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (for tests and notebooks); ``shutdown()`` stops it."""
        # shutdown() waits for the loop to look at its flag: every 50 ms rather than the default
        # 0.5 s, which every notebook cell and test that stops a server sat through
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        return thread

