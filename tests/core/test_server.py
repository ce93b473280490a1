"""``dmctwin serve``'s server: only the bundle's files, read-only, with the headers browsers and
tile clients rely on (MIME types, Range, ETag, Cache-Control)."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.core.server import BundleServer, resolve_request

GLB = bytes(range(256)) * 40  # 10,240 bytes; any content will do


@pytest.fixture
def bundle(tmp_path) -> Path:
    root = tmp_path / "bundle"
    (root / "buildings" / "tiles").mkdir(parents=True)
    (root / "viewer" / "cesium").mkdir(parents=True)
    (root / "anchors").mkdir()
    (root / "tileset.json").write_text('{"asset": {"version": "1.1"}}')
    (root / "buildings" / "tiles" / "r0.glb").write_bytes(GLB)
    (root / "buildings" / "0.0.0.subtree").write_bytes(b"subt" + bytes(20))
    (root / "viewer" / "index.html").write_text("<!doctype html><title>viewer</title>")
    (root / "viewer" / "viewer.js").write_text("'use strict';")
    (root / "viewer" / "viewer.css").write_text("body {}")
    (root / "viewer" / "cesium" / "draco_decoder.wasm").write_bytes(b"\0asm" + bytes(8))
    (root / "index.html").write_text("<!doctype html><title>front</title>")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    (root / "anchors" / "escape").symlink_to(tmp_path)            # a folder link out of the bundle
    (root / "anchors" / "secret.txt").symlink_to(secret)          # a file link out of the bundle
    (root / "anchors" / "inside.json").symlink_to(root / "tileset.json")  # a link that stays inside
    return root


@pytest.fixture
def server(bundle) -> Iterator[BundleServer]:
    srv = BundleServer(bundle, port=0)
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv: BundleServer, method: str, target: str, headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    """One raw request: the target goes on the wire exactly as given (no client-side cleanup)."""
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
    conn.putrequest(method, target, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


@pytest.mark.parametrize("target", [
    "/../secret.txt", "/buildings/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/%2e%2e/secret.txt",
    "/buildings/%2e%2e%2f%2e%2e%2fsecret.txt", "/%252e%252e/secret.txt", "/anchors/secret.txt",
    "/anchors/escape/secret.txt", "//etc/passwd", "/..%5csecret.txt", "/tileset.json%00.png",
    "/./tileset.json", "http://other/../secret.txt",
])
def test_nothing_outside_the_bundle_is_served(server, target):
    status, _, body = request(server, "GET", target)
    assert status in (400, 403, 404), (target, status)
    assert b"not for the web" not in body


def test_a_link_that_stays_inside_the_bundle_is_served(server):
    status, _, body = request(server, "GET", "/anchors/inside.json")
    assert status == 200 and body.startswith(b'{"asset"')


def test_folders_are_never_listed(server):
    assert request(server, "GET", "/buildings/")[0] == 404
    assert request(server, "GET", "/buildings/tiles/")[0] == 404
    status, _, body = request(server, "GET", "/")
    assert status == 200 and b"front" in body  # a folder's index.html is its page
    status, headers, _ = request(server, "GET", "/viewer")
    assert status == 301 and headers["location"] == "/viewer/"


@pytest.mark.parametrize("path, mime", [
    ("/tileset.json", "application/json"), ("/buildings/tiles/r0.glb", "model/gltf-binary"),
    ("/buildings/0.0.0.subtree", "application/octet-stream"), ("/viewer/viewer.js", "text/javascript; charset=utf-8"),
    ("/viewer/cesium/draco_decoder.wasm", "application/wasm"), ("/viewer/viewer.css", "text/css; charset=utf-8"),
    ("/viewer/", "text/html; charset=utf-8"),
])
def test_mime_types(server, path, mime):
    status, headers, _ = request(server, "GET", path)
    assert status == 200 and headers["content-type"] == mime


def test_head_of_a_tile_has_the_headers_and_no_body(server):
    status, headers, body = request(server, "HEAD", "/buildings/tiles/r0.glb")
    assert status == 200 and body == b""
    assert headers["content-length"] == str(len(GLB)) and headers["accept-ranges"] == "bytes"
    assert headers["cache-control"] == "public, max-age=3600" and headers["etag"]
    assert request(server, "HEAD", "/tileset.json")[1]["cache-control"] == "no-cache"


def test_range_requests(server):
    status, headers, body = request(server, "GET", "/buildings/tiles/r0.glb", {"Range": "bytes=100-299"})
    assert status == 206 and body == GLB[100:300]
    assert headers["content-range"] == f"bytes 100-299/{len(GLB)}" and headers["content-length"] == "200"
    status, headers, body = request(server, "GET", "/buildings/tiles/r0.glb", {"Range": "bytes=-16"})
    assert status == 206 and body == GLB[-16:]
    status, _, body = request(server, "GET", "/buildings/tiles/r0.glb", {"Range": "bytes=10000-"})
    assert status == 206 and body == GLB[10000:]
    status, headers, _ = request(server, "HEAD", "/buildings/tiles/r0.glb", {"Range": "bytes=0-3"})
    assert status == 206 and headers["content-range"] == f"bytes 0-3/{len(GLB)}"
    status, headers, _ = request(server, "GET", "/buildings/tiles/r0.glb", {"Range": f"bytes={len(GLB)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(GLB)}"
    # several ranges are answered with the whole file, which HTTP allows
    status, _, body = request(server, "GET", "/buildings/tiles/r0.glb", {"Range": "bytes=0-1,5-6"})
    assert status == 200 and body == GLB


def test_a_kept_copy_is_revalidated_not_resent(server):
    etag = request(server, "HEAD", "/buildings/tiles/r0.glb")[1]["etag"]
    status, _, body = request(server, "GET", "/buildings/tiles/r0.glb", {"If-None-Match": etag})
    assert status == 304 and body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_read_only(server, bundle, method):
    status, headers, _ = request(server, method, "/tileset.json")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert (bundle / "tileset.json").read_text().startswith('{"asset"')


def test_resolve_request_keeps_to_the_root(bundle):
    root = bundle.resolve()
    assert resolve_request(root, "/tileset.json") == root / "tileset.json"
    assert resolve_request(root, "/viewer/") == root / "viewer" / "index.html"
    assert resolve_request(root, "/anchors/escape/secret.txt") is None
    assert resolve_request(root, "/nothing.json") is None


def test_port_taken_is_one_line_and_exit_2(bundle, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert cli.main(["serve", str(bundle), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port} on 127.0.0.1 is already in use" in err


def test_a_folder_that_is_not_a_bundle_is_refused(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a twin bundle" in err and str(tmp_path) in err
    assert cli.main(["serve", str(tmp_path / "missing"), "--port", "0"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_ctrl_c_stops_with_one_line(bundle):
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", str(bundle), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("Serving ") and "http://127.0.0.1:" in line and "/viewer/" in line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and err == "dmctwin: stopped serving\n" and out == ""


def test_serves_on_the_address_given(bundle):
    srv = BundleServer(bundle, host="127.0.0.1", port=0)
    try:
        assert srv.server_address[0] == "127.0.0.1" and srv.url.startswith("http://127.0.0.1:")
    finally:
        srv.server_close()
    start = time.monotonic()
    with pytest.raises(Exception, match="cannot listen on 192.0.2.1"):
        BundleServer(bundle, host="192.0.2.1", port=0)  # TEST-NET-1: not an address of this machine
    assert time.monotonic() - start < 5
