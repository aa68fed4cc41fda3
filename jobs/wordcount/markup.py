"""The text a reader sees in HTML, extracted as the page arrives: a streaming subset of the HTML5 tokenizer.

``VisibleText.feed`` takes decoded text in chunks of any size (down to one character) and returns the visible
text of what it could settle so far, with a space wherever a block element starts or ends. Nothing is built
but that text: no tree, no token objects, and what is carried between chunks is bounded (an unfinished tag,
entity or end-tag candidate; hidden content and comments are skipped as they stream past).

What it follows from the HTML Standard's tokenizer, exactly: tags and their attributes (quoted values may
hold ``>``), comments (including ``<!-->`` and ``--!>``), doctypes, bogus comments (``<?...>``, ``</ x>``),
character references (named with the legacy no-semicolon forms and longest-prefix matching, numeric with the
windows-1252 remapping), RCDATA (``title``, ``textarea``), raw text (``style``, ``xmp``, ``iframe``,
``noembed``, ``noframes``, and ``noscript`` as a scripting browser reads it), script data with its escaped
and double-escaped states, ``plaintext``, and CDATA sections inside ``svg``/``math``.

What it takes from tree construction is a short list of rules, not the algorithm:

* Hidden content (script, style, noscript, template, iframe, noembed, noframes, comments, attribute values)
  adds nothing, not even a separator, as the tree's removal of those nodes does.
* A block element's start or end tag separates words; any other tag joins them (``fo<b>o</b>`` is one word).
  ``html``, ``head`` and ``body`` tags never separate: the tree merges or ignores them.
* NUL characters in text are dropped, as the tree builder drops them.

Where a tree builder moves or ignores things, the stream can differ. The known cases, all malformed HTML and
all about a word glued across the oddity (word counts elsewhere agree):

* A stray end tag of a block element that closes nothing (``fo</div>o``): the tree ignores it and reads
  ``foo``; the stream separates ``fo`` and ``o``.
* Text foster-parented out of a table (``<table>fo<tr>o``): the tree joins the pieces before the table.
* Foreign content beyond the basics (HTML integration points such as ``foreignObject``), and tags the tree
  builder drops in odd places (a ``<div>`` start tag inside ``<select>`` in older parsers).
"""

from __future__ import annotations

import re
from functools import cache
from html.entities import html5 as _NAMED_REFERENCES
from itertools import repeat

# Elements that start a new line or box when rendered: a word never continues across their edges. Anything
# else (a, b, span, em, custom elements...) is inline, CSS's initial display. html, head and body are left
# out on purpose: a tree builder merges repeated ones and keeps text after </body> inside the body.
BLOCK_TAGS = frozenset(
    "address article aside blockquote br button caption center dd details dialog dir div dl dt "
    "fieldset figcaption figure footer form frameset h1 h2 h3 h4 h5 h6 header hgroup hr "
    "legend li listing main menu nav ol optgroup option p plaintext pre section select summary table "
    "tbody td textarea tfoot th thead title tr ul xmp".split()
)
_RAW_HIDDEN = frozenset({"style", "noscript", "iframe", "noembed", "noframes"})  # raw text, never shown
_RCDATA = frozenset({"title", "textarea"})  # text with character references, but no tags
_FOREIGN = frozenset({"svg", "math"})
# Start tags that end svg/math content (the tree builder pops back to HTML before inserting them).
_BREAKOUT = frozenset(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li listing "
    "menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var".split()
)

_W = r"[\t\n\f\r ]"
# One attribute: a name (which may start with "=") and, after an "=", a quoted or unquoted value. A name
# followed by "=" must have its value here: that keeps an unclosed quote from being read as more names.
_ATTRIBUTE = (
    rf"[^\t\n\f\r />][^\t\n\f\r />=]*+"
    rf"(?:{_W}*+={_W}*+(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'][^\t\n\f\r >]*+|(?=>))|(?!{_W}*+=))"
)
_TAG_BODY = rf"(?:{_W}++|/(?!>)|{_ATTRIBUTE})*+"
# A whole tag: end-tag slash, name, attributes, self-closing slash. Possessive throughout: never backtracks.
_TAG = re.compile(rf"<(/?)([A-Za-z][^\t\n\f\r />]*+){_TAG_BODY}(/?)>")
_TAG_REST = re.compile(rf"{_TAG_BODY}(/?)>")
# The longest run of whole attributes, then an attribute whose quoted value is still open.
_TAG_PREFIX = re.compile(r"<(/?)([A-Za-z][^\t\n\f\r />]*+)")
_UNITS = re.compile(_TAG_BODY)
_OPEN_QUOTE = re.compile(rf"[^\t\n\f\r />][^\t\n\f\r />=]*+{_W}*+={_W}*+([\"'])")

