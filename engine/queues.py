"""Our RQ classes: the JSON serializer, the catalogue-checked job class, the queues by name, and a job fetched
with them."""

from __future__ import annotations

from redis import Redis
from rq import Queue
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from engine import catalog
from engine.errors import UNDECODABLE, ForbiddenJob
from engine.settings import QUEUE_NAMES

SERIALIZER = JSONSerializer
_MAX_JOB_ID = 128


class CatalogJob(Job):
    """An RQ job that resolves its function only from the job catalogue, never by importing a dotted path."""

    @property
    def func(self):  # type: ignore[override]
        try:
            name, instance = self.func_name, self.instance
        except DeserializationError:
            raise ForbiddenJob(UNDECODABLE) from None
        job_type = catalog.BY_FUNC_PATH.get(name or "")
        if job_type is None or instance is not None:
            raise ForbiddenJob(f"{name!r} is not in the job catalogue; it was not run.")
        return job_type.func

    # Callbacks are resolved by import path too; none are catalogued, so a forged one is ignored.
    success_callback = failure_callback = stopped_callback = property(lambda self: None)  # type: ignore[assignment]


def make_queues(connection: Redis) -> dict[str, Queue]:
    """The queues by name, all JSON-serialised and using the catalogue-checked job class."""
    return {
        name: Queue(name, connection=connection, serializer=SERIALIZER, job_class=CatalogJob)
        for name in QUEUE_NAMES
    }


def fetch_job(connection: Redis, job_id: str) -> Job | None:
    """The job with this id, or None when it expired or never existed."""
    if not job_id or len(job_id) > _MAX_JOB_ID or not job_id.isprintable():
        return None
    try:
        return CatalogJob.fetch(job_id, connection=connection, serializer=SERIALIZER)
    except (NoSuchJobError, ValueError):  # ValueError: RQ refuses ids outside [A-Za-z0-9_-], so none exists
        return None
