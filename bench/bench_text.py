"""Benchmark HTML → word counts: the tree-based counter (before) against the streaming one (now), same run.

    python bench/bench_text.py [--size-mb 5] [--repeats 3] [--json out.json]

Pages are markup-dense (a tag every 30–60 bytes), of ``--size-mb`` and twice that. For each counter and
page: throughput (MB of HTML per second, best and median of the repeats, the two counters taking turns;
the stream is fed in the fetcher's 64 KB chunks), peak extra memory as a multiple of the page (tracemalloc
peak, which includes lexbor's DOM since selectolax allocates it through PyMem_Raw*, and growth of peak RSS,
each in a fresh process that holds only the page), and the peak RSS growth of one process running eight
such jobs at once in threads, as a worker does.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobs.wordcount import fetch, text  # noqa: E402 - needs the path above when run as a script
from jobs.wordcount.markup import VisibleText  # noqa: E402
from tests.reference_counter import tree_counts, tree_text  # noqa: E402

GOAL_MB_S = 20.0
GOAL_MEMORY_RATIO = 1.0  # peak extra memory per job, as a multiple of the page
GOAL_THREADS_RATIO = 8.0  # eight jobs at once, as a multiple of one page
THREADS = 8
CONTENT_TYPE = "text/html; charset=utf-8"

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
INLINE = ('<a href="/wiki/{w}" title="About {w}">', "<b>", '<em class="x">', "<code>", "<span>", "<i>")


def _words(rnd: random.Random, low: int, high: int) -> str:
    """A few words, now and then with an entity."""
    out = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(low, high)))
    return out + " caf&eacute; &amp;" if rnd.random() < 0.05 else out


def _inline(rnd: random.Random) -> str:
    """An inline element around a word or two."""
    opening = rnd.choice(INLINE).format(w=rnd.choice(WORDS))
    name = opening[1:].split(">")[0].split(" ")[0]
    return f"{opening}{_words(rnd, 1, 2)}</{name}>"


def _block(rnd: random.Random, n: int) -> str:
    """One block: a paragraph, list, table row set or figure, with a tag every 30-60 bytes."""
    kind = rnd.random()
    if kind < 0.12:
        items = "".join(f"<li>{_words(rnd, 6, 12)} {_inline(rnd)}</li>" for _ in range(rnd.randint(3, 7)))
        return f"<ul class='list'>{items}</ul>\n"
    if kind < 0.22:
        rows = "".join(
            "<tr>" + "".join(f"<td>{_words(rnd, 5, 10)}</td>" for _ in range(4)) + "</tr>" for _ in range(4)
        )
        return f"<table class='data'><tbody>{rows}</tbody></table>\n"
    if kind < 0.25:
        return (f"<figure><img src='/i/{n}.png' alt='{rnd.choice(WORDS)}'><figcaption>{_words(rnd, 3, 6)}"
                f"</figcaption></figure><!-- figure {n} -->\n")
    runs = " ".join(f"{_words(rnd, 7, 13)} {_inline(rnd)}" for _ in range(rnd.randint(4, 12)))
    return f"<p>{runs}.</p>\n"


def build_page(size_mb: float = 5.0, seed: int = 1234) -> bytes:
    """A deterministic, markup-dense HTML page of about size_mb megabytes (UTF-8)."""
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


def count_tree(page: bytes) -> Counter[str]:
    """Before: the whole page parsed into a tree, then its text counted."""
    return tree_counts(page, CONTENT_TYPE)


def count_stream(page: bytes) -> Counter[str]:
    """Now: the page fed in the fetcher's chunks (fresh bytes each, as off the wire) and counted as it comes."""
    words = text.PageWords(CONTENT_TYPE)
    for start in range(0, len(page), fetch.CHUNK_SIZE):
        words.feed(page[start : start + fetch.CHUNK_SIZE])
    return words.counts()


COUNTERS: dict[str, Callable[[bytes], Counter[str]]] = {"tree": count_tree, "stream": count_stream}


def extract_stream(page: bytes) -> None:
    """The streaming counter without the counting: decode and extract only."""
    decoder, markup = text.Decoder(CONTENT_TYPE), VisibleText()
    for start in range(0, len(page), fetch.CHUNK_SIZE):
        markup.feed(decoder.decode(page[start : start + fetch.CHUNK_SIZE]))
    markup.feed(decoder.decode(b"", final=True), final=True)


# Where the time goes: text extraction alone (the rest is the word regex, the same code for both).
EXTRACTORS: dict[str, Callable[[bytes], object]] = {
    "tree": lambda page: tree_text(page, CONTENT_TYPE),
    "stream": extract_stream,
}


