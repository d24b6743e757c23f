"""Where ``NEAR`` counts words from: ``_word_starts`` against its definition, a regular
expression of word runs and single ideographs, on arbitrary text and on cases that take each
way through it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from texts import THOROUGHLY, texts

from monitor.rules import _word_starts

IDEOGRAPHS = "\u2e80-\u9fff\uf900-\ufaff"
WORD = re.compile(f"[{IDEOGRAPHS}]|[^\\W{IDEOGRAPHS}]+")


def reference_starts(text: str) -> list[int]:
    return [m.start() for m in WORD.finditer(text)]


TRICKY = "  aZ09_-.,'\"\n\téÉдΣ\u0301\u00a0\u2019\u201c…€²Ⅻ٣习近平。ก\U0002a6d6\U0001f600\ud800"


@THOROUGHLY
@given(texts(TRICKY))
def test_word_starts_is_the_regular_expression(text: str) -> None:
    assert _word_starts(text) == reference_starts(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("   ", []),
        ("Blinken met Wang Yi", [0, 8, 12, 17]),
        ("  Blinken's  trip.", [2, 10, 13]),
        ("“Taiwan,” he said — twice", [1, 10, 13, 20]),
        ("snake_case and x2", [0, 11, 15]),
        ("Лавров и Ван И", [0, 7, 9, 13]),
        ("e\u0301te\u0301", [0, 2]),  # a combining mark is not a letter
        ("习近平会见Blinken", [0, 1, 2, 3, 4, 5]),
        ("\ud800a", [1]),
    ],
)
def test_word_starts_cases(text: str, expected: list[int]) -> None:
    assert _word_starts(text) == expected == reference_starts(text)
