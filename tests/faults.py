"""Helpers for the fault-injection tests: a page site that counts runs and can be slow, and job polling."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from redis import Redis

from engine.queues import fetch_job
from engine.status import TERMINAL, job_status


class CountingSite:
    """Serves ``/run/<token>?seconds=S``: a text page trickled over S seconds; counts fetches per token.

    Each count_words_at_url run fetches its URL once, so ``hits[token]`` is how many times that job ran.
    """

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.started: Counter[str] = Counter()
        self.started_at: dict[str, list[float]] = {}  # time.monotonic() of each run's fetch, per token
        lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                token = parts.path.rsplit("/", 1)[-1]
                seconds = float(parse_qs(parts.query).get("seconds", ["0"])[0])
                with lock:
                    site.started[token] += 1
                    site.started_at.setdefault(token, []).append(time.monotonic())
                chunks = max(1, int(seconds * 4))
                body = b"alpha beta gamma " * 4
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
                    f"Content-Length: {len(body) * chunks}\r\n\r\n"
                ).encode()
                self.close_connection = True
                try:
                    # Head and first chunk in one write: split small writes meet delayed ACKs (~40 ms each).
                    self.wfile.write(head + body)
                    for _ in range(chunks - 1):
                        time.sleep(seconds / chunks)
                        self.wfile.write(body)
                    self.wfile.flush()
                except OSError:
                    return  # the job's process died mid-download
                with lock:
                    site.hits[token] += 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def url(self, token: str, seconds: float = 0) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/run/{token}?seconds={seconds}"

    def __enter__(self) -> CountingSite:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def statuses(redis: Redis, job_ids: list[str]) -> dict[str, str]:
    """Each job's public status ("missing" when its hash is gone)."""
    found = {}
    for job_id in job_ids:
        job = fetch_job(redis, job_id)
        found[job_id] = job_status(job) if job is not None else "missing"
    return found


def wait_all_terminal(redis: Redis, job_ids: list[str], timeout: float) -> dict[str, str]:
    """Poll until every job is terminal or the deadline passes; returns the last statuses seen."""
    deadline = time.monotonic() + timeout
    while True:
        seen = statuses(redis, job_ids)
        if all(status in TERMINAL for status in seen.values()) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def wait_until(predicate, timeout: float, pause: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(pause)
    return bool(predicate())
