"""One log line per job event (enqueued, started, finished, retried, failed, abandoned), and its metrics.

The web side calls ``enqueued``; the worker runs jobs as ``engine.observed.ObservedJob`` (started, finished) and has
``observe_failure`` as an exception handler, which RQ also calls for jobs abandoned by a dead worker.
Metrics writes never fail a job: Redis trouble there is logged and the job goes on.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import AbandonedJobError
from rq.job import Job

from engine import logs, metrics

log = logging.getLogger("engine.events")
UNKNOWN_TYPE = "unknown"  # a forged queue entry has no catalogued type


def job_type(job: Job) -> str:
    return str(job.meta.get("type") or UNKNOWN_TYPE)


def request_meta() -> dict[str, str]:
    """Meta to store on a job enqueued now: the request id in scope, if any."""
    request_id = logs.request_id_var.get()
    return {"request_id": request_id} if request_id else {}


def emit(event: str, job: Job, level: int = logging.INFO, **fields: Any) -> None:
    """Log one job event with the job's id, type, queue, attempt and request id as fields."""
    fields = {
        "event": event,
        "job_id": job.id,
        "job_type": job_type(job),
        "queue": job.origin,
        "request_id": job.meta.get("request_id") or logs.request_id_var.get(),
        **fields,
    }
    shown = " ".join(f"{key}={value}" for key, value in fields.items() if key != "event" and value is not None)
    log.log(level, "job %s %s", event, shown, extra=fields)


def record(action: str, *args: Any) -> None:
    """Run a metrics write; Redis trouble is logged, never raised into the job."""
    try:
        if action == "count":
            metrics.count(*args)
        else:
            metrics.observe(*args)
    except RedisError as exc:
        log.warning("metrics not recorded: %s", exc)


def enqueued(job: Job) -> None:
    """The web side accepted the job and put it on its queue."""
    emit("enqueued", job)
    record("count", job.connection, metrics.SUBMITTED, job_type(job))


def seconds_between(start: Any, end: Any) -> float | None:
    return (end - start).total_seconds() if start and end else None


def error_class(job: Job, exc_type: type | None) -> str:
    """The error class users see (the worker's record in meta), else the exception's name."""
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return exc_type.__name__
    recorded = job.meta.get("error") or {}
    return str(recorded.get("type") or getattr(exc_type, "__name__", "Error"))


def observe_failure(job: Job, exc_type: type, exc_value: BaseException, tb: object) -> bool:
    """Exception handler: log abandoned, retried or failed with the error class, and count it."""
    kind = error_class(job, exc_type)
    abandoned = issubclass(exc_type, AbandonedJobError)
    with logs.context(job.meta.get("request_id"), job.id):
        if abandoned:
            emit("abandoned", job, logging.WARNING, error_class=kind, worker=job.worker_name)
        else:
            duration = seconds_between(job.started_at, job.ended_at)
            if duration is not None:
                record("observe", job.connection, metrics.DURATION, job_type(job), duration)
        if job.should_retry:
            # RQ spends one retry right after the handlers run; report what is left after this one.
            emit("retried", job, logging.WARNING, error_class=kind, retries_left=(job.retries_left or 1) - 1)
            record("count", job.connection, metrics.RETRIED, job_type(job), kind)
        else:
            emit("failed", job, logging.ERROR, error_class=kind)
            record("count", job.connection, metrics.FAILED, job_type(job), kind)
    return True  # let the next handler and RQ's default handling run
