"""The worker dyno: WORKER_PROCESSES supervised processes × WORKER_THREADS job threads (engine/worker.py),
catalogue-only JSON jobs from high, default and low, with exactly one scheduler (in the first process)."""

from __future__ import annotations

import argparse
import logging
import sys
import uuid

from redis.exceptions import RedisError

from engine import catalog, health, logs
from engine.connection import connect
from engine.recovery import wait_for_redis
from engine.settings import QUEUE_NAMES, ConfigError, Settings
from engine.supervisor import Supervisor, die_with_parent
from engine.worker import StackWorker

log = logging.getLogger("worker")


def build_worker(
    settings: Settings, queue_names: tuple[str, ...] = QUEUE_NAMES, name: str | None = None, threads: int = 0
) -> StackWorker:
    """A worker on ``queue_names`` (in priority order) that runs only catalogued jobs and loses none."""
    connection = connect(settings, socket_timeout=10.0)  # no blocking pops: a longer call means Redis is gone
    wait_for_redis(connection, logger=log)  # a worker started during a Redis outage waits instead of crashing
    return StackWorker(list(queue_names), connection=connection, name=name, settings=settings,
                       threads=threads or settings.worker_threads)


def supervise(settings: Settings, args: argparse.Namespace, queue_names: tuple[str, ...]) -> int:
    """Run ``args.processes`` worker processes under a Supervisor (restarts, recycling, job recovery)."""

    def command(slot: int, name: str) -> list[str]:
        max_jobs = args.max_jobs or settings.worker_max_jobs
        cmd = [sys.executable, __file__, *queue_names, "--child", "--name", name, "--threads", str(args.threads)]
        cmd += ["--logging-level", args.logging_level or settings.log_level]
        cmd += ["--max-jobs", str(max_jobs)] if max_jobs else []
        cmd += ["--burst"] if args.burst else []
        return cmd + (["--no-scheduler"] if args.no_scheduler or slot else [])  # exactly one scheduler

    base_name = args.name or uuid.uuid4().hex[:12]
    return Supervisor(command, args.processes, connect(settings), base_name, burst=args.burst,
                      shutdown_grace=settings.shutdown_grace).run()


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
    parser.add_argument("--processes", type=int,
                        help="supervised worker processes (default WORKER_PROCESSES; 0: one worker in this process)")
    parser.add_argument("--threads", type=int, help="jobs at once per process (default WORKER_THREADS)")
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
    return worker.exit_code


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
