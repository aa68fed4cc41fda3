"""Claims against a real redis-server: a duplicate queue entry of one job is never handed out twice."""

from __future__ import annotations

import pytest
from rq.job import Job

from engine.handoff import claim_many, intermediate_key

QUEUE = "rq:queue:default"


def put(redis, job_id: str, status: str, copies: int) -> None:
    """A job hash with ``status`` and ``copies`` entries of its id on the queue (as two parents can leave)."""
    redis.hset(f"{Job.redis_job_namespace_prefix}{job_id}", mapping={"status": status})
    for _ in range(copies):
        redis.rpush(QUEUE, job_id)


@pytest.mark.integration
def test_two_entries_of_one_waiting_job_are_claimed_once(redis):
    put(redis, "agg", "queued", 2)
    put(redis, "other", "queued", 1)
    claims = claim_many(redis, [QUEUE], 10)
    assert [c.job_id for c in claims] == ["agg", "other"]
    assert [i.decode() for i in redis.lrange(intermediate_key(QUEUE), 0, -1)] == ["agg", "other"]
    assert redis.llen(QUEUE) == 0


@pytest.mark.integration
@pytest.mark.parametrize("status", ["started", "finished", "failed", "stopped", "canceled"])
def test_an_entry_of_a_job_already_running_or_ended_is_dropped(redis, status):
    put(redis, "agg", status, 1)
    put(redis, "next", "queued", 1)
    assert [c.job_id for c in claim_many(redis, [QUEUE], 1)] == ["next"]
    assert [i.decode() for i in redis.lrange(intermediate_key(QUEUE), 0, -1)] == ["next"]
