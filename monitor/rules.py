"""Rules: boolean queries over an article and its mentions, each clause able to say why.

The syntax is that of Lucene/Elasticsearch query strings, parsed with luqum, plus a few
operators media-monitoring tools have:

    actor:antony-blinken NEAR/10 actor:wang-yi AND (topic:taiwan^3 OR "spy balloon")

``actor:ID`` and ``topic:ID`` are true when matching found that actor or topic (``topic:ID^3``:
with a score of at least 3). Bare words and ``"exact phrases"`` are whole words in the title,
summary or text; ``*`` and ``?`` are wildcards inside a word; ``/regular expression/`` runs on
RE2 (linear time). All of them ignore case and accents. ``title:``, ``summary:``, ``text:``,
``source:``, ``url:`` and ``author:`` restrict a clause to one field; ``lang:en`` and
``published:>now-2d`` (or a date, or a range) test the article itself.

``AND``, ``OR``, ``NOT``, ``+``/``-`` and parentheses combine clauses, and clauses side by side
must all hold. ``A NEAR/n B`` holds when A and B are at most n words apart, ``SENTENCE(…)`` when
its clauses all hold within one sentence, ``ATLEAST(k, …)`` when at least k of its clauses hold,
and ``rule:NAME`` stands for another rule's query or a named query from ``[queries]``.

Every rule compiles once, at start-up, into a tree of clauses; a syntax error, an unknown id or
field, or a reference loop is a ``QueryError`` naming the position in the query. Evaluating a
clause returns the mentions that made it true (its evidence), or None; ``explain`` returns the
same for every clause of the tree, so a user can see which clause failed.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import logging
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import re2
import sentencex
from luqum import tree
from luqum.exceptions import IllegalCharacterError, ParseError
from luqum.parser import parser as lucene_parser

from monitor.config import RuleConfig
from monitor.durations import parse_duration
from monitor.errors import ConfigError, MonitorError, Problem
from monitor.matcher import ends_word, starts_word
from monitor.models import TEXT_FIELDS, Article, Mention, RuleHit
from monitor.normalise import (
    FoldedText,
    character_offsets,
    fold,
    fold_string,
    form_key,
    whole_characters,
)
from monitor.watchlist import Entity, Watchlist

#: Fields a word, phrase, regular expression, actor or topic can be restricted to.
SCOPE_FIELDS = ("title", "summary", "text", "source", "url", "author")
#: Fields that test the article itself.
ARTICLE_FIELDS = ("lang", "published")
log = logging.getLogger(__name__)
_POSITION = re.compile(r"position (\d+)")
# Regular expressions in rules ignore case (the text they read is folded) and, where two
# alternatives start together, take the longer: /sanction|sanctions/ finds all of "sanctions".
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.case_sensitive = False
_RE2_OPTIONS.longest_match = True
_RE2_OPTIONS.log_errors = False

Evidence = tuple[Mention, ...]
# What a clause may need an article to have: an actor or topic mentioned, as (kind, id), or a
# word clause that may hold (see ``Clause.needs_one_of``).
Need: TypeAlias = "tuple[str, str] | WordsClause"


class QueryError(MonitorError):
    """A query that cannot be compiled, and where (0-based character offset)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where}")


# --- the article, as the clauses read it ---------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A stretch of one field (a sentence) that clauses are confined to."""

    field: str
    start: int
    end: int

    def holds(self, mention: Mention) -> bool:
        return mention.field == self.field and self.start <= mention.start < self.end


