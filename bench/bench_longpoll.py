"""Benchmark long-polls: N concurrent ``GET /api/jobs/<id>?wait=30`` against the Procfile's gunicorn, and /healthz.

    python bench/bench_longpoll.py [--waiters 200] [--probes 20] [--gthread] [--json out.json]

Starts a private Redis and the production web command (``--gthread`` swaps in gthread with 8 threads, the old
setting, for comparison), holds N waiters on a job no worker runs, and reports /healthz latency (median, max),
Redis commands per second while they wait, and how many waiters got an error instead of a 200.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402

from engine.embedded_redis import RedisServer, free_port  # noqa: E402 - needs the path above
from engine.settings import PROJECT_ROOT  # noqa: E402


def get(port: int, path: str, timeout: float, method: str = "GET", body: bytes | None = None) -> tuple[int, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        connection.close()


def web_command(gthread: bool) -> list[str]:
    line = next(line for line in (PROJECT_ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = [sys.executable, "-m", *shlex.split(line.partition(":")[2])]
    return command + (["--worker-class", "gthread", "--threads", "8"] if gthread else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", type=int, default=200)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--gthread", action="store_true", help="compare: gthread with 8 threads per process")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as redis_server:
        port = free_port()
        env = {**os.environ, "REDIS_URL": redis_server.url, "APP_ENV": "production", "WEB_CONCURRENCY": "2",
               "SECRET_KEY": "bench-secret-key-0123456789", "PORT": str(port)}
        web = subprocess.Popen([*web_command(args.gthread), "--bind", f"127.0.0.1:{port}"], cwd=PROJECT_ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return run(port, redis_server, args)
        finally:
            web.terminate()
            web.wait(30)


def run(port: int, redis_server: RedisServer, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            if get(port, "/healthz", 1)[0] == 200:
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    body = json.dumps({"type": "count_words_at_url", "params": {"url": "https://example.com/"}}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/api/jobs", body=body, headers={"Content-Type": "application/json"})
    job_id = json.loads(connection.getresponse().read())["id"]
    connection.close()
    outcomes: list[int | str] = []

    def wait() -> None:
        try:
            outcomes.append(get(port, f"/api/jobs/{job_id}?wait=30", 60)[0])
        except OSError as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=wait, daemon=True) for _ in range(args.waiters)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    redis = Redis.from_url(redis_server.url)
    ops_before, t0 = redis.info("stats")["total_commands_processed"], time.monotonic()
    latencies, failures = [], 0
    for _ in range(args.probes):
        try:
            latencies.append(get(port, "/healthz", 10)[1])
        except OSError:
            failures += 1
        time.sleep(0.1)
    ops = (redis.info("stats")["total_commands_processed"] - ops_before) / (time.monotonic() - t0)
    figures = {
        "worker_class": "gthread (8 threads)" if args.gthread else "gevent",
        "waiters": args.waiters,
        "healthz_median_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "healthz_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "healthz_timeouts_10s": failures,
        "redis_commands_per_s_while_waiting": round(ops),
        "waiter_errors": sum(1 for outcome in outcomes if outcome != 200),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
