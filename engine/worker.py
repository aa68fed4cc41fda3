"""StackWorker, the one worker: each process runs up to ``threads`` jobs at once in threads, and loses none.

The main thread claims jobs (engine.handoff: a backup copy stays in ``<queue>:intermediate`` until the job
starts) and hands each to a free job thread; everything RQ records stays RQ's own: an Execution per job (so
``rq info``, rq-dashboard and ``get_current_executions()`` see every running job), StartedJobRegistry entries
and heartbeats, results, retries and exception handlers through RQ's ``perform_job``. The guarantees, per job:

- SIGTERM: stop claiming; running jobs finish for up to ``shutdown_grace`` s, then are re-queued at the front;
- a dead process (SIGKILL, OOM, lost host): its beacon lapses and the reaper re-queues its jobs (engine.recovery);
- timeouts: the shared watchdog raises JobTimeoutException in the job's thread (engine.watchdog); a job stuck
  in C past its timeout + ``hang_grace`` is failed from the main thread and the process recycled;
- stop-job (cancel) raises JobStopped in that job's thread only; if it is blocked in C, it is marked stopped
  from outside and the process recycled once its siblings are done;
- recycling (``max_rss_mb``, ``--max-jobs``): stop claiming, let every running job finish, exit ``RECYCLE``.

Cross-cutting concerns are hooks, not overrides of RQ's flow: events and metrics (engine.events) ride in
the start transaction and in RQ's own success and failure transactions, through
``increment_successful_job_count`` / ``increment_failed_job_count``, which RQ calls with its pipeline.
Every RQ method overridden here is pinned by tests/test_rq_contract.py.
"""

from __future__ import annotations

import logging
import os
import queue as stdlib_queue
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import worker_registration
from rq.command import handle_command, parse_payload
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.job_lifecycle import call_exception_handlers
from rq.queue import Queue
from rq.registry import clean_registries
from rq.timeouts import JobTimeoutException
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

from engine import events, failure, logs, recovery
from engine.connection import eviction_warning
from engine.handoff import HOLD, STOP, SafeQueue, give_back, intermediate_key
from engine.queues import SERIALIZER, CatalogJob
from engine.scheduler import KeepsScheduler
from engine.settings import Settings
from engine.watchdog import WatchdogDeathPenalty, raise_in_thread

log = logging.getLogger("worker")

RECYCLE = 3  # exit code: "replace me" (memory limit, a hung job), as opposed to 0 "done"
INTERRUPTED = "Interrupted"
MONITOR_INTERVAL = 3  # seconds between a running job's heartbeats in Redis
_HEARTBEAT_EVERY = 1.0  # seconds between the worker key's own heartbeats; its TTL is minutes
_STOP_GRACE = 2.0  # seconds a stopped job may take to notice; after that it is blocked in C
_WAIT_STEP = 0.5  # how often the main thread wakes to heartbeat, enforce grace and look for hung jobs


class JobStopped(BaseException):
    """Raised in a job's thread by stop-job (BaseException: ``except Exception`` in a job cannot swallow it)."""


@dataclass
class Running:
    """One job handed to a job thread."""

    job: Job
    queue: Queue
    execution: Execution
    started: float = field(default_factory=time.monotonic)
    thread_id: int | None = None
    stop_requested: float | None = None  # monotonic time of a stop-job command


def rss_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


# RQ's per-job INFO lines (dequeued, "Job OK", "Successfully completed"): our job events say the same, and
# formatting and writing five lines per job was about a quarter of a no-op job's CPU (make bench).
RQ_PER_JOB_LINES = frozenset({
    "Worker %s: %s: %s (%s)",
    "Worker %s: %s: %s",
    "Successfully completed %s job in %ss on worker %s",
    "Successfully completed job %s in %ss on worker %s",
})


