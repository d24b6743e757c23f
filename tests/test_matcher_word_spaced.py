"""``word_spaced`` against its definition, one character at a time, and the whole words found
through it against a plain search with boundary checks: on arbitrary text and on a table of
cases that take the unusual ways (apostrophes at the edges of words, possessives, combining
marks, scripts without spaces, lone surrogates)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from texts import THOROUGHLY, texts

from monitor.matcher import (
    Matcher,
    ends_word,
    is_unspaced_script,
    is_word_char,
    starts_word,
    word_spaced,
)
from monitor.normalise import clean_text, fold, fold_string
from monitor.watchlist import Entity, Watchlist


def reference_spaced(text: str) -> str:
    """Each character outside a word becomes a space: an apostrophe, any other character that
    is not a letter, digit or combining mark, and every character of a script without
    spaces."""
    return "".join(
        " " if char == "'" or not is_word_char(char) or is_unspaced_script(char) else char
        for char in text
    )


# Characters next to which an apostrophe is read one way or the other.
TRICKY = (
    "''''sssS aZ09_-.,\"éÉдאΣ\u0301\u0308\u0903\u064e\u0e31กข习近平。，…€★²Ⅻ٣"
    "\U0002a6d6\U0001f600\ud800\udfff\u00a0"
)


@THOROUGHLY
@given(texts(TRICKY))
def test_word_spaced_is_the_character_by_character_definition(text: str) -> None:
    assert word_spaced(text) == reference_spaced(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("'", " "),
        ("'s", " s"),
        ("blinken's trip", "blinken s trip"),
        ("xi'an", "xi an"),
        ("d'\u0301a", "d \u0301a"),  # a combining mark is part of a word
        ("…'s", "  s"),
        ("习近平's visit", "    s visit"),
        ("美国国务卿blinken", "     blinken"),
        ("กรุงเทพ bangkok", "        bangkok"),
        ("русский текст, «да»", "русский текст   да "),
        ("حسنا، نعم؟", "حسنا  نعم "),
        ("\ud800's \udfff", "  s  "),
    ],
)
def test_word_spaced_cases(text: str, expected: str) -> None:
    assert word_spaced(text) == expected == reference_spaced(text)


# Words and forms made of the characters next to which an apostrophe is read one way or the
# other: a letter, "s" (a possessive), a combining mark, a letter outside ASCII, an ideograph.
WORDS = ["a", "s", "as", "a\u0301", "é", "xi", "xi'an", "an", "a's", "d'a", "习"]


@THOROUGHLY
@given(
    forms=st.lists(st.sampled_from(WORDS[:-1]), min_size=1, max_size=4, unique=True),
    text=st.lists(st.one_of(st.sampled_from(WORDS), texts(TRICKY)), max_size=8).map("".join),
)
def test_whole_words_are_those_a_boundary_check_finds(forms: list[str], text: str) -> None:
    """Forms are looked up between spaces in the word-spaced text, and hits next to an
    apostrophe are checked: together, exactly the occurrences that start and end a word."""
    entities = tuple(Entity("topic", f"t{i}", form, (form,)) for i, form in enumerate(forms))
    folded = fold(clean_text(text)).text
    matcher = Matcher(Watchlist((), entities))
    found = {(start, end) for start, end, _ in matcher._whole_words(folded)}
    expected = {
        (start, start + len(key))
        for key in {fold_string(form) for form in forms}
        for start in range(len(folded))
        if folded.startswith(key, start)
        and starts_word(folded, start)
        and ends_word(folded, start + len(key))
    }
    assert found == expected
