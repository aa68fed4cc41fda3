"""ThreadedWorker: one RQ worker process that runs up to N jobs at once in threads (no fork per job).

RQ runs one job per process (rq#45). For I/O-bound jobs that leaves the CPU idle while a job waits on the
network, so this worker dequeues on its main thread and hands each job to one of N job threads. Everything
RQ records stays RQ's own: each job gets an Execution, a StartedJobRegistry entry and heartbeats, results,
retries and exception handlers run through RQ's ``perform_job``. What threads change, and how it is kept safe:

- timeouts: SIGALRM only reaches the main thread, so job timeouts are an asynchronous exception raised in
  the job's thread by one shared watchdog thread (RQ's ``TimerDeathPenalty`` does the same with a new thread
  per job, which cost more than a no-op job itself);
- a job stuck in C code cannot be interrupted at all: after its timeout plus ``hang_grace`` the main thread
  fails it (``JobTimeout``) and recycles the process, letting the other jobs finish first;
- stop-job (cancel) raises ``JobStopped`` in the job's thread, and the job ends ``stopped``; a job blocked in
  C code that has not stopped after ``_STOP_GRACE`` is marked stopped from the main thread and the process is
  recycled;
- the main thread keeps every running job's heartbeat fresh, so abandoned-job detection works as with RQ's
  forking worker;
- the process asks to be recycled (exit code ``RECYCLE``) after ``max_rss_mb`` of resident memory.
"""

from __future__ import annotations

import ctypes
import heapq
import logging
import os
import queue as stdlib_queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rq.command import handle_command, parse_payload
from rq.defaults import DEFAULT_WORKER_TTL
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import BaseDeathPenalty, JobTimeoutException
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

log = logging.getLogger("worker")

RECYCLE = 3  # exit code: "replace me" (memory limit or a hung job), as opposed to 0 "done" in burst mode
_HEARTBEAT_EVERY = 1.0  # seconds between the worker's own heartbeats; its TTL is minutes, so this is plenty
_STOP_GRACE = 2.0  # seconds a stopped job may take to notice; after that it is blocked in C: stop it from outside
_WAIT_STEP = 0.5  # how often the main thread wakes to heartbeat and look for hung jobs while it waits


class JobStopped(BaseException):
    """Raised inside a job's thread by the stop-job command (BaseException, so ``except Exception`` in a job
    cannot swallow it)."""


@dataclass
class Running:
    """One job being run by a job thread."""

    job: Job
    queue: Queue
    execution: Execution
    started: float = field(default_factory=time.monotonic)
    thread_id: int | None = None
    stop_requested: float | None = None  # monotonic time of a stop-job command
    abandoned: bool = False  # failed by the main thread as hung; whatever the thread does later is ignored


def rss_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Raise ``exc_type`` asynchronously in the thread ``thread_id``; True if it was delivered."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
    if done > 1:  # more than one thread state matched: undo, as the C API documents
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
    return done == 1


@dataclass(order=True)
class _Alarm:
    deadline: float
    thread_id: int = field(compare=False)
    exc_type: type[BaseException] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Watchdog:
    """One daemon thread that raises timeout exceptions in job threads when their deadline passes.

    RQ's TimerDeathPenalty starts a new threading.Timer (an OS thread) per job; the profile showed that start
    costing more than the rest of a no-op job (bench/profile.py), so all jobs share this one thread.
    """

    def __init__(self) -> None:
        self._alarms: list[_Alarm] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._cancelled = 0

    def arm(self, seconds: float, exc_type: type[BaseException]) -> _Alarm:
        """Raise ``exc_type`` in the calling thread after ``seconds`` unless cancelled first."""
        alarm = _Alarm(time.monotonic() + seconds, threading.get_ident(), exc_type)
        with self._changed:
            heapq.heappush(self._alarms, alarm)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="job-watchdog", daemon=True)
                self._thread.start()
            self._changed.notify()
        return alarm

    def cancel(self, alarm: _Alarm) -> None:
        with self._changed:  # under the lock, so a cancelled alarm can never fire afterwards
            alarm.cancelled = True
            self._cancelled += 1
            if self._cancelled > 1000 and self._cancelled * 2 > len(self._alarms):  # keep the heap small
                self._alarms = [a for a in self._alarms if not a.cancelled]
                heapq.heapify(self._alarms)
                self._cancelled = 0

    def _run(self) -> None:
        with self._changed:
            while True:
                while self._alarms and self._alarms[0].cancelled:
                    heapq.heappop(self._alarms)
                    self._cancelled -= 1
                if not self._alarms:
                    self._changed.wait()
                    continue
                wait = self._alarms[0].deadline - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                alarm = heapq.heappop(self._alarms)
                raise_in_thread(alarm.thread_id, alarm.exc_type)


