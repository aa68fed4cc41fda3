"""The write of new jobs: RQ's records (job hash, queue entry, queue registration), our index of recent jobs and
the submitted counter, in one script call after a client's rate-limit charge (engine.enqueue_script).

A job that runs now is written without RQ's ``Job`` object, whose construction, serialisation and enqueue
bookkeeping were most of a submit's CPU: ``queued_writes`` gives the very commands ``Queue.enqueue_call`` issues,
field by field in RQ's order and format (plus the submitting client, engine.fairness). tests/test_enqueue_script.py
proves the result byte for byte against RQ's own enqueue and reads it back through RQ's readers. A scheduled job,
rare and not on the hot path, takes RQ's own path; so does a batch's aggregate (engine.batches), whose
dependencies RQ records.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Dependency, Job, JobStatus

from engine import catalog, enqueue_script, events
from engine.queues import SERIALIZER, CatalogJob
from engine.settings import Settings, wait_replicas
from engine.status import job_view, view

log = logging.getLogger("engine.enqueue")

RECENT_KEY = "stack:jobs:recent"  # sorted set: job id → enqueue time, newest last
RECENT_KEEP = 10_000  # bounded: the list is for people, the registries hold the rest
_RQ_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # RQ's utcformat


@dataclass(frozen=True)
class Client:
    """Who submitted a job from outside the deployment (the CLI, the clock and Python enqueues have none)."""

    key: str  # opaque: the credential if any, else the address group
    anonymous: bool  # no credential: its jobs are kept for a shorter time (ANONYMOUS_TTL)


def enqueue(connection: Redis, job_type: catalog.JobType, params: dict[str, Any], settings: Settings, *,
            queue: str, job_id: str | None = None, meta: dict[str, Any] | None = None,
            charge: enqueue_script.Charge | None = None, client: Client | None = None) -> dict[str, Any]:
    """Write a validated job that runs now, in one script call after ``charge``; returns its API view.

    ``job_id`` fixes its id and ``meta`` adds to its metadata. If ``charge`` does not fit,
    ``enqueue_script.Refused`` and nothing is written. ``client`` is who submitted it from outside: how many of its
    jobs run at once is capped (engine.fairness), and an anonymous one's job is kept ANONYMOUS_TTL at most once it
    ends.
    """
    job_id = job_id or str(uuid.uuid4())
    now = datetime.now(UTC)
    writes = queued_writes(job_type, params, settings, queue=queue, job_id=job_id, now=now, meta=meta,
                           client=client)
    try:
        enqueue_script.run(connection, writes, charge, durable(settings))
    except enqueue_script.NotReplicated as exc:
        withdraw(connection, queue, [job_id], exc)
        raise
    events.submitted(job_id, job_type.name, queue)
    return view(job_id, job_type.name, params, "queued", now, now)


def queued_writes(job_type: catalog.JobType, params: dict[str, Any], settings: Settings, *, queue: str,
                  job_id: str, now: datetime, meta: dict[str, Any] | None = None,
                  client: Client | None = None) -> list[tuple[Any, ...]]:
    """RQ's writes for a job that runs now (with its ``client``, engine.fairness), then our index entry and
    submitted counter, as commands."""
    key = Job.key_for(job_id)
    queue_key = Queue.redis_queue_namespace_prefix + queue
    intervals = retry_intervals(job_type, settings)
    stamp = now.strftime(_RQ_TIME)
    result_ttl, failure_ttl = ended_ttls(settings, client)
    # The status first, as Queue.enqueue_call's set_status writes it, then Job.to_dict's fields in its order.
    fields: list[Any] = [
        "status", JobStatus.QUEUED.value, "created_at", stamp,
        "data", zlib.compress(SERIALIZER.dumps((job_type.func_path, None, [], params))),
        "success_callback_name", "", "failure_callback_name", "", "stopped_callback_name", "",
        "started_at", "", "ended_at", "", "last_heartbeat", "", "worker_name", "", "group_id", "",
    ]
    if intervals:
        fields += ["retries_left", len(intervals), "retry_intervals", json.dumps(intervals)]
    fields += [
        "origin", queue, "description", job_type.describe(params), "enqueued_at", stamp,
        "timeout", job_type.timeout or settings.job_timeout, "result_ttl", result_ttl,
        "failure_ttl", failure_ttl, "meta", SERIALIZER.dumps(job_meta(job_type, meta)),
        "ttl", settings.queued_ttl,
    ]
    if client is not None:  # not RQ's: the claim script reads it for the client's running cap
        fields += ["client", client.key]
    return [
        ("SADD", Queue.redis_queues_keys, queue_key),
        ("HSET", key, *fields),
        # RQ also sets the expiry of the job's dependents and dependencies sets, which a new job does not have.
        ("EXPIRE", key, settings.queued_ttl),
        ("RPUSH", queue_key, job_id),
        *recent(job_id, now),
        events.on_submit(job_type.name),
    ]


def schedule(connection: Redis, job_type: catalog.JobType, params: dict[str, Any], settings: Settings, *,
             queue: str, at: datetime, job_id: str | None = None, meta: dict[str, Any] | None = None,
             charge: enqueue_script.Charge | None = None, client: Client | None = None) -> dict[str, Any]:
    """Schedule a validated job for ``at`` through RQ (its scheduler enqueues it then), as ``client``'s job;
    returns its API view."""
    if charge is not None:  # charged on its own first: RQ's scheduling path writes as it goes
        enqueue_script.run(connection, [], charge)
    # The queued limit starts when it is due, or a job 30 days ahead would expire unrun.
    ttl = settings.queued_ttl + max(0, int((at - datetime.now(UTC)).total_seconds()))
    rq_queue = Queue(queue, connection=connection, serializer=SERIALIZER, job_class=CatalogJob)
    job = rq_queue.create_job(job_type.func_path, kwargs=params, status=JobStatus.SCHEDULED, job_id=job_id,
                              **rq_options(job_type, params, settings, ttl, meta, client))
    job = rq_queue.schedule_job(job, _whole_second_up(at))
    with connection.pipeline(transaction=False) as pipe:
        for command in (*client_record(job, client), *recent(job.id, job.created_at),
                        events.on_submit(job_type.name)):
            pipe.execute_command(*command)
        wait = durable(settings)
        if wait is not None:
            pipe.wait(wait.replicas, wait.timeout_ms)  # covers RQ's writes above too: they came first
        replies = pipe.execute()
    if wait is not None and replies[-1] < wait.replicas:
        exc = enqueue_script.NotReplicated(wait, replies[-1])
        withdraw(connection, queue, [job.id], exc)
        raise exc
    events.submitted(job.id, job_type.name, queue)
    return job_view(job)


def deferred_writes(connection: Redis, pipe: Pipeline, job_type: catalog.JobType, params: dict[str, Any],
                    settings: Settings, *, queue: str, depends_on: Dependency,
                    meta: dict[str, Any] | None = None, client: Client | None = None) -> Job:
    """Put on ``pipe`` RQ's writes for a job that waits for others (its own ``setup_dependencies`` writes for an
    unfinished dependency), then its ``client``, our index entry and counter; returns the job."""
    rq_queue = Queue(queue, connection=connection, serializer=SERIALIZER, job_class=CatalogJob)
    job = rq_queue.create_job(job_type.func_path, kwargs=params, depends_on=depends_on,
                              **rq_options(job_type, params, settings, settings.queued_ttl, meta, client))
    job.set_status(JobStatus.DEFERRED, pipeline=pipe)
    job.register_dependency(pipeline=pipe)
    job.save(pipeline=pipe)
    job.cleanup(ttl=job.ttl, pipeline=pipe)
    pipe.sadd(rq_queue.redis_queues_keys, rq_queue.key)
    for command in (*client_record(job, client), *recent(job.id, job.created_at), events.on_submit(job_type.name)):
        pipe.execute_command(*command)
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


def withdraw(connection: Redis, queue: str, job_ids: list[str], reason: enqueue_script.NotReplicated) -> None:
    """Undo the submission of ``job_ids`` (the API answers 503 for it), except those a worker already took."""
    rq_queue = Queue(queue, connection=connection)
    for job_id in job_ids:
        keys = [rq_queue.key, rq_queue.scheduled_job_registry.key, rq_queue.deferred_job_registry.key,
                Job.key_for(job_id), RECENT_KEY]
        try:
            withdrawn = connection.eval(_WITHDRAW, len(keys), *keys, job_id)
        except RedisError:  # the primary just went away: the job is on no replica either, so it is gone
            withdrawn = None
        log.warning("job %s not acknowledged (%s); %s", job_id, reason,
                    "a worker had already taken it, so it runs" if withdrawn == 0 else "withdrawn")
    with contextlib.suppress(RedisError):  # RQ's dependency sets among them (a batch's): no job waits on the undone
        connection.delete(*(key for job_id in job_ids for key in (
            Job.dependents_key_for(job_id), Job(job_id, connection=connection).dependencies_key)))


def retry_intervals(job_type: catalog.JobType, settings: Settings) -> list[int]:
    """The job type's retry intervals, or the settings' when it declares none."""
    return list(settings.retry_intervals if job_type.retry_intervals is None else job_type.retry_intervals)


def job_meta(job_type: catalog.JobType, extra: dict[str, Any] | None) -> dict[str, Any]:
    """What a new job's meta holds: its type, the request id in scope, and what the caller adds."""
    return {"type": job_type.name, **events.request_meta(), **(extra or {})}


