"""A Sentinel failover under load loses no acknowledged job: real primary, replica, three Sentinels, a worker.

Submissions and jobs run continuously through the API (REDIS_URL=redis+sentinel://…). Replication is
asynchronous, so the replica lags when the primary dies: its link is cut a second before the SIGKILL (the
replica paused, as an overloaded host or network would), and only WAIT tells the API which writes it has.
Then the counts: acknowledged submissions lost (0), acknowledged jobs that did not finish (0), jobs run twice
(printed), 5xx other than 503 (0) and seconds until /readyz answers 200 again (printed, at most 20).

``FAILOVER_WAIT_REPLICAS=0`` runs the same with WAIT off, to see it fail.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from rq.executions import Execution

from engine import catalog
from engine.enqueue import enqueue
from engine.queues import fetch_job, make_queues
from engine.recovery import PRIMARY_CHANGED, requeue_orphans
from engine.settings import PROJECT_ROOT, Settings
from engine.status import job_status, job_view
from tests.conftest import TEST_PASSWORD
from tests.faults import CountingSite, wait_until
from tests.sentinels import SentinelSet, sigkill
from web import create_app

pytestmark = pytest.mark.integration
READY_WITHIN = 20.0
WAIT_REPLICAS = os.environ.get("FAILOVER_WAIT_REPLICAS", "auto")


@dataclass
class Load:
    """What the submitting clients saw."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # job id → its page token
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # 5xx other than 503
    missing_retry_after: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit_continuously(app, site: CountingSite, load: Load, prefix: str) -> None:
    client = app.test_client()
    for number in range(10**6):
        if load.stop.is_set():
            return
        token = f"{prefix}{number}"
        response = client.post("/api/jobs", json={"type": "count_words_at_url",
                                                  "params": {"url": site.url(token, seconds=0.2)}})
        with load.lock:
            load.statuses[response.status_code] += 1
            if response.status_code == 202:
                load.acknowledged[response.get_json()["id"]] = token
            elif response.status_code == 503:
                load.missing_retry_after += "Retry-After" not in response.headers
            elif response.status_code >= 500:
                load.server_errors.append(f"{response.status_code} {response.get_data(as_text=True)[:200]}")
        time.sleep(0.05)  # about 40 submissions a second in all: the worker keeps up, so jobs run at the kill


@pytest.mark.parametrize("extra", [{}, {"delay_seconds": 60}, {"idempotency": True}, {"items": 3}],
                         ids=["queued", "scheduled", "idempotent", "batch"])
