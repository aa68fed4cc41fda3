"""Claims against a real redis-server: one script takes jobs by priority and starts them, as RQ's readers show;
a duplicate queue entry of one job is never handed out twice."""

from __future__ import annotations

import pytest
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.worker import Worker

from engine.handoff import claim
from engine.queues import SERIALIZER, CatalogJob, make_queues

pytestmark = pytest.mark.integration
QUEUE = "rq:queue:default"


def put(redis, job_id: str, status: str, copies: int) -> None:
    """A job hash with ``status`` and ``copies`` entries of its id on the queue (as two parents can leave)."""
    redis.hset(f"{Job.redis_job_namespace_prefix}{job_id}", mapping={"status": status})
    for _ in range(copies):
        redis.rpush(QUEUE, job_id)


def take(redis, count: int, queues=("default",), worker: str = "w1") -> list[str]:
    all_queues = make_queues(redis)
    claims = claim(redis, [all_queues[name] for name in queues], count, worker, worker_key=f"rq:worker:{worker}",
                   executions_key=f"rq:worker:{worker}:executions", monitoring_interval=3)
    return [c.job_id for c in claims]


def test_two_entries_of_one_waiting_job_are_claimed_once(redis):
    put(redis, "agg", "queued", 2)
    put(redis, "other", "queued", 1)
    assert take(redis, 10) == ["agg", "other"]
    assert redis.llen(QUEUE) == 0


@pytest.mark.parametrize("status", ["started", "finished", "failed", "stopped", "canceled"])
def test_an_entry_of_a_job_already_running_or_ended_is_dropped(redis, status):
    put(redis, "agg", status, 1)
    put(redis, "next", "queued", 1)
    assert take(redis, 1) == ["next"]


def test_a_second_entry_claimed_later_is_dropped_because_the_first_claim_started_the_job(redis):
    put(redis, "agg", "queued", 2)
    assert take(redis, 1, worker="w1") == ["agg"]
    assert take(redis, 1, worker="w2") == []  # no window: the first claim made it 'started' in the same call


def test_claim_takes_high_first_and_starts_the_jobs_as_rqs_readers_show(redis):
    queues = make_queues(redis)
    low = queues["low"].enqueue_call(func="tests.diagnostics.noop")
    high = queues["high"].enqueue_call(func="tests.diagnostics.noop")
    assert take(redis, 1, queues=("high", "default", "low")) == [high.id]
    assert take(redis, 5, queues=("high", "default", "low")) == [low.id]
    for job, name in ((high, "high"), (low, "low")):
        fetched = CatalogJob.fetch(job.id, connection=redis, serializer=SERIALIZER)
        assert fetched.get_status() == "started" and fetched.worker_name == "w1" and fetched.started_at
        assert job.id in StartedJobRegistry(name, connection=redis).get_job_ids()
        assert redis.ttl(fetched.key) == -1  # RQ persists a started job's hash
    redis.hset("rq:worker:w1", "name", "w1")  # a worker hash, so RQ's reader can list its executions
    executions = Worker.find_by_key("rq:worker:w1", connection=redis).get_current_executions()
    assert sorted(e.job_id for e in executions) == sorted([high.id, low.id])
