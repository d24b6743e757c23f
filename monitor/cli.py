"""The command line: a thin shell over the library. Only this module prints and chooses exit
codes; library errors (``MonitorError``) become ``click.ClickException`` with their message.

Exit codes: 0 success; 1 a problem the user can fix (bad config, failed run); 2 bad usage.
"""

from __future__ import annotations

import difflib
import getpass
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from monitor import __version__
from monitor.config import Config, load_config, locate_config
from monitor.daemon import Daemon
from monitor.durations import parse_duration
from monitor.errors import ConfigError, DeliveryError, MonitorError, ParseError
from monitor.extract import propose_watchlist, render_toml
from monitor.folder import read_folder_document
from monitor.matcher import Matcher
from monitor.messages import build_message
from monitor.models import AlertMessage, Article, Digest, MatchResult
from monitor.parse import DOCUMENT_SUFFIXES, read_document
from monitor.pipeline import Pipeline, utc_now
from monitor.resources import seeds_dir
from monitor.review import (
    BacktestReport,
    Candidate,
    backtest,
    documents,
    render_backtest,
    render_outcome,
    stored,
    summarise_evidence,
)
from monitor.routing import SENT_TOGETHER
from monitor.rules import ArticleView, Rule, compile_query
from monitor.runtime import Runtime, load_runtime
from monitor.store import (
    ArticleRecord,
    DeliveryRecord,
    LogFilter,
    MatchFate,
    MatchRecord,
    OpsEvent,
    SourceHealth,
    Store,
    StoryRecord,
)
from monitor.watchlist import load_watchlist

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("monitor")


def config_option(func: F) -> F:
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Config file (default: $MONITOR_CONFIG, then ./monitor.toml, then built-in).",
    )(func)


