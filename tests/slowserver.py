"""A local HTTP server whose pages take a while, so tests can act on jobs while they run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PAGE = b"<html><body><p>slow words here</p></body></html>"


class SlowServer:
    """``/slow?seconds=N`` answers after N seconds (or at once when the test ends); it counts requests."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                outer.requests += 1
                query = parse_qs(urlsplit(self.path).query)
                outer.released.wait(float(query.get("seconds", ["0"])[0]))
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def url(self, seconds: float) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/slow?seconds={seconds}"


@contextmanager
def serving() -> Iterator[SlowServer]:
    """Run a SlowServer for the duration of the block (test modules wrap this in a fixture)."""
    server = SlowServer()
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.released.set()
        server.server.shutdown()
        server.server.server_close()
