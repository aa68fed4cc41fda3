"""A small HTTP load generator (the fallback when wrk is absent): N keep-alive connections for D seconds.

Run as its own process so the load does not share a GIL with the server or the bench driver:
``python bench/load.py URL --connections 8 --duration 5 [--body JSON]``; prints one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit


def hammer(url: str, body: bytes | None, stop_at: float, counts: list[int]) -> None:
    """One keep-alive connection sending requests back to back until ``stop_at``."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    method, headers = ("POST", {"Content-Type": "application/json"}) if body is not None else ("GET", {})
    ok = errors = 0
    while time.monotonic() < stop_at:
        try:
            conn.request(method, parts.path or "/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status < 400:
                ok += 1
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.close()
    counts.append(ok)
    counts.append(-errors)


def run(url: str, connections: int, duration: float, body: bytes | None) -> dict[str, float]:
    """Load ``url`` and return requests, errors and requests per second."""
    counts: list[int] = []
    started = time.monotonic()
    stop_at = started + duration
    threads = [threading.Thread(target=hammer, args=(url, body, stop_at, counts)) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ok = sum(c for c in counts if c > 0)
    errors = -sum(c for c in counts if c < 0)
    return {"requests": ok, "errors": errors, "seconds": round(elapsed, 3), "rps": round(ok / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--body", help="JSON body: send POST requests")
    args = parser.parse_args()
    body = args.body.encode() if args.body is not None else None
    print(json.dumps(run(args.url, args.connections, args.duration, body)))


if __name__ == "__main__":
    main()