def test_a_submission_no_replica_confirms_is_refused_with_503_and_leaves_nothing(env, redis, extra):
    # The session's Redis has no replica: asking for one is what a primary whose replica fell behind looks like.
    settings = Settings.from_env({**env, "REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "20"})
    client = create_app({"SETTINGS": settings}).test_client()
    params = {"url": "http://127.0.0.1:9/"}
    path, body = ("/api/batches", {"type": "count_words_at_url", "items": [params] * extra["items"]}) if (
        "items" in extra) else ("/api/jobs", {"type": "count_words_at_url", "params": params})
    body.update((name, value) for name, value in extra.items() if name not in ("idempotency", "items"))
    headers = {"Idempotency-Key": "once"} if extra.get("idempotency") else {}
    response = client.post(path, headers=headers, json=body)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"].isdigit()
    assert response.get_json()["error"]["code"] == "redis_unavailable"
    assert "replica" in response.get_json()["error"]["message"]
    leftovers = [key for key in redis.keys("*") if key.startswith((b"rq:job:", b"stack:idempotency:", b"stack:batch"))]
    assert not leftovers and not redis.zcard("stack:jobs:recent")
    assert not redis.llen("rq:queue:default") and not redis.zcard("rq:scheduled:default")
    quotas = redis.keys("stack:quota:*")
    assert quotas and all(int(redis.get(key)) == 0 for key in quotas)  # charged, then given back


def test_after_a_failover_a_worker_reruns_jobs_it_finished_on_the_old_primary(redis, settings):
    queue = make_queues(redis)["default"]
    job_type = catalog.get("count_words_at_url")
    running, finished_before, other_workers = (fetch_job(redis, enqueue(
        redis, job_type, job_type.validate({"url": "http://127.0.0.1:9/"}), settings, queue="default")["id"])
        for _ in range(3))
    # What the promoted replica holds: all three started, their starts replicated, no end recorded.
    for job, worker_name in ((running, "w1"), (finished_before, "w1"), (other_workers, "w2")):
        redis.lrem(queue.key, 0, job.id)
        with redis.pipeline() as pipe:
            job.prepare_for_execution(worker_name, pipeline=pipe)
            Execution.create(job, 60, pipe, worker_name=worker_name)
            pipe.execute()
    assert requeue_orphans(redis, "w1", lambda: {running.id}) == 1
    assert [job_id.decode() for job_id in redis.lrange(queue.key, 0, -1)] == [finished_before.id]
    again = fetch_job(redis, finished_before.id)
    assert job_status(again) == "queued" and again.meta["interruptions"] == [PRIMARY_CHANGED]
    assert again.retries_left == finished_before.retries_left > 0  # it did not fail: no retry spent
    assert job_status(fetch_job(redis, running.id)) == "started"  # still running here: its end will come
    assert job_status(fetch_job(redis, other_workers.id)) == "started"  # another worker's: not ours to judge


@pytest.fixture
def sentinel_set(tmp_path):
    with SentinelSet(tmp_path / "sentinel-set") as sentinels:
        yield sentinels


def test_sigkill_of_the_primary_loses_no_acknowledged_job(sentinel_set, env, start_worker):
    env = {**env, "REDIS_URL": sentinel_set.url, "REDIS_WAIT_REPLICAS": WAIT_REPLICAS, "WORKER_LOST_AFTER": "3",
           "RATELIMIT_SUBMIT": "100000 per minute"}
    app = create_app({"SETTINGS": Settings.from_env(env)})
    redis, web = app.extensions["redis"], app.test_client()
    worker = start_worker(extra_env={**env, "WORKER_PROCESSES": "1", "WORKER_THREADS": "8"})
    load = Load()
    with CountingSite() as site:
        submitters = [threading.Thread(target=submit_continuously, args=(app, site, load, f"c{n}-"))
                      for n in range(2)]
        for thread in submitters:
            thread.start()
        # Steady state first: the worker keeps up (a backlog from its start-up would all run in the lag window).
        assert wait_until(lambda: sum(site.hits.values()) >= 10 and redis.llen("rq:queue:default") < 5, 30), \
            worker.log()
        # Jobs that run across the failover: started before the replica falls behind, still running after.
        for number in range(4):
            response = web.post("/api/jobs", json={"type": "count_words_at_url",
                                                   "params": {"url": site.url(f"long{number}", seconds=4)}})
            assert response.status_code == 202, response.get_data(as_text=True)
            load.acknowledged[response.get_json()["id"]] = f"long{number}"
        assert wait_until(lambda: all(site.started[f"long{n}"] for n in range(4)), 10), worker.log()
        # And one delayed job that falls due in the gap: the scheduler must move it soon after the promotion.
        response = web.post("/api/jobs", json={"type": "count_words_at_url", "delay_seconds": 2,
                                               "params": {"url": site.url("delayed")}})
        assert response.status_code == 202, response.get_data(as_text=True)
        delayed = response.get_json()["id"]
        load.acknowledged[delayed] = "delayed"
        due = redis.zscore("rq:scheduled:default", delayed)
        # The replica falls behind: paused, its link cut; the primary takes writes it will never pass on.
        os.kill(sentinel_set.replica.process.pid, signal.SIGSTOP)
        sentinel_set.client(sentinel_set.primary.port).client_kill_filter(_type="replica")
        time.sleep(1.0)
        killed_at = sigkill(sentinel_set.primary)
        os.kill(sentinel_set.replica.process.pid, signal.SIGCONT)
        assert wait_until(lambda: web.get("/readyz").status_code == 200, 60, pause=0.1), "never ready again"
        ready_after, back = time.monotonic() - killed_at, time.time()
        assert sentinel_set.primary_port() == sentinel_set.replica.port
        doors = every_door_reads_the_new_primary(web, env)
        time.sleep(3.0)  # submissions and jobs go on against the new primary
        load.stop.set()
        for thread in submitters:
            thread.join()
        acknowledged = dict(load.acknowledged)
        wait_until(lambda: all(_status(redis, job_id) in ("finished", "missing") for job_id in acknowledged), 30,
                   pause=0.5)
        seen = {job_id: _status(redis, job_id) for job_id in acknowledged}
        runs = {job_id: site.hits[token] for job_id, token in acknowledged.items()}
    # Counted from when it was due or when Redis was back, whichever came last: the gap itself is ready_after's.
    delayed_late = _started(redis, delayed) - max(due, back) if seen[delayed] == "finished" else float("nan")
    lost = sorted(job_id for job_id, status in seen.items() if status == "missing")
    unfinished = {job_id: status for job_id, status in seen.items() if status not in ("finished", "missing")}
    twice = sum(count > 1 for count in runs.values())
    print(f"\nfailover (WAIT replicas={WAIT_REPLICAS}): acknowledged={len(acknowledged)} lost={len(lost)} "
          f"unfinished={len(unfinished)} ran_twice={twice} answers={dict(load.statuses)} "
          f"other_5xx={len(load.server_errors)} ready_after={ready_after:.1f}s delayed_job_late={delayed_late:.1f}s")
    assert not lost, f"{len(lost)} acknowledged submission(s) lost with the primary: {lost[:5]}"
    assert not unfinished, (unfinished, worker.log()[-3000:])
    assert not load.server_errors, load.server_errors[:5]
    assert load.missing_retry_after == 0
    assert load.statuses[503] > 0, "no submission met the failover: the test proved nothing"
    assert ready_after <= READY_WITHIN
    assert delayed_late <= 5.0, "the scheduler did not move the delayed job soon after the failover"
    assert worker.process.poll() is None, worker.log()
    assert all(doors.values()), doors
    assert "Redis is a different server now" in worker.log()  # it checked for ends lost with the old primary


def every_door_reads_the_new_primary(web, env: dict[str, str]) -> dict[str, bool]:
    """The dashboard (built before the failover), the CLI and RQ's own CLI, all through the Sentinel URL."""
    login = {"Authorization": "Basic " + base64.b64encode(f"admin:{TEST_PASSWORD}".encode()).decode()}
    queues = web.get("/rq/0/data/queues.json", headers=login)
    cli = subprocess.run([sys.executable, "-m", "cli", "stats", "--json"], cwd=PROJECT_ROOT,
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    rq_info = subprocess.run([str(Path(sys.executable).parent / "rq"), "info", "-c", "engine.rq_config", "default"],
                             cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    return {
        "dashboard": queues.status_code == 200 and "default" in queues.get_data(as_text=True),
        "cli": cli.returncode == 0 and "default" in json.loads(cli.stdout or "{}").get("queues", {}),
        "rq info": rq_info.returncode == 0 and "default" in rq_info.stdout,
    }


def _started(redis, job_id: str) -> float:
    return datetime.fromisoformat(job_view(fetch_job(redis, job_id))["started_at"]).timestamp()


def _status(redis, job_id: str) -> str:
    job = fetch_job(redis, job_id)
    return "missing" if job is None else job_status(job)
