"""The word definition, HTML text extraction and charset decoding (jobs.wordcount.text)."""

from __future__ import annotations

import codecs
import re
import sys
import unicodedata
from collections import Counter

import pytest

from jobs.wordcount import errors, text

WORD_CASES = [
    # (text, expected counts)
    ("Hello HELLO hello", {"hello": 3}),
    ("STRASSE Straße", {"strasse": 1, "straße": 1}),  # lower(), not casefold()
    ("don't don’t DON’T", {"don't": 3}),  # ’ is normalised to '
    ("O’Brien o'brien", {"o'brien": 2}),
    ("'quoted' ’quoted’", {"quoted": 2}),
    ("rock'n'roll rock’n’roll", {"rock'n'roll": 2}),
    ("90's", {"90": 1, "s": 1}),  # 0 is not a letter, so the apostrophe separates
    ("l'été", {"l'été": 1}),
    ("don''t end' 'start", {"don": 1, "t": 1, "end": 1, "start": 1}),
    ("it's 1990's", {"it's": 1, "1990": 1, "s": 1}),
    ("a_b snake_case", {"a": 1, "b": 1, "snake": 1, "case": 1}),  # "_" separates
    ("x2 2x 1,000.50", {"x2": 1, "2x": 1, "1": 1, "000": 1, "50": 1}),
    ("e-mail e.g.", {"e": 2, "mail": 1, "g": 1}),
    ("x² ½ １２３", {"x²": 1, "½": 1, "１２３": 1}),  # every N* counts, not only ASCII digits
    ("Καλημέρα κόσμε", {"καλημέρα": 1, "κόσμε": 1}),
    ("Привет, мир! ПРИВЕТ", {"привет": 2, "мир": 1}),
    ("日本語の文章 中文 字", {"日本語の文章": 1, "中文": 1, "字": 1}),  # a CJK run is one word
    ("مرحبا بالعالم", {"مرحبا": 1, "بالعالم": 1}),
    ("كَتَبَ", {"كَتَبَ": 1}),  # Arabic harakat are marks (Mn): inside the word
    ("हिन्दी भाषा", {"हिन्दी": 1, "भाषा": 1}),  # virama and vowel signs are marks
    ("ภาษาไทย", {"ภาษาไทย": 1}),
    ("cafe\u0301 cafe\u0301s", {"cafe\u0301": 1, "cafe\u0301s": 1}),  # decomposed accent stays in the word
    ("\u0301abc", {"abc": 1}),  # a mark never starts a word
    ("hi😀there", {"hi": 1, "there": 1}),
    ("می\u200cخواهم", {"می": 1, "خواهم": 1}),  # ZWNJ (Cf) separates: documented limitation
    ("", {}),
    ("  ...  ", {}),
]


@pytest.mark.parametrize(("source", "expected"), WORD_CASES)
def test_word_definition(source: str, expected: dict[str, int]) -> None:
    assert dict(text.count_words(source)) == expected


def test_alnum_class_is_exactly_letters_and_numbers() -> None:
    """The regex class [^\\W_] used for words must be exactly Unicode categories L* and N*."""
    alnum = re.compile(r"[^\W_]")
    wrong = [
        cp for cp in range(sys.maxunicode + 1)
        if bool(alnum.match(chr(cp))) != (unicodedata.category(chr(cp))[0] in "LN")
    ]
    assert wrong == []


def test_counting_across_chunk_boundaries() -> None:
    source = "don't stop " * 60_000  # 660 000 chars: several internal chunks
    assert text.count_words(source) == Counter({"don't": 60_000, "stop": 60_000})
    run = "語" * 300_000  # longer than a chunk and no whitespace: still one word
    assert text.count_words(run) == Counter({run: 1})


