"""Enqueue a validated job by its catalogue path: RQ's records with our TTLs, retries and metadata, plus the index
of recent jobs that listing reads."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Dependency, Job, JobStatus

from engine import catalog, enqueue_script, events
from engine.settings import Settings, wait_replicas

log = logging.getLogger("engine.enqueue")

RECENT_KEY = "stack:jobs:recent"  # sorted set: job id → enqueue time, newest last
RECENT_KEEP = 10_000  # bounded: the list is for people, the registries hold the rest


def enqueue(
    queue: Queue,
    job_type: catalog.JobType,
    params: dict[str, Any],
    settings: Settings,
    at: datetime | None = None,
    depends_on: Dependency | None = None,
    job_id: str | None = None,
    meta: dict[str, Any] | None = None,
    charge: enqueue_script.Charge | None = None,
) -> Job:
    """Enqueue a validated job by its catalogue path, with explicit TTLs and retry intervals.

    ``at`` schedules it instead (status ``scheduled``; the worker's scheduler enqueues it then), ``depends_on``
    defers it until other jobs end, ``job_id`` fixes its id and ``meta`` adds to its metadata. ``charge`` is a
    client's rate-limit charge made first: if it does not fit, ``enqueue_script.Refused`` and nothing enqueued.
    """
    intervals = list(settings.retry_intervals if job_type.retry_intervals is None else job_type.retry_intervals)
    ttl = settings.queued_ttl
    if at is not None:  # the queued limit starts when it is due, or a job 30 days ahead would expire unrun
        ttl += max(0, int((at - datetime.now(UTC)).total_seconds()))
    options: dict[str, Any] = {
        "timeout": job_type.timeout or settings.job_timeout,
        "result_ttl": settings.result_ttl,
        "failure_ttl": settings.failure_ttl,
        "ttl": ttl,
        "retry": Retry(max=len(intervals), interval=intervals) if intervals else None,
        "meta": {"type": job_type.name, **events.request_meta(), **(meta or {})},
        "description": job_type.describe(params),
        "depends_on": depends_on,
        "job_id": job_id,
    }
    if at is None and depends_on is None:
        # One round trip: the rate-limit charge, then RQ's job save, queue push and queue registration, our recent
        # index and the submitted counter, in one script (with dependencies RQ must read and watch them first, so
        # that path stays RQ's). One script reply is much cheaper to parse than a MULTI's dozen.
        with queue.connection.pipeline() as pipe:
            job = queue.enqueue_call(func=job_type.func_path, kwargs=params, pipeline=pipe, **options)
            index(pipe, job)
            events.on_submit(job, pipe)
            try:
                enqueue_script.run(queue.connection, pipe, charge, durable(settings))
            except enqueue_script.NotReplicated as exc:
                _withdraw(queue, job, exc)
                raise
        events.submitted(job)
        return job
    if charge is not None:  # charged on its own first: RQ's scheduling and dependency paths write as they go
        with queue.connection.pipeline() as pipe:
            enqueue_script.run(queue.connection, pipe, charge)
    if at is None:
        job = queue.enqueue_call(func=job_type.func_path, kwargs=params, **options)
    else:
        job = queue.create_job(job_type.func_path, kwargs=params, status=JobStatus.SCHEDULED, **options)
        job = queue.schedule_job(job, _whole_second_up(at))
    with queue.connection.pipeline(transaction=False) as pipe:
        index(pipe, job)
        events.on_submit(job, pipe)
        wait = durable(settings)
        if wait is not None:
            pipe.wait(wait.replicas, wait.timeout_ms)  # covers RQ's writes above too: they came first
        replies = pipe.execute()
    if wait is not None and replies[-1] < wait.replicas:
        exc = enqueue_script.NotReplicated(wait, replies[-1])
        _withdraw(queue, job, exc)
        raise exc
    events.submitted(job)
    return job


def durable(settings: Settings) -> enqueue_script.Durable | None:
    """The WAIT a submission needs before it is acknowledged, if any (engine.settings.wait_replicas)."""
    replicas = wait_replicas(settings)
    return enqueue_script.Durable(replicas, settings.redis_wait_timeout_ms) if replicas else None


# Undo a submission no replica confirmed: take it off its queue or registry and delete it, unless a worker
# already took it (then it is whole and runs: at least once, like any job). Either way nothing is half-made.
_WITHDRAW = """
local gone = redis.call('LREM', KEYS[1], 0, ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
    + redis.call('ZREM', KEYS[3], ARGV[1])
if gone > 0 then
    redis.call('DEL', KEYS[4])
    redis.call('ZREM', KEYS[5], ARGV[1])
end
return gone
"""


def _withdraw(queue: Queue, job: Job, reason: enqueue_script.NotReplicated) -> None:
    """Undo ``job``'s submission (the API answers 503 for it), unless a worker already took it."""
    keys = [queue.key, queue.scheduled_job_registry.key, queue.deferred_job_registry.key, job.key, RECENT_KEY]
    try:
        withdrawn = queue.connection.eval(_WITHDRAW, len(keys), *keys, job.id)
    except RedisError:  # the primary just went away: the job is on no replica either, so it is gone
        withdrawn = None
    log.warning("job %s not acknowledged (%s); %s", job.id, reason,
                "a worker had already taken it, so it runs" if withdrawn == 0 else "withdrawn")


def _whole_second_up(when: datetime) -> datetime:
    """``when`` rounded up to a whole second: RQ stores due times truncated to the second, which would run early."""
    return when if when.microsecond == 0 else when.replace(microsecond=0) + timedelta(seconds=1)


def index(pipe: Pipeline, job: Job) -> None:
    """Add ``job`` to the recent jobs' index (bounded) on ``pipe``."""
    pipe.zadd(RECENT_KEY, {job.id: job.created_at.timestamp()})
    pipe.zremrangebyrank(RECENT_KEY, 0, -RECENT_KEEP - 1)
