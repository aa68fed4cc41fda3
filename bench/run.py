"""``make bench``: every performance figure of the stack in one run against one private Redis.

Starts its own redis-server on a free loopback port, then measures, in order:
1. no-op jobs: the Procfile's worker as shipped (and other shapes) against Dramatiq and Celery on the same Redis
   (bench/peers.py), with stock ``rq worker`` as a reference (jobs/s, Redis commands, Redis CPU and worker CPU
   per job, and ours ÷ each peer), and Redis round trips per job counted on the client (bench/profile.py);
2. I/O-bound jobs against a local page server that answers after 100 ms: ours run ``count_words_at_url``, the
   peers a plain GET of the same page;
3. faults: SIGKILL the whole worker with 16+ jobs in flight, SIGTERM it with jobs running; recovery times;
4. ``POST /api/jobs`` req/s ÷ ``GET /readyz`` (one Redis PING) req/s under the production gunicorn config,
   with load from a separate process (wrk if on PATH, else bench/load.py);
5. submit→result latency through the API (``?wait=`` long-poll if the API has it, else 2 ms polling);
6. with a replica attached and REDIS_WAIT_REPLICAS=1: the same HTTP ratio and no-op jobs/s (the cost of
   durable acknowledgement, docs/scaling.md);
7. HTML → counts: tree-based vs streaming counter, MB/s and peak memory (bench/bench_text.py, if present);
8. peak RSS of each process.
Writes bench/results/latest.json and latest.md and prints the Markdown. Timings are noisy on a shared
machine: compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from rq import Queue, Retry  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402
from rq.worker import Worker  # noqa: E402

from bench import peers, procs  # noqa: E402
from engine.embedded_redis import RedisServer, free_port  # noqa: E402

PY = sys.executable
BIN = Path(PY).parent
QUEUES = ("high", "default", "low")
PAGE = (b"<html><body><h1>Benchmark page</h1>" + b"<p>The quick brown fox jumps over the lazy dog.</p>" * 40
        + b"</body></html>")


@dataclass
class Setup:
    """One way of running workers: a label and a command line."""

    label: str
    command: list[str]
    workers: int  # RQ workers it registers (how we know it is up)
    kill: bool = False  # stop with SIGKILL to the process group (the gevent variant has no clean warm stop)


def stock(queues: tuple[str, ...] = QUEUES) -> Setup:
    """Stock ``rq worker``: forks a work horse per job, JSON serializer."""
    return Setup("stock rq worker", [str(BIN / "rq"), "worker", "--serializer", "rq.serializers.JSONSerializer",
                                     "--url", "{url}", *queues], 1)


def shipped() -> Setup:
    """The Procfile's worker line exactly, with the default WORKER_PROCESSES × WORKER_THREADS."""
    from engine.settings import Settings

    defaults = Settings.from_env({})
    label = f"ours as shipped (Procfile, {defaults.worker_processes}×{defaults.worker_threads})"
    return Setup(label, [PY, "worker.py", *QUEUES], defaults.worker_processes)


def ours(processes: int, threads: int, label: str | None = None) -> Setup:
    """Our worker.py: ``processes`` supervised StackWorker processes with ``threads`` job threads each."""
    return Setup(label or f"ours {processes}×{threads}", [PY, "worker.py", *QUEUES, "--no-scheduler",
                                                          "--processes", str(processes), "--threads", str(threads)],
                 processes)


class SlowPages:
    """A loopback HTTP server that answers every request after ``delay`` seconds (a slow remote site)."""

    def __init__(self, delay: float = 0.1):
        delay_s = delay

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's naming
                time.sleep(delay_s)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # listen backlog: the default 5 drops connections under 64-way load
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def fill(conn: Redis, func: str, kwargs: dict[str, Any], n: int, retry: Retry | None = None) -> list[str]:
    """Enqueue ``n`` jobs on ``default`` in one pipeline (before the workers start)."""
    queue = Queue("default", connection=conn, serializer=JSONSerializer)
    data = [Queue.prepare_data(func, kwargs=kwargs, timeout=120, result_ttl=3600, retry=retry) for _ in range(n)]
    with conn.pipeline() as pipe:
        jobs = queue.enqueue_many(data, pipeline=pipe)
        pipe.execute()
    return [job.id for job in jobs]