class ArticleView:
    """An article prepared once for evaluating every rule: folded fields, sentences, word
    positions, computed when first asked for. ``now`` is when the article is judged (relative
    dates count from it)."""

    def __init__(
        self,
        article: Article,
        mentions: Sequence[Mention],
        now: datetime | None = None,
        words: WordFilter | None = None,
    ) -> None:
        self.article = article
        self.mentions = tuple(mentions)
        self.now = now or datetime.now(UTC)
        self.window: Window | None = None
        self._words = words
        self._cache: dict[tuple[str, str], Any] = {}
        self._texts: dict[str, str] = {}
        self._folded: dict[str, FoldedText] = {}
        self._possible: dict[str, frozenset[int]] = {}  # the word filter's answer by field
        self._anywhere: frozenset[int] | None = None  # and for the title, summary and text
        self._present: frozenset[WordsClause] | None = None  # see words_present

    def within(self, window: Window) -> ArticleView:
        """The same article, with clauses confined to ``window``."""
        view = ArticleView.__new__(ArticleView)
        view.__dict__.update(self.__dict__)
        view.window = window
        return view

    def text(self, name: str) -> str:
        found = self._texts.get(name)
        if found is None:
            found = self._texts[name] = str(getattr(self.article, name) or "")
        return found

    def folded(self, name: str) -> FoldedText:
        found = self._folded.get(name)
        if found is None:
            found = self._folded[name] = fold(self.text(name))
        return found

    def may_hold(self, clause: WordsClause, name: str | None = None) -> bool:
        """Whether a word clause may hold in a field (by default, in any of the title, summary
        and text): one pass of the rule set's ``WordFilter`` over a field answers for all its
        word clauses at once; without one, whether the field has the clause's literal."""
        words = self._words
        index = None if words is None else words.index.get(clause)
        if index is None or words is None:
            return name is None or clause.needs in self.folded(name).text
        if name is not None:
            return index in self._possible_in(name, words)
        if self._anywhere is None:
            found = (self._possible_in(n, words) for n in TEXT_FIELDS)
            self._anywhere = frozenset().union(*found)
        return index in self._anywhere

    def words_present(self, words: WordFilter) -> frozenset[WordsClause]:
        """The word clauses of ``words`` (the view's own) that may hold in a field they read."""
        if self._present is None:
            present = set(words.unfiltered)
            for name in words.fields:
                for index in self._possible_in(name, words):
                    clause = words.clauses[index]
                    if name in clause.fields:
                        present.add(clause)
            self._present = frozenset(present)
        return self._present

    def _possible_in(self, name: str, words: WordFilter) -> frozenset[int]:
        possible = self._possible.get(name)
        if possible is None:
            possible = self._possible[name] = words.possible(self.folded(name).text)
        return possible

    def mentions_of(self, kind: str, entity_id: str, scope: str | None) -> Evidence:
        by_entity = self._cache.get(("mentions", ""))  # shared with the views ``within`` makes
        if by_entity is None:
            by_entity = self._cache["mentions", ""] = _by_entity(self.mentions)
        found = by_entity.get((kind, entity_id), ())
        if scope is None and self.window is None:
            return found
        return tuple(
            m
            for m in found
            if (scope is None or m.field == scope) and (self.window is None or self.window.holds(m))
        )

    def in_window(self, found: Evidence) -> Evidence:
        return found if self.window is None else tuple(m for m in found if self.window.holds(m))

    def sentences(self, name: str) -> list[tuple[int, int]]:
        """The spans of the sentences of a text field."""
        found: list[tuple[int, int]] = self._cached(
            "sentences", name, lambda: _sentences(self.text(name), self._lang)
        )
        return found

    def word_number(self, name: str, offset: int) -> int:
        """How many words of a field begin before ``offset``."""
        starts = self._cached("words", name, lambda: _word_starts(self.text(name)))
        return bisect.bisect_right(starts, offset)

    @property
    def _lang(self) -> str:
        return (self.article.lang or "en").split("-")[0].split("_")[0].lower()

    def _cached(self, what: str, name: str, compute: Any) -> Any:
        key = (what, name)
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


_IDEOGRAPHS = "\u2e80-\u9fff\uf900-\ufaff"
_WORD_OR_IDEOGRAPH = re.compile(f"[{_IDEOGRAPHS}]|[^\\W{_IDEOGRAPHS}]+")
_IDEOGRAPH = re.compile(f"[{_IDEOGRAPHS}]")
_NOT_WORD = re.compile(r"\W")
# ASCII letters, digits and "_" as they are, the rest of ASCII a space, other bytes as they are
_ASCII_WORDS = bytes(b if b >= 128 or chr(b).isalnum() or b == ord("_") else 32 for b in range(256))
_ASCII = bytes(range(128))


def _word_starts(text: str) -> list[int]:
    """Where each word of ``text`` begins: a run of letters, digits and "_", or a single
    ideograph (Chinese and Japanese are written without spaces)."""
    encoded = text.encode("utf-8", "surrogatepass")
    others = encoded.translate(None, _ASCII).decode("utf-8", "surrogatepass")
    if _IDEOGRAPH.search(others):
        return [m.start() for m in _WORD_OR_IDEOGRAPH.finditer(text)]
    spaced = encoded.translate(_ASCII_WORDS).decode("utf-8", "surrogatepass")
    for char in set(_NOT_WORD.findall(others)):
        spaced = spaced.replace(char, " ")
    # Between spaces, the words: piece i begins after the i pieces and i spaces before it.
    pieces = spaced.split(" ")
    begins = map(operator.add, itertools.accumulate(map(len, pieces), initial=0), itertools.count())
    return list(itertools.compress(begins, pieces))


def _sentences(text: str, lang: str) -> list[tuple[int, int]]:
    """Sentence spans, split with sentencex (rules for many languages, English otherwise)."""
    try:
        pieces = list(sentencex.segment(lang, text))
    except Exception:  # an unknown language code
        pieces = list(sentencex.segment("en", text))
    spans, cursor = [], 0
    for piece in pieces:
        start = text.find(piece, cursor) if piece else -1
        if start < 0:
            continue
        spans.append((start, start + len(piece)))
        cursor = start + len(piece)
    # a paragraph break ends a sentence even without punctuation (headlines, lists)
    return [part for span in spans for part in _split_at_breaks(text, span)]


def _split_at_breaks(text: str, span: tuple[int, int]) -> list[tuple[int, int]]:
    start, end = span
    parts, cursor = [], start
    index = text.find("\n", cursor, end)
    while index >= 0:
        if index > cursor:
            parts.append((cursor, index))
        cursor = index + 1
        index = text.find("\n", cursor, end)
    if cursor < end:
        parts.append((cursor, end))
    return parts


# --- clauses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one clause fared on an article: its evidence (None: false) and its parts'."""

    clause: str
    evidence: Evidence | None
    parts: tuple[Outcome, ...] = ()
    note: str = ""

    @property
    def holds(self) -> bool:
        return self.evidence is not None


class Clause(ABC):
    """One node of a compiled query."""

    text = ""  # the clause as written in the query
    parts: tuple[Clause, ...] = ()

    @abstractmethod
    def test(self, view: ArticleView) -> Evidence | None:
        """The evidence that the clause holds (empty when it holds without any), or None."""

    def explain(self, view: ArticleView) -> Outcome:
        return Outcome(self.text, self.test(view), tuple(p.explain(view) for p in self.parts))

    @functools.cached_property
    def monotone(self) -> bool:
        """True when adding text can only make it true: no NOT beneath it."""
        return all(p.monotone for p in self.parts)

    @functools.cached_property
    def needs_one_of(self) -> frozenset[Need] | None:
        """What an article must have one of for the clause to hold: actors and topics it
        mentions, as (kind, id), and word clauses that may hold in it; None when it may hold
        without any. A rule set does not test a rule on an article that has none of them."""
        return self._needs_one_of()

    def _needs_one_of(self) -> frozenset[Need] | None:
        return None


