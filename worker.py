"""The standalone worker process: catalogue-only JSON jobs from high, default and low, with the scheduler."""

from __future__ import annotations

import argparse
import logging
import math
import sys

from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import DeserializationError
from rq.timeouts import JobTimeoutException

from jobs import events, health, logs
from jobs.errors import ForbiddenJob, JobError, PermanentError, TransientError
from jobs.observed import ObservedJob
from jobs.queues import QUEUE_NAMES, SERIALIZER, UNDECODABLE, CatalogJob, connect, make_queues
from jobs.settings import ConfigError, Settings

log = logging.getLogger("worker")


def record_error(job: CatalogJob, exc_type: type, exc_value: BaseException, tb: object) -> bool:
    """Store a readable ``{"type", "message"}`` on the job; permanent errors are not retried."""
    failures = int(job.meta.get("failures", 0)) + 1
    if isinstance(exc_value, DeserializationError):  # RQ itself read the payload before our job class could
        exc_value = ForbiddenJob(UNDECODABLE)
    if isinstance(exc_value, JobError):
        kind, message = exc_value.type, str(exc_value)
    elif isinstance(exc_value, JobTimeoutException):
        kind, message = "JobTimeout", f"The job ran longer than its {job.timeout} s limit and was stopped."
    else:
        kind, message = "InternalError", f"The job failed unexpectedly ({exc_type.__name__})."
    if isinstance(exc_value, PermanentError):
        job.retries_left = 0  # retrying cannot help, so fail at once
    elif isinstance(exc_value, TransientError) and exc_value.retry_after and job.should_retry:
        honour_retry_after(job, exc_value.retry_after)
    if not job.should_retry and failures > 1:
        message = f"{message} (gave up after {failures} attempts)"
    job.meta.update(failures=failures, error={"type": kind, "message": message})
    job.save_meta()
    return True  # go on to RQ's default handling: log it, then retry or fail the job


def honour_retry_after(job: CatalogJob, seconds: float) -> None:
    """Wait at least what the server asked (Retry-After) before the next attempt; RQ saves the change."""
    intervals = list(job.retry_intervals or [0])
    index = max(len(intervals) - (job.retries_left or 0), 0)
    if index < len(intervals):
        # +1: RQ stores scheduled times in whole seconds, truncated, so the retry could come up to 1 s early.
        intervals[index] = max(intervals[index], math.ceil(seconds) + 1)
        job.retry_intervals = intervals


def build_worker(settings: Settings, queue_names: tuple[str, ...] = QUEUE_NAMES, name: str | None = None) -> Worker:
    """A worker on ``queue_names`` (in priority order) that runs only catalogued jobs."""
    connection = connect(settings, socket_timeout=None)
    queues = make_queues(connection)
    return Worker(
        [queues[q] for q in queue_names],
        connection=connection,
        name=name,
        serializer=SERIALIZER,
        job_class=ObservedJob,  # a CatalogJob that logs and times itself
        exception_handlers=[record_error, events.observe_failure],
    )


def queue_name(value: str) -> str:
    if value not in QUEUE_NAMES:
        raise argparse.ArgumentTypeError(f"unknown queue {value!r}; choose from {', '.join(QUEUE_NAMES)}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the worker and work until stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("queues", nargs="*", type=queue_name, help="queues in priority order (default: all)")
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--no-scheduler", action="store_true", help="do not run the scheduler in this worker")
    parser.add_argument("--name", help="worker name (unique per Redis)")
    parser.add_argument("--max-jobs", type=int, help="quit after this many jobs")
    parser.add_argument("--logging-level", help="DEBUG, INFO, WARNING or ERROR (default: LOG_LEVEL)")
    parser.add_argument("--check", action="store_true",
                        help="health check: exit 0 if a worker on this host (or --name) has a fresh heartbeat")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        return check(settings, args.name)
    logs.configure(settings.log_format, args.logging_level or settings.log_level)
    worker = build_worker(settings, tuple(args.queues or QUEUE_NAMES), args.name)
    worker.work(
        burst=args.burst,
        with_scheduler=not args.no_scheduler,
        max_jobs=args.max_jobs,
        logging_level=args.logging_level or settings.log_level,
    )
    return 0


def check(settings: Settings, name: str | None) -> int:
    """Container health check: 0 when this host's worker is alive, 1 (with the reason) when not."""
    try:
        result = health.check_local_worker(connect(settings, socket_timeout=5.0), name)
    except RedisError as exc:
        print(f"worker: unhealthy: Redis unavailable ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(f"worker: {'healthy' if result.ok else 'unhealthy'}: {result.message}", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
