"""The query language: a table of queries over one real article, and the errors a bad query
gets (with the rule's name and the position in the query)."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from conftest import DATA, REPO

from monitor.config import RuleConfig
from monitor.errors import ConfigError, ParseError
from monitor.matcher import Matcher
from monitor.models import Article
from monitor.parse import parse_feed, read_document
from monitor.rules import (
    ArticleView,
    QueryError,
    RuleSet,
    WordsClause,
    compile_query,
    compile_rules,
)
from monitor.watchlist import load_watchlist

WATCHLIST = load_watchlist([REPO / "seeds" / "watchlist.toml"])
ARTICLE = read_document(DATA / "articles" / "pos01.json")  # Blinken meets Wang Yi, spy balloon
PUBLISHED = datetime(2023, 2, 18, 23, 57, 58, tzinfo=UTC)
VIEW = ArticleView(ARTICLE, Matcher(WATCHLIST).find(ARTICLE), now=PUBLISHED + timedelta(hours=1))


def holds(query: str, view: ArticleView = VIEW) -> bool:
    return compile_query(query, WATCHLIST).clause.test(view) is not None


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
        # proximity: "Wang Yi, on Saturday in Munich"
        ("munich NEAR/1 saturday", True),
        ("munich NEAR/0 saturday", False),
        ('"wang yi" NEAR/3 munich', True),
        ('"wang yi" NEAR/2 munich', False),
        ("actor:wang-yi NEAR/3 actor:munich", True),
        ("(tweet OR munich) NEAR/1 saturday", True),
        ("munich NEAR/1 saturday NEAR/4 wang", True),
        ("munich NEAR/1 saturday actor:xi-jinping", False),  # NEAR, and Xi side by side
        # one sentence: Blinken and Wang Yi meet in the second paragraph's first sentence
        ("SENTENCE(actor:antony-blinken actor:wang-yi)", True),
        ("SENTENCE(actor:wang-yi munich)", True),
        ("SENTENCE(munich tweet)", False),  # both in the text, in different sentences
        ("munich tweet", True),
        ("SENTENCE(actor:antony-blinken NOT munich)", True),  # the tweet's sentence
        ("SENTENCE(munich NOT actor:antony-blinken)", False),
        ("text:SENTENCE(actor:antony-blinken actor:wang-yi)", True),
        ("title:SENTENCE(actor:antony-blinken munich)", False),
        ("SENTENCE(actor:antony-blinken actor:wang-yi) AND topic:spy-balloon", True),
        # at least k of n
        ("ATLEAST(2, munich tweet basketball)", True),
        ("ATLEAST(3, munich tweet basketball)", False),
        ("ATLEAST(1, topic:taiwan topic:spy-balloon)", True),
        # regular expressions (RE2), whole words, ignoring case
        ("/munich|berlin/", True),
        ("/condemn(ed)?/", True),
        ("/condemn/", False),  # "condemned": not a whole word
        ("/condemn\\w*/", True),
        ("/BLINKEN/", True),
        ("/sanction(s|ed)?/", False),
        ("title:/diplomat/", True),
        # topic scores: the spy balloon is named in the title (counts twice) and the text
        ("topic:spy-balloon^2", True),
        ("topic:spy-balloon^50", False),
        # the article itself
        ("published:>now-2d", True),
        ("published:<now-2d", False),
        ("published:2023-02-18", True),
        ("published:2023-02-19", False),
        ("published:[2023-02-01 TO 2023-02-28]", True),
        ("published:>=2023-03-01", False),
        ("published:>2023-02-18T23:00:00Z", True),
        ("lang:en", False),  # the item does not say
        # a day stands for the whole day at either end of a range
        ("published:[2023-02-01 TO 2023-02-18]", True),
        ("published:<=2023-02-18", True),
        ("published:<2023-02-18", False),
        ("published:>2023-02-18", False),
        ("published:>=2023-02-18", True),
        ("published:{2023-02-18 TO *]", False),
        ("published:[* TO 2023-02-18]", True),
        ('published:>="2023-02-19T00:30:00+01:00"', True),  # 23:30 UTC, before 23:57
        # a mention is not near itself, and NEAR works inside ATLEAST
        ("(munich OR berlin) NEAR/0 (munich OR berlin)", False),
        ("ATLEAST(1, munich NEAR/0 saturday)", False),
        ("ATLEAST(1, munich NEAR/1 saturday)", True),
        ("munich near/1 saturday", True),
        # RE2 finds the longest alternative, so whole words are not missed
        ("/condemn|condemned/", True),
        # operators are not rewritten inside phrases and regular expressions
        ('"munich NEAR/3 saturday"', False),
        ("/SENTENCE(x)/", False),
    ],
)
def test_queries(query: str, expected: bool) -> None:
    assert holds(query) is expected


def test_language_and_relative_dates_read_the_article() -> None:
    article = Article(title="Blinken in Beijing", lang="en-US", published=PUBLISHED)
    mentions = Matcher(WATCHLIST).find(article)
    assert holds("lang:en", ArticleView(article, mentions))
    assert not holds("lang:zh", ArticleView(article, mentions))
    later = ArticleView(article, mentions, now=PUBLISHED + timedelta(days=3))
    assert holds("published:<now-2d", later) and not holds("published:>now-2d", later)
    undated = Article(title="Blinken in Beijing")  # judged as published when it is read
    assert holds("published:>now-1h", ArticleView(undated, ()))


def test_sentences_in_chinese() -> None:
    article = Article(
        title="", text="布林肯会见王毅。双方谈到台湾。习近平随后会见布林肯。", lang="zh"
    )
    view = ArticleView(article, Matcher(WATCHLIST).find(article))
    assert holds("SENTENCE(actor:antony-blinken actor:wang-yi)", view)
    assert holds("SENTENCE(actor:antony-blinken actor:xi-jinping)", view)
    assert not holds("SENTENCE(actor:wang-yi actor:xi-jinping)", view)


def test_rules_refer_to_rules_and_named_queries() -> None:
    rules = compile_rules(
        [
            RuleConfig(name="core", query="rule:principals AND topic:spy-balloon"),
            RuleConfig(name="quiet", query="rule:core NOT munich", enabled=False),
        ],
        WATCHLIST,
        "x",
        queries={"principals": "actor:antony-blinken OR actor:xi-jinping"},
    )
    assert [h.rule for h in rules.evaluate(ARTICLE, VIEW.mentions)] == ["core"]
    assert rules.get("quiet").clause.test(VIEW) is None  # type: ignore[union-attr]
    # a rule's version changes with the queries it refers to
    changed = compile_rules(
        [RuleConfig(name="core", query="rule:principals AND topic:spy-balloon")],
        WATCHLIST,
        "x",
        queries={"principals": "actor:antony-blinken"},
    )
    assert changed.rules[0].version != rules.rules[0].version
    assert len(rules.rules[0].version) == 12


def test_a_reference_loop_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_rules(
            [RuleConfig(name="a", query="rule:b OR munich"), RuleConfig(name="b", query="rule:a")],
            WATCHLIST,
            "x",
        )
    assert "refers back to itself (a → b → a)" in str(caught.value)


def test_author_restricts_a_clause_to_the_byline() -> None:
    article = Article(
        title="Blinken in Munich",
        text="Antony Blinken met Wang Yi.",
        author="Patrick Wintour, diplomatic editor",
    )
    view = ArticleView(article, Matcher(WATCHLIST).find(article))
    assert holds("author:wintour", view) and holds('author:"diplomatic editor"', view)
    assert not holds("author:munich", view) and not holds("author:blinken", view)
    assert not holds("wintour", view)  # bare words read the title, summary and text


def test_words_in_a_query_ignore_accents_and_case_as_the_text_does() -> None:
    article = Article(title="ZÜRICH talks", text="Delegates left Zurich for São Paulo.")
    view = ArticleView(article, ())
    for query in ("zurich", "Zürich", '"sao paulo"', "/s[aã]o/", "zür*", "/ZURICH/"):
        assert holds(query, view), query
    assert not holds("zürichsee", view)


def test_explain_shows_which_clause_failed() -> None:
    rule = compile_query(
        "actor:antony-blinken AND (topic:taiwan OR tweet) AND NOT munich", WATCHLIST
    )
    outcome = rule.explain(VIEW)
    assert not outcome.holds
    parts = {p.clause: p.holds for p in outcome.parts}
    assert parts == {
        "actor:antony-blinken": True,
        "topic:taiwan OR tweet": True,
        "NOT munich": False,
    }
    either = outcome.parts[1]
    assert [(p.clause, p.holds) for p in either.parts] == [("topic:taiwan", False), ("tweet", True)]


def test_explain_writes_a_field_clause_with_its_field() -> None:
    """ "munich" is in the text of the article, not in its title."""
    outcome = compile_query("title:munich OR text:(actor:wang-yi munich)", WATCHLIST).explain(VIEW)
    assert [(p.clause, p.holds) for p in outcome.parts] == [
        ("title:munich", False),
        ("text:(actor:wang-yi munich)", True),
    ]
    assert [p.clause for p in outcome.parts[1].parts] == ["actor:wang-yi", "munich"]


def test_evidence_names_what_matched() -> None:
    evidence = compile_query("actor:wang-yi AND munich", WATCHLIST).clause.test(VIEW)
    assert evidence is not None
    assert {(m.kind, m.id, m.text) for m in evidence} >= {
        ("actor", "wang-yi", "Wang Yi"),
        ("term", "munich", "Munich"),
    }
    for m in evidence:
        assert ARTICLE.field_text(m.field)[m.start : m.end] == m.text  # type: ignore[arg-type]


_SENTENCE_EVIDENCE = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from monitor.matcher import Matcher
from monitor.parse import read_document
from monitor.rules import ArticleView, compile_query
from monitor.watchlist import load_watchlist
watchlist = load_watchlist([Path("seeds/watchlist.toml")])
article = read_document(Path(sys.argv[1]))
view = ArticleView(article, Matcher(watchlist).find(article), now=datetime(2023, 2, 19, tzinfo=UTC))
evidence = compile_query("SENTENCE(actor:antony-blinken)", watchlist).clause.test(view)
print(" ".join(dict.fromkeys(m.field for m in evidence)))
"""


