"""Text normalisation: HTML to text once at the edge, and the folded form that matching reads.

``html_to_text`` turns feed HTML into plain text (BeautifulSoup, with block elements as line
breaks). ``clean_text`` applies Unicode NFKC and tidies white space; this is the text stored and
shown, and every mention's span points into it. ``fold`` produces the form matching reads:
case-folded, curly quotes and dashes made plain, with a map from each folded character back to
its position in the clean text, so a match found in the folded form can be reported in the
article's own words.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

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
# Curly quotes and dashes, each with the one ASCII character it folds to.
_PLAIN_PUNCTUATION = tuple(
    (char, _FOLD_MAP[char]) for char in "\u2019\u201c\u201d\u2018\u2014\u2013"
)
_ASCII = bytes(range(128))
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Bytes that do not begin a character outside the Basic Multilingual Plane in UTF-8.
_BELOW_ASTRAL = bytes(range(0xF0))
# Text with more bytes outside ASCII than this is case-folded first (``_partly_folded``): then
# only the few characters that case-folding does not settle are left to look up. With fewer,
# looking up each distinct character is quicker.
_FEW_OTHERS = 512
# ASCII bytes folded as _fold_char folds their characters; the bytes of longer UTF-8 sequences
# (0x80 and over) are left as they are.
_FOLD_ASCII = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ`", b"abcdefghijklmnopqrstuvwxyz'")


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


def whole_characters(text: str) -> str:
    """``text`` with each lone surrogate (half of a UTF-16 pair, which a JSON escape such as
    ``\\ud800`` can spell and no UTF-8 text can hold) replaced by U+FFFD."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def character_offsets(encoded: bytes, offsets: Iterable[int]) -> dict[int, int]:
    """Places in UTF-8 ``encoded`` (a lone surrogate as "surrogatepass" writes it), each where
    a character starts or ends, as offsets in characters into the text it encodes."""
    characters: dict[int, int] = {}
    last = count = 0
    for at in sorted(set(offsets)):
        count += len(encoded[last:at].decode("utf-8", "surrogatepass"))
        characters[at], last = count, at
    return characters


def fold_string(text: str) -> str:
    """The folded form of a short string such as an alias (no offsets kept)."""
    return fold(unicodedata.normalize("NFKC", text)).text


def form_key(form: str) -> str:
    """The key a watchlist form is looked up by: folded, without the spaces around it. Two
    forms with one key are one form to matching."""
    return fold_string(form).strip()


@dataclass(frozen=True)
class FoldedText:
    """Folded text, and for each of its characters the index of its source character.

    ``origin`` is a ``range`` when every character folded to exactly one (nearly all text), as
    folded and source offsets are then the same; otherwise offsets are worked out on demand
    around the few characters that folded to several or to none.
    """

    text: str
    origin: Sequence[int]

    def span_in_source(self, start: int, end: int) -> tuple[int, int]:
        """The span of the clean text that folded characters ``start:end`` came from."""
        return self.origin[start], self.origin[end - 1] + 1


@functools.lru_cache(maxsize=64)  # matching and then every rule read the same fields
def fold(text: str) -> FoldedText:
    """Fold clean text for matching, keeping the way back to the original offsets.

    Every character folds as ``_fold_char`` says. ASCII text is lower-cased, its backticks
    made apostrophes; so is text that is ASCII once its curly quotes and dashes are made
    plain (most English). In other text, ASCII is folded a byte at a time by one
    ``bytes.translate``; then each distinct other character is replaced by its folded form,
    looked up once. Long text outside ASCII (Cyrillic, Greek …) is case-folded by
    ``str.casefold`` first instead, which leaves only a few characters to replace. Where every
    character folds to one, folded and source offsets are the same; characters folding to
    several ("ß" → "ss", "ﬁ" → "fi") or to none (a soft hyphen) are noted so that offsets can
    be mapped across them.
    """
    if text.isascii():  # only capitals and the backtick fold
        return FoldedText(text.lower().replace("`", "'"), range(len(text)))
    plain = _with_plain_punctuation(text)
    if plain.isascii():  # English text with curly quotes and dashes: nothing else to fold
        return FoldedText(plain.lower().replace("`", "'"), range(len(text)))
    found = _replaced(*_partly_folded(text, text.encode("utf-8", "surrogatepass")))
    return _fold_each(text) if found is None else found


