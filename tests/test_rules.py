"""The query language: a table of queries over one real article, and the errors a bad query
gets (with the rule's name and the position in the query)."""

from __future__ import annotations

import pytest
from conftest import DATA, REPO

from monitor.config import RuleConfig
from monitor.errors import ConfigError
from monitor.matcher import Matcher
from monitor.parse import read_document
from monitor.rules import ArticleView, QueryError, compile_query, compile_rules
from monitor.watchlist import load_watchlist

WATCHLIST = load_watchlist([REPO / "seeds" / "watchlist.toml"])
ARTICLE = read_document(DATA / "articles" / "pos01.json")  # Blinken meets Wang Yi, spy balloon
VIEW = ArticleView(ARTICLE, Matcher(WATCHLIST).find(ARTICLE))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor:antony-blinken", True),
        ("actor:xi-jinping", False),
        ("topic:spy-balloon", True),
        ("actor:antony-blinken AND actor:wang-yi", True),
        ("actor:antony-blinken AND actor:xi-jinping", False),
        ("actor:xi-jinping OR topic:spy-balloon", True),
        ("actor:antony-blinken NOT topic:spy-balloon", False),
        ("actor:antony-blinken -actor:xi-jinping", True),
        ("actor:antony-blinken actor:wang-yi", True),  # side by side: AND
        ("actor:antony-blinken actor:xi-jinping", False),
        ('"spy balloon"', True),
        ('"balloon spy"', False),
        ("munich", True),
        ("muni", False),  # whole words only
        ("muni*", True),
        ("ball??n", True),
        ("MUNICH", True),
        ('title:"top diplomat"', True),
        ("title:munich", False),
        ("text:munich", True),
        ("title:actor:antony-blinken", True),
        ("title:(actor:wang-yi)", True),  # "China’s top diplomat" in the title
        ("title:(topic:spy-balloon)", True),  # "balloon", confirmed by Blinken in the title
        ("text:(actor:munich) title:(actor:munich)", False),  # Munich is in the text only
        ("source:guardian", True),
        ('url:"theguardian.com"', True),
        ("(actor:xi-jinping OR actor:wang-yi) AND (topic:spy-balloon OR topic:fentanyl)", True),
        ("NOT actor:xi-jinping", True),
    ],
)
def test_queries(query: str, expected: bool) -> None:
    assert (compile_query(query, WATCHLIST)(VIEW) is not None) is expected


def test_evidence_names_what_matched() -> None:
    evidence = compile_query("actor:wang-yi AND munich", WATCHLIST)(VIEW)
    assert evidence is not None
    assert {(m.kind, m.id, m.text) for m in evidence} >= {
        ("actor", "wang-yi", "Wang Yi"),
        ("term", "munich", "Munich"),
    }
    for m in evidence:
        assert ARTICLE.field_text(m.field)[m.start : m.end] == m.text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("actor:nobody", "unknown actor id 'nobody'", 6),
        ("topic:antony-blinken", "unknown topic id 'antony-blinken'", 6),
        ("actor:antony-blinken AND (topic:taiwan", "syntax error", None),
        ("color:red", "unknown field 'color'", 0),
        ("munich~2", "fuzzy", 0),
        ("actor:(antony-blinken OR wang-yi)", "takes one id", 6),
        ("title:text:munich", "can never match", 6),
    ],
)
def test_bad_queries(query: str, message: str, position: int | None) -> None:
    with pytest.raises(QueryError) as caught:
        compile_query(query, WATCHLIST)
    assert message in str(caught.value)
    if position is not None:
        assert caught.value.position == position


def test_every_bad_rule_is_reported_with_its_name() -> None:
    rules = [
        RuleConfig(name="good", query="actor:antony-blinken"),
        RuleConfig(name="typo", query="actor:antony-blinkn"),
        RuleConfig(name="broken", query="(topic:taiwan"),
    ]
    with pytest.raises(ConfigError) as caught:
        compile_rules(rules, WATCHLIST, "my.toml")
    where = [p.where for p in caught.value.problems]
    assert where == ["my.toml: rules[1] (typo).query", "my.toml: rules[2] (broken).query"]
    assert "position 6" in str(caught.value.problems[0])


def test_disabled_rules_do_not_match() -> None:
    rules = compile_rules(
        [RuleConfig(name="off", query="actor:antony-blinken", enabled=False)], WATCHLIST, "x"
    )
    assert rules.evaluate(ARTICLE, VIEW.mentions) == ()