class QuietJobLines:
    """RQ's worker logger without its per-job INFO lines (the job events replace them); all else passes."""

    def __init__(self, logger: logging.Logger):
        self._logger = logger

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if msg not in RQ_PER_JOB_LINES:
            self._logger.info(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (one getrusage call; Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def queue_names(queues: Any) -> list[str]:
    """Names of the queues RQ's CLI or our own entry point passed (Queue objects or names)."""
    items = [queues] if isinstance(queues, str | Queue) else list(queues)
    return [q.name if isinstance(q, Queue) else str(q) for q in items]


class StackWorker(KeepsScheduler, SimpleWorker):
    """RQ's SimpleWorker running up to ``threads`` catalogued JSON jobs at once, with the guarantees above."""

    death_penalty_class = WatchdogDeathPenalty  # SIGALRM cannot reach job threads
    queue_class = SafeQueue
    job_class = CatalogJob
    log_result_lifespan = False  # one log line less per job; the TTL is in the settings
    max_connection_wait_time = 2.0  # RQ backs off up to 60 s between reconnects; we want seconds

    def __init__(self, queues: Any, *args: Any, settings: Settings | None = None, threads: int | None = None,
                 exception_handlers: Sequence[Callable] | Callable | None = None, **kwargs: Any):
        settings = settings or Settings.from_env()
        # Whatever RQ's CLI was given, jobs are JSON, catalogue-checked and claimed with a backup copy.
        kwargs.update(serializer=SERIALIZER, job_class=CatalogJob, queue_class=SafeQueue)
        kwargs.setdefault("job_monitoring_interval", MONITOR_INTERVAL)
        given = [] if exception_handlers is None else list(exception_handlers) if isinstance(
            exception_handlers, list | tuple) else [exception_handlers]
        handlers = [failure.record_error, events.on_failure, *given]
        self.threads = max(1, threads or settings.worker_threads)
        self.max_rss_mb = settings.worker_max_rss_mb
        self.hang_grace = settings.worker_hang_grace
        self.shutdown_grace = settings.shutdown_grace
        self.lost_after = settings.worker_lost_after
        self.exit_code = 0
        self._local = threading.local()
        self._running: dict[str, Running] = {}
        self._changed = threading.Condition()
        self._owners: dict[str, int] = {}  # job id → thread that records its outcome (first to claim it)
        self._stopped_ids: set[str] = set()
        self._pending: dict[str, Pipeline] = {}  # job id → pipeline holding its Execution until it starts
        self._inbox: stdlib_queue.SimpleQueue[Running] = stdlib_queue.SimpleQueue()
        self._beacon: recovery.Beacon | None = None
        self._last_heartbeat = self._last_job_heartbeats = self._last_suspension_check = 0.0
        self._last_upkeep = 0.0
        self._cached_state: str | None = None
        self._redis_down = False
        STOP.clear()  # one worker per process: a stop belongs to this worker
        super().__init__(queue_names(queues), *args, exception_handlers=handlers, **kwargs)
        self.log = QuietJobLines(self.log)  # type: ignore[assignment]

    # --- lifecycle ------------------------------------------------------------------------------------------
    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        """RQ's start-up, then the liveness beacon and the job threads."""
        super().bootstrap(*args, **kwargs)
        warning = eviction_warning(self.connection)
        if warning:
            self.log.warning(warning)
        self._beacon = recovery.Beacon(recovery.side_connection(self.connection), self.name, self.lost_after,
                                       running=self.running_job_ids)
        self._beacon.beat()  # alive before the first job can be claimed
        self._beacon.start()
        HOLD.batch = self.threads
        for number in range(self.threads):
            threading.Thread(target=self._job_thread, name=f"job-{number}", daemon=True).start()

    def request_stop(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGINT: stop claiming; the grace period runs from the first signal, later ones change nothing."""
        if self._shutdown_requested_date is None:
            self._shutdown_requested_date = now()
            self.log.info("Worker %s: warm shut down requested; %d job(s) running, grace %s s",
                          self.name, len(self._running), self.shutdown_grace)
        self._stop_requested = True
        STOP.set()  # the claim loop returns at its next poll (engine.handoff), never mid-claim

    def teardown(self) -> None:
        """Let running jobs finish (within the grace after SIGTERM), then RQ deregisters; then the beacon stops."""
        try:
            HOLD.give_back_waiting(self.connection)  # claims next in line (after --max-jobs, --burst) go back
        except RedisError as exc:  # the reaper returns them once Redis is back
            self.log.warning("could not return claimed jobs (%s)", type(exc).__name__)
        self._drain()
        try:
            super().teardown()
        except RedisError as exc:
            self.log.warning("could not record this worker's death (%s)", type(exc).__name__)
        if self._beacon is not None:
            self._beacon.stop()

    def _drain(self) -> None:
        """Wait for running jobs; after SIGTERM + shutdown_grace, re-queue the rest at the front of their queue."""
        if self._running:
            self.log.info("Worker %s: waiting for %d running job(s)", self.name, len(self._running))
        self._wait(lambda: not self._running, give_up=self._grace_over)
        if self._running:
            self._interrupt_all()

    def _grace_over(self) -> bool:
        started = self._shutdown_requested_date
        return started is not None and (now() - started).total_seconds() >= self.shutdown_grace

    def _interrupt_all(self) -> None:
        """Re-queue every job still running at the front; its thread dies with the process, its result ignored."""
        for entry in list(self._running.values()):
            if not self._claim_outcome(entry.job.id):
                continue
            self.log.warning("Worker %s: job %s still running %s s after SIGTERM; re-queueing it", self.name,
                             entry.job.id, self.shutdown_grace)
            recovery.requeue_now(self.connection, entry.job, entry.queue, entry.execution, INTERRUPTED)
            self._forget(entry)

    # --- claiming and handing over --------------------------------------------------------------------------
    def execute_job(self, job: Job, queue: Queue) -> None:
        """Hand the claimed job to a job thread (or give it back if a stop came first), then wait for a free one."""
        try:
            if self._stop_requested and HOLD.active:
                give_back(self.connection, queue.key, job.id)
                self.log.info("Worker %s: returned job %s to %s unstarted", self.name, job.id, queue.name)
                return
            entry = Running(job, queue, self.prepare_execution(job))
            with self._changed:
                self._running[job.id] = entry
            self._inbox.put(entry)
        finally:
            HOLD.clear()  # from here the job thread starts it at once; the backup copy goes in that transaction
        self._wait(lambda: len(self._running) < self.threads, give_up=lambda: self._stop_requested)
        HOLD.batch = max(1, self.threads - len(self._running))  # the next claim fills every free thread

    def _wait(self, done: Callable[[], bool], give_up: Callable[[], bool]) -> None:
        """Block until ``done()`` or ``give_up()``, heartbeating (and so upkeeping jobs) every _WAIT_STEP s."""
        while not give_up():
            with self._changed:
                if done():
                    return
                self._changed.wait(_WAIT_STEP)
            self.heartbeat()

    @property
    def dequeue_timeout(self) -> int:  # type: ignore[override]
        """Poll for short spells while jobs run, so their heartbeats and the grace clock are kept."""
        return 1 if self._running else super().dequeue_timeout

    # --- running a job in a thread ----------------------------------------------------------------------------
    def _job_thread(self) -> None:
        while True:
            entry = self._inbox.get()
            self._local.job_id, self._local.job = entry.job.id, entry.job
            entry.thread_id = threading.get_ident()
            try:
                with logs.context(entry.job.meta.get("request_id"), entry.job.id), events.deferred():
                    self.perform_job(entry.job, entry.queue, entry.execution)
            except recovery.REDIS_DOWN:
                self._after_outage(entry)
            except BaseException:  # noqa: B036 - a late JobStopped after the job ended; the thread must live on
                self.log.exception("Worker %s: job thread error after job %s", self.name, entry.job.id)
            finally:
                self._local.job_id = self._local.job = None
                self._forget(entry)

    def running_job_ids(self) -> set[str]:
        """The jobs handed to a thread and not yet recorded as ended (the beacon's failover check reads it)."""
        with self._changed:
            return set(self._running)

    def _forget(self, entry: Running) -> None:
        with self._changed:
            if self._running.get(entry.job.id) is entry:
                del self._running[entry.job.id]
            if entry.thread_id in (None, threading.get_ident()):
                self._owners.pop(entry.job.id, None)
                self._stopped_ids.discard(entry.job.id)
            self._changed.notify_all()

    def _claim_outcome(self, job_id: str) -> bool:
        """Whether this thread records the job's outcome: the first to ask owns it (its thread, or the main
        thread failing a hung job or re-queueing it after SIGTERM); a later result from the other is dropped."""
        with self._changed:
            owner = self._owners.setdefault(job_id, threading.get_ident())
        return owner == threading.get_ident()

    def _after_outage(self, entry: Running) -> None:
        """Redis went away while the job ended: wait for it, then re-queue the job if its end was not recorded."""
        self.log.warning("Worker %s: Redis went away during job %s", self.name, entry.job.id)
        recovery.wait_for_redis(self.connection, logger=self.log)
        entry.job.refresh()
        if entry.job.get_status(refresh=False) == JobStatus.STARTED and self._claim_outcome(entry.job.id):
            recovery.requeue_now(self.connection, entry.job, entry.queue, entry.execution, INTERRUPTED)

    def prepare_execution(self, job: Job) -> Execution:
        """RQ's Execution, its writes held for the job's start transaction (one round trip, not two)."""
        pipeline = self.connection.pipeline()
        execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipeline, worker_name=self.name)
        self.executions[execution.id] = execution
        self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
        self._pending[job.id] = pipeline
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """RQ's start bookkeeping plus the Execution, the end of the claim and the start event: one transaction."""
        with self._pending.pop(job.id, None) or self.connection.pipeline() as pipeline:
            heartbeat_ttl = self.get_heartbeat_ttl(job)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)
            job.heartbeat(now(), heartbeat_ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            pipeline.persist(job.key)
            # Every claim keeps a backup copy (engine.handoff), not only single-queue ones: drop it now.
            pipeline.lrem(intermediate_key(f"{Queue.redis_queue_namespace_prefix}{job.origin}"), 1, job.id)
            events.on_start(job, self.name, pipeline)
            pipeline.execute()

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Mark the end in memory only: the success or failure transaction that follows saves the job anyway."""
        job.ended_at = now()
        job.last_heartbeat = job.ended_at

    # --- outcomes: only the owner records one; events ride in RQ's transactions -------------------------------
    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution) -> None:
        """RQ's success transaction, unless the main thread already settled this job (hung, or after SIGTERM)."""
        if self._claim_outcome(job.id):
            super().handle_job_success(job, queue, started_job_registry, execution)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = "",
                           execution: Execution | None = None) -> None:
        """RQ's failure transaction (retry, stopped or failed), unless another thread settled this job."""
        if self._claim_outcome(job.id):
            super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)

    def increment_successful_job_count(self, pipeline: Pipeline | None = None) -> None:
        """Hook inside RQ's success transaction: the job's finish event and duration ride in it."""
        super().increment_successful_job_count(pipeline)
        job = getattr(self._local, "job", None)
        if job is not None:
            events.on_finish(job, pipeline)

    def increment_failed_job_count(self, pipeline: Pipeline | None = None) -> None:
        """Hook inside RQ's failure transaction: the failure's metrics (held by events.deferred) ride in it."""
        super().increment_failed_job_count(pipeline)
        if pipeline is not None:
            events.flush(pipeline)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """Expected failures (engine.errors.JobError) log one event line, not RQ's traceback; others keep it."""
        if failure.is_expected(exc_info[1]):
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)

    # --- stop-job -------------------------------------------------------------------------------------------
    @property
    def _stopped_job_id(self) -> str | None:  # type: ignore[override]
        """RQ keeps one stopped job id; here it is per job thread (handle_job_failure reads it)."""
        job_id = getattr(self._local, "job_id", None)
        return job_id if job_id in self._stopped_ids else None

    @_stopped_job_id.setter
    def _stopped_job_id(self, value: str | None) -> None:
        if value is None:
            self._stopped_ids.discard(getattr(self._local, "job_id", None))
        else:
            self._stopped_ids.add(value)

    def handle_payload(self, message: dict[str, Any]) -> None:
        """Commands from the pubsub thread: stop-job finds the job among all running ones."""
        payload = parse_payload(message)
        if payload.get("command") == "stop-job":
            self.stop_job(str(payload.get("job_id") or ""))
        else:
            handle_command(self, payload)

    def request_stop_execution(self, execution_id: str) -> None:
        """RQ 3's stop-execution command: stop the job of that execution, leaving its siblings alone."""
        execution = self.executions.get(execution_id)
        if execution is None:
            self.log.warning("Worker %s: not running execution %s, stop ignored", self.name, execution_id)
            return
        self.stop_job(execution.job_id)

    def stop_job(self, job_id: str) -> bool:
        """Stop a running job by raising JobStopped in its thread; False if this worker is not running it."""
        with self._changed:
            entry = self._running.get(job_id)
            if entry is None or entry.thread_id is None:
                self.log.warning("Worker %s: not running job %s, stop ignored", self.name, job_id)
                return False
            self._stopped_ids.add(job_id)
            entry.stop_requested = time.monotonic()
            return raise_in_thread(entry.thread_id, JobStopped)

    # --- the main thread's upkeep while jobs run --------------------------------------------------------------
    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's worker heartbeat, at most once a second, plus job upkeep; a Redis outage is waited out."""
        if timeout is not None or pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        moment = time.monotonic()
        try:
            if moment - self._last_heartbeat >= _HEARTBEAT_EVERY:
                self._last_heartbeat = moment
                super().heartbeat()
            if self._running and moment - self._last_upkeep >= _WAIT_STEP:
                self._last_upkeep = moment  # looking over every running job on each call cost more than a job
                self._upkeep(moment)
            self._redis_down = False
        except recovery.REDIS_DOWN as exc:
            if not self._redis_down:
                self.log.warning("Worker %s: heartbeat failed (%s)", self.name, type(exc).__name__)
            self._redis_down = True
        # Before every claim, cheaply: the peak (one getrusage) bounds the current size; /proc only above it.
        if self.max_rss_mb and not self._stop_requested and peak_rss_mb() > self.max_rss_mb:
            if rss_mb() > self.max_rss_mb:
                self._recycle(f"resident memory {rss_mb():.0f} MB is over the {self.max_rss_mb:.0f} MB limit")

    def _upkeep(self, moment: float) -> None:
        """Refresh running jobs' heartbeats every job_monitoring_interval and fail the hung ones."""
        entries = list(self._running.values())
        if moment - self._last_job_heartbeats >= self.job_monitoring_interval:
            self._last_job_heartbeats = moment
            for entry in entries:
                self.maintain_heartbeats(entry.job, entry.execution)
        for entry in entries:
            limit = (entry.job.timeout or Queue.DEFAULT_TIMEOUT) + self.hang_grace
            if entry.stop_requested is not None and moment - entry.stop_requested > _STOP_GRACE:
                self._settle_from_outside(entry, stopped=True)
            elif entry.job.timeout != -1 and moment - entry.started > limit:
                self._settle_from_outside(entry, stopped=False)

    def _settle_from_outside(self, entry: Running, stopped: bool) -> None:
        """A job blocked in C ignored its stop or timeout: record it stopped or failed here, recycle the process."""
        job = entry.job
        if not self._claim_outcome(job.id):
            return
        job.ended_at = now()
        self._local.job_id = job.id  # handle_job_failure asks _stopped_job_id about the current thread's job
        try:
            if stopped:
                self.log.warning("Worker %s: job %s did not stop within %.0f s; stopping it from outside",
                                 self.name, job.id, _STOP_GRACE)
                self._stopped_ids.add(job.id)
                self.handle_job_failure(job, entry.queue, exc_string="Stopped by request.", execution=entry.execution)
            else:
                seconds = job.timeout or Queue.DEFAULT_TIMEOUT
                self.log.error("Worker %s: job %s still running %.0f s past its timeout", self.name, job.id,
                               self.hang_grace)
                error = JobTimeoutException(f"Task exceeded maximum timeout value ({seconds} seconds) and did not stop")
                self.handle_exception(job, JobTimeoutException, error, None)
                self.handle_job_failure(job, entry.queue, exc_string=str(error), execution=entry.execution)
        finally:
            self._local.job_id = None
        with self._changed:
            self._running.pop(job.id, None)
            self._changed.notify_all()
        self._recycle(f"job {job.id} was blocked")

    def _recycle(self, reason: str) -> None:
        """Stop claiming, let the other jobs finish, then exit RECYCLE so the supervisor starts a fresh process."""
        if not self._stop_requested:
            self.log.warning("Worker %s: recycling this process: %s", self.name, reason)
        self._stop_requested = True
        STOP.set()
        self.exit_code = RECYCLE

    # --- cheaper bookkeeping, one maintenance path, and riding out Redis outages -----------------------------
    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """Busy while any job runs; skip the write when the state did not change (one round trip per job)."""
        if state == WorkerStatus.IDLE and self._running:
            state = WorkerStatus.BUSY
        if pipeline is None and state == self._cached_state:
            self._state = state
            return
        self._cached_state = state
        super().set_state(state, pipeline)

    def clean_registries(self) -> None:
        """RQ's maintenance minus its intermediate-list sweep, which would fail a claim the reaper returns."""
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                self.log.info("Worker %s: cleaning registries for queue: %s", self.name, queue.name)
                clean_registries(queue, self._exc_handlers)
                worker_registration.clean_worker_registry(queue)
                queue.release_maintenance_lock()
        self.last_cleaned_at = now()

    def check_for_suspension(self, burst: bool) -> None:
        """Top of every loop, at most once a second (RQ's check is a transaction per job): `rq suspend` is
        noticed within a second; a Redis outage is waited out instead of letting RQ quit."""
        moment = time.monotonic()
        if moment - self._last_suspension_check < _HEARTBEAT_EVERY:
            return None
        self._last_suspension_check = moment
        while True:
            try:
                return super().check_for_suspension(burst)
            except recovery.REDIS_DOWN:
                recovery.wait_for_redis(self.connection, lambda: self._stop_requested, self.log)
                if self._stop_requested:
                    return None
