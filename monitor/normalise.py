"""Text normalisation: HTML to text once at the edge, and the folded form that matching reads.

``html_to_text`` turns feed HTML into plain text (BeautifulSoup, with block elements as line
breaks). ``clean_text`` applies Unicode NFKC and tidies white space; this is the text stored and
shown, and every mention's span points into it. ``fold`` produces the form matching reads:
case-folded, curly quotes and dashes made plain, with a map from each folded character back to
its position in the clean text, so a match found in the folded form can be reported in the
article's own words.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

_BLOCK_TAGS = (
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "figure",
    "figcaption",
    "hr",
    "dd",
    "dt",
)
_INVISIBLE_TAGS = ("script", "style", "template", "noscript", "iframe", "object", "embed")

# Feed text often looks like a URL or like XML to BeautifulSoup; that is expected here. Set once
# at import: warnings.catch_warnings() is not thread-safe and parsing runs in a thread pool.
warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)
warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)

_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_SPACE_AROUND_NEWLINE = re.compile(r" *\n *")

# Characters folded to one plain form before matching.
_FOLD_MAP = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u02bc": "'",
    "\u0060": "'",
    "\u00b4": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u00a0": " ",
    "\u200b": "",
    "\u200c": "",
    "\u200d": "",
    "\ufeff": "",
    "\u00ad": "",
}


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment or page; plain text passes through unchanged in content."""
    if "<" not in html and "&" not in html:
        return clean_text(html)
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_INVISIBLE_TAGS):
        tag.decompose()
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return clean_text(soup.get_text())


def clean_text(text: str) -> str:
    """NFKC, one space between words, at most one blank line between paragraphs, no edges."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def fold_string(text: str) -> str:
    """The folded form of a short string such as an alias (no offsets kept)."""
    return "".join(_fold_char(c) for c in unicodedata.normalize("NFKC", text))


@dataclass(frozen=True)
class FoldedText:
    """Folded text, and for each of its characters the index of its source character."""

    text: str
    origin: tuple[int, ...]

    def span_in_source(self, start: int, end: int) -> tuple[int, int]:
        """The span of the clean text that folded characters ``start:end`` came from."""
        return self.origin[start], self.origin[end - 1] + 1


def fold(text: str) -> FoldedText:
    """Fold clean text for matching, keeping the way back to the original offsets."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = _fold_char(char)
        out.append(folded)
        origin.extend([index] * len(folded))
    return FoldedText("".join(out), tuple(origin))


def _fold_char(char: str) -> str:
    mapped = _FOLD_MAP.get(char)
    if mapped is not None:
        return mapped
    folded = char.casefold()
    if len(folded) == 1 and not folded.isascii():
        # Strip accents the way analysts type names: "Zürich" matches "Zurich".
        decomposed = unicodedata.normalize("NFD", folded)
        base = "".join(c for c in decomposed if not unicodedata.combining(c))
        if len(base) == 1:
            return base
    return folded
