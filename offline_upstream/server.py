"""Serve the offline upstream over HTTP on loopback, like a downloads server.

Files carry ``Last-Modified`` and an ``ETag`` and answer conditional requests with
304, so that a client that asks again for an unchanged file costs almost nothing.
Every answer allows any origin (``Access-Control-Allow-Origin: *``), as
downloads.openwrt.org does: the firmware selector reads it from another origin.
Every request is recorded (method, path, status) for tests to inspect.
"""

from __future__ import annotations

import functools
import os
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(SimpleHTTPRequestHandler):
    """Static files with ETag; every request logged to ``server.request_log``."""

    server: UpstreamServer
    protocol_version = "HTTP/1.1"
    # Small answers on a kept-alive connection otherwise wait for the peer's ACK.
    disable_nagle_algorithm = True

    def send_head(self):
        self._etag = None
        path = self.translate_path(self.path)
        if os.path.isfile(path):
            stat = os.stat(path)
            self._etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            if self._etag in self.headers.get("If-None-Match", ""):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.end_headers()
                return None
        return super().send_head()

    def end_headers(self):
        if getattr(self, "_etag", None):
            self.send_header("ETag", self._etag)
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_error(self, format, *args):
        if not self.server.quiet:
            super().log_error(format, *args)

    def log_request(self, code="-", size="-"):
        status = code.value if isinstance(code, HTTPStatus) else code
        self.server.request_log.append((self.command, self.path, int(status)))
        if not self.server.quiet:
            super().log_request(code, size)


class UpstreamServer(ThreadingHTTPServer):
    """A threaded HTTP server for one directory, recording its requests."""

    daemon_threads = True

    def __init__(
        self, root: Path, port: int = 0, quiet: bool = True, host: str = "127.0.0.1"
    ):
        handler = functools.partial(_Handler, directory=str(root))
        super().__init__((host, port), handler)
        self.root = root
        self.quiet = quiet
        self.request_log: list[tuple[str, str, int]] = []

    @property
    def url(self) -> str:
        """The base URL the tree is served at."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> UpstreamServer:
        """Serve in a background thread; returns self."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()
