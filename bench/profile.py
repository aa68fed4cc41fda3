"""Where the time goes per job: Redis round trips counted on the client, and pyinstrument profiles.

``python bench/profile.py`` starts its own redis-server and, in this one process:
- counts round trips (socket writes: one per command, one per pipeline) per no-op job for RQ's SimpleWorker
  and for our StackWorker (engine/worker.py), and per ``POST /api/jobs`` request;
- profiles our worker's main thread (claim → hand over → finish; the job threads' share is not in it) and the
  POST path with pyinstrument.
Writes bench/results/profile.txt and prints the round-trip table.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DIAGNOSTIC_JOBS", "1")

from pyinstrument import Profiler  # noqa: E402
from redis import Redis  # noqa: E402
from redis.connection import AbstractConnection  # noqa: E402
from rq import Queue  # noqa: E402
from rq.worker import SimpleWorker  # noqa: E402

from engine.embedded_redis import RedisServer, free_port  # noqa: E402
from engine.queues import SERIALIZER, CatalogJob, make_queues  # noqa: E402
from engine.settings import QUEUE_NAMES, Settings  # noqa: E402
from engine.worker import StackWorker  # noqa: E402

WRITES: Counter[str] = Counter()


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Count socket writes to Redis (round trips), by first command name, while the block runs."""
    original = AbstractConnection.send_packed_command

    def send(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        first = command[0] if isinstance(command, list) else command
        name = bytes(first).split(b"\r\n")[2].decode(errors="replace") if first else "?"
        WRITES[name.upper()] += 1  # a pipeline counts once, under its first command (MULTI for a transaction)
        return original(self, command, check_health)

    WRITES.clear()
    AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
    try:
        yield WRITES
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def fill(conn: Redis, n: int) -> None:
    queue = make_queues(conn)["default"]
    data = [Queue.prepare_data("tests.diagnostics.noop", timeout=60, result_ttl=600) for _ in range(n)]
    with conn.pipeline() as pipe:
        queue.enqueue_many(data, pipeline=pipe)
        pipe.execute()


def per_job(conn: Redis, make: Callable[[], Any], n: int, profile: bool = False) -> tuple[Counter[str], str]:
    """Round trips per job (by command) and, optionally, a profile, for ``n`` no-op jobs in burst mode."""
    conn.flushall()
    fill(conn, n)
    worker = make()
    worker.log.setLevel("WARNING")
    profiler = Profiler(interval=0.0005) if profile else None
    with counting() as writes:
        if profiler:
            profiler.start()
        worker.work(burst=True, logging_level="WARNING")
        if profiler:
            profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False) if profiler else ""
    return Counter({k: v / n for k, v in writes.items()}), text


def post_path(settings: Settings, n: int) -> tuple[Counter[str], str]:
    """Round trips and a profile for ``n`` POST /api/jobs requests through the Flask test client."""
    from web import create_app

    app = create_app({"SETTINGS": settings, "TESTING": True})
    client = app.test_client()
    body = {"type": "noop", "params": {}}
    client.post("/api/jobs", json=body)  # warm up imports and url maps
    profiler = Profiler(interval=0.0002)
    with counting() as writes:
        profiler.start()
        for _ in range(n):
            assert client.post("/api/jobs", json=body).status_code == 202
        profiler.stop()
    return Counter({k: v / n for k, v in writes.items()}), profiler.output_text(unicode=False, color=False)


def table(rows: dict[str, Counter[str]]) -> str:
    names = sorted({k for c in rows.values() for k in c}, key=lambda k: -max(c.get(k, 0) for c in rows.values()))
    lines = ["| round trips | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
    totals = " | ".join(f"**{sum(c.values()):.1f}**" for c in rows.values())
    lines.append(f"| **total per job/request** | {totals} |")
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{c.get(name, 0):.2f}" for c in rows.values()) + " |")
    return "\n".join(lines)


def main() -> int:
    n = 500
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp), port=free_port()) as server:
        conn = Redis.from_url(server.url)
        unthrottled = {"RATELIMIT_SUBMIT": "100000000 per second"}  # one test client would be rate-limited
        settings = Settings.from_env({"REDIS_URL": server.url, "APP_ENV": "testing", **unthrottled})
        queues = lambda c: [make_queues(c)[q] for q in QUEUE_NAMES]  # noqa: E731
        common = {"serializer": SERIALIZER, "job_class": CatalogJob}
        stock, _ = per_job(conn, lambda: SimpleWorker(queues(conn), connection=conn, **common), n)
        ours, worker_profile = per_job(
            conn, lambda: StackWorker(QUEUE_NAMES, connection=conn, settings=settings, threads=1), n, profile=True
        )
        post, post_profile = post_path(settings, n)
    text = table({"RQ SimpleWorker": stock, "our StackWorker": ours, "POST /api/jobs": post})
    (out / "profile.txt").write_text(
        f"{text}\n\n# Worker main thread, {n} no-op jobs (one job thread)\n{worker_profile}\n"
        f"# POST /api/jobs x{n}\n{post_profile}"
    )
    print(text)
    print(f"\nProfiles: {out / 'profile.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
