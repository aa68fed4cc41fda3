"""The job class the worker runs: a catalogue job that logs its start and finish and times itself."""

from __future__ import annotations

import time
from typing import Any

from rq.utils import now

from engine import events, logs, metrics
from engine.queues import CatalogJob


class ObservedJob(CatalogJob):
    """Logs ``started`` and ``finished`` lines and records queue wait and duration; failures go to
    ``events.observe_failure``, which the worker registers as an exception handler."""

    def perform(self) -> Any:
        with logs.context(self.meta.get("request_id"), self.id):
            kind = events.job_type(self)
            wait = events.seconds_between(self.enqueued_at, self.started_at or now())
            events.emit(
                "started",
                self,
                worker=self.worker_name,
                attempt=int(self.meta.get("failures", 0)) + 1,
                queue_wait_s=None if wait is None else round(wait, 3),
            )
            if wait is not None:
                events.record("observe", self.connection, metrics.QUEUE_WAIT, kind, wait)
            began = time.monotonic()
            result = super().perform()
            duration = time.monotonic() - began
            events.emit("finished", self, duration_s=round(duration, 3))
            events.record("observe", self.connection, metrics.DURATION, kind, duration)
            return result
