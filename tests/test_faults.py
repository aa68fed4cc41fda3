"""Fault injection with real processes: worker SIGKILLs, Redis restarts and outages, load through the API.

Every test checks that each accepted job reaches a terminal state a user can read, and that none ran zero
times (the counting site sees every run). Figures are printed (run with -s): jobs, kills, lost, recovery.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from redis import Redis
from werkzeug.serving import make_server

from engine.embedded_redis import RedisServer
from engine.queues import fetch_job
from engine.recovery import ALIVE_KEY
from engine.settings import Settings
from engine.status import TERMINAL, job_view
from tests.faults import CountingSite, statuses, wait_all_terminal, wait_until
from web import create_app

pytestmark = pytest.mark.integration
RECOVERY_DEADLINE = 30.0
# 400 keeps make test inside its time budget on a shared 2-core machine; FAULT_LOAD_JOBS=2000 for the full run.
LOAD_JOBS = int(os.environ.get("FAULT_LOAD_JOBS", "400"))


@pytest.fixture
def site():
    with CountingSite() as server:
        yield server


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, which the test may stop and restart (AOF on, like the default)."""
    server = RedisServer(tmp_path / "own-redis").start()
    yield server
    server.stop()


def submit(client, url: str) -> str:
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": url}})
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def assert_every_job_ran_and_ended(redis: Redis, site: CountingSite, tokens: dict[str, str], seen: dict[str, str]):
    """Terminal, readable, and run at least once (a finished one completed its fetch)."""
    not_terminal = {job_id: status for job_id, status in seen.items() if status not in TERMINAL}
    assert not not_terminal, f"lost or stuck: {not_terminal}"
    for job_id, token in tokens.items():
        assert site.started[token] >= 1, f"job {job_id} never ran"
        view = job_view(fetch_job(redis, job_id))
        if view["status"] == "failed":
            assert view["error"]["message"], view


def worker_name(worker) -> str:
    return worker.process.args[worker.process.args.index("--name") + 1]


def running_jobs(redis: Redis, tokens: dict[str, str], name: str) -> list[str]:
    """The jobs this worker (its supervised processes are named ``<name>.<slot>.<n>``) is running now."""
    return [job_id for job_id in tokens
            if (redis.hget(f"rq:job:{job_id}", "worker_name") or b"").decode().startswith(f"{name}.")
            and statuses(redis, [job_id])[job_id] == "started"]


@pytest.mark.slow
def test_sigkill_workers_repeatedly_while_jobs_flow(redis, client, start_worker, site):
    # One job at a time per worker, so jobs are still flowing through all five kills.
    slow = {"FETCH_TIMEOUT": "60", "WORKER_PROCESSES": "1", "WORKER_THREADS": "1"}
    workers = [start_worker("--name", f"w{i}", extra_env=slow) for i in range(2)]
    tokens = {submit(client, site.url(f"f{i}", seconds=1.0)): f"f{i}" for i in range(60)}
    kills, interrupted, rng = 0, [], random.Random(5)
    for round_ in range(5):
        time.sleep(2.0)
        running = {worker_name(w): w for w in workers if w.process.poll() is None}
        busy = {name: running_jobs(redis, tokens, name) for name in running}
        # Kill a worker that is running a job when there is one: that is the case worth proving.
        name = rng.choice([n for n, held in busy.items() if held] or list(running))
        running[name].process.kill()  # the supervisor; its processes die with it (PR_SET_PDEATHSIG)
        killed_at, kills = time.monotonic(), kills + 1
        running[name].process.wait()
        time.sleep(0.2)
        # Interrupted: still "started" by the dead worker (one that ended in the instant before the kill was not).
        runs_before = {job_id: site.started[tokens[job_id]] for job_id in running_jobs(redis, tokens, name)}
        interrupted += [(job_id, runs, killed_at) for job_id, runs in runs_before.items()]
        workers.append(start_worker("--name", f"r{round_}", extra_env=slow))
    seen = wait_all_terminal(redis, list(tokens), timeout=150)
    assert_every_job_ran_and_ended(redis, site, tokens, seen)
    recoveries = []
    for job_id, runs, killed_at in interrupted:  # each job a kill interrupted ran again, and soon
        starts = site.started_at[tokens[job_id]]
        assert len(starts) > runs, f"job {job_id} was not re-run after its worker was killed"
        recoveries.append(starts[runs] - killed_at)
    lost = sum(status not in TERMINAL for status in seen.values())
    print(f"\nsigkill: jobs={len(tokens)} kills={kills} interrupted={len(recoveries)} lost={lost} "
          f"max_recovery={max(recoveries, default=0):.1f}s finished={list(seen.values()).count('finished')}")
    assert len(recoveries) >= 3, "too few kills landed on a running job: the test proved little"
    assert max(recoveries) < RECOVERY_DEADLINE


