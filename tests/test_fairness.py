"""Fair shares against a real redis-server: one client's jobs past its cap are parked at claim time, a slot freed by
any ending lets the next one in, and the reaper's sweep frees slots that nothing released."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime

import pytest
from rq import Worker
from rq.job import Job

from engine import fairness
from engine.handoff import claim
from engine.queues import make_queues
from engine.records import Batch
from engine.settings import Settings
from engine.status import WAITING_FOR_SHARE
from tests.conftest import wait_for_job
from tests.faults import wait_until
from tests.slowserver import serving
from web import create_app

QUEUE = "rq:queue:default"
pytestmark = pytest.mark.integration


def put(redis, job_id: str, client: str | None, status: str = "queued") -> None:
    """A queued job of ``client`` (None: an enqueue from inside the deployment) at the tail of the queue."""
    fields = {"status": status, "origin": "default", **({"client": client} if client else {})}
    redis.hset(Job.key_for(job_id), mapping=fields)
    redis.rpush(QUEUE, job_id)


def take(redis, cap: int = 2) -> list[str]:
    """Claim (and start) what one claim call hands a worker with ten free threads under ``cap``."""
    queue = make_queues(redis)["default"]
    return [c.job_id for c in claim(redis, [queue], 10, "w1", worker_key="rq:worker:w1",
                                    executions_key="rq:worker:w1:executions", monitoring_interval=3, client_cap=cap)]


def status(redis, job_id: str) -> str:
    return redis.hget(Job.key_for(job_id), "status").decode()


def ids(redis, key: str) -> list[str]:
    return [i.decode() for i in redis.lrange(key, 0, -1)]


def test_a_client_past_its_cap_is_parked_and_others_are_claimed(redis):
    for n in range(4):
        put(redis, f"a{n}", "A")
    put(redis, "c0", "C")
    put(redis, "cli", None)
    claimed = take(redis)
    assert claimed == ["a0", "a1", "c0", "cli"]
    assert ids(redis, fairness.parked_key("A")) == ["a2", "a3"]
    assert status(redis, "a2") == fairness.PARKED  # RQ's readers and our API see it held back
    assert redis.llen(QUEUE) == 0 and [status(redis, i) for i in claimed] == ["started"] * 4
    assert redis.smembers(fairness.running_key("A")) == {b"a0", b"a1"}


def test_a_release_lets_the_oldest_parked_job_in_at_the_front(redis):
    for n in range(4):
        put(redis, f"a{n}", "A")
    take(redis)
    put(redis, "b0", "B")
    fairness.release(redis, "a0")
    assert ids(redis, QUEUE) == ["a2", "b0"] and status(redis, "a2") == "queued"
    fairness.release(redis, "a0")  # a second release of the same job frees nothing more
    assert ids(redis, QUEUE) == ["a2", "b0"]
    assert take(redis) == ["a2", "b0"]


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "result_ttl_0"])
def test_the_finish_script_frees_the_slots_of_the_jobs_it_ends(redis, kept):
    for n in range(4):
        put(redis, f"a{n}", "A")
    take(redis)
    batch = Batch(redis)
    batch.ended.append("a0")
    if kept:
        batch.pipe.hset(Job.key_for("a0"), "status", "finished")
    else:  # a job kept 0 s: its records delete its hash, yet its slot is freed (freed first, in the same call)
        batch.pipe.delete(Job.key_for("a0"))
    batch.send()
    assert ids(redis, QUEUE) == ["a2"] and status(redis, "a2") == "queued"
    assert redis.smembers(fairness.running_key("A")) == {b"a1"}


def test_a_parked_job_canceled_meanwhile_is_skipped(redis):
    for n in range(4):
        put(redis, f"a{n}", "A")
    take(redis)
    redis.hset(Job.key_for("a2"), "status", "canceled")
    fairness.release(redis, "a0")
    assert ids(redis, QUEUE) == ["a3"]


def test_the_sweep_frees_slots_nothing_released_and_refills_them(redis):
    for n in range(5):
        put(redis, f"a{n}", "A")
    take(redis)
    redis.hset(Job.key_for("a0"), "status", "finished")  # ended by a path that did not release (a plain rq worker)
    redis.delete(Job.key_for("a1"))  # or expired
    assert fairness.sweep(redis, 2) == (2, 2)
    assert ids(redis, QUEUE) == ["a2", "a3"]
    # Let in but not claimed yet, they hold no slot: the next sweep lets the last one in too (it is parked again
    # at its claim if the client is still at its cap).
    assert fairness.sweep(redis, 2) == (0, 1)
    assert ids(redis, QUEUE) == ["a4", "a2", "a3"]


def test_the_sweep_keeps_started_jobs_and_forgets_idle_clients(redis):
    for n in range(3):
        put(redis, f"a{n}", "A")
    take(redis)
    assert fairness.sweep(redis, 2) == (0, 0)  # a0 and a1 run: both hold their slots
    fairness.release(redis, "a0", "a1")
    redis.hset(Job.key_for("a2"), "status", "finished")
    fairness.sweep(redis, 2)
    assert not redis.exists(fairness.CLIENTS_KEY)


def test_without_a_cap_nothing_is_parked_and_the_sweep_lets_parked_jobs_go(redis):
    for n in range(3):
        put(redis, f"a{n}", "A")
    take(redis)
    assert fairness.sweep(redis, 0) == (0, 1)
    assert take(redis, cap=0) == ["a2"]


# --- real worker processes ----------------------------------------------------------------------------------------

FLOODERS = ({"REMOTE_ADDR": "203.0.113.1"}, {"REMOTE_ADDR": "203.0.113.2"})
THIRD = {"REMOTE_ADDR": "198.51.100.3"}


def client_of(visitor: dict[str, str]) -> str:
    """The client key an anonymous visitor's jobs carry (web.access.client_key)."""
    return f"address:{visitor['REMOTE_ADDR']}"


