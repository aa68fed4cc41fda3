"""Abandoned jobs are re-run within seconds, claimed-but-unrun ones too; SIGTERM loses nothing."""

from __future__ import annotations

import dataclasses
import signal
import time

import pytest

from engine import catalog
from engine.enqueue import enqueue
from engine.handoff import claim
from engine.queues import fetch_job, make_queues
from engine.recovery import ALIVE_KEY, MANAGED_KEY, Reaper
from engine.status import job_view
from tests.faults import CountingSite, wait_until

pytestmark = pytest.mark.integration
WORDS = catalog.get("count_words_at_url")
RECOVERY_DEADLINE = 30.0  # our promise for detecting and re-running an abandoned job (WORKER_LOST_AFTER + slack)


@pytest.fixture
def site():
    with CountingSite() as server:
        yield server


@pytest.fixture
def slow_env():
    return {"FETCH_TIMEOUT": "60"}  # jobs here trickle their page for several seconds


def submit(redis, settings, url: str, queue: str = "default", retries: bool = True) -> str:
    job_type = WORDS if retries else dataclasses.replace(WORDS, retry_intervals=())
    return enqueue(redis, job_type, {"url": url}, settings, queue=queue)["id"]


def view(redis, job_id: str) -> dict:
    return job_view(fetch_job(redis, job_id))


def test_sigkilled_worker_job_is_rerun_by_a_running_worker_within_the_detection_bound(
        redis, settings, start_worker, site, slow_env):
    workers = {name: start_worker("--name", name, extra_env=slow_env) for name in ("one", "two")}
    # Both beat before the job exists, so the survivor's reaper is ready by the time the victim's beacon lapses.
    assert wait_until(lambda: all(redis.keys(ALIVE_KEY.format(f"{name}.*")) for name in workers), 30), [
        w.log() for w in workers.values()]
    job_id = submit(redis, settings, site.url("k1", seconds=20))
    assert wait_until(lambda: site.started["k1"] == 1, 30)
    victim = fetch_job(redis, job_id).worker_name.split(".")[0]  # its supervisor's name
    workers[victim].process.kill()
    killed_at = time.monotonic()
    assert wait_until(lambda: site.started["k1"] == 2, RECOVERY_DEADLINE, pause=0.05)
    recovery = site.started_at["k1"][1] - killed_at
    # docs/reliability.md: the beacon lapses within WORKER_LOST_AFTER of the kill and the reaper, on the beacon's
    # 2 s tick, passes every 4 s; 5 s more for the survivor to claim the job and fetch on a loaded machine.
    assert recovery < settings.worker_lost_after + 4 + 5, f"re-run {recovery:.1f} s after the kill"
    print(f"\nSIGKILL: re-run {recovery:.1f} s after the kill")
    assert wait_until(lambda: view(redis, job_id)["status"] == "finished", 60)
    job = fetch_job(redis, job_id)
    assert job.meta["interruptions"] == ["WorkerLost"]
    assert wait_until(lambda: site.hits["k1"] == 1, 5)  # the killed run's horse died with its worker


def test_abandoned_job_without_retries_fails_with_clear_error(redis, settings, start_worker, site, slow_env):
    first = start_worker(extra_env=slow_env)
    job_id = submit(redis, settings, site.url("k2", seconds=4), retries=False)
    assert wait_until(lambda: site.started["k2"] == 1, 30), first.log()
    first.process.kill()
    start_worker(extra_env=slow_env)
    assert wait_until(lambda: view(redis, job_id)["status"] == "failed", RECOVERY_DEADLINE + 5, pause=0.1)
    error = view(redis, job_id)["error"]
    assert error["type"] == "WorkerLost"
    assert "worker running this job stopped" in error["message"]
    assert site.started["k2"] == 1


def test_job_claimed_by_a_worker_that_died_at_once_is_rerun(redis, settings, start_worker, site):
    job_id = submit(redis, settings, site.url("k3"), queue="low")
    # What a worker leaves when it dies right after its claim call: the job started, with an execution of its own.
    queues = make_queues(redis)
    taken = claim(redis, [queues[name] for name in ("high", "default", "low")], 4, "ghost",
                  worker_key="rq:worker:ghost", executions_key="rq:worker:ghost:executions", monitoring_interval=3)
    assert [c.job_id for c in taken] == [job_id] and view(redis, job_id)["status"] == "started"
    redis.sadd(MANAGED_KEY, "ghost")  # a worker of ours: judged by its beacon, which is silent
    start_worker(extra_env={"WORKER_LOST_AFTER": "3"})
    assert wait_until(lambda: view(redis, job_id)["status"] == "finished", RECOVERY_DEADLINE, pause=0.1)
    assert wait_until(lambda: site.hits["k3"] == 1, 5)
    assert fetch_job(redis, job_id).meta["interruptions"] == ["WorkerLost"]


def test_sigterm_lets_a_short_job_finish(redis, settings, start_worker, site, slow_env):
    worker = start_worker(extra_env={**slow_env, "SHUTDOWN_GRACE": "20"})
    job_id = submit(redis, settings, site.url("t1", seconds=2))
    assert wait_until(lambda: site.started["t1"] == 1, 30), worker.log()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0, worker.log()
    assert view(redis, job_id)["status"] == "finished"
    assert wait_until(lambda: site.hits["t1"] == 1, 5)


def test_sigterm_requeues_a_job_longer_than_the_grace_period(redis, settings, start_worker, site, slow_env):
    first = start_worker(extra_env={**slow_env, "SHUTDOWN_GRACE": "2"})
    job_id = submit(redis, settings, site.url("t2", seconds=6))
    assert wait_until(lambda: site.started["t2"] == 1, 30), first.log()
    sent = time.monotonic()
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(30) == 0, first.log()
    assert time.monotonic() - sent < 2 + 3 + 5  # grace + one monitoring tick + slack: it did not wait 6 s
    job = view(redis, job_id)
    assert job["status"] == "queued" and redis.lrange("rq:queue:default", 0, 0) == [job_id.encode()]
    assert fetch_job(redis, job_id).meta["interruptions"] == ["Interrupted"]
    start_worker(extra_env=slow_env)
    assert wait_until(lambda: view(redis, job_id)["status"] == "finished", 60), view(redis, job_id)
    assert site.started["t2"] == 2 and wait_until(lambda: site.hits["t2"] == 1, 5)


def test_reaper_leaves_jobs_of_live_workers_alone(redis, settings, start_worker, site, slow_env):
    worker = start_worker("--name", "alive", extra_env=slow_env)
    job_id = submit(redis, settings, site.url("r1", seconds=3))
    assert wait_until(lambda: site.started["r1"] == 1, 30), worker.log()
    assert redis.keys(ALIVE_KEY.format("alive.*"))  # each supervised process beats as <name>.<slot>.<n>
    assert Reaper(redis).run() == {"requeued": 0, "failed": 0}
    assert wait_until(lambda: view(redis, job_id)["status"] == "finished", 30)
    assert site.started["r1"] == 1
