"""The job lifecycle: the one submit path (priority, scheduling, idempotency), listing and waiting.

Shared by the web (API and form), the CLI and the clock; nothing here knows about HTTP.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq.job import Job

from engine import catalog
from engine.enqueue import RECENT_KEY, Client, enqueue, schedule
from engine.enqueue_script import Charge
from engine.errors import InvalidRequest
from engine.queues import SERIALIZER, CatalogJob, fetch_job
from engine.settings import QUEUE_NAMES, Settings
from engine.status import TERMINAL, job_status, job_view

DEFAULT_PRIORITY = "default"
MAX_AHEAD = timedelta(days=30)
MAX_WAIT = 30.0
IDEMPOTENCY_TTL = 24 * 3600
IDEMPOTENCY_PREFIX = "stack:idempotency:"
MAX_IDEMPOTENCY_KEY = 255
LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 100
LIST_SCAN_BUDGET = 500  # most index entries one list request examines, whatever the filters
STATUSES = ("queued", "scheduled", "deferred", "started", "finished", "failed", "canceled", "stopped")


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used with a different body, or its first request is still being handled."""


@dataclass(frozen=True)
class Submission:
    """A validated job submission: what to run, on which queue, and when."""

    job_type: catalog.JobType
    params: dict[str, Any]
    priority: str = DEFAULT_PRIORITY
    run_at: datetime | None = None

    def fingerprint(self, body: dict[str, Any]) -> str:
        """A digest of the request body as sent (canonical JSON), for Idempotency-Key comparisons."""
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_priority(value: Any) -> str:
    """The queue for ``value`` (``high``, ``default`` or ``low``); absent means ``default``."""
    if value is None:
        return DEFAULT_PRIORITY
    if value not in QUEUE_NAMES:
        raise InvalidRequest("priority", f"must be one of {', '.join(QUEUE_NAMES)}")
    return value


