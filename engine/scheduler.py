"""RQ's scheduler, kept running through any Redis interruption: a thread of the worker process, not a child.

RQ forks its scheduler into a child process that dies on the first Redis error; only the worker's maintenance
(every ``--maintenance-interval``) starts it again, and a lock left by a dead scheduler blocks every other one
until it expires (61 s). Delayed jobs and retries then sit in ``scheduled`` for minutes. ``KeptScheduler`` runs
RQ's own steps (its locks, its metadata hash, ``enqueue_scheduled_jobs``) once a second from a thread that
waits out any error. A lock whose holder has not sent a heartbeat for ``STALE_AFTER`` seconds is taken over,
so a SIGKILLed scheduler (ours or a stock ``rq worker --with-scheduler``) hands over within seconds.

The worker (engine.worker) starts one with ``--with-scheduler`` and shuts it down when it stops.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from redis import Redis
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import now, utcformat

from engine.recovery import side_connection

log = logging.getLogger("rq.scheduler")  # under RQ's handler, like the scheduler it replaces

INTERVAL = 1  # seconds between looks at the scheduled registries (whole: RQ's lock TTLs add 60 to it)
STALE_AFTER = 5.0  # seconds without a heartbeat before another scheduler's lock counts as left behind

# Swap the holder for us only if it is still the one we judged stale: never take a lock that changed hands.
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


class KeptScheduler(RQScheduler):
    """RQ's scheduler run by ``start()`` in a daemon thread that outlives Redis outages, restarts and failovers."""

    def __init__(self, queues: Any, connection: Redis, **kwargs: Any):
        super().__init__(queues, connection=connection, interval=INTERVAL, **kwargs)
        # Its own pool with bounded timeouts: a hung Redis must not hang the scheduler forever.
        self._connection = side_connection(connection)
        self._stopping = threading.Event()
        self._take_over = self._connection.register_script(_TAKE_OVER)
        self._failing = False

    def start(self) -> threading.Thread:  # type: ignore[override]
        """Run in a thread (idempotent); RQ's worker calls this, and ``_process.is_alive()`` reads it back."""
        if self._process is None or not self._process.is_alive():
            self._status = self.Status.STARTED
            self._process = threading.Thread(target=self._run, name="scheduler", daemon=True)
            self._process.start()
        return self._process

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the thread and release the locks, so another scheduler takes over at once."""
        self._stopping.set()
        if self._process is not None:
            self._process.join(timeout)
        self._connection.connection_pool.disconnect()

    def _run(self) -> None:
        log.info("Scheduler for %s started in thread %s", ", ".join(sorted(self._queue_names)), self.name)
        while not self._stopping.is_set():
            self._tick_safely()
            self._stopping.wait(self.interval)
        try:
            self.stop()
        except Exception as exc:  # noqa: BLE001 - Redis gone at shutdown: the locks expire by themselves
            log.warning("Scheduler %s: could not release its locks (%s)", self.name, type(exc).__name__)

    def _tick_safely(self) -> None:
        """One tick; any error is logged once per outage and the next tick tries again."""
        try:
            self.tick()
        except Exception as exc:  # noqa: BLE001 - this thread must never die: it is the only scheduler here
            if not self._failing:
                log.warning("Scheduler %s: %s: %s; retrying every %s s", self.name, type(exc).__name__, exc,
                            self.interval)
            self._failing = True
            self._acquired_locks = set()  # re-checked, and the metadata re-written, once Redis answers
            self._scheduled_job_registries = []
            return
        if self._failing:
            log.info("Scheduler %s: Redis is back; scheduling again", self.name)
            self._failing = False

    def tick(self) -> None:
        """Hold (or take over) the queues' locks, keep the heartbeat, move every due job to its queue."""
        if self._acquired_locks == self._queue_names:
            self.heartbeat()  # refreshes our locks; drops any another scheduler took
        else:
            self.take_over_stale_locks()
            if self.acquire_locks():
                self.register_birth()  # only a holder shows as a scheduler (rq info, stats)
        if self._acquired_locks:
            self.enqueue_scheduled_jobs()

    def take_over_stale_locks(self) -> None:
        """Take the locks of our queues held by a scheduler whose heartbeat is older than STALE_AFTER."""
        names = sorted(self._queue_names - self._acquired_locks)
        holders = self.connection.mget([self.get_locking_key(name) for name in names])
        others = {name: holder for name, holder in zip(names, holders, strict=True)
                  if holder is not None and holder.decode() != self.name}
        if not others:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            for holder in others.values():
                pipe.hget(SCHEDULER_KEY_TEMPLATE % holder.decode(), "last_heartbeat")
            beats = pipe.execute()
        stale_before = utcformat(now() - timedelta(seconds=STALE_AFTER))
        for (name, holder), beat in zip(others.items(), beats, strict=True):
            # No metadata at all: its hash expired or never existed, so nobody is keeping that lock.
            if beat is None or beat.decode() < stale_before:
                ttl = self.interval + 60
                if self._take_over(keys=[self.get_locking_key(name)], args=[holder, self.name, ttl]):
                    log.warning("Scheduler %s: took over the lock for %s from %s (no heartbeat for %.0f s)",
                                self.name, name, holder.decode(), STALE_AFTER)
