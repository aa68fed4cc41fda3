"""Fair shares of the worker pool: at most ``cap`` jobs of one client run at once, across every worker.

A job submitted by a client carries the hash field ``client`` (an opaque key: the credential if any, else the
address group the rate limit counts; the CLI, the clock and Python enqueues set none and are never capped).
The slots are claimed where jobs are claimed, inside the claim script, so a flood cannot fill the pool first:

- claim: a job whose client already holds ``cap`` slots is *parked* instead of handed out: moved to the client's
  parked list (first in, first out) with RQ's own status ``rate_limited``, so RQ's readers and our API show it
  waiting; otherwise the job's id joins the client's running set (its slot);
- release: when the job finishes, fails, is stopped, re-queued or reaped, its id leaves the
  set and the client's oldest parked job goes back to the *front* of its queue (it was next in line);
- sweep: the reaper drops slots whose job no longer runs (a path that ended a job without releasing it, such as a
  plain ``rq worker`` or RQ's own maintenance) and refills the freed slots.

Why not RQ 3's ``RateLimit(key, concurrency=N)``: it takes its slot at enqueue time and refuses to enqueue on a
pipeline, so the API's one-script submit (engine.enqueue_script) and batches could not use it without extra round
trips; and its leaked slots come back only in RQ's maintenance (every 600 s), where ours come back with the
reaper's pass (every few seconds). The idea and the status (``rate_limited``) are the same.

The Lua below is written as fragments (``LUA`` defines local functions) so every script that claims or ends a job
takes or releases a slot in its own atomic call: a claim script prepends ``LUA``, calls ``fair_take(id, client,
cap)`` with the job hash's ``client`` field and, when that says no, ``fair_park(id, client)`` for the job it popped;
a script that ends or re-queues a job calls ``fair_release(id)`` (the worker's finish script,
engine.records, for every job it ends). From Python, ``release(pipeline, job_id)`` puts the same into a
transaction (engine.recovery's re-queues and failures).
"""

from __future__ import annotations

from redis import Redis
from redis.client import Pipeline
from rq.job import Job, JobStatus
from rq.queue import Queue

PREFIX = "stack:fair:"
CLIENTS_KEY = PREFIX + "clients"  # clients holding slots or parked jobs: what the sweep looks at
PARKED = JobStatus.RATE_LIMITED.value  # RQ's own status for a job held back by a concurrency limit
PARK_BUDGET = 1000  # most jobs one claim call parks, so one call never blocks Redis for long


def running_key(client: str) -> str:
    """The set of a client's job ids that hold a slot."""
    return f"{PREFIX}{client}:running"


def parked_key(client: str) -> str:
    """The list of a client's parked job ids, oldest first."""
    return f"{PREFIX}{client}:parked"


# Local functions shared by the scripts. ``FAIR_JOB`` and ``FAIR_QUEUE`` are RQ's key prefixes.
LUA = f"""
local FAIR, FAIR_CLIENTS = '{PREFIX}', '{CLIENTS_KEY}'
local FAIR_JOB, FAIR_QUEUE = '{Job.redis_job_namespace_prefix}', '{Queue.redis_queue_namespace_prefix}'

-- Whether a claimed job may run: it takes one of its client's ``cap`` slots (cap <= 0 or no client: uncapped).
local function fair_take(id, client, cap)
  if not client or cap <= 0 then return true end
  local running = FAIR .. client .. ':running'
  if redis.call('SCARD', running) >= cap then return false end
  redis.call('SADD', running, id)
  redis.call('SADD', FAIR_CLIENTS, client)
  return true
end

-- Park a job the claim just popped off its queue: it waits at the tail of its client's parked list.
local function fair_park(id, client)
  redis.call('RPUSH', FAIR .. client .. ':parked', id)
  redis.call('HSET', FAIR_JOB .. id, 'status', '{PARKED}')
  redis.call('SADD', FAIR_CLIENTS, client)
end

-- Put up to ``n`` of the client's parked jobs back at the front of their queues; gone or canceled ones are dropped.
local function fair_unpark(client, n)
  local parked, back = FAIR .. client .. ':parked', {{}}
  while #back < n do
    local id = redis.call('LPOP', parked)
    if not id then break end
    local job = redis.call('HMGET', FAIR_JOB .. id, 'status', 'origin')
    if job[1] == '{PARKED}' and job[2] then
      redis.call('HSET', FAIR_JOB .. id, 'status', 'queued')
      back[#back + 1] = {{FAIR_QUEUE .. job[2], id}}
    end
  end
  for k = #back, 1, -1 do redis.call('LPUSH', back[k][1], back[k][2]) end  -- the oldest ends up first
  return #back
end

-- The job no longer runs: free its slot, and let the client's next parked job in.
local function fair_release(id)
  local client = redis.call('HGET', FAIR_JOB .. id, 'client')
  if client and redis.call('SREM', FAIR .. client .. ':running', id) == 1 then
    fair_unpark(client, 1)
  end
end
"""

_RELEASE = LUA + "\nfor _, id in ipairs(ARGV) do fair_release(id) end\nreturn 0\n"

# ARGV: cap. A slot is held rightly only by a started job: the claim takes it and starts the job in one call, and
# every ending frees it in the call that records the end; any other slot leaked. Free slots are refilled from the
# parked list; a client with neither is forgotten.
_SWEEP = LUA + """
local cap, freed, moved = tonumber(ARGV[1]), 0, 0
for _, client in ipairs(redis.call('SMEMBERS', FAIR_CLIENTS)) do
  local running = FAIR .. client .. ':running'
  for _, id in ipairs(redis.call('SMEMBERS', running)) do
    if redis.call('HGET', FAIR_JOB .. id, 'status') ~= 'started' then
      redis.call('SREM', running, id)
      freed = freed + 1
    end
  end
  local free = cap - redis.call('SCARD', running)
  if cap <= 0 then free = redis.call('LLEN', FAIR .. client .. ':parked') end
  if free > 0 then moved = moved + fair_unpark(client, free) end
  if redis.call('EXISTS', running, FAIR .. client .. ':parked') == 0 then
    redis.call('SREM', FAIR_CLIENTS, client)
  end
end
return {freed, moved}
"""


def release(target: Redis | Pipeline, *job_ids: str) -> None:
    """Free the jobs' slots (if they hold any) and let their clients' next parked jobs in.

    On a pipeline it rides in that transaction (EVAL, so a Redis that has not seen the script yet still runs it).
    """
    if job_ids:
        target.eval(_RELEASE, 0, *job_ids)


def sweep(connection: Redis, cap: int) -> tuple[int, int]:
    """Free leaked slots and refill free ones from the parked lists: ``(slots freed, jobs let in)``."""
    freed, moved = connection.eval(_SWEEP, 0, cap)  # type: ignore[misc]
    return int(freed), int(moved)
