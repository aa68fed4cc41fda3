"""One path for job events: a log line per event (submitted, started, finished, retried, failed, abandoned) and
its metrics, called by enqueue and by the worker as hooks.

Metric writes ride in the transaction that records the event anyway: the enqueue's script call, the worker's start
transaction, RQ's own success and failure transactions (the worker hands their pipeline in). Where there is
none (a job recovered by the reaper, a handler run by RQ's registry cleanup) they are written at once.
Metrics writes never fail a job: Redis trouble there is logged and the job goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import AbandonedJobError
from rq.job import Job

from engine import logs, metrics

log = logging.getLogger("engine.events")
UNKNOWN_TYPE = "unknown"  # a forged queue entry has no catalogued type
Write = Callable[[Any], None]  # a metrics write, given a pipeline or a connection
_deferred = threading.local()  # per job thread: writes waiting for RQ's next transaction


def job_type(job: Job) -> str:
    """The catalogued type stored on the job, or ``unknown``."""
    return str(job.meta.get("type") or UNKNOWN_TYPE)


def request_meta() -> dict[str, str]:
    """Meta to store on a job enqueued now: the request id in scope, if any."""
    request_id = logs.request_id_var.get()
    return {"request_id": request_id} if request_id else {}


def emit(event: str, job: Job, level: int = logging.INFO, **fields: Any) -> None:
    """Log one job event with the job's id, type, queue, attempt and request id as fields."""
    _log(event, job.id, job_type(job), job.origin, job.meta.get("request_id"), level, **fields)


def _log(event: str, job_id: str, kind: str, queue: str | None, request_id: str | None,
         level: int = logging.INFO, **extra: Any) -> None:
    fields = {
        "event": event,
        "job_id": job_id,
        "job_type": kind,
        "queue": queue,
        "request_id": request_id or logs.request_id_var.get(),
        **extra,
    }
    shown = " ".join(f"{key}={value}" for key, value in fields.items() if key != "event" and value is not None)
    log.log(level, "job %s %s", event, shown, extra=fields)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end``, or None when either is unknown."""
    return (end - start).total_seconds() if start and end else None


def attempt(job: Job) -> int:
    """Which attempt of the job this is (1 for the first run)."""
    return int(job.meta.get("failures", 0)) + 1


# --- where metric writes go ---------------------------------------------------------------------------------
@contextmanager
def deferred() -> Iterator[None]:
    """While ended jobs are recorded: hold metric writes until ``flush`` puts them in the batch that records them."""
    _deferred.writes = []
    try:
        yield
    finally:
        left, _deferred.writes = _deferred.writes, None
        for connection, write in left or ():  # RQ's transaction never came (Redis trouble): try once alone
            _write_now(connection, write)


def flush(pipeline: Any) -> None:
    """Add the held metric writes to ``pipeline`` (RQ's success or failure transaction)."""
    writes = getattr(_deferred, "writes", None) or []
    while writes:
        writes.pop(0)[1](pipeline)


def _record(job: Job, write: Write, pipeline: Any = None) -> None:
    """Put a metrics write in ``pipeline``, hold it for RQ's next transaction, or write it now."""
    if pipeline is not None:
        write(pipeline)
    elif getattr(_deferred, "writes", None) is not None:
        _deferred.writes.append((job.connection, write))
    else:
        _write_now(job.connection, write)


def _write_now(connection: Any, write: Write) -> None:
    try:
        with connection.pipeline(transaction=False) as pipe:
            write(pipe)
            pipe.execute()
    except RedisError as exc:
        log.warning("metrics not recorded: %s", exc)


# --- the hooks ----------------------------------------------------------------------------------------------
def on_submit(kind: str) -> tuple[str, str, str, int]:
    """Enqueue: the write that counts a job of type ``kind``, for the enqueue's own (``submitted`` logs it once
    they commit)."""
    return metrics.counting(metrics.SUBMITTED, kind)


def submitted(job_id: str, kind: str, queue: str) -> None:
    """Enqueue committed: log it."""
    _log("enqueued", job_id, kind, queue, None)


def on_start(job: Job, worker_name: str, pipeline: Any) -> None:
    """Worker: the job starts now; its queue wait goes into the start transaction."""
    wait = seconds_between(job.enqueued_at, job.started_at)
    emit("started", job, worker=worker_name, attempt=attempt(job),
         queue_wait_s=None if wait is None else round(wait, 3))
    if wait is not None:
        kind = job_type(job)
        _record(job, lambda p: metrics.observe(p, metrics.QUEUE_WAIT, kind, wait), pipeline)


def on_finish(job: Job, pipeline: Any) -> None:
    """Worker: the job returned; its duration goes into RQ's success transaction."""
    duration = seconds_between(job.started_at, job.ended_at)
    emit("finished", job, duration_s=None if duration is None else round(duration, 3))
    if duration is not None:
        kind = job_type(job)
        _record(job, lambda p: metrics.observe(p, metrics.DURATION, kind, duration), pipeline)


def error_class(job: Job, exc_type: type | None) -> str:
    """The error class users see (the worker's record in meta), else the exception's name."""
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return exc_type.__name__
    recorded = job.meta.get("error") or {}
    return str(recorded.get("type") or getattr(exc_type, "__name__", "Error"))


def on_failure(job: Job, exc_type: type, exc_value: BaseException, tb: object) -> bool:
    """Exception handler: log abandoned, retried or failed with the error class, and count it."""
    kind = error_class(job, exc_type)
    with logs.context(job.meta.get("request_id"), job.id):
        if issubclass(exc_type, AbandonedJobError):
            emit("abandoned", job, logging.WARNING, error_class=kind, worker=job.worker_name)
        else:
            duration = seconds_between(job.started_at, job.ended_at)
            if duration is not None:
                name = job_type(job)
                _record(job, lambda p: metrics.observe(p, metrics.DURATION, name, duration))
        # RQ spends one retry right after the handlers run; report what is left after this one.
        _count_outcome(job, kind, retried=job.should_retry, retries_left=(job.retries_left or 1) - 1)
    return True  # let the next handler and RQ's default handling run


def on_abandoned(job: Job, worker_name: str, retried: bool) -> None:
    """Reaper: the job's worker died mid-run; it is re-queued (``retried``) or failed."""
    with logs.context(job.meta.get("request_id"), job.id):
        emit("abandoned", job, logging.WARNING, error_class="WorkerLost", worker=worker_name or None)
        _count_outcome(job, "WorkerLost", retried=retried, retries_left=job.retries_left or 0)


def _count_outcome(job: Job, kind: str, retried: bool, retries_left: int) -> None:
    name = job_type(job)
    if retried:
        emit("retried", job, logging.WARNING, error_class=kind, retries_left=retries_left)
        _record(job, lambda p: metrics.count(p, metrics.RETRIED, name, kind))
    else:
        emit("failed", job, logging.ERROR, error_class=kind)
        _record(job, lambda p: metrics.count(p, metrics.FAILED, name, kind))
