"""A local HTTP server for fixture pages (minimal version; the SSRF/fetch work extends it)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PageServer:
    """Serves registered routes on 127.0.0.1: ``add(path, status, body, headers)``, then ``url(path)``."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                status, body, headers = routes.get(self.path, (404, b"not found", {"Content-Type": "text/plain"}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]

    def add(self, path: str, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> str:
        self.routes[path] = (status, body, headers or {"Content-Type": "text/html; charset=utf-8"})
        return self.url(path)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def __enter__(self) -> PageServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
