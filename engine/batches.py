"""Batches: many items of one job type, and an aggregate job that runs when every item has ended.

The aggregate depends on the items through RQ's ``Dependency(allow_failure=True)``, so it runs after the last item
finishes or fails; a canceled or stopped item is detached from it (see ``cancel.cancel_job``).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.job import Dependency

from engine import catalog, enqueue_script, events
from engine.enqueue import Client, deferred_writes, durable, queued_writes, withdraw
from engine.errors import InvalidRequest
from engine.queues import SERIALIZER, CatalogJob
from engine.settings import Settings
from engine.status import iso, job_status, job_view

BATCH_PREFIX = "stack:batch:"
MAX_ITEMS = 100


def batchable() -> list[catalog.JobType]:
    """The job types a batch can hold: those that declare an aggregate."""
    return [t for t in catalog.CATALOG.values() if t.batch_aggregate]


def validate_items(type_name: Any, items: Any) -> tuple[catalog.JobType, list[dict[str, Any]]]:
    """The job type and each item's cleaned params; raises InvalidRequest or catalog errors naming the item."""
    job_type = catalog.get(type_name)
    if not job_type.batch_aggregate:
        names = ", ".join(sorted(t.name for t in batchable()))
        raise InvalidRequest("type", f"batches support {names}, not {job_type.name!r}")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidRequest("items", f"must be a list of 1 to {MAX_ITEMS} objects")
    cleaned = []
    for index, item in enumerate(items):
        try:
            cleaned.append(job_type.validate(item))
        except catalog.InvalidParams as exc:
            field, message = next(iter(exc.errors.items()))
            raise InvalidRequest(f"items[{index}]{field.removeprefix('params')}", message) from None
    return job_type, cleaned


def create_batch(connection: Redis, queue: str, job_type: catalog.JobType, items: list[dict[str, Any]],
                 settings: Settings, client: Client | None = None) -> dict[str, Any]:
    """Write every item, the aggregate that waits for them and the batch record in one script call, as
    ``client``'s jobs, so a Redis failure leaves either the whole batch or nothing; returns the stored batch
    record."""
    batch_id = uuid.uuid4().hex
    meta = {"batch": batch_id}
    item_ids = [str(uuid.uuid4()) for _ in items]
    now = datetime.now(UTC)
    commands = [command for item_id, params in zip(item_ids, items, strict=True)
                for command in queued_writes(job_type, params, settings, queue=queue, job_id=item_id, now=now,
                                             meta=meta, client=client)]
    with connection.pipeline() as pipe:
        aggregate = deferred_writes(
            connection, pipe, catalog.INTERNAL[job_type.batch_aggregate], {"batch_id": batch_id, "item_ids": item_ids},
            settings, queue=queue, depends_on=Dependency(jobs=item_ids, allow_failure=True), meta=meta,
            client=client,
        )
        commands += enqueue_script.stacked(pipe)
    record = {"id": batch_id, "type": job_type.name, "created_at": iso(now), "items": item_ids,
              "aggregate": aggregate.id}
    # Kept as long as the longest-lived of its jobs can be: queued for QUEUED_TTL, then a result for RESULT_TTL.
    ttl = settings.queued_ttl + max(settings.result_ttl, settings.failure_ttl)
    commands.append(("SET", BATCH_PREFIX + batch_id, json.dumps(record), "EX", ttl))
    try:
        enqueue_script.run(connection, commands, durable=durable(settings))
    except enqueue_script.NotReplicated as exc:
        # The whole batch goes; an item a worker already took runs alone, its aggregate withdrawn with the rest.
        withdraw(connection, queue, [*item_ids, aggregate.id], exc)
        connection.delete(BATCH_PREFIX + batch_id)
        raise
    for item_id in item_ids:
        events.submitted(item_id, job_type.name, queue)
    events.submitted(aggregate.id, job_type.batch_aggregate, queue)
    return record


def batch_view(connection: Redis, batch_id: str) -> dict[str, Any] | None:
    """The batch's status, item ids and statuses, and the aggregate result; None if unknown or expired."""
    if not batch_id or len(batch_id) > 64 or not batch_id.isalnum():
        return None
    raw = connection.get(BATCH_PREFIX + batch_id)
    if raw is None:
        return None
    record = json.loads(raw)
    jobs = CatalogJob.fetch_many([*record["items"], record["aggregate"]], connection=connection,
                                 serializer=SERIALIZER)
    statuses = [job_status(job) if job is not None else "expired" for job in jobs[:-1]]
    aggregate = jobs[-1]
    aggregate_view = job_view(aggregate) if aggregate is not None else None
    return {
        "id": record["id"],
        "type": record["type"],
        "status": _batch_status(statuses, aggregate_view),
        "created_at": record["created_at"],
        "counts": dict(Counter(statuses)),
        "items": [{"id": item_id, "status": status} for item_id, status in zip(record["items"], statuses, strict=True)],
        "aggregate_id": record["aggregate"],
        "result": aggregate_view["result"] if aggregate_view else None,
        "error": aggregate_view["error"] if aggregate_view else None,
    }


def _batch_status(statuses: list[str], aggregate: dict[str, Any] | None) -> str:
    """``finished``/``failed``/``canceled``/``stopped`` once the aggregate ends, else ``running`` or ``queued``."""
    if aggregate is None:
        return "expired"
    if aggregate["status"] in ("finished", "failed", "canceled", "stopped"):
        return aggregate["status"]
    return "queued" if all(status in ("queued", "scheduled") for status in statuses) else "running"
