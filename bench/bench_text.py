"""Benchmark extract_text + count_words + top_words on a deterministic, realistic HTML page.

    python bench/bench_text.py [--size-mb 5] [--repeats 5] [--json out.json]

Reports throughput (MB of HTML per second, best and median) and peak extra memory relative to the page
size: the tracemalloc peak (which includes lexbor's DOM, since selectolax allocates it through
PyMem_Raw*) and the growth of the process's max RSS during the first run.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.wordcount import text  # noqa: E402 - needs the path above when run as a script

GOAL_MB_S = 15.0
GOAL_MEMORY_RATIO = 4.0

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have "
    "an they you were her she there been one all we their has would when if so no what more out up into do "
    "time people year way day thing man world life hand part child eye woman place work week case point "
    "government company number group problem fact café naïve résumé über Straße déjà façade "
    "Привет мир книга Ελληνικά λόγος 日本語 東京 हिन्दी भाषा "
    "don't it's O'Brien 2024 3.14 100 e-mail state-of-the-art"
).split()
CSS = "body{font:14px/1.4 sans-serif;margin:0}.nav a{color:#06c}.hidden{display:none}\n" * 200
SCRIPT = "window.dataLayer=window.dataLayer||[];function track(e){dataLayer.push({event:e,w:'x'})}\n" * 400


def _sentence(rnd: random.Random) -> str:
    """A sentence of words, some wrapped in inline tags or followed by entities."""
    out = []
    for _ in range(rnd.randint(8, 24)):
        word = rnd.choice(WORDS)
        roll = rnd.random()
        if roll < 0.05:
            word = f'<a href="/wiki/{word}" title="About {word}" class="link">{word}</a>'
        elif roll < 0.08:
            word = f"<b>{word}</b>"
        elif roll < 0.10:
            word = f'<em class="x">{word}</em>'
        elif roll < 0.11:
            word = f"<code>{word}()</code>"
        elif roll < 0.12:
            word = f"{word}&nbsp;&amp;"
        elif roll < 0.13:
            word = f"caf&eacute; {word}&#8217;s"
        out.append(word)
    return " ".join(out).capitalize() + rnd.choice([".", ".", ".", "?", "!"])


def _block(rnd: random.Random, n: int) -> str:
    """One block-level piece of an article."""
    kind = rnd.random()
    if kind < 0.08:
        return f"<h2 id='s{n}'>{_sentence(rnd)}</h2>\n"
    if kind < 0.16:
        items = "".join(f"<li>{_sentence(rnd)}</li>" for _ in range(rnd.randint(3, 7)))
        return f"<ul class='list'>{items}</ul>\n"
    if kind < 0.22:
        rows = "".join(
            "<tr>" + "".join(f"<td>{rnd.choice(WORDS)}</td>" for _ in range(4)) + "</tr>" for _ in range(5)
        )
        return f"<table class='data'><tbody>{rows}</tbody></table>\n"
    if kind < 0.25:
        return f"<figure><img src='/i/{n}.png' alt='an image of {rnd.choice(WORDS)}'><figcaption>" \
            f"{_sentence(rnd)}</figcaption></figure><!-- figure {n} -->\n"
    body = " ".join(_sentence(rnd) for _ in range(rnd.randint(2, 6)))
    return f"<p>{body}</p>\n"


def build_page(size_mb: float = 5.0, seed: int = 1234) -> bytes:
    """A deterministic HTML page of about size_mb megabytes (UTF-8)."""
    rnd = random.Random(seed)
    target = int(size_mb * 1024 * 1024)
    head = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Benchmark page</title>"
        f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>"
        "<nav class='nav'>" + "".join(f"<a href='/p/{w}'>{w}</a> " for w in WORDS[:40]) + "</nav><article>"
    )
    tail = "</article><footer><p>Footer &copy; 2024</p><noscript>enable js</noscript></footer></body></html>"
    parts, size, n = [head], len(head.encode()), 0
    while size < target - len(tail):
        block = _block(rnd, n)
        parts.append(block)
        size += len(block.encode())
        n += 1
    parts.append(tail)
    return "".join(parts).encode("utf-8")


def _pipeline(page: bytes) -> tuple[float, float, int, int]:
    """Run extract + count + top once; return (extract seconds, count+top seconds, words, unique words)."""
    start = time.perf_counter()
    extracted = text.extract_text(page, "text/html; charset=utf-8")
    middle = time.perf_counter()
    counts = text.count_words(extracted)
    text.top_words(counts, 20)
    end = time.perf_counter()
    return middle - start, end - middle, sum(counts.values()), len(counts)


def _maxrss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(size_mb: float = 5.0, repeats: int = 5) -> dict:
    """Measure throughput and peak memory; return the figures as a dict."""
    page = build_page(size_mb)
    size = len(page)
    text.word_pattern()  # compile outside the timings (a once-per-process cost)
    gc.collect()
    rss_before = _maxrss_bytes()
    _, _, words, unique = _pipeline(page)  # first run: the RSS growth it causes is the memory it needs
    rss_delta = _maxrss_bytes() - rss_before
    timings = [_pipeline(page)[:2] for _ in range(repeats)]
    totals = [e + c for e, c in timings]
    gc.collect()
    tracemalloc.start()
    try:
        _pipeline(page)
        traced_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    best, median = min(totals), statistics.median(totals)
    mb = size / (1024 * 1024)
    return {
        "page_bytes": size,
        "repeats": repeats,
        "words": words,
        "unique_words": unique,
        "best_seconds": round(best, 4),
        "median_seconds": round(median, 4),
        "best_mb_per_s": round(mb / best, 2),
        "median_mb_per_s": round(mb / median, 2),
        "extract_median_seconds": round(statistics.median(e for e, _ in timings), 4),
        "count_median_seconds": round(statistics.median(c for _, c in timings), 4),
        "tracemalloc_peak_bytes": traced_peak,
        "tracemalloc_peak_ratio": round(traced_peak / size, 2),
        "maxrss_delta_bytes": rss_delta,
        "maxrss_delta_ratio": round(rss_delta / size, 2),
        "goal_mb_per_s": GOAL_MB_S,
        "goal_memory_ratio": GOAL_MEMORY_RATIO,
        "meets_speed_goal": mb / median >= GOAL_MB_S,
        "meets_memory_goal": traced_peak / size <= GOAL_MEMORY_RATIO,
    }


def _report(figures: dict) -> str:
    """Human-readable summary."""
    mib = 1024 * 1024
    f = figures
    return "\n".join([
        f"page: {f['page_bytes'] / mib:.2f} MiB, {f['words']} words, {f['unique_words']} unique",
        f"throughput: best {figures['best_mb_per_s']} MB/s, median {figures['median_mb_per_s']} MB/s "
        f"(extract {figures['extract_median_seconds']} s + count {figures['count_median_seconds']} s; "
        f"goal >= {GOAL_MB_S:g} MB/s: {'met' if figures['meets_speed_goal'] else 'NOT met'})",
        f"peak extra memory: tracemalloc {figures['tracemalloc_peak_bytes'] / mib:.1f} MiB "
        f"({f['tracemalloc_peak_ratio']}x page), max RSS +{f['maxrss_delta_bytes'] / mib:.1f} MiB "
        f"({figures['maxrss_delta_ratio']}x page) (goal <= {GOAL_MEMORY_RATIO:g}x: "
        f"{'met' if figures['meets_memory_goal'] else 'NOT met'})",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=5.0, help="page size in MiB (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    figures = run(args.size_mb, args.repeats)
    print(_report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