#: ``--format table|json`` of the commands that list things from the log.
table_or_json = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A readable table, or JSON lines.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="monitor")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="How much the daemon logs to standard error.",
)
def main(log_level: str) -> None:
    """monitor: poll news sources, match tracked actors and topics, alert through channels."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("apscheduler", "httpx", "httpcore", "apprise", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


@contextmanager
def _errors() -> Iterator[None]:
    """Library errors become a clear message and exit code 1."""
    try:
        yield
    except ConfigError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise click.ClickException(f"the configuration has problems:\n{lines}") from exc
    except MonitorError as exc:
        raise click.ClickException(str(exc)) from exc


def _config(config_path: Path | None) -> Config:
    path = locate_config(config_path)
    if path is None:
        click.echo(
            "monitor: no config given; using the built-in default "
            "(seed corpus, seeded watchlist, console alerts)",
            err=True,
        )
    return load_config(path)


def _runtime(config_path: Path | None, *, with_channels: bool = True) -> Runtime:
    config = _config(config_path)
    runtime = load_runtime(config, channels=None if with_channels else {})
    for warning in runtime.warnings:
        click.echo(f"monitor: warning: {warning}", err=True)
    return runtime


@main.command()
@config_option
def run(config_path: Path | None) -> None:
    """Run the daemon in the foreground (for systemd and Docker).

    SIGTERM or SIGINT finishes the work in flight and exits 0; a second signal exits at once.
    """
    with _errors():
        pipeline = Pipeline.open(_runtime(config_path))
        try:
            Daemon(pipeline).run()
        finally:
            pipeline.close()


@main.command()
@config_option
def poll(config_path: Path | None) -> None:
    """Poll every enabled source once now, match, send alerts, and exit.

    Exits non-zero if the run itself failed, not if one source was broken.
    """
    with _errors():
        pipeline = Pipeline.open(_runtime(config_path))
        try:
            pipeline.prepare()
            reports = pipeline.poll_all()
            delivered = pipeline.deliver_due()
        finally:
            pipeline.close()
    for r in reports:
        detail = f" error: {r.error}" if r.error else ""
        click.echo(
            f"{r.source}: {r.status}, {r.items} items, {r.new} new, {r.alerts} alerts{detail}",
            err=True,
        )
    click.echo(
        f"deliveries: {delivered.sent} sent, {delivered.failed} failed (see `monitor log alerts`)",
        err=True,
    )


@main.command("check-config")
@config_option
def check_config(config_path: Path | None) -> None:
    """Validate the config, the watchlist and the rules; list every problem; exit 1 if any."""
    with _errors():
        runtime = _runtime(config_path)
    c = runtime.config
    click.echo(
        f"{c.origin}: OK — {len(c.sources)} sources, {len(c.channels)} channels, "
        f"{len(c.rules)} rules, {len(runtime.watchlist.actors)} actors, "
        f"{len(runtime.watchlist.topics)} topics"
    )


@main.command()
@config_option
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def match(config_path: Path | None, files: Sequence[Path], fmt: str) -> None:
    """Show which actors, topics and rules an article would hit, and why.

    FILE is a .json object with title and text (and optionally summary, url, source,
    published, author, lang), or a .txt/.md file whose first line is the title. Without a date
    of its own, a file is dated by its modification time, as a folder source dates it.
    """
    with _errors():
        runtime = _runtime(config_path, with_channels=False)
        matcher = Matcher(runtime.watchlist)
        for path in files:
            article = read_folder_document(path, "")
            mentions = matcher.find(article)
            result = MatchResult(mentions, runtime.rules.evaluate(article, mentions))
            click.echo(
                _match_json(path, result)
                if fmt == "json"
                else _match_text(path, article, result, runtime)
            )


def _match_json(path: Path, result: MatchResult) -> str:
    return json.dumps(
        {
            "file": str(path),
            "actors": list(result.actors),
            "topics": list(result.topics),
            "rules": list(result.rules),
            "mentions": [asdict(m) for m in result.mentions],
            "evidence": {h.rule: [asdict(m) for m in h.mentions] for h in result.rule_hits},
        },
        ensure_ascii=False,
    )


def _match_text(path: Path, article: Article, result: MatchResult, runtime: Runtime) -> str:
    wl = runtime.watchlist
    lines = [f"{path}: {article.title[:100]}"]
    lines.append(
        "  actors: "
        + (", ".join(f"{wl.display_name('actor', a)} ({a})" for a in result.actors) or "none")
    )
    lines.append(
        "  topics: "
        + (", ".join(f"{wl.display_name('topic', t)} ({t})" for t in result.topics) or "none")
    )
    lines.append("  rules:  " + (", ".join(result.rules) or "none"))
    for m in result.mentions:
        lines.append(
            f"    {m.kind} {m.id}: {m.text!r} in {m.field} [{m.start}:{m.end}]"
            + (f" (as {m.alias!r})" if m.alias != m.text else "")
        )
    return "\n".join(lines)


@main.command()
@config_option
@click.argument("article")
@click.option("--rule", "rule_names", multiple=True, help="Only this rule (repeatable).")
def explain(config_path: Path | None, article: str, rule_names: Sequence[str]) -> None:
    """Show, for each rule, why it matched an article or which clause failed.

    ARTICLE is an article id from `monitor log articles`, or a document file (.json, .txt,
    .md). Disabled rules are explained too.
    """
    with _errors():
        runtime = _runtime(config_path, with_channels=False)
        rules = _chosen_rules(runtime, rule_names)
        if article.isdigit():
            store = Store.open(runtime.config.database.url, must_exist=True)
            try:
                store.upgrade()
                found = store.stored_article(int(article))
                if found is None:
                    raise click.ClickException(f"no article {article} in the log")
                candidate = Candidate(f"article {found.id}", found.article, found.fetched_at)
                recorded = store.matches_of(found.id)
            finally:
                store.close()
        else:
            path = Path(article)
            if not path.is_file():
                raise click.ClickException(f"{article} is neither an article id nor a file")
            candidate = Candidate(str(path), read_folder_document(path, ""), None)
            recorded = []
    mentions = Matcher(runtime.watchlist).find(candidate.article, candidate.day)
    view = ArticleView(candidate.article, mentions, candidate.seen_at)
    click.echo(f"{candidate.label}: {candidate.article.title[:100]}")
    for line in summarise_evidence(mentions):
        click.echo(f"  {line}")
    versions = {r.rule: r for r in recorded}
    for rule in rules:
        lines = _explain_rule(rule, view, versions.get(rule.name), logged=article.isdigit())
        click.echo("\n".join(lines))


def _chosen_rules(runtime: Runtime, names: Sequence[str]) -> list[Rule]:
    unknown = [n for n in names if runtime.rules.get(n) is None]
    if unknown:
        known = ", ".join(r.name for r in runtime.rules.rules) or "none"
        raise click.ClickException(f"no rule named {', '.join(unknown)} (rules: {known})")
    return [r for r in runtime.rules.rules if not names or r.name in names]


def _explain_rule(
    rule: Rule, view: ArticleView, recorded: MatchRecord | None, *, logged: bool
) -> list[str]:
    outcome = rule.explain(view)
    state = "matched" if outcome.holds else "did not match"
    off = "" if rule.enabled else ", disabled"
    lines = [f"rule {rule.name} (version {rule.version}{off}): {state}"]
    if recorded is not None:
        if recorded.rule_version is None:
            change = " (its version was not recorded: it predates versions)"
        elif recorded.rule_version != rule.version:
            change = f" with version {recorded.rule_version}: the rule has changed since"
        else:
            change = f" with version {recorded.rule_version}"
        no_alert = f"; no alert: {recorded.reason}" if not recorded.alerted else ""
        lines.append(f"  the log recorded a match{change}{no_alert}")
    elif logged:
        lines.append("  the log recorded no match")
    return lines + render_outcome(outcome)


@main.group()
def rules() -> None:
    """Work with rules."""


@rules.command("test")
@config_option
@click.argument("name", required=False)
@click.option("--query", help="Test this query instead of a configured rule.")
@click.option("--since", help="Only articles fetched in this window, e.g. 30d (default: all).")
@click.option("--source", help="Only articles from this source.")
@click.option(
    "--folder",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Test on the documents of this folder instead of the log.",
)
@click.option("--sample", type=click.IntRange(0), default=5, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def rules_test(
    config_path: Path | None,
    name: str | None,
    query: str | None,
    since: str | None,
    source: str | None,
    folder: Path | None,
    sample: int,
    fmt: str,
) -> None:
    """Backtest a rule (enabled or not), or a --query, over the stored articles or a folder.

    Nothing is sent and nothing is written: the report says how many articles would have
    matched, per day, with a sample and its evidence.
    """
    if name is not None and query is not None:
        raise click.UsageError("give a rule NAME or --query, not both")
    if name is None and query is None:
        raise click.UsageError("give a rule NAME or --query")
    if folder is not None and (since or source):
        raise click.UsageError("--since and --source choose stored articles: not with --folder")
    try:
        since_at = utc_now() - parse_duration(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    with _errors():
        runtime = _runtime(config_path, with_channels=False)
        if query is not None:
            rule = compile_query(query, runtime.watchlist, _named_queries(runtime))
        else:
            rule = _chosen_rules(runtime, [str(name)])[0]
        if folder is not None:
            skipped: list[str] = []
            report = _backtest(rule, runtime, documents(folder, skipped), None, skipped, sample)
        else:
            store = Store.open(runtime.config.database.url, must_exist=True)
            try:
                store.upgrade()
                total = store.count_articles(since_at, source)
                articles = stored(store.stored_articles(since_at, source))
                report = _backtest(rule, runtime, articles, total, [], sample)
            finally:
                store.close()
    click.echo(_report_json(report) if fmt == "json" else "\n".join(render_backtest(report)))


def _named_queries(runtime: Runtime) -> dict[str, str]:
    named = dict(runtime.config.queries)
    named.update({r.name: r.query for r in runtime.config.rules})
    return named


def _backtest(
    rule: Rule,
    runtime: Runtime,
    candidates: Iterator[Candidate],
    total: int | None,
    skipped: list[str],
    sample: int = 5,
) -> BacktestReport:
    with click.progressbar(
        candidates, length=total, label="matching", file=sys.stderr, show_pos=True
    ) as bar:
        return backtest(rule, runtime.watchlist, bar, sample, skipped)


def _report_json(report: BacktestReport) -> str:
    return json.dumps(
        {
            "rule": report.rule,
            "version": report.version,
            "examined": report.examined,
            "matched": report.matched,
            "per_day": {d.isoformat(): n for d, n in sorted(report.per_day.items())},
            "sample": [
                {
                    "article": s.label,
                    "title": s.article.title,
                    "url": s.article.url,
                    "evidence": [asdict(m) for m in s.evidence],
                }
                for s in report.samples
            ],
            "skipped": report.skipped,
        },
        ensure_ascii=False,
    )


@main.command()
@config_option
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def sources(config_path: Path | None, fmt: str) -> None:
    """How every source is doing: status, last success, last error, failures in a row, next
    check, new items per day and coverage gaps over the last week."""
    with _errors():
        config = _config(config_path)
        store = Store.open(config.database.url, must_exist=True)
        try:
            store.upgrade()
            store.sync_sources(config.sources, utc_now())
            health = store.sources_health(utc_now())
        finally:
            store.close()
    configured = {s.name for s in config.sources}
    health = [h for h in health if h.name in configured]
    if fmt == "json":
        for h in health:
            click.echo(json.dumps(asdict(h), ensure_ascii=False, default=_iso))
        return
    headers = ["source", "status", "last success", "failures", "next check", "items/day", "gaps"]
    rows = [_health_row(h) for h in health]
    click.echo(_columns(headers, rows))
    for h in health:
        if h.last_error:
            click.echo(f"{h.name}: {h.last_error}")


def _health_row(health: SourceHealth) -> list[str]:
    def when(value: datetime | None) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else "-"

    return [
        health.name,
        health.status,
        when(health.last_success_at),
        str(health.error_count),
        when(health.next_check_at),
        f"{health.items_per_day:.1f}",
        str(health.overflows),
    ]


def _columns(headers: list[str], rows: list[list[str]]) -> str:
    widths = [min(max(len(h), *(len(r[i]) for r in rows)), 50) for i, h in enumerate(headers)]
    fmt_row = "  ".join(f"{{:{w}.{w}}}" for w in widths)
    return "\n".join([fmt_row.format(*headers), *(fmt_row.format(*r) for r in rows)])


@main.command("log")
@config_option
@click.argument("what", type=click.Choice(["articles", "alerts", "stories", "ops"]))
@click.option("--actor", help="Only those naming this actor id.")
@click.option("--topic", help="Only those about this topic id.")
@click.option("--rule", help="Only those matched by this rule.")
@click.option("--source", help="Only those from this source.")
@click.option("--since", help="Only the recent ones, e.g. 2d, 12h, 30m.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@table_or_json
def log_command(
    config_path: Path | None,
    what: str,
    fmt: str,
    since: str | None,
    limit: int,
    **filters: str | None,
) -> None:
    """Review recent articles, alerts, stories or operational events from the log."""
    try:
        since_at = utc_now() - parse_duration(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    with _errors():
        store = Store.open(_config(config_path).database.url, must_exist=True)
        store.upgrade()
        query = LogFilter(since=since_at, limit=limit, **filters)
        records: Sequence[ArticleRecord | MatchFate | OpsEvent | StoryRecord]
        if what == "ops":
            records = store.ops_events(limit=limit)
        elif what == "stories":
            records = store.stories(query)
        else:
            records = store.articles(query) if what == "articles" else store.fates(query)
        store.close()
    if fmt == "json":
        for record in records:
            click.echo(json.dumps(asdict(record), ensure_ascii=False, default=_iso))
    elif what == "stories":
        click.echo(_stories_text(records) if records else "no stories match")  # type: ignore[arg-type]
    else:
        click.echo(_table(records, what))  # type: ignore[arg-type]


def _stories_text(records: Sequence[StoryRecord]) -> str:
    """Each story: a heading line, then one line per article (its outlet, title and link)."""
    blocks = []
    for record in records:
        story = record.story
        lines = [
            f"story {story.id}: {story.title.replace(chr(10), ' ')}",
            f"  {story.first_seen:%Y-%m-%d %H:%M} – {story.last_seen:%Y-%m-%d %H:%M},"
            f" {story.articles} article{'' if story.articles == 1 else 's'},"
            f" outlets: {', '.join(story.outlets)}",
        ]
        for article in record.articles:
            repeat = f" (repeats {article.duplicate_of})" if article.duplicate_of else ""
            lines.append(
                f"  - [{article.id}] {article.outlet}: {article.title.replace(chr(10), ' ')}"
                f"{repeat}\n      {article.url or '-'}"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _iso(value: object) -> str:
    """Times in JSON output, as ISO 8601."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_HEADERS = {
    "articles": ["id", "fetched", "source", "title", "actors", "topics", "rules"],
    "alerts": ["match", "created", "rule", "source", "title", "story", "what happened"],
    "ops": ["id", "opened", "cleared", "kind", "subject", "message"],
}


