"""A job as people see it: its public status, its error, its attempt and the API's view of it (pure functions of
an RQ job)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rq.exceptions import DeserializationError
from rq.job import Job, JobStatus

TERMINAL = frozenset({"finished", "failed", "canceled", "stopped"})
_WAITING = frozenset({"created", "rate_limited", "ready_to_enqueue"})
_RETRYING = frozenset({"scheduled", "queued", "started"})  # states in which an earlier attempt may have failed
# Why a job parked by its client's cap (engine.fairness; RQ's status rate_limited) has not started.
WAITING_FOR_SHARE = ("Waiting for its client's other jobs: only a few jobs of one client run at once, so a large "
                     "batch cannot hold up everyone else. It starts as soon as one of them ends.")


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
    return view(
        job.id, job.meta.get("type"), params, status, job.created_at, job.enqueued_at,
        started_at=job.started_at, ended_at=job.ended_at, progress=job.meta.get("progress"),
        result=job.return_value() if status == "finished" else None, error=job_error(job, status),
        attempt=job_attempt(job, status),
        waiting=WAITING_FOR_SHARE if job.get_status(refresh=False) == JobStatus.RATE_LIMITED else None,
    )


def view(job_id: str, job_type: str | None, params: dict[str, Any] | None, status: str, created_at: datetime | None,
         enqueued_at: datetime | None, *, started_at: datetime | None = None, ended_at: datetime | None = None,
         progress: dict[str, Any] | None = None, result: Any = None, error: dict[str, str] | None = None,
         attempt: int = 1, waiting: str | None = None) -> dict[str, Any]:
    """The API's view of a job from its parts (defaults: a job that has not run yet); ``waiting`` says why a
    queued job has not started."""
    return {
        "id": job_id,
        "type": job_type,
        "params": params,
        "status": status,
        "created_at": iso(created_at),
        "enqueued_at": iso(enqueued_at),
        "started_at": iso(started_at),
        "ended_at": iso(ended_at),
        "progress": progress,
        "result": result,
        "error": error,
        "attempt": attempt,
        "waiting": waiting,
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


def iso(value: datetime | None) -> str | None:
    """A UTC time as the API writes it (ISO 8601, ``Z``), or None."""
    return value.isoformat().replace("+00:00", "Z") if value else None
