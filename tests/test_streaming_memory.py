"""The word count streams: its peak memory is flat in the page's size, through the job's own fetch and count."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from jobs.wordcount import count_words_at_url, fetch_policy
from tests.pageserver import PageServer

MB = 1024 * 1024
# Markup-dense, as real pages are: a tag every few words, some of it (style, script) not counted.
BLOCK = (
    b"<div class='card'><h2>Queue <em>worker</em> notes</h2><p>The <a href='/w'>worker</a> takes a job from the "
    b"<b>queue</b>, runs it and stores the result.</p><style>.card{margin:0}</style><script>var x = 1;</script>"
    b"<ul><li>fetch the page</li><li>count the words</li></ul></div>\n"
)


def page_of(size: int) -> bytes:
    """A whole number of blocks, about ``size`` bytes."""
    return b"<html><body>" + BLOCK * (size // len(BLOCK)) + b"</body></html>"


@pytest.fixture
def run_job(monkeypatch):
    """Run count_words_at_url in this process against a loopback page, allowing pages up to 32 MB."""
    monkeypatch.setenv("FETCH_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("FETCH_MAX_BYTES", str(32 * MB))
    monkeypatch.setenv("FETCH_TIMEOUT", "120")  # tracing every allocation slows the count several times
    fetch_policy.cache_clear()
    yield count_words_at_url
    fetch_policy.cache_clear()


def peak_while_counting(run_job, size: int) -> tuple[int, dict]:
    """The job's result and the peak memory traced while it fetched and counted a page of ``size`` bytes."""
    with PageServer() as server:
        url = server.add("/page", body=page_of(size))  # the body is built before tracing starts
        run_job(server.add("/warm-up", body=page_of(64 * 1024)))  # imports, compiled patterns, first allocations
        gc.collect()
        tracemalloc.start()
        try:
            result = run_job(url)
            return tracemalloc.get_traced_memory()[1], result
        finally:
            tracemalloc.stop()


def test_peak_memory_is_flat_from_a_1_mb_to_a_16_mb_page(run_job):
    small, small_result = peak_while_counting(run_job, 1 * MB)
    large, large_result = peak_while_counting(run_job, 16 * MB)
    assert large_result["bytes"] > 16 * MB - len(BLOCK)  # the whole page went through the count
    assert large_result["total_words"] == small_result["total_words"] * (16 * MB // len(BLOCK)) // (MB // len(BLOCK))
    # A page held whole would take 16 MB or more; streamed, the 16 times larger page costs about the same.
    assert large < 2 * small, f"peak {large / MB:.2f} MB for 16 MB against {small / MB:.2f} MB for 1 MB"
    print(f"\npeak traced memory: {small / MB:.3f} MB for a 1 MB page, {large / MB:.3f} MB for a 16 MB page")