@pytest.mark.slow
def test_redis_sigterm_and_restart_with_aof_loses_no_queued_job(own_redis, env, start_worker, site):
    settings = Settings.from_env({**env, "REDIS_URL": own_redis.url})
    app = create_app({"SETTINGS": settings})
    client, redis = app.test_client(), Redis.from_url(own_redis.url)
    tokens = {submit(client, site.url(f"a{i}", seconds=0.2)): f"a{i}" for i in range(30)}
    worker = start_worker(extra_env={"REDIS_URL": own_redis.url})
    assert wait_until(lambda: sum(site.started.values()) >= 3, 30), worker.log()
    own_redis.stop()  # SIGTERM: Redis writes its AOF and exits, with most jobs still queued
    time.sleep(1.0)
    own_redis.start()
    seen = wait_all_terminal(redis, list(tokens), timeout=90)
    assert_every_job_ran_and_ended(redis, site, tokens, seen)
    assert set(seen.values()) == {"finished"}, seen
    assert worker.process.poll() is None, worker.log()  # the worker rode out the restart
    print(f"\nredis restart: jobs={len(tokens)} lost=0 finished={len(seen)}")
    redis.close()


def test_redis_outage_answers_503_fast_and_everything_resumes(own_redis, env, start_worker, site):
    settings = Settings.from_env({**env, "REDIS_URL": own_redis.url})
    app = create_app({"SETTINGS": settings})
    client, redis = app.test_client(), Redis.from_url(own_redis.url)
    worker = start_worker(extra_env={"REDIS_URL": own_redis.url, "WORKER_LOST_AFTER": "3"})
    queued_before = submit(client, site.url("o0"))
    assert wait_until(lambda: statuses(redis, [queued_before])[queued_before] == "finished", 30), worker.log()
    own_redis.stop()
    for request in (lambda: client.post("/api/jobs", json={"type": "count_words_at_url",
                                                          "params": {"url": site.url("o1")}}),
                    lambda: client.get(f"/api/jobs/{queued_before}")):
        started = time.monotonic()
        response = request()
        assert time.monotonic() - started < 1.0
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "redis_unavailable"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["status"] == "unavailable"
    time.sleep(2)
    own_redis.start()
    assert wait_until(lambda: client.get("/readyz").status_code == 200, 10)
    job_id = submit(client, site.url("o2"))
    assert wait_until(lambda: statuses(redis, [job_id])[job_id] == "finished", 30), worker.log()
    assert worker.process.poll() is None
    assert wait_until(lambda: redis.keys(ALIVE_KEY.format("*")), 10)  # the beacon is back too
    redis.close()


def test_worker_and_web_warn_when_redis_evicts(tmp_path, env, start_worker, caplog):
    with RedisServer(tmp_path / "lru", extra=("maxmemory-policy allkeys-lru",)) as server:
        with caplog.at_level(logging.WARNING, logger="web"):
            create_app({"SETTINGS": Settings.from_env({**env, "REDIS_URL": server.url})})
        assert "maxmemory-policy is 'allkeys-lru'" in caplog.text
        worker = start_worker("--burst", extra_env={"REDIS_URL": server.url})
        assert worker.process.wait(30) == 0
        assert "maxmemory-policy is 'allkeys-lru'" in worker.log()


@pytest.mark.slow
def test_load_through_the_api_loses_nothing(redis, env, start_worker, site):
    jobs, clients = LOAD_JOBS, 50
    settings = Settings.from_env({**env, "RATELIMIT_SUBMIT": "100000 per minute"})
    server = make_server("127.0.0.1", 0, create_app({"SETTINGS": settings}), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    workers = [start_worker() for _ in range(3)]
    codes: dict[int, int] = {}
    tokens: dict[str, str] = {}
    lock = threading.Lock()

    def client_run(n: int) -> None:
        with requests.Session() as session:
            for i in range(jobs // clients):
                token = f"l{n}-{i}"
                response = session.post(f"{base}/api/jobs", timeout=30, json={
                    "type": "count_words_at_url", "params": {"url": site.url(token)}})
                with lock:
                    codes[response.status_code] = codes.get(response.status_code, 0) + 1
                    if response.status_code == 202:
                        tokens[response.json()["id"]] = token

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_run, range(clients)))
    submitted = time.monotonic() - started
    try:
        seen = wait_all_terminal(redis, list(tokens), timeout=60 + jobs * 0.5)
    finally:
        server.shutdown()
    assert_every_job_ran_and_ended(redis, site, tokens, seen)
    five_xx = sum(count for code, count in codes.items() if code >= 500)
    print(f"\nload: jobs={jobs} clients={clients} accepted={len(tokens)} codes={codes} 5xx={five_xx} "
          f"lost=0 submit_time={submitted:.1f}s total={time.monotonic() - started:.1f}s")
    assert codes == {202: jobs}
    assert all(w.process.poll() is None for w in workers)
