"""RQ's scheduler, kept running through any Redis interruption: a thread of the worker process, not a child.

RQ forks its scheduler into a child process that dies on the first Redis error; only the worker's maintenance
(every ``--maintenance-interval``) starts it again, and a lock left by a dead scheduler blocks every other one
until it expires (61 s). Delayed jobs and retries then sit in ``scheduled`` for minutes. ``KeptScheduler`` runs
RQ's own steps (its locks, its metadata hash, ``enqueue_scheduled_jobs``) once a second from a thread that
waits out any error. It takes all its queues' locks in one step, so two schedulers starting together never split
the queues between them. A lock whose holder has not sent a heartbeat for ``STALE_AFTER`` seconds is taken over,
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

# Take every queue's lock, or none if any is held: RQ takes them one by one, so two schedulers starting together
# would split the queues between them and both stay.
_TAKE_ALL = """
for _, key in ipairs(KEYS) do
    if redis.call('EXISTS', key) == 1 then return 0 end
end
for _, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
end
return 1
"""

# Swap the holder for us only if it is still the one we judged stale: never take a lock that changed hands.
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


class KeptScheduler:
    """RQ's scheduler (held, not subclassed: only its public steps are used) run by ``start()`` in a daemon thread
    that outlives Redis outages, restarts and failovers."""

    def __init__(self, queues: Any, connection: Redis, **kwargs: Any):
        # Its own pool with bounded timeouts (RQ copies the client's settings): a hung Redis must not hang it.
        self.rq = RQScheduler(queues, connection=side_connection(connection), interval=INTERVAL, **kwargs)
        self.queue_names = {queue if isinstance(queue, str) else queue.name for queue in queues}
        self.name = self.rq.name
        self.interval = self.rq.interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.lock_ttl = self.interval + 60  # what RQ gives its locks; its heartbeat renews them to this
        self._take_all = self.rq.connection.register_script(_TAKE_ALL)
        self._take_over = self.rq.connection.register_script(_TAKE_OVER)
        self._failing = False

    @property
    def acquired_locks(self) -> set[str]:
        """The queues whose scheduling this one holds."""
        return set(self.rq.acquired_locks)

    def start(self) -> threading.Thread:
        """Run in a thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
            self._thread.start()
        return self._thread

    def once(self) -> None:
        """One pass (burst mode): move the due jobs, if no other scheduler holds the queues' locks."""
        if self.rq.acquire_locks():
            try:
                self.rq.enqueue_scheduled_jobs()
            finally:
                self.rq.release_locks()

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the thread and release the locks, so another scheduler takes over at once."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._release()
        self.rq.connection.connection_pool.disconnect()

    def _run(self) -> None:
        log.info("Scheduler for %s started in thread %s", ", ".join(sorted(self.queue_names)), self.name)
        while not self._stopping.is_set():
            self._tick_safely()
            self._stopping.wait(self.interval)
        self._release()

    def _release(self) -> None:
        try:
            if self.rq.acquired_locks:
                self.rq.stop()  # releases our locks and removes our metadata
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
            self._failing = True  # the locks are checked again, and the metadata re-written, once Redis answers
            return
        if self._failing:
            log.info("Scheduler %s: Redis is back; scheduling again", self.name)
            self._failing = False

    def tick(self) -> None:
        """Hold (or take over) the queues' locks, keep the heartbeat, move every due job to its queue."""
        if self.acquired_locks == self.queue_names and not self._failing:
            self.rq.heartbeat()  # refreshes our locks; drops any another scheduler took
        else:
            self.take_over_stale_locks()
            if not self.acquired_locks and self._take_all(
                    keys=[RQScheduler.get_locking_key(name) for name in sorted(self.queue_names)],
                    args=[self.name, self.lock_ttl]):
                log.info("Acquired scheduler lock for %s", ", ".join(sorted(self.queue_names)))
            if self.rq.acquire_locks():  # RQ's own step: it records the locks it holds, and takes any left free
                self.rq.register_birth()  # only a holder shows as a scheduler (rq info, stats)
        if self.rq.acquired_locks:
            self.rq.enqueue_scheduled_jobs()

    def take_over_stale_locks(self) -> None:
        """Take the locks of our queues held by a scheduler whose heartbeat is older than STALE_AFTER."""
        connection = self.rq.connection
        names = sorted(self.queue_names - self.acquired_locks)
        holders = connection.mget([RQScheduler.get_locking_key(name) for name in names])
        others = {name: holder for name, holder in zip(names, holders, strict=True)
                  if holder is not None and holder.decode() != self.name}
        if not others:
            return
        with connection.pipeline(transaction=False) as pipe:
            for name, holder in others.items():
                pipe.hget(SCHEDULER_KEY_TEMPLATE % holder.decode(), "last_heartbeat")
                pipe.ttl(RQScheduler.get_locking_key(name))
            replies = pipe.execute()
        stale_before = utcformat(now() - timedelta(seconds=STALE_AFTER))
        for (name, holder), beat, ttl in zip(others.items(), replies[::2], replies[1::2], strict=True):
            if self._abandoned(beat, ttl, stale_before):
                if self._take_over(keys=[RQScheduler.get_locking_key(name)], args=[holder, self.name, self.lock_ttl]):
                    log.warning("Scheduler %s: took over the lock for %s from %s (no heartbeat for %.0f s)",
                                self.name, name, holder.decode(), STALE_AFTER)

    def _abandoned(self, beat: bytes | None, ttl: int, stale_before: str) -> bool:
        """Whether nobody keeps a lock, from its holder's last heartbeat and the lock's remaining ``ttl``."""
        if beat is None:  # no metadata: expired, or not written yet by a scheduler that has just taken its locks
            return ttl <= self.lock_ttl - STALE_AFTER  # set or renewed longer than STALE_AFTER ago
        return beat.decode() < stale_before