def _reset_peak_rss() -> None:
    """Start the peak RSS afresh from the current RSS (Linux; elsewhere the peak since start stays)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process. VmHWM, not ru_maxrss: after fork and exec, ru_maxrss still
    counts the parent's peak, which would hide a child's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _speeds(page: bytes, repeats: int) -> dict[str, dict]:
    """Best and median MB/s of each counter over a page, and of its text extraction alone. The counters take
    turns within each repeat, so a busy spell on a shared machine slows both rather than one."""
    timings: dict[str, list[float]] = {name: [] for name in COUNTERS}
    extracting: dict[str, list[float]] = {name: [] for name in COUNTERS}
    for _ in range(repeats):
        for name, count in COUNTERS.items():
            start = time.perf_counter()
            text.top_words(count(page), 20)
            middle = time.perf_counter()
            EXTRACTORS[name](page)
            timings[name].append(middle - start)
            extracting[name].append(time.perf_counter() - middle)
    mb = len(page) / (1024 * 1024)
    return {
        name: {
            "best_mb_per_s": round(mb / min(timings[name]), 2),
            "median_mb_per_s": round(mb / statistics.median(timings[name]), 2),
            "extract_only_best_mb_per_s": round(mb / min(extracting[name]), 2),
        }
        for name in COUNTERS
    }


def memory_child(counter: str, path: str, threads: int) -> dict:
    """In a fresh process holding only the page: max RSS growth of ``threads`` jobs at once, then (for one
    job) the tracemalloc peak."""
    count = COUNTERS[counter]
    count(b"<p>warm up</p>" * 10)  # imports, compiled patterns, lexbor's first allocations
    page = Path(path).read_bytes()
    gc.collect()
    _reset_peak_rss()
    before = _peak_rss_bytes()
    workers = [threading.Thread(target=count, args=(page,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    rss = _peak_rss_bytes() - before
    figures = {"rss_bytes": rss}
    if threads == 1:
        gc.collect()
        tracemalloc.start()
        try:
            count(page)
            figures["tracemalloc_bytes"] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return figures


def _memory(path: Path, counter: str, threads: int) -> dict:
    """Run memory_child in a fresh interpreter, so one measurement's peak cannot hide another's."""
    cmd = [sys.executable, __file__, "--memory-child", counter, str(path), str(threads)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def run(size_mb: float = 5.0, repeats: int = 3) -> dict:
    """Measure both counters on a page of size_mb and one twice as large; return the figures as a dict."""
    text.word_pattern()  # compile outside the timings (a once-per-process cost)
    results: dict = {"goal_mb_per_s": GOAL_MB_S, "goal_memory_ratio": GOAL_MEMORY_RATIO, "pages": []}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (size_mb, 2 * size_mb):
            page = build_page(size)
            path = Path(tmp) / f"page-{size}.html"
            path.write_bytes(page)
            counts = count_stream(page)
            assert counts == count_tree(page), "the streaming counter disagrees with the tree-based one"
            row: dict = {
                "page_bytes": len(page),
                "bytes_per_tag": round(len(page) / page.count(b"<"), 1),
                "words": sum(counts.values()),
                "unique_words": len(counts),
            }
            speeds = _speeds(page, repeats)
            for counter in COUNTERS:
                one = _memory(path, counter, 1)
                many = _memory(path, counter, THREADS)
                row[counter] = {
                    **speeds[counter],
                    "tracemalloc_peak_ratio": round(one["tracemalloc_bytes"] / len(page), 3),
                    "rss_peak_ratio": round(one["rss_bytes"] / len(page), 3),
                    "threads_rss_peak_ratio": round(many["rss_bytes"] / len(page), 3),
                }
            results["pages"].append(row)
    small, large = results["pages"]
    stream = [row["stream"] for row in results["pages"]]
    results["meets_speed_goal"] = all(s["best_mb_per_s"] >= GOAL_MB_S for s in stream)
    results["stream_not_slower_than_tree"] = all(
        row["stream"]["best_mb_per_s"] >= row["tree"]["best_mb_per_s"] for row in results["pages"]
    )
    results["meets_memory_goal"] = all(
        s["tracemalloc_peak_ratio"] <= GOAL_MEMORY_RATIO and s["rss_peak_ratio"] <= GOAL_MEMORY_RATIO for s in stream
    )
    # Flat: the larger page costs no more bytes than the smaller one (ratios halve), with 1 MiB of slack.
    results["memory_flat_in_page_size"] = all(
        large["stream"][key] * large["page_bytes"] <= small["stream"][key] * small["page_bytes"] + (1 << 20)
        for key in ("tracemalloc_peak_ratio", "rss_peak_ratio")
    )
    results["meets_threads_goal"] = all(s["threads_rss_peak_ratio"] <= GOAL_THREADS_RATIO for s in stream)
    return results


def _report(figures: dict) -> str:
    """Human-readable summary."""
    mib = 1024 * 1024
    lines = []
    for row in figures["pages"]:
        lines.append(
            f"page: {row['page_bytes'] / mib:.2f} MiB, a tag every {row['bytes_per_tag']} bytes, "
            f"{row['words']} words, {row['unique_words']} unique"
        )
        for counter in COUNTERS:
            f = row[counter]
            lines.append(
                f"  {counter:6}  {f['best_mb_per_s']:6.2f} MB/s best, {f['median_mb_per_s']:6.2f} median "
                f"(extraction alone {f['extract_only_best_mb_per_s']:6.2f} best);  "
                f"peak extra memory: tracemalloc {f['tracemalloc_peak_ratio']:.3f}x page, "
                f"RSS {f['rss_peak_ratio']:.3f}x;  {THREADS} jobs at once: RSS {f['threads_rss_peak_ratio']:.3f}x"
            )
    verdict = {True: "met", False: "NOT met"}
    lines += [
        f"stream >= {GOAL_MB_S:g} MB/s: {verdict[figures['meets_speed_goal']]}; "
        f"stream at least as fast as tree: {verdict[figures['stream_not_slower_than_tree']]}",
        f"stream memory <= {GOAL_MEMORY_RATIO:g}x page: {verdict[figures['meets_memory_goal']]}; "
        f"flat in page size: {verdict[figures['memory_flat_in_page_size']]}; "
        f"{THREADS} jobs <= {GOAL_THREADS_RATIO:g}x page: {verdict[figures['meets_threads_goal']]}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=5.0, help="smaller page size in MiB (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per counter and page (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--memory-child", nargs=3, metavar=("COUNTER", "PAGE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        counter, path, threads = args.memory_child
        print(json.dumps(memory_child(counter, path, int(threads))))
        return 0
    figures = run(args.size_mb, args.repeats)
    print(_report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
