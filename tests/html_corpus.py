"""Generated real-world-like HTML pages for checking the streaming word counter against the tree-based one.

Each page mixes what crawled pages hold: nested inline and block elements, tables and lists (some unclosed),
named and numeric character references (some without ';'), comments, scripts with '<' and '</' inside,
styles, noscript, template and iframe content, attributes with '>' inside quotes, uppercase tags, unclosed
and misnested tags, CDATA-looking bogus comments, svg, non-ASCII words and apostrophes, in several charsets
(declared by header, by a <meta> after some bytes, or by a BOM). Malformations where a tree builder and a
tokenizer legitimately disagree (see jobs/wordcount/markup.py) are left out.
"""

from __future__ import annotations

import codecs
import random
from dataclasses import dataclass

WORDS = {
    "latin": (
        "the of and to in is that for it was with be on not this are people time world life hand "
        "don't it's O'Brien rock'n'roll l'été 90's 2024 3.14 e-mail café naïve déjà façade Straße über"
    ).split(),
    "cyrillic": "Привет мир книга слово дом время".split(),
    "greek": "Ελληνικά λόγος κόσμε".split(),
    "cjk": "日本語 東京 中文 字".split(),
    "hindi": "हिन्दी भाषा".split(),
}

# (charset, how it is declared, word families it can encode)
CHARSETS = [
    ("utf-8", "header", ("latin", "cyrillic", "greek", "cjk", "hindi")),
    ("utf-8", "meta", ("latin", "cyrillic", "cjk")),
    ("utf-8", "none", ("latin", "greek", "hindi")),
    ("utf-8", "bom", ("latin", "cjk")),
    ("windows-1252", "header", ("latin",)),
    ("iso-8859-1", "meta-late", ("latin",)),
    ("windows-1251", "meta-late", ("latin", "cyrillic")),
    ("koi8-r", "header", ("cyrillic",)),
    ("shift_jis", "meta", ("latin", "cjk")),
    ("utf-16-le", "bom", ("latin", "cyrillic", "cjk")),
]

INLINE = ("b", "i", "em", "strong", "span", "a", "code", "small", "abbr", "mark", "custom-el", "font")
BLOCK = ("div", "p", "section", "article", "h2", "h3", "blockquote", "pre", "header", "footer", "aside")
ENTITIES = (
    "&amp;", "&amp", "&lt;", "&gt;", "&nbsp;", "&eacute;", "&rsquo;", "&#8217;", "&#x27;", "&#39;", "&copy",
    "&hellip;", "&#233;", "&#xE9;", "&notit;", "&ampx", "&unknown;", "&#128512;", "&#x80;", "&",
)


@dataclass(frozen=True)
class Page:
    """A generated page: its bytes and the Content-Type header it is served with."""

    body: bytes
    content_type: str


