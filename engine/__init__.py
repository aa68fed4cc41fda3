"""The engine: everything that queues, runs and watches jobs. ``jobs/`` holds the jobs and uses only this API."""

from engine.catalog import job
from engine.errors import JobError, PermanentError, TransientError
from engine.progress import Progress

__all__ = ["JobError", "PermanentError", "Progress", "TransientError", "job"]
