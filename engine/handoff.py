"""A dequeue that never drops a job between the queue and the worker, whatever queues a worker listens on.

RQ pops with BLPOP when a worker listens on several queues, so a job popped by a worker that dies (or is
SIGTERMed) before it starts is gone. Here every claim is an atomic LMOVE from ``<queue>`` to
``<queue>:intermediate`` (a backup list), tried over the queues in priority order by one Lua script. Redis
cannot block on several lists without popping, so an idle worker polls, backing off to ``POLL_MAX`` seconds.
A claim is recorded in ``HOLD`` with SIGTERM/SIGINT blocked, so a shutdown handler always knows whether the
worker holds a job that has not started; the recovery reaper returns claims whose worker died.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import NoScriptError
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.utils import as_text

_SHAS: dict[str, str] = {}
POLL_MIN = 0.005  # first pause after an empty poll, seconds; doubles up to POLL_MAX
POLL_MAX = 0.1  # an idle worker picks a new job up within this long; ~10 cheap script calls a second

# KEYS: queue1, queue1:intermediate, queue2, queue2:intermediate, ... in priority order.
CLAIM_SCRIPT = """
for i = 1, #KEYS, 2 do
  local id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
  if id then return {KEYS[i], id} end
end
return false
"""

# KEYS: queue, queue:intermediate; ARGV: job id. Back to the front: it was next in line.
GIVE_BACK_SCRIPT = """
if redis.call('LREM', KEYS[2], 1, ARGV[1]) > 0 then
  redis.call('LPUSH', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

SHUTDOWN_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# Set by the worker on SIGTERM or recycle: the claim loop returns at its next poll instead of claiming more.
# A flag, not an exception raised from the signal handler, so a stop can never land between claim and record.
STOP = threading.Event()


class Hold:
    """The job this process claimed and has not started yet (one worker loop per process)."""

    def __init__(self) -> None:
        self.queue_key: str | None = None
        self.job_id: str | None = None

    @property
    def active(self) -> bool:
        return self.job_id is not None

    def set(self, queue_key: str, job_id: str) -> None:
        self.queue_key, self.job_id = queue_key, job_id

    def clear(self) -> None:
        self.queue_key = self.job_id = None


HOLD = Hold()


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT back while a claim and its record happen together (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SHUTDOWN_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def intermediate_key(queue_key: str) -> str:
    """RQ's name for a queue's backup list."""
    return f"{queue_key}:intermediate"


def claim(connection: Redis, queue_keys: list[str]) -> tuple[str, str] | None:
    """Atomically move the first waiting job id of the first non-empty queue into its backup list."""
    keys = [key for queue_key in queue_keys for key in (queue_key, intermediate_key(queue_key))]
    with signals_deferred():
        result = run_script(connection, CLAIM_SCRIPT, keys)
        if not result:
            return None
        queue_key, job_id = as_text(result[0]), as_text(result[1])
        HOLD.set(queue_key, job_id)
    return queue_key, job_id


def run_script(connection: Redis, script: str, keys: list[str], args: tuple = ()) -> object:
    """EVALSHA (the body is not resent each call), loading the script when Redis does not know it yet."""
    sha = _SHAS.get(script) or _SHAS.setdefault(script, hashlib.sha1(script.encode()).hexdigest())
    try:
        return connection.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        return connection.eval(script, len(keys), *keys, *args)


def give_back(connection: Redis, queue_key: str, job_id: str) -> bool:
    """Return a claimed, unstarted job from the backup list to the front of its queue."""
    return bool(connection.eval(GIVE_BACK_SCRIPT, 2, queue_key, intermediate_key(queue_key), job_id))


class SafeQueue(Queue):
    """A Queue whose ``dequeue_any`` keeps a backup copy of every claimed job until it starts."""

    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer=None,
        death_penalty_class=None,
    ) -> tuple[Job, Queue] | None:
        """Claim the next job by priority; block up to ``timeout`` seconds (None: return at once)."""
        queue_keys = [queue.key for queue in queues]
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = POLL_MIN
        while not STOP.is_set():
            claimed = claim(connection, queue_keys)
            if claimed is not None:
                queue_key, job_id = claimed
                found = cls._fetch_dequeued_job(
                    connection, queue_key, job_id, job_class=job_class, serializer=serializer,
                    death_penalty_class=death_penalty_class,
                )
                if found is not None:
                    return found
                connection.lrem(intermediate_key(queue_key), 1, job_id)  # the job hash expired: drop the id
                HOLD.clear()
                continue
            if deadline is None:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DequeueTimeout(timeout, queue_keys)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, POLL_MAX)
        return None
