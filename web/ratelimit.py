"""One rate limit per client over every route that submits work: ONE Redis round trip per POST.

A sliding-window counter (the two-window approximation): each client has a counter per fixed window of
``period`` seconds, and its load now is ``current + previous × (share of the previous window still in view)``.
Charging a request is one pipelined ``INCRBY`` + ``EXPIRE`` of the current window and a ``GET`` of the previous
one (no transaction, one write to the socket). A request is refused when its charge would take the client over
the limit; the refused charge still counts, so hammering past the limit keeps a client out.

The client is the address the request came from (``request.remote_addr``, the proxy's client once ProxyFix is
set up with PROXY_FIX_X_FOR); an IPv6 client is counted by its /64, the block one host usually gets.
If Redis does not answer, the request goes through: it then fails on its own with a 503.

A view marked ``charged_in_view`` (the API's submit) makes its request's charge itself: ``take`` hands it to
the enqueue, which charges and enqueues in one script call (engine.enqueue_script), so such a POST costs one
round trip instead of two. A path of that view that does other work calls ``settle`` first, and a request the
view refuses (a 4xx) is charged on its way out, answering 429 instead when it does not fit, as before.

A submission withdrawn because no replica confirmed it (a 503) gets its daily-quota charge back: the client was
refused, and retries it.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from redis import Redis
from redis.exceptions import RedisError

from engine import enqueue_script
from engine.enqueue_script import Charge, NotReplicated, Refused
from engine.settings import DAY
from web.errors import error_response, redis_down

F = TypeVar("F", bound=Callable[..., object])

KEY_PREFIX = "stack:ratelimit:"
QUOTA_PREFIX = "stack:quota:"
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": DAY}
QUOTA_EXPIRE = DAY + 3600  # a day's counter outlives its day by an hour: clocks of web hosts differ a little


@dataclass(frozen=True)
class Rate:
    """``limit`` units of work per ``period`` seconds."""

    limit: int
    period: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'60 per minute' → Rate(60, 60) (the format engine.settings checks for RATELIMIT_SUBMIT)."""
        count, _, unit = text.split()
        return cls(int(count), UNITS[unit.rstrip("s")])


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int
    retry_after: int  # seconds; 0 when allowed
    over_quota: bool = False  # refused by the daily quota, not the rate


def address_group(address: str | None) -> str:
    """The counter's name for a client address: IPv4 as is, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


# Never below zero, never a new key: after a failover the charge may not have reached this server, or it may
# have failed open.
_GIVE_BACK = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return redis.call('DECRBY', KEYS[1], ARGV[1]) end
return used
"""


