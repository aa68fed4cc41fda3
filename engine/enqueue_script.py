"""The one script call that writes a submission: charge the client's rate limit (and daily quota) first and, only
if the charge fits, run its writes (a job, or a whole batch), atomically and in order.

The writes are the very commands RQ's enqueue issues (engine.enqueue), so RQ's data is byte for byte what RQ
writes itself; only the transport changes, from a ``MULTI``/``EXEC`` whose every reply redis-py parses to one
script call with one reply. Nothing is left half-made by a failure: the script checks, before any write, that
each key it writes holds the type it expects (a script stops at its first error but keeps what it wrote before),
and Redis refuses the whole call when it is out of memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

# KEYS: none, or the client's current and previous window counters, and optionally its quota's counter for the
# day. ARGV: cost, expiry, share of the previous window in view, limit, quota, quota counter's expiry; then each
# command as its argument count followed by its arguments. A charge over the quota is taken back (the quota counts
# accepted work only); one over the rate still counts. The shebang makes Redis 7 refuse the whole call when it is
# out of memory, as a MULTI is, instead of letting it write past it.
_LUA = b"""#!lua
local holds = {HSET='hash', HINCRBY='hash', RPUSH='list', LPUSH='list', SADD='set', ZADD='zset',
               ZREMRANGEBYRANK='zset'}
local i = 7
while i <= #ARGV do
  local want = holds[string.upper(ARGV[i + 1])]
  if want then
    local found = redis.call('TYPE', ARGV[i + 2])['ok']
    if found ~= 'none' and found ~= want then
      return redis.error_reply('WRONGTYPE ' .. ARGV[i + 2] .. ' holds a ' .. found .. ', not a ' .. want ..
                               '; nothing was written')
    end
  end
  i = i + tonumber(ARGV[i]) + 1
end
local current, previous = 0, 0
if #KEYS >= 2 then
  current = redis.call('INCRBY', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  previous = tonumber(redis.call('GET', KEYS[2]) or '0')
  if current + previous * tonumber(ARGV[3]) > tonumber(ARGV[4]) then
    return {current, previous, 0}
  end
end
if #KEYS == 3 then
  if redis.call('INCRBY', KEYS[3], ARGV[1]) > tonumber(ARGV[5]) then
    redis.call('DECRBY', KEYS[3], ARGV[1])
    return {current, previous, -1}
  end
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
i = 7
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return {current, previous, 1}
"""
_SCRIPT = Script(None, _LUA)  # type: ignore[arg-type]  # bytes: no client needed to compute its SHA


@dataclass(frozen=True)
class Charge:
    """``cost`` units on the current window's counter, refused when ``current + previous × in_view > limit``."""

    current_key: str
    previous_key: str
    cost: int
    expire: int  # seconds the current window's counter lives
    in_view: float  # share of the previous window still inside the sliding one
    limit: int
    quota_key: str | None = None  # the client's counter for the day, refused past ``quota``
    quota: int = 0
    quota_expire: int = 0


@dataclass(frozen=True)
class Durable:
    """Acknowledge only once ``replicas`` replicas have the writes (Redis WAIT), waiting up to ``timeout_ms``."""

    replicas: int
    timeout_ms: int


class NotReplicated(RedisError):
    """Fewer replicas than asked confirmed the writes in time: they may not survive a failover."""

    def __init__(self, durable: Durable, confirmed: int):
        super().__init__(f"{confirmed} of {durable.replicas} replica(s) confirmed within {durable.timeout_ms} ms")
        self.confirmed = confirmed


class Refused(Exception):
    """The charge did not fit, so nothing was enqueued; a charge over the rate still counts, one over the quota
    (``over_quota``) does not."""

    def __init__(self, charge: Charge, current: int, previous: int, over_quota: bool = False):
        what = "daily quota" if over_quota else f"rate limit: {current} + {previous}"
        super().__init__(f"{what} over {charge.quota if over_quota else charge.limit}")
        self.charge, self.current, self.previous, self.over_quota = charge, current, previous, over_quota


def run(connection: Redis, commands: Iterable[Sequence[Any]], charge: Charge | None = None,
        durable: Durable | None = None) -> tuple[int, int]:
    """Run ``commands`` in one script call, after ``charge``; raise Refused if it did not fit, else return the
    charge's current and previous window counters.

    Every submission's writes go through this one call. With ``durable``, a WAIT rides in the same round trip;
    NotReplicated if too few replicas confirmed (the writes are made on the primary all the same: the caller
    decides what to undo).
    """
    args: list[Any] = [0, 0, 0, 0, 0, 0] if charge is None else [
        charge.cost, charge.expire, repr(charge.in_view), charge.limit, charge.quota, charge.quota_expire
    ]
    for command in commands:
        args.append(len(command))
        args.extend(command)
    keys = [] if charge is None else [charge.current_key, charge.previous_key, *filter(None, [charge.quota_key])]
    if durable is None or durable.replicas == 0:
        current, previous, allowed = _SCRIPT(keys, args, client=connection)
        confirmed = 0
    else:
        (current, previous, allowed), confirmed = _run_and_wait(connection, keys, args, durable)
    if allowed != 1:
        raise Refused(charge, int(current), int(previous), over_quota=allowed == -1)  # type: ignore[arg-type]
    if durable is not None and confirmed < durable.replicas:
        raise NotReplicated(durable, confirmed)
    return int(current), int(previous)


def _run_and_wait(connection: Redis, keys: list[str], args: list[Any], durable: Durable) -> tuple[list, int]:
    """EVALSHA and WAIT in one round trip (a promoted replica may not know the script yet: load it, once)."""
    reply, confirmed = _evalsha_and_wait(connection, keys, args, durable)
    if isinstance(reply, NoScriptError):
        connection.script_load(_LUA)
        reply, confirmed = _evalsha_and_wait(connection, keys, args, durable)
    for value in (reply, confirmed):
        if isinstance(value, Exception):
            raise value
    return reply, int(confirmed)


def _evalsha_and_wait(connection: Redis, keys: list[str], args: list[Any], durable: Durable) -> list:
    with connection.pipeline(transaction=False) as wire:
        wire.evalsha(_SCRIPT.sha, len(keys), *keys, *args)
        wire.wait(durable.replicas, durable.timeout_ms)
        return wire.execute(raise_on_error=False)


def stacked(pipe: Pipeline) -> list[Sequence[Any]]:
    """The commands queued on ``pipe`` (RQ's own writes recorded there), taken off it to be run by ``run``."""
    commands = [command for command, _options in pipe.command_stack]
    pipe.reset()
    return commands
