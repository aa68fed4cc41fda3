"""The standalone worker process: catalogue-only JSON jobs from high, default and low, with the scheduler."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import uuid

from redis.exceptions import RedisError
from rq.exceptions import DeserializationError
from rq.timeouts import JobTimeoutException

from engine import catalog, events, health, logs
from engine.errors import ForbiddenJob, JobError, PermanentError, TransientError
from engine.executor import ThreadedWorker
from engine.handoff import SafeQueue
from engine.observed import ObservedJob
from engine.queues import QUEUE_NAMES, SERIALIZER, UNDECODABLE, CatalogJob, connect, make_queues
from engine.safe_worker import MONITOR_INTERVAL, SafeWorker, wait_for_redis
from engine.settings import ConfigError, Settings
from engine.supervisor import Supervisor, die_with_parent

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


def build_worker(
    settings: Settings, queue_names: tuple[str, ...] = QUEUE_NAMES, name: str | None = None, threads: int = 0
) -> SafeWorker | ThreadedWorker:
    """A worker on ``queue_names`` (in priority order) that runs only catalogued jobs and loses none.

    ``threads`` > 0: a ThreadedWorker running that many jobs at once (see engine/executor.py, docs/performance.md).
    """
    connection = connect(settings, socket_timeout=None)
    wait_for_redis(connection, log=log)  # a worker started during a Redis outage waits instead of crashing
    if threads:
        return ThreadedWorker(
            [make_queues(connection)[q] for q in queue_names],
            threads=threads,
            max_rss_mb=settings.worker_max_rss_mb,
            hang_grace=settings.worker_hang_grace,
            exception_handlers=[record_error, events.observe_failure],
            connection=connection,
            name=name,
            serializer=SERIALIZER,
            job_class=ObservedJob,
        )
    worker = SafeWorker(
        list(queue_names),  # built as SafeQueue, JSON-serialised CatalogJob queues by RQ
        connection=connection,
        name=name,
        serializer=SERIALIZER,
        job_class=ObservedJob,  # a CatalogJob that logs and times itself
        queue_class=SafeQueue,  # claims keep a backup copy until the job starts (engine/handoff.py)
        exception_handlers=[record_error, events.observe_failure],
        job_monitoring_interval=MONITOR_INTERVAL,
    )
    worker.shutdown_grace = settings.shutdown_grace
    worker.lost_after = settings.worker_lost_after
    return worker


def supervise(settings: Settings, args: argparse.Namespace, queue_names: tuple[str, ...]) -> int:
    """Run ``args.processes`` worker processes under a Supervisor (restarts, recycling, job recovery)."""
    connection = connect(settings)
    queues = make_queues(connection)

    def command(slot: int, name: str) -> list[str]:
        max_jobs = args.max_jobs or settings.worker_max_jobs
        cmd = [sys.executable, __file__, *queue_names, "--child", "--name", name, "--threads", str(args.threads)]
        cmd += ["--logging-level", args.logging_level or settings.log_level]
        cmd += ["--max-jobs", str(max_jobs)] if max_jobs else []
        cmd += ["--burst"] if args.burst else []
        return cmd + (["--no-scheduler"] if args.no_scheduler or slot else [])  # one scheduler is enough

    base_name = args.name or uuid.uuid4().hex[:12]
    chosen = [queues[q] for q in queue_names]
    handlers = [record_error, events.observe_failure]
    return Supervisor(command, args.processes, connection, chosen, handlers, base_name, burst=args.burst).run()


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
    parser.add_argument("--processes", type=int, help="supervised worker processes (default WORKER_PROCESSES; 0: none)")
    parser.add_argument("--threads", type=int, help="jobs at once per process (WORKER_THREADS; 0: fork per job)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # started by the supervisor
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        catalog.check_settings()  # the jobs' own settings too: a bad FETCH_* or SMTP_* stops start-up
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        return check(settings, args.name)
    logs.configure(settings.log_format, args.logging_level or settings.log_level)
    args.processes = settings.worker_processes if args.processes is None else args.processes
    args.threads = settings.worker_threads if args.threads is None else args.threads
    if args.processes and not args.child:
        return supervise(settings, args, tuple(args.queues or QUEUE_NAMES))
    if args.child:
        die_with_parent()
    worker = build_worker(settings, tuple(args.queues or QUEUE_NAMES), args.name, threads=args.threads)
    worker.work(
        burst=args.burst,
        with_scheduler=not args.no_scheduler,
        max_jobs=args.max_jobs,
        logging_level=args.logging_level or settings.log_level,
    )
    return getattr(worker, "exit_code", 0)


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