@pytest.fixture
def slow_server():
    with serving() as server:
        yield server


@pytest.fixture
def visitors(env, redis):
    """A web client whose requests come from whichever address a test gives, under a roomy rate limit."""
    settings = Settings.from_env({**env, "RATELIMIT_SUBMIT": "1000 per minute"})
    return create_app({"SETTINGS": settings, "TESTING": True}).test_client()


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def a_worker_is_up(redis) -> bool:
    return bool(Worker.all(connection=redis))


@pytest.mark.parametrize("cap", [2, 0], ids=["capped", "uncapped"])
def test_a_flood_from_two_clients_does_not_hold_up_a_third_clients_job(cap, visitors, redis, start_worker,
                                                                       slow_server, page_server):
    # Flood attempts outlast the test (FETCH_TIMEOUT 60 s), so running and parked jobs hold still while it looks.
    worker = start_worker("--processes", "0", "--threads", "6",
                          extra_env={"CLIENT_CONCURRENCY": str(cap), "FETCH_TIMEOUT": "60"})
    assert wait_until(lambda: a_worker_is_up(redis), 30), worker.log()
    hanging = [{"url": slow_server.url(60)} for _ in range(20)]
    for flooder in FLOODERS:
        response = visitors.post("/api/batches", json={"type": "count_words_at_url", "items": hanging},
                                 environ_base=flooder)
        assert response.status_code == 202
    assert wait_until(lambda: slow_server.requests >= (4 if cap else 6), 10)  # the flood is running
    job_id = visitors.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": page_server.url("/")}},
                           environ_base=THIRD).get_json()["id"]
    if not cap:  # the control: without the cap the flood holds every thread, and the third client waits
        time.sleep(3)
        assert visitors.get(f"/api/jobs/{job_id}").get_json()["status"] == "queued"
        return
    job = wait_for_job(visitors, job_id, timeout=20)
    assert job["status"] == "finished" and job["result"]["total_words"] > 0
    waited = seconds_between(job["enqueued_at"], job["started_at"])
    assert waited < 2.0, f"the third client's job waited {waited:.2f} s in the queue"
    running = [redis.scard(fairness.running_key(client_of(f))) for f in FLOODERS]
    assert running == [cap, cap]
    held_back = [redis.hget(f"rq:job:{i.decode()}", "status") for i in redis.lrange(
        fairness.parked_key(client_of(FLOODERS[0])), 0, 0)]
    assert held_back == [fairness.PARKED.encode()]
    parked_view = visitors.get(f"/api/jobs/{redis.lindex(fairness.parked_key(client_of(FLOODERS[0])), 0).decode()}")
    assert parked_view.get_json()["status"] == "queued"
    assert parked_view.get_json()["waiting"] == WAITING_FOR_SHARE
    print(f"\nflood of 2 x 20 hanging pages, cap {cap}: third client's job waited {waited:.2f} s")


def test_a_killed_workers_slots_come_back_and_its_clients_jobs_all_run(visitors, redis, start_worker, slow_server):
    fair = {"CLIENT_CONCURRENCY": "1", "WORKER_LOST_AFTER": "3"}
    first = start_worker("--processes", "0", "--threads", "2", extra_env=fair)
    assert wait_until(lambda: a_worker_is_up(redis), 30), first.log()
    ids = [visitors.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": slow_server.url(2)}},
                         environ_base=THIRD).get_json()["id"] for _ in range(3)]
    assert wait_until(lambda: redis.llen(fairness.parked_key(client_of(THIRD))) == 2, 10)
    assert wait_until(lambda: slow_server.requests == 1, 10)
    os.killpg(first.process.pid, signal.SIGKILL)  # mid-job: its slot is held by a job nobody runs any more
    start_worker("--processes", "0", "--threads", "2", extra_env=fair)
    jobs = [wait_for_job(visitors, job_id, timeout=60) for job_id in ids]
    assert [job["status"] for job in jobs] == ["finished"] * 3
    starts = sorted((job["started_at"], job["ended_at"]) for job in jobs)
    assert all(later[0] >= earlier[1] for earlier, later in zip(starts, starts[1:], strict=False))  # one at a time
    assert not redis.exists(fairness.running_key(client_of(THIRD)))


def test_a_parked_job_reads_as_waiting_and_can_be_canceled(visitors, redis):
    job = {"type": "count_words_at_url", "params": {"url": "https://example.com/"}}
    ids = [visitors.post("/api/jobs", json=job, environ_base=THIRD).get_json()["id"] for _ in range(3)]
    take(redis)
    parked = visitors.get(f"/api/jobs/{ids[2]}").get_json()
    assert (parked["status"], parked["waiting"]) == ("queued", WAITING_FOR_SHARE)
    assert visitors.get(f"/api/jobs/{ids[0]}").get_json()["waiting"] is None
    canceled = visitors.post(f"/api/jobs/{ids[2]}/cancel", json={}, environ_base=THIRD)
    assert canceled.status_code == 200 and canceled.get_json()["status"] == "canceled"
    fairness.release(redis, ids[0])
    assert redis.llen(QUEUE) == 0  # the canceled job is not let in