class _Writer:
    """Builds one page from a seeded random source."""

    def __init__(self, rnd: random.Random, families: tuple[str, ...]):
        self.rnd = rnd
        self.words = [w for f in families for w in WORDS[f]]

    def word(self) -> str:
        """A word, sometimes uppercased or split by an inline tag or a comment (still one word)."""
        rnd, word = self.rnd, self.rnd.choice(self.words)
        roll = rnd.random()
        if roll < 0.05 and len(word) > 2:
            tag = rnd.choice(INLINE)
            return f"{word[:1]}<{tag}>{word[1:]}</{tag}>"
        if roll < 0.08 and len(word) > 2:
            return f"{word[:2]}<!-- x -->{word[2:]}"
        if roll < 0.10:
            return word.upper()
        if roll < 0.14:
            return rnd.choice(ENTITIES) + word
        return word

    def sentence(self, depth: int = 0) -> str:
        """Words, with inline elements (nested, misnested, unclosed) and odd markup between them."""
        rnd, out = self.rnd, []
        for _ in range(rnd.randint(3, 12)):
            roll = rnd.random()
            if roll < 0.12 and depth < 3:
                tag = rnd.choice(INLINE)
                name = tag.upper() if rnd.random() < 0.2 else tag
                out.append(f"<{name}{self.attributes()}>{self.sentence(depth + 1)}</{tag}>")
            elif roll < 0.14:
                out.append(f"<b>{self.word()}<i>{self.word()}</b>{self.word()}</i>")  # misnested
            elif roll < 0.16:
                out.append(f"<em>{self.word()}")  # never closed
            elif roll < 0.18:
                out.append(f"<img src=x.png alt='{self.word()}'><br>{self.word()}<wbr>{self.word()}")
            elif roll < 0.19:
                out.append(f"<input value=\"{self.word()}\"> a < b, i<3 {self.word()}")
            elif roll < 0.20:
                out.append(f"<![CDATA[{self.word()}]]>{self.word()}")  # a bogus comment in HTML
            elif roll < 0.21:
                out.append(f"<?php echo '{self.word()}'; ?>{self.word()}</span>")  # stray inline end tag
            elif roll < 0.22:
                out.append(f"<script>if (a<b && c>d) {{ x = '</p>' }}</script>{self.word()}")
            elif roll < 0.23:
                out.append(f"<noscript>{self.word()}</noscript><template><p>{self.word()}</p></template>")
            elif roll < 0.24:
                out.append(f"<!--{self.word()} <p>x</p> -- {self.word()}-->")
            else:
                out.append(self.word())
        return rnd.choice([" ", "\n", "  "]).join(out)

    def attributes(self) -> str:
        """Attributes quoted three ways, some with '>' or the other quote inside, some without a value."""
        rnd, out = self.rnd, []
        for _ in range(rnd.randint(0, 3)):
            value = f"{self.word()}>{self.word()}"
            out.append(rnd.choice([
                f' title="{value}"', f" data-x='{value} \"q\"'", " class=plain", " hidden", " a = 'b'",
                f' onclick="if(a>b)go(\'{self.word()}\')"', ' href="/p?a=1&amp;b=2"',
            ]))
        return "".join(out)

    def block(self, depth: int = 0) -> str:
        """A block-level element: paragraphs, lists, tables, nested blocks."""
        rnd = self.rnd
        roll = rnd.random()
        if roll < 0.15:
            close = rnd.random() < 0.5
            items = "".join(f"<li{self.attributes()}>{self.sentence()}{'</li>' if close else ''}"
                            for _ in range(rnd.randint(1, 4)))
            kind = rnd.choice(["ul", "ol"])
            return f"<{kind}>{items}</{kind}>"
        if roll < 0.27:
            close = rnd.random() < 0.5
            rows = "".join(
                "<tr>" + "".join(f"<td>{self.sentence()}{'</td>' if close else ''}" for _ in range(rnd.randint(1, 3)))
                + ("</tr>" if close else "") for _ in range(rnd.randint(1, 3))
            )
            head = f"<caption>{self.word()}</caption><tr><th>{self.word()}</th></tr>" if rnd.random() < 0.3 else ""
            return f"<table border=1>{head}{rows}</table>"
        if roll < 0.35 and depth < 3:
            tag = rnd.choice(BLOCK)
            inner = "".join(self.block(depth + 1) for _ in range(rnd.randint(1, 3)))
            return f"<{tag}{self.attributes()}>{inner}</{tag}>"
        if roll < 0.38:
            return f"<p>{self.sentence()}"  # unclosed paragraph
        if roll < 0.40:
            return f"<svg width=10><title>{self.word()}</title><text>{self.word()}</text></svg>{self.word()}"
        if roll < 0.42:
            return f"<textarea name=t>{self.word()} <b>{self.word()}</b> &amp;</textarea>"
        if roll < 0.44:
            return f"<dl><dt>{self.word()}<dd>{self.sentence()}</dl><hr>"
        if roll < 0.46:
            return f"<iframe src=x>{self.word()}</iframe><select><option>{self.word()}<option>{self.word()}</select>"
        if roll < 0.48:
            return f"<STYLE>p > a {{ content: '</p>' }}</STYLE><P>{self.sentence()}</P>"
        return f"<p{self.attributes()}>{self.sentence()}</p>"

    def page(self, blocks: int, charset_meta: str | None, late_meta: bool) -> str:
        """The document: head (maybe implied), body blocks, maybe no closing tags."""
        rnd = self.rnd
        meta = f'<meta charset="{charset_meta}">' if charset_meta else ""
        head_parts = [
            f"<title>{self.word()} {self.word()}</title>",
            "<link rel=stylesheet href=/s.css>",
            "<style>body > p { margin: 0 } /* </style */ a:after { content: '<b>' }</style>",
            "<script>var s = '<!-- <script> </script> -->'; if (1 < 2) {}</script>",
            "<script type=module>document.write('</scr' + 'ipt>')</script>",
        ]
        rnd.shuffle(head_parts)
        if late_meta:  # a <meta charset> after some bytes, still inside the 4 KB prescan
            head = "<!-- " + "padding " * 150 + "-->" + "".join(head_parts) + meta
        else:
            head = meta + "".join(head_parts)
        body = "\n".join(self.block() for _ in range(blocks))
        doctype = "<!DOCTYPE html>" if rnd.random() < 0.7 else ""
        if rnd.random() < 0.2:
            return f"{doctype}{head}{body}"  # html, head and body implied
        tail = "</body></html>" if rnd.random() < 0.7 else ""
        return f"{doctype}<html lang=en><HEAD>{head}</HEAD><body class='b'>{body}{tail}"


def page(seed: int, blocks: int = 12) -> Page:
    """One generated page, the same for the same seed."""
    rnd = random.Random(seed)
    charset, declared, families = rnd.choice(CHARSETS)
    meta = charset if declared in ("meta", "meta-late") else None
    markup = _Writer(rnd, families).page(blocks, meta, declared == "meta-late")
    body = markup.encode(charset, errors="xmlcharrefreplace")
    if declared == "bom":
        body = (codecs.BOM_UTF16_LE if charset == "utf-16-le" else codecs.BOM_UTF8) + body
    content_type = f"text/html; charset={charset}" if declared == "header" else "text/html"
    return Page(body, content_type)
