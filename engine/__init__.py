"""The engine: everything that queues, runs and watches jobs.

``jobs/`` holds the jobs, and they use only what this module exports (and the settings mechanism in
``engine.settings``): the ``@job`` decorator, ``Progress``, the error classes, ``Periodic`` for the schedule and
``ended_items`` for a batch's aggregate.
"""

from engine.aggregate import ended_items
from engine.catalog import job
from engine.errors import JobError, PermanentError, TimedOut, TransientError
from engine.progress import Progress
from engine.schedule import Periodic

__all__ = ["JobError", "PermanentError", "Periodic", "Progress", "TimedOut", "TransientError", "ended_items", "job"]
