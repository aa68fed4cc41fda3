"""The standalone worker process: catalogue-only JSON jobs from high, default and low, with the scheduler."""

from __future__ import annotations

import argparse
import logging
import sys

from rq.exceptions import DeserializationError
from rq.timeouts import JobTimeoutException

from jobs.errors import ForbiddenJob, JobError, PermanentError
from jobs.handoff import SafeQueue
from jobs.queues import QUEUE_NAMES, SERIALIZER, UNDECODABLE, CatalogJob, connect
from jobs.safe_worker import MONITOR_INTERVAL, SafeWorker, wait_for_redis
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
    if not job.should_retry and failures > 1:
        message = f"{message} (gave up after {failures} attempts)"
    job.meta.update(failures=failures, error={"type": kind, "message": message})
    job.save_meta()
    return True  # go on to RQ's default handling: log it, then retry or fail the job


def build_worker(
    settings: Settings, queue_names: tuple[str, ...] = QUEUE_NAMES, name: str | None = None
) -> SafeWorker:
    """A worker on ``queue_names`` (in priority order) that runs only catalogued jobs and loses none."""
    connection = connect(settings, socket_timeout=None)
    wait_for_redis(connection, log=log)  # a worker started during a Redis outage waits instead of crashing
    worker = SafeWorker(
        list(queue_names),  # built as SafeQueue, JSON-serialised CatalogJob queues by RQ
        connection=connection,
        name=name,
        serializer=SERIALIZER,
        job_class=CatalogJob,
        queue_class=SafeQueue,  # claims keep a backup copy until the job starts (jobs/handoff.py)
        exception_handlers=[record_error],
        job_monitoring_interval=MONITOR_INTERVAL,
    )
    worker.shutdown_grace = settings.shutdown_grace
    worker.lost_after = settings.worker_lost_after
    return worker


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
    parser.add_argument("--logging-level", default="INFO")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    worker = build_worker(settings, tuple(args.queues or QUEUE_NAMES), args.name)
    worker.work(
        burst=args.burst,
        with_scheduler=not args.no_scheduler,
        max_jobs=args.max_jobs,
        logging_level=args.logging_level,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