def _table(records: Sequence[ArticleRecord | MatchFate | OpsEvent], what: str) -> str:
    if not records:
        return f"no {what} match"
    return _columns(_HEADERS[what], [_row(r) for r in records])


def _row(record: ArticleRecord | MatchFate | OpsEvent) -> list[str]:
    if isinstance(record, OpsEvent):
        cleared = f"{record.resolved_at:%Y-%m-%d %H:%M}" if record.resolved_at else "-"
        opened = f"{record.opened_at:%Y-%m-%d %H:%M}"
        return [str(record.id), opened, cleared, record.kind, record.subject, record.message]
    if isinstance(record, ArticleRecord):
        return [
            str(record.id),
            f"{record.fetched_at:%Y-%m-%d %H:%M}",
            record.source,
            record.title.replace("\n", " "),
            ",".join(record.actors),
            ",".join(record.topics),
            ",".join(record.rules),
        ]
    return [
        str(record.id),
        f"{record.created_at:%Y-%m-%d %H:%M}",
        record.rule,
        record.source,
        record.title.replace("\n", " "),
        str(record.story_id) if record.story_id is not None else "-",
        _fate(record),
    ]


def _fate(record: MatchFate) -> str:
    """``alert 12: slack:sent email:quiet(held for quiet hours until …)``, ``grouped into …``."""
    deliveries = " ".join(_delivery_cell(d) for d in record.deliveries)
    if record.outcome == "alert":
        said = f"alert {record.alert_id}"
    elif record.outcome == "update":
        said = f"alert {record.alert_id}, {record.reason}"
    elif record.outcome == "backfill":
        said = "not alerted: older than the source's backfill window on its first poll"
    else:
        said = record.reason or record.outcome
    return f"{said}: {deliveries}" if deliveries and record.outcome != "silenced" else said


