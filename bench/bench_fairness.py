"""Benchmark fair shares: two clients flood the default worker pool with pages that never answer, then a third
client submits one job; how long does it wait in the queue?

    python bench/bench_fairness.py [--cap 8] [--items 60]

Starts a private Redis, a page server whose pages hang and one that answers, and ``worker.py`` with the default
pool (WORKER_PROCESSES x WORKER_THREADS) and ``CLIENT_CONCURRENCY=--cap`` (0: no cap). The two flooders each
submit a batch of ``--items`` hanging pages through the API; the third client's job's wait is read from Redis
(``started_at - enqueued_at``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402

from engine.embedded_redis import RedisServer  # noqa: E402 - needs the path above
from engine.settings import PROJECT_ROOT, Settings  # noqa: E402
from tests.pageserver import PageServer  # noqa: E402
from tests.slowserver import serving  # noqa: E402
from web import create_app  # noqa: E402

FLOODERS = ("203.0.113.1", "203.0.113.2")
THIRD = "198.51.100.3"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=int, default=Settings.client_concurrency)
    parser.add_argument("--items", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server, serving() as hanging, \
            PageServer() as pages:
        pages.add("/", body=b"<p>hello there</p>")
        env = {**os.environ, "REDIS_URL": server.url, "APP_ENV": "testing", "SECRET_KEY": "bench-secret-key-0123",
               "FETCH_ALLOW_NETWORKS": "127.0.0.0/8", "RATELIMIT_SUBMIT": "1000 per minute",
               "CLIENT_CONCURRENCY": str(args.cap), "LOG_LEVEL": "WARNING"}
        redis = Redis.from_url(server.url)
        worker = subprocess.Popen([sys.executable, "worker.py"], cwd=PROJECT_ROOT, env=env, start_new_session=True)
        try:
            while not redis.keys("rq:worker:*"):
                time.sleep(0.2)
            time.sleep(2)  # every process up
            client = create_app({"SETTINGS": Settings.from_env(env), "TESTING": True}).test_client()
            for address in FLOODERS:
                batch = {"type": "count_words_at_url", "items": [{"url": hanging.url(120)}] * args.items}
                assert client.post("/api/batches", json=batch, environ_base={"REMOTE_ADDR": address}).status_code == 202
            time.sleep(1.5)  # the flood is running
            job = {"type": "count_words_at_url", "params": {"url": pages.url("/")}}
            job_id = client.post("/api/jobs", json=job, environ_base={"REMOTE_ADDR": THIRD}).get_json()["id"]
            deadline = time.monotonic() + 120
            while (view := client.get(f"/api/jobs/{job_id}").get_json())["status"] != "finished":
                if time.monotonic() > deadline:
                    print(f"cap={args.cap}: the third client's job did not finish in 120 s")
                    return 1
                time.sleep(0.05)
            waited = (datetime.fromisoformat(view["started_at"]) - datetime.fromisoformat(view["enqueued_at"]))
            print(f"cap={args.cap}: 2 x {args.items} hanging pages; the third client's job waited "
                  f"{waited.total_seconds():.2f} s in the queue")
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
