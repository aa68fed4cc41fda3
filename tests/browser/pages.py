"""A local page server for the browser tests, with pages that hold their response until the test lets go.

A held ("gated") page sends its headers and the first half of its body, then waits for ``Gate.release()``:
the job stays in its download stage exactly as long as the test needs to look at it, with no sleeps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GATE_LIMIT = 60.0  # seconds a held response waits at most, so a failed test never leaves a thread behind


@dataclass
class Gate:
    """Holds a page's second half until released; ``requested`` is set once a client asks for the page."""

    requested: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.opened.set()


@dataclass(frozen=True)
class Route:
    status: int
    body: bytes
    content_type: str
    gate: Gate | None = None


class Pages:
    """Serves registered routes on 127.0.0.1: ``add(path, body, …)`` or ``add_gated(path, body)``, then ``url``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                route = routes.get(self.path, Route(404, b"not found", "text/plain"))
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if route.gate is None:
                    self.wfile.write(route.body)
                    return
                half = len(route.body) // 2
                self.wfile.write(route.body[:half])
                self.wfile.flush()
                route.gate.requested.set()
                route.gate.opened.wait(GATE_LIMIT)
                self.wfile.write(route.body[half:])

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def add(self, path: str, body: bytes, content_type: str = "text/html; charset=utf-8", status: int = 200) -> str:
        self.routes[path] = Route(status, body, content_type)
        return self.url(path)

    def add_gated(self, path: str, body: bytes, content_type: str = "text/html; charset=utf-8") -> tuple[str, Gate]:
        gate = Gate()
        self.routes[path] = Route(200, body, content_type, gate)
        return self.url(path), gate

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def release_all(self) -> None:
        for route in self.routes.values():
            if route.gate is not None:
                route.gate.release()

    def __enter__(self) -> Pages:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_all()
        self.server.shutdown()
        self.server.server_close()