def rq_options(job_type: catalog.JobType, params: dict[str, Any], settings: Settings, ttl: int,
               meta: dict[str, Any] | None, client: Client | None = None) -> dict[str, Any]:
    """RQ's job options for a job that takes RQ's own path: the same TTLs, retries and meta as ``queued_writes``."""
    intervals = retry_intervals(job_type, settings)
    result_ttl, failure_ttl = ended_ttls(settings, client)
    return {
        "timeout": job_type.timeout or settings.job_timeout,
        "result_ttl": result_ttl,
        "failure_ttl": failure_ttl,
        "ttl": ttl,
        "retry": Retry(max=len(intervals), interval=intervals) if intervals else None,
        "meta": job_meta(job_type, meta),
        "description": job_type.describe(params),
    }


def ended_ttls(settings: Settings, client: Client | None) -> tuple[int, int]:
    """How long an ended job is kept, finished and failed: an anonymous client's ANONYMOUS_TTL at most."""
    keep = settings.anonymous_ttl if client is not None and client.anonymous else settings.result_ttl
    return min(settings.result_ttl, keep), min(settings.failure_ttl, keep)


def client_record(job: Job, client: Client | None) -> tuple[tuple[Any, ...], ...]:
    """The command that records ``client`` on a job RQ wrote (engine.fairness reads it), if there is one."""
    return () if client is None else (("HSET", job.key, "client", client.key),)


def _whole_second_up(when: datetime) -> datetime:
    """``when`` rounded up to a whole second: RQ stores due times truncated to the second, which would run early."""
    return when if when.microsecond == 0 else when.replace(microsecond=0) + timedelta(seconds=1)


def recent(job_id: str, created_at: datetime) -> tuple[tuple[Any, ...], ...]:
    """The commands that add a job to the recent jobs' index, which they keep bounded."""
    return ("ZADD", RECENT_KEY, created_at.timestamp(), job_id), ("ZREMRANGEBYRANK", RECENT_KEY, 0, -RECENT_KEEP - 1)