# The fast path: a tag whose name is plain (U+212A lowercases to an ASCII "k") and that needs no mode change.
# Trying ">" right after the name first makes attribute-less tags, the commonest, twice as quick to match.
_SIMPLE_TAG = re.compile(rf"</?([A-Za-z][^\t\n\f\r />\u212a]*+)(?:>|{_TAG_BODY}/?>)")
_SEPARATORS = {name: " " for name in BLOCK_TAGS}
_SPECIAL = re.compile(
    rf"<(?:[!?]|/(?![A-Za-z])|/?(?:script|style|noscript|iframe|noembed|noframes|xmp|title|textarea|plaintext"
    rf"|template|svg|math)(?={_W}|/|>))",
    re.IGNORECASE | re.ASCII,
)
_TAG_START = re.compile(r"</?[A-Za-z]")
_SIMPLE_RUN_MIN = 256  # shorter stretches go token by token

_COMMENT_END = re.compile(r"--!?>")
_CDATA_END = "]]>"
_SCRIPT_DATA = re.compile(rf"<!--|</script(?={_W}|/|>)", re.IGNORECASE | re.ASCII)
_SCRIPT_ESCAPED = re.compile(rf"-->|</script(?={_W}|/|>)|<script(?={_W}|/|>)", re.IGNORECASE | re.ASCII)
_SCRIPT_DOUBLE = re.compile(rf"-->|</script(?={_W}|/|>)", re.IGNORECASE | re.ASCII)
_SCRIPT_TAIL = len("</script")  # enough held back to see any of the above once the next chunk comes

_CHARREF = re.compile(r"&(?:#[xX]([0-9A-Fa-f]++);?|#([0-9]++);?|([A-Za-z0-9]++;?))")
_CHARREF_TAIL = re.compile(r"&#?[xX]?[A-Za-z0-9]*+\Z")  # a reference the next chunk may still complete
_LONGEST_REFERENCE = 40  # longer than any named reference; numeric ones this long are garbage anyway
_PENDING_TAG = 4096  # an unfinished tag longer than this is compacted (an unclosed quote can run for MBs)
_WINDOWS_1252 = {n: bytes([n]).decode("cp1252") for n in range(0x80, 0xA0) if n not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}

_DATA, _RAWTEXT, _RCDATA_MODE, _SCRIPT, _PLAINTEXT, _COMMENT, _BOGUS, _CDATA, _TAG_OPEN, _QUOTED = range(10)