def run_workers(setup: Setup, url: str, env: dict[str, str], func: str, kwargs: dict[str, Any], n: int,
                logdir: Path) -> dict[str, Any]:
    """Pre-fill ``n`` jobs, start the workers, wait for all to end; throughput, commands, CPU and RSS."""
    conn = Redis.from_url(url)
    conn.flushall()
    ids = fill(conn, func, kwargs, n)
    before_cmds = procs.commands(conn)
    command = [part.replace("{url}", url) for part in setup.command]
    log = open(logdir / f"{setup.label.replace(' ', '_')}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    driver_cmds = 1
    deadline = time.monotonic() + 120
    while len(Worker.all_keys(connection=conn)) < setup.workers and time.monotonic() < deadline:
        driver_cmds += 1
        time.sleep(0.005)
    cpu0, redis_cpu0 = procs.cpu_seconds(proc.pid), procs.redis_cpu(conn)
    finished_key, failed_key = "rq:finished:default", "rq:failed:default"
    while time.monotonic() < deadline:
        with conn.pipeline(transaction=False) as pipe:
            pipe.zcard(finished_key)
            pipe.zcard(failed_key)
            done, failed = pipe.execute()
        driver_cmds += 2
        if done + failed >= n:
            break
        time.sleep(0.05)
    cpu1, redis_cpu1 = procs.cpu_seconds(proc.pid), procs.redis_cpu(conn)
    after_cmds = procs.commands(conn)
    rss = procs.peak_rss(proc.pid)
    if setup.kill:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()
    started, ended = [], []
    with conn.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at", "status")
        rows = pipe.execute()
    statuses: dict[str, int] = {}
    for s, e, status in rows:
        statuses[(status or b"?").decode()] = statuses.get((status or b"?").decode(), 0) + 1
        if s and e:
            started.append(_ts(s))
            ended.append(_ts(e))
    span = max(ended) - min(started) if started else float("nan")
    conn.close()
    return {
        "setup": setup.label,
        "jobs": n,
        "statuses": statuses,
        "seconds": round(span, 3),
        "jobs_per_s": round(len(ended) / span, 1) if started else 0.0,
        "redis_commands_per_job": round((after_cmds - before_cmds - driver_cmds) / n, 1),
        "worker_cpu_ms_per_job": round((cpu1 - cpu0) * 1000 / n, 2),
        "redis_cpu_ms_per_job": round((redis_cpu1 - redis_cpu0) * 1000 / n, 3),
        "worker_peak_rss_mb_total": round(sum(p["peak_rss_mb"] for p in rss), 1),
        "processes": rss,
    }


def _ts(raw: bytes) -> float:
    from rq.utils import str_to_date

    return str_to_date(raw).timestamp()


# --- faults -----------------------------------------------------------------------------------------------
def start(setup: Setup, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a worker setup in its own process group, logging to ``log_path``."""
    return subprocess.Popen(setup.command, cwd=ROOT, env=env, stdout=open(log_path, "ab"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(predicate: Any, timeout: float, pause: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(pause)
    return bool(predicate())


def job_states(conn: Redis, ids: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Each job's status and its meta's interruptions."""
    from engine.queues import SERIALIZER, CatalogJob

    found = {}
    for job_id in ids:
        job = CatalogJob.fetch(job_id, connection=conn, serializer=SERIALIZER)
        found[job_id] = (job.get_status(refresh=False).value, list(job.meta.get("interruptions", [])))
    return found


def fault_sigkill(url: str, env: dict[str, str], logdir: Path, jobs: int = 48) -> dict[str, Any]:
    """SIGKILL the whole shipped worker (supervisor and processes) with 16+ jobs in flight; start a new one."""
    conn = Redis.from_url(url)
    conn.flushall()
    ids = fill(conn, "tests.diagnostics.sleep", {"seconds": 3.0}, jobs, retry=Retry(max=1))
    first = start(shipped(), env, logdir / "fault_sigkill.log")
    wait_for(lambda: conn.zcard("rq:wip:default") >= 16, 60)
    in_flight = [job_id for job_id, (status, _) in job_states(conn, ids).items() if status == "started"]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed = time.monotonic()
    second = start(shipped(), env, logdir / "fault_sigkill.log")
    wait_for(lambda: all("WorkerLost" in job_states(conn, in_flight)[i][1] for i in in_flight), 60, 0.1)
    requeued_after = time.monotonic() - killed
    wait_for(lambda: all(s == "finished" for s, _ in job_states(conn, ids).values()), 120, 0.2)
    states = job_states(conn, ids)
    stop(second)
    conn.close()
    return {"jobs": jobs, "in_flight_at_kill": len(in_flight), "requeued_within_s": round(requeued_after, 1),
            "finished": sum(s == "finished" for s, _ in states.values()),
            "lost": sum(s != "finished" for s, _ in states.values())}


def fault_sigterm(url: str, env: dict[str, str], logdir: Path, grace: int = 3) -> dict[str, Any]:
    """SIGTERM the shipped worker with 12 jobs running (6 short, 6 longer than the grace); start a new one."""
    conn = Redis.from_url(url)
    conn.flushall()
    short = fill(conn, "tests.diagnostics.sleep", {"seconds": 1.0}, 6)
    long = fill(conn, "tests.diagnostics.sleep", {"seconds": 20.0}, 6)
    first = start(shipped(), {**env, "SHUTDOWN_GRACE": str(grace)}, logdir / "fault_sigterm.log")
    wait_for(lambda: conn.zcard("rq:wip:default") >= 12, 60)
    sent = time.monotonic()
    first.send_signal(signal.SIGTERM)
    first.wait(60)
    exited_after = time.monotonic() - sent
    at_exit = job_states(conn, short + long)
    second = start(shipped(), env, logdir / "fault_sigterm.log")
    wait_for(lambda: all(s == "finished" for s, _ in job_states(conn, short + long).values()), 120, 0.2)
    states = job_states(conn, short + long)
    stop(second)
    conn.close()
    return {"running_at_sigterm": 12, "shutdown_grace_s": grace, "exited_after_s": round(exited_after, 1),
            "finished_within_grace": sum(at_exit[i][0] == "finished" for i in short + long),
            "requeued_at_front": sum(at_exit[i] == ("queued", ["Interrupted"]) for i in long),
            "lost": sum(s != "finished" for s, _ in states.values())}


def round_trips(url: str, n: int) -> dict[str, float]:
    """Redis round trips per no-op job counted on the client (bench/profile.py), stock vs ours."""
    from bench import profile as prof
    from engine.queues import SERIALIZER, CatalogJob, make_queues
    from engine.settings import QUEUE_NAMES, Settings

    conn = Redis.from_url(url)
    settings = Settings.from_env({"REDIS_URL": url})
    queues = [make_queues(conn)[q] for q in QUEUE_NAMES]
    stock_rt, _ = prof.per_job(conn, lambda: prof.SimpleWorker(queues, connection=conn, serializer=SERIALIZER,
                                                               job_class=CatalogJob), n)
    ours_rt, _ = prof.per_job(conn, lambda: prof.StackWorker(QUEUE_NAMES, connection=conn, settings=settings,
                                                             threads=8), n)
    conn.close()
    return {"stock": round(sum(stock_rt.values()), 2), "ours_8_threads": round(sum(ours_rt.values()), 2)}


# --- HTTP -------------------------------------------------------------------------------------------------
def start_web(env: dict[str, str], port: int, logdir: Path) -> subprocess.Popen[bytes]:
    """gunicorn with the production config (web/gunicorn_conf.py), waiting until /healthz answers."""
    log = open(logdir / "gunicorn.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([str(BIN / "gunicorn"), "--config", "python:web.gunicorn_conf", "web:create_app()"],
                            cwd=ROOT, env={**env, "PORT": str(port)}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start; see bench/results/gunicorn.log")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def load(url: str, duration: float, body: str | None, logdir: Path) -> dict[str, Any]:
    """Requests per second from a separate process: wrk when installed, else bench/load.py."""
    wrk = shutil.which("wrk")
    if wrk:
        cmd = [wrk, "-t2", "-c8", f"-d{duration:.0f}s", url]
        if body is not None:
            script = logdir / "post.lua"
            script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            cmd[1:1] = ["-s", str(script)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
        errors = next((line for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line), "")
        return {"tool": "wrk -t2 -c8", "rps": rps, "errors": errors}
    cmd = [PY, str(ROOT / "bench" / "load.py"), url, "--connections", "8", "--duration", str(duration)]
    if body is not None:
        cmd += ["--body", body]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {"tool": "bench/load.py, 8 connections", **json.loads(out)}


def http_ratio(port: int, duration: float, logdir: Path, web_pid: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"type": "noop", "params": {}})
    pings: list[dict[str, Any]] = []
    posts: list[dict[str, Any]] = []
    for _ in range(3):  # alternate, then take medians: the machine's load drifts during a run
        for runs, url, data in ((pings, f"{base}/readyz", None), (posts, f"{base}/api/jobs", body)):
            cpu0 = procs.cpu_seconds(web_pid)
            row = load(url, duration, data, logdir)
            requests = row.get("requests") or row["rps"] * duration
            row["gunicorn_cpu_ms_per_request"] = round((procs.cpu_seconds(web_pid) - cpu0) * 1000 / requests, 3)
            runs.append(row)
    ping = sorted(pings, key=lambda r: r["rps"])[1]
    post = sorted(posts, key=lambda r: r["rps"])[1]
    return {"get_readyz": ping, "post_api_jobs": post, "ratio": round(post["rps"] / ping["rps"], 2),
            "rounds": {"get_rps": [r["rps"] for r in pings], "post_rps": [r["rps"] for r in posts]}}


def with_replica(primary: RedisServer, env: dict[str, str], logdir: Path, duration: float, jobs: int | None
                 ) -> dict[str, Any]:
    """The HTTP ratio with every submission WAITing for a replica, and no-op jobs/s with the replica attached."""
    with RedisServer(logdir / "replica", port=free_port(), extra=(f"replicaof 127.0.0.1 {primary.port}",)) as replica:
        if not wait_for(lambda: Redis.from_url(replica.url).info("replication")["master_link_status"] == "up", 30):
            raise RuntimeError("the replica did not sync; see bench/results/replica/redis.log")
        durable_env = {**env, "REDIS_WAIT_REPLICAS": "1"}
        Redis.from_url(primary.url).flushall()
        port = free_port()
        web = start_web(durable_env, port, logdir)
        try:
            http = http_ratio(port, duration, logdir, web.pid)
        finally:
            stop(web)
        noop = None if jobs is None else run_workers(
            ours(2, 8, "ours 2×8, replica attached"), primary.url, durable_env, "tests.diagnostics.noop", {}, jobs,
            logdir)
    return {"http": http, "noop": noop}


def latency(port: int, n: int) -> dict[str, Any]:
    """Submit a noop job and wait for its result, ``n`` times in a row on an idle stack; p50/p99 in ms."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"type": "noop", "params": {}})
    samples, mode = [], "?"
    for _ in range(n):
        start = time.perf_counter()
        conn.request("POST", "/api/jobs", body=body, headers={"Content-Type": "application/json"})
        job_id = json.loads(conn.getresponse().read())["id"]
        while True:
            asked = time.perf_counter()
            conn.request("GET", f"/api/jobs/{job_id}?wait=5")
            status = json.loads(conn.getresponse().read())["status"]
            if status in ("finished", "failed", "stopped", "canceled"):
                break
            if time.perf_counter() - asked < 0.05:  # answered at once: no long-poll here, so poll
                mode = "polling every 2 ms"
                time.sleep(0.002)
            else:
                mode = "?wait= long-poll"
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "jobs": n,
        "mode": mode if mode != "?" else "?wait=5 long-poll",  # every first read came back finished
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "max_ms": round(samples[-1], 2),
    }


def text_speed() -> dict[str, Any]:
    """bench/bench_text.py's run() (HTML → counts), if it is in this tree."""
    path = ROOT / "bench" / "bench_text.py"
    if not path.exists():
        return {"note": "not available in this tree"}
    spec = importlib.util.spec_from_file_location("bench_text", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run(size_mb=5.0)


# --- report -----------------------------------------------------------------------------------------------
def markdown(r: dict[str, Any]) -> str:
    lines = [f"# Benchmark ({r['when']})", "", f"Machine: {r['machine']}", f"Command: `{r['command']}`", ""]
    for title, key, short in (
        ("No-op jobs, results kept", "noop", "no-op jobs"),
        ("I/O-bound jobs, page answers after 100 ms (ours: count_words_at_url; peers: a plain GET)", "io", "I/O jobs"),
    ):
        if not r[key]:
            continue
        lines += [f"## {title}", "", "| setup | jobs | jobs/s | Redis cmds/job | Redis CPU ms/job | "
                  "worker CPU ms/job | worker peak RSS MB (sum) | statuses |", "|---|---|---|---|---|---|---|---|"]
        for row in r[key]:
            lines.append(f"| {row['setup']} | {row['jobs']} | {row['jobs_per_s']} | {row['redis_commands_per_job']} | "
                         f"{row['redis_cpu_ms_per_job']} | {row['worker_cpu_ms_per_job']} | "
                         f"{row['worker_peak_rss_mb_total']} | {row['statuses']} |")
        lines += ["", *peers.markdown(short, r["ratios"][key])]
        lines += [f"- {row['setup']}: `{row['command']}`" for row in r[key] if "command" in row] + [""]
    rt = r["round_trips"] or {"stock": "-", "ours_8_threads": "-"}
    lines += [f"Redis round trips per no-op job (client-side count, bench/profile.py): stock SimpleWorker "
              f"**{rt['stock']}**, our StackWorker with 8 threads **{rt['ours_8_threads']}** (one claim and one "
              "finish call serve every job that fits between them).", ""]
    if "http" in r:  # not with --jobs-only
        lines += sections(r)
    lines += ["## Peak RSS per process", "", "| role | process | peak RSS MB |", "|---|---|---|"]
    for role, plist in r["rss"].items():
        for p in plist:
            lines.append(f"| {role} | `{p['cmd']}` | {p['peak_rss_mb']} |")
    lines += ["", f"Total bench time: {r['bench_seconds']} s; load average (1, 5, 15 min) at the start "
              f"{r['load_average']['start']}, at the end {r['load_average']['end']}.", ""]
    return "\n".join(lines)


def sections(r: dict[str, Any]) -> list[str]:
    """Faults, HTTP, latency and HTML → counts."""
    lines: list[str] = []
    f = r["faults"] or {"sigkill": "-", "sigterm": "-"}
    lines += ["## Faults (the worker as shipped)", "", "| fault | figures |", "|---|---|",
              f"| SIGKILL the whole worker (supervisor and processes) | {f['sigkill']} |",
              f"| SIGTERM with jobs running | {f['sigterm']} |", ""]
    h = r["http"]
    lines += ["## HTTP (production gunicorn config, web/gunicorn_conf.py, WEB_CONCURRENCY=2)", "",
              "| endpoint | req/s | gunicorn CPU ms/request | tool |", "|---|---|---|---|",
              f"| GET /readyz (one Redis PING) | {h['get_readyz']['rps']} | "
              f"{h['get_readyz']['gunicorn_cpu_ms_per_request']} | {h['get_readyz']['tool']} |",
              f"| POST /api/jobs (noop) | {h['post_api_jobs']['rps']} | "
              f"{h['post_api_jobs']['gunicorn_cpu_ms_per_request']} | {h['post_api_jobs']['tool']} |",
              "", f"Ratio POST ÷ GET (medians of 3 alternating rounds): **{h['ratio']}**; rounds: {h['rounds']}", ""]
    lat = r["latency"]
    lines += ["## Submit → result latency through the API (idle stack)", "",
              f"{lat['jobs']} noop jobs one after another, {lat['mode']}: p50 **{lat['p50_ms']} ms**, "
              f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms.", ""]
    rep, plain = r["replica"], next((row for row in r["noop"] if row["setup"] == "ours 2×8"), None)
    lines += ["## With a replica: REDIS_WAIT_REPLICAS=1 (durable acknowledgement)", "",
              "| figure | no replica, no WAIT | replica, WAIT 1 |", "|---|---|---|",
              f"| POST /api/jobs req/s | {h['post_api_jobs']['rps']} | {rep['http']['post_api_jobs']['rps']} |",
              f"| GET /readyz req/s | {h['get_readyz']['rps']} | {rep['http']['get_readyz']['rps']} |",
              f"| POST ÷ GET | {h['ratio']} | {rep['http']['ratio']} |"]
    if plain and rep["noop"]:
        lines.append(f"| no-op jobs/s, ours 2×8 (finishes do not WAIT) | {plain['jobs_per_s']} | "
                     f"{rep['noop']['jobs_per_s']} |")
    return [*lines, "", "## HTML → counts", "", "```", json.dumps(r["text"], indent=1), "```", ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs and shorter loads (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--http-only", action="store_true",
                        help="only the HTTP ratio and the API latency (skips the worker and text sections)")
    parser.add_argument("--jobs-only", action="store_true",
                        help="only the job throughput against the peers and the round trips (skips faults, HTTP, "
                             "latency, text)")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
        "command": f"BENCH_ARGS='{' '.join(sys.argv[1:])}' make bench" if sys.argv[1:] else "make bench",
        "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
        "rss": {},
    }
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp), port=free_port()) as redis_server:
        url = redis_server.url
        result["machine"] += f", redis-server {Redis.from_url(url).info('server')['redis_version']}"
        pages = SlowPages(0.1)
        env = {**os.environ, "REDIS_URL": url, "APP_ENV": "development", "SECRET_KEY": "bench-secret-key-0123456789",
               "DIAGNOSTIC_JOBS": "1", "FETCH_ALLOW_NETWORKS": "127.0.0.0/8", "WORKER_MAX_JOBS": "0",
               "PYTHONPATH": str(ROOT), "WEB_CONCURRENCY": "2",
               "RATELIMIT_SUBMIT": "100000000 per second"}  # the load comes from one address: measure, not throttle
        n = lambda k: max(20, int(k * scale))  # noqa: E731

        # Stock runs os.getpid, a no-op it need not import: with our module, every forked horse would import
        # it again (pydantic and all), which is stock RQ's real cost but not its best case.
        # The peers run right after ours as shipped, on as many jobs: the machine's load drifts during a run.
        noop = {"func": "tests.diagnostics.noop", "kwargs": {}}
        result["noop"] = [] if args.http_only else [
            run_workers(stock(), url, env, "os.getpid", {}, n(500), out),
            run_workers(shipped(), url, env, noop["func"], {}, n(6000), out),
            *[peers.run(peer, "noop", [], n(6000), url, env, out) for peer in peers.setups("noop")],
            *[run_workers(s, url, env, noop["func"], {}, jobs, out) for s, jobs in (
                (ours(1, 32), n(4000)),
                (ours(2, 8), n(4000)),
                (ours(2, 1), n(3000)),
            )]]
        result["round_trips"] = {} if args.http_only else round_trips(url, n(500))
        io = ("jobs.wordcount.count_words_at_url", {"url": pages.url, "top": 5})
        result["io"] = [] if args.http_only else [
            run_workers(stock(), url, env, *io, n(40), out),
            run_workers(shipped(), url, env, *io, n(1500), out),
            *[peers.run(peer, "page", [pages.url], n(1500), url, env, out) for peer in peers.setups("io")],
            *[run_workers(s, url, env, *io, jobs, out) for s, jobs in ((ours(1, 32), n(1000)), (ours(2, 8), n(400)))]]
        result["ratios"] = {key: peers.ratios(result[key]) for key in ("noop", "io")}
        for key in ("noop", "io"):
            for row in result[key]:
                result["rss"][f"{key}: {row['setup']}"] = row.pop("processes")
        if args.jobs_only:
            return report(result, out, began)
        result["faults"] = {} if args.http_only else {
            "sigkill": fault_sigkill(url, env, out), "sigterm": fault_sigterm(url, env, out)}

        port = free_port()
        conn = Redis.from_url(url)
        conn.flushall()
        web = start_web(env, port, out)
        try:
            result["http"] = http_ratio(port, 4.0 * max(scale, 0.5), out, web.pid)
            conn.flushall()
            worker = subprocess.Popen(shipped().command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT, start_new_session=True)
            while len(Worker.all_keys(connection=conn)) < shipped().workers:
                time.sleep(0.05)
            time.sleep(0.5)
            result["latency"] = latency(port, n(300))
            result["rss"]["latency: worker as shipped"] = procs.peak_rss(worker.pid)
            stop(worker)
            result["rss"]["gunicorn"] = procs.peak_rss(web.pid)
        finally:
            stop(web)
        result["rss"]["redis-server"] = procs.peak_rss(redis_server.process.pid)
        result["replica"] = with_replica(redis_server, env, out, 4.0 * max(scale, 0.5),
                                         None if args.http_only else n(4000))
    result["text"] = {"note": "skipped (--http-only)"} if args.http_only else text_speed()
    return report(result, out, began)


def report(result: dict[str, Any], out: Path, began: float) -> int:
    """Write bench/results/latest.json and latest.md, and print the Markdown."""
    result["rss"]["bench driver (incl. page server)"] = procs.peak_rss(os.getpid())[:1]
    result["bench_seconds"] = round(time.monotonic() - began, 1)
    result["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    (out / "latest.json").write_text(json.dumps(result, indent=1))
    text = markdown(result)
    (out / "latest.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