HTML_CASES = [
    # (html, expected words in order)
    ("fo<b>o</b>", ["foo"]),
    ("a<span>b</span>c <a href='/x'>li</a>nk", ["abc", "link"]),
    ("<em>un</em><strong>der</strong><i>line</i>", ["underline"]),
    ("<p>a</p><p>b</p>", ["a", "b"]),
    ("<p>a<p>b", ["a", "b"]),
    ("a<br>b", ["a", "b"]),
    ("a<hr>b", ["a", "b"]),
    ("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th></tr></table>", ["a", "b", "c"]),
    ("<ul><li>a</li><li>b</li></ul><ol><li>c</li></ol>", ["a", "b", "c"]),
    ("<div>a</div>b<h1>c</h1>d", ["a", "b", "c", "d"]),
    ("<dl><dt>a</dt><dd>b</dd></dl>", ["a", "b"]),
    ("<pre>a\nb</pre>", ["a", "b"]),
    ("<select><option>a</option><option>b</option></select>", ["a", "b"]),
    ("fo<!-- hidden comment -->o", ["foo"]),
    (
        "<script>var hidden = 1</script><style>.hidden{}</style><noscript>hidden</noscript>"
        "<template><p>hidden</p></template><iframe>hidden</iframe><p>shown</p>",
        ["shown"],
    ),
    ('<img alt="hidden alt"><p title="hidden" data-x="hidden">shown</p>', ["shown"]),
    ("caf&eacute; caf&#233; caf&#xE9; fish &amp; chips", ["café", "café", "café", "fish", "chips"]),
    ("a&nbsp;b", ["a", "b"]),
    ("&lt;b&gt;not a tag&lt;/b&gt;", ["b", "not", "a", "tag", "b"]),
    ("<title>Page Title</title><p>x</p>", ["page", "title", "x"]),
    ("<p>Don&rsquo;t <b>O</b>&#8217;Brien</p>", ["don't", "o'brien"]),
]


def _words_in_order(source: str) -> list[str]:
    return text.word_pattern().findall(source.lower().replace("\u2019", "'"))


@pytest.mark.parametrize(("html", "expected"), HTML_CASES)
def test_html_extraction(html: str, expected: list[str]) -> None:
    extracted = text.extract_text(html.encode("utf-8"), "text/html; charset=utf-8")
    assert _words_in_order(extracted) == expected
    assert text.count_words(extracted) == Counter(expected)


def test_xhtml_is_extracted_like_html() -> None:
    body = b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><p>fo<b>o</b></p><p>bar</p></html>'
    assert text.count_words(text.extract_text(body, "application/xhtml+xml")) == Counter({"foo": 1, "bar": 1})


def test_plain_text_is_counted_whole() -> None:
    body = b"<p>not html</p> <script>x</script>"
    assert text.extract_text(body, "text/plain") == body.decode()
    assert text.count_words(text.extract_text(body, "text/plain"))["p"] == 2


@pytest.mark.parametrize("content_type", ["image/png", "application/json", None, ""])
def test_extract_refuses_other_types(content_type: str | None) -> None:
    with pytest.raises(errors.UnsupportedContentType):
        text.extract_text(b"{}", content_type)


def test_empty_and_whitespace_html() -> None:
    assert text.count_words(text.extract_text(b"", "text/html")) == Counter()
    assert text.count_words(text.extract_text(b"   \n", "text/html")) == Counter()


# ------------------------------------------------------------------------------------------ charsets


def test_header_charset_iso_8859_1() -> None:
    body = "<p>café</p>".encode("iso-8859-1")
    assert text.decode_body(body, "text/html; charset=ISO-8859-1") == "<p>café</p>"
    assert text.count_words(text.extract_text(body, "text/html; charset=ISO-8859-1")) == Counter({"café": 1})


def test_latin1_label_means_windows_1252_like_browsers() -> None:
    body = b"don\x92t"  # 0x92 is a right single quote in windows-1252, a C1 control in true latin-1
    assert text.decode_body(body, "text/plain; charset=iso-8859-1") == "don\u2019t"
    assert text.count_words(text.extract_text(body, "text/plain; charset=latin1")) == Counter({"don't": 1})


def test_quoted_header_charset() -> None:
    body = "Привет".encode("koi8-r")
    assert text.decode_body(body, 'text/plain; format=flowed; charset="KOI8-R"') == "Привет"


