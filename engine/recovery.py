"""Recovery of abandoned jobs, the one mechanism: a liveness beacon per worker process and a reaper.

Each worker process keeps ``stack:worker:alive:<name>`` alive (TTL ``lost_after`` seconds, refreshed every
``BEAT_EVERY`` s) from a thread, whatever executes its jobs. Every ``REAP_EVERY`` s one worker (under a Redis
lock) looks at each queue's StartedJobRegistry: a job whose execution belongs to a worker that is no longer
alive was abandoned (SIGKILL, crash, lost machine). It is re-queued at the front at once, spending one retry,
or failed with a readable error when none are left. So jobs run at least once: they must be idempotent.

The supervisor, which sees a process die, runs the same reaper at once (``reap_now``) instead of waiting for
the beacon to lapse. RQ's own sweep (StartedJobRegistry.cleanup) comes much later
(heartbeat TTL plus the maintenance interval) and finds nothing left to do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from redis import Redis
from redis.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.registry import StartedJobRegistry
from rq.utils import as_text, parse_composite_key

from engine import events, fairness
from engine.queues import SERIALIZER, CatalogJob
from engine.settings import QUEUE_NAMES

log = logging.getLogger("rq.worker.recovery")  # under RQ's handler

ALIVE_KEY = "stack:worker:alive:{}"
MANAGED_KEY = "stack:workers:managed"  # names of workers that run a beacon: only those are judged by it
REAPER_LOCK = "stack:reaper:lock"
BEAT_EVERY = 2.0
REAP_EVERY = 3.0
LOST_AFTER = 10  # seconds without a beat before a worker counts as gone; detection ≤ LOST_AFTER + REAP_EVERY
WORKER_LOST = "WorkerLost"
PRIMARY_CHANGED = "PrimaryChanged"  # interruption reason: its end was recorded on a primary that is gone
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


def side_connection(connection: Redis, socket_timeout: float = 5.0) -> Redis:
    """A separate client to the same Redis, with short timeouts, for the beacon thread."""
    pool = connection.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": socket_timeout}
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs))


def wait_for_redis(connection: Redis, should_stop: Callable[[], bool] = lambda: False,
                   logger: logging.Logger | None = None, pause: float = 0.5) -> None:
    """Block until Redis answers a PING (or ``should_stop()``), logging once while it does not."""
    warned = False
    while not should_stop():
        try:
            connection.ping()
            if warned and logger is not None:
                logger.info("Redis is back")
            return
        except RedisError as exc:
            if not warned and logger is not None:
                logger.warning("Redis unavailable (%s); waiting for it", type(exc).__name__)
            warned = True
            time.sleep(pause)


def is_alive(connection: Redis, worker_name: str) -> bool:
    """Whether the worker's beacon was heard within its TTL (a worker without a beacon: its RQ key)."""
    if connection.exists(ALIVE_KEY.format(worker_name)):
        return True
    if connection.sismember(MANAGED_KEY, worker_name):
        return False
    return bool(connection.exists(f"rq:worker:{worker_name}"))  # a plain RQ worker: trust its own key


def requeue_now(connection: Redis, job: Job, queue: Queue, execution: Execution | None, reason: str) -> None:
    """Put a started job back at the front of its queue (its execution record is dropped)."""
    job.meta.setdefault("interruptions", [])
    job.meta["interruptions"] = [*job.meta["interruptions"], reason][-10:]
    job.started_at = job.ended_at = None
    with connection.pipeline() as pipeline:
        if execution is not None:
            execution.delete(job=job, pipeline=pipeline)
        job.save_meta()
        fairness.release(pipeline, job.id)  # it takes a slot again when it is claimed; it stays first in line
        queue._enqueue_job(job, pipeline=pipeline, at_front=True)
        pipeline.execute()


def fail_lost(connection: Redis, job: Job, queue: Queue, execution: Execution | None) -> None:
    """Fail an abandoned job that has no retries left, with an error a user can read."""
    failures = int(job.meta.get("failures", 0)) + 1
    message = (
        "The worker running this job stopped before it finished (killed, crashed or its machine was lost)"
        + (f"; gave up after {failures} attempts." if failures > 1 else ".")
    )
    job.meta.update(failures=failures, error={"type": WORKER_LOST, "message": message})
    with connection.pipeline() as pipeline:
        if execution is not None:
            execution.delete(job=job, pipeline=pipeline)
        job.save_meta()
        record_job_failure(job, f"{WORKER_LOST}: {message}", pipeline)
        fairness.release(pipeline, job.id)
        pipeline.execute()
    queue.enqueue_dependents(job)