def parse_run_at(delay_seconds: Any, at: Any, now: datetime | None = None) -> datetime | None:
    """When a delayed job should run (UTC), or None to run now; past or >30 days ahead is invalid."""
    if delay_seconds is not None and at is not None:
        raise InvalidRequest("at", "give delay_seconds or at, not both")
    now = now or datetime.now(UTC)
    if delay_seconds is not None:
        if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, int | float):
            raise InvalidRequest("delay_seconds", "must be a number of seconds")
        if delay_seconds != delay_seconds or delay_seconds <= 0:  # NaN never compares equal to itself
            raise InvalidRequest("delay_seconds", "must be greater than 0")
        if delay_seconds > MAX_AHEAD.total_seconds():
            raise InvalidRequest("delay_seconds", "must be at most 30 days (2592000 seconds)")
        return now + timedelta(seconds=delay_seconds)
    if at is None:
        return None
    if not isinstance(at, str):
        raise InvalidRequest("at", "must be an ISO 8601 date-time string with a zone, e.g. 2030-01-01T09:00:00Z")
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise InvalidRequest("at", f"{at!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        raise InvalidRequest("at", "needs a zone, e.g. Z or +02:00")
    # Compare before converting: 9999-12-31T23:59-23:59 or 0001-01-01T00:00+23:59 lies outside datetime's range
    # in UTC, so astimezone would raise OverflowError; comparing aware datetimes needs no conversion.
    if when <= now:
        raise InvalidRequest("at", "is in the past")
    if when - now > MAX_AHEAD:
        raise InvalidRequest("at", "is more than 30 days ahead")
    return when.astimezone(UTC)


def submit(connection: Redis, submission: Submission, settings: Settings, *, job_id: str | None = None,
           charge: Charge | None = None, meta: dict[str, Any] | None = None,
           client: Client | None = None) -> dict[str, Any]:
    """The one way a job is submitted (API, form, CLI, clock): enqueue it on its priority's queue, or schedule it,
    after a rate-limit ``charge``, as ``client``'s job (engine.fairness); returns the job's API view. ``job_id``
    fixes its id, ``meta`` adds to its meta."""
    if submission.run_at is not None:
        return schedule(connection, submission.job_type, submission.params, settings, queue=submission.priority,
                        at=submission.run_at, job_id=job_id, meta=meta, charge=charge, client=client)
    return enqueue(connection, submission.job_type, submission.params, settings, queue=submission.priority,
                   job_id=job_id, meta=meta, charge=charge, client=client)


def submit_idempotent(connection: Redis, submission: Submission, settings: Settings, key: str, fingerprint: str,
                      client: Client | None = None) -> tuple[dict[str, Any], bool]:
    """Submit once per Idempotency-Key of a ``client``: ``(job view, created)``; a reused key returns the first
    job.

    Keys live per client (its key is the scope), so another client's identical key neither finds this client's job
    nor blocks it with a 409; code inside the deployment (the CLI) has no client and shares the empty scope.
    """
    scope = client.key if client is not None else ""
    redis_key = IDEMPOTENCY_PREFIX + hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()
    job_id = str(uuid.uuid4())
    claim = json.dumps({"fingerprint": fingerprint, "job_id": job_id})
    # A key outliving its job would answer 409 until it expired: it lives no longer than the job can.
    ttl = min(IDEMPOTENCY_TTL, settings.result_ttl, settings.failure_ttl, settings.queued_ttl)
    if connection.set(redis_key, claim, nx=True, ex=ttl):
        try:
            return submit(connection, submission, settings, job_id=job_id, client=client), True
        except Exception:
            connection.delete(redis_key)  # let the client retry with the same key
            raise
    stored = json.loads(connection.get(redis_key) or "{}")
    if stored.get("fingerprint") != fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was already used with a different request body.")
    job = fetch_job(connection, stored.get("job_id", ""))
    if job is None:
        raise IdempotencyConflict("A request with this Idempotency-Key is still being handled; retry shortly.")
    return job_view(job), False


def valid_idempotency_key(key: str) -> bool:
    """1-255 printable ASCII characters, as the header allows."""
    return 0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isascii() and key.isprintable()


def parse_cursor(cursor: str | None) -> tuple[float, str] | None:
    """``"<score>:<id>"`` from a previous page, or None; raises InvalidRequest if malformed."""
    if not cursor:
        return None
    score, sep, job_id = cursor.partition(":")
    try:
        value = float(score)
    except ValueError:
        value = float("nan")
    if not sep or not job_id or value != value or value in (float("inf"), float("-inf")):
        raise InvalidRequest("cursor", "is not a cursor from a previous page")
    return value, job_id


def list_jobs(connection: Redis, status: str | None = None, job_type: str | None = None,
              limit: int = LIST_DEFAULT_LIMIT, cursor: str | None = None) -> tuple[list[Job], str | None]:
    """Recent jobs, newest first, matching the filters: ``(jobs, next_cursor)``.

    Each call examines at most LIST_SCAN_BUDGET index entries, so a rare filter returns a short page and a
    cursor to continue from rather than scanning everything. ``next_cursor`` is None at the end of the index.
    """
    after = parse_cursor(cursor)
    found: list[Job] = []
    examined = 0
    while examined < LIST_SCAN_BUDGET and len(found) < limit:
        entries = _window(connection, after, min(100, LIST_SCAN_BUDGET - examined))
        if not entries:
            return found, None
        jobs = CatalogJob.fetch_many([m for _, m in entries], connection=connection, serializer=SERIALIZER)
        gone = [member for (_, member), job in zip(entries, jobs, strict=True) if job is None]
        if gone:
            connection.zrem(RECENT_KEY, *gone)  # expired since: forget them
        for entry, job in zip(entries, jobs, strict=True):
            examined += 1
            after = entry
            if job is not None and _matches(job, status, job_type):
                found.append(job)
                if len(found) == limit:
                    break
    return found, f"{after[0]!r}:{after[1]}" if after else None


def _window(connection: Redis, after: tuple[float, str] | None, size: int) -> list[tuple[float, str]]:
    """Up to ``size`` index entries ``(score, id)`` strictly after the cursor position, newest first.

    The read includes the cursor's own score, because jobs created in the same microsecond share it (Redis
    orders them by id, descending); those at or before the cursor's id are dropped here.
    """
    high, extra = (repr(after[0]), 16) if after else ("+inf", 0)
    raw = connection.zrevrangebyscore(RECENT_KEY, high, "-inf", start=0, num=size + extra, withscores=True)
    entries = [(score, member.decode()) for member, score in raw]
    if after:
        entries = [(s, m) for s, m in entries if s < after[0] or (s == after[0] and m < after[1])]
    return entries[:size]


def _matches(job: Job, status: str | None, job_type: str | None) -> bool:
    return (status is None or job_status(job) == status) and (job_type is None or job.meta.get("type") == job_type)


def wait_for(connection: Redis, job_id: str, timeout: float, interval: float = 0.005,
             sleep: Callable[[float], None] = time.sleep) -> Job | None:
    """The job once it is terminal, or after ``timeout`` seconds; None if it expired or never existed.

    Polls the job's status field (one small HGET) with a growing interval: from 5 ms, so a quick job answers
    within milliseconds, ×1.5 up to 1 s, about 45 HGETs in 30 s. Under
    gunicorn's gevent worker, time.sleep yields to other requests: hundreds of waiters cost a greenlet each.
    """
    deadline = time.monotonic() + max(0.0, min(timeout, MAX_WAIT))
    if fetch_job(connection, job_id) is None:
        return None
    key = Job.key_for(job_id)
    while True:
        status = connection.hget(key, "status")
        if status is None or status.decode() in TERMINAL or time.monotonic() >= deadline:
            return fetch_job(connection, job_id)
        sleep(max(0.0, min(interval, deadline - time.monotonic())))
        interval = min(interval * 1.5, 1.0)
