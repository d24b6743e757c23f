"""Reviewing rules before and after they go live: backtests over stored articles or a folder of
documents (nothing is sent, nothing is written), and explanations of why a rule matched an
article or which of its clauses failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from monitor.errors import ParseError
from monitor.folder import read_folder_document
from monitor.matcher import Matcher
from monitor.models import Article, Mention
from monitor.parse import DOCUMENT_SUFFIXES
from monitor.rules import ArticleView, Outcome, Rule, RuleSet
from monitor.store import StoredArticle
from monitor.watchlist import Watchlist


@dataclass(frozen=True)
class Candidate:
    """One article a backtest looks at: where it came from, and when it was seen."""

    label: str  # "article 12" or a file path
    article: Article
    seen_at: datetime | None  # relative dates in a rule count from here (None: now)

    @property
    def day(self) -> date | None:
        """The day that picks role holders: published, else seen (None: today)."""
        when = self.article.published or self.seen_at
        return when.date() if when else None


@dataclass(frozen=True)
class Sample:
    label: str
    article: Article
    evidence: tuple[Mention, ...]


@dataclass
class BacktestReport:
    rule: str
    version: str
    examined: int = 0
    matched: int = 0
    per_day: Counter[date] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # documents that could not be read


def stored(articles: Iterable[StoredArticle]) -> Iterator[Candidate]:
    for item in articles:
        yield Candidate(f"article {item.id}", item.article, item.fetched_at)


def documents(folder: Path, skipped: list[str]) -> Iterator[Candidate]:
    """The readable documents of a folder and its subfolders; unreadable ones are listed in
    ``skipped`` with the reason."""
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES):
        try:
            yield Candidate(str(path), read_folder_document(path, folder.name), None)
        except ParseError as exc:
            skipped.append(f"{path}: {exc}")


def backtest(
    rule: Rule,
    watchlist: Watchlist,
    candidates: Iterable[Candidate],
    sample_size: int = 5,
    skipped: list[str] | None = None,
) -> BacktestReport:
    """How the rule would have done on these articles: matches per day (by publication date,
    else when seen) and the first few matches with their evidence."""
    matcher = Matcher(watchlist)
    words = RuleSet((rule,)).words  # the rule's words, looked for in one pass over a field
    report = BacktestReport(rule.name, rule.version, skipped=skipped if skipped is not None else [])
    for candidate in candidates:
        report.examined += 1
        article = candidate.article
        mentions = matcher.find(article, candidate.day)
        view = ArticleView(article, mentions, candidate.seen_at, words)
        hit = rule.evaluate(view)
        if hit is None:
            continue
        report.matched += 1
        when = article.published or candidate.seen_at
        if when is not None:
            report.per_day[when.date()] += 1
        if len(report.samples) < sample_size:
            report.samples.append(Sample(candidate.label, article, hit.mentions))
    return report


# --- as text ---------------------------------------------------------------------------------


def describe_mention(mention: Mention) -> str:
    alias = f" (as {mention.alias!r})" if mention.alias != mention.text else ""
    return f"{mention.text!r}{alias} in {mention.field} [{mention.start}:{mention.end}]"


def summarise_evidence(evidence: Iterable[Mention]) -> list[str]:
    """One line per actor, topic or term: its first hit, and how many more there are."""
    by_entity: dict[tuple[str, str], list[Mention]] = {}
    for mention in dict.fromkeys(evidence):
        by_entity.setdefault((mention.kind, mention.id), []).append(mention)
    lines = []
    for (kind, entity_id), found in by_entity.items():
        more = f", and {len(found) - 1} more" if len(found) > 1 else ""
        lines.append(f"{kind} {entity_id}: {describe_mention(found[0])}{more}")
    return lines


def render_outcome(outcome: Outcome, indent: str = "  ", most: int = 3) -> list[str]:
    """The clause tree, one line per clause: ✓ held (with its evidence) or ✗ failed."""
    mark = "✓" if outcome.holds else "✗"
    line = f"{indent}{mark} {outcome.clause}"
    if outcome.evidence:
        shown = [describe_mention(m) for m in dict.fromkeys(outcome.evidence)]
        more = f" … and {len(shown) - most} more" if len(shown) > most else ""
        line += " — " + "; ".join(shown[:most]) + more
    lines = [line]
    for part in outcome.parts:
        lines.extend(render_outcome(part, indent + "    ", most))
    return lines


def render_backtest(report: BacktestReport) -> list[str]:
    share = f" ({report.matched / report.examined:.1%})" if report.examined else ""
    lines = [
        f"rule {report.rule} (version {report.version}): "
        f"{report.matched} of {report.examined} articles would have matched{share}"
    ]
    if report.per_day:
        lines.append("per day:")
        top = max(report.per_day.values())
        for day in sorted(report.per_day):
            count = report.per_day[day]
            bar = "█" * max(1, round(20 * count / top))
            lines.append(f"  {day:%Y-%m-%d}  {count:5d}  {bar}")
    if report.samples:
        lines.append(f"sample ({len(report.samples)}):")
        for sample in report.samples:
            lines.append(f"  {sample.label}: {sample.article.title[:100]}")
            lines.extend(f"      {line}" for line in summarise_evidence(sample.evidence))
    for problem in report.skipped:
        lines.append(f"skipped {problem}")
    return lines
