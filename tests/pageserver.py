"""Local servers for tests: a threaded HTTP page server with a route table, and a bare TCP recorder.

Usage::

    with PageServer() as server:
        url = server.add("/page", body=b"<p>hello</p>")
        server.redirect("/old", "/page")
        server.add("/slow", body=b"x", drip=0.2, drip_forever=True)
        ...

    with ConnectionRecorder("127.0.0.2") as recorder:
        ...  # recorder.count == number of TCP connections accepted

    ConnectionRecorder("::") listens on every local address, IPv4 and IPv6 alike (dual-stack).
"""

from __future__ import annotations

import functools
import gzip
import http.server
import select
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]
AUTO: Literal["auto"] = "auto"


@dataclass(frozen=True)
class Route:
    """A canned response."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int | None | Literal["auto"] = AUTO  # an int can lie; None sends no Content-Length
    chunked: bool = False
    chunk_size: int = 64 * 1024
    drip: float | None = None  # seconds between single bytes of the body
    drip_forever: bool = False  # with drip: after the body, keep sending b"x" until the client leaves
    handler: Handler | None = None  # full control instead of the fields above


@dataclass(frozen=True)
class RecordedRequest:
    """What the server saw of one request."""

    method: str
    path: str
    headers: dict[str, str]


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    page_server: PageServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response (timeouts, size limits) are expected here, not errors."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Keep test output quiet."""

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch()

    do_HEAD = do_POST = do_GET

    def _dispatch(self) -> None:
        page_server = self.server.page_server
        page_server._record(RecordedRequest(self.command, self.path, dict(self.headers.items())))
        self.close_connection = True
        route = page_server.route_for(self.path)
        if route.handler is not None:
            route.handler(self)
        else:
            _send(self, route, page_server.stopping)


def _send(h: http.server.BaseHTTPRequestHandler, route: Route, stopping: threading.Event) -> None:
    """Write a Route as the response."""
    h.send_response(route.status)
    if route.content_type is not None:
        h.send_header("Content-Type", route.content_type)
    for name, value in route.headers.items():
        h.send_header(name, value)
    if route.chunked:
        h.send_header("Transfer-Encoding", "chunked")
    elif route.content_length == AUTO and not route.drip_forever:
        h.send_header("Content-Length", str(len(route.body)))
    elif isinstance(route.content_length, int):
        h.send_header("Content-Length", str(route.content_length))
    h.send_header("Connection", "close")
    h.end_headers()
    if h.command == "HEAD":
        return
    if route.drip is not None:
        _drip(h, route, stopping)
    elif route.chunked:
        for i in range(0, len(route.body), route.chunk_size):
            piece = route.body[i : i + route.chunk_size]
            h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        h.wfile.write(b"0\r\n\r\n")
    else:
        h.wfile.write(route.body)


def _drip(h: http.server.BaseHTTPRequestHandler, route: Route, stopping: threading.Event) -> None:
    """Send the body one byte at a time, then (drip_forever) more bytes until the client hangs up."""
    assert route.drip is not None
    body = iter(route.body)
    while not stopping.is_set():
        byte = next(body, None)
        if byte is None and not route.drip_forever:
            return
        h.wfile.write(bytes([byte if byte is not None else ord("x")]))
        h.wfile.flush()
        stopping.wait(route.drip)


class PageServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (port chosen by the OS) serving registered routes."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), _RequestHandler)
        self._httpd.page_server = self
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._started = False

    def __enter__(self) -> PageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> PageServer:
        """Start serving in a daemon thread."""
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def close(self) -> None:
        """Stop serving, end drips, close the listening socket."""
        self.stopping.set()
        if self._started:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of a path on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def add(
        self,
        path: str,
        status: int = 200,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        **options: Any,
    ) -> str:
        """Register a canned response (options: see Route); return its URL.

        A Content-Type in headers replaces the default ``text/html; charset=utf-8``.
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = dict(headers or {})
        for name in [n for n in headers if n.lower() == "content-type"]:
            options["content_type"] = headers.pop(name)
        with self._lock:
            self._routes[path] = Route(status=status, body=body, headers=headers, **options)
        return self.url(path)

    def add_handler(self, path: str, handler: Handler) -> str:
        """Register a function that writes the whole response itself; return its URL."""
        with self._lock:
            self._routes[path] = Route(handler=handler)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        """Register a redirect to location (absolute or relative); return its URL."""
        return self.add(path, status, b"", {"Location": location}, content_type="text/plain")

    def route_for(self, path: str) -> Route:
        """The route for a request path: exact match, then without the query, else a 404."""
        with self._lock:
            route = self._routes.get(path) or self._routes.get(path.split("?", 1)[0])
        return route or Route(status=404, body=b"not found", content_type="text/plain")

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def hits(self, path: str) -> int:
        """How many requests asked for this path."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)


class ConnectionRecorder:
    """A bare TCP listener that counts accepted connections and never answers them (they stall)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if host == "::":  # IPv4 connections too, as ::ffff:a.b.c.d, whatever the system's default
            self._listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self._listener.bind((host, port))
        self._listener.listen(16)
        self.host, self.port = host, self._listener.getsockname()[1]
        self.peers: list[Any] = []
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> ConnectionRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and close every socket."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._listener.close()
        with self._lock:
            for conn in self._accepted:
                conn.close()
            self._accepted.clear()

    @property
    def count(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self.peers)

    def url(self, path: str = "/") -> str:
        """An http URL aimed at this listener."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def wait_for(self, n: int, timeout: float = 2.0) -> bool:
        """Wait until n connections were accepted; True if they were."""
        end = time.monotonic() + timeout
        while self.count < n and time.monotonic() < end:
            time.sleep(0.01)
        return self.count >= n

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if ready:
                conn, peer = self._listener.accept()
                with self._lock:
                    self._accepted.append(conn)
                    self.peers.append(peer)


@functools.cache
def gzip_bomb(size: int = 50 * 1024 * 1024) -> bytes:
    """size zero bytes, gzipped (~50 KB for the default 50 MB); built once per process."""
    return gzip.compress(bytes(size), compresslevel=9, mtime=0)


@functools.cache
def deflate_bomb(size: int = 50 * 1024 * 1024, raw: bool = False) -> bytes:
    """size zero bytes as zlib-wrapped deflate (RFC 1950), or raw deflate (what some servers send)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return compressor.compress(bytes(size)) + compressor.flush()