class VisibleText:
    """Feed decoded HTML in chunks; get back the visible text, with a space at every block edge."""

    def __init__(self) -> None:
        self._mode = _DATA
        self._pending = ""  # unsettled input carried to the next chunk (small, see _PENDING_TAG)
        self._raw_end: re.Pattern[str] | None = None  # the end tag that closes raw text or RCDATA
        self._raw_visible = False  # xmp's raw text is shown; style's and the others' is not
        self._raw_hold = 0  # characters held back at a chunk's end: the length of "</name"
        self._script_state = _SCRIPT_DATA
        self._tag: tuple[bool, str] = (False, "")  # (end tag?, name) of a tag whose attributes span chunks
        self._quote = '"'
        self._templates = 0  # open <template> elements: their content is never rendered
        self._foreign = 0  # open svg/math elements, where <![CDATA[ starts text rather than a comment
        self._exact_until = 0

    def feed(self, chunk: str, final: bool = False) -> str:
        """Consume a chunk (``final`` for the last one) and return the visible text settled so far."""
        buf = self._pending + chunk if self._pending else chunk
        out: list[str] = []
        pos, size = 0, len(buf)
        self._exact_until = 0  # set when the fast path must leave a stretch to the exact tokenizer
        while pos < size:
            mode = self._mode
            new = _HANDLERS[mode](self, buf, pos, out, final)
            if new == pos and self._mode == mode:  # the rest cannot be settled without more input
                break
            pos = new
        self._pending = "" if final else buf[pos:]
        return "".join(out)

    # ------------------------------------------------------------------------------------------ text

    def _text(self, out: list[str], text: str) -> None:
        """Emit character data from the data state (references decoded, NULs dropped) unless hidden."""
        if self._templates or not text:
            return
        if "&" in text:
            text = decode_references(text)
        if "\0" in text:
            text = text.replace("\0", "")
        out.append(text)

    def _data(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """The data state: long runs of text and simple tags at C speed, anything else token by token."""
        while True:
            if pos >= self._exact_until and not self._foreign:
                pos = self._simple_run(buf, pos, out, final)
            new = self._token(buf, pos, out, final)
            if new == pos or self._mode != _DATA:
                return new
            pos = new

    def _simple_run(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """Settle text and block/inline tags up to the next special construct with a few C-level passes."""
        special = _SPECIAL.search(buf, pos)
        stop = special.start() if special is not None else len(buf)
        if not final:
            stop = min(stop, buf.rfind("<", pos))  # the last tag may be cut off: _token settles it
        if stop - pos < _SIMPLE_RUN_MIN:
            return pos
        region = buf[pos:stop]
        parts = _SIMPLE_TAG.split(region)
        # Inline tags become NUL while references are decoded ("&am<b>p;" is not "&amp;"), then vanish,
        # as NULs in text do in a tree builder.
        filler = "\0" if "&" in region else ""
        parts[1::2] = map(_SEPARATORS.get, map(str.lower, parts[1::2]), repeat(filler))
        text = "".join(parts)
        if "<" in text and _TAG_START.search(text):  # a tag the simple pattern could not close (a stray quote)
            self._exact_until = stop
            return pos
        self._text(out, text)
        return stop

    def _token(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """Text up to the next '<' and the markup there; return pos itself when more input is needed."""
        lt = buf.find("<", pos)
        if lt < 0:
            end = len(buf) if final else _settled_text_end(buf, pos, len(buf))
            self._text(out, buf[pos:end])
            return end
        if lt > pos:
            self._text(out, buf[pos:lt])
            return lt
        tag = _TAG.match(buf, lt)
        if tag is not None:
            end_tag, name, self_closing = tag.group(1, 2, 3)
            self._on_tag(bool(end_tag), _ascii_lower(name), bool(self_closing), out)
            return tag.end()
        return self._markup(buf, lt, out, final)

    def _markup(self, buf: str, lt: int, out: list[str], final: bool) -> int:
        """Whatever starts with '<' and is not a complete tag; return lt itself when more input is needed."""
        size = len(buf)
        nxt = buf[lt + 1 : lt + 2]
        if not nxt:
            if final:
                self._text(out, "<")
                return size
            return lt
        if nxt.isascii() and nxt.isalpha() or (nxt == "/" and buf[lt + 2 : lt + 3].isascii()
                                               and buf[lt + 2 : lt + 3].isalpha()):
            return self._unfinished_tag(buf, lt, final)
        if nxt == "!":
            return self._declaration(buf, lt, final)
        if nxt == "?":
            return self._bogus(buf, lt + 2, out, final)
        if nxt == "/":
            third = buf[lt + 2 : lt + 3]
            if not third:
                if final:
                    self._text(out, "</")
                    return size
                return lt
            if third == ">":
                return lt + 3  # "</>" is dropped
            return self._bogus(buf, lt + 2, out, final)
        self._text(out, "<")  # a '<' that opens nothing is text
        return lt + 1

    def _declaration(self, buf: str, lt: int, final: bool) -> int:
        """'<!': a comment, CDATA in svg/math, or a doctype or bogus comment that ends at the next '>'."""
        size = len(buf)
        head = buf[lt + 2 : lt + 9]
        if head.startswith("--"):
            start = lt + 4
            if size - start < 2 and not final:
                return lt  # "<!-->" and "<!--->" are whole comments: look two characters ahead
            if buf.startswith(">", start):
                return start + 1
            if buf.startswith("->", start):
                return start + 2
            self._mode = _COMMENT
            return self._comment(buf, start, [], final)
        if self._foreign and head == "[CDATA[":
            self._mode = _CDATA
            return lt + 9
        if not final and ("--".startswith(head) or self._foreign and len(head) < 7 and "[CDATA[".startswith(head)):
            return lt  # too short to tell which
        return self._bogus(buf, lt + 2, [], final)

    def _bogus(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """A bogus comment or doctype: everything up to the next '>'."""
        end = buf.find(">", pos)
        if end >= 0:
            self._mode = _DATA
            return end + 1
        self._mode = _DATA if final else _BOGUS
        return len(buf)

    def _comment(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """Inside a comment: up to '-->' or '--!>'; keep the last characters in case one is split."""
        end = _COMMENT_END.search(buf, pos)
        if end is not None:
            self._mode = _DATA
            return end.end()
        if final:
            self._mode = _DATA
            return len(buf)
        return max(pos, len(buf) - 3)

    def _cdata(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """A CDATA section in svg/math: its content is text."""
        end = buf.find(_CDATA_END, pos)
        if end >= 0:
            if not self._templates:
                out.append(buf[pos:end])
            self._mode = _DATA
            return end + 3
        stop = len(buf) if final else max(pos, len(buf) - 2)
        if not self._templates:
            out.append(buf[pos:stop])
        if final:
            self._mode = _DATA
        return stop

    # ------------------------------------------------------------------------------------------ tags

    def _on_tag(self, end_tag: bool, name: str, self_closing: bool, out: list[str]) -> bool:
        """Apply a complete tag; return True if it switched the tokenizer out of the data state."""
        if name in BLOCK_TAGS:
            out.append(" ")
        if end_tag:
            if name == "template" and self._templates:
                self._templates -= 1
            elif name in _FOREIGN and self._foreign:
                self._foreign -= 1
            elif self._foreign and name in ("p", "br"):
                self._foreign = 0
            return False
        if self._foreign and name in _BREAKOUT:
            self._foreign = 0
        if name in _FOREIGN:
            self._foreign += not self_closing
        elif name == "template":
            self._templates += 1
        elif name == "script":
            self._mode, self._script_state = _SCRIPT, _SCRIPT_DATA
        elif name in _RAW_HIDDEN or name == "xmp":
            self._mode, self._raw_end, self._raw_visible = _RAWTEXT, _end_tag(name), name == "xmp"
            self._raw_hold = len(name) + 2
        elif name in _RCDATA and not self._foreign:
            self._mode, self._raw_end, self._raw_hold = _RCDATA_MODE, _end_tag(name), len(name) + 2
        elif name == "plaintext":
            self._mode = _PLAINTEXT
        return self._mode != _DATA

    def _unfinished_tag(self, buf: str, lt: int, final: bool) -> int:
        """A tag whose '>' has not arrived: wait for it, compacting it first if it grows long."""
        if final:
            return len(buf)  # a tag cut off by the end of the file is dropped
        if len(buf) - lt <= _PENDING_TAG:
            return lt
        prefix = _TAG_PREFIX.match(buf, lt)
        assert prefix is not None  # _markup checked the name's first letter
        self._tag = (bool(prefix.group(1)), _ascii_lower(prefix.group(2)))
        self._mode = _TAG_OPEN
        return prefix.end()

    def _tag_open(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """The attributes of a long tag, carried across chunks without keeping them."""
        rest = _TAG_REST.match(buf, pos)
        if rest is not None:
            self._mode = _DATA
            self._on_tag(*self._tag, bool(rest.group(1)), out)
            return rest.end()
        if final:
            self._mode = _DATA
            return len(buf)
        units = _UNITS.match(buf, pos).end()  # type: ignore[union-attr]  # matches the empty string
        quote = _OPEN_QUOTE.match(buf, units)
        if quote is not None:
            self._mode, self._quote = _QUOTED, quote.group(1)
            return quote.end()
        # Units that reach the end of the input may go on ("a" may become "a=1"): cut only before an
        # attribute whose "=" has come but not its value.
        return units if units < len(buf) else pos

    def _quoted(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """Inside a long tag's quoted attribute value: skip to the closing quote."""
        end = buf.find(self._quote, pos)
        if end >= 0:
            self._mode = _TAG_OPEN
            return end + 1
        if final:
            self._mode = _DATA
        return len(buf)

    # ----------------------------------------------------------------------------- raw text, scripts

    def _rawtext(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """Raw text (style, xmp...) or RCDATA (title, textarea) up to its end tag, which data then reads."""
        assert self._raw_end is not None
        rcdata = self._mode == _RCDATA_MODE
        end = self._raw_end.search(buf, pos)
        if end is not None:
            stop = end.start()
        elif final:
            stop = len(buf)
        else:  # hold back what could still become the end tag (or a character reference)
            stop = max(pos, len(buf) - self._raw_hold)
            if rcdata:
                stop = _settled_text_end(buf, pos, stop)
        if rcdata:
            self._text(out, buf[pos:stop].replace("\0", "\ufffd"))
        elif self._raw_visible and not self._templates:
            out.append(buf[pos:stop].replace("\0", "\ufffd"))
        if end is not None or final:
            self._mode = _DATA
        return stop

    def _script(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """Script data, hidden, with its escaped states: ``<!-- <script></script> -->`` stays inside."""
        while True:
            found = self._script_state.search(buf, pos)
            if found is None:
                if final:
                    self._mode = _DATA
                    return len(buf)
                return max(pos, len(buf) - _SCRIPT_TAIL)
            token = found.group().lower()
            if token == "</script":
                if self._script_state is not _SCRIPT_DOUBLE:
                    self._mode = _DATA
                    return found.start()
                self._script_state, pos = _SCRIPT_ESCAPED, found.end()
            elif token == "<!--":
                self._script_state, pos = _SCRIPT_ESCAPED, found.start() + 2  # its dashes may end it: <!-->
            elif token == "<script":
                self._script_state, pos = _SCRIPT_DOUBLE, found.end()
            else:  # "-->"
                self._script_state, pos = _SCRIPT_DATA, found.end()

    def _plaintext(self, buf: str, pos: int, out: list[str], final: bool) -> int:
        """After <plaintext> everything is text."""
        if not self._templates:
            out.append(buf[pos:].replace("\0", "\ufffd"))
        return len(buf)


_HANDLERS = {
    _DATA: VisibleText._data,
    _RAWTEXT: VisibleText._rawtext,
    _RCDATA_MODE: VisibleText._rawtext,
    _SCRIPT: VisibleText._script,
    _PLAINTEXT: VisibleText._plaintext,
    _COMMENT: VisibleText._comment,
    _BOGUS: VisibleText._bogus,
    _CDATA: VisibleText._cdata,
    _TAG_OPEN: VisibleText._tag_open,
    _QUOTED: VisibleText._quoted,
}


def decode_references(text: str) -> str:
    """Replace character references as the HTML Standard's tokenizer does in text content."""
    return _CHARREF.sub(_reference, text)


def _reference(ref: re.Match[str]) -> str:
    """One reference: numeric (with the standard's fix-ups) or named (longest known prefix, legacy forms)."""
    hexadecimal, decimal, name = ref.groups()
    if name is None:
        digits = (hexadecimal or decimal).lstrip("0")
        if len(digits) > 8:  # past U+10FFFF whatever the base (and int() refuses very long strings)
            return "\ufffd"
        return _code_point(int(digits or "0", 16 if hexadecimal else 10))
    if name in _NAMED_REFERENCES:
        return _NAMED_REFERENCES[name]
    for end in range(len(name) - 1, 1, -1):  # only the legacy names are listed without their ";"
        if name[:end] in _NAMED_REFERENCES:
            return _NAMED_REFERENCES[name[:end]] + name[end:]
    return ref.group()


def _code_point(number: int) -> str:
    """The character a numeric reference stands for: NUL, surrogates and overflow give U+FFFD."""
    if number == 0 or number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
        return "\ufffd"
    return _WINDOWS_1252.get(number) or chr(number)


def _settled_text_end(buf: str, start: int, end: int) -> int:
    """Where text can be cut: end, or before a trailing '&...' the next chunk may turn into a reference."""
    amp = buf.rfind("&", max(start, end - _LONGEST_REFERENCE), end)
    if amp >= 0 and _CHARREF_TAIL.match(buf, amp, end):
        return amp
    return end


def _ascii_lower(name: str) -> str:
    """Lowercase ASCII letters only, as HTML does for tag names."""
    if name.isascii():
        return name.lower()
    return "".join(c.lower() if c.isascii() else c for c in name)


@cache
def _end_tag(name: str) -> re.Pattern[str]:
    """The end tag that closes raw text or RCDATA opened by ``name`` (ASCII case-insensitive)."""
    return re.compile(rf"</{name}(?={_W}|/|>)", re.IGNORECASE | re.ASCII)
