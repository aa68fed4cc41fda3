"""A batch of records sent in one script call leaves Redis exactly as the same writes sent one by one."""

from __future__ import annotations

import pytest

from engine.records import Batch, compact

WRITES = [
    ("HSET", "job", "status", "started"), ("HINCRBY", "worker", "ok", 1), ("HSET", "job", "status", "finished",
                                                                                 "ended_at", "t"),
    ("SADD", "types", "noop"), ("HINCRBYFLOAT", "worker", "time", 0.25), ("SADD", "types", "noop"),
    ("EXPIRE", "job", 600), ("HINCRBY", "worker", "ok", 1), ("HINCRBYFLOAT", "worker", "time", 0.5),
    ("DEL", "job"), ("HSET", "job", "status", "queued"), ("HINCRBY", "worker", "ok", 2), ("SREM", "types", "noop"),
    ("SADD", "types", "noop"), ("EXPIRE", "gone", 10), ("ZADD", "registry", 5, "job"),
]


def state(redis) -> dict:
    return {key: (redis.type(key), redis.dump(key), redis.ttl(key) > 0) for key in sorted(redis.keys("*"))}


@pytest.mark.integration
def test_one_script_call_writes_what_the_commands_one_by_one_write(redis):
    for command in WRITES:
        redis.execute_command(*command)
    expected = state(redis)
    redis.flushall()
    batch = Batch(redis)
    for command in WRITES:
        batch.pipe.execute_command(*command)
    batch.absent.add("gone")
    ticket = batch.want("EXPIRE", "registry")  # none written: an EXISTS answers instead
    replies = batch.send()
    assert state(redis) == expected
    assert replies[ticket] == 1


def test_compaction_merges_sums_and_drops_only_what_changes_nothing():
    commands, _ = compact(WRITES, set(), frozenset({"gone"}))
    assert len(commands) < len(WRITES)
    assert ["EXPIRE", "gone", 10] not in commands
    assert ["HSET", "job", "status", "started", "status", "finished", "ended_at", "t"] in commands
