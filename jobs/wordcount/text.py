"""Turn a fetched body into words: charset decoding, HTML text extraction and word counting (no I/O).

Word definition (clients rely on it; tests/test_text.py pins every case):

* A word starts with a Unicode letter or digit (categories L* and N*, i.e. ``str.isalnum()``) and goes on
  over letters, digits and combining marks (M*). Marks are inside words so that Devanagari, Thai, Arabic
  with harakat, or decomposed accents (``e`` + U+0301) stay whole; a mark never starts a word.
* ``_`` and every other character (punctuation, symbols, spaces, ZWJ/ZWNJ, emoji) separate words.
* An apostrophe (U+0027 ``'`` or U+2019 ``’``) joins two runs when the character before it is a letter (or a
  mark on one) and the character after it is a letter: ``don't``, ``O’Brien``, ``rock'n'roll`` are one word
  each; ``'quoted'`` gives ``quoted``; ``90's`` gives ``90`` and ``s`` because ``0`` is not a letter.
* Words are lowercased with ``str.lower()`` and ``’`` is normalised to ``'``, so ``Don’t`` and ``don't``
  are the same word. A CJK run without spaces is one word (no dictionary segmentation).
* Categories come from the running Python's ``unicodedata`` (Unicode 14.0 on Python 3.11).
"""

from __future__ import annotations

import codecs
import functools
import heapq
import re
import sys
import unicodedata
from collections import Counter

from selectolax.lexbor import LexborHTMLParser

from jobs.wordcount.errors import UnsupportedContentType

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
COUNTABLE_TYPES = HTML_TYPES | {"text/plain"}

# Elements whose content a browser never renders as page text.
_HIDDEN_SELECTOR = "script, style, noscript, template, iframe, noembed, noframes"

# Elements that start a new line or box when rendered: a word never continues across their edges.
# Anything not listed (a, b, span, em, custom elements...) is treated as inline, CSS's initial display.
_BLOCK_TAGS = (
    "address article aside blockquote body br button caption center dd details dialog dir div dl dt "
    "fieldset figcaption figure footer form frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html "
    "legend li listing main menu nav ol optgroup option p plaintext pre section select summary table "
    "tbody td textarea tfoot th thead title tr ul xmp"
).split()
_BLOCK_SELECTOR = ", ".join(_BLOCK_TAGS)

_META_PRESCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE)
_XML_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:\-]+)["']""")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))

# Python codec names (codecs.lookup(...).name) of the encodings the WHATWG Encoding Standard knows,
# mapped the way browsers map them (ISO-8859-1 and ASCII labels really mean windows-1252, etc.).
_ENCODINGS = {
    "utf-8": "utf-8", "utf-16-le": "utf-16-le", "utf-16-be": "utf-16-be", "utf-16": "utf-16",
    "ascii": "cp1252", "iso8859-1": "cp1252", "cp1252": "cp1252", "iso8859-9": "cp1254",
    "iso8859-11": "cp874", "tis-620": "cp874", "cp874": "cp874", "cp866": "cp866",
    "koi8-r": "koi8-r", "koi8-u": "koi8-u", "mac-roman": "mac-roman", "mac-cyrillic": "mac-cyrillic",
    "gb2312": "gb18030", "gbk": "gb18030", "gb18030": "gb18030", "big5": "big5hkscs",
    "big5hkscs": "big5hkscs", "euc_jp": "euc_jp", "iso2022_jp": "iso2022_jp", "shift_jis": "cp932",
    "cp932": "cp932", "euc_kr": "cp949", "cp949": "cp949",
    **{f"iso8859-{n}": f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)},
    **{f"cp125{n}": f"cp125{n}" for n in range(9)},
}

