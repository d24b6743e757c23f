"""Rules: Lucene-style boolean queries over an article and its mentions.

The syntax is that of Lucene/Elasticsearch query strings, parsed with luqum:

    actor:antony-blinken AND (topic:taiwan OR "spy balloon") NOT title:basketball

``actor:ID`` and ``topic:ID`` are true when matching found that actor or topic; bare words and
``"exact phrases"`` are looked up as whole words in the title, summary and text (``*`` and ``?``
are wildcards inside a word); ``title:``, ``summary:``, ``text:``, ``source:``, ``url:`` and
``author:`` restrict a word, phrase, actor or topic to one field. ``AND``, ``OR``, ``NOT``,
``+``/``-`` and parentheses combine them; terms side by side without an operator must all hold
(AND), as analysts expect from media-monitoring tools.

A query is compiled once, at start-up: a syntax error, an unknown actor or topic id, or an
unsupported construct is a ``QueryError`` naming the position in the query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from luqum import tree
from luqum.exceptions import IllegalCharacterError, ParseError
from luqum.parser import parser as lucene_parser

from monitor.config import RuleConfig
from monitor.errors import ConfigError, MonitorError, Problem
from monitor.matcher import ends_word, starts_word
from monitor.models import TEXT_FIELDS, Article, Mention, RuleHit
from monitor.normalise import FoldedText, fold, fold_string
from monitor.watchlist import Watchlist

#: Fields a word, phrase, actor or topic can be restricted to.
SCOPE_FIELDS = ("title", "summary", "text", "source", "url", "author")
_POSITION = re.compile(r"position (\d+)")

Evidence = tuple[Mention, ...]
Test = Callable[["ArticleView"], Evidence | None]  # None: false; a tuple: true, with evidence


class QueryError(MonitorError):
    """A query that cannot be compiled, and where (0-based character offset)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where}")


class ArticleView:
    """An article prepared once for evaluating every rule: folded fields, mentions by entity."""

    def __init__(self, article: Article, mentions: Sequence[Mention]) -> None:
        self.article = article
        self.mentions = tuple(mentions)
        self._folded: dict[str, FoldedText] = {}

    def folded(self, name: str) -> FoldedText:
        if name not in self._folded:
            self._folded[name] = fold(getattr(self.article, name) or "")
        return self._folded[name]

    def mentions_of(self, kind: str, entity_id: str, scope: str | None) -> Evidence:
        return tuple(
            m
            for m in self.mentions
            if m.kind == kind and m.id == entity_id and (scope is None or m.field == scope)
        )


@dataclass(frozen=True)
class Rule:
    name: str
    query: str
    channels: tuple[str, ...]
    enabled: bool
    test: Test = field(repr=False, compare=False)

    def evaluate(self, view: ArticleView) -> RuleHit | None:
        evidence = self.test(view)
        return None if evidence is None else RuleHit(self.name, _distinct(evidence))


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]

    def evaluate(self, article: Article, mentions: Sequence[Mention]) -> tuple[RuleHit, ...]:
        """The enabled rules this article satisfies."""
        view = ArticleView(article, mentions)
        hits = (rule.evaluate(view) for rule in self.rules if rule.enabled)
        return tuple(hit for hit in hits if hit is not None)

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


def compile_rules(configs: Sequence[RuleConfig], watchlist: Watchlist, origin: str) -> RuleSet:
    """Compile every rule; all problems are raised together, each naming rule and position."""
    rules, problems = [], []
    for index, config in enumerate(configs):
        try:
            test = compile_query(config.query, watchlist)
        except QueryError as exc:
            where = f"{origin}: rules[{index}] ({config.name}).query"
            problems.append(Problem(where, str(exc)))
            continue
        rules.append(Rule(config.name, config.query, config.channels, config.enabled, test))
    if problems:
        raise ConfigError(problems)
    return RuleSet(tuple(rules))


def compile_query(query: str, watchlist: Watchlist) -> Test:
    """Parse and compile one query against the watchlist."""
    try:
        parsed = lucene_parser.parse(query)
    except (ParseError, IllegalCharacterError) as exc:
        found = _POSITION.search(str(exc))
        message = str(exc).split(":", 1)[-1].strip().rstrip("!") or "syntax error"
        raise QueryError(
            f"syntax error: {message}".replace(" at position", " near position"),
            int(found.group(1)) if found else None,
        ) from exc
    except Exception as exc:  # luqum raises bare exceptions for some truncated input
        raise QueryError(f"syntax error: {exc or 'unexpected end of query'}") from exc
    return _Compiler(watchlist).compile(parsed, scope=None)


