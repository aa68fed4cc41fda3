"""Claiming jobs: one Lua script takes up to N jobs off the queues, by priority, and starts them.

Taking a job and writing RQ's start records happen in the same script call, so a job is never off its queue
without being ``started`` in RQ's eyes: there is no hand-off window in which a worker holds a job nobody can
see, and no window in which a second queue entry of the same job (two parents that finish at once can each
enqueue their shared dependent) looks claimable. A worker that dies after the call leaves a started job with an
execution of its own: the reaper (engine.recovery) recovers it like any job abandoned mid-run.

The start records are RQ's own (what ``Worker.prepare_execution`` and ``prepare_job_execution`` write): the job
hash's status, ``started_at``, ``last_heartbeat`` and ``worker_name``, its TTL removed; an Execution hash; the
job's execution registry; the queue's StartedJobRegistry; the worker's execution index.

A job whose client already runs its share (engine.fairness) is parked in the same call instead of started, so the
scan goes on to other clients' jobs and a flood cannot fill the pool first.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import NoScriptError
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job
from rq.queue import Queue
from rq.utils import as_text, now, utcformat

from engine import fairness

_SHAS: dict[str, str] = {}

# KEYS: queue1, started-registry1, queue2, started-registry2, ... in priority order; then the worker's execution
# index and the worker's hash (its state turns busy). ARGV: how many at most, now (epoch seconds), now (RQ's date
# format), worker name, job monitoring interval, job key prefix, execution key prefix, execution registry key
# prefix, the per-client cap (0: none), then one fresh execution id per job wanted. Returns queue key, job id,
# execution id and the job hash (as it was before the claim) per job. An entry whose job is gone, already running or
# ended, or claimed twice in this call, is dropped; one whose client holds ``cap`` slots is parked.
CLAIM_SCRIPT = fairness.LUA + """
local want, now, stamp, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local interval, job_prefix, exec_prefix, execs_prefix = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local cap = tonumber(ARGV[9])
local index, worker_key = KEYS[#KEYS - 1], KEYS[#KEYS]
local taken = {started = true, finished = true, failed = true, stopped = true, canceled = true}
local out, seen, longest, parks = {}, {}, 0, 0
for i = 1, #KEYS - 2, 2 do
  while #out < want * 4 and parks < """ + str(fairness.PARK_BUDGET) + """ do
    local id = redis.call('LPOP', KEYS[i])
    if not id then break end
    local key = job_prefix .. id
    local raw = redis.call('HGETALL', key)
    local fields = {}
    for j = 1, #raw, 2 do fields[raw[j]] = raw[j + 1] end
    if #raw == 0 or seen[id] or taken[fields['status'] or ''] then
      -- dropped: a duplicate entry, or a job that is gone
    elseif not fair_take(id, fields['client'], cap) then
      fair_park(id, fields['client'])
      parks = parks + 1
    else
      seen[id] = true
      local execution = ARGV[9 + #out / 4 + 1]
      local timeout = tonumber(fields['timeout'] or '')
      local ttl = interval + 60
      if timeout and timeout > 0 then ttl = math.floor(math.min(timeout, interval)) + 60 end
      if ttl > longest then longest = ttl end
      local composite = id .. ':' .. execution
      redis.call('HSET', key, 'last_heartbeat', stamp, 'status', 'started', 'started_at', stamp, 'worker_name', worker)
      redis.call('PERSIST', key)
      redis.call('HSET', exec_prefix .. composite, 'id', execution, 'job_id', id, 'created_at', now,
                 'last_heartbeat', now, 'worker_name', worker)
      redis.call('EXPIRE', exec_prefix .. composite, ttl)
      redis.call('ZADD', execs_prefix .. id, math.floor(now) + ttl + 60, execution)
      redis.call('EXPIRE', execs_prefix .. id, ttl + 60)
      redis.call('ZADD', KEYS[i + 1], math.floor(now) + ttl, composite)
      redis.call('SADD', index, composite)
      out[#out + 1] = KEYS[i]
      out[#out + 1] = id
      out[#out + 1] = execution
      out[#out + 1] = raw
    end
  end
end
if longest > 0 then
  redis.call('EXPIRE', index, longest + 60)
  redis.call('HSET', worker_key, 'state', 'busy')
end
return out
"""


@dataclass
class Claim:
    """A job claimed and started: its queue key, its hash as read by the claim, and its RQ Execution."""

    queue_key: str
    job_id: str
    raw: dict[bytes, bytes]
    execution: Execution


def run_script(connection: Redis, script: str, keys: list[str], args: tuple | list = ()) -> object:
    """EVALSHA (the body is not resent each call), loading the script when Redis does not know it yet."""
    sha = _SHAS.get(script) or _SHAS.setdefault(script, hashlib.sha1(script.encode()).hexdigest())
    try:
        return connection.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        return connection.eval(script, len(keys), *keys, *args)


def claim(connection: Redis, queues: list[Queue], count: int, worker_name: str, worker_key: str,
          executions_key: str, monitoring_interval: int, client_cap: int = 0) -> list[Claim]:
    """Take and start up to ``count`` waiting jobs, by queue priority, in one script call; a client's jobs past
    ``client_cap`` running at once (0: no cap) are parked (engine.fairness)."""
    keys = [key for queue in queues for key in (queue.key, queue.started_job_registry.key)]
    execution_ids = [uuid.uuid4().hex for _ in range(max(1, count))]
    moment = now()
    args = [len(execution_ids), moment.timestamp(), utcformat(moment), worker_name, monitoring_interval,
            Job.redis_job_namespace_prefix, Execution("e", "j", connection).key.removesuffix("j:e"),
            ExecutionRegistry.key_template.format(""), client_cap, *execution_ids]
    flat = list(run_script(connection, CLAIM_SCRIPT, [*keys, executions_key, worker_key], args) or [])
    claims = []
    for i in range(0, len(flat), 4):
        job_id, execution_id = as_text(flat[i + 1]), as_text(flat[i + 2])
        execution = Execution(execution_id, job_id, connection, worker_name=worker_name)
        execution.created_at = execution.last_heartbeat = moment
        raw = flat[i + 3]
        claims.append(Claim(as_text(flat[i]), job_id, dict(zip(raw[::2], raw[1::2], strict=True)), execution))
    return claims


POLL_MIN = 0.005  # seconds after the first empty claim
POLL_MAX = 0.1  # an idle worker picks a new job up within this long


def poll_pause(empty_polls: int) -> float:
    """Seconds to wait after ``empty_polls`` empty claims in a row: POLL_MIN doubling up to POLL_MAX."""
    return min(POLL_MIN * 2 ** min(empty_polls, 10), POLL_MAX)

