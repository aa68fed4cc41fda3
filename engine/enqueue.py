"""Enqueue a validated job by its catalogue path: RQ's records with our TTLs, retries and metadata, plus the index
of recent jobs that listing reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from redis.client import Pipeline
from rq import Queue, Retry
from rq.job import Dependency, Job, JobStatus

from engine import catalog, enqueue_script, events
from engine.settings import Settings

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
            enqueue_script.run(queue.connection, pipe, charge)
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
        pipe.execute()
    events.submitted(job)
    return job


def _whole_second_up(when: datetime) -> datetime:
    """``when`` rounded up to a whole second: RQ stores due times truncated to the second, which would run early."""
    return when if when.microsecond == 0 else when.replace(microsecond=0) + timedelta(seconds=1)


def index(pipe: Pipeline, job: Job) -> None:
    """Add ``job`` to the recent jobs' index (bounded) on ``pipe``."""
    pipe.zadd(RECENT_KEY, {job.id: job.created_at.timestamp()})
    pipe.zremrangebyrank(RECENT_KEY, 0, -RECENT_KEEP - 1)
