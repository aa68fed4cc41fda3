"""The batch aggregate job: sums the word counts of a batch's finished items and lists the failed ones."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from pydantic import Field
from rq import get_current_job

ItemIds = Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]], Field(min_length=1, max_length=100)]
TOP = 20


def aggregate_word_counts(batch_id: str, item_ids: ItemIds) -> dict[str, Any]:
    """Sum the word counts of a batch's finished items, merge their top words, list the failed items."""
    from engine.queues import SERIALIZER, CatalogJob, job_error, job_status  # queues imports the catalogue

    job = get_current_job()
    connection = job.connection if job is not None else None
    if connection is None:
        raise RuntimeError("aggregate_word_counts runs only inside a worker")
    items = CatalogJob.fetch_many(item_ids, connection=connection, serializer=SERIALIZER)
    results, failed = [], []
    for item_id, item in zip(item_ids, items, strict=True):
        if item is None:
            failed.append({"id": item_id, "url": None, "status": "expired",
                           "error": {"type": "Expired", "message": "The item expired before the batch ended."}})
            continue
        status = job_status(item)
        if status == "finished":
            results.append(item.return_value() or {})
            continue
        if status == "started":  # a stop was requested and is landing as we read
            status = "stopped"
        error = job_error(item, status) or {"type": status.capitalize(), "message": f"The item was {status}."}
        failed.append({"id": item_id, "url": item.kwargs.get("url"), "status": status, "error": error})
    return summarise(batch_id, results, failed)


def summarise(batch_id: str, results: list[dict[str, Any]], failed: list[dict[str, Any]]) -> dict[str, Any]:
    """The aggregate result from the finished items' results and the failed items' records."""
    words: Counter[str] = Counter()
    for result in results:
        for entry in result.get("top_words", []):
            words[entry["word"]] += entry["count"]
    ranked = sorted(words.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP]
    return {
        "batch_id": batch_id,
        "finished": len(results),
        "failed": len(failed),
        "total_words": sum(result.get("total_words", 0) for result in results),
        "top_words": [{"word": word, "count": count} for word, count in ranked],
        "failed_items": failed,
    }
