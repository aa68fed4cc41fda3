"""StackWorker, the one worker: an RQ worker that owns its loop and runs up to ``threads`` jobs at once in threads.

Like the async worker proposed upstream for RQ, it overrides only ``work()`` (and ``__init__``, for its settings),
and uses RQ's public pieces for the rest: birth and death, heartbeats, state, maintenance, the scheduler, RQ's
records. The loop, top to bottom (``work``):

1. claim up to the number of free threads and start them, in one script call (engine.handoff);
2. hand each job to a job thread, which runs it and puts it in the outbox;
3. wait for the first job to end (or a short tick), take every job that ended meanwhile, and write RQ's records
   for all of them in one script call (engine.records; a group commit). Successes, failures, retries (scheduled
   ones too), stop-job and timeouts all end this way.

The guarantees, per job:

- SIGTERM: stop claiming; running jobs finish for up to ``shutdown_grace`` s, then are re-queued at the front;
- a dead process (SIGKILL, OOM, lost host): its beacon lapses and the reaper re-queues its jobs (engine.recovery);
- timeouts: the shared watchdog raises JobTimeoutException in the job's thread (engine.watchdog); a job stuck
  in C past its timeout + ``hang_grace`` is failed from the main thread and the process recycled;
- stop-job (cancel) raises JobStopped in that job's thread only; if it is blocked in C, it is marked stopped
  from outside and the process recycled once its siblings are done;
- recycling (``max_rss_mb``, ``--max-jobs``): stop claiming, let every running job finish, exit ``RECYCLE``.

Callbacks and webhooks named by a queue entry are never run: only catalogued code runs (engine.catalog), and a
forged entry could name any URL or callable.
"""

from __future__ import annotations

import functools
import logging
import os
import queue as stdlib_queue
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from rq.command import parse_payload
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.executions import Execution
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers, format_exc_info
from rq.logutils import setup_loghandlers
from rq.queue import Queue
from rq.suspension import is_suspended
from rq.timeouts import JobTimeoutException
from rq.utils import now
from rq.worker import BaseWorker, WorkerStatus

from engine import events, failure, logs, recovery
from engine.connection import eviction_warning
from engine.handoff import Claim, claim, poll_pause
from engine.queues import SERIALIZER, CatalogJob
from engine.records import Batch, failed, finished
from engine.scheduler import KeptScheduler
from engine.settings import Settings
from engine.watchdog import WATCHDOG, raise_in_thread

log = logging.getLogger("worker")

RECYCLE = 3  # exit code: "replace me" (memory limit, a hung job), as opposed to 0 "done"
INTERRUPTED = "Interrupted"
MONITOR_INTERVAL = 3  # seconds between a running job's heartbeats in Redis
_HEARTBEAT_EVERY = 1.0  # seconds between the worker key's own heartbeats (and suspension checks)
_STOP_GRACE = 2.0  # seconds a stopped job may take to notice; after that it is blocked in C
_TICK = 0.5  # longest the main thread waits for a job to end before it looks after heartbeats and grace


class JobStopped(BaseException):
    """Raised in a job's thread by stop-job (BaseException: ``except Exception`` in a job cannot swallow it)."""


@dataclass
class Running:
    """One job handed to a job thread, and how it ended."""

    job: Job
    queue: Queue
    execution: Execution
    started: float = field(default_factory=time.monotonic)
    thread_id: int | None = None
    inside: bool = False  # the thread is inside the job's code: a stop or timeout may be raised in it
    settled: bool = False  # its end is taken (by its thread, or by the main thread for a job blocked in C)
    stop_requested: float | None = None  # monotonic time of a stop-job command
    has_dependencies: bool = False  # whether it waited for other jobs (RQ keeps a set of them only then)
    value: Any = None
    exc_info: tuple[Any, Any, Any] | None = None


