"""The orchestrator: the one place that owns the order of the stages and what a failure means.

    source → fetch → parse → identity → store (new only) → match → rules → story → route
                                                                              → outbox → deliver

A poll reads what the database knows of the source, fetches it, parses it (a feed in a worker
process stopped at a deadline: ``monitor.sandbox``), keeps only articles not seen before, matches
them, works out what the story stage compares, and writes all of it in one transaction, with
the source's next check (see ``monitor.schedule``): inside it, each article joins a story
(``monitor.stories``) and each rule hit is routed (``monitor.routing``). A broken source is
recorded on the source with its error and retried later with backoff, and disabled (re-probed
slowly) after failing too often; it never stops the others. Delivery drains the outbox: each
pending delivery is sent, then marked sent, or its failure recorded with a retry time
(exponential backoff with jitter); a channel's digest, or what its quiet hours held, goes as one
message; a channel's rate limit is kept.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from monitor.config import BACKFILL_ALL, SourceConfig
from monitor.errors import DeliveryError, FetchError, MonitorError, ParseError, StoreError
from monitor.fetch import Fetcher
from monitor.folder import list_documents, read_folder_document, settling
from monitor.identity import article_keys
from monitor.matcher import Matcher
from monitor.messages import build_message
from monitor.models import (
    AlertMessage,
    AlertPlan,
    Article,
    Digest,
    FetchOutcome,
    Mention,
    Message,
    NewArticle,
    PendingDelivery,
    SourceState,
)
from monitor.ops import channel_issues, notice, source_issues
from monitor.routing import (
    SENT_TOGETHER,
    Mode,
    Router,
    digest_order,
    one_message,
    sent_together,
)
from monitor.runtime import Runtime
from monitor.sandbox import BoundedParser
from monitor.schedule import (
    Hints,
    adaptive_interval,
    backoff,
    header_hints,
    minutes,
    next_check,
    retry_after,
    update_period,
)
from monitor.store import CLAIM_RENEWAL, PROBE_AFTER, Claim, OpsEvent, Store
from monitor.stories import StoryFeatures, article_features, outlet_of

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
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
    hints: Hints = field(default_factory=Hints)  # when the source asks to be polled again
    unconditional: bool = False  # fetched without validators, to check them
    settle_in: float | None = None  # seconds until documents still being written have settled


class Pipeline:
    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        fetcher: Fetcher,
        *,
        parser: BoundedParser | None = None,
        clock: Clock = utc_now,
        stop: threading.Event | None = None,
        claim_renewal: timedelta = CLAIM_RENEWAL,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.fetcher = fetcher
        # Its worker processes start at the first feed parsed.
        self.parser = parser or BoundedParser(runtime.config.fetch.parse_limits())
        self.clock = clock
        self.stop = stop or threading.Event()
        self.claim_renewal = claim_renewal
        self.matcher = Matcher(runtime.watchlist)
        config = runtime.config
        self.router = Router(
            config.rules,
            config.channels,
            config.stories,
            frozenset(s.name for s in config.sources if s.important),
        )
        self._pace = {
            c.name: _Pace(*c.rate_limit) for c in config.channels if c.rate_limit is not None
        }
        self._names: dict[tuple[str, str], str] = {
            (e.kind, e.id): e.name for e in runtime.watchlist.entities
        }
        self._places = frozenset(
            e.id for e in runtime.watchlist.entities if e.actor_kind == "place"
        )
        self._sources = {s.name: s for s in runtime.config.sources if s.enabled}
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._hosts_lock = threading.Lock()

    @classmethod
    def open(cls, runtime: Runtime) -> Pipeline:
        """A pipeline on the configured database (migrated), with a fetcher and a parser of its
        own."""
        store = Store.open(runtime.config.database.url)
        try:
            store.upgrade()
        except StoreError:
            store.close()
            raise
        return cls(runtime, store, Fetcher(runtime.config.fetch.settings()))

    def close(self) -> None:
        self.parser.close()
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
        overflow = _overflowed(fetched, state, len(new))
        outcome = FetchOutcome(
            started_at=started,
            status=fetched.status,
            duration_ms=int((time.monotonic() - clock_start) * 1000),
            next_check_at=self._next_check(source, state, fetched, overflow, started),
            http_status=fetched.http_status,
            items=fetched.items if fetched.items is not None else len(fetched.articles),
            error=fetched.warning,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            overflow=overflow,
            feed_wait=fetched.hints.feed_wait,
        )
        self._report_coverage(source, state, fetched, overflow, len(new))
        saved = self.store.save_poll(state, outcome, new, self.router)
        log.info(
            "polled source=%s status=%s items=%d new=%d alerts=%d",
            source.name,
            fetched.status,
            outcome.items,
            saved.articles,
            saved.alerts,
        )
        return PollReport(source.name, fetched.status, outcome.items, saved.articles, saved.alerts)

    def _next_check(
        self,
        source: SourceConfig,
        state: SourceState,
        fetched: _Fetched,
        overflow: bool,
        now: datetime,
    ) -> datetime:
        """The source's interval (adapted to its rhythm, halved after an overflow) or later,
        if the source asked for that."""
        interval = source.interval
        shortest = min(source.min_interval, interval)  # never longer than the interval
        if source.adaptive:
            per_day = self.store.items_per_day(state.id, now)
            interval = adaptive_interval(per_day, shortest, source.interval)
        if overflow:
            interval = max(shortest, interval / 2)
        hints = Hints() if overflow else fetched.hints
        at, reason = next_check(now, interval, hints, self.runtime.config.daemon.max_interval)
        if reason:
            log.debug("source asks to wait source=%s hint=%s until=%s", source.name, reason, at)
        if fetched.settle_in is not None:  # documents were being written: read them soon
            at = min(at, now + timedelta(seconds=fetched.settle_in + 1))
        return at

    def _report_coverage(
        self, source: SourceConfig, state: SourceState, fetched: _Fetched, overflow: bool, new: int
    ) -> None:
        if overflow:
            log.warning(
                "coverage: every item was new, some may have scrolled off since the last poll;"
                " polling sooner source=%s items=%d",
                source.name,
                new,
            )
        same_validators = (state.etag is not None and fetched.etag == state.etag) or (
            state.last_modified is not None and fetched.last_modified == state.last_modified
        )
        if fetched.unconditional and new and same_validators:
            log.warning(
                "the server answered 304 Not Modified %d times in a row but had new items:"
                " its validators cannot be trusted source=%s new=%d",
                state.not_modified_streak,
                source.name,
                new,
            )

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[None]:
        """At most ``[fetch] per_host`` requests to one host at a time."""
        host = (urlsplit(url).hostname or "").lower()
        with self._hosts_lock:
            slot = self._hosts.get(host)
            if slot is None:
                slot = threading.BoundedSemaphore(self.runtime.config.fetch.per_host)
                self._hosts[host] = slot
        with slot:
            yield

    def _fetch(self, source: SourceConfig, state: SourceState) -> _Fetched:
        if source.path is not None:
            return self._read_folder(source, state)
        assert source.url is not None
        unconditional = state.not_modified_streak >= self.runtime.config.fetch.unconditional_after
        etag, modified = (None, None) if unconditional else (state.etag, state.last_modified)
        with self._host_slot(source.url):
            result = self.fetcher.fetch(source.url, etag=etag, last_modified=modified)
        hints = header_hints(result.headers, self.clock())
        if result.not_modified:  # what the feed asked last time still holds
            hints = replace(hints, ttl=state.feed_wait)
            return _Fetched(
                [], "not_modified", result.status, state.etag, state.last_modified, hints=hints
            )
        headers = {"content-location": result.url, **result.headers}  # resolves relative links
        feed = self.parser.parse(result.body, headers=headers, source=source.name)
        hints = replace(
            hints,
            ttl=minutes(feed.ttl_minutes),
            update_period=update_period(feed.update_period, feed.update_frequency),
        )
        if feed.warning:
            log.warning(
                "feed is malformed but usable source=%s error=%s", source.name, feed.warning
            )
        keys = article_keys(feed.articles)
        pairs = list(zip(keys, feed.articles, strict=True))
        return _Fetched(
            pairs,
            "ok",
            result.status,
            result.etag,
            result.last_modified,
            feed.warning,
            hints=hints,
            unconditional=unconditional,
        )

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
        return _Fetched(
            articles,
            warning=warning,
            items=len(listed),
            only_new=True,
            settle_in=settling(source.path),
        )

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
        story = self._story_features(article, mentions, source, now)
        return NewArticle(key, article, mentions, plans, story)

    def _story_features(
        self, article: Article, mentions: Sequence[Mention], source: SourceConfig, now: datetime
    ) -> StoryFeatures:
        """What the story stage compares, worked out here, before the write transaction."""
        outlet = outlet_of(article.url, source.name, folder=source.path is not None)
        return article_features(
            article,
            mentions,
            at=article.published or now,
            outlet=outlet,
            window=self.runtime.config.stories.window,
            places=self._places,
        )

    def _record_failure(
        self,
        source: SourceConfig,
        state: SourceState,
        started: datetime,
        clock_start: float,
        exc: Exception,
    ) -> PollReport:
        error = describe(exc)
        daemon = self.runtime.config.daemon
        failures = state.error_count + 1
        disabled = failures >= daemon.disable_after
        retry_at = started + backoff(source.interval, failures, daemon.max_interval)
        if isinstance(exc, FetchError) and exc.status in (429, 503):
            asked = retry_after(exc.headers, started)
            if asked and asked > retry_at:  # the server said when; never past the longest wait
                retry_at = min(asked, started + max(daemon.max_interval, source.interval))
        if disabled:
            retry_at = max(retry_at, started + daemon.reprobe_interval)
        outcome = FetchOutcome(
            started_at=started,
            status="error",
            duration_ms=int((time.monotonic() - clock_start) * 1000),
            next_check_at=retry_at,
            http_status=getattr(exc, "status", None),
            error=error,
            disabled=disabled,
        )
        self.store.save_poll(state, outcome, [])
        log.warning(
            "source failed source=%s error=%s failures=%d retry_in=%ds%s",
            source.name,
            error,
            failures,
            (retry_at - started).total_seconds(),
            " disabled=true" if disabled and state.disabled_at is None else "",
        )
        return PollReport(source.name, "error", 0, 0, 0, error)

    # --- operations ----------------------------------------------------------------------

    def check_operations(self) -> int:
        """Open and clear ops events (sources disabled or silent, channels down) and announce
        what changed through the ops channel. Returns the notices sent."""
        now, daemon = self.clock(), self.runtime.config.daemon
        health = [h for h in self.store.sources_health(now) if h.name in self._sources]
        rhythms = self.store.rhythms()
        newest = {name: last for name, (last, _) in rhythms.items()}
        issues = source_issues(health, rhythms, now)
        issues += channel_issues(self.store.failing_channels(), now, daemon.channel_down_after)
        found = {(i.kind, i.subject): i.message for i in issues}
        for event in self.store.ops_events(open_only=True):
            # a silent source stays silent until something new comes, whatever its rhythm now
            still_silent = event.kind == "source-silent" and event.subject in self._sources
            if still_silent and newest.get(event.subject, event.opened_at) <= event.opened_at:
                found.setdefault((event.kind, event.subject), event.message)
        self.store.sync_ops([(kind, subject, m) for (kind, subject), m in found.items()], now)
        sent = 0
        for event in self.store.ops_events(unannounced=True):
            if self._announce(event):
                self.store.mark_announced(event, now)
                sent += 1
        return sent

    def _announce(self, event: OpsEvent) -> bool:
        """Log the event, and send it through the ops channel; False to try again later."""
        cleared = event.resolved_at is not None
        log.warning(
            "ops %s kind=%s subject=%s message=%s",
            "cleared" if cleared else "issue",
            event.kind,
            event.subject,
            event.message,
        )
        name = self.runtime.config.daemon.ops_channel
        if name is None:
            return True
        if event.kind.startswith("source-") and event.subject not in self._sources:
            log.info("ops event closed: the source is no longer polled source=%s", event.subject)
            return True
        if event.kind == "channel-down" and event.subject == name and not cleared:
            log.error("the ops channel itself is down channel=%s; see the log", name)
            return True
        try:
            self.runtime.channels[name].send(notice(event))
        except DeliveryError as exc:
            log.error("cannot send an ops notice channel=%s error=%s", name, exc)
            return False
        return True

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
        due = self.store.due_deliveries(self.clock())
        held = self._deliver_gathered([d for d in due if d.mode != Mode.NOW], tally)
        due = [d for d in due if d.mode == Mode.NOW]
        together = sent_together(due)
        for index, delivery in enumerate(due):
            if self.stop.is_set():
                break
            if delivery.channel in held or delivery.id in done:
                continue
            group = together.get(delivery.id)
            if group is not None:  # several rules, one article: one message
                done.update(d.id for d in group)
                outcome = self._attempt_together(delivery.channel, group, _one_alert)
                tally[outcome] += len(group)
                if outcome is not _Attempt.SENT:
                    held.add(delivery.channel)
                continue
            result = self._attempt(delivery)
            tally[result.outcome] += 1
            if result.outcome in (_Attempt.TAKEN, _Attempt.POSTPONED):
                held.add(delivery.channel)  # another process is sending to it, or it must wait
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
        retry_at = now + backoff(
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
            self._keep_pace(delivery.channel, [delivery.id])
            with self._claims_kept([(delivery, claim.token)]):
                channel.send(delivery.message)
        except DeliveryError as exc:
            if exc.retry_after is None:
                return self._failed(delivery, claim, exc, retry_at, attempts, now)
            until = self._postponed(delivery.channel, [(delivery, claim)], exc.retry_after)
            return _Result(_Attempt.POSTPONED, until, attempts - 1, claim.set_aside)
        except Exception as exc:  # a bug in a channel: record and retry
            return self._failed(delivery, claim, exc, retry_at, attempts, now)
        if not self.store.mark_sent(delivery.id, claim.token, self.clock()):
            log.warning(
                "delivery sent after its claim expired (it may be sent twice) channel=%s "
                "alert_id=%d",
                delivery.channel,
                delivery.alert_id,
            )
        log.info("delivered channel=%s alert_id=%d", delivery.channel, delivery.alert_id)
        return _Result(_Attempt.SENT, retry_at, attempts, claim.set_aside)

    def _failed(
        self,
        delivery: PendingDelivery,
        claim: Claim,
        exc: Exception,
        retry_at: datetime,
        attempts: int,
        now: datetime,
    ) -> _Result:
        """Record a failed send, to be retried at ``retry_at``."""
        if not isinstance(exc, DeliveryError):
            log.exception("unexpected error sending channel=%s", delivery.channel)
        self.store.mark_failed(delivery.id, claim.token, describe(exc), retry_at, now)
        log.warning(
            "delivery failed channel=%s alert_id=%d attempt=%d error=%s",
            delivery.channel,
            delivery.alert_id,
            attempts,
            exc,
        )
        return _Result(_Attempt.FAILED, retry_at, attempts, claim.set_aside)

    def _postponed(
        self, channel: str, taken: list[tuple[PendingDelivery, Claim]], wait: timedelta
    ) -> datetime:
        """The service asked to wait (HTTP 429, Retry-After): the deliveries sent together, and
        the channel, wait that long; it is not a failure. Returns until when."""
        wait = min(wait, MAX_DELIVERY_BACKOFF)
        until = self.clock() + wait
        note = f"rate limited by the service: asked to wait {int(wait.total_seconds())}s"
        for delivery, claim in taken:
            self.store.postpone(delivery.id, claim.token, until, note)
        self.store.hold_channel(channel, until)
        log.warning(
            "delivery rate limited channel=%s alert_ids=%s wait=%ds",
            channel,
            ",".join(str(d.alert_id) for d, _ in taken),
            wait.total_seconds(),
        )
        return until

    def _deliver_gathered(self, due: list[PendingDelivery], tally: dict[_Attempt, int]) -> set[str]:
        """Send each channel's due digest, and what its quiet hours held, as one message each.
        Returns the channels that failed or must wait (finished for this round)."""
        gathered: dict[tuple[str, str], list[PendingDelivery]] = {}
        for delivery in due:
            gathered.setdefault((delivery.channel, delivery.mode), []).append(delivery)
        held = set()
        for (channel, mode), deliveries in gathered.items():
            if self.stop.is_set():
                break
            if channel in held:  # its other digest failed or must wait: not this round
                continue
            outcome = self._attempt_together(channel, deliveries, _digest_of(mode))
            tally[outcome] += len(deliveries)
            if outcome is not _Attempt.SENT:
                held.add(channel)
        return held

    def _attempt_together(
        self,
        channel_name: str,
        deliveries: list[PendingDelivery],
        compose: Callable[[list[PendingDelivery]], Message],
    ) -> _Attempt:
        """Claim deliveries for one channel and send them as the one message ``compose``
        makes of those claimed (a digest, or alerts of several rules about one article): all
        marked sent, or all retried later."""
        now = self.clock()
        claims = [(d, self.store.claim(d.id, now)) for d in deliveries]
        taken = [(d, c) for d, c in claims if c is not None]
        if not taken:
            return _Attempt.TAKEN
        channel = self.runtime.channels.get(channel_name)
        if channel is None:
            for d, c in taken:
                error = f"channel {channel_name!r} is no longer configured"
                self.store.give_up(d.id, c.token, error)
            return _Attempt.GIVEN_UP
        message = compose([d for d, _ in taken])
        what = message.reason if isinstance(message, Digest) else "alerts as one message"
        try:
            self._keep_pace(channel_name, [d.id for d, _ in taken])
            with self._claims_kept([(d, c.token) for d, c in taken]):
                channel.send(message)
        except Exception as exc:  # DeliveryError, or a bug in a channel
            return self._together_failed(channel_name, what, taken, exc, now)
        sent_at = self.clock()
        for d, c in taken:
            self.store.mark_sent(d.id, c.token, sent_at)
        if not isinstance(message, Digest) and len(taken) > 1:
            alerts = ", ".join(str(d.alert_id) for d, _ in taken)
            self.store.note_deliveries([d.id for d, _ in taken], f"{SENT_TOGETHER} {alerts}")
        log.info("delivered %s channel=%s alerts=%d", what, channel_name, len(taken))
        return _Attempt.SENT

    def _together_failed(
        self,
        channel: str,
        what: str,
        taken: list[tuple[PendingDelivery, Claim]],
        exc: Exception,
        now: datetime,
    ) -> _Attempt:
        if isinstance(exc, DeliveryError) and exc.retry_after is not None:
            self._postponed(channel, taken, exc.retry_after)
            return _Attempt.POSTPONED
        if not isinstance(exc, DeliveryError):
            log.exception("unexpected error sending channel=%s", channel)
        attempts = max(c.attempts for _, c in taken) + 1
        retry_base = self.runtime.config.daemon.retry_base
        retry_at = now + backoff(retry_base, attempts, MAX_DELIVERY_BACKOFF)
        for d, c in taken:
            self.store.mark_failed(d.id, c.token, describe(exc), retry_at, now)
        self.store.hold_channel(channel, retry_at)
        log.warning(
            "%s failed channel=%s alerts=%d attempt=%d error=%s",
            what,
            channel,
            len(taken),
            attempts,
            exc,
        )
        return _Attempt.FAILED

    def _keep_pace(self, channel: str, delivery_ids: list[int]) -> None:
        """Wait, if the channel's ``rate_limit`` says so, before sending to it."""
        pace = self._pace.get(channel)
        if pace is None:
            return
        waited = pace.wait(self.stop)
        if waited > 0:
            note = f"rate limited: waited {waited:.1f}s for the channel's rate_limit"
            self.store.note_deliveries(delivery_ids, note)

    @contextmanager
    def _claims_kept(self, claims: list[tuple[PendingDelivery, str]]) -> Iterator[None]:
        """Renew the claims on deliveries while they are being sent: a slow send keeps them,
        and the claims of a process that dies expire soon after."""
        sent = threading.Event()

        def renew() -> None:
            while not sent.wait(self.claim_renewal.total_seconds()):
                for delivery, token in claims:
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


