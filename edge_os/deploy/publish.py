"""``edge-os publish PACKAGE --http ADDR``: serve a signed package's files over HTTP with Range
requests, so devices can download it themselves and resume where a transfer stopped.

Only ``manifest.json``, ``manifest.sig`` and the files the manifest lists are served."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edge_os.deploy.signing import SIGNATURE, listed_files, parse_manifest
from edge_os.errors import InputError
from edge_os.package.manifest import MANIFEST

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class PackageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, package: Path, address: tuple[str, int]):
        self.package = Path(package)
        manifest = (self.package / MANIFEST).read_bytes()
        self.allowed = set(listed_files(parse_manifest(manifest))) | {MANIFEST, SIGNATURE}
        self.bytes_sent = 0  # body bytes written, all requests together
        self._count = threading.Lock()
        super().__init__(address, _Handler)

    def count(self, n: int) -> None:
        with self._count:
            self.bytes_sent += n


class _Handler(BaseHTTPRequestHandler):
    server: PackageServer

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        path = self.server.package / rel
        if rel not in self.server.allowed or not path.is_file():
            self.send_error(404, "not part of the package")
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left:
                block = f.read(min(1 << 20, left))
                self.wfile.write(block)
                self.server.count(len(block))
                left -= len(block)


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise InputError(f"--http {text!r} is not HOST:PORT; write e.g. 0.0.0.0:8080")
    return host or "0.0.0.0", int(port)


def serve(package: Path, address: tuple[str, int]) -> PackageServer:
    """Start serving ``package`` (call ``serve_forever`` or run it in a thread)."""
    if not (Path(package) / SIGNATURE).is_file():
        raise InputError(f"{package} is unsigned; devices refuse it. Sign it with `edge-os sign PACKAGE --key KEY`")
    return PackageServer(package, address)