class _Compiler:
    def __init__(self, watchlist: Watchlist) -> None:
        self.watchlist = watchlist

    def compile(self, node: tree.Item, scope: str | None) -> Test:
        if isinstance(node, tree.SearchField):
            return self._field(node, scope)
        if isinstance(node, tree.Group | tree.FieldGroup | tree.Plus):
            return self.compile(node.children[0], scope)
        if isinstance(node, tree.Not | tree.Prohibit):
            return _not(self.compile(node.children[0], scope))
        if isinstance(node, tree.OrOperation):
            return _any([self.compile(c, scope) for c in node.children])
        if isinstance(node, tree.AndOperation | tree.UnknownOperation):
            return _all([self.compile(c, scope) for c in node.children])
        if isinstance(node, tree.Word | tree.Phrase):
            return _words(_term_text(node), scope)
        raise QueryError(f"{type(node).__name__.lower()} ({node}) is not supported", node.pos)

    def _field(self, node: tree.SearchField, scope: str | None) -> Test:
        name, child = node.name.lower(), node.expr
        if name in ("actor", "topic"):
            return self._entity(name, child, scope)
        if name not in SCOPE_FIELDS:
            known = ", ".join(("actor", "topic", *SCOPE_FIELDS))
            raise QueryError(f"unknown field {node.name!r} (fields: {known})", node.pos)
        if scope is not None and scope != name:
            raise QueryError(f"{name}: inside {scope}: can never match", node.pos)
        return self.compile(child, name)

    def _entity(self, kind: str, node: tree.Item, scope: str | None) -> Test:
        if not isinstance(node, tree.Word):
            raise QueryError(f"{kind}: takes one id, e.g. {kind}:some-id", node.pos)
        entity = self.watchlist.get("actor" if kind == "actor" else "topic", node.value)
        if entity is None:
            raise QueryError(f"unknown {kind} id {node.value!r} (not in the watchlist)", node.pos)

        def has_entity(view: ArticleView) -> Evidence | None:
            return view.mentions_of(kind, entity.id, scope) or None

        return has_entity


def _term_text(node: tree.Word | tree.Phrase) -> str:
    value = str(node.value)
    return value[1:-1] if isinstance(node, tree.Phrase) else value


def _words(text: str, scope: str | None) -> Test:
    folded = fold_string(text).strip()
    wildcard = "*" in folded or "?" in folded
    pattern = re.compile(
        "".join(r"\w*" if c == "*" else r"\w" if c == "?" else re.escape(c) for c in folded)
    )
    fields: tuple[str, ...] = (scope,) if scope else TEXT_FIELDS

    def has_words(view: ArticleView) -> Evidence | None:
        found = []
        for name in fields:
            haystack = view.folded(name)
            for start, end in _whole_word_spans(haystack.text, folded, pattern, wildcard):
                src_start, src_end = haystack.span_in_source(start, end)
                source_text = str(getattr(view.article, name) or "")[src_start:src_end]
                found.append(
                    Mention("term", text, name, src_start, src_end, source_text, text)  # type: ignore[arg-type]
                )
        return tuple(found) or None

    return has_words


def _whole_word_spans(
    text: str, needle: str, pattern: re.Pattern[str], wildcard: bool
) -> list[tuple[int, int]]:
    if not needle:
        return []
    if wildcard:
        spans = [(m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start()]
    else:
        spans, start = [], text.find(needle)
        while start >= 0:
            spans.append((start, start + len(needle)))
            start = text.find(needle, start + 1)
    return [(s, e) for s, e in spans if starts_word(text, s) and ends_word(text, e)]


def _not(test: Test) -> Test:
    def negated(view: ArticleView) -> Evidence | None:
        return () if test(view) is None else None

    return negated


def _any(tests: list[Test]) -> Test:
    def any_of(view: ArticleView) -> Evidence | None:
        results = [r for r in (t(view) for t in tests) if r is not None]
        return tuple(m for r in results for m in r) if results else None

    return any_of


def _all(tests: list[Test]) -> Test:
    def all_of(view: ArticleView) -> Evidence | None:
        evidence: list[Mention] = []
        for test in tests:
            result = test(view)
            if result is None:
                return None
            evidence.extend(result)
        return tuple(evidence)

    return all_of


def _distinct(mentions: Evidence) -> Evidence:
    return tuple(dict.fromkeys(mentions))