def _digest_of(mode: str) -> Callable[[list[PendingDelivery]], Digest]:
    """How the deliveries of one channel's digest (or of the end of its quiet hours) make one
    message: grouped by story, the most important first."""

    def compose(deliveries: list[PendingDelivery]) -> Digest:
        times = [d.created_at for d in deliveries if d.created_at is not None]
        return Digest(
            "digest" if mode == Mode.DIGEST else "quiet hours",
            tuple(digest_order([(d.alert_id, d.message) for d in deliveries])),
            since=min(times, default=None),
        )

    return compose


def _one_alert(deliveries: list[PendingDelivery]) -> AlertMessage:
    return one_message([d.message for d in deliveries])


class _Attempt(enum.Enum):
    SENT = "sent"
    FAILED = "failed"
    TAKEN = "taken"  # claimed by another process
    GIVEN_UP = "given up"
    POSTPONED = "postponed"  # the service asked to wait


class _Pace:
    """At most ``count`` sends per ``period`` to one channel, from this process."""

    def __init__(self, count: int, period: timedelta) -> None:
        self.count = count
        self.period = period.total_seconds()
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> float:
        """Block until a send is allowed (or ``stop`` is set); the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - self.period:
                    self._sent.popleft()
                if len(self._sent) < self.count or stop.is_set():
                    self._sent.append(now)
                    return waited
                pause = self._sent[0] + self.period - now
                stop.wait(pause)
                waited += pause


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


def _overflowed(fetched: _Fetched, state: SourceState, new: int) -> bool:
    """Every item of a feed new, past the first poll: items may have scrolled off unseen."""
    return (
        fetched.status == "ok"
        and not fetched.only_new
        and not state.first_poll
        and len(fetched.articles) >= 2
        and new == len(fetched.articles)
    )