def _narrowest(
    needs: Iterable[frozenset[Need] | None],
) -> frozenset[Need] | None:
    """What a clause needs that holds only where all its parts do: what any one of them
    needs will do, the fewest that one, actors and topics before words (they are known
    without a look at the text)."""
    found = [n for n in needs if n is not None]
    return min(found, key=lambda n: (_has_words(n), len(n))) if found else None


def _has_words(needs: frozenset[Need]) -> bool:
    return any(isinstance(need, WordsClause) for need in needs)


def _together(
    needs: Iterable[frozenset[Need] | None],
) -> frozenset[Need] | None:
    """What a clause needs that holds only where one of its parts does: one of everything
    they need, if each needs something."""
    together: set[Need] = set()
    for part in needs:
        if part is None:
            return None
        together |= part
    return frozenset(together)


class EntityClause(Clause):
    def __init__(self, entity: Entity, scope: str | None, min_score: float | None) -> None:
        self.entity, self.scope, self.min_score = entity, scope, min_score

    def _needs_one_of(self) -> frozenset[Need] | None:
        return frozenset([(self.entity.kind, self.entity.id)])

    def test(self, view: ArticleView) -> Evidence | None:
        found = view.mentions_of(self.entity.kind, self.entity.id, self.scope)
        if not found or (self.min_score and self.entity.score(found) < self.min_score):
            return None
        return found


class WordsClause(Clause):
    """A word, a phrase, a wildcard or a regular expression, as whole words. ``find`` gives the
    spans where it stands in a folded field. ``needs`` is text that every match holds, and
    ``pattern`` (RE2 syntax; when empty, ``needs`` as it is) what the rule set's
    ``WordFilter`` looks for: a field without it is not searched."""

    def __init__(
        self, label: str, scope: str | None, find: Any, needs: str = "", pattern: str = ""
    ) -> None:
        self.label, self.find, self.needs = label, find, needs
        self.fields: tuple[str, ...] = (scope,) if scope else TEXT_FIELDS
        self.pattern = pattern

    def _needs_one_of(self) -> frozenset[Need] | None:
        return frozenset([self])

    def test(self, view: ArticleView) -> Evidence | None:
        if self.fields is TEXT_FIELDS and not view.may_hold(self):
            return None
        found = []
        for name in self.fields:
            if view.window is not None and view.window.field != name:
                continue
            haystack = view.folded(name)
            if not haystack.text or not view.may_hold(self, name):
                continue
            source = view.text(name)
            for start, end in self.find(haystack):
                if starts_word(haystack.text, start) and ends_word(haystack.text, end):
                    src_start, src_end = haystack.span_in_source(start, end)
                    found.append(
                        Mention(
                            "term",
                            self.label,
                            name,  # type: ignore[arg-type]
                            src_start,
                            src_end,
                            source[src_start:src_end],
                            self.label,
                        )
                    )
        return (view.in_window(tuple(found)) or None) if found else None


class AllClause(Clause):
    def __init__(self, parts: Sequence[Clause]) -> None:
        self.parts = tuple(parts)

    def test(self, view: ArticleView) -> Evidence | None:
        evidence: list[Mention] = []
        for part in self.parts:
            result = part.test(view)
            if result is None:
                return None
            evidence.extend(result)
        return tuple(evidence)

    def _needs_one_of(self) -> frozenset[Need] | None:
        return _narrowest(p.needs_one_of for p in self.parts)


class AnyClause(Clause):
    def __init__(self, parts: Sequence[Clause]) -> None:
        self.parts = tuple(parts)

    def test(self, view: ArticleView) -> Evidence | None:
        evidence = None
        for part in self.parts:
            result = part.test(view)
            if result is not None:
                evidence = result if evidence is None else evidence + result
        return evidence

    def _needs_one_of(self) -> frozenset[Need] | None:
        return _together(p.needs_one_of for p in self.parts)


class NotClause(Clause):
    def __init__(self, part: Clause) -> None:
        self.parts = (part,)

    def test(self, view: ArticleView) -> Evidence | None:
        return () if self.parts[0].test(view) is None else None

    @property
    def monotone(self) -> bool:
        return False


class AtLeastClause(Clause):
    def __init__(self, count: int, parts: Sequence[Clause]) -> None:
        self.count, self.parts = count, tuple(parts)

    def test(self, view: ArticleView) -> Evidence | None:
        held = 0
        evidence: Evidence = ()
        for part in self.parts:
            result = part.test(view)
            if result is not None:
                held, evidence = held + 1, evidence + result
        return evidence if held >= self.count else None

    def _needs_one_of(self) -> frozenset[Need] | None:
        return _together(p.needs_one_of for p in self.parts) if self.count > 0 else None