def rss_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (one getrusage call; Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def queue_names(queues: Any) -> list[str]:
    """Names of the queues RQ's CLI or our own entry point passed (Queue objects or names)."""
    items = [queues] if isinstance(queues, str | Queue) else list(queues)
    return [q.name if isinstance(q, Queue) else str(q) for q in items]


class StackWorker(BaseWorker):
    """An RQ worker running up to ``threads`` catalogued JSON jobs at once, with the guarantees above."""

    job_class = CatalogJob

    def __init__(self, queues: Any, *args: Any, settings: Settings | None = None, threads: int | None = None,
                 exception_handlers: Sequence[Callable] | Callable | None = None, **kwargs: Any):
        """RQ's worker with our settings; whatever RQ's CLI was given, jobs are JSON and catalogue-checked."""
        settings = settings or Settings.from_env()
        kwargs.update(serializer=SERIALIZER, job_class=CatalogJob, queue_class=Queue)
        kwargs.setdefault("job_monitoring_interval", MONITOR_INTERVAL)
        given = [] if exception_handlers is None else list(exception_handlers) if isinstance(
            exception_handlers, list | tuple) else [exception_handlers]
        self.handlers: list[Callable] = [functools.partial(failure.record_error, budget=settings.job_time_budget),
                                         events.on_failure, *given]
        self.threads = max(1, threads or settings.worker_threads)
        self.max_rss_mb = settings.worker_max_rss_mb
        self.hang_grace = settings.worker_hang_grace
        self.shutdown_grace = settings.shutdown_grace
        self.lost_after = settings.worker_lost_after
        self.client_cap = settings.client_concurrency  # jobs of one client running at once, pool-wide (0: no cap)
        self.exit_code = 0
        self.running: dict[str, Running] = {}
        self.stopping = False
        self.stop_asked_at: float | None = None  # monotonic time of the first SIGTERM
        self._lock = threading.Lock()  # guards Running.inside/settled against stop-job and the main thread
        self._inbox: stdlib_queue.SimpleQueue[Running] = stdlib_queue.SimpleQueue()
        self._outbox: stdlib_queue.SimpleQueue[Running] = stdlib_queue.SimpleQueue()
        self._batch: Batch | None = None
        self._beacon: recovery.Beacon | None = None
        self._scheduler: KeptScheduler | None = None
        self._last_heartbeat = self._last_job_heartbeats = 0.0
        self._suspended = False
        # RQ's own maintenance (its started-registry cleanup of abandoned jobs) calls them too.
        super().__init__(queue_names(queues), *args, exception_handlers=self.handlers, **kwargs)
        self._queues = {queue.key: queue for queue in self.queues}

    # --- the loop -------------------------------------------------------------------------------------------
    def work(self, burst: bool = False, logging_level: str | None = None,
             date_format: str = DEFAULT_LOGGING_DATE_FORMAT, log_format: str = DEFAULT_LOGGING_FORMAT,
             max_jobs: int | None = None, max_idle_time: int | None = None, with_scheduler: bool = False,
             **_: Any) -> bool:
        """Claim, run in threads, finish in groups, until stopped (or, in burst mode, until the queues are empty)."""
        self._start(logging_level, date_format, log_format, with_scheduler, burst)
        completed, empty_polls, idle_since = 0, 0, time.monotonic()
        try:
            while True:
                self._upkeep()
                free = self.threads - len(self.running)
                if max_jobs:
                    free = min(free, max_jobs - completed - len(self.running))
                claims = self._claim(free) if free > 0 and not self.stopping and not self._suspended else []
                for claimed in claims:
                    self._hand_over(claimed)
                empty_polls = 0 if claims else empty_polls + 1
                if self.running or claims:
                    idle_since = time.monotonic()
                if not self.running:
                    if self.stopping or (burst and not claims) or (max_jobs and completed >= max_jobs):
                        break
                    if max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                        break
                wait = _TICK if free <= len(claims) or self.stopping else poll_pause(empty_polls)
                completed += self._finish(self._collect(wait))
                if self.stopping and self._grace_over():
                    self._interrupt_all()
        finally:
            self._stop()
        return bool(completed)

    def _claim(self, count: int) -> list[Claim]:
        """Take and start up to ``count`` jobs; a Redis outage is waited out."""
        try:
            return claim(self.connection, self.queues, count, self.name, worker_key=self.key,
                         executions_key=self.executions_key, monitoring_interval=self.job_monitoring_interval,
                         client_cap=self.client_cap)
        except recovery.REDIS_DOWN:
            self._wait_for_redis()
            return []

    def _hand_over(self, claimed: Claim) -> None:
        """Build the job from the hash its claim read and give it to a job thread."""
        job = CatalogJob(claimed.job_id, connection=self.connection, serializer=SERIALIZER)
        job.restore(claimed.raw)  # the hash as it was before the claim started it: add what the claim wrote
        job.worker_name, job.started_at = self.name, claimed.execution.created_at
        job.last_heartbeat = job.started_at
        run = Running(job, self._queues[claimed.queue_key], claimed.execution,
                      has_dependencies=b"dependency_ids" in claimed.raw or b"dependency_id" in claimed.raw)
        self.executions[claimed.execution.id] = claimed.execution
        self.running[job.id] = run
        events.on_start(job, self.name, self._pending().pipe)  # its queue wait rides in the next finish
        self._inbox.put(run)

    def _collect(self, wait: float) -> list[Running]:
        """The jobs that ended: wait up to ``wait`` s for the first, then take all that are there (one group)."""
        try:
            ended = [self._outbox.get(timeout=wait)]
        except stdlib_queue.Empty:
            return []
        while True:
            try:
                ended.append(self._outbox.get_nowait())
            except stdlib_queue.Empty:
                return ended

    def _finish(self, ended: list[Running], force: bool = False) -> int:
        """Write RQ's records of every ended job in one script call; then release dependents. Returns the count.

        Start metrics wait for the next finish (``force``: send them now)."""
        if not ended and not force:
            return 0
        batch = self._pending()
        tickets = {}
        with events.deferred():
            for run in ended:
                since = len(batch)
                if self._record(batch, run):  # it ended for good: do dependents wait for it?
                    # RQ's cleanup EXPIREs the dependents' set, which exists only when there are some.
                    tickets[run.job.id] = batch.want("EXPIRE", run.job.dependents_key, since)
            if ended and len(ended) == len(self.running):
                self.set_state(WorkerStatus.IDLE, pipeline=batch.pipe)
            events.flush(batch.pipe)
        replies = self._send(batch, ended)
        for run in ended:
            self.running.pop(run.job.id, None)
            if run.job.id in tickets and replies and replies[tickets[run.job.id]]:  # after the commit, as RQ does
                try:
                    run.queue.enqueue_dependents(run.job)
                except RedisError:  # RQ's ready-registry cleanup enqueues them later
                    self.log.exception("Worker %s: could not enqueue dependents of job %s", self.name, run.job.id)
        return len(ended)

    def _record(self, batch: Batch, run: Running) -> bool:
        """One job's end: RQ's records (and the handlers for a failure) into the batch; False if it is retried."""
        job = run.job
        job.ended_at = job.last_heartbeat = now()
        if not run.has_dependencies:
            batch.absent.add(job.dependencies_key)
        if run.exc_info is None:
            with logs.context(job.meta.get("request_id"), job.id):
                finished(batch, self, job, run.execution, run.value)
                events.on_finish(job, batch.pipe)
            return True
        exc_type, exc_value, tb = run.exc_info
        stopped = isinstance(exc_value, JobStopped)
        with logs.context(job.meta.get("request_id"), job.id):
            if not failure.is_expected(exc_value) and not stopped:
                self.log.error("Worker %s: job %s: exception raised while executing\n%s", self.name, job.id,
                               format_exc_info(run.exc_info))
            try:
                call_exception_handlers(self.handlers, job, exc_type, exc_value, tb)
            except Exception:  # a broken handler must not take the loop down; the failure is recorded anyway
                self.log.exception("Worker %s: an exception handler failed for job %s", self.name, job.id)
            return not failed(batch, self, job, run.queue, run.execution, format_exc_info(run.exc_info), stopped)

    def _send(self, batch: Batch, ended: list[Running]) -> list[Any]:
        """Send the batch; if Redis goes away, wait for it and send again unless the first one landed."""
        self._batch = None
        while True:
            try:
                return batch.send()
            except recovery.REDIS_DOWN:
                if not self._wait_for_redis():
                    raise  # stopping: the reaper recovers what this worker could not record
                if ended and not self._still_started(ended[0]):
                    return []

    def _still_started(self, run: Running) -> bool:
        """Whether the job still shows this worker's run (so its end was not recorded)."""
        status, worker = self.connection.hmget(run.job.key, "status", "worker_name")
        return status == b"started" and worker == self.name.encode()

    def _pending(self) -> Batch:
        """The batch the next finish sends (start metrics join it as jobs are handed over)."""
        if self._batch is None:
            self._batch = Batch(self.connection)
        return self._batch

    # --- job threads ------------------------------------------------------------------------------------------
    def _job_thread(self) -> None:
        """Run the jobs handed over, one at a time, and put each in the outbox unless it was ended from outside."""
        while True:
            run = self._inbox.get()
            try:
                self._perform(run)
            except BaseException:  # noqa: B036 - a stop or timeout that landed just after the job ended
                run.exc_info = run.exc_info or sys.exc_info()
            with self._lock:
                if run.settled:  # the main thread already ended it (blocked in C past its limit)
                    continue
                run.settled = True
            self._outbox.put(run)

    def _perform(self, run: Running) -> None:
        """Run the job under its timeout; keep its return value or its exception."""
        job = run.job
        run.thread_id = threading.get_ident()
        timeout = job.timeout or Queue.DEFAULT_TIMEOUT
        try:
            with logs.context(job.meta.get("request_id"), job.id):
                with self._lock:
                    if run.stop_requested is not None:  # stopped between its claim and now
                        raise JobStopped
                    run.inside = True
                alarm = WATCHDOG.arm(timeout, JobTimeoutException) if timeout > 0 else None
                try:
                    run.value = job.perform()
                finally:
                    if alarm is not None:
                        WATCHDOG.cancel(alarm)
                    with self._lock:
                        run.inside = False
        except BaseException:  # noqa: B036 - JobStopped and timeouts end the job like any error
            run.exc_info = sys.exc_info()

    # --- the main thread's upkeep -------------------------------------------------------------------------------
    def _upkeep(self) -> None:
        """Heartbeats, suspension, maintenance, blocked jobs and the memory limit, each when due."""
        moment = time.monotonic()
        try:
            if moment - self._last_heartbeat >= _HEARTBEAT_EVERY:
                self._last_heartbeat = moment
                self.heartbeat()
                self._check_suspension()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
            if self.running and moment - self._last_job_heartbeats >= self.job_monitoring_interval:
                self._last_job_heartbeats = moment
                for run in list(self.running.values()):
                    self.maintain_heartbeats(run.job, run.execution)
        except recovery.REDIS_DOWN:
            self._wait_for_redis()
        for run in list(self.running.values()):
            limit = (run.job.timeout or Queue.DEFAULT_TIMEOUT) + self.hang_grace
            if run.stop_requested is not None and moment - run.stop_requested > _STOP_GRACE:
                self._end_from_outside(run, JobStopped("Stopped by request."))
            elif run.job.timeout != -1 and moment - run.started > limit:
                seconds = run.job.timeout or Queue.DEFAULT_TIMEOUT
                self._end_from_outside(run, JobTimeoutException(
                    f"Task exceeded maximum timeout value ({seconds} seconds) and did not stop"))
        # The peak (one getrusage) bounds the current size; /proc only above it.
        if self.max_rss_mb and not self.stopping and peak_rss_mb() > self.max_rss_mb and rss_mb() > self.max_rss_mb:
            self._recycle(f"resident memory {rss_mb():.0f} MB is over the {self.max_rss_mb:.0f} MB limit")

    def _check_suspension(self) -> None:
        """`rq suspend`: claim nothing until `rq resume` (RQ's own flag)."""
        suspended = is_suspended(self.connection, self)
        if suspended != self._suspended:
            self._suspended = suspended
            self.log.info("Worker %s: %s", self.name, "suspended, run `rq resume` to resume" if suspended
                          else "resumed")
            self.set_state(WorkerStatus.SUSPENDED if suspended else WorkerStatus.IDLE)

    def _end_from_outside(self, run: Running, error: BaseException) -> None:
        """A job blocked in C ignored its stop or timeout: end it here with that error, and recycle the process."""
        with self._lock:
            if run.settled:
                return
            run.settled = True
        self.log.error("Worker %s: job %s did not end after %s; ending it from outside", self.name, run.job.id,
                       type(error).__name__)
        run.exc_info = (type(error), error, None)
        self._outbox.put(run)
        self._recycle(f"job {run.job.id} was blocked")

    def _recycle(self, reason: str) -> None:
        """Stop claiming, let the other jobs finish, then exit RECYCLE so the supervisor starts a fresh process."""
        if not self.stopping:
            self.log.warning("Worker %s: recycling this process: %s", self.name, reason)
        self.stopping = True
        self.exit_code = RECYCLE

    def _wait_for_redis(self) -> bool:
        """Wait for Redis (True once it answers); after SIGTERM only while jobs may still end within the grace."""
        gave_up = lambda: self.stopping and (not self.running or self._grace_over())  # noqa: E731
        recovery.wait_for_redis(self.connection, gave_up, self.log)
        return not gave_up()

    # --- start, stop and commands ------------------------------------------------------------------------------
    def _start(self, logging_level: str | None, date_format: str, log_format: str, with_scheduler: bool,
               burst: bool) -> None:
        """RQ's birth and pubsub channel, the beacon, the job threads, the scheduler and the signal handlers."""
        for name in ("rq.worker", "rq.job"):
            setup_loghandlers(logging_level or "INFO", date_format, log_format, name=name)
        self.register_birth()
        self.log.info("Worker %s: started with PID %d, %d job threads", self.name, os.getpid(), self.threads)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self._command})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=60, daemon=True,
                                                       exception_handler=self._pubsub_error)
        self.set_state(WorkerStatus.STARTED)
        self.log.info("*** Listening on %s...", ", ".join(self.queue_names()))
        warning = eviction_warning(self.connection)
        if warning:
            self.log.warning(warning)
        self._beacon = recovery.Beacon(recovery.side_connection(self.connection), self.name, self.lost_after,
                                       running=self.running_job_ids, client_cap=self.client_cap)
        self._beacon.beat()  # alive before the first job can be claimed
        self._beacon.start()
        for number in range(self.threads):
            threading.Thread(target=self._job_thread, name=f"job-{number}", daemon=True).start()
        if with_scheduler:
            self._run_scheduler(burst)
        signal.signal(signal.SIGTERM, self.ask_to_stop)
        signal.signal(signal.SIGINT, self.ask_to_stop)

    def _run_scheduler(self, burst: bool) -> None:
        """RQ's scheduler in a thread of this process (engine.scheduler); in burst mode one pass, if no other
        scheduler holds the queues' locks."""
        scheduler = KeptScheduler(self.queues, self.connection, serializer=SERIALIZER)
        if burst:
            scheduler.once()
        else:
            self._scheduler = scheduler
            scheduler.start()

    def running_job_ids(self) -> set[str]:
        """The jobs claimed and not yet recorded as ended (the beacon's check after a primary change reads it)."""
        return set(self.running.copy())  # a copy in one step: the main thread changes the dict meanwhile

    def ask_to_stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        """SIGTERM/SIGINT: stop claiming; the grace period runs from the first signal, later ones change nothing."""
        if self.stop_asked_at is None:
            self.stop_asked_at = time.monotonic()
            self.log.info("Worker %s: warm shut down requested; %d job(s) running, grace %s s",
                          self.name, len(self.running), self.shutdown_grace)
        self.stopping = True

    def _grace_over(self) -> bool:
        return self.stop_asked_at is not None and time.monotonic() - self.stop_asked_at >= self.shutdown_grace

    def _interrupt_all(self) -> None:
        """Re-queue every job still running at the front; its thread dies with the process, its result ignored."""
        for run in list(self.running.values()):
            with self._lock:
                if run.settled:
                    continue
                run.settled = True
            self.log.warning("Worker %s: job %s still running %s s after SIGTERM; re-queueing it", self.name,
                             run.job.id, self.shutdown_grace)
            try:
                recovery.requeue_now(self.connection, run.job, run.queue, run.execution, INTERRUPTED)
            except RedisError as exc:  # the reaper re-queues it once Redis is back and this beacon is gone
                self.log.warning("could not re-queue job %s (%s)", run.job.id, type(exc).__name__)
            self.running.pop(run.job.id, None)
            self.executions.pop(run.execution.id, None)

    def _stop(self) -> None:
        """Finish what ended, re-queue what still runs, then RQ's death record; the beacon and scheduler stop."""
        self._interrupt_all()
        try:
            self._finish(self._collect(0), force=True)
        except RedisError:
            pass
        if self._scheduler is not None:
            self._scheduler.shutdown()
        try:
            self.register_death()
            self.unsubscribe()
        except RedisError as exc:  # its key expires; nothing else is left behind
            self.log.warning("could not record this worker's death (%s)", type(exc).__name__)
        if self._beacon is not None:
            self._beacon.stop()

    def _command(self, message: dict[str, Any]) -> None:
        """RQ's worker commands (pubsub thread): shutdown, stop-job, stop-execution; no horse to kill here."""
        payload = parse_payload(message)
        command = payload.get("command")
        if command == "shutdown":
            self.ask_to_stop()
        elif command == "stop-job":
            self.stop_job(str(payload.get("job_id") or ""))
        elif command == "stop-execution":
            execution = self.executions.get(str(payload.get("execution_id") or ""))
            self.stop_job(execution.job_id if execution else "")

    def stop_job(self, job_id: str) -> bool:
        """Stop a running job by raising JobStopped in its thread; False if this worker is not running it."""
        run = self.running.get(job_id)
        with self._lock:
            if run is None or run.settled:
                self.log.warning("Worker %s: not running job %s, stop ignored", self.name, job_id)
                return False
            run.stop_requested = time.monotonic()
            return not run.inside or raise_in_thread(run.thread_id, JobStopped)  # else it stops on entry

    def _pubsub_error(self, exc: Exception, pubsub: Any, thread: Any) -> None:
        """Keep listening through a Redis outage (redis-py resubscribes); anything else ends the thread."""
        if not isinstance(exc, RedisError):
            raise exc
        time.sleep(1.0)
