"""The orchestrator: the one place that owns the order of the stages and what a failure means.

    source → fetch → parse → identity → store (new only) → match → rules → outbox → deliver

A poll reads what the database knows of the source, fetches and parses it, keeps only articles
not seen before, matches them, decides which rule hits alert, and writes all of it in one
transaction. A broken source is recorded on the source with its error and retried later with
backoff; it never stops the others. Delivery drains the outbox: each pending delivery is sent,
then marked sent, or its failure recorded with a retry time (exponential backoff with jitter).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config import BACKFILL_ALL, SourceConfig
from monitor.errors import DeliveryError, FetchError, MonitorError, ParseError, StoreError
from monitor.fetch import Fetcher
from monitor.identity import article_keys, document_key
from monitor.matcher import Matcher
from monitor.messages import build_message
from monitor.models import AlertPlan, Article, FetchOutcome, NewArticle, SourceState
from monitor.parse import DOCUMENT_SUFFIXES, parse_feed, read_document
from monitor.runtime import Runtime
from monitor.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_SOURCE_BACKOFF = timedelta(hours=6)  # a failing source is retried at least this often
MAX_DELIVERY_BACKOFF = timedelta(hours=1)  # a failing channel is retried at least this often


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PollReport:
    source: str
    status: str  # ok | not_modified | error
    items: int
    new: int
    alerts: int
    error: str | None = None


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int


@dataclass(frozen=True)
class _Fetched:
    articles: list[tuple[str, Article]]  # (identity key, article)
    status: str = "ok"
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    warning: str | None = None
    items: int | None = None  # items the source holds, when more than the articles read


class Pipeline:
    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        fetcher: Fetcher,
        *,
        clock: Clock = utc_now,
        stop: threading.Event | None = None,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.fetcher = fetcher
        self.clock = clock
        self.stop = stop or threading.Event()
        self.matcher = Matcher(runtime.watchlist)
        self._names: dict[tuple[str, str], str] = {
            (e.kind, e.id): e.name for e in runtime.watchlist.entities
        }
        self._sources = {s.name: s for s in runtime.config.sources if s.enabled}

    # --- polling -------------------------------------------------------------------------

    def prepare(self) -> None:
        """Make sure the database knows every configured source."""
        self.store.sync_sources(self.runtime.config.sources, self.clock())

    def poll_due(self) -> list[PollReport]:
        """Poll the enabled sources whose next check is due."""
        due = self.store.due_sources(list(self._sources), self.clock())
        return self._poll_many([self._sources[name] for name in due])

    def poll_all(self) -> list[PollReport]:
        """Poll every enabled source now, whatever its schedule."""
        return self._poll_many(list(self._sources.values()))

    def _poll_many(self, sources: Sequence[SourceConfig]) -> list[PollReport]:
        if not sources:
            return []
        workers = min(self.runtime.config.daemon.concurrency, len(sources))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
            futures = [pool.submit(self._poll_unless_stopping, s) for s in sources]
            reports = [f.result() for f in futures]
        return [r for r in reports if r is not None]

    def _poll_unless_stopping(self, source: SourceConfig) -> PollReport | None:
        return None if self.stop.is_set() else self.poll_source(source)

    def poll_source(self, source: SourceConfig) -> PollReport:
        """Fetch, parse, match and store one source. Raises only StoreError."""
        state = self.store.source_state(source.name)
        started, clock_start = self.clock(), time.monotonic()
        try:
            fetched = self._fetch(source, state)
        except (FetchError, ParseError) as exc:
            return self._record_failure(source, state, started, clock_start, exc)
        except StoreError:
            raise
        except Exception as exc:  # a bug in one source's handling must not stop the others
            log.exception("unexpected error polling source=%s", source.name)
            return self._record_failure(source, state, started, clock_start, exc)
        known = self.store.known_keys(state.id, [key for key, _ in fetched.articles])
        new = self._new_articles(source, state, fetched.articles, known, started)
        outcome = FetchOutcome(
            started_at=started,
            status=fetched.status,  # type: ignore[arg-type]
            duration_ms=int((time.monotonic() - clock_start) * 1000),
            next_check_at=started + source.interval,
            http_status=fetched.http_status,
            items=fetched.items if fetched.items is not None else len(fetched.articles),
            error=fetched.warning,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
        )
        added = self.store.save_poll(state, outcome, new)
        alerts = sum(1 for item in new for plan in item.alerts if plan.suppressed is None)
        log.info(
            "polled source=%s status=%s items=%d new=%d alerts=%d",
            source.name,
            fetched.status,
            outcome.items,
            added,
            alerts,
        )
        return PollReport(source.name, fetched.status, outcome.items, added, alerts)

    def _fetch(self, source: SourceConfig, state: SourceState) -> _Fetched:
        if source.path is not None:
            return self._read_folder(source, state)
        assert source.url is not None
        result = self.fetcher.fetch(source.url, etag=state.etag, last_modified=state.last_modified)
        if result.not_modified:
            return _Fetched([], "not_modified", result.status, state.etag, state.last_modified)
        headers = {"content-location": result.url, **result.headers}  # resolves relative links
        feed = parse_feed(result.body, headers=headers, source=source.name)
        if feed.warning:
            log.warning(
                "feed is malformed but usable source=%s error=%s", source.name, feed.warning
            )
        keys = article_keys(feed.articles)
        pairs = list(zip(keys, feed.articles, strict=True))
        return _Fetched(pairs, "ok", result.status, result.etag, result.last_modified, feed.warning)

    def _read_folder(self, source: SourceConfig, state: SourceState) -> _Fetched:
        folder = source.path
        assert folder is not None
        if not folder.is_dir():
            raise FetchError(f"folder {folder} does not exist")
        files = sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES and p.is_file()
        )
        keyed = {document_key(p.relative_to(folder).as_posix()): p for p in files}
        known = self.store.known_keys(state.id, list(keyed))
        articles, problems = [], []
        for key, path in keyed.items():
            if key in known:
                continue
            try:
                articles.append((key, _as_file(read_document(path, source=source.name), path)))
            except ParseError as exc:
                log.warning(
                    "unreadable document source=%s file=%s error=%s", source.name, path, exc
                )
                problems.append(str(exc))
        return _Fetched(articles, warning="; ".join(problems)[:2000] or None, items=len(keyed))

    def _new_articles(
        self,
        source: SourceConfig,
        state: SourceState,
        articles: list[tuple[str, Article]],
        known: set[str],
        now: datetime,
    ) -> list[NewArticle]:
        fresh: dict[str, Article] = {}
        for key, article in articles:
            if key not in known:
                fresh.setdefault(key, article)
        return [self._decide(key, a, source, state, now) for key, a in fresh.items()]

    def _decide(
        self, key: str, article: Article, source: SourceConfig, state: SourceState, now: datetime
    ) -> NewArticle:
        """Match one new article and decide what each rule hit does."""
        mentions = self.matcher.find(article)
        hits = self.runtime.rules.evaluate(article, mentions)
        suppressed = None if _alerts_on(article, source, state, now) else "backfill"
        plans = tuple(
            AlertPlan(
                rule=hit.rule,
                channels=rule.channels,
                message=build_message(hit.rule, article, mentions, hit.mentions, self._names),
                evidence=hit.mentions,
                suppressed=suppressed,
            )
            for hit in hits
            if (rule := self.runtime.rules.get(hit.rule)) is not None
        )
        return NewArticle(key, article, mentions, plans)

    def _record_failure(
        self,
        source: SourceConfig,
        state: SourceState,
        started: datetime,
        clock_start: float,
        exc: Exception,
    ) -> PollReport:
        error = describe(exc)
        delay = _backoff(source.interval, state.error_count + 1, MAX_SOURCE_BACKOFF)
        outcome = FetchOutcome(
            started_at=started,
            status="error",
            duration_ms=int((time.monotonic() - clock_start) * 1000),
            next_check_at=started + delay,
            http_status=getattr(exc, "status", None),
            error=error,
        )
        self.store.save_poll(state, outcome, [])
        log.warning(
            "source failed source=%s error=%s retry_in=%ds",
            source.name,
            error,
            delay.total_seconds(),
        )
        return PollReport(source.name, "error", 0, 0, 0, error)

    # --- delivering ----------------------------------------------------------------------

    def deliver_due(self) -> DeliveryReport:
        """Send every delivery whose time has come; a failing channel waits for its retry."""
        sent = failed = 0
        blocked: set[str] = set()  # channels that failed this round keep their order
        for delivery in self.store.due_deliveries(self.clock()):
            if self.stop.is_set():
                break
            if delivery.channel in blocked:
                continue
            try:
                self._send(delivery.channel, delivery.message)
            except Exception as exc:  # DeliveryError, or a bug in a channel: record and retry
                if not isinstance(exc, DeliveryError):
                    log.exception("unexpected error sending channel=%s", delivery.channel)
                failed += 1
                blocked.add(delivery.channel)
                delay = _backoff(
                    self.runtime.config.daemon.retry_base,
                    delivery.attempts + 1,
                    MAX_DELIVERY_BACKOFF,
                )
                self.store.mark_failed(delivery.id, describe(exc), self.clock() + delay)
                log.warning(
                    "delivery failed channel=%s alert_id=%d attempt=%d error=%s",
                    delivery.channel,
                    delivery.alert_id,
                    delivery.attempts + 1,
                    exc,
                )
                continue
            self.store.mark_sent(delivery.id, self.clock())
            sent += 1
            log.info("delivered channel=%s alert_id=%d", delivery.channel, delivery.alert_id)
        return DeliveryReport(sent, failed)

    def _send(self, channel_name: str, message: object) -> None:
        channel = self.runtime.channels.get(channel_name)
        if channel is None:
            raise DeliveryError(f"channel {channel_name!r} is no longer configured")
        channel.send(message)  # type: ignore[arg-type]


def describe(exc: Exception) -> str:
    """Our errors say what happened; anything else is named by its type too."""
    return str(exc) if isinstance(exc, MonitorError) else f"{type(exc).__name__}: {exc}"


def _alerts_on(article: Article, source: SourceConfig, state: SourceState, now: datetime) -> bool:
    """Every new item alerts, except on a source's first poll: then only those published
    within the source's backfill window."""
    if not state.first_poll or source.backfill >= BACKFILL_ALL:
        return True
    if article.published is None or source.backfill <= timedelta(0):
        return False
    return article.published >= now - source.backfill


def _backoff(base: timedelta, failures: int, ceiling: timedelta) -> timedelta:
    """base × 2^(failures-1), capped, plus up to 25% jitter so retries do not move in step."""
    delay = min(base * (2 ** min(failures - 1, 20)), max(ceiling, base))
    jittered: timedelta = delay * random.uniform(1.0, 1.25)
    return jittered


def _as_file(article: Article, path: Path) -> Article:
    """A document links to its file, and without a date of its own takes the file's."""
    published = article.published or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return replace(article, url=article.url or path.resolve().as_uri(), published=published)
