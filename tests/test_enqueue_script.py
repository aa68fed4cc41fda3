"""The enqueue's script writes exactly what RQ's own MULTI writes, and a refused charge writes nothing."""

from __future__ import annotations

import pytest
from redis import Redis

from engine import catalog, enqueue, enqueue_script, events, queues, status
from engine.settings import Settings

PARAMS = {"url": "https://example.com/", "top": 5}


def recorded_enqueue(redis: Redis) -> list[tuple[tuple[object, ...], dict[str, object]]]:
    """The commands an immediate enqueue queues: RQ's ``enqueue_call(..., pipeline=)`` plus our index and counter."""
    queue = queues.make_queues(redis)["default"]
    with redis.pipeline() as pipe:
        job = queue.enqueue_call(func=catalog.get("count_words_at_url").func_path, kwargs=PARAMS, pipeline=pipe,
                                 job_id="pinned", timeout=60, result_ttl=600, failure_ttl=900, ttl=300,
                                 meta={"type": "count_words_at_url"}, description="count words")
        enqueue.index(pipe, job)
        events.on_submit(job, pipe)
        return list(pipe.command_stack)


def snapshot(redis: Redis) -> dict[bytes, tuple[bytes, bool]]:
    """Every key's serialised value and whether it expires."""
    return {key: (redis.dump(key), redis.ttl(key) > 0) for key in redis.keys("*")}


def replay(redis: Redis, stack: list, charge: enqueue_script.Charge | None = None) -> None:
    with redis.pipeline() as pipe:
        pipe.multi()
        pipe.command_stack.extend(stack)
        enqueue_script.run(redis, pipe, charge)


def test_the_script_writes_byte_for_byte_what_the_multi_writes(redis):
    stack = recorded_enqueue(redis)
    assert stack[0][0][0] == "SADD" and any(args[0] == "RPUSH" for args, _ in stack)  # RQ's commands
    with redis.pipeline() as pipe:
        pipe.multi()
        pipe.command_stack.extend(stack)
        pipe.execute()
    by_multi = snapshot(redis)
    assert {b"rq:queues", b"rq:queue:default", b"rq:job:pinned", b"stack:jobs:recent"} <= set(by_multi)
    redis.flushall()
    replay(redis, stack)
    assert snapshot(redis) == by_multi


def test_an_enqueue_through_the_script_reads_back_through_rq(redis, env):
    settings = Settings.from_env(env)
    queue = queues.make_queues(redis)["default"]
    job = enqueue.enqueue(queue, catalog.get("count_words_at_url"), PARAMS, settings)
    assert queue.job_ids == [job.id] and redis.sismember("rq:queues", "rq:queue:default")
    fetched = queues.fetch_job(redis, job.id)
    assert fetched is not None and fetched.kwargs == PARAMS and status.job_status(fetched) == "queued"


def test_a_refused_charge_enqueues_nothing_and_still_counts(redis):
    stack = recorded_enqueue(redis)
    charge = enqueue_script.Charge("stack:ratelimit:c:2", "stack:ratelimit:c:1", 2, 120, 0.5, 1)
    with pytest.raises(enqueue_script.Refused) as refused:
        replay(redis, stack, charge)
    assert (refused.value.current, refused.value.previous) == (2, 0)
    assert set(redis.keys("*")) == {b"stack:ratelimit:c:2"} and redis.ttl("stack:ratelimit:c:2") > 0


def test_a_charge_that_fits_enqueues(redis):
    redis.set("stack:ratelimit:c:1", 4)
    replay(redis, recorded_enqueue(redis), enqueue_script.Charge("stack:ratelimit:c:2", "stack:ratelimit:c:1",
                                                                   1, 120, 0.5, 3))  # 1 + 4 × 0.5 ≤ 3
    assert redis.lrange("rq:queue:default", 0, -1) == [b"pinned"]
