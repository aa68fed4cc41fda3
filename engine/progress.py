"""Job progress written to the running job's meta, throttled so Redis sees at most ~5 writes a second."""

from __future__ import annotations

import time

from rq import get_current_job
from rq.job import Job


class Progress:
    """Reports ``{"stage", "bytes", "total"}`` for the current RQ job (a no-op outside a worker)."""

    def __init__(self, job: Job | None = None, min_interval: float = 0.2):
        self.job = job if job is not None else get_current_job()
        self.min_interval = min_interval
        self._last = 0.0

    def update(self, stage: str, done: int = 0, total: int | None = None, force: bool = False) -> None:
        """Record the stage and bytes so far; skipped if the last write was under min_interval ago."""
        if self.job is None:
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        self.job.meta["progress"] = {"stage": stage, "bytes": done, "total": total}
        self.job.save_meta()