def _delivery_cell(delivery: DeliveryRecord) -> str:
    """``slack:sent``, ``email:pending(3 attempts)``, ``chat:quiet(held for quiet hours …)``."""
    how = {"quiet": "quiet hours", "digest": "digest"}.get(delivery.mode)
    if delivery.status == "sent":
        together = (delivery.note or "").startswith(SENT_TOGETHER)
        detail = f"in a {how}" if how else delivery.note if together else None
        return f"{delivery.channel}:sent" + (f"({detail})" if detail else "")
    details = [delivery.note] if delivery.note else []
    if delivery.attempts:
        details.append(f"{delivery.attempts} attempts")
    if delivery.set_aside:
        details.append("set aside")
    status = "held" if delivery.status == "pending" and how else delivery.status
    return f"{delivery.channel}:{status}" + (f"({', '.join(details)})" if details else "")


@main.group()
def notify() -> None:
    """Check the channels alerts go to."""


@notify.command("test")
@config_option
@click.argument("channel")
@click.option("--digest", is_flag=True, help="Send a sample digest too.")
def notify_test(config_path: Path | None, channel: str, digest: bool) -> None:
    """Send CHANNEL a sample alert (made from a seed article), as the daemon would."""
    with _errors():
        runtime = _runtime(config_path)
        target = runtime.channels.get(channel)
        if target is None:
            known = ", ".join(sorted(runtime.channels)) or "none defined"
            raise click.ClickException(f"no channel named {channel!r} (channels: {known})")
        alert, digest_message = sample_messages(utc_now())
        for message in (alert, digest_message) if digest else (alert,):
            what = "digest" if isinstance(message, Digest) else "alert"
            try:
                target.send(message)
            except DeliveryError as exc:
                raise click.ClickException(f"{channel}: the sample {what} failed: {exc}") from exc
            click.echo(f"{channel}: the sample {what} was accepted")


