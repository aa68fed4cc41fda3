"""Redis connection, queue names, the JSON serializer and the enqueue/read helpers shared by web and worker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import DeserializationError, InvalidJobOperation, NoSuchJobError
from rq.job import Dependency, Job, JobStatus
from rq.serializers import JSONSerializer

from engine import catalog, enqueue_script, events, redis_url
from engine.errors import ForbiddenJob
from engine.settings import Settings, wait_replicas

log = logging.getLogger("engine.queues")

QUEUE_NAMES = ("high", "default", "low")  # workers drain them in this order
SERIALIZER = JSONSerializer
TERMINAL = frozenset({"finished", "failed", "canceled", "stopped"})
RECENT_KEY = "stack:jobs:recent"  # sorted set: job id → enqueue time, newest last
RECENT_KEEP = 10_000  # bounded: the list is for people, the registries hold the rest
_MAX_JOB_ID = 128
UNDECODABLE = "The queue entry is not valid JSON (pickled or corrupt); it was not run."
_WAITING = frozenset({"created", "rate_limited", "ready_to_enqueue"})
_RETRYING = frozenset({"scheduled", "queued", "started"})  # states in which an earlier attempt may have failed


def connect(settings: Settings, socket_timeout: float | None = 5.0, max_connections: int | None = None) -> Redis:
    """A Redis client whose every call is bounded in time, so an outage fails fast instead of hanging; with a
    ``redis+sentinel://`` URL it follows the primary the Sentinels name (engine.redis_url).

    ``max_connections`` caps the pool: callers beyond it wait (up to ``socket_timeout``) for a free connection
    instead of opening more, so hundreds of concurrent web requests share a few connections.
    """
    return redis_url.client(
        settings.redis_url, settings.redis_tls_verify, max_connections,
        socket_connect_timeout=1.0, socket_timeout=socket_timeout, health_check_interval=15,
        retry=RedisRetry(NoBackoff(), 1),
    )


class CatalogJob(Job):
    """An RQ job that resolves its function only from the job catalogue, never by importing a dotted path."""

    @property
    def func(self):  # type: ignore[override]
        try:
            name, instance = self.func_name, self.instance
        except DeserializationError:
            raise ForbiddenJob(UNDECODABLE) from None
        job_type = catalog.BY_FUNC_PATH.get(name or "")
        if job_type is None or instance is not None:
            raise ForbiddenJob(f"{name!r} is not in the job catalogue; it was not run.")
        return job_type.func

    # Callbacks are resolved by import path too; none are catalogued, so a forged one is ignored.
    success_callback = failure_callback = stopped_callback = property(lambda self: None)  # type: ignore[assignment]


def make_queues(connection: Redis) -> dict[str, Queue]:
    """The queues by name, all JSON-serialised and using the catalogue-checked job class."""
    return {
        name: Queue(name, connection=connection, serializer=SERIALIZER, job_class=CatalogJob)
        for name in QUEUE_NAMES
    }


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
            _index(pipe, job)
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
        _index(pipe, job)
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


def _index(pipe: Pipeline, job: Job) -> None:
    pipe.zadd(RECENT_KEY, {job.id: job.created_at.timestamp()})
    pipe.zremrangebyrank(RECENT_KEY, 0, -RECENT_KEEP - 1)


class NotCancelable(Exception):
    """The job already reached a terminal state."""


def cancel_job(connection: Redis, job: Job) -> str:
    """Cancel a waiting job or stop a running one; returns the status it moves to."""
    status = job_status(job)
    if status in ("queued", "scheduled", "deferred"):
        detach_dependents(connection, job)
        job.cancel(enqueue_dependents=True)
        return "canceled"
    if status == "started":
        try:
            send_stop_job_command(connection, job.id, serializer=SERIALIZER)
        except InvalidJobOperation:  # it finished between our read and the command
            status = job_status(CatalogJob.fetch(job.id, connection=connection, serializer=SERIALIZER))
        else:
            detach_dependents(connection, job)
            queue = Queue(job.origin, connection=connection, serializer=SERIALIZER, job_class=CatalogJob)
            queue.enqueue_ready_jobs_by_queue(queue.move_dependents_to_ready(job, exclude_job_id=job.id))
            return "stopped"
    raise NotCancelable(f"The job is already {status}; only waiting or running jobs can be canceled.")


def detach_dependents(connection: Redis, job: Job) -> None:
    """Stop jobs that wait on ``job`` (a batch's aggregate) from waiting for it: it will never finish.

    RQ releases dependents only when a parent finishes or fails; a canceled or stopped parent would hold them
    deferred until their TTL. The dependents read the parent's final state themselves when they run.
    """
    dependent_ids = [i.decode() for i in connection.smembers(job.dependents_key)]
    if dependent_ids:
        with connection.pipeline(transaction=False) as pipe:
            for dependent_id in dependent_ids:
                pipe.srem(Job(dependent_id, connection=connection).dependencies_key, job.id)
            pipe.execute()


def fetch_job(connection: Redis, job_id: str) -> Job | None:
    """The job with this id, or None when it expired or never existed."""
    if not job_id or len(job_id) > _MAX_JOB_ID or not job_id.isprintable():
        return None
    try:
        return CatalogJob.fetch(job_id, connection=connection, serializer=SERIALIZER)
    except (NoSuchJobError, ValueError):  # ValueError: RQ refuses ids outside [A-Za-z0-9_-], so none exists
        return None


def job_status(job: Job) -> str:
    """The public status; RQ's transient states before a job runs read as ``queued``."""
    status = job.get_status(refresh=False)
    value = getattr(status, "value", status) or "queued"
    return "queued" if value in _WAITING else value


def job_view(job: Job) -> dict[str, Any]:
    """The job as the public API shows it."""
    status = job_status(job)
    try:
        params = job.kwargs
    except DeserializationError:
        params = None
    return {
        "id": job.id,
        "type": job.meta.get("type"),
        "params": params,
        "status": status,
        "created_at": _iso(job.created_at),
        "enqueued_at": _iso(job.enqueued_at),
        "started_at": _iso(job.started_at),
        "ended_at": _iso(job.ended_at),
        "progress": job.meta.get("progress"),
        "result": job.return_value() if status == "finished" else None,
        "error": job_error(job, status),
        "attempt": job_attempt(job, status),
    }


def job_attempt(job: Job, status: str) -> int:
    """The attempt running or next to run; for a job that failed for good, its last one."""
    failures = int(job.meta.get("failures", 0))
    return max(failures, 1) if status == "failed" else failures + 1


def job_error(job: Job, status: str) -> dict[str, str] | None:
    """``{"type", "message"}`` for a failed or stopped job, and for one waiting to retry after a failure (the
    last attempt's error): the worker's record, else a plain summary."""
    if status == "stopped":
        return {"type": "Stopped", "message": "The job was stopped before it finished."}
    recorded = job.meta.get("error")
    if status != "failed":
        return recorded if recorded and status in _RETRYING else None
    if recorded:
        return recorded
    # No record: the process running it died (killed, out of memory) or the job was abandoned.
    last_line = next((line for line in reversed((job.exc_info or "").splitlines()) if line.strip()), "")
    return {"type": "JobFailed", "message": last_line[:300] or "The job failed without an error message."}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
