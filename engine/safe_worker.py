"""``RecoveryMixin``: what makes an RQ worker class lose no job (mix it in front of Worker or a subclass).

- a liveness beacon (engine.recovery) so an abandoned job is re-run within seconds, not after RQ's 10 minutes;
- claims through ``SafeQueue`` (engine.handoff), and a SIGTERM while a claim is held returns the job unstarted;
- SIGTERM: stop taking jobs, let the running one finish for ``shutdown_grace`` seconds, then stop it and put
  it back at the front of its queue (HerokuWorker semantics without spending a retry);
- Redis outages: the loop waits for Redis instead of quitting, and resumes by itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

from redis import Redis
from redis.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import StopRequested
from rq.job import JobStatus
from rq.worker import WorkerStatus
from rq.worker.worker_classes import Worker

from engine import recovery
from engine.handoff import HOLD, give_back

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
SHUTDOWN_GRACE = 20  # seconds; Heroku SIGKILLs 30 s after SIGTERM, and the check runs every monitoring tick
MONITOR_INTERVAL = 3  # seconds between a running job's heartbeats (and grace checks)
INTERRUPTED = "Interrupted"
_PR_SET_PDEATHSIG = 1


def side_connection(connection: Redis, socket_timeout: float = 5.0) -> Redis:
    """A separate client to the same Redis, with short timeouts, for the beacon thread."""
    pool = connection.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": socket_timeout}
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs))


def wait_for_redis(connection: Redis, should_stop=lambda: False, log=None, pause: float = 0.5) -> None:
    """Block until Redis answers a PING (or ``should_stop()``), logging once while it does not."""
    warned = False
    while not should_stop():
        try:
            connection.ping()
            if warned and log is not None:
                log.info("Redis is back")
            return
        except RedisError as exc:
            if not warned and log is not None:
                log.warning("Redis unavailable (%s); waiting for it", type(exc).__name__)
            warned = True
            time.sleep(pause)


class RecoveryMixin:
    """Mix in before an RQ worker class: ``class StackWorker(RecoveryMixin, Worker)``."""

    shutdown_grace: float = SHUTDOWN_GRACE
    lost_after: int = recovery.LOST_AFTER
    max_connection_wait_time = 2.0  # RQ backs off up to 60 s between reconnects; we want seconds
    _beacon: recovery.Beacon | None = None
    _interrupted_job_id: str | None = None

    # --- lifecycle -----------------------------------------------------------------------------------
    def bootstrap(self, *args, **kwargs):
        super().bootstrap(*args, **kwargs)
        warning = recovery.eviction_warning(self.connection)
        if warning:
            self.log.warning(warning)
        self._beacon = recovery.Beacon(side_connection(self.connection), self.name, self.lost_after)
        self._beacon.beat()  # alive before the first job can be claimed
        self._beacon.start()

    def teardown(self):
        try:
            super().teardown()
        except RedisError as exc:
            self.log.warning("could not record this worker's death (%s)", type(exc).__name__)
        if self._beacon is not None and not self.is_horse:
            self._beacon.stop()

    # --- shutdown ------------------------------------------------------------------------------------
    def _shutdown(self):
        """Warm shutdown; when a claimed job has not started yet, finish the handoff instead of dropping it."""
        if HOLD.active and self.get_state() != WorkerStatus.BUSY:
            self._stop_requested = True
            self.log.info("Worker %s: stop requested while holding job %s; returning it", self.name, HOLD.job_id)
            return
        super()._shutdown()

    def execute_job(self, job, queue):
        try:
            if self._stop_requested and HOLD.active:
                give_back(self.connection, queue.key, job.id)
                self.log.info("Worker %s: returned job %s to %s unstarted", self.name, job.id, queue.name)
                return
            super().execute_job(job, queue)
        except REDIS_DOWN:
            self.log.warning("Worker %s: Redis went away during job %s", self.name, job.id)
            self._recover_after_outage(job, queue)
        finally:
            HOLD.clear()

    def prepare_job_execution(self, job, remove_from_intermediate_queue: bool = False) -> None:
        # Every claim goes through a backup list (engine.handoff), not only single-queue ones: drop it on start.
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def maintain_heartbeats(self, job, execution):
        super().maintain_heartbeats(job, execution)
        started = self._shutdown_requested_date
        if self._stop_requested and started is not None and self.horse_pid:
            waited = time.time() - started.timestamp()
            if waited >= self.shutdown_grace:
                self.log.warning(
                    "Worker %s: job %s still running %.0f s after SIGTERM; stopping it and re-queueing it",
                    self.name, job.id, waited,
                )
                self._interrupted_job_id = job.id
                self.kill_horse(signal.SIGKILL)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):
        if self._interrupted_job_id == job.id:
            self._interrupted_job_id = None
            recovery.requeue_now(self.connection, job, queue, execution, INTERRUPTED)
            self.log.info("Worker %s: job %s re-queued at the front of %s", self.name, job.id, queue.name)
            return
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)

    def setup_work_horse_signals(self):
        """The horse ignores SIGTERM/SIGINT (the platform signals every process): its worker decides when it
        stops. It dies with its worker, so a SIGKILLed worker leaves no orphan finishing a re-queued job."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        parent = os.getppid()
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # not Linux: an orphan horse just finishes its job
            return
        if os.getppid() != parent:
            os._exit(1)  # the worker died while we were forking

    # --- Redis outages -------------------------------------------------------------------------------
    def check_for_suspension(self, burst):
        """Top of every loop: wait out a Redis outage instead of letting RQ quit."""
        wait_for_redis(self.connection, lambda: self._stop_requested, self.log)
        if self._stop_requested and self.get_state() != WorkerStatus.BUSY:
            raise StopRequested()
        super().check_for_suspension(burst)

    def heartbeat(self, timeout=None, pipeline=None):
        if pipeline is not None:
            return super().heartbeat(timeout, pipeline)
        try:
            return super().heartbeat(timeout, pipeline)
        except REDIS_DOWN as exc:
            self.log.warning("Worker %s: heartbeat failed (%s)", self.name, type(exc).__name__)

    def _recover_after_outage(self, job, queue) -> None:
        """Stop the horse, wait for Redis, and re-queue the job if it did not get to record an end."""
        if self.horse_pid:
            self.kill_horse(signal.SIGKILL)
            self.wait_for_horse()
            self._horse_pid = 0
        wait_for_redis(self.connection, log=self.log)
        execution = next(iter(self.executions.values()), None)
        self.executions.clear()
        job.refresh()
        if job.get_status(refresh=False) == JobStatus.STARTED:
            recovery.requeue_now(self.connection, job, queue, execution, INTERRUPTED)
        self.set_state(WorkerStatus.IDLE)


class SafeWorker(RecoveryMixin, Worker):
    """RQ's forking Worker with the recovery behaviour above."""
