"""What a batch's aggregate job reads: each of its items as it ended."""

from __future__ import annotations

from typing import Any

from rq import get_current_job
from rq.job import Job

from engine.status import job_error, job_status


def ended_items(item_ids: list[str]) -> list[dict[str, Any]]:
    """For an aggregate job: each item's id, params, status, result and error (``expired`` once it is gone)."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("an aggregate reads its batch's items only inside a worker")
    # The running job's own class and serializer read its items alike, without importing the queues here.
    items = type(job).fetch_many(item_ids, connection=job.connection, serializer=job.serializer)
    return [_ended(item_id, item) for item_id, item in zip(item_ids, items, strict=True)]


def _ended(item_id: str, item: Job | None) -> dict[str, Any]:
    if item is None:
        return {"id": item_id, "params": {}, "status": "expired", "result": None,
                "error": {"type": "Expired", "message": "The item expired before the batch ended."}}
    status = job_status(item)
    if status == "started":  # a stop was requested and is landing as we read
        status = "stopped"
    error = None if status == "finished" else (
        job_error(item, status) or {"type": status.capitalize(), "message": f"The item was {status}."})
    result = (item.return_value() or {}) if status == "finished" else None
    return {"id": item_id, "params": item.kwargs, "status": status, "result": result, "error": error}
