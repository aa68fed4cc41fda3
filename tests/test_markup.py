"""The streaming word counter agrees with the tree-based one (tests/reference_counter.py), however it is fed."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.wordcount import errors, text
from jobs.wordcount.markup import VisibleText
from tests import html_corpus
from tests.reference_counter import tree_counts
from tests.test_text import HTML_CASES

PADDING = "<p>" + "pad " * 1500 + "</p>"  # pushes a case past the decoder's 4 KB charset prescan


def stream_counts(body: bytes, content_type: str, sizes: Iterable[int]) -> Counter[str]:
    """Count a body fed in chunks of the given sizes (the last size repeats to the end)."""
    words = text.PageWords(content_type)
    start, size = 0, 1
    sizes = iter(sizes)
    while start < len(body):
        size = next(sizes, size)
        words.feed(body[start : start + size])
        start += size
    return words.counts()


def random_sizes(seed: int, most: int) -> list[int]:
    """Chunk sizes from 1 byte up to ``most``, biased to small ones."""
    rnd = random.Random(seed)
    return [min(most, int(rnd.expovariate(1 / 40)) + 1) for _ in range(100_000)]


@pytest.mark.parametrize(("html", "expected"), HTML_CASES)
@pytest.mark.parametrize("chunk", [1, 3, 64, 1 << 20])
def test_existing_cases_agree_in_any_chunking(html: str, expected: list[str], chunk: int) -> None:
    body = (PADDING + html).encode()
    reference = tree_counts(body, "text/html; charset=utf-8")
    assert reference == Counter(expected) + Counter({"pad": 1500})
    assert stream_counts(body, "text/html; charset=utf-8", [chunk]) == reference


@pytest.mark.parametrize("seed", range(40))
def test_generated_pages_agree(seed: int) -> None:
    page = html_corpus.page(seed)
    reference = tree_counts(page.body, page.content_type)
    assert sum(reference.values()) > 50  # the page really has text
    assert stream_counts(page.body, page.content_type, [len(page.body)]) == reference
    assert stream_counts(page.body, page.content_type, random_sizes(seed, 700)) == reference


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_one_byte_at_a_time(seed: int) -> None:
    page = html_corpus.page(seed, blocks=5)
    assert stream_counts(page.body, page.content_type, [1]) == tree_counts(page.body, page.content_type)


_PAGES = [html_corpus.page(seed, blocks=4) for seed in range(100, 120)]
_REFERENCES = [tree_counts(p.body, p.content_type) for p in _PAGES]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(_PAGES) - 1), cuts=st.lists(st.integers(0, 40_000), max_size=40))
def test_any_chunk_boundaries_agree(index: int, cuts: list[int]) -> None:
    page = _PAGES[index]
    bounds = sorted({c % (len(page.body) + 1) for c in cuts} | {0, len(page.body)})
    words = text.PageWords(page.content_type)
    for start, end in zip(bounds, bounds[1:], strict=False):
        words.feed(page.body[start:end])
    assert words.counts() == _REFERENCES[index]


@pytest.mark.parametrize(
    ("html", "words"),
    [
        ("fo<SCRIPT>x</script>o", ["foo"]),  # hidden content joins what surrounds it, as a removed node does
        ("<script>a = '<!-- <script> </script> -->'</script>vis", ["vis"]),
        ("<script><!--</script>vis", ["vis"]),
        ("<style>p > a {}</style >vis", ["vis"]),
        ("<a title='x>y' data-z=\"a'b>\">in</a>", ["in"]),
        ("<a b=c/>d</a>", ["d"]),
        ("a&#1;b &#xD800;c &#0;d &#99999999999999;e", ["a", "b", "c", "d", "e"]),
        ("&notit; &ampx &amp; caf&eacute", ["it", "x", "café"]),
        ("fo<!-->o fo<!--->o fo<!-- --!>o", ["foo", "foo", "foo"]),
        ("<svg><![CDATA[fo]]>o</svg> fo<![CDATA[x]]>o", ["foo", "foo"]),
        ("<textarea>fo<b>o</b></textarea>", ["fo", "b", "o", "b"]),
        ("<xmp>fo<b>o</b></xmp>", ["fo", "b", "o", "b"]),
        ("fo<plaintext></plaintext>o", ["fo", "plaintext", "o"]),
        ("<body>fo</body>o fo<head>o", ["foo", "foo"]),
        ("fo</p>o fo</br>o", ["fo", "o", "fo", "o"]),
        ("a</ div>b a<?x>b a</>b", ["ab", "ab", "ab"]),
        ("x<y>z a<3 a < b", ["xz", "a", "3", "a", "b"]),
        ("<template><p>a<template>b</template>c</p></template>d", ["d"]),
    ],
)
def test_tokenizer_cases_agree(html: str, words: list[str]) -> None:
    body = (PADDING + html).encode()
    expected = Counter(words) + Counter({"pad": 1500})
    assert tree_counts(body, "text/html") == expected
    for chunk in (1, 2, 5, 1 << 20):
        assert stream_counts(body, "text/html", [chunk]) == expected


@pytest.mark.parametrize(
    ("html", "tree", "stream"),
    [
        ("fo</div>o", ["foo"], ["fo", "o"]),  # a stray block end tag: the tree ignores it
        ("<table>fo<tr>o", ["foo"], ["fo", "o"]),  # text foster-parented out of a table
    ],
)
def test_documented_disagreements(html: str, tree: list[str], stream: list[str]) -> None:
    assert tree_counts(html.encode(), "text/html") == Counter(tree)
    assert stream_counts(html.encode(), "text/html", [1]) == Counter(stream)


def test_plain_text_streams_across_multibyte_characters() -> None:
    body = "naïve Привет don’t 日本語 ".encode() * 500
    expected = text.count_words(body.decode())
    assert stream_counts(body, "text/plain", [1]) == expected
    assert stream_counts(body, "text/plain; charset=utf-8", random_sizes(1, 300)) == expected


def test_words_longer_than_a_chunk() -> None:
    word = "x" * 300_000
    body = f"<p>{word} a{word}</p>".encode()
    assert stream_counts(body, "text/html", [4096]) == Counter({word: 1, "a" + word: 1})


@pytest.mark.parametrize(
    "opening",
    ['<a title="', "<!-- ", "<script>", "<style>", "<template>", "<a b='x' c=\"", "<svg><![CDATA["],
)
def test_carried_input_stays_small_inside_long_constructs(opening: str) -> None:
    extractor = VisibleText()
    assert extractor.feed("<p>before</p>" + opening).split() == ["before"]
    filler = "word > x <b>y</b> " * 4000
    for _ in range(20):  # about 1.4 MB inside one unclosed construct
        shown = extractor.feed(filler)
        assert shown == "" or opening.endswith("[CDATA[")  # CDATA is text, the rest is hidden
        assert len(extractor._pending) < 8192


def test_unsupported_type_is_refused_before_any_bytes() -> None:
    with pytest.raises(errors.UnsupportedContentType):
        text.PageWords("application/json")
