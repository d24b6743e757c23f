"""``fold`` against its definition: the character-by-character fold it replaced, kept here as the
reference. Same folded text, same origin, same span in the source for every span, on arbitrary
text, on every code point, and on a table of cases that take the unusual ways through it. Each
check runs twice: as ``fold`` chooses its way, and with every text outside ASCII case-folded
first (the way it takes for long text)."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import normalise
from monitor.normalise import FoldedText, fold, fold_string

REFERENCE_MAP = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u0060\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    "\u00a0": " ",
    **dict.fromkeys("\u200b\u200c\u200d\ufeff\u00ad", ""),
}


def reference_char(char: str) -> str:
    mapped = REFERENCE_MAP.get(char)
    if mapped is not None:
        return mapped
    folded = char.casefold()
    if len(folded) == 1 and not folded.isascii():
        decomposed = unicodedata.normalize("NFD", folded)
        base = "".join(c for c in decomposed if not unicodedata.combining(c))
        if len(base) == 1:
            return base
    return folded


def reference_fold(text: str) -> tuple[str, tuple[int, ...]]:
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = reference_char(char)
        out.append(folded)
        origin.extend([index] * len(folded))
    return "".join(out), tuple(origin)


def reference_span(origin: tuple[int, ...], start: int, end: int) -> tuple[int, int]:
    return origin[start], origin[end - 1] + 1


@contextmanager
def case_folded_first() -> Iterator[None]:
    """``fold`` case-folds every text outside ASCII first, however short (and caches nothing)."""
    few = normalise._FEW_OTHERS
    normalise._FEW_OTHERS = -1
    fold.cache_clear()
    try:
        yield
    finally:
        normalise._FEW_OTHERS = few
        fold.cache_clear()


def both_ways(check: Callable[[], None]) -> None:
    check()
    with case_folded_first():
        check()


def assert_same_as_reference(text: str) -> None:
    both_ways(lambda: _assert_same_as_reference(text))


def _assert_same_as_reference(text: str) -> None:
    expected_text, expected_origin = reference_fold(text)
    folded = fold(text)
    assert folded.text == expected_text
    assert len(folded.origin) == len(expected_origin)
    assert list(folded.origin) == list(expected_origin)
    length = len(expected_text)
    for start in range(length):
        for end in range(start + 1, length + 1):
            assert folded.span_in_source(start, end) == reference_span(expected_origin, start, end)


# Characters that fold to several, to none, to something that folds again, or not at all.
TRICKY = (
    "ßẞİıŉﬁﬃﬆΣσςᾈΐ\u00ad\u200b\u200c\u200d\ufeff`´’‘“”«»—–\u2212\u00a0"
    "\u1fef\u1ffdÉéZüriche\u0301\u0308习近平한국어😀👍🏽\U0002a6d6\ud800\udfff"
)
TEXT = st.lists(
    st.one_of(st.sampled_from(TRICKY), st.characters(), st.sampled_from("aZ '-")), max_size=40
).map("".join)
SETTINGS = settings(
    max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(TEXT)
def test_fold_is_the_character_by_character_fold(text: str) -> None:
    assert_same_as_reference(text)


@SETTINGS
@given(TEXT)
def test_fold_string_is_fold_of_the_nfkc_form(text: str) -> None:
    nfkc = unicodedata.normalize("NFKC", text)
    assert fold_string(text) == reference_fold(nfkc)[0] == fold(nfkc).text


def test_every_code_point() -> None:
    def check() -> None:
        block = 64
        for first in range(0, sys.maxunicode + 1, block):
            text = "".join(map(chr, range(first, first + block)))
            expected_text, expected_origin = reference_fold(f"A{text}z")
            folded = fold(f"A{text}z")
            assert folded.text == expected_text, hex(first)
            assert list(folded.origin) == list(expected_origin), hex(first)

    both_ways(check)


def test_each_code_point_case_folded_first() -> None:
    """Each character of the Basic Multilingual Plane on its own, case-folded first: that way
    looks up only what case-folding leaves to change (text with characters beyond the plane
    goes the other way)."""
    with case_folded_first():
        for code in range(0x80, 0x10000):
            text = f"{chr(code)}Ж"
            assert fold(text).text == reference_fold(text)[0], hex(code)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Blinken", "blinken"),
        ("", ""),
        ("Die Straße", "die strasse"),  # ß folds to two
        ("STRAẞE", "strasse"),
        ("İstanbul", "i\u0307stanbul"),  # Turkish dotted capital I: i and a combining dot
        ("Diyarbakır", "diyarbakır"),  # dotless i stays dotless
        ("ﬁnance ﬃ", "finance ffi"),  # ligatures
        ("Zürich", "zurich"),  # a precomposed accent is stripped
        ("Zu\u0308rich", "zu\u0308rich"),  # a combining accent on its own is kept
        ("Ŝe\u0301ance", "se\u0301ance"),
        ("习近平会见布林肯", "习近平会见布林肯"),  # CJK folds to itself
        ("한국어", "한국어"),
        ("ΣΊΣΥΦΟΣ", "σισυφοσ"),  # no final sigma: each letter folds on its own
        ("“Blinken’s” ‘visit’ «now»", '"blinken\'s" \'visit\' "now"'),
        ("2023–2024 — US−China", "2023-2024 - us-china"),
        ("`quoted´", "'quoted'"),
        ("a\u00a0b", "a b"),
        ("Außen\u00administerium", "aussenministerium"),  # soft hyphen dropped
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("👨\u200d👩\u200d👧 family", "👨👩👧 family"),  # zero-width joiners dropped
        ("👍🏽 😀", "👍🏽 😀"),
        ("\u1fef", "`"),  # Greek varia folds to a backtick, which is not folded again
        ("x\u1fefy`", "x`y'"),
        ("lone \ud800 surrogate", "lone \ud800 surrogate"),
    ],
)
def test_tricky_text(text: str, folded: str) -> None:
    assert fold(text).text == folded
    assert_same_as_reference(text)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("Blinken in München.", "münchen"),
        ("Blinken in München.", "blinken"),
        ("Die Außenministerin in Straßburg", "straßburg"),
        ("Die Au\u00adßen\u00administerin in Straßburg", "straßburg"),
        ("ﬁrst ﬂight to Zürich", "zürich"),
        ("İzmir ve İstanbul", "İstanbul"),  # folds to "i" and a combining dot
        ("家族👨\u200d👩\u200d👧 Wang Yi’s visit", "wang yi"),
    ],
)
def test_a_word_found_in_folded_text_maps_back_to_its_source(text: str, word: str) -> None:
    folded = fold(text)
    needle = fold(word).text
    start = folded.text.index(needle)
    source_start, source_end = folded.span_in_source(start, start + len(needle))
    assert fold(text[source_start:source_end]).text == needle


def test_curly_quotes_and_dashes_fold_to_one_ascii_character_each() -> None:
    """Text that is ASCII once they are made plain is folded by replacing them; each folds to
    the one ASCII character the character-by-character fold gives."""
    for char, plain in normalise._PLAIN_PUNCTUATION:
        assert reference_char(char) == plain and plain.isascii() and len(plain) == 1
    text = "“Blinken’s” ‘visit’ — 2023–2024 `ok`"
    assert fold(text).text == reference_fold(text)[0] == "\"blinken's\" 'visit' - 2023-2024 'ok'"


def test_offsets_are_not_stored_when_every_character_folds_to_one() -> None:
    assert fold("Blinken’s “visit” to Zürich").origin == range(27)
    assert isinstance(fold("plain ascii").origin, range)


@pytest.mark.parametrize("text", ["Straße", "ab\u00adcd", "ﬁ\u200dx", "Blinken"])
def test_out_of_range_spans_fail_as_before(text: str) -> None:
    folded: FoldedText = fold(text)
    _, origin = reference_fold(text)
    length = len(folded.text)
    for start, end in [(length, length + 1), (length + 1, 2), (0, length + 2)]:
        with pytest.raises(IndexError):
            reference_span(origin, start, end)
        with pytest.raises(IndexError):
            folded.span_in_source(start, end)
    assert folded.span_in_source(-1, 0) == reference_span(origin, -1, 0)
