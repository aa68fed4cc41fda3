"""The clock process: enqueues periodic jobs (engine/schedule.py) once per slot, however many clocks run.

One clock leads at a time (a Redis lease it renews every tick; another takes over when it lapses), and each
slot of each entry is claimed with SET NX before it is enqueued, so even two clocks that both think they lead
for a moment cannot enqueue the same run twice.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq.scripts import acquire_or_refresh_lock, release_lock

from engine import catalog, lifecycle, schedule
from engine.connection import connect
from engine.settings import ConfigError, Settings

FIRED_PREFIX = "stack:clock:fired:"
LEASE_SECONDS = 15  # a dead leader is replaced within this long
TICK_SECONDS = 1.0

log = logging.getLogger("clock")


class Clock:
    """Checks the schedule every tick while it holds the leader lease, and enqueues what is due."""

    def __init__(self, connection: Redis, settings: Settings, entries: tuple[schedule.Periodic, ...],
                 name: str | None = None):
        self.connection = connection
        self.settings = settings
        self.entries = entries
        self.name = name or f"{socket.gethostname()}.{uuid.uuid4().hex[:8]}"
        self.leading = False
        self.stopping = False

    def tick(self, now: datetime | None = None) -> list[str]:
        """One round: renew or take the lease, then enqueue every due slot; returns the job ids enqueued."""
        outcome = acquire_or_refresh_lock(self.connection, schedule.LEADER_KEY, self.name, LEASE_SECONDS)
        leading = outcome in ("acquired", "refreshed")
        if leading != self.leading:
            log.info("clock %s %s", self.name, "is the leader" if leading else "is standing by")
            self.leading = leading
        if not leading:
            return []
        now = now or datetime.now(UTC)
        return [job_id for entry in self.entries if (job_id := self.fire(entry, now))]

    def fire(self, entry: schedule.Periodic, now: datetime) -> str | None:
        """Enqueue ``entry`` for its current slot unless that slot already ran; returns the job id."""
        slot = entry.slot(now)
        remember = max(entry.period(now) * 2, timedelta(hours=1))
        fired_key = f"{FIRED_PREFIX}{entry.name}:{int(slot.timestamp())}"
        if not self.connection.set(fired_key, self.name, nx=True, ex=int(remember.total_seconds())):
            return None
        try:
            job = lifecycle.submit(
                self.connection, lifecycle.Submission(catalog.get(entry.type), entry.params, entry.priority),
                self.settings, meta={"schedule": entry.name, "slot": slot.isoformat().replace("+00:00", "Z")},
            )
        except RedisError:
            # Not enqueued (or withdrawn: no replica confirmed it): free the slot so the next tick tries again.
            with contextlib.suppress(RedisError):
                self.connection.delete(fired_key)
            raise
        log.info("enqueued %s for %s (slot %s): job %s", entry.type, entry.name, slot.isoformat(), job["id"])
        return job["id"]

    def run(self) -> None:
        """Tick until SIGTERM or SIGINT; a Redis outage is logged and retried, never fatal."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.info("clock %s started with %d schedule entries", self.name, len(self.entries))
        while not self.stopping:
            try:
                self.tick()
            except RedisError as exc:
                log.warning("Redis unavailable (%s); retrying", type(exc).__name__)
                self.leading = False
            time.sleep(TICK_SECONDS)
        try:
            # hand over at once instead of after the lease
            release_lock(self.connection, schedule.LEADER_KEY, self.name)
        except RedisError:
            pass
        log.info("clock %s stopped", self.name)

    def stop(self, *_: object) -> None:
        self.stopping = True


def main(argv: list[str] | None = None) -> int:
    """Load and validate the schedule, then run the clock until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="validate the schedule, print it and exit")
    parser.add_argument("--name", help="clock name (unique per Redis)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s clock %(levelname)s %(message)s")
    try:
        settings = Settings.from_env()
        entries = schedule.load(settings.schedule_file)
    except (ConfigError, schedule.ScheduleError) as exc:
        print(f"clock: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for entry in entries:
            when = f"every {entry.every} s" if entry.every else f"cron {entry.cron!r} (UTC)"
            print(f"{entry.name}: {entry.type} {entry.params} {when} on {entry.priority}")
        print(f"{len(entries)} schedule entries OK")
        return 0
    Clock(connect(settings), settings, entries, args.name).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