class NearClause(Clause):
    """Both sides hold with some of their words at most ``distance`` words apart."""

    def __init__(self, left: Clause, right: Clause, distance: int) -> None:
        self.parts, self.distance = (left, right), distance

    def test(self, view: ArticleView) -> Evidence | None:
        left = self.parts[0].test(view)
        right = self.parts[1].test(view) if left else None
        if not left or not right:
            return None
        near: dict[Mention, None] = {}
        for a in left:
            for b in right:
                if a.field == b.field and a.field in TEXT_FIELDS and self._close(view, a, b):
                    near.update({a: None, b: None})
        return tuple(near) or None

    def _needs_one_of(self) -> frozenset[Need] | None:
        return _narrowest(p.needs_one_of for p in self.parts)

    def _close(self, view: ArticleView, a: Mention, b: Mention) -> bool:
        if a == b:  # one mention is not near itself
            return False
        first, second = (a, b) if a.start <= b.start else (b, a)
        if second.start < first.end:  # overlapping
            return True
        words_between = view.word_number(a.field, second.start) - view.word_number(
            a.field, first.end - 1
        )
        return words_between - 1 <= self.distance


class SentenceClause(Clause):
    """Everything inside holds within one sentence."""

    def __init__(self, part: Clause) -> None:
        self.parts = (part,)

    def test(self, view: ArticleView) -> Evidence | None:
        part = self.parts[0]
        found: list[Mention] = []
        for window in self._candidates(view):
            result = part.test(view.within(window))
            if result is not None:
                found.extend(result)
                if not result:  # true without evidence (only NOT beneath): one is enough
                    return ()
        return tuple(dict.fromkeys(found)) if found else None

    def _needs_one_of(self) -> frozenset[Need] | None:
        return self.parts[0].needs_one_of

    def _candidates(self, view: ArticleView) -> list[Window]:
        """The sentences worth trying: those holding some evidence, or every sentence when a
        NOT beneath makes the whole article's answer no guide."""
        names = [view.window.field] if view.window else list(TEXT_FIELDS)
        if not self.parts[0].monotone:
            windows = [Window(n, s, e) for n in names for s, e in view.sentences(n)]
            return [w for w in windows if _overlaps(w, view.window)]
        evidence = self.parts[0].test(view)
        if not evidence:
            return []
        starts = {(m.field, m.start) for m in evidence if m.field in TEXT_FIELDS}
        windows = []
        for name in (n for n in TEXT_FIELDS if any(f == n for f, _ in starts)):  # reading order
            for s, e in view.sentences(name):
                if any(f == name and s <= at < e for f, at in starts):
                    windows.append(Window(name, s, e))
        return windows


def _overlaps(window: Window, outer: Window | None) -> bool:
    return outer is None or (
        window.field == outer.field and window.start < outer.end and outer.start < window.end
    )


class RuleClause(Clause):
    """``rule:NAME``: another rule's or a named query's clause."""

    def __init__(self, name: str, target: Clause) -> None:
        self.name, self.parts = name, (target,)

    def test(self, view: ArticleView) -> Evidence | None:
        return self.parts[0].test(view)

    def _needs_one_of(self) -> frozenset[Need] | None:
        return self.parts[0].needs_one_of


class PublishedClause(Clause):
    """The article's publication time (or, undated, the time it is judged) within bounds."""

    def __init__(self, low: Any, include_low: bool, high: Any, include_high: bool) -> None:
        self.low, self.high = low, high  # callables: now → datetime, or None
        self.include_low, self.include_high = include_low, include_high

    def test(self, view: ArticleView) -> Evidence | None:
        when = view.article.published or view.now
        if self.low is not None:
            low = self.low(view.now)
            if when < low or (when == low and not self.include_low):
                return None
        if self.high is not None:
            high = self.high(view.now)
            if when > high or (when == high and not self.include_high):
                return None
        return ()


class LangClause(Clause):
    def __init__(self, code: str) -> None:
        self.code = code.lower()

    def test(self, view: ArticleView) -> Evidence | None:
        lang = (view.article.lang or "").lower().replace("_", "-")
        return () if lang == self.code or lang.startswith(f"{self.code}-") else None


# --- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    query: str
    channels: tuple[str, ...]
    enabled: bool
    clause: Clause = field(repr=False, compare=False)
    version: str = ""  # a hash of the query and of the queries it refers to

    def evaluate(self, view: ArticleView) -> RuleHit | None:
        evidence = self.clause.test(view)
        if evidence is None:
            return None
        return RuleHit(self.name, tuple(dict.fromkeys(evidence)), self.version)

    def explain(self, view: ArticleView) -> Outcome:
        return self.clause.explain(view)


class WordFilter:
    """Which of many word clauses may hold in a text, found for all of them in one pass.

    RE2's FilteredRE2 takes from each clause's pattern the literal strings that every match
    holds (a pattern without any is always a candidate), and one RE2 set finds which of
    those a text has, in linear time however many clauses there are. A clause it leaves out
    cannot hold there; the others search the text as before."""

    def __init__(self, clauses: Iterable[WordsClause]) -> None:
        self.index: dict[WordsClause, int] = {}
        self.clauses: list[WordsClause] = []  # by index
        self.unfiltered: list[WordsClause] = []  # those that search for themselves
        self._filter = re2.Filter()
        for clause in dict.fromkeys(clauses):
            pattern = clause.pattern or clause.needs
            # a lone surrogate (in a query given on the command line) has no UTF-8: such a
            # clause is left to search for its literal itself
            if whole_characters(pattern) != pattern:
                self.unfiltered.append(clause)
                continue
            if not clause.pattern:
                pattern = re2.escape(pattern)
            self.index[clause] = self._filter.Add(pattern, _RE2_OPTIONS)
            self.clauses.append(clause)
        if self.index:
            try:
                self._filter.Compile()
            except re2.error:  # more literals than RE2 lets one set hold in memory
                log.warning(
                    "rules: %d words and patterns are too many to look for in one pass; "
                    "each is searched for on its own",
                    len(self.index),
                )
                self.unfiltered.extend(self.clauses)
                self.index, self.clauses = {}, []
        #: the fields the clauses read
        self.fields = tuple(dict.fromkeys(name for c in self.clauses for name in c.fields))

    def possible(self, text: str) -> frozenset[int]:
        """The indexes of the clauses that may hold in folded ``text`` (none in no text)."""
        if not self.index or not text:
            return frozenset()
        return frozenset(self._filter.Match(_utf8(text), True) or ())


