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
import time
from datetime import timedelta
from typing import Any

from redis import Redis
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import now, utcformat

from engine.recovery import side_connection

log = logging.getLogger("rq.scheduler")  # under RQ's handler, like the scheduler it replaces

INTERVAL = 1  # seconds between looks at the scheduled registries (whole: RQ's lock TTLs add 60 to it)
STALE_AFTER = 5.0  # seconds without a heartbeat before another scheduler's lock counts as left behind

# Take every queue's lock in one step, or none: each must be free, ours, or still held by the holder judged
# abandoned (ARGV[2 + i], '' for none). RQ takes them one by one, so two schedulers starting together, or taking
# over from the same dead one, would split the queues between them, and both would stay.
_TAKE_ALL = """
for i, key in ipairs(KEYS) do
    local holder = redis.call('GET', key)
    if holder and holder ~= ARGV[1] and holder ~= ARGV[2 + i] then return 0 end
end
for _, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
end
return 1
"""

# Swap the holder for us only if it is still the one we judged abandoned: never take a lock that changed hands.
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
        self._failed_at = float("-inf")  # monotonic time of the last failed tick

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
            self._failed_at = time.monotonic()
            return
        if self._failing:
            log.info("Scheduler %s: Redis is back; scheduling again", self.name)
            self._failing = False

    def tick(self) -> None:
        """Hold (or take over) the queues' locks, keep the heartbeat, move every due job to its queue."""
        if self.acquired_locks == self.queue_names and not self._failing:
            self.rq.heartbeat()  # refreshes our locks; drops any another scheduler took
        else:
            abandoned, names = self.abandoned_locks(), sorted(self.queue_names)
            if self._take_all(keys=self._lock_keys(names),
                              args=[self.name, self.lock_ttl, *(abandoned.get(name, "") for name in names)]):
                if self.acquired_locks != self.queue_names:
                    log.info("Acquired scheduler lock for %s", ", ".join(names))
                self._report_takeovers(abandoned)
            else:  # a live scheduler holds some (a stock one on other queues): take what is abandoned, one by one
                self._take_over_each(abandoned)
            if self.rq.acquire_locks():  # RQ's own step: it records the locks it holds, and takes any left free
                self.rq.register_birth()  # only a holder shows as a scheduler (rq info, stats)
        if self.acquired_locks:
            self.rq.enqueue_scheduled_jobs()

    def abandoned_locks(self) -> dict[str, str]:
        """Our queues whose lock another scheduler holds but no longer keeps: queue name → holder."""
        if time.monotonic() - self._failed_at < STALE_AFTER:
            return {}  # just back from an outage, every holder looks silent: give the live ones time to beat
        connection = self.rq.connection
        names = sorted(self.queue_names - self.acquired_locks)
        holders = connection.mget(self._lock_keys(names))
        others = {name: holder.decode() for name, holder in zip(names, holders, strict=True)
                  if holder is not None and holder.decode() != self.name}
        if not others:
            return {}
        with connection.pipeline(transaction=False) as pipe:
            for name, holder in others.items():
                pipe.hget(SCHEDULER_KEY_TEMPLATE % holder, "last_heartbeat")
                pipe.pttl(RQScheduler.get_locking_key(name))
            replies = pipe.execute()
        stale_before = utcformat(now() - timedelta(seconds=STALE_AFTER))
        return {name: holder for (name, holder), beat, pttl in zip(others.items(), replies[::2], replies[1::2],
                                                                   strict=True)
                if self._abandoned(beat, pttl, stale_before)}

    def _abandoned(self, beat: bytes | None, pttl: int, stale_before: str) -> bool:
        """Whether nobody keeps a lock, from its holder's last heartbeat and the lock's remaining ``pttl`` (ms)."""
        if beat is None:  # no metadata: expired, or not written yet by a scheduler that has just taken its locks
            return pttl <= (self.lock_ttl - STALE_AFTER) * 1000  # set or renewed longer than STALE_AFTER ago
        return beat.decode() < stale_before

    def _take_over_each(self, abandoned: dict[str, str]) -> None:
        """Take each abandoned lock that still has the holder it was judged by."""
        taken = {}
        for name, holder in abandoned.items():
            if self._take_over(keys=[RQScheduler.get_locking_key(name)], args=[holder, self.name, self.lock_ttl]):
                taken[name] = holder
        self._report_takeovers(taken)

    def _report_takeovers(self, taken: dict[str, str]) -> None:
        """Log the locks taken from silent schedulers: queue name → former holder."""
        for name, holder in taken.items():
            log.warning("Scheduler %s: took over the lock for %s from %s (silent for over %.0f s)",
                        self.name, name, holder, STALE_AFTER)

    @staticmethod
    def _lock_keys(names: Any) -> list[str]:
        """RQ's lock keys of these queues."""
        return [RQScheduler.get_locking_key(name) for name in names]
