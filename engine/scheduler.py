"""RQ's scheduler (scheduled jobs and retries with intervals) run in a thread of a worker process.

RQ forks a child process for it, which outlives a SIGKILLed worker and keeps writing to Redis; a thread cannot
be orphaned. The loop is RQScheduler's own ``work()`` step by step (locks, heartbeat, enqueue), without its
signal handlers, which only the main thread may install. One worker in a deployment holds the locks at a time:
every worker started with the scheduler keeps trying, so another takes over when the holder dies.
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import RedisError
from rq.queue import Queue
from rq.scheduler import RQScheduler

from engine.queues import SERIALIZER


class SchedulerThread(threading.Thread):
    """RQScheduler's loop in a daemon thread: take the queues' locks when free, move due jobs to their queues."""

    def __init__(self, scheduler: RQScheduler, logger: logging.Logger):
        super().__init__(name="rq-scheduler", daemon=True)
        self.scheduler = scheduler
        self.log = logger
        self._stopping = threading.Event()

    def run(self) -> None:
        born = False
        while not self._stopping.is_set():
            try:
                if self.scheduler.should_reacquire_locks:
                    self.scheduler.acquire_locks()
                if self.scheduler.acquired_locks:
                    if not born:
                        self.scheduler.register_birth()
                        born = True
                    self.scheduler.heartbeat()
                    self.scheduler.enqueue_scheduled_jobs()
            except RedisError as exc:  # keep trying: the locks expire if we cannot renew them
                self.log.warning("scheduler: Redis unavailable (%s)", type(exc).__name__)
            self._stopping.wait(self.scheduler.interval)

    def stop(self) -> None:
        """Stop the loop and give the locks back, so another worker's scheduler takes over at once."""
        self._stopping.set()
        self.join(timeout=2)
        try:
            if self.scheduler.acquired_locks:
                self.scheduler.stop()
        except RedisError:
            pass


def start(queues: list[Queue], connection: Redis, burst: bool, logger: logging.Logger) -> SchedulerThread | None:
    """In burst mode move due jobs once (if no other scheduler holds the locks); else start the thread."""
    scheduler = RQScheduler(queues, connection=connection, serializer=SERIALIZER)
    if burst:
        scheduler.acquire_locks()
        if scheduler.acquired_locks:
            try:
                scheduler.enqueue_scheduled_jobs()
            finally:
                scheduler.release_locks()
        return None
    thread = SchedulerThread(scheduler, logger)
    thread.start()
    return thread