def recover(connection: Redis, job: Job, queue: Queue, execution: Execution | None) -> str:
    """Re-run an abandoned job (spending a retry) or fail it; returns ``"requeued"`` or ``"failed"``."""
    worker_name = execution.worker_name if execution is not None else ""
    if job.retries_left and job.retries_left > 0:
        job.retries_left -= 1
        job.meta["failures"] = int(job.meta.get("failures", 0)) + 1
        job.meta["error"] = {"type": WORKER_LOST, "message": "The worker running this job stopped before it "
                             "finished (killed, crashed or its machine was lost); it runs again."}
        requeue_now(connection, job, queue, execution, WORKER_LOST)
        events.on_abandoned(job, worker_name, retried=True)
        return "requeued"
    fail_lost(connection, job, queue, execution)
    events.on_abandoned(job, worker_name, retried=False)
    return "failed"


def requeue_orphans(connection: Redis, worker_name: str, running: Callable[[], set[str]]) -> int:
    """After the primary changed (failover, restart): re-run the jobs it shows started by this worker that the
    worker no longer runs. Their end was written to the old primary and never reached this one (replication is
    asynchronous), so without this they would sit in ``started`` under a live worker. At least once: they run
    again, without spending a retry (they did not fail)."""
    entries = [(name, as_text(entry)) for name in Reaper(connection).all_queue_names()
               for entry in connection.zrange(StartedJobRegistry(name, connection=connection).key, 0, -1)]
    busy = running()  # read after the registry: a job started since then is not in it
    requeued = 0
    for queue_name, entry in entries:
        job_id, execution_id = parse_composite_key(entry)
        execution = Execution(execution_id, job_id, connection)
        try:
            execution.refresh()
        except ValueError:
            continue
        if job_id in busy or execution.worker_name != worker_name:
            continue
        queue = Queue(queue_name, connection=connection, serializer=SERIALIZER, job_class=CatalogJob)
        try:
            job = CatalogJob.fetch(job_id, connection=connection, serializer=SERIALIZER)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) == JobStatus.STARTED:
            requeue_now(connection, job, queue, execution, PRIMARY_CHANGED)
            connection.zrem(StartedJobRegistry(queue_name, connection=connection).key, entry)
            log.warning("job %s: its end was lost with the old primary; it runs again", job_id)
            requeued += 1
    return requeued


class Reaper:
    """Finds jobs abandoned by dead workers, and recovers them."""

    def __init__(self, connection: Redis, queue_names: tuple[str, ...] = QUEUE_NAMES, client_cap: int | None = None):
        self.connection = connection
        self.queue_names = queue_names
        self.client_cap = client_cap  # the workers' cap, for the slot sweep (None: no sweep in this pass)

    def all_queue_names(self) -> list[str]:
        """Our queues plus any other RQ knows of (a deployment may add some)."""
        known = {as_text(key).removeprefix("rq:queue:") for key in self.connection.smembers("rq:queues")}
        return [*self.queue_names, *sorted(known - set(self.queue_names))]

    def run(self) -> dict[str, int]:
        """One pass over every queue; returns counts of what it did."""
        counts = {"requeued": 0, "failed": 0}
        for name in self.all_queue_names():
            queue = Queue(name, connection=self.connection, serializer=SERIALIZER, job_class=CatalogJob)
            for outcome in self.reap_started(queue):
                counts[outcome] += 1
        self.forget_dead_workers()
        if self.client_cap is not None:  # after the passes above, which release what they recovered
            fairness.sweep(self.connection, self.client_cap)
        return counts

    def reap_started(self, queue: Queue) -> list[str]:
        """Recover the queue's started jobs whose worker is gone."""
        registry = StartedJobRegistry(queue.name, connection=self.connection, serializer=SERIALIZER)
        outcomes = []
        for entry in self.connection.zrange(registry.key, 0, -1):
            job_id, execution_id = parse_composite_key(as_text(entry))
            execution = Execution(execution_id, job_id, self.connection)
            try:
                execution.refresh()
            except ValueError:
                execution.worker_name = ""  # its record expired: whoever ran it stopped beating long ago
            if execution.worker_name and is_alive(self.connection, execution.worker_name):
                continue
            outcome = self.recover_entry(queue, registry, as_text(entry), job_id, execution)
            if outcome:
                outcomes.append(outcome)
        return outcomes

    def recover_entry(
        self, queue: Queue, registry: StartedJobRegistry, entry: str, job_id: str, execution: Execution
    ) -> str | None:
        try:
            job = CatalogJob.fetch(job_id, connection=self.connection, serializer=SERIALIZER)
        except NoSuchJobError:
            self.connection.zrem(registry.key, entry)
            return None
        if job.get_status(refresh=False) != JobStatus.STARTED:
            self.connection.zrem(registry.key, entry)  # it ended; only the registry entry was left
            return None
        outcome = recover(self.connection, job, queue, execution)
        self.connection.zrem(registry.key, entry)
        log.warning("job %s abandoned by worker %r: %s", job.id, execution.worker_name or "?", outcome)
        return outcome

    def reap_now(self, worker_name: str, wait: float = 5.0) -> dict[str, int]:
        """A process just died: mark it dead and reap at once (under the reaper's lock, so no job twice)."""
        self.connection.delete(ALIVE_KEY.format(worker_name))
        self.connection.sadd(MANAGED_KEY, worker_name)
        deadline = time.monotonic() + wait
        while not self.connection.set(REAPER_LOCK, worker_name, nx=True, px=int(REAP_EVERY * 900)):
            if time.monotonic() > deadline:
                return {}  # another pass is running; it, or the next, finds this worker dead
            time.sleep(0.05)
        try:
            return self.run()
        finally:
            if self.connection.get(REAPER_LOCK) == worker_name.encode():
                self.connection.delete(REAPER_LOCK)

    def forget_dead_workers(self) -> None:
        """Drop managed workers whose beacon stopped and whose RQ key expired too.

        Not sooner: a beacon that lapses while a pass runs would otherwise be forgotten before its jobs were seen,
        and ``is_alive`` would then trust the dead worker's RQ key (about a minute) as a plain RQ worker's."""
        for raw in self.connection.smembers(MANAGED_KEY):
            name = as_text(raw)
            if not self.connection.exists(ALIVE_KEY.format(name), f"rq:worker:{name}"):
                self.connection.srem(MANAGED_KEY, name)


