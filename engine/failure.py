"""The error policy: what a failed attempt records for users, and whether it is retried.

``record_error`` is an RQ exception handler. It puts a readable ``{"type", "message"}`` in ``job.meta`` (never a
traceback; the worker writes the meta with the failure's records), fails permanent errors at once and stretches
the next retry to a server's Retry-After.

What one submission may cost the workers is bounded, so that retries cannot multiply a flood:
- a timeout (the job's own, or a TimedOut error such as a page that never answers) is retried once, not on every
  interval: a second full-length wait rarely ends differently, and each one holds a worker thread throughout;
- a retry is made only while a full-length attempt still fits the job's time budget (JOB_TIME_BUDGET): the sum of
  its attempts' run times never exceeds the budget (or its one first attempt, when its timeout is longer).
"""

from __future__ import annotations

import math

from rq.exceptions import DeserializationError
from rq.job import Job
from rq.timeouts import JobTimeoutException
from rq.utils import now

from engine.errors import UNDECODABLE, ForbiddenJob, JobError, PermanentError, TimedOut, TransientError

TIMEOUT_ATTEMPTS = 2  # a timeout is retried once


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


def record_error(job: Job, exc_type: type, exc_value: BaseException, tb: object, budget: float | None = None) -> bool:
    """Put a readable ``{"type", "message"}`` on the job; permanent errors are not retried, timeouts once, and
    no retry is made past the job's time ``budget`` (seconds of worker time over all attempts; None: none)."""
    failures = int(job.meta.get("failures", 0)) + 1
    timeouts = int(job.meta.get("timeouts", 0)) + is_timeout(exc_value)
    worked = float(job.meta.get("worked", 0.0)) + attempt_seconds(job)
    kind, message = describe(job, exc_type, exc_value)
    reason = ""
    if isinstance(exc_value, PermanentError | DeserializationError):
        job.retries_left = 0  # retrying cannot help, so fail at once
    elif job.should_retry and timeouts >= TIMEOUT_ATTEMPTS:
        job.retries_left, reason = 0, f"it timed out {timeouts} times"
    elif job.should_retry and budget is not None and worked + max(job.timeout or 0, 0) > budget:
        job.retries_left = 0
        reason = f"one more could take its {job.timeout} s limit past the {budget:g} s of worker time a job may use"
    elif isinstance(exc_value, TransientError) and exc_value.retry_after and job.should_retry:
        honour_retry_after(job, exc_value.retry_after)
    if reason:
        message = f"{message} (gave up after {failures} attempt{'s' if failures > 1 else ''}: {reason})"
    elif not job.should_retry and failures > 1:
        message = f"{message} (gave up after {failures} attempts)"
    job.meta.update(failures=failures, timeouts=timeouts, worked=round(worked, 3),
                    error={"type": kind, "message": message})
    return True  # go on to the next handler, then RQ retries or fails the job


def is_timeout(exc_value: BaseException | None) -> bool:
    """A wait that ran out: the job's own timeout, or a TimedOut error the job raised."""
    return isinstance(exc_value, JobTimeoutException | TimedOut)


def attempt_seconds(job: Job) -> float:
    """How long the attempt that just failed ran."""
    if job.started_at is None:
        return 0.0
    try:
        return max(0.0, (now() - job.started_at).total_seconds())
    except TypeError:  # a naive time from an older record
        return 0.0


def honour_retry_after(job: Job, seconds: float) -> None:
    """Wait at least what the server asked (Retry-After) before the next attempt; RQ saves the change."""
    intervals = list(job.retry_intervals or [0])
    index = max(len(intervals) - (job.retries_left or 0), 0)
    if index < len(intervals):
        # +1: RQ stores scheduled times in whole seconds, truncated, so the retry could come up to 1 s early.
        intervals[index] = max(intervals[index], math.ceil(seconds) + 1)
        job.retry_intervals = intervals
