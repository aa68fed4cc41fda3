"""The error policy: what a failed attempt records for users, and whether it is retried.

``record_error`` is an RQ exception handler. It puts a readable ``{"type", "message"}`` in ``job.meta`` (never a
traceback; the worker writes the meta with the failure's records), fails permanent errors at once and stretches
the next retry to a server's Retry-After.
"""

from __future__ import annotations

import math

from rq.exceptions import DeserializationError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from engine.errors import UNDECODABLE, ForbiddenJob, JobError, PermanentError, TransientError


def describe(job: Job, exc_type: type, exc_value: BaseException) -> tuple[str, str]:
    """The error class and message users see for this exception."""
    if isinstance(exc_value, DeserializationError):  # RQ itself read the payload before our job class could
        exc_value = ForbiddenJob(UNDECODABLE)
    if isinstance(exc_value, JobError):
        return exc_value.type, str(exc_value)
    if isinstance(exc_value, JobTimeoutException):
        return "JobTimeout", f"The job ran longer than its {job.timeout} s limit and was stopped."
    return "InternalError", f"The job failed unexpectedly ({exc_type.__name__})."


def is_expected(exc_value: BaseException | None) -> bool:
    """An error the job reports on purpose (a JobError): one log line, no traceback."""
    return isinstance(exc_value, JobError | DeserializationError)


def record_error(job: Job, exc_type: type, exc_value: BaseException, tb: object) -> bool:
    """Put a readable ``{"type", "message"}`` on the job; permanent errors are not retried."""
    failures = int(job.meta.get("failures", 0)) + 1
    kind, message = describe(job, exc_type, exc_value)
    if isinstance(exc_value, PermanentError | DeserializationError):
        job.retries_left = 0  # retrying cannot help, so fail at once
    elif isinstance(exc_value, TransientError) and exc_value.retry_after and job.should_retry:
        honour_retry_after(job, exc_value.retry_after)
    if not job.should_retry and failures > 1:
        message = f"{message} (gave up after {failures} attempts)"
    job.meta.update(failures=failures, error={"type": kind, "message": message})
    return True  # go on to the next handler, then RQ retries or fails the job


def honour_retry_after(job: Job, seconds: float) -> None:
    """Wait at least what the server asked (Retry-After) before the next attempt; RQ saves the change."""
    intervals = list(job.retry_intervals or [0])
    index = max(len(intervals) - (job.retries_left or 0), 0)
    if index < len(intervals):
        # +1: RQ stores scheduled times in whole seconds, truncated, so the retry could come up to 1 s early.
        intervals[index] = max(intervals[index], math.ceil(seconds) + 1)
        job.retry_intervals = intervals