class Beacon(threading.Thread):
    """A worker's liveness heartbeat, which also runs the reaper when it wins the lock."""

    def __init__(self, connection: Redis, worker_name: str, lost_after: int = LOST_AFTER,
                 on_reap: Callable[[dict[str, int]], None] | None = None,
                 running: Callable[[], set[str]] | None = None, client_cap: int | None = None):
        super().__init__(name=f"beacon-{worker_name}", daemon=True)
        self.connection = connection
        self.worker_name = worker_name
        self.lost_after = lost_after
        self.on_reap = on_reap
        self.running = running  # the ids of the jobs this worker runs now; enables requeue_orphans
        self._server_id: str | None = None
        self.reaper = Reaper(connection, client_cap=client_cap)
        self._stopping = threading.Event()
        self._healthy_since: float | None = None
        self._last_reap = 0.0

    def beat(self) -> None:
        """Say this worker is alive for another ``lost_after`` seconds."""
        with self.connection.pipeline() as pipeline:
            pipeline.set(ALIVE_KEY.format(self.worker_name), time.time(), ex=self.lost_after)
            pipeline.sadd(MANAGED_KEY, self.worker_name)
            if self.running is not None:
                pipeline.info("server")
            replies = pipeline.execute()
        if self.running is not None:
            self._check_server(replies[-1]["run_id"])

    def _check_server(self, server_id: str) -> None:
        """A new Redis process (a promoted replica, a restart) may lack the ends of jobs this worker finished."""
        if self._server_id is not None and server_id != self._server_id and self.running is not None:
            log.warning("beacon: Redis is a different server now (failover or restart); checking this worker's jobs")
            requeue_orphans(self.connection, self.worker_name, self.running)
        self._server_id = server_id

    def maybe_reap(self) -> None:
        """Reap if due, Redis has been reachable for a full beacon period, and no other worker holds the lock."""
        now = time.monotonic()
        if self._healthy_since is None or now - self._healthy_since < self.lost_after:
            return  # after an outage, give every live worker the chance to beat again first
        if now - self._last_reap < REAP_EVERY:
            return
        self._last_reap = now
        if not self.connection.set(REAPER_LOCK, self.worker_name, nx=True, px=int(REAP_EVERY * 900)):
            return
        counts = self.reaper.run()
        if self.on_reap is not None and any(counts.values()):
            self.on_reap(counts)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.beat()
                if self._healthy_since is None:
                    self._healthy_since = time.monotonic()
                self.maybe_reap()
            except RedisError as exc:
                if self._healthy_since is not None:
                    log.warning("beacon: Redis unavailable (%s); retrying", type(exc).__name__)
                self._healthy_since = None
            except Exception:  # the beacon must outlive any bug in one pass
                log.exception("beacon: reaper pass failed")
            self._stopping.wait(BEAT_EVERY)

    def stop(self) -> None:
        """Stop beating and say so, so the worker's jobs (none, after a clean stop) are judged at once."""
        self._stopping.set()
        self.join(timeout=1)  # a beat stuck on an unreachable Redis must not hold up the exit
        try:
            self.connection.delete(ALIVE_KEY.format(self.worker_name))
        except RedisError:
            pass
