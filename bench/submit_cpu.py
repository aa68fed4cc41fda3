"""In-process CPU per request of ``POST /api/jobs`` and of ``GET /readyz``, through the WSGI app (no server, no
network, no client), logging as in production, against a private redis-server: what the submit path itself costs
the web process.

    python bench/submit_cpu.py [--n 2000] [--rounds 5] [--profile]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/, whose profile.py would shadow the standard library's (cProfile needs it)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from flask import Flask  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from engine import logs  # noqa: E402
from engine.embedded_redis import RedisServer, free_port  # noqa: E402
from engine.settings import Settings  # noqa: E402
from web import create_app  # noqa: E402

BODY = json.dumps({"type": "noop", "params": {}})


def cpu_per_request(app: Flask, method: str, path: str, n: int, body: str | None = None) -> float:
    """The app's CPU milliseconds per request over ``n`` WSGI calls (after a warm-up), the client's work left out:
    each call gets a copy of one prepared environ."""
    builder = EnvironBuilder(path=path, method=method, data=body,
                             content_type="application/json" if body else None)
    environ = builder.get_environ()
    payload = (body or "").encode()

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        assert status[:3] in ("200", "202"), status

    def call() -> None:
        b"".join(app.wsgi_app({**environ, "wsgi.input": io.BytesIO(payload)}, start_response))

    for _ in range(50):
        call()
    start = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - start) * 1000 / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the POSTs")
    parser.add_argument("--sort", default="cumulative", help="the profile's order (cumulative, tottime)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp), port=free_port()) as server:
        env = {**os.environ, "REDIS_URL": server.url, "APP_ENV": "development", "DIAGNOSTIC_JOBS": "1",
               "SECRET_KEY": "bench-secret-key-0123456789", "RATELIMIT_SUBMIT": "100000000 per second"}
        os.environ.update(env)
        settings = Settings.from_env(env)
        devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the run
        logs.configure(settings.log_format, settings.log_level, devnull)  # as gunicorn's logger class does
        app = create_app({"SETTINGS": settings})
        gets, posts = [], []
        for _ in range(args.rounds):  # alternate and keep the least: other processes only ever add to it
            gets.append(cpu_per_request(app, "GET", "/readyz", args.n))
            posts.append(cpu_per_request(app, "POST", "/api/jobs", args.n, BODY))
        get, post = min(gets), min(posts)
        print(json.dumps({"n": args.n, "get_readyz_cpu_ms": round(get, 3), "post_api_jobs_cpu_ms": round(post, 3),
                          "post_minus_get_ms": round(post - get, 3), "cpu_ratio_get_over_post": round(get / post, 2)}))
        if args.profile:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            cpu_per_request(app, "POST", "/api/jobs", args.n, BODY)
            profiler.disable()
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
