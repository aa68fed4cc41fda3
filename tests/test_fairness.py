"""Fair shares against a real redis-server: one client's jobs past its cap are parked at claim time, a slot freed by
any ending lets the next one in, and the reaper's sweep frees slots that nothing released."""

from __future__ import annotations

import pytest
from rq.job import Job

from engine import fairness
from engine.handoff import HOLD, claim_many, give_back, intermediate_key

QUEUE = "rq:queue:default"
pytestmark = pytest.mark.integration


@pytest.fixture
def cap():
    """The claim's cap for this process, put back afterwards."""
    before = HOLD.client_cap
    HOLD.client_cap = 2
    yield 2
    HOLD.client_cap = before


def put(redis, job_id: str, client: str | None, status: str = "queued") -> None:
    """A queued job of ``client`` (None: an enqueue from inside the deployment) at the tail of the queue."""
    fields = {"status": status, "origin": "default", **({"client": client} if client else {})}
    redis.hset(Job.key_for(job_id), mapping=fields)
    redis.rpush(QUEUE, job_id)


def status(redis, job_id: str) -> str:
    return redis.hget(Job.key_for(job_id), "status").decode()


def ids(redis, key: str) -> list[str]:
    return [i.decode() for i in redis.lrange(key, 0, -1)]


def test_a_client_past_its_cap_is_parked_and_others_are_claimed(redis, cap):
    for n in range(4):
        put(redis, f"a{n}", "A")
    put(redis, "c0", "C")
    put(redis, "cli", None)
    claimed = [c.job_id for c in claim_many(redis, [QUEUE], 10)]
    assert claimed == ["a0", "a1", "c0", "cli"]
    assert ids(redis, fairness.parked_key("A")) == ["a2", "a3"]
    assert status(redis, "a2") == fairness.PARKED  # RQ's readers and our API see it held back
    assert redis.llen(QUEUE) == 0 and ids(redis, intermediate_key(QUEUE)) == claimed


def test_a_release_lets_the_oldest_parked_job_in_at_the_front(redis, cap):
    for n in range(4):
        put(redis, f"a{n}", "A")
    claim_many(redis, [QUEUE], 10)
    put(redis, "b0", "B")
    fairness.release(redis, "a0")
    assert ids(redis, QUEUE) == ["a2", "b0"] and status(redis, "a2") == "queued"
    fairness.release(redis, "a0")  # a second release of the same job frees nothing more
    assert ids(redis, QUEUE) == ["a2", "b0"]
    assert [c.job_id for c in claim_many(redis, [QUEUE], 10)] == ["a2", "b0"]


def test_a_claim_given_back_unstarted_frees_its_slot(redis, cap):
    for n in range(3):
        put(redis, f"a{n}", "A")
    claim_many(redis, [QUEUE], 10)
    assert give_back(redis, QUEUE, "a1")
    assert ids(redis, QUEUE) == ["a1", "a2"]  # the returned job first, then the next parked one
    assert redis.smembers(fairness.running_key("A")) == {b"a0"}


def test_a_parked_job_canceled_meanwhile_is_skipped(redis, cap):
    for n in range(4):
        put(redis, f"a{n}", "A")
    claim_many(redis, [QUEUE], 10)
    redis.hset(Job.key_for("a2"), "status", "canceled")
    fairness.release(redis, "a0")
    assert ids(redis, QUEUE) == ["a3"]


def test_the_sweep_frees_slots_nothing_released_and_refills_them(redis, cap):
    for n in range(5):
        put(redis, f"a{n}", "A")
    claim_many(redis, [QUEUE], 10)
    redis.hset(Job.key_for("a0"), "status", "finished")  # ended by a path that did not release (a plain rq worker)
    redis.delete(Job.key_for("a1"))  # or expired
    assert fairness.sweep(redis, 2) == (2, 2)
    assert ids(redis, QUEUE) == ["a2", "a3"]
    # Let in but not claimed yet, they hold no slot: the next sweep lets the last one in too (it is parked again
    # at its claim if the client is still at its cap).
    assert fairness.sweep(redis, 2) == (0, 1)
    assert ids(redis, QUEUE) == ["a4", "a2", "a3"]


def test_the_sweep_keeps_started_and_claimed_jobs_and_forgets_idle_clients(redis, cap):
    for n in range(3):
        put(redis, f"a{n}", "A")
    claim_many(redis, [QUEUE], 10)
    redis.hset(Job.key_for("a0"), "status", "started")
    redis.lrem(intermediate_key(QUEUE), 1, "a0")
    assert fairness.sweep(redis, 2) == (0, 0)  # a0 runs, a1 is claimed: both hold their slots
    fairness.release(redis, "a0", "a1")
    redis.hset(Job.key_for("a2"), "status", "finished")
    fairness.sweep(redis, 2)
    assert not redis.exists(fairness.CLIENTS_KEY)


def test_without_a_cap_nothing_is_parked_and_the_sweep_lets_parked_jobs_go(redis, cap):
    for n in range(3):
        put(redis, f"a{n}", "A")
    claim_many(redis, [QUEUE], 10)
    assert fairness.sweep(redis, 0) == (0, 1)
    HOLD.client_cap = 0
    assert [c.job_id for c in claim_many(redis, [QUEUE], 10)] == ["a2"]