WATCHDOG = Watchdog()


class WatchdogDeathPenalty(BaseDeathPenalty):
    """RQ's job-timeout hook for threads, on the shared Watchdog (no thread started per job)."""

    def setup_death_penalty(self) -> None:
        self._alarm = WATCHDOG.arm(self._timeout, self._exception) if self._timeout > 0 else None

    def cancel_death_penalty(self) -> None:
        if self._alarm is not None:
            WATCHDOG.cancel(self._alarm)


class ThreadedWorker(SimpleWorker):
    """An RQ worker running up to ``threads`` jobs at once in this process, with RQ's bookkeeping intact."""

    death_penalty_class = WatchdogDeathPenalty  # SIGALRM cannot reach job threads
    log_result_lifespan = False  # one log line less per job; the TTL is in the settings

    def __init__(self, *args: Any, threads: int = 8, max_rss_mb: float = 0, hang_grace: float = 30.0, **kwargs: Any):
        self._stopped_ids: set[str] = set()
        self._local = threading.local()
        self._running: dict[str, Running] = {}
        self._pending: dict[str, Any] = {}  # job id → pipeline holding its Execution writes until it starts
        self._changed = threading.Condition()
        super().__init__(*args, **kwargs)
        self.threads = max(1, threads)
        self.max_rss_mb = max_rss_mb
        self.hang_grace = hang_grace
        self.exit_code = 0
        self._inbox: stdlib_queue.SimpleQueue[Running] = stdlib_queue.SimpleQueue()
        self._last_heartbeat = 0.0
        self._last_job_heartbeats = time.monotonic()
        self._cached_state: str | None = None
        self._abandoned_ids: set[str] = set()  # failed as hung; a late result from their thread is dropped
        self._got_job = False  # set by reorder_queues once RQ has popped a job in the current dequeue
        self._waiting = False  # main thread is blocked (dequeue or waiting for a slot): a stop may interrupt it
        for number in range(self.threads):
            threading.Thread(target=self._job_thread, name=f"job-{number}", daemon=True).start()

    # --- the stop-job contract: RQ keeps one _stopped_job_id; we keep one per job thread --------------------
    @property
    def _stopped_job_id(self) -> str | None:  # type: ignore[override]
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

    def stop_job(self, job_id: str) -> bool:
        """Stop a running job by raising JobStopped in its thread; False if this worker is not running it."""
        with self._changed:
            entry = self._running.get(job_id)
            if entry is None or entry.thread_id is None or entry.abandoned:
                log.warning("Worker %s: not running job %s, stop ignored", self.name, job_id)
                return False
            self._stopped_ids.add(job_id)
            entry.stop_requested = time.monotonic()
            return raise_in_thread(entry.thread_id, JobStopped)

    # --- running jobs ----------------------------------------------------------------------------------
    def execute_job(self, job: Job, queue: Queue) -> None:
        """Hand the job to a job thread, then wait (heartbeating) until a thread is free for the next one."""
        execution = self.prepare_execution(job)
        entry = Running(job, queue, execution)
        with self._changed:
            self._running[job.id] = entry
        self._inbox.put(entry)
        self._wait(lambda: len(self._running) < self.threads)

    def _job_thread(self) -> None:
        while True:
            entry = self._inbox.get()
            self._local.job_id = entry.job.id
            entry.thread_id = threading.get_ident()
            try:
                self.perform_job(entry.job, entry.queue, entry.execution)
            except BaseException:  # noqa: B036 - a late JobStopped after the job ended; the thread must live on
                log.exception("Worker %s: job thread error after job %s", self.name, entry.job.id)
            finally:
                self._local.job_id = None
                self._stopped_ids.discard(entry.job.id)
                with self._changed:
                    if self._running.get(entry.job.id) is entry:
                        del self._running[entry.job.id]
                    self._changed.notify_all()

    def _finalize_success(self, job: Job, queue: Queue, execution: Execution, return_value: Any) -> None:
        if not self._is_abandoned(job):
            super()._finalize_success(job, queue, execution, return_value)

    def _finalize_failure(self, job: Job, queue: Queue, execution: Execution, exc_info: Any) -> None:
        if not self._is_abandoned(job):
            super()._finalize_failure(job, queue, execution, exc_info)

    def _is_abandoned(self, job: Job) -> bool:
        return job.id in self._abandoned_ids

    def _wait(self, done: Any, interruptible: bool = True) -> None:
        """Block until ``done()``, waking every _WAIT_STEP s to heartbeat, fail hung jobs and check memory."""
        self._waiting = interruptible
        self._got_job = False  # any job dequeued so far is registered in _running: nothing to lose
        try:
            while True:
                with self._changed:
                    if done():
                        return
                    self._changed.wait(_WAIT_STEP)
                self.heartbeat()
        finally:
            self._waiting = False

    def teardown(self) -> None:
        """Warm shutdown: let running jobs finish (heartbeating) before RQ deregisters the worker."""
        if self._running:
            log.info("Worker %s: waiting for %d running job(s)", self.name, len(self._running))
            self._wait(lambda: not self._running, interruptible=False)
        super().teardown()

    # --- the main thread's duties while jobs run ---------------------------------------------------------
    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's worker heartbeat, at most once a second (it was 3 round trips per job), plus job upkeep."""
        if timeout is not None or pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        moment = time.monotonic()
        if moment - self._last_heartbeat >= _HEARTBEAT_EVERY:
            self._last_heartbeat = moment
            super().heartbeat()
        if self._running:
            self._upkeep(moment)
        if self.max_rss_mb and not self._stop_requested and rss_mb() > self.max_rss_mb:
            self._recycle(f"resident memory {rss_mb():.0f} MB is over the {self.max_rss_mb:.0f} MB limit")
        if self._stop_requested and self._interruptible():
            raise StopRequested()  # leave a blocking dequeue now rather than after its timeout

    def _upkeep(self, moment: float) -> None:
        """Refresh running jobs' heartbeats every job_monitoring_interval and fail the hung ones."""
        entries = [e for e in list(self._running.values()) if not e.abandoned]
        if moment - self._last_job_heartbeats >= self.job_monitoring_interval:
            self._last_job_heartbeats = moment
            for entry in entries:
                self.maintain_heartbeats(entry.job, entry.execution)
        for entry in entries:
            limit = (entry.job.timeout or Queue.DEFAULT_TIMEOUT) + self.hang_grace
            if entry.stop_requested is not None and moment - entry.stop_requested > _STOP_GRACE:
                self._stop_blocked(entry)
            elif entry.job.timeout != -1 and moment - entry.started > limit:
                self._fail_hung(entry)

    def _stop_blocked(self, entry: Running) -> None:
        """A stopped job blocked in C (a read without data): mark it stopped from here and recycle the process."""
        job = entry.job
        self._abandon(entry)
        log.warning("Worker %s: job %s did not stop within %.0f s; stopping it from outside", self.name, job.id,
                    _STOP_GRACE)
        job.ended_at = now()
        self._local.job_id = job.id  # handle_job_failure asks _stopped_job_id about the current thread's job
        try:
            self._stopped_ids.add(job.id)
            self.handle_job_failure(job, entry.queue, exc_string="Stopped by request.", execution=entry.execution)
        finally:
            self._local.job_id = None
        self._recycle(f"stopped job {job.id} was blocked")

    def _abandon(self, entry: Running) -> None:
        """From now on the main thread owns the job's outcome; its thread's late result is dropped."""
        entry.abandoned = True
        self._abandoned_ids.add(entry.job.id)
        with self._changed:
            self._running.pop(entry.job.id, None)
            self._changed.notify_all()

    def _fail_hung(self, entry: Running) -> None:
        """The job ignored its timeout (stuck in C code): fail it from here and recycle the process."""
        job = entry.job
        self._abandon(entry)
        seconds = job.timeout or Queue.DEFAULT_TIMEOUT
        log.error("Worker %s: job %s still running %.0f s past its timeout", self.name, job.id, self.hang_grace)
        error = JobTimeoutException(f"Task exceeded maximum timeout value ({seconds} seconds) and did not stop")
        job.ended_at = now()
        self.handle_exception(job, JobTimeoutException, error, None)
        self.handle_job_failure(job, entry.queue, exc_string=str(error), execution=entry.execution)
        self._recycle(f"job {job.id} hung")

    def _recycle(self, reason: str) -> None:
        if not self._stop_requested:
            log.warning("Worker %s: recycling this process: %s", self.name, reason)
        self._stop_requested = True
        self.exit_code = RECYCLE

    # --- cheaper bookkeeping and prompt shutdown --------------------------------------------------------
    @property
    def dequeue_timeout(self) -> int:  # type: ignore[override]
        """Block on the queues for short spells while jobs run, so their heartbeats stay fresh."""
        return 1 if self._running else super().dequeue_timeout

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        if self._stop_requested:
            return None  # a recycle was requested: take no more jobs
        self._waiting, self._got_job = True, False
        try:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        finally:
            self._waiting = False

    def reorder_queues(self, reference_queue: Queue) -> None:
        """RQ calls this right after a dequeue succeeds: from here on a stop must not lose the job."""
        self._got_job = True
        super().reorder_queues(reference_queue)

    def _interruptible(self) -> bool:
        """The main thread is blocked waiting and holds no dequeued job, so StopRequested may be raised."""
        return self._waiting and not self._got_job

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """Busy while any job runs; skip the write when the state did not change (one round trip per job)."""
        if state == WorkerStatus.IDLE and self._running:
            state = WorkerStatus.BUSY
        if pipeline is None and state == self._cached_state:
            self._state = state
            return
        self._cached_state = state
        super().set_state(state, pipeline)

    def prepare_execution(self, job: Job) -> Execution:
        """Create the Execution, but send its writes with the job's start (one round trip, not two)."""
        pipeline = self.connection.pipeline()
        execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipeline, worker_name=self.name)
        self.executions[execution.id] = execution
        self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
        self._pending[job.id] = pipeline
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """RQ's start-of-job bookkeeping, in the same transaction as prepare_execution's."""
        with self._pending.pop(job.id, None) or self.connection.pipeline() as pipeline:
            heartbeat_ttl = self.get_heartbeat_ttl(job)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)
            job.heartbeat(now(), heartbeat_ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            pipeline.persist(job.key)
            if remove_from_intermediate_queue:
                pipeline.lrem(Queue(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
            pipeline.execute()

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Mark the end in memory only: the success or failure transaction that follows saves the job anyway."""
        job.ended_at = now()
        job.last_heartbeat = job.ended_at

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """RQ's forking-worker TTL (min(remaining, monitoring interval) + 60): we heartbeat like it does."""
        if job.timeout == -1:
            return DEFAULT_WORKER_TTL
        remaining = (job.timeout or Queue.DEFAULT_TIMEOUT) - working_time
        return int(min(remaining, self.job_monitoring_interval)) + 60

    def _shutdown(self) -> None:
        """Warm shutdown: stop taking jobs at once (even mid-dequeue); running jobs finish in teardown."""
        self._stop_requested = True
        self.set_shutdown_requested_date()
        if self.scheduler:
            self.stop_scheduler()
        if self._interruptible():
            raise StopRequested()
