"""A new job is written byte for byte as RQ's own enqueue writes it (plus the client it was submitted by, if any),
in one script call that a refused charge or a key of the wrong type leaves without a trace."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import rq.job
import rq.queue
from redis import Redis
from redis.exceptions import ResponseError
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from engine import catalog, enqueue, enqueue_script, events, queues, status
from engine.enqueue import Client
from engine.settings import Settings

PARAMS = {"url": "https://example.com/", "top": 5}
NOW = datetime(2026, 12, 6, 10, 0, 0, 123456, tzinfo=UTC)
CLIENTS = {"no-client": None, "with-credential": Client("token:abc", anonymous=False),
           "anonymous": Client("address:192.0.2.0/24", anonymous=True)}


@pytest.fixture
def frozen_rq(monkeypatch):
    """RQ's clock stopped at NOW, so its timestamps match ours."""
    monkeypatch.setattr(rq.job, "now", lambda: NOW)
    monkeypatch.setattr(rq.queue, "now", lambda: NOW)


def rq_enqueue(redis: Redis, job_type: catalog.JobType, settings: Settings, job_id: str,
               client: Client | None = None) -> None:
    """RQ's own enqueue of the job (with the TTLs ``client`` gets), in its own MULTI, plus our index and counter."""
    queue = queues.make_queues(redis)["default"]
    with redis.pipeline() as pipe:
        job = queue.enqueue_call(func=job_type.func_path, kwargs=PARAMS, pipeline=pipe, job_id=job_id,
                                 **enqueue.rq_options(job_type, PARAMS, settings, settings.queued_ttl, None, client))
        for command in (*enqueue.recent(job.id, job.created_at), events.on_submit(job_type.name)):
            pipe.execute_command(*command)
        pipe.execute()


def our_enqueue(redis: Redis, job_type: catalog.JobType, settings: Settings, job_id: str,
                charge: enqueue_script.Charge | None = None, client: Client | None = None) -> None:
    writes = enqueue.queued_writes(job_type, PARAMS, settings, queue="default", job_id=job_id, now=NOW,
                                   client=client)
    enqueue_script.run(redis, writes, charge)


def snapshot(redis: Redis) -> dict[bytes, tuple[bytes, bool]]:
    """Every key's serialised value and whether it expires."""
    return {key: (redis.dump(key), redis.ttl(key) > 0) for key in redis.keys("*")}


@pytest.mark.parametrize("client", CLIENTS.values(), ids=CLIENTS)
@pytest.mark.parametrize("retries", ["5,30", ""], ids=["with-retries", "no-retries"])
def test_a_new_job_is_written_byte_for_byte_as_rq_writes_it(redis, env, frozen_rq, retries, client):
    settings = Settings.from_env({**env, "RETRY_INTERVALS": retries, "ANONYMOUS_TTL": "60"})
    job_type = catalog.get("count_words_at_url")
    rq_enqueue(redis, job_type, settings, "pinned", client)
    by_rq, rq_fields = snapshot(redis), redis.hgetall("rq:job:pinned")
    assert {b"rq:queues", b"rq:queue:default", b"rq:job:pinned", b"stack:jobs:recent"} <= set(by_rq)
    redis.flushall()
    our_enqueue(redis, job_type, settings, "pinned", client=client)
    if client is not None:  # the one field RQ does not write, for the claim script's per-client cap
        assert redis.hgetall("rq:job:pinned") == {**rq_fields, b"client": client.key.encode()}
        redis.hdel("rq:job:pinned", "client")
    assert snapshot(redis) == by_rq


def test_an_anonymous_clients_job_is_kept_anonymous_ttl_at_most(redis, env):
    settings = Settings.from_env({**env, "ANONYMOUS_TTL": "60"})
    job_type = catalog.get("count_words_at_url")
    for job_id, client in (("anonymous", CLIENTS["anonymous"]), ("named", CLIENTS["with-credential"])):
        our_enqueue(redis, job_type, settings, job_id, client=client)
    anonymous, named = (Job.fetch(job_id, connection=redis, serializer=queues.SERIALIZER)
                        for job_id in ("anonymous", "named"))
    assert (anonymous.result_ttl, anonymous.failure_ttl) == (60, 60)
    assert (named.result_ttl, named.failure_ttl) == (settings.result_ttl, settings.failure_ttl)


def test_a_submitted_job_reads_back_through_rq(redis, settings):
    job_type = catalog.get("count_words_at_url")
    shown = enqueue.enqueue(redis, job_type, PARAMS, settings, queue="default")
    queue = Queue("default", connection=redis, serializer=queues.SERIALIZER)
    assert queue.job_ids == [shown["id"]] and redis.sismember("rq:queues", "rq:queue:default")
    job = Job.fetch(shown["id"], connection=redis, serializer=queues.SERIALIZER)
    assert (job.func_name, job.kwargs, job.get_status(), job.origin) == (
        job_type.func_path, PARAMS, "queued", "default")
    assert (job.timeout, job.result_ttl, job.ttl, job.retries_left) == (
        settings.job_timeout, settings.result_ttl, settings.queued_ttl, len(settings.retry_intervals))
    assert job.meta["type"] == "count_words_at_url" and job.enqueued_at is not None
    assert status.job_view(job) == shown  # the answer given at once is what reading it back shows
    assert StartedJobRegistry("default", connection=redis).get_job_ids() == []


def test_a_refused_charge_writes_nothing_and_still_counts(redis, settings):
    charge = enqueue_script.Charge("stack:ratelimit:c:2", "stack:ratelimit:c:1", 2, 120, 0.5, 1)
    with pytest.raises(enqueue_script.Refused) as refused:
        our_enqueue(redis, catalog.get("count_words_at_url"), settings, "pinned", charge)
    assert (refused.value.current, refused.value.previous) == (2, 0)
    assert set(redis.keys("*")) == {b"stack:ratelimit:c:2"} and redis.ttl("stack:ratelimit:c:2") > 0


def test_a_charge_that_fits_enqueues(redis, settings):
    redis.set("stack:ratelimit:c:1", 4)
    our_enqueue(redis, catalog.get("count_words_at_url"), settings, "pinned",
                enqueue_script.Charge("stack:ratelimit:c:2", "stack:ratelimit:c:1", 1, 120, 0.5, 3))  # 1 + 4×0.5 ≤ 3
    assert redis.lrange("rq:queue:default", 0, -1) == [b"pinned"]


def test_a_key_of_the_wrong_type_stops_the_write_before_anything_is_written(redis, settings):
    redis.set("stack:jobs:recent", "not a sorted set")  # written after the job hash and the queue entry
    with pytest.raises(ResponseError, match="nothing was written"):
        our_enqueue(redis, catalog.get("count_words_at_url"), settings, "pinned")
    assert redis.keys("*") == [b"stack:jobs:recent"]
