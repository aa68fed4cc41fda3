"""The tree-based text extraction the job used before it streamed: the oracle the streaming one must match.

It parses the whole page with lexbor (an HTML5 tree builder), removes hidden elements, puts a space at every
block element's edges and joins the text nodes. Kept here only to check jobs.wordcount.markup against it,
and for bench/bench_text.py's before/after figures.
"""

from __future__ import annotations

import codecs
from collections import Counter

from selectolax.lexbor import LexborHTMLParser

from jobs.wordcount import text

# Elements whose content a browser never renders as page text.
_HIDDEN_SELECTOR = "script, style, noscript, template, iframe, noembed, noframes"

# Elements that start a new line or box when rendered: a word never continues across their edges.
_BLOCK_TAGS = (
    "address article aside blockquote body br button caption center dd details dialog dir div dl dt "
    "fieldset figcaption figure footer form frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html "
    "legend li listing main menu nav ol optgroup option p plaintext pre section select summary table "
    "tbody td textarea tfoot th thead title tr ul xmp"
).split()
_BLOCK_SELECTOR = ", ".join(_BLOCK_TAGS)


def tree_text(body: bytes, content_type_header: str | None) -> str:
    """Parse HTML and join its visible text nodes, putting a space only at block-element edges."""
    encoding = text.detect_encoding(body, content_type_header)
    # scripting=True parses like a browser that runs scripts: <noscript> holds one raw text node we drop.
    if encoding == "utf-8":
        tree = LexborHTMLParser(body[3:] if body.startswith(codecs.BOM_UTF8) else body, scripting=True)
    else:
        tree = LexborHTMLParser(text.decode_body(body, content_type_header), scripting=True)
    for node in tree.css(_HIDDEN_SELECTOR):
        node.decompose()
    for node in tree.css(_BLOCK_SELECTOR):
        node.insert_before(" ")
        node.insert_after(" ")
    root = tree.root
    return root.text(separator="") if root is not None else ""


def tree_counts(body: bytes, content_type_header: str | None) -> Counter[str]:
    """Word counts of a page as the tree-based extractor reads it."""
    if text.media_type(content_type_header) == "text/plain":
        return text.count_words(text.decode_body(body, content_type_header))
    return text.count_words(tree_text(body, content_type_header))