def test_sentence_evidence_is_in_reading_order_whatever_the_hash_seed() -> None:
    """Blinken is in the title and the text: the evidence lists the title's sentence first in
    every process (Python seeds the hashes of strings afresh in each)."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _SENTENCE_EVIDENCE, str(DATA / "articles" / "pos01.json")],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(1, 7)
    ]
    assert [run.communicate(timeout=120)[0].split() for run in runs] == [["title", "text"]] * 6


@pytest.mark.parametrize(
    ("title", "text"),
    [
        ("Chips", "Über Chips: ÄND the chipmakers"),  # accents, folded
        ("Чипы и chips", "😀 chips, 🇨🇳 Chipmakers und ünd"),  # characters of two and four bytes
        ("chips \ud800", "\udc00 chipmakers \udfff und"),  # lone surrogates (UTF-8 cannot hold)
    ],
)
def test_regular_expressions_give_spans_in_characters(title: str, text: str) -> None:
    """RE2 searches the folded text by its UTF-8 bytes; the evidence points at characters."""
    article = Article(title=title, text=text)
    query = "/chips?|chipmakers?|und/"
    evidence = compile_query(query, WATCHLIST).clause.test(ArticleView(article, ()))
    assert evidence is not None
    found = [(m.field, m.text.lower()) for m in evidence]
    expected = [
        (name, word)
        for name in ("title", "text")
        for word in re.findall(r"\w+", article.field_text(name).lower())  # type: ignore[arg-type]
        if word in ("chip", "chips", "chipmaker", "chipmakers", "und", "ünd")
    ]
    assert found == expected
    for m in evidence:
        assert article.field_text(m.field)[m.start : m.end] == m.text  # type: ignore[arg-type]


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
        ("SENTENCE(actor:nobody)", "unknown actor id 'nobody'", 15),
        ("munich AND ATLEAST(2, actor:nobody)", "unknown actor id 'nobody'", 28),
        ("ATLEAST(3, munich tweet)", "has 2 clauses", 0),
        ("munich NEAR/3", "NEAR/n needs a clause on each side", 7),
        ("NEAR/3 munich", "NEAR/n needs a clause on each side", 0),
        ("tweet AND munich NEAR/3 saturday", "put parentheses around 'tweet AND munich'", 0),
        ("/(i?)blinken/", "'(i?)' matches an optional letter i", 0),
        ("/(I?)blinken/", "'(i?)' matches an optional letter i", 0),
        ("author:(actor:antony-blinken)", "actor: inside author: can never match", 8),
        ("url:(tweet OR topic:taiwan)", "topic: inside url: can never match", 14),
        ("a" + "?" * 400, "bad wildcard: pattern too large", 0),
        ("/(blinken/", "bad regular expression: missing )", 0),
        ("published:>2d", "'2d' is not a time: write now-2d", 10),
        ("published:>now-2x", "is not a duration", 10),
        ("rule:nothing", "unknown rule or query 'nothing'", 5),
        ("actor:antony-blinken^2", "applies to topic: only", 6),
        ('"blinken wang"~5', "use NEAR/n", 0),
        ("published:*", "published:* is any date", 10),
        ("munich OR NEAR/3", "NEAR/n needs a clause on each side", 10),
        ("lang:en NEAR/3 munich", "NEAR/n needs clauses that name words", 0),
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


@pytest.mark.parametrize(
    ("query", "needs"),
    [
        ("actor:antony-blinken", {"antony-blinken"}),
        ("actor:antony-blinken AND munich", {"antony-blinken"}),
        ("actor:antony-blinken AND (actor:wang-yi OR actor:qin-gang)", {"antony-blinken"}),
        ("(actor:wang-yi OR actor:qin-gang) AND actor:xi-jinping", {"xi-jinping"}),
        ("actor:wang-yi OR topic:taiwan", {"wang-yi", "taiwan"}),
        ("actor:wang-yi OR munich", {"wang-yi", "munich"}),  # or a word that may hold
        ("actor:wang-yi AND munich", {"wang-yi"}),  # actors and topics first
        ("ATLEAST(2, sanction* tariff* munich)", {"sanction*", "tariff*", "munich"}),
        ("actor:wang-yi OR lang:en", None),
        (
            "ATLEAST(2, actor:wang-yi topic:taiwan topic:fentanyl)",
            {"wang-yi", "taiwan", "fentanyl"},
        ),
        ("topic:taiwan NEAR/5 (military OR drills)", {"taiwan"}),
        ("SENTENCE(actor:antony-blinken actor:wang-yi)", {"antony-blinken"}),
        ("title:actor:antony-blinken", {"antony-blinken"}),
        ("NOT actor:antony-blinken", None),
        ("actor:antony-blinken AND NOT topic:taiwan", {"antony-blinken"}),
        ("lang:en AND published:>now-2d", None),
        ("lang:en AND (actor:xi-jinping OR topic:taiwan)", {"xi-jinping", "taiwan"}),
        ("/blinken/", {"/blinken/"}),
        ("munich NOT title:deal", {"munich"}),
    ],
)
def test_what_a_query_needs_the_article_to_have(query: str, needs: set[str] | None) -> None:
    """Actors and topics by id, word clauses as written."""
    found = compile_query(query, WATCHLIST).clause.needs_one_of
    names = (
        None if found is None else {n.label if isinstance(n, WordsClause) else n[1] for n in found}
    )
    assert names == needs


def test_a_query_with_a_lone_surrogate_is_tested() -> None:
    """A query given on the command line may hold a lone surrogate (an undecodable byte)."""
    query = compile_query('"x\udc80y" OR tweet', WATCHLIST)
    hit = query.evaluate(ArticleView(Article(title="a x\udc80y b", text=""), ()))
    assert hit is not None and [m.text for m in hit.mentions] == ["x\udc80y"]


def test_a_lone_surrogate_in_a_wildcard_or_a_regular_expression_is_read_as_the_text_is() -> None:
    article = Article(title="chip\udcffs and more", text="")
    for query in ("chip\udcff*", "/chip\udcffs/"):
        hit = compile_query(query, WATCHLIST).evaluate(ArticleView(article, ()))
        assert hit is not None and [m.text for m in hit.mentions] == ["chip\udcffs"], query


def test_a_wildcard_cannot_hang_the_daemon() -> None:
    """Wildcards run on RE2, as regular expressions do: on an engine that backtracks, this one
    takes minutes over a word of seventy letters."""
    word = "a" * 5000
    article = Article(title="", text=f"{word} {word}c")
    hit = compile_query("*a*a*a*a*a*a*c", WATCHLIST).evaluate(ArticleView(article, ()))
    assert hit is not None and [m.text for m in hit.mentions] == [f"{word}c"]


def test_a_wildcard_stands_for_letters_of_any_script() -> None:
    article = Article(title="", text="Новые санкции против Ирана; 制裁措施; sanctions_list")
    found = {
        query: [m.text for m in hit.mentions] if hit else []
        for query in ("санкци*", "ира?а", "sanction*")
        for hit in [compile_query(query, WATCHLIST).evaluate(ArticleView(article, ()))]
    }
    # "_" is not a letter: a wildcard stops at it, as a word does
    assert found == {"санкци*": ["санкции"], "ира?а": ["Ирана"], "sanction*": ["sanctions"]}


# A rule set with every operator, some rules needing entities and some not.
EVERY_KIND_OF_RULE = [
    ("leaders", "actor:joe-biden AND actor:xi-jinping"),
    ("summit", 'rule:leaders AND (summit OR "state visit" OR meet*)'),
    (
        "diplomacy",
        "(actor:antony-blinken OR actor:wang-yi) AND (topic:taiwan OR topic:spy-balloon)",
    ),
    ("military", "topic:taiwan NEAR/5 (military OR drills OR warships)"),
    ("fentanyl", 'SENTENCE(topic:fentanyl (talks OR cooperation OR "working group"))'),
    ("trade", 'ATLEAST(2, sanction* tariff* "export controls" blacklist)'),
    ("chips", "topic:chips-export-controls OR /semiconductors?|chipmakers?/"),
    ("fresh", "lang:en AND published:>2023-01-01 AND (actor:xi-jinping OR topic:taiwan)"),
    ("headline", "title:(topic:spy-balloon OR balloon) NOT title:basketball"),
    ("not-blinken", "actor:wang-yi AND NOT actor:antony-blinken"),
    ("atleast", "ATLEAST(2, actor:wang-yi actor:antony-blinken topic:taiwan)"),
    ("anything", "lang:en OR NOT actor:antony-blinken"),
]


def test_rules_not_tested_are_those_that_cannot_hold() -> None:
    """The rule set leaves out the rules whose article has none of what they need (actors
    and topics it mentions, word clauses the word filter does not rule out): on every real
    article (labelled items, the seed corpus, every item of the real feeds), it finds what
    testing every rule finds."""
    configs = [
        RuleConfig(name=name, query=query)
        for name, query in [
            *EVERY_KIND_OF_RULE,
            *((f"w{i}", q) for i, q in enumerate(WORD_CLAUSES)),
        ]
    ]
    rules = compile_rules(configs, WATCHLIST, "x")
    matcher = Matcher(WATCHLIST)
    articles = _real_articles()
    skipped = by_words = held = 0
    for article in articles:
        mentions = matcher.find(article)
        view = ArticleView(article, mentions, now=PUBLISHED)
        every = tuple(h for h in (r.evaluate(view) for r in rules.rules) if h is not None)
        assert rules.evaluate(article, mentions, now=PUBLISHED) == every, article.title
        named = {(m.kind, m.id) for m in mentions}
        filtered = ArticleView(article, mentions, now=PUBLISHED, words=rules.words)
        present = named | filtered.words_present(rules.words)
        for rule in rules.rules:
            needs = rule.clause.needs_one_of
            if needs is not None and needs.isdisjoint(present):
                skipped += 1
                by_words += not needs.isdisjoint(rules.words.index)
        held += len(every)
    # all ways were taken, many times
    assert skipped > 10 * len(articles) and by_words > len(articles) and held > len(articles)


# Word clauses of every kind: words, phrases with punctuation, wildcards, words in other
# scripts, and regular expressions with and without a literal every match holds.
WORD_CLAUSES = [
    "china",
    "u.s.",
    '"export controls"',
    "sanction*",
    "ball??n",
    "*ing",
    "über",
    "politique",
    "外交部",
    "москва",
    "title:police",
    "/semiconductors?|chipmakers?/",
    "/\\d{4}/",
    "/[0-9]+ (?:people|persons)/",
    "/new\\s+york/",
    "/é\\w+/",
]


def _real_articles() -> list[Article]:
    """The labelled items, the seed corpus and every item of the real feeds (many languages)."""
    paths = sorted((DATA / "labelled").glob("*.json")) + sorted((REPO / "seeds/corpus").glob("*"))
    articles = [read_document(path) for path in paths]
    for path in sorted((DATA / "feeds" / "real").iterdir()):
        try:
            articles.extend(parse_feed(path.read_bytes(), source=path.name).articles)
        except ParseError:
            continue
    return articles


def test_the_word_filter_leaves_out_only_clauses_that_cannot_hold() -> None:
    """One pass of the rule set's word filter over a field tells which word clauses may hold
    there; every clause holds on every real article exactly where it holds when it searches
    each field itself, and the filter does leave many out."""
    configs = [RuleConfig(name=f"w{i}", query=q) for i, q in enumerate(WORD_CLAUSES)]
    rules = compile_rules(configs, WATCHLIST, "x")
    assert len(rules.words.index) == len(WORD_CLAUSES)
    left_out = held = 0
    for article in _real_articles():
        filtered = ArticleView(article, (), now=PUBLISHED, words=rules.words)
        searched = ArticleView(article, (), now=PUBLISHED)
        for rule in rules.rules:
            evidence = rule.clause.test(filtered)
            assert evidence == rule.clause.test(searched), (rule.query, article.title)
            held += evidence is not None
        for clause, index in rules.words.index.items():
            for name in clause.fields:
                if article.field_text(name):  # type: ignore[arg-type]
                    left_out += index not in rules.words.possible(filtered.folded(name).text)
    assert held > 100 and left_out > 1000


def test_the_word_filter_always_passes_what_it_cannot_rule_out() -> None:
    """A pattern without a literal every match holds is a candidate in every text; a word
    with a lone surrogate (from a query on the command line: RE2 cannot read it) is left to
    search for itself; the rest are candidates only where their literal is."""
    rules = [compile_query(q, WATCHLIST) for q in ("/\\d{4}/", "deal", '"x\udc80y"')]
    words = RuleSet(tuple(rules)).words
    year, deal = (words.index[r.clause] for r in rules[:2])
    assert rules[2].clause not in words.index
    assert words.possible("no digits here") == {year}
    assert words.possible("a DEAL, x\udc80y") == {year, deal}
    view = ArticleView(Article(title="a deal in x\udc80y", text=""), (), words=words)
    assert [r.evaluate(view) is not None for r in rules] == [False, True, True]


def test_a_rule_set_with_too_many_words_for_one_filter_searches_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RE2 caps the memory of one set: past some thousands of words the word filter cannot be
    built, and each word searches the text on its own, as without a filter."""
    rng = random.Random(0)
    words = list(
        dict.fromkeys(
            "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(5, 9)))
            for _ in range(16_000)
        )
    )
    configs = [
        RuleConfig(name=f"r{i}", query=" OR ".join(words[start : start + 100]))
        for i, start in enumerate(range(0, len(words), 100))
    ]
    with caplog.at_level("WARNING", logger="monitor.rules"):
        rules = compile_rules(configs, WATCHLIST, "x")
    assert "too many to look for in one pass" in caplog.text
    assert not rules.words.index and len(rules.words.unfiltered) == len(words)
    article = Article(title=f"{words[5]} and", text=f"then {words[-1]}.")
    assert [h.rule for h in rules.evaluate(article, ())] == ["r0", configs[-1].name]


def test_a_syntax_error_names_one_position() -> None:
    with pytest.raises(QueryError) as caught:
        compile_query("SENTENCE(munich tweet))", WATCHLIST)
    assert "position" not in str(caught.value).split(" at position")[0]
    assert caught.value.position == 22


def test_an_error_in_a_referenced_rule_is_reported_where_it_is() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_rules(
            [
                RuleConfig(name="a", query="rule:b munich"),
                RuleConfig(name="b", query="actor:nobody"),
            ],
            WATCHLIST,
            "x",
        )
    problems = [str(p) for p in caught.value.problems]
    assert problems == [
        "x: rules[0] (a).query: rule:b cannot be used: its query has an error at position 5",
        "x: rules[1] (b).query: unknown actor id 'nobody' (not in the watchlist) at position 6",
    ]


def test_explain_writes_a_near_as_it_was_written() -> None:
    outcome = compile_query("(munich OR deal) NEAR/5 actor:wang-yi", WATCHLIST).explain(VIEW)
    assert outcome.clause == "(munich OR deal) NEAR/5 actor:wang-yi"