# WHATWG labels that Python's codec registry does not know by that name.
_LABEL_ALIASES = {
    "windows-874": "cp874", "x-sjis": "cp932", "csshiftjis": "cp932", "ks_c_5601-1987": "cp949",
    "x-mac-roman": "mac-roman", "x-mac-cyrillic": "mac-cyrillic", "x-mac-ukrainian": "mac-cyrillic",
    "iso-8859-8-i": "iso8859-8", "x-gbk": "gb18030", "x-euc-jp": "euc_jp", "unicode-1-1-utf-8": "utf-8",
    **{f"x-cp125{n}": f"cp125{n}" for n in range(9)},
}

_CHUNK_CHARS = 1 << 18  # count in slices so lowercased copies and word lists stay small
_SPACE = re.compile(r"\s")


def media_type(header: str | None) -> str:
    """Return the lowercased media type of a Content-Type header ('' when missing)."""
    if not header:
        return ""
    return header.split(";", 1)[0].strip().lower()


def is_countable(content_type_header: str | None) -> bool:
    """True for the media types whose words we count: HTML, XHTML and plain text."""
    return media_type(content_type_header) in COUNTABLE_TYPES


def charset_param(header: str | None) -> str | None:
    """Return the charset parameter of a Content-Type header, unquoted, or None."""
    for param in (header or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'").strip() or None
    return None


def _python_codec(label: str | None) -> str | None:
    """Map an encoding label to a Python codec the web would use, or None if unknown/unsupported."""
    if not label:
        return None
    label = label.strip().lower()
    try:
        name = codecs.lookup(_LABEL_ALIASES.get(label, label)).name
    except LookupError:
        return None
    return _ENCODINGS.get(name)


def _bom_encoding(body: bytes) -> str | None:
    """Return the encoding named by a byte-order mark, which outranks every declaration (WHATWG)."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return encoding
    return None


def _declared_in_document(body: bytes, mtype: str) -> str | None:
    """Find a <meta> charset (or XHTML's XML declaration) in the first 4 KB."""
    head = body[:_META_PRESCAN_BYTES]
    if mtype == "application/xhtml+xml" and (xml := _XML_DECL_ENCODING.match(head)):
        return _python_codec(xml.group(1).decode("ascii"))
    meta = _META_CHARSET.search(head)
    if meta is None:
        return None
    codec = _python_codec(meta.group(1).decode("ascii"))
    # An ASCII-readable <meta> cannot truly be UTF-16: browsers read such pages as UTF-8.
    return "utf-8" if codec and codec.startswith("utf-16") else codec


def detect_encoding(body: bytes, content_type_header: str | None) -> str:
    """Pick the codec: BOM, then the header's charset, then <meta> for HTML, then UTF-8."""
    mtype = media_type(content_type_header)
    return (
        _bom_encoding(body)
        or _python_codec(charset_param(content_type_header))
        or (_declared_in_document(body, mtype) if mtype in HTML_TYPES else None)
        or "utf-8"
    )


def decode_body(body: bytes, content_type_header: str | None) -> str:
    """Decode a response body to text; bytes invalid in the chosen charset become U+FFFD."""
    encoding = detect_encoding(body, content_type_header)
    if _bom_encoding(body) == encoding:
        body = body[2 if encoding.startswith("utf-16") else 3 :]  # the BOM is a marker, not text
    return body.decode(encoding, errors="replace")


def extract_text(body: bytes, content_type_header: str | None) -> str:
    """Return the text a reader sees: rendered HTML/XHTML text, or the whole decoded plain-text body."""
    mtype = media_type(content_type_header)
    if mtype == "text/plain":
        return decode_body(body, content_type_header)
    if mtype in HTML_TYPES:
        return _html_text(body, content_type_header)
    raise UnsupportedContentType(f"cannot read words from {mtype or 'a response without a Content-Type'}")


def _html_text(body: bytes, content_type_header: str | None) -> str:
    """Parse HTML and join its visible text nodes, putting a space only at block-element edges."""
    encoding = detect_encoding(body, content_type_header)
    # scripting=True parses like a browser that runs scripts: <noscript> holds one raw text node we
    # drop, instead of spilling its text into <body> (which is what a script-less parse does).
    if encoding == "utf-8":
        # lexbor parses UTF-8 bytes itself: skip a decode + re-encode of the whole page.
        tree = LexborHTMLParser(body[3:] if body.startswith(codecs.BOM_UTF8) else body, scripting=True)
    else:
        tree = LexborHTMLParser(decode_body(body, content_type_header), scripting=True)
    for node in tree.css(_HIDDEN_SELECTOR):
        node.decompose()
    # Inline tags add nothing between their text nodes, so fo<b>o</b> stays "foo";
    # spaces around block elements keep <p>a</p><p>b</p> apart. Comments are not text nodes.
    for node in tree.css(_BLOCK_SELECTOR):
        node.insert_before(" ")
        node.insert_after(" ")
    root = tree.root
    return root.text(separator="") if root is not None else ""


def _category_ranges() -> dict[str, list[tuple[int, int]]]:
    """Scan the code space once: contiguous ranges of letters (L), marks (M) and numbers (N)."""
    ranges: dict[str, list[tuple[int, int]]] = {"L": [], "M": [], "N": []}
    category = unicodedata.category
    previous, start = "", 0
    for cp in range(sys.maxunicode + 1):
        major = category(chr(cp))[0]
        if major != previous:
            if previous in ranges:
                ranges[previous].append((start, cp - 1))
            previous, start = major, cp
    if previous in ranges:
        ranges[previous].append((start, sys.maxunicode))
    return ranges


def _char_class(ranges: list[tuple[int, int]], negate: bool = False) -> str:
    """Render code point ranges as a regex character class."""
    body = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )
    return f"[{'^' if negate else ''}{body}]"


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Return the code point ranges not covered by sorted, disjoint ranges."""
    out, nxt = [], 0
    for a, b in ranges:
        if a > nxt:
            out.append((nxt, a - 1))
        nxt = b + 1
    if nxt <= sys.maxunicode:
        out.append((nxt, sys.maxunicode))
    return out


@functools.cache
def word_pattern() -> re.Pattern[str]:
    """Compile the word regex once per process (a ~70 ms scan of the Unicode tables)."""
    ranges = _category_ranges()
    alnum = r"[^\W_]"  # exactly categories L* and N* (checked by a test over the whole code space)
    # The marks class is written as "not a non-mark" so ASCII and most text fail on its first range.
    mark = _char_class(_complement(ranges["M"]), negate=True)
    letter = _char_class(ranges["L"])
    letter_or_mark = _char_class(sorted(ranges["L"] + ranges["M"]))
    run = f"{alnum}++(?:{mark}++{alnum}*+)*+"
    # Possessive quantifiers: nothing here ever needs to backtrack, and they make matching ~2x faster.
    joined = f"(?:(?<={letter_or_mark})'(?={letter}){run})*+"
    return re.compile(run + joined)


def count_words(text: str) -> Counter[str]:
    """Count words (see the module docstring for the exact definition), lowercased."""
    counts: Counter[str] = Counter()
    findall = word_pattern().findall
    start, size = 0, len(text)
    while start < size:
        end = _chunk_end(text, start + _CHUNK_CHARS)
        counts.update(findall(text[start:end].lower().replace("\u2019", "'")))
        start = end
    return counts


def _chunk_end(text: str, index: int) -> int:
    """Return the first whitespace position at or after index (a word never spans whitespace)."""
    if index >= len(text):
        return len(text)
    space = _SPACE.search(text, index)
    return space.start() if space else len(text)


def top_words(counts: Counter[str], n: int) -> list[dict[str, str | int]]:
    """Return the n most frequent words as dicts, by count descending then word ascending."""
    if n <= 0:
        return []
    best = heapq.nsmallest(n, counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"word": word, "count": count} for word, count in best]


# Compile at import, so a worker's forked work-horses inherit the pattern instead of rebuilding it per job.
word_pattern()