def test_meta_charset() -> None:
    page = '<html><head><meta charset="windows-1251"></head><body><p>Привет мир</p></body></html>'
    body = page.encode("cp1251")
    assert text.count_words(text.extract_text(body, "text/html")) == Counter({"привет": 1, "мир": 1})


def test_meta_http_equiv_charset() -> None:
    head = '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'
    body = (head + "<p>Привет</p>").encode("koi8-r")
    assert "Привет" in text.decode_body(body, "text/html")


def test_header_charset_beats_meta() -> None:
    body = '<meta charset="windows-1251"><p>Привет</p>'.encode()
    assert "Привет" in text.decode_body(body, "text/html; charset=utf-8")


def test_meta_only_counts_in_first_4kb_and_only_for_html() -> None:
    late = ("<!--" + "x" * 5000 + '--><meta charset="windows-1251"><p>Привет</p>').encode("cp1251")
    assert "Привет" not in text.decode_body(late, "text/html")
    early = '<meta charset="windows-1251">Привет'.encode("cp1251")
    assert "Привет" not in text.decode_body(early, "text/plain")


def test_no_charset_means_utf8() -> None:
    assert text.decode_body("naïve café".encode(), "text/html") == "naïve café"
    assert text.count_words(text.extract_text("naïve café".encode(), "text/html")) == Counter(
        {"naïve": 1, "café": 1}
    )


@pytest.mark.parametrize("charset", ["x-bogus", "base64", "rot13", "idna", "utf-7-nope", ""])
def test_unknown_charset_falls_back_to_utf8(charset: str) -> None:
    assert text.decode_body("Привет".encode(), f"text/plain; charset={charset}") == "Привет"


def test_invalid_bytes_become_replacement_characters() -> None:
    assert text.decode_body(b"ok \xff\xfe bad", "text/plain") == "ok \ufffd\ufffd bad"
    extracted = text.extract_text(b"<p>ok \xff bad</p>", "text/html")
    assert text.count_words(extracted) == Counter({"ok": 1, "bad": 1})


def test_byte_order_mark_wins() -> None:
    body = codecs.BOM_UTF16_LE + "<p>Привет</p>".encode("utf-16-le")
    extracted = text.extract_text(body, "text/html; charset=windows-1251")
    assert text.count_words(extracted) == Counter({"привет": 1})
    utf8 = codecs.BOM_UTF8 + "<p>café</p>".encode()
    assert text.extract_text(utf8, "text/html").split() == ["café"]  # no stray U+FEFF
    assert text.decode_body(utf8, "text/plain") == "<p>café</p>"


def test_meta_claiming_utf16_is_read_as_utf8() -> None:
    body = '<meta charset="utf-16"><p>café</p>'.encode()
    assert "café" in text.decode_body(body, "text/html")


def test_xhtml_xml_declaration_encoding() -> None:
    body = '<?xml version="1.0" encoding="windows-1251"?><html><p>Привет</p></html>'.encode("cp1251")
    assert "Привет" in text.decode_body(body, "application/xhtml+xml")


# --------------------------------------------------------------------------------------- media types


@pytest.mark.parametrize(
    ("header", "media", "countable"),
    [
        ("text/html; charset=utf-8", "text/html", True),
        ("TEXT/HTML", "text/html", True),
        ("application/xhtml+xml", "application/xhtml+xml", True),
        (" text/plain ;format=fixed", "text/plain", True),
        ("image/png", "image/png", False),
        ("application/json", "application/json", False),
        ("text/css", "text/css", False),
        (None, "", False),
        ("", "", False),
    ],
)
def test_media_types(header: str | None, media: str, countable: bool) -> None:
    assert text.media_type(header) == media
    assert text.is_countable(header) is countable


# ------------------------------------------------------------------------------------------ top words


def test_top_words_order_and_limit() -> None:
    counts = Counter({"b": 2, "a": 2, "c": 5, "d": 1})
    assert text.top_words(counts, 3) == [
        {"word": "c", "count": 5},
        {"word": "a", "count": 2},
        {"word": "b", "count": 2},
    ]
    assert len(text.top_words(counts, 100)) == 4
    assert text.top_words(counts, 0) == []
    assert text.top_words(Counter(), 5) == []
