"""Dramatiq and Celery on the same Redis as our worker, as ``make bench``'s yardsticks (no-op jobs, results kept).

Each peer runs with its own command line and defaults (Dramatiq: 2 processes x 8 threads, its Results middleware;
Celery: prefork with 2 processes, its Redis result backend). A run pre-fills ``n`` no-op messages, starts the
worker and times from the first result to the last, counting Redis commands and CPU like bench/run.py does.
This module is also the peers' task module: their workers import it by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
from celery import Celery
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend
from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

broker = RedisBroker(url=URL)
results = RedisBackend(url=URL)
broker.add_middleware(Results(backend=results))
dramatiq.set_broker(broker)

celery_app = Celery("bench.peers", broker=URL, backend=URL)
celery_app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                       broker_connection_retry_on_startup=True)


@dramatiq.actor(store_results=True)
def dramatiq_noop() -> None:
    """A Dramatiq no-op whose (empty) result is stored."""


@celery_app.task
def celery_noop() -> None:
    """A Celery no-op whose (empty) result is stored."""


def _dramatiq_fill(n: int) -> list[str]:
    return [results.build_message_key(dramatiq_noop.send()) for _ in range(n)]


def _celery_fill(n: int) -> list[str]:
    return [celery_app.backend.get_key_for_task(celery_noop.delay().id).decode() for _ in range(n)]


PEERS: dict[str, tuple[list[str], Callable[[int], list[str]]]] = {
    "dramatiq 2×8 (default)": ([sys.executable, "-m", "dramatiq", "bench.peers", "--processes", "2",
                                "--threads", "8"], _dramatiq_fill),
    "celery prefork 2": ([sys.executable, "-m", "celery", "-A", "bench.peers:celery_app", "worker",
                          "--concurrency", "2", "--pool", "prefork", "--loglevel", "INFO"], _celery_fill),
}


def run_peer(label: str, url: str, n: int, logdir: Path) -> dict[str, Any]:
    """Pre-fill ``n`` no-op messages, run the peer's worker until every result is stored, and report."""
    from bench import procs
    from bench.run import commands, redis_cpu

    command, fill = PEERS[label]
    conn = Redis.from_url(url)
    conn.flushall()
    keys = fill(n)
    before = commands(conn)
    env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    with open(logdir / f"{label.split()[0]}.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    polls, first, cpu0 = 0, None, 0.0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        done = conn.exists(*keys)  # Dramatiq keeps a result in a list, Celery in a string
        polls += 1
        if done and first is None:
            first, first_done, cpu0, redis0 = time.monotonic(), done, procs.cpu_seconds(proc.pid), redis_cpu(conn)
        if done >= n:
            break
        time.sleep(0.02)
    span = time.monotonic() - first
    cpu1, redis1 = procs.cpu_seconds(proc.pid), redis_cpu(conn)
    cmds = commands(conn) - before - polls  # the driver's EXISTS (INFO is not counted)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    counted = n - first_done
    conn.close()
    return {
        "setup": label, "jobs": n, "statuses": {"finished": done}, "seconds": round(span, 3),
        "jobs_per_s": round(counted / span, 1) if span else 0.0,
        "redis_commands_per_job": round(cmds / n, 1),
        "worker_cpu_ms_per_job": round((cpu1 - cpu0) * 1000 / max(counted, 1), 2),
        "redis_cpu_ms_per_job": round((redis1 - redis0) * 1000 / max(counted, 1), 2),
    }