class ClientLimiter:
    """Charges work to a client against one shared Rate and a daily quota (0: none), in the app's Redis (shared
    by every web process). The rate counts a client by its address group, the quota by its client key."""

    def __init__(self, redis: Redis, rate: Rate, quota: int = 0):
        self.redis, self.rate, self.quota = redis, rate, quota

    def charge(self, client: str, cost: int = 1, now: float | None = None, quota_client: str | None = None) -> Verdict:
        now = time.time() if now is None else now
        try:  # the enqueue's own script with nothing to write: one set of charging rules
            current, previous = enqueue_script.run(self.redis, [], self.plan(client, cost, now, quota_client))
        except Refused as exc:
            return self.over_quota(now) if exc.over_quota else self.verdict(exc.current, exc.previous, now, cost)
        except RedisError:
            return Verdict(True, self.rate.limit, 0)  # fail open; the request meets the outage itself
        return self.verdict(current, previous, now, cost)

    def give_back(self, client: str, cost: int, now: float, quota_client: str | None = None) -> None:
        """Take a charge off ``quota_client``'s daily quota (the rate's counter keeps it), never below zero."""
        quota_key = self.plan(client, cost, now, quota_client).quota_key
        if quota_key:
            try:
                self.redis.eval(_GIVE_BACK, 1, quota_key, cost)
            except RedisError:  # gone with the primary, like the charge itself
                pass

    def plan(self, client: str, cost: int, now: float, quota_client: str | None = None) -> Charge:
        """The charge of ``cost`` units for ``client`` at ``now`` (and for ``quota_client``'s daily quota), for
        ``charge`` or for an enqueue's script."""
        period, window = self.rate.period, int(now // self.rate.period)
        quota_key = f"{QUOTA_PREFIX}{quota_client}:{int(now // DAY)}" if self.quota and quota_client else None
        return Charge(f"{KEY_PREFIX}{client}:{window}", f"{KEY_PREFIX}{client}:{window - 1}", cost, 2 * period,
                      self._in_view(now), self.rate.limit, quota_key, self.quota, QUOTA_EXPIRE)

    def over_quota(self, now: float) -> Verdict:
        """The verdict on a charge past the daily quota: it fits again when the UTC day turns."""
        return Verdict(False, 0, max(1, math.ceil(DAY - now % DAY)), over_quota=True)

    def verdict(self, current: int, previous: int, now: float, cost: int) -> Verdict:
        """The verdict on a charge that left the counters at ``current`` and ``previous`` (the script's test)."""
        limit = self.rate.limit
        load = current + previous * self._in_view(now)
        if load <= limit:
            return Verdict(True, max(0, math.floor(limit - load)), 0)
        return Verdict(False, 0, self._retry_after(current, previous, now, int(now // self.rate.period), cost))

    def _in_view(self, now: float) -> float:
        """The share of the previous window still inside the sliding one."""
        period = self.rate.period
        return 1.0 - (now - int(now // period) * period) / period

    def _retry_after(self, current: int, previous: int, now: float, window: int, cost: int) -> int:
        """Seconds until this much work would fit again, if the client sends nothing meanwhile."""
        period, limit = self.rate.period, self.rate.limit
        # Within this window the previous one fades out; from the next window on, only `current` fades.
        end = (window + 1) * period
        if previous:
            # current + previous × (1 − (t − start)/period) + cost ≤ limit, solved for t
            wait = (current + previous + cost - limit) * period / previous - (now - window * period)
            if 0 < wait <= end - now:
                return max(1, math.ceil(wait))
        after_end = max(0.0, (current + cost - limit) * period / current) if current else 0.0
        return max(1, math.ceil(end - now + after_end))


def cost(units: Callable[[], int]) -> Callable[[F], F]:
    """Mark a view whose POST costs ``units()`` (read from the request) instead of 1: a batch costs its items."""

    def mark(view: F) -> F:
        view.rate_cost = units  # type: ignore[attr-defined]
        return view

    return mark


def charged_in_view(view: F) -> F:
    """Mark a view that makes its request's charge itself (``take`` or ``settle``); any charge it leaves is
    made when it ends, and a request it refused answers 429 instead when that charge does not fit."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            response = view(*args, **kwargs)
        except Refused:
            raise
        except Exception:
            settle()
            raise
        settle(refuse=False)  # the work is done: count it
        return response

    wrapped.charges_itself = True  # type: ignore[attr-defined]
    return wrapped  # type: ignore[return-value]


def take() -> Charge | None:
    """This request's pending charge, for the enqueue's script to make; None when there is none."""
    pending = g.pop("rate_charge", None)
    if pending is None:
        return None
    g.rate_charged = pending  # (client, cost, time, quota client)
    return current_app.extensions["limiter"].plan(*pending)


def settle(refuse: bool = True) -> None:
    """Make this request's pending charge now (one round trip); ``Limited`` if it does not fit."""
    pending = g.pop("rate_charge", None)
    if pending is not None:
        g.rate_charged = pending
        verdict = current_app.extensions["limiter"].charge(*pending)
        if refuse and not verdict.allowed:
            raise Limited(verdict)


class Limited(Exception):
    """A request's charge did not fit."""

    def __init__(self, verdict: Verdict):
        super().__init__(f"retry after {verdict.retry_after} s")
        self.verdict = verdict


def too_many(message: str, retry_after: int) -> Response:
    response = error_response(429, "too_many_requests", message)
    response.headers["Retry-After"] = str(retry_after)
    return response


def init_app(app: Flask, rate_text: str, blueprints: tuple[str, ...], quota: int = 0,
             client_key: Callable[[], str] | None = None) -> ClientLimiter:
    """Charge every POST to ``blueprints`` to its client; 429 with Retry-After past the limit or past the daily
    ``quota`` of the request's ``client_key()`` (web.access, which stands on this module)."""
    limiter = ClientLimiter(app.extensions["redis"], Rate.parse(rate_text), quota)
    app.extensions["limiter"] = limiter

    def refusal(verdict: Verdict) -> Response:
        if verdict.over_quota:
            return too_many(f"Daily quota reached: one client may submit {quota} jobs a day, counted like the rate "
                            f"limit (submits, batch items, cancels, retries and form posts), so that no client can "
                            f"fill the job store. It renews at 00:00 UTC, in {verdict.retry_after} s.",
                            verdict.retry_after)
        return too_many(f"Too many submissions from your address: the limit is {rate_text}, counted over submits, "
                        f"batch items, cancels, retries and form posts together. Try again in "
                        f"{verdict.retry_after} s.", verdict.retry_after)

    def refused_in_script(exc: Refused) -> Response:
        charged_at = g.rate_charged[2]
        if exc.over_quota:
            return refusal(limiter.over_quota(charged_at))
        return refusal(limiter.verdict(exc.current, exc.previous, charged_at, exc.charge.cost))

    def withdrawn(exc: NotReplicated) -> Response:
        charged = g.pop("rate_charged", None)
        if charged is not None:  # the client is answered 503: its withdrawn submission spends no quota
            limiter.give_back(*charged)
        return redis_down(exc)

    app.register_error_handler(Limited, lambda exc: refusal(exc.verdict))
    app.register_error_handler(Refused, refused_in_script)
    app.register_error_handler(NotReplicated, withdrawn)

    @app.before_request
    def limit_submissions() -> Response | None:
        if request.method != "POST" or request.blueprint not in blueprints:
            return None
        view = app.view_functions.get(request.endpoint or "")
        units = getattr(view, "rate_cost", None)
        cost = units() if units else 1
        if cost > limiter.rate.limit:  # can never fit: refused without charging (or asking Redis)
            message = (f"This request counts as {cost} submissions (one per batch item), more than the whole limit "
                       f"of {rate_text}: send fewer items at a time.")
            return too_many(message, limiter.rate.period)
        charge = (address_group(request.remote_addr), cost, time.time(), client_key() if client_key else None)
        if getattr(view, "charges_itself", False):
            g.rate_charge = charge
            return None
        g.rate_charged = charge
        verdict = limiter.charge(*charge)
        return None if verdict.allowed else refusal(verdict)

    return limiter