#: Outlets the sample story has been published by, beyond the seed corpus.
SAMPLE_OUTLETS = ("seed-corpus", "Reuters", "Associated Press", "BBC News")


def sample_messages(now: datetime) -> tuple[AlertMessage, Digest]:
    """A sample alert from a seed article, matched against the seeded watchlist, as the
    first alert of a story of several outlets; and a digest of it, an update of it and
    another story."""
    matcher = Matcher(load_watchlist([seeds_dir() / "watchlist.toml"]))
    names: dict[tuple[str, str], str] = {(e.kind, e.id): e.name for e in matcher.watchlist.entities}
    corpus = sorted((seeds_dir() / "corpus").glob("*.txt"))
    messages = []
    for index, path in enumerate(corpus[1:3], start=1):
        article = replace(
            read_document(path, source="seed-corpus"),
            url=f"https://example.org/monitor/sample-{index}",
            published=now,
        )
        mentions = matcher.find(article)
        messages.append(
            replace(
                build_message("notify-test", article, mentions, mentions, names),
                story_id=index,
                story_title=article.title,
                outlets=SAMPLE_OUTLETS[: 5 - index],
                articles=5 - index,
            )
        )
    first, other = messages
    update = replace(
        first,
        kind="update",
        follows=1,
        outlets=(*first.outlets, "The Guardian"),
        articles=first.articles + 1,
        changes=("new outlet: The Guardian", f"now {len(first.outlets) + 1} outlets"),
    )
    return first, Digest("digest", (first, update, other), since=now)


