"""The batch aggregate job: sums the word counts of a batch's finished items and lists the failed ones."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from pydantic import Field

from engine import ended_items, job

ItemIds = Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]], Field(min_length=1, max_length=100)]
TOP = 20


@job(internal=True, retry=())
def aggregate_word_counts(batch_id: str, item_ids: ItemIds) -> dict[str, Any]:
    """Sum the word counts of a batch's finished items, merge their top words, list the failed items."""
    results, failed = [], []
    for item in ended_items(item_ids):
        if item["status"] == "finished":
            results.append(item["result"])
        else:
            failed.append({"id": item["id"], "url": item["params"].get("url"), "status": item["status"],
                           "error": item["error"]})
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
