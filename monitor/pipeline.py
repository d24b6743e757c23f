"""The orchestrator: the one place that owns the order of the stages and what a failure means.

    source → fetch → parse → identity → store (new only) → match → rules → outbox → deliver

A poll reads what the database knows of the source, fetches and parses it, keeps only articles
not seen before, matches them, decides which rule hits alert, and writes all of it in one
transaction. A broken source is recorded on the source with its error and retried later with
backoff; it never stops the others. Delivery drains the outbox: each pending delivery is sent,
then marked sent, or its failure recorded with a retry time (exponential backoff with jitter).
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from monitor.config import BACKFILL_ALL, SourceConfig
from monitor.errors import DeliveryError, FetchError, MonitorError, ParseError, StoreError
from monitor.fetch import Fetcher
from monitor.folder import list_documents, read_folder_document
from monitor.identity import article_keys
from monitor.matcher import Matcher
from monitor.messages import build_message
from monitor.models import (
    AlertPlan,
    Article,
    FetchOutcome,
    NewArticle,
    PendingDelivery,
    SourceState,
)
from monitor.parse import parse_feed
from monitor.runtime import Runtime
from monitor.store import CLAIM_RENEWAL, PROBE_AFTER, Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_SOURCE_BACKOFF = timedelta(hours=6)  # a failing source is retried at least this often
MAX_DELIVERY_BACKOFF = timedelta(hours=1)  # a failing channel is retried at least this often
MAX_PROBES = 3  # deliveries tried, one round, past one its channel keeps refusing


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
    status: Literal["ok", "not_modified"] = "ok"
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    warning: str | None = None
    items: int | None = None  # items the source holds, when more than the articles read
    only_new: bool = False  # the articles were checked against the store already


class Pipeline:
    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        fetcher: Fetcher,
        *,
        clock: Clock = utc_now,
        stop: threading.Event | None = None,
        claim_renewal: timedelta = CLAIM_RENEWAL,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.fetcher = fetcher
        self.clock = clock
        self.stop = stop or threading.Event()
        self.claim_renewal = claim_renewal
        self.matcher = Matcher(runtime.watchlist)
        self._names: dict[tuple[str, str], str] = {
            (e.kind, e.id): e.name for e in runtime.watchlist.entities
        }
        self._sources = {s.name: s for s in runtime.config.sources if s.enabled}

    @classmethod
    def open(cls, runtime: Runtime) -> Pipeline:
        """A pipeline on the configured database (migrated) with a fetcher of its own."""
        store = Store.open(runtime.config.database.url)
        try:
            store.upgrade()
        except StoreError:
            store.close()
            raise
        return cls(runtime, store, Fetcher(runtime.config.fetch.settings()))

    def close(self) -> None:
        self.fetcher.close()
        self.store.close()

    # --- polling -------------------------------------------------------------------------

    def prepare(self) -> None:
        """Make sure the database knows every configured source."""
        self.store.sync_sources(self.runtime.config.sources, self.clock())

    def due_sources(self) -> list[SourceConfig]:
        """The enabled sources whose next check is due."""
        due = self.store.due_sources(list(self._sources), self.clock())
        return [self._sources[name] for name in due]

    def poll_due(self) -> list[PollReport]:
        """Poll the enabled sources whose next check is due, and wait for all of them."""
        return self._poll_many(self.due_sources())

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
        """Fetch, parse, match and store one source. Raises only StoreError: anything else
        that goes wrong is recorded on the source, which is retried later with backoff."""
        state = self.store.source_state(source.name)
        started, clock_start = self.clock(), time.monotonic()
        try:
            fetched = self._fetch(source, state)
            keys = [key for key, _ in fetched.articles]
            known = set() if fetched.only_new else self.store.known_keys(state.id, keys)
            new = self._new_articles(source, state, fetched.articles, known, started)
        except StoreError:
            raise
        except Exception as exc:  # a broken source, or a bug in its handling: never the others
            if not isinstance(exc, FetchError | ParseError):
                log.exception("unexpected error polling source=%s", source.name)
            return self._record_failure(source, state, started, clock_start, exc)
        outcome = FetchOutcome(
            started_at=started,
            status=fetched.status,
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
        """Only the documents not stored yet are read."""
        assert source.path is not None
        listed = list_documents(source.path)
        known = self.store.known_keys(state.id, list(listed))
        articles, problems = [], []
        for key, path in listed.items():
            if key in known:
                continue
            try:
                articles.append((key, read_folder_document(path, source.name)))
            except (ParseError, OSError) as exc:
                log.warning(
                    "unreadable document source=%s file=%s error=%s", source.name, path, exc
                )
                problems.append(str(exc))
        warning = "; ".join(problems)[:2000] or None
        return _Fetched(articles, warning=warning, items=len(listed), only_new=True)

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
                rule_version=hit.version,
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
        """Send every delivery whose time has come, each channel in alert order.

        A failed delivery holds its channel, and the channel's later deliveries, until its
        retry. Once it has failed ``PROBE_AFTER`` times, the channel is probed with its next
        deliveries: if one goes through, the channel works and refuses only the messages before
        it, which are set aside to be retried alone; if a fresh one fails, the channel is down
        and holds, keeping its order."""
        tally = {outcome: 0 for outcome in _Attempt}
        done: set[int] = set()  # sent or tried here as probes
        held: set[str] = set()  # channels finished for this round
        due = self.store.due_deliveries(self.clock())
        for index, delivery in enumerate(due):
            if self.stop.is_set():
                break
            if delivery.channel in held or delivery.id in done:
                continue
            result = self._attempt(delivery)
            tally[result.outcome] += 1
            if result.outcome is _Attempt.TAKEN:
                held.add(delivery.channel)  # another process is sending to it
            elif result.outcome is _Attempt.FAILED and not result.set_aside:
                later = [d for d in due[index + 1 :] if d.channel == delivery.channel]
                if not self._probe(delivery, result, later, done, tally):
                    self.store.hold_channel(delivery.channel, result.retry_at)
                    held.add(delivery.channel)
        failed = tally[_Attempt.FAILED] + tally[_Attempt.GIVEN_UP]
        return DeliveryReport(tally[_Attempt.SENT], failed)

    def _probe(
        self,
        failing: PendingDelivery,
        result: _Result,
        later: list[PendingDelivery],
        done: set[int],
        tally: dict[_Attempt, int],
    ) -> bool:
        """After repeated failures, try the channel's next deliveries, at most ``MAX_PROBES``:
        True if one went through (the refused ones before it are set aside)."""
        if result.attempts < PROBE_AFTER:
            return False
        refused = [failing]
        for probe in later[:MAX_PROBES]:
            done.add(probe.id)
            outcome = self._attempt(probe)
            tally[outcome.outcome] += 1
            if outcome.outcome is _Attempt.SENT:
                for delivery in refused:
                    self.store.set_aside(delivery.id)
                    log.warning(
                        "delivery set aside: its channel takes other messages channel=%s "
                        "alert_id=%d",
                        delivery.channel,
                        delivery.alert_id,
                    )
                return True
            if outcome.outcome is not _Attempt.FAILED or outcome.attempts < PROBE_AFTER:
                return False  # a fresh failure: the channel is down
            refused.append(probe)
        return False

    def _attempt(self, delivery: PendingDelivery) -> _Result:
        """Claim, send and record one delivery."""
        now = self.clock()
        claim = self.store.claim(delivery.id, now)
        if claim is None:
            return _Result(_Attempt.TAKEN, now, delivery.attempts, delivery.set_aside)
        attempts = claim.attempts + 1
        retry_at = now + _backoff(
            self.runtime.config.daemon.retry_base, attempts, MAX_DELIVERY_BACKOFF
        )
        channel = self.runtime.channels.get(delivery.channel)
        if channel is None:
            error = f"channel {delivery.channel!r} is no longer configured"
            self.store.give_up(delivery.id, claim.token, error)
            log.error(
                "delivery given up channel=%s alert_id=%d error=%s",
                delivery.channel,
                delivery.alert_id,
                error,
            )
            return _Result(_Attempt.GIVEN_UP, retry_at, attempts, claim.set_aside)
        try:
            with self._claim_kept(delivery, claim.token):
                channel.send(delivery.message)
        except Exception as exc:  # DeliveryError, or a bug in a channel: record and retry
            if not isinstance(exc, DeliveryError):
                log.exception("unexpected error sending channel=%s", delivery.channel)
            self.store.mark_failed(delivery.id, claim.token, describe(exc), retry_at)
            log.warning(
                "delivery failed channel=%s alert_id=%d attempt=%d error=%s",
                delivery.channel,
                delivery.alert_id,
                attempts,
                exc,
            )
            return _Result(_Attempt.FAILED, retry_at, attempts, claim.set_aside)
        if not self.store.mark_sent(delivery.id, claim.token, self.clock()):
            log.warning(
                "delivery sent after its claim expired (it may be sent twice) channel=%s "
                "alert_id=%d",
                delivery.channel,
                delivery.alert_id,
            )
        log.info("delivered channel=%s alert_id=%d", delivery.channel, delivery.alert_id)
        return _Result(_Attempt.SENT, retry_at, attempts, claim.set_aside)

    @contextmanager
    def _claim_kept(self, delivery: PendingDelivery, token: str) -> Iterator[None]:
        """Renew the claim on ``delivery`` while it is being sent: a slow send keeps it, and
        the claim of a process that dies expires soon after."""
        sent = threading.Event()

        def renew() -> None:
            while not sent.wait(self.claim_renewal.total_seconds()):
                try:
                    self.store.renew_claim(delivery.id, token, self.clock())
                except StoreError as exc:
                    log.warning(
                        "cannot renew the claim on a delivery channel=%s alert_id=%d error=%s",
                        delivery.channel,
                        delivery.alert_id,
                        exc,
                    )

        renewer = threading.Thread(target=renew, name="claim", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            sent.set()
            renewer.join()


class _Attempt(enum.Enum):
    SENT = "sent"
    FAILED = "failed"
    TAKEN = "taken"  # claimed by another process
    GIVEN_UP = "given up"


@dataclass(frozen=True)
class _Result:
    outcome: _Attempt
    retry_at: datetime  # when a failed delivery is tried again
    attempts: int  # attempts made, this one included
    set_aside: bool


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
    """base × 2^(failures-1) plus up to 25% jitter (so retries do not move in step), capped."""
    jittered: timedelta = base * (2 ** min(failures - 1, 20)) * random.uniform(1.0, 1.25)
    return min(jittered, max(ceiling, base))
