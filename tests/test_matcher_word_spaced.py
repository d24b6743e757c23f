"""``word_spaced`` against its definition, one character at a time: the same text on arbitrary
text and on a table of cases that take the unusual ways through it (apostrophes at the edges
of words, possessives, combining marks, scripts without spaces, lone surrogates)."""

from __future__ import annotations

import pytest
from hypothesis import given
from texts import THOROUGHLY, texts

from monitor.matcher import is_unspaced_script, is_word_char, word_spaced


def reference_spaced(text: str) -> str:
    """Each character outside a word becomes a space: an apostrophe without a letter or digit
    on each side, the apostrophe and "s" of a possessive, any other character that is not a
    letter, digit or combining mark, and every character of a script without spaces."""
    spaced = list(text)
    for at, char in enumerate(text):
        if char == "'":
            after = text[at + 1 : at + 2]
            inside = at > 0 and is_word_char(text[at - 1]) and is_word_char(after or " ")
            if not inside:
                spaced[at] = " "
            elif after == "s" and not is_word_char(text[at + 2 : at + 3] or " "):
                spaced[at] = spaced[at + 1] = " "
        elif not is_word_char(char) or is_unspaced_script(char):
            spaced[at] = " "
    return "".join(spaced)


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
        ("''", "  "),
        ("'s", " s"),
        ("s'", "s "),
        ("blinken's trip", "blinken   trip"),
        ("blinken's", "blinken  "),
        ("davis' trip", "davis  trip"),
        ("the 'quoted' word", "the  quoted  word"),
        ("xi'an", "xi'an"),
        ("o'sullivan's", "o'sullivan  "),
        ("it's'", "it   "),
        ("x's'y", "x  'y"),  # each apostrophe is read in the text as given
        ("l'été", "l'été"),
        ("d'\u0301a", "d'\u0301a"),  # a combining mark is part of the word
        ("a\u0301's b", "a\u0301   b"),
        ("a's\u0301", "a's\u0301"),
        ("…'s", "  s"),
        ("a'…", "a  "),
        ("习近平's visit", "      visit"),
        ("中'a", " 'a"),
        ("美国国务卿blinken", "     blinken"),
        ("กรุงเทพ bangkok", "        bangkok"),
        ("русский текст, «да»", "русский текст   да "),
        ("حسنا، نعم؟", "حسنا  نعم "),
        ("\ud800's \udfff", "  s  "),
        ("a\ud800'b", "a  b"),
    ],
)
def test_word_spaced_cases(text: str, expected: str) -> None:
    assert word_spaced(text) == expected == reference_spaced(text)