def _with_plain_punctuation(text: str) -> str:
    """``text`` with its curly quotes and dashes folded (each to one ASCII character), the
    characters outside ASCII that English text mostly has."""
    for char, plain in _PLAIN_PUNCTUATION:
        if char in text:
            text = text.replace(char, plain)
    return text


def _partly_folded(text: str, encoded: bytes) -> tuple[str, set[str]]:
    """``text`` (``encoded`` in UTF-8) folded but for some characters, which stand where the
    source's do, and those characters."""
    others = encoded.translate(None, _ASCII)
    if len(others) > _FEW_OTHERS and not others.translate(None, _BELOW_ASTRAL):
        cased = text.casefold()
        if len(cased) == len(text):  # every character case-folded to one
            return cased, set(_changed_after_casefold().findall(cased))
    folded = encoded.translate(_FOLD_ASCII).decode("utf-8", "surrogatepass")
    return folded, set(others.decode("utf-8", "surrogatepass"))


def _replaced(text: str, chars: set[str]) -> FoldedText | None:
    """``text``, folded but for ``chars``, with those replaced by their folded forms. None
    where a replacement would be replaced in its turn."""
    folded, uneven = text, []
    for char in chars:
        code = ord(char)
        replacement = _TABLE[code]
        if replacement == char:
            continue
        if code in _UNSETTLED:
            return None
        folded = folded.replace(char, replacement)
        if len(replacement) != 1:
            uneven.append(char)
    return FoldedText(folded, _offsets(text, uneven) if uneven else range(len(text)))


@functools.cache
def _changed_after_casefold() -> re.Pattern[str]:
    """The characters of the Basic Multilingual Plane that folding changes though case-folding
    leaves them as they are: those of ``_FOLD_MAP`` and those with an accent to strip (they
    have a canonical decomposition). Built when first needed, in some milliseconds."""
    candidates = [
        char
        for char in map(chr, range(0x10000))
        if char in _FOLD_MAP
        or (unicodedata.decomposition(char)[:1] not in ("", "<") and char.casefold() == char)
    ]
    changed = [char for char in candidates if _TABLE[ord(char)] != char]
    return re.compile("[" + "".join(map(re.escape, changed)) + "]")


def _offsets(text: str, uneven: list[str]) -> _Offsets:
    """The source offsets of ``text`` folded, whose ``uneven`` characters change length."""
    changes = []
    shift = 0
    for at in sorted(at for char in uneven for at in _positions(text, char)):
        length = len(_TABLE[ord(text[at])])
        changes.append((at + shift, at, length))
        shift += length - 1
    return _Offsets(len(text) + shift, changes)


def _positions(text: str, char: str) -> Iterator[int]:
    at = text.find(char)
    while at >= 0:
        yield at
        at = text.find(char, at + 1)


class _Offsets(Sequence[int]):
    """The source offset of each folded character, where a few characters folded to several or
    to none and the offsets run one to one between them. ``changes`` lists those characters in
    order, each as (folded offset, source offset, length folded to)."""

    def __init__(self, length: int, changes: list[tuple[int, int, int]]) -> None:
        self._length = length
        self._changes = changes
        self._starts = [folded_at for folded_at, _, _ in changes]

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[int, ...]: ...

    def __getitem__(self, index: int | slice) -> int | tuple[int, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._length)))
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("folded offset out of range")
        before = bisect.bisect_right(self._starts, index) - 1
        if before < 0:
            return index
        folded_at, source_at, length = self._changes[before]
        if index < folded_at + length:
            return source_at
        return source_at + 1 + index - folded_at - length


def _fold_each(text: str) -> FoldedText:
    """Character by character: what ``fold`` means, for text the quick way cannot take."""
    folded = [_TABLE[ord(char)] for char in text]
    origin = tuple(index for index, piece in enumerate(folded) for _ in piece)
    return FoldedText("".join(folded), origin)


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


class _FoldTable(dict[int, str]):
    """The folded form of each code point, worked out when first met. Only the Basic
    Multilingual Plane is kept (at most 65,536 entries, whatever the input). Code points
    whose folded form would change if folded again are noted in ``_UNSETTLED``."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if any(_fold_char(char) != char for char in folded):
            _UNSETTLED.add(code)
        if code <= 0xFFFF:
            self[code] = folded
        return folded


_TABLE = _FoldTable()
_UNSETTLED: set[int] = set()  # of the code points met, as _FoldTable says
