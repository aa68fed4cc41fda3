"""The ``count_words_at_url`` job: fetch a page safely, extract its rendered text, count the words."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from engine import Progress, job
from jobs.wordcount import fetch, text
from jobs.wordcount.aggregate import aggregate_word_counts
from jobs.wordcount.errors import InvalidUrl


def _web_url(value: str) -> str:
    try:
        return fetch.validate_url(value)
    except InvalidUrl as exc:
        raise ValueError(str(exc)) from None  # pydantic reports ValueError as a field error


WebUrl = Annotated[str, Field(min_length=1, max_length=2048, title="Page URL"), AfterValidator(_web_url)]
TopN = Annotated[int, Field(ge=1, le=100, title="Top words", description="How many of the commonest words to list.")]


@lru_cache(maxsize=1)
def fetch_policy() -> fetch.FetchPolicy:
    """The fetch policy from the worker's environment (FETCH_*), read once per process."""
    return fetch.FetchPolicy.from_env()


@job(
    label="Count the words on a web page",
    submit_label="Count words",
    title="Word count",
    stages={"downloading": "Downloading the page", "counting": "Counting words"},
    result_template="result.html",
    batch_aggregate=aggregate_word_counts,
    settings=fetch_policy,
)
def count_words_at_url(url: WebUrl, top: TopN = 20) -> dict[str, Any]:
    """Count the words on the web page at ``url`` and list the ``top`` most common."""
    progress = Progress()
    progress.update("downloading", 0, None, force=True)
    page = fetch.fetch(url, fetch_policy(), on_progress=lambda done, total: progress.update("downloading", done, total))
    progress.update("counting", len(page.body), len(page.body), force=True)
    counts = text.count_words(text.extract_text(page.body, page.content_type))
    return {
        "url": url,
        "final_url": page.final_url,
        "status_code": page.status_code,
        "content_type": page.content_type,
        "bytes": len(page.body),
        "total_words": sum(counts.values()),
        "unique_words": len(counts),
        "top_words": text.top_words(counts, top),
    }
