"""Periodic jobs: the schedule, validated against the catalogue, and when each entry is next due.

Entries are declared in ``jobs/schedule.py`` (``SCHEDULE``), or in a JSON file named by ``SCHEDULE_FILE`` (a list of
objects with the same fields). ``clock.py`` enqueues each entry once per slot; see docs/periodic.md.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import croniter

from engine import catalog
from engine.settings import QUEUE_NAMES

LEADER_KEY = "stack:clock:leader"  # the clock holding it enqueues; the CLI's status reads who that is
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
FIELDS = {"name", "type", "params", "every", "cron", "priority"}


class ScheduleError(ValueError):
    """A schedule entry is invalid; the message names the entry and the field."""


@dataclass(frozen=True)
class Periodic:
    """One periodic job: a catalogue job type and params, run every N seconds or on a cron expression (UTC)."""

    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    every: int | None = None
    cron: str | None = None
    priority: str = "default"

    def validated(self) -> Periodic:
        """This entry with its params cleaned by the job's schema; raises ScheduleError naming the problem."""
        where = f"schedule entry {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ScheduleError(f"{where}: name must be 1-64 letters, digits, '_', '.' or '-'")
        if (self.every is None) == (self.cron is None):
            raise ScheduleError(f"{where}: give exactly one of every (seconds) or cron")
        if self.every is not None and (isinstance(self.every, bool) or not isinstance(self.every, int)
                                       or self.every < 1):
            raise ScheduleError(f"{where}: every must be a whole number of seconds, at least 1")
        if self.cron is not None and (not isinstance(self.cron, str) or not croniter.is_valid(self.cron)):
            raise ScheduleError(f"{where}: cron {self.cron!r} is not a valid cron expression")
        if self.priority not in QUEUE_NAMES:
            raise ScheduleError(f"{where}: priority must be one of {', '.join(QUEUE_NAMES)}")
        try:
            params = catalog.get(self.type).validate(self.params)
        except (catalog.UnknownJobType, catalog.InvalidParams) as exc:
            raise ScheduleError(f"{where}: {exc}") from None
        return Periodic(self.name, self.type, params, self.every, self.cron, self.priority)

    def slot(self, now: datetime) -> datetime:
        """The start of the period ``now`` falls in: the run due most recently."""
        if self.every is not None:
            epoch = int(now.timestamp())
            return datetime.fromtimestamp(epoch - epoch % self.every, UTC)
        return croniter(self.cron, now.astimezone(UTC)).get_prev(datetime).astimezone(UTC)

    def period(self, now: datetime) -> timedelta:
        """The length of the current period (for how long to remember that its slot ran)."""
        if self.every is not None:
            return timedelta(seconds=self.every)
        start = self.slot(now)
        return croniter(self.cron, start).get_next(datetime).astimezone(UTC) - start


def declared_entries() -> tuple[Periodic, ...]:
    """``SCHEDULE`` from the jobs package's ``schedule`` module, if it has one."""
    try:
        module = importlib.import_module(f"{catalog.JOBS_PACKAGE}.schedule")
    except ModuleNotFoundError as exc:
        if exc.name != f"{catalog.JOBS_PACKAGE}.schedule":
            raise
        return ()
    return tuple(getattr(module, "SCHEDULE", ()))


def load(path: str | None = None, declared: Iterable[Periodic] | None = None) -> tuple[Periodic, ...]:
    """The declared entries (default: ``jobs/schedule.py``) plus those in the JSON file at ``path``, all validated."""
    entries = list(declared_entries() if declared is None else declared)
    if path:
        entries.extend(_from_file(Path(path)))
    validated = tuple(entry.validated() for entry in entries)
    names = [entry.name for entry in validated]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ScheduleError(f"schedule entry names must be unique: {', '.join(duplicates)}")
    return validated


def _from_file(path: Path) -> list[Periodic]:
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ScheduleError(f"SCHEDULE_FILE {str(path)!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise ScheduleError(f"SCHEDULE_FILE {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ScheduleError(f"SCHEDULE_FILE {str(path)!r} must hold a JSON list of objects")
    entries = []
    for index, item in enumerate(raw):
        unknown = sorted(set(item) - FIELDS)
        if unknown or "name" not in item or "type" not in item:
            raise ScheduleError(f"SCHEDULE_FILE entry {index}: needs name and type; unknown fields: {unknown}")
        entries.append(Periodic(**item))
    return entries
