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
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.utils import as_text

from engine import fairness

_SHAS: dict[str, str] = {}
POLL_MIN = 0.005  # first pause after an empty poll, seconds; doubles up to POLL_MAX
POLL_MAX = 0.1  # an idle worker picks a new job up within this long; ~10 cheap script calls a second

# KEYS: queue1, queue1:intermediate, queue2, queue2:intermediate, ... in priority order.
# ARGV: how many jobs at most, the job key prefix, the per-client cap (0: none). Returns queue key, job id and job
# hash per claimed job, so claiming and reading the jobs is one round trip (RQ's dequeue is two per job).
# Every path that puts a job on a queue marks it queued, so a queue entry whose job is already running or has
# ended, or a second entry of a job claimed in this call, is a duplicate: two parents that finish at once can each
# enqueue their shared dependent (a batch's aggregate). Such an entry is dropped, so no job runs twice.
# A job whose client already runs its share is parked instead (engine.fairness), so scanning on finds others' jobs.
CLAIM_SCRIPT = fairness.LUA + """
local out, want, seen, cap, parks = {}, tonumber(ARGV[1]), {}, tonumber(ARGV[3]), 0
local taken = {started = true, finished = true, failed = true, stopped = true, canceled = true}
for i = 1, #KEYS, 2 do
  while #out < want * 3 and parks < """ + str(fairness.PARK_BUDGET) + """ do
    local id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
    if not id then break end
    local job = redis.call('HMGET', ARGV[2] .. id, 'status', 'client')
    local status = job[1]
    if seen[id] or (status and taken[status]) then
      redis.call('RPOP', KEYS[i + 1])
    elseif not fair_take(id, job[2], cap) then
      fair_park(id, job[2], KEYS[i + 1])
      parks = parks + 1
    else
      seen[id] = true
      out[#out + 1] = KEYS[i]
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGETALL', ARGV[2] .. id)
    end
  end
end
return out
"""

# KEYS: queue, queue:intermediate; ARGV: job id. Back to the front: it was next in line. Its slot is freed.
GIVE_BACK_SCRIPT = fairness.LUA + """
if redis.call('LREM', KEYS[2], 1, ARGV[1]) > 0 then
  fair_release(ARGV[1])
  redis.call('LPUSH', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

SHUTDOWN_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# Set by the worker on SIGTERM or recycle: the claim loop returns at its next poll instead of claiming more.
# A flag, not an exception raised from the signal handler, so a stop can never land between claim and record.
STOP = threading.Event()


@dataclass
class Claim:
    """A claimed job: its queue key, id and the job hash read in the same script call."""

    queue_key: str
    job_id: str
    raw: dict[bytes, bytes]


class Hold:
    """Jobs this process claimed and has not started yet (one worker loop per process): the one being handed
    over (``job_id``) and those claimed with it, next in line (``waiting``)."""

    def __init__(self) -> None:
        self.queue_key: str | None = None
        self.job_id: str | None = None
        self.waiting: deque[Claim] = deque()
        self.batch = 1  # how many to claim at once: the worker sets it to its free job threads
        self.client_cap = 0  # jobs of one client running at once across all workers (engine.fairness); 0: no cap

    @property
    def active(self) -> bool:
        return self.job_id is not None

    def set(self, queue_key: str, job_id: str) -> None:
        self.queue_key, self.job_id = queue_key, job_id

    def clear(self) -> None:
        self.queue_key = self.job_id = None

    def give_back_waiting(self, connection: Redis) -> int:
        """Return the claims next in line to the front of their queues, first claimed first in line."""
        returned = 0
        while self.waiting:
            claim_ = self.waiting.pop()  # the last claimed goes back first, so the first ends up in front
            returned += give_back(connection, claim_.queue_key, claim_.job_id)
        return returned


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


def claim_many(connection: Redis, queue_keys: list[str], count: int) -> list[Claim]:
    """Atomically move up to ``count`` waiting job ids, by queue priority, into their backup lists."""
    keys = [key for queue_key in queue_keys for key in (queue_key, intermediate_key(queue_key))]
    args = (max(1, count), Job.redis_job_namespace_prefix, HOLD.client_cap)
    result = run_script(connection, CLAIM_SCRIPT, keys, args)
    flat = list(result or [])
    return [Claim(as_text(flat[i]), as_text(flat[i + 1]), dict(zip(flat[i + 2][::2], flat[i + 2][1::2], strict=True)))
            for i in range(0, len(flat), 3)]


def claim(connection: Redis, queue_keys: list[str]) -> tuple[str, str] | None:
    """Claim the next job by priority and record it in ``HOLD``; its queue key and id, or None."""
    with signals_deferred():
        claims = claim_many(connection, queue_keys, 1)
        if not claims:
            return None
        HOLD.set(claims[0].queue_key, claims[0].job_id)
    return claims[0].queue_key, claims[0].job_id


def run_script(connection: Redis, script: str, keys: list[str], args: tuple = ()) -> object:
    """EVALSHA (the body is not resent each call), loading the script when Redis does not know it yet."""
    sha = _SHAS.get(script) or _SHAS.setdefault(script, hashlib.sha1(script.encode()).hexdigest())
    try:
        return connection.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        return connection.eval(script, len(keys), *keys, *args)


def give_back(connection: Redis, queue_key: str, job_id: str) -> bool:
    """Return a claimed, unstarted job from the backup list to the front of its queue."""
    return bool(run_script(connection, GIVE_BACK_SCRIPT, [queue_key, intermediate_key(queue_key)], (job_id,)))


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
        """The next claimed job by priority; block up to ``timeout`` seconds (None: return at once).

        Claims ``HOLD.batch`` jobs at a time (the worker's free job threads), so each starts at once.
        """
        queue_keys = [queue.key for queue in queues]
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = POLL_MIN
        while not STOP.is_set():
            with signals_deferred():
                if not HOLD.waiting:
                    HOLD.waiting.extend(claim_many(connection, queue_keys, HOLD.batch))
                next_claim = HOLD.waiting.popleft() if HOLD.waiting else None
                if next_claim is not None:
                    HOLD.set(next_claim.queue_key, next_claim.job_id)
            if next_claim is not None:
                found = cls._job_from_claim(next_claim, connection, job_class, serializer, death_penalty_class)
                if found is not None:
                    return found
                connection.lrem(intermediate_key(next_claim.queue_key), 1, next_claim.job_id)  # hash expired
                HOLD.clear()
                continue
            if deadline is None:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DequeueTimeout(timeout, queue_keys)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, POLL_MAX)
        HOLD.give_back_waiting(connection)  # stopping: claims next in line go back unstarted
        return None

    @classmethod
    def _job_from_claim(cls, found: Claim, connection: Redis, job_class: type[Job] | None, serializer: Any,
                        death_penalty_class: Any) -> tuple[Job, Queue] | None:
        """The job and queue of a claim, built from the hash the claim read (None if the job expired)."""
        if not found.raw:
            return None
        job_cls = job_class or cls.job_class
        queue = cls.from_queue_key(found.queue_key, connection=connection, job_class=job_cls, serializer=serializer,
                                   death_penalty_class=death_penalty_class)
        job = job_cls(found.job_id, connection=connection, serializer=serializer)
        job.restore(found.raw)
        return job, queue