@main.group()
def watchlist() -> None:
    """Work with watchlists."""


@watchlist.command("extract")
@click.argument(
    "dirs", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False, exists=True)
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the TOML here instead of standard output.",
)
@click.option(
    "--min-mentions",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Leave out what is seen fewer times than this.",
)
def extract(dirs: Sequence[Path], output: Path | None, min_mentions: int) -> None:
    """Propose actors (with aliases) and topics from folders of documents, as editable TOML."""
    texts = []
    for folder in dirs:
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES):
            try:
                document = read_document(path)
            except ParseError as exc:
                click.echo(f"monitor: skipping {path}: {exc}", err=True)
                continue
            texts.append(f"{document.title}\n\n{document.summary}\n\n{document.text}")
    if not texts:
        raise click.ClickException(
            "no .txt, .md or .json documents found in " + ", ".join(map(str, dirs))
        )
    toml = render_toml(propose_watchlist(texts, min_mentions=min_mentions))
    if output:
        try:
            output.write_text(toml, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
        click.echo(
            f"monitor: wrote a proposed watchlist from {len(texts)} documents to {output}", err=True
        )
    else:
        click.echo(toml, nl=False)


@main.group()
def silence() -> None:
    """Silence alerts for a while: they are kept in the log, marked, and not sent."""


@silence.command("add")
@config_option
@click.option("--actor", help="Alerts about articles naming this actor id.")
@click.option("--topic", help="Alerts about articles on this topic id.")
@click.option("--source", help="Alerts about articles from this source.")
@click.option("--rule", help="Alerts of this rule.")
@click.option("--for", "duration", required=True, help="How long, e.g. 48h, 2d, 30m.")
@click.option("--reason", required=True, help="Why: shown with every alert it silences.")
@click.option("--by", "created_by", help="Who silences (default: the user running this).")
def silence_add(
    config_path: Path | None,
    duration: str,
    reason: str,
    created_by: str | None,
    **covers: str | None,
) -> None:
    """Silence alerts matching every option given (--actor, --topic, --source, --rule)."""
    if not any(covers.values()):
        raise click.UsageError("say what to silence: --actor, --topic, --source and/or --rule")
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from exc
    if not reason.strip():
        raise click.BadParameter("give a reason", param_hint="--reason")
    with _errors():
        runtime = _runtime(config_path, with_channels=False)
        _check_silence_targets(runtime, covers)
        store = Store.open(runtime.config.database.url)
        store.upgrade()
        now = utc_now()
        made = store.add_silence(
            created_by=created_by or getpass.getuser(),
            reason=reason.strip(),
            expires_at=now + length,
            now=now,
            **covers,
        )
        store.close()
    click.echo(f"silence {made.id} until {made.expires_at:%Y-%m-%d %H:%M} UTC: {made.matchers}")


def _check_silence_targets(runtime: Runtime, covers: dict[str, str | None]) -> None:
    """A silence naming an actor, topic, source or rule that does not exist is a typo."""
    known = {
        "actor": {e.id for e in runtime.watchlist.entities if e.kind == "actor"},
        "topic": {e.id for e in runtime.watchlist.entities if e.kind == "topic"},
        "source": {s.name for s in runtime.config.sources},
        "rule": {r.name for r in runtime.config.rules},
    }
    for field, value in covers.items():
        if value is not None and value not in known[field]:
            close = difflib.get_close_matches(value, known[field], n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"see the {field}s configured"
            raise click.BadParameter(f"no {field} {value!r}: {hint}", param_hint=f"--{field}")


@silence.command("list")
@config_option
@click.option("--all", "include_ended", is_flag=True, help="Ended silences too.")
@table_or_json
def silence_list(config_path: Path | None, include_ended: bool, fmt: str) -> None:
    """Active silences, newest first."""
    with _errors():
        store = Store.open(_config(config_path).database.url, must_exist=True)
        store.upgrade()
        found = store.silences(utc_now(), include_ended=include_ended)
        store.close()
    if fmt == "json":
        for item in found:
            click.echo(json.dumps(asdict(item), ensure_ascii=False, default=_iso))
        return
    if not found:
        click.echo("no silences" if include_ended else "no active silences")
        return
    headers = ["id", "created", "by", "until", "ended", "covers", "reason"]
    rows = [
        [
            str(item.id),
            f"{item.created_at:%Y-%m-%d %H:%M}",
            item.created_by,
            f"{item.expires_at:%Y-%m-%d %H:%M}",
            f"{item.expired_at:%Y-%m-%d %H:%M}" if item.expired_at else "-",
            item.matchers,
            item.reason,
        ]
        for item in found
    ]
    click.echo(_columns(headers, rows))


@silence.command("expire")
@config_option
@click.argument("silence_id", type=int)
def silence_expire(config_path: Path | None, silence_id: int) -> None:
    """End a silence now: later alerts it covered are sent again."""
    with _errors():
        store = Store.open(_config(config_path).database.url, must_exist=True)
        store.upgrade()
        ended = store.expire_silence(silence_id, utc_now())
        store.close()
    if ended is None:
        raise click.ClickException(f"no silence {silence_id}")
    when = ended.expired_at or ended.expires_at
    click.echo(f"silence {ended.id} ended {when:%Y-%m-%d %H:%M} UTC")


@main.group()
def db() -> None:
    """Manage the database."""


@db.command()
@config_option
def upgrade(config_path: Path | None) -> None:
    """Apply database migrations (run and poll also do this on start)."""
    with _errors():
        store = Store.open(_config(config_path).database.url)
        store.upgrade()
        store.close()
    click.echo("database is up to date")