def _by_entity(mentions: Sequence[Mention]) -> dict[tuple[str, str], Evidence]:
    grouped: dict[tuple[str, str], list[Mention]] = {}
    for m in mentions:
        grouped.setdefault((m.kind, m.id), []).append(m)
    return {key: tuple(found) for key, found in grouped.items()}


def _word_clauses(clause: Clause) -> Iterator[WordsClause]:
    if isinstance(clause, WordsClause):
        yield clause
    for part in clause.parts:
        yield from _word_clauses(part)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    words: WordFilter = field(init=False, repr=False, compare=False)
    # the enabled rules, each with what it needs and whether that includes word clauses
    _plan: tuple[tuple[Rule, frozenset[Need] | None, bool], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        clauses = (c for rule in self.rules for c in _word_clauses(rule.clause))
        object.__setattr__(self, "words", WordFilter(clauses))
        plan = tuple(
            (rule, rule.clause.needs_one_of, _has_words(rule.clause.needs_one_of or frozenset()))
            for rule in self.rules
            if rule.enabled
        )
        object.__setattr__(self, "_plan", plan)

    def evaluate(
        self, article: Article, mentions: Sequence[Mention], now: datetime | None = None
    ) -> tuple[RuleHit, ...]:
        """The enabled rules this article satisfies. A rule that needs one of some actors,
        topics and word clauses is not tested on an article that mentions none of those
        actors and topics and where the word filter rules out those word clauses: it cannot
        hold (a presearch, as a percolator has)."""
        named = {(m.kind, m.id) for m in mentions}
        view = None
        hits = []
        for rule, needs, words in self._plan:
            if needs is not None and needs.isdisjoint(named):
                if not words:
                    continue
                view = view or ArticleView(article, mentions, now, self.words)
                if needs.isdisjoint(view.words_present(self.words)):
                    continue
            view = view or ArticleView(article, mentions, now, self.words)
            hit = rule.evaluate(view)
            if hit is not None:
                hits.append(hit)
        return tuple(hits)

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


def compile_rules(
    configs: Sequence[RuleConfig],
    watchlist: Watchlist,
    origin: str,
    queries: Mapping[str, str] | None = None,
) -> RuleSet:
    """Compile every rule; all problems are raised together, each naming rule and position.
    ``queries`` are named queries that rules may refer to as ``rule:NAME``."""
    named = dict(queries or {})
    named.update({c.name: c.query for c in configs})
    compiler = _Compiler(watchlist, named)
    rules, problems = [], []
    for name in queries or {}:
        try:
            compiler.named(name)
        except QueryError as exc:
            problems.append(Problem(f"{origin}: queries.{name}", str(exc)))
    for index, config in enumerate(configs):
        try:
            clause, refs = compiler.named(config.name)
        except QueryError as exc:
            where = f"{origin}: rules[{index}] ({config.name}).query"
            problems.append(Problem(where, str(exc)))
            continue
        version = rule_version(config.query, {r: named[r] for r in refs})
        rules.append(
            Rule(config.name, config.query, config.channels, config.enabled, clause, version)
        )
    if problems:
        raise ConfigError(problems)
    return RuleSet(tuple(rules))


def compile_query(query: str, watchlist: Watchlist, named: Mapping[str, str] | None = None) -> Rule:
    """One query given on its own (``monitor rules test --query``), as a disabled rule."""
    compiler = _Compiler(watchlist, dict(named or {}))
    clause, refs = compiler.query(query)
    version = rule_version(query, {r: compiler.queries[r] for r in refs})
    return Rule("(query)", query, (), False, clause, version)


def rule_version(query: str, referenced: Mapping[str, str]) -> str:
    """The version a match records: a hash of the query and of every query it refers to."""
    # surrogatepass: a query given on the command line may hold an undecodable byte
    digest = hashlib.sha256(query.encode("utf-8", "surrogatepass"))
    for name in sorted(referenced):
        digest.update(f"\0{name}\0{referenced[name]}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:12]


# --- compiling -------------------------------------------------------------------------------

_OPERATORS = re.compile(
    r'(?P<quoted>"(?:\\.|[^"\\])*"|/(?:\\.|[^/\\])+/)'  # left as they are
    r"|\b(?i:near)/(?P<near>\d+)\b|\bSENTENCE\s*\(|\bATLEAST\s*\(\s*(?P<atleast>\d+)\s*,"
)


class _Rewritten:
    """The query with the operators luqum does not know spelt in forms it parses
    (``SENTENCE(`` → ``SENTENCE:(``, ``NEAR/5`` → ``NEAR_5``), and the way back to the
    positions of the query as the user wrote it."""

    def __init__(self, query: str) -> None:
        self.original = query
        self.anchors: list[tuple[int, int]] = [(0, 0)]  # (position here, position there)
        out, cursor, length = [], 0, 0
        for match in _OPERATORS.finditer(query):
            if match["quoted"]:
                continue
            out.append(query[cursor : match.start()])
            length += match.start() - cursor
            if match["near"]:
                spelling = f"NEAR_{match['near']}"
            elif match["atleast"]:
                spelling = f"ATLEAST_{match['atleast']}:("
            else:
                spelling = "SENTENCE:("
            out.append(spelling)
            self.anchors.append((length, match.start()))
            length += len(spelling)
            self.anchors.append((length, match.end()))
            cursor = match.end()
        out.append(query[cursor:])
        self.text = "".join(out)

    def position(self, at: int) -> int:
        """The position in the user's query of position ``at`` of the rewritten text."""
        index = bisect.bisect_right(self.anchors, (at, len(self.original))) - 1
        here, there = self.anchors[index]
        return there + (at - here)

    def clause_text(self, node: tree.Item) -> str:
        """The clause as the user wrote it, on one line."""
        written = str(node)
        if node.pos is not None:
            start, end = self.position(node.pos), self.position(node.pos + (node.size or 0))
            written = self.original[start:end] or written
        return " ".join(written.split())


class _Compiler:
    def __init__(self, watchlist: Watchlist, queries: dict[str, str]) -> None:
        self.watchlist = watchlist
        self.queries = queries
        self._done: dict[str, tuple[Clause, frozenset[str]]] = {}
        self._failed: dict[str, QueryError] = {}
        self._stack: list[str] = []

    def named(self, name: str) -> tuple[Clause, frozenset[str]]:
        """The clause of a rule or named query, and every name it refers to."""
        if name in self._done:
            return self._done[name]
        if name in self._failed:
            raise self._failed[name]
        self._stack.append(name)
        try:
            result = self.query(self.queries[name])
        except QueryError as exc:
            self._failed[name] = exc
            raise
        finally:
            self._stack.pop()
        self._done[name] = result
        return result

    def query(self, query: str) -> tuple[Clause, frozenset[str]]:
        rewritten = _Rewritten(query)
        try:
            parsed = lucene_parser.parse(rewritten.text)
        except (ParseError, IllegalCharacterError) as exc:
            found = _POSITION.search(str(exc))
            message = str(exc).split(":", 1)[-1].strip().rstrip("!")
            message = " ".join(_POSITION.sub("", message).split()) or "syntax error"
            raise QueryError(
                f"syntax error: {message.removesuffix(' at').removesuffix(' near')}",
                rewritten.position(int(found.group(1))) if found else None,
            ) from exc
        except Exception as exc:  # luqum raises bare exceptions for some truncated input
            raise QueryError(f"syntax error: {exc or 'unexpected end of query'}") from exc
        one = _OneQuery(self, rewritten)
        return one.compile(parsed, scope=None), frozenset(one.refs)


class _OneQuery:
    """Compiles the luqum tree of one query into clauses."""

    def __init__(self, compiler: _Compiler, rewritten: _Rewritten) -> None:
        self.compiler, self.rewritten = compiler, rewritten
        self.refs: set[str] = set()

    def error(self, message: str, node: tree.Item) -> QueryError:
        position = None if node.pos is None else self.rewritten.position(node.pos)
        return QueryError(message, position)

    def compile(self, node: tree.Item, scope: str | None) -> Clause:
        clause = self._compile(node, scope)
        if not clause.text:
            clause.text = self.rewritten.clause_text(node)
        return clause

    def _compile(self, node: tree.Item, scope: str | None) -> Clause:
        if isinstance(node, tree.SearchField):
            return self._field(node, scope)
        if isinstance(node, tree.Group | tree.FieldGroup | tree.Plus):
            return self.compile(node.children[0], scope)
        if isinstance(node, tree.Not | tree.Prohibit):
            return NotClause(self.compile(node.children[0], scope))
        if isinstance(node, tree.OrOperation):
            return AnyClause([self.compile(c, scope) for c in node.children])
        if isinstance(node, tree.AndOperation):
            return AllClause([self.compile(c, scope) for c in node.children])
        if isinstance(node, tree.UnknownOperation):
            return self._side_by_side(node, scope)
        if isinstance(node, tree.Word | tree.Phrase):
            return self._words(node, scope)
        if isinstance(node, tree.Regex):
            return self._regex(node, scope)
        raise self._unsupported(node)

    def _unsupported(self, node: tree.Item) -> QueryError:
        if isinstance(node, tree.Proximity):
            return self.error("phrase proximity (~) is not supported: use NEAR/n", node)
        if isinstance(node, tree.Boost):
            return self.error("a minimum score (^) applies to topic: only", node)
        return self.error(f"{type(node).__name__.lower()} ({node}) is not supported", node)

    def _side_by_side(self, node: tree.UnknownOperation, scope: str | None) -> Clause:
        """Clauses side by side must all hold."""
        clauses = self._joined(list(node.children), scope)
        return clauses[0] if len(clauses) == 1 else AllClause(clauses)

    def _joined(self, items: list[tree.Item], scope: str | None) -> list[Clause]:
        """The clauses of a sequence, each ``NEAR/n`` joining its two neighbours into one."""
        clauses: list[Clause] = []
        while items:
            item = items.pop(0)
            if _near_distance(item) is not None:
                raise self.error("NEAR/n needs a clause on each side", item)
            clause = self.compile(item, scope)
            while items and (distance := _near_distance(items[0])) is not None:
                operator = items.pop(0)
                if not items or _near_distance(items[0]) is not None:
                    raise self.error("NEAR/n needs a clause on each side", operator)
                right = items.pop(0)
                left_text = (
                    clause.text
                    if isinstance(clause, NearClause)
                    else self.rewritten.clause_text(item)
                )
                near = NearClause(
                    self._near_operand(item, clause),
                    self._near_operand(right, self.compile(right, scope)),
                    distance,
                )
                near.text = f"{left_text} NEAR/{distance} {self.rewritten.clause_text(right)}"
                clause, item = near, right
            clauses.append(clause)
        return clauses

    def _near_operand(self, node: tree.Item, clause: Clause) -> Clause:
        self._check_near_operand(node)
        if isinstance(clause, LangClause | PublishedClause | NotClause):
            raise self.error(f"NEAR/n needs clauses that name words, not {clause.text!r}", node)
        return clause

    def _check_near_operand(self, node: tree.Item) -> None:
        if isinstance(node, tree.AndOperation | tree.OrOperation | tree.Not | tree.Prohibit):
            raise self.error(
                "NEAR/n binds to one clause on each side: put parentheses around "
                f"{self.rewritten.clause_text(node)!r} or around the NEAR",
                node,
            )

    def _field(self, node: tree.SearchField, scope: str | None) -> Clause:
        name, child = node.name, node.expr
        if name == "SENTENCE":
            return SentenceClause(self.compile(child, scope))
        if name.startswith("ATLEAST_"):
            return self._at_least(int(name.split("_")[1]), child, scope, node)
        name = name.lower()
        if scope is not None:
            self._check_scoped(name, scope, node)
        if name in ("actor", "topic"):
            return self._entity(name, child, scope)
        if name == "rule":
            return self._rule(child)
        if name in ARTICLE_FIELDS:
            return self._article_field(name, child)
        if name not in SCOPE_FIELDS:
            known = ", ".join(("actor", "topic", "rule", *SCOPE_FIELDS, *ARTICLE_FIELDS))
            raise self.error(f"unknown field {node.name!r} (fields: {known})", node)
        clause = self.compile(child, name)
        clause.text = self.rewritten.clause_text(node)  # "title:munich", not "munich"
        return clause

    def _check_scoped(self, name: str, scope: str, node: tree.SearchField) -> None:
        """A field inside ``scope:(…)`` must be one that can hold there."""
        if name in ("actor", "topic") and scope not in TEXT_FIELDS:
            problem = "actors and topics are found in the title, summary and text only"
        elif name in SCOPE_FIELDS and name != scope:
            problem = "a clause reads one field"
        else:
            return
        raise self.error(f"{name}: inside {scope}: can never match; {problem}", node)

    def _at_least(self, count: int, child: tree.Item, scope: str | None, node: tree.Item) -> Clause:
        inner = child.children[0] if isinstance(child, tree.FieldGroup) else child
        items = inner.children if isinstance(inner, tree.UnknownOperation) else (inner,)
        parts = self._joined(list(items), scope)
        if not 1 <= count <= len(parts):
            raise self.error(f"ATLEAST({count}, …) has {len(parts)} clauses", node)
        return AtLeastClause(count, parts)

    def _entity(self, kind: str, node: tree.Item, scope: str | None) -> Clause:
        min_score = None
        if isinstance(node, tree.Boost):
            if kind != "topic":
                raise self.error("a minimum score (^) applies to topic: only", node)
            min_score, node = float(node.force), node.expr
        if not isinstance(node, tree.Word):
            raise self.error(f"{kind}: takes one id, e.g. {kind}:some-id", node)
        entity = self.compiler.watchlist.get("actor" if kind == "actor" else "topic", node.value)
        if entity is None:
            raise self.error(f"unknown {kind} id {node.value!r} (not in the watchlist)", node)
        return EntityClause(entity, scope, min_score)

    def _rule(self, node: tree.Item) -> Clause:
        if not isinstance(node, tree.Word):
            raise self.error("rule: takes one name, e.g. rule:us-china-core", node)
        name = node.value
        if name not in self.compiler.queries:
            raise self.error(f"unknown rule or query {name!r}", node)
        stack = self.compiler._stack
        if name in stack:
            loop = " → ".join([*stack[stack.index(name) :], name])
            raise self.error(f"rule:{name} refers back to itself ({loop})", node)
        try:
            clause, refs = self.compiler.named(name)
        except QueryError as exc:
            raise self.error(f"rule:{name} cannot be used: its query has an error", node) from exc
        self.refs.update({name, *refs})
        return RuleClause(name, clause)

    def _article_field(self, name: str, node: tree.Item) -> Clause:
        if name == "lang":
            if not isinstance(node, tree.Word):
                raise self.error("lang: takes a language code, e.g. lang:en", node)
            return LangClause(node.value)
        return self._published(node)

    def _published(self, node: tree.Item) -> Clause:
        if isinstance(node, tree.From):
            return PublishedClause(*self._bound(node.a, node, False, node.include), None, False)
        if isinstance(node, tree.To):
            return PublishedClause(None, False, *self._bound(node.a, node, True, node.include))
        if isinstance(node, tree.Range):
            return PublishedClause(
                *self._bound(node.low, node, False, node.include_low, open_ok=True),
                *self._bound(node.high, node, True, node.include_high, open_ok=True),
            )
        if isinstance(node, tree.Word | tree.Phrase):
            return PublishedClause(
                *self._bound(node, node, False, True), *self._bound(node, node, True, True)
            )
        raise self.error("published: takes a date, >, >=, <, <= or [from TO to]", node)

    def _bound(
        self, node: tree.Item, where: tree.Item, upper: bool, inclusive: bool, open_ok: bool = False
    ) -> tuple[Any, bool]:
        """One end of a date range: a function of now, and whether the end is included. A day
        on its own stands for the whole day: ``<=2023-06-30`` takes in the 30th."""
        value = str(getattr(node, "value", node)).strip().strip('"')
        if value == "*":
            if not open_ok:
                raise self.error("published:* is any date: leave the condition out", where)
            return None, False
        moment = self._moment(value, where)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return moment, inclusive
        if upper == inclusive:  # "<= day" and "> day" both reach to the end of the day
            return (lambda now: moment(now) + _ONE_DAY), not upper
        return moment, inclusive

    def _moment(self, value: str, where: tree.Item) -> Any:
        """A time as a function of now: ``now``, ``now-2d``, ``2023-06-18``, an ISO time."""
        relative = re.fullmatch(r"now(?:([-+])(\w+))?", value)
        if relative:
            sign, amount = relative.groups()
            if not amount:
                return lambda now: now
            try:
                delta = parse_duration(amount)
            except ValueError as exc:
                raise self.error(str(exc), where) from exc
            return (lambda now: now - delta) if sign == "-" else (lambda now: now + delta)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise self.error(
                f"{value!r} is not a time: write now-2d, 2023-06-18 or 2023-06-18T09:00Z", where
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return lambda now: parsed

    def _words(self, node: tree.Word | tree.Phrase, scope: str | None) -> Clause:
        value = str(node.value)
        if isinstance(node, tree.Word) and re.match(r"(?i)near(_|/)\d", value):
            raise self.error("NEAR/n needs a clause on each side", node)
        text = value[1:-1] if isinstance(node, tree.Phrase) else value
        needle = form_key(text)  # as the watchlist's forms are keyed
        if "*" in needle or "?" in needle:
            # on RE2, like regular expressions: "*a*a*a*a*c" must not backtrack for ever
            # (a lone surrogate, from a query on the command line, as RE2 reads the text's)
            characters = whole_characters(needle)
            source = "".join(_WILDCARDS.get(c) or re2.escape(c) for c in characters)
            try:
                pattern = re2.compile(source, _RE2_OPTIONS)
            except re2.error as exc:
                raise self.error(f"bad wildcard: {_re2_message(exc)}", node) from exc
            # the longest run of plain letters: where it is not in the text, nothing matches
            # (the rule set's word filter looks for it: the pattern's classes of every letter
            # would cost it as much memory again)
            literal = max(re.split(r"[*?]", needle), key=len)
            return WordsClause(text, scope, lambda t: _regex_spans(pattern, t.text), literal)
        return WordsClause(text, scope, lambda t: _plain_spans(needle, t.text), needle)

    def _regex(self, node: tree.Regex, scope: str | None) -> Clause:
        source = str(node.value)[1:-1]
        if "(i?)" in source.lower():
            raise self.error(
                "'(i?)' matches an optional letter i; matching ignores case already, "
                "so leave it out",
                node,
            )
        # fold the pattern's letters as the text is folded; escapes are ASCII and stay
        folded = "".join(c if c.isascii() else fold_string(c) for c in source)
        try:
            pattern = re2.compile(whole_characters(folded), _RE2_OPTIONS)  # as for wildcards
        except re2.error as exc:
            raise self.error(f"bad regular expression: {_re2_message(exc)}", node) from exc
        return WordsClause(
            f"/{source}/", scope, lambda t: _regex_spans(pattern, t.text), pattern=folded
        )


def _re2_message(exc: re2.error) -> str:
    return exc.args[0].decode() if isinstance(exc.args[0], bytes) else str(exc)


_ONE_DAY = timedelta(days=1)
# What a wildcard stands for in RE2: letters, digits and marks (what ``starts_word`` and
# ``ends_word`` take for a word's characters, and enclosing marks), any number or one.
_WILDCARDS = {"*": r"[\pL\pN\pM]*", "?": r"[\pL\pN\pM]"}


def _near_distance(node: tree.Item) -> int | None:
    if isinstance(node, tree.Word) and re.fullmatch(r"NEAR_\d+", node.value):
        return int(node.value.split("_")[1])
    return None


def _plain_spans(needle: str, text: str) -> list[tuple[int, int]]:
    if not needle:
        return []
    spans, start = [], text.find(needle)
    while start >= 0:
        spans.append((start, start + len(needle)))
        start = text.find(needle, start + 1)
    return spans


def _pattern_spans(pattern: Any, text: str | bytes) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start()]


def _regex_spans(pattern: Any, text: str) -> list[tuple[int, int]]:
    """Where an RE2 pattern matches ``text``. It searches the text in UTF-8, a lone surrogate
    (which UTF-8 cannot hold) as U+FFFD so that characters stay where they are, and maps the
    few spans found back to characters."""
    encoded = _utf8(text)
    spans = _pattern_spans(pattern, encoded)
    if not spans or len(encoded) == len(text):  # ASCII: bytes are characters
        return spans
    characters = character_offsets(encoded, (at for span in spans for at in span))
    return [(characters[start], characters[end]) for start, end in spans]


def _utf8(text: str) -> bytes:
    """``text`` in UTF-8 as RE2 reads it: a lone surrogate (which UTF-8 cannot hold) as U+FFFD,
    three bytes as "surrogatepass" would write, so that characters stay where they are."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return whole_characters(text).encode("utf-8")
