"""The ``count_words_at_url`` job: fetch a page safely, counting the words of its rendered text as it streams in."""

from __future__ import annotations

from collections.abc import Iterator
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


def _count_as_it_arrives(content_type: str, chunks: Iterator[bytes]) -> text.PageWords:
    """Feed the body's decompressed chunks to a word counter as they come off the wire."""
    words = text.PageWords(content_type)
    for chunk in chunks:
        words.feed(chunk)
    return words


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
    page = fetch.fetch(
        url, fetch_policy(), on_progress=lambda done, total: progress.update("downloading", done, total),
        read_body=_count_as_it_arrives,  # words are counted chunk by chunk: the page is never held whole
    )
    words: text.PageWords = page.body
    progress.update("counting", words.size, words.size, force=True)
    counts = words.counts()
    return {
        "url": url,
        "final_url": page.final_url,
        "status_code": page.status_code,
        "content_type": page.content_type,
        "bytes": words.size,
        "total_words": sum(counts.values()),
        "unique_words": len(counts),
        "top_words": text.top_words(counts, top),
    }
