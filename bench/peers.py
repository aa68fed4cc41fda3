"""Dramatiq and Celery as ``make bench``'s yardsticks: same Redis, same run, same jobs, each peer as it ships.

Shapes: no-op jobs run on each peer's default, Dramatiq's 2 processes × 8 threads (``dramatiq -p 2 -t 8``) and
Celery's prefork pool with 2 processes (``celery worker -P prefork -c 2``). I/O jobs (a GET of the local page
that answers after 100 ms, bench/peer_jobs.py) get the concurrency of our worker as shipped, 2 processes × 32:
``dramatiq -p 2 -t 32``, and two ``celery worker -P threads -c 32`` nodes. Celery's prefork pool would run 2 jobs
at once, and its gevent pool, tried first with the same jobs on this machine, ran them at a third of the threads
pool's rate (75-78 jobs/s as 1 × 64 or 2 × 32 greenlets, against 246), so threads is Celery's fair shape here.
Results are kept: Dramatiq's Results middleware with its Redis backend, Celery's Redis result backend. Each
peer logs at its CLI's default level (Dramatiq INFO, Celery WARNING).

A run pre-fills ``n`` messages from a separate process (Celery's client subscribes to each task's result
channel, which would make the bench driver a subscriber), starts the workers, and measures from the first stored
result after every worker process is up to the last result, so start-up is left out: jobs/s, Redis commands
(INFO commandstats), Redis CPU and the workers' CPU. Progress is read with ``DBSIZE`` (one result key per job)
and confirmed with an ``EXISTS`` of every key only near the end, since an ``EXISTS`` of thousands of keys at every
poll would add Redis CPU of the driver's own to the peer's. The driver's commands are subtracted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

from redis import Redis

from bench import procs

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
POLL_S = 0.01
HEAD = 200  # the first messages queued: one of them gives the first result (both peers pop in FIFO order)
READY = "bench: worker ready"  # bench/peer_celery.py logs it from Celery's worker_ready signal


@dataclass(frozen=True)
class Peer:
    """One peer setup: what the ratios call it, its label, its app module and the worker commands it runs."""

    name: str
    label: str
    module: str
    commands: tuple[tuple[str, ...], ...]
    ready: str  # a line each worker process logs once it has imported everything and consumes
    ready_count: int


def _dramatiq(processes: int, threads: int, note: str) -> Peer:
    version = metadata.version("dramatiq")
    return Peer("Dramatiq", f"Dramatiq {version}, {note} ({processes} processes × {threads} threads)",
                "bench.peer_dramatiq", ((PY, "-m", "dramatiq", "bench.peer_dramatiq", "--processes", str(processes),
                                         "--threads", str(threads)),), "is ready for action", processes)


def _celery(pool: str, concurrency: int, nodes: int) -> Peer:
    label = f"Celery {metadata.version('celery')}, {pool} " + (
        f"{concurrency}" if nodes == 1 else f"({nodes} processes × {concurrency} {pool})")
    return Peer("Celery", label, "bench.peer_celery", tuple(
        (PY, "-m", "celery", "-A", "bench.peer_celery", "worker", "--pool", pool, "--concurrency", str(concurrency),
         "--hostname", f"bench{node}@%h") for node in range(nodes)), READY, nodes)


def setups(workload: str) -> list[Peer]:
    """The peers for ``noop`` (their defaults) or ``io`` (our worker's concurrency as shipped, 2 × 32)."""
    if workload == "noop":
        return [_dramatiq(2, 8, "default"), _celery("prefork", 2, 1)]
    return [_dramatiq(2, 32, "threads"), _celery("threads", 32, 2)]


def fill(peer: Peer, job: str, args: list[str], n: int, env: dict[str, str]) -> list[str]:
    """Queue ``n`` messages from a separate process; their result keys."""
    out = subprocess.run([PY, "-m", "bench.peers", peer.module, job, str(n), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def run(peer: Peer, job: str, args: list[str], n: int, url: str, env: dict[str, str],
        logdir: Path) -> dict[str, Any]:
    """Pre-fill ``n`` jobs, start the peer's workers, wait for every result; the same figures as our rows."""
    conn = Redis.from_url(url)
    conn.flushall()
    keys = fill(peer, job, args, n, env)
    before, queued_keys = procs.commands(conn), conn.dbsize()
    log = logdir / f"{peer.label.split(',')[0].replace(' ', '_')}_{job}.log"
    workers = _start(peer, env, log)
    driver = 0  # commands this function sends while the peer works
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until every process is up (its start-up CPU left out) and a job is done
        if log.read_text(errors="replace").count(peer.ready) >= peer.ready_count:
            driver += 1
            if conn.exists(*keys[:HEAD]):
                break
        time.sleep(POLL_S)
    began, cpu0, redis0 = time.monotonic(), _cpu(workers), procs.redis_cpu(conn)  # INFO is not counted
    first = done = conn.exists(*keys)
    driver += 1
    margin = max(20, n // 50)  # more than the few queue and bookkeeping keys that come and go besides results
    while done < n and time.monotonic() < deadline:
        time.sleep(POLL_S)
        driver += 1
        if conn.dbsize() - queued_keys >= n - margin:
            driver += 1
            done = conn.exists(*keys)
    span = time.monotonic() - began
    cpu1, redis1, after = _cpu(workers), procs.redis_cpu(conn), procs.commands(conn)
    rss = [p for w in workers for p in procs.peak_rss(w.pid)]
    _stop(workers)
    statuses = _statuses(conn, keys)
    conn.close()
    counted = max(done - first, 1)
    return {
        "setup": peer.label,
        "peer": peer.name,
        "command": " ".join(Path(peer.commands[0][0]).name if i == 0 else part
                            for i, part in enumerate(peer.commands[0])) + (
            f" (×{len(peer.commands)} nodes)" if len(peer.commands) > 1 else ""),
        "jobs": n,
        "statuses": statuses,
        "seconds": round(span, 3),
        "jobs_per_s": round(counted / span, 1) if span else 0.0,
        "redis_commands_per_job": round((after - before - driver) / n, 1),
        "worker_cpu_ms_per_job": round((cpu1 - cpu0) * 1000 / counted, 2),
        "redis_cpu_ms_per_job": round((redis1 - redis0) * 1000 / counted, 3),
        "worker_peak_rss_mb_total": round(sum(p["peak_rss_mb"] for p in rss), 1),
        "processes": rss,
    }


def _start(peer: Peer, env: dict[str, str], log_path: Path) -> list[subprocess.Popen[bytes]]:
    """Start every command of ``peer`` in one new process group (the first one's)."""
    workers: list[subprocess.Popen[bytes]] = []
    with open(log_path, "wb") as log:
        for command in peer.commands:
            workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            process_group=workers[0].pid if workers else 0))
    return workers


def _cpu(workers: list[subprocess.Popen[bytes]]) -> float:
    return sum(procs.cpu_seconds(w.pid) for w in workers)


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM the group (each peer's warm shutdown), SIGKILL it after 30 s."""
    os.killpg(workers[0].pid, signal.SIGTERM)
    try:
        for worker in workers:
            worker.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(workers[0].pid, signal.SIGKILL)
        for worker in workers:
            worker.wait()


def _statuses(conn: Redis, keys: list[str]) -> dict[str, int]:
    """How the jobs ended, read from the stored results (Celery: a string with a status; Dramatiq: a list)."""
    with conn.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.type(key)
        types = pipe.execute()
    with conn.pipeline(transaction=False) as pipe:
        for key, kind in zip(keys, types, strict=True):
            if kind == b"list":
                pipe.lindex(key, 0)
            else:
                pipe.get(key)
        stored = pipe.execute()
    counts: dict[str, int] = {}
    for raw in stored:
        value = json.loads(raw) if raw is not None else None
        if raw is None:
            status = "missing"
        elif isinstance(value, dict) and "status" in value:
            status = "finished" if value["status"] == "SUCCESS" else value["status"].lower()
        else:
            status = "failed" if isinstance(value, dict) and "__t" in value else "finished"
        counts[status] = counts.get(status, 0) + 1
    return counts


def ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Ours as shipped ÷ each peer, for every per-job figure (jobs/s: above 1 is better; costs: below 1)."""
    ours = next((r for r in rows if r["setup"].startswith("ours as shipped")), None)
    if ours is None:
        return {}
    metrics = ("jobs_per_s", "redis_commands_per_job", "redis_cpu_ms_per_job", "worker_cpu_ms_per_job")
    return {row["peer"]: {m: round(ours[m] / row[m], 2) if row[m] else float("nan") for m in metrics}
            for row in rows if "peer" in row}


def markdown(title: str, result: dict[str, dict[str, float]]) -> list[str]:
    """The ratio table for one workload."""
    if not result:
        return []
    lines = [f"Ours as shipped ÷ peer, {title} (jobs/s: above 1 is better; costs per job: below 1 is better):", "",
             "| ÷ | jobs/s | Redis cmds/job | Redis CPU/job | worker CPU/job |", "|---|---|---|---|---|"]
    for peer, r in result.items():
        lines.append(f"| ours ÷ {peer} | {r['jobs_per_s']} | {r['redis_commands_per_job']} | "
                     f"{r['redis_cpu_ms_per_job']} | {r['worker_cpu_ms_per_job']} |")
    return [*lines, ""]


if __name__ == "__main__":  # python -m bench.peers MODULE JOB N [ARGS...]: fill, print the result keys as JSON
    module, job, count, *job_args = sys.argv[1:]
    print(json.dumps(import_module(module).send(job, job_args, int(count))))
