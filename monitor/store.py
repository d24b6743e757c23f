"""The one module that issues SQL. It takes and returns monitor's dataclasses, never ORM rows.

Idempotency is the database's job: an article is unique by (source, identity key), a match and
an alert by (rule, article), a delivery by (alert, channel); inserts use ON CONFLICT DO NOTHING,
so a re-poll, a restart or a second daemon never duplicates anything. Everything one poll found
is written in one transaction, so a crash leaves either all of it or none.

SQLite runs in WAL mode with foreign keys on, a busy timeout, and write transactions that take
the write lock up front (BEGIN IMMEDIATE) so concurrent writers wait instead of failing; reads
take no lock and run beside them.

The outbox is safe with several deliverers (a daemon and ``monitor poll``, or several daemons on
PostgreSQL): a delivery is claimed with a conditional UPDATE and a lease before it is sent, so
only one process sends it. The sender renews the lease while it sends, so the lease can be
short: the claim of a process that died expires soon and the delivery is sent again (at least
once, never lost), without holding its channel up for long. A channel is sent to in alert
order: while one of its deliveries waits for a retry or is being sent, the channel's later
deliveries wait too. A delivery that has failed a few times is probed: if the channel takes
the next one, the failing one is set aside to be retried alone (a message the service refuses
never blocks the channel); if the next one fails too, the channel is down and everything keeps
its order.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any, NamedTuple

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.util.exc import CommandError as AlembicError
from sqlalchemy import (
    Connection,
    Engine,
    Text,
    bindparam,
    case,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from monitor.config import SourceConfig, StoriesConfig
from monitor.errors import StoreError
from monitor.messages import message_from_json, message_to_json
from monitor.models import (
    AlertMessage,
    AlertPlan,
    Article,
    FetchOutcome,
    Mention,
    NewArticle,
    PendingDelivery,
    SourceState,
    Story,
    StoryAssignment,
    unique,
)
from monitor.resources import migrations_dir
from monitor.routing import Decision, Outcome, Router, Silence, said_about
from monitor.stories import (
    MAX_CANDIDATES,
    Candidate,
    StoryFeatures,
    StoryProfile,
    best_story,
    grown,
    near_duplicate,
)
from monitor.tables import (
    AlertRow,
    ArticleBandRow,
    ArticleRow,
    Base,
    DeliveryRow,
    FetchRow,
    MatchRow,
    MentionRow,
    OpsEventRow,
    SilenceRow,
    SourceRow,
    StoryKeyRow,
    StoryRow,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000
DELIVERY_LEASE = timedelta(seconds=20)  # a claim not renewed or settled by then is sent again
CLAIM_RENEWAL = timedelta(seconds=5)  # how often a sender renews its claim while it sends
# Written into the SQL, not bound, so the partial indexes over pending deliveries apply.
_PENDING: ColumnElement[str] = literal_column("'pending'")
PROBE_AFTER = 3  # failures of one delivery after which its channel is tried with the next one
_WRITES = "monitor_writes"  # execution option: this transaction will write
STORY_LOCK = 0x6D6F6E73  # PostgreSQL advisory lock held while an article picks its story


@dataclass(frozen=True)
class ArticleRecord:
    """A stored article, as the log shows it."""

    id: int
    source: str
    title: str
    url: str | None
    published: datetime | None
    fetched_at: datetime
    actors: tuple[str, ...]
    topics: tuple[str, ...]
    rules: tuple[str, ...]


@dataclass(frozen=True)
class SavedPoll:
    """What one poll added to the log."""

    articles: int  # new articles stored
    alerts: int  # alerts made to be sent (not those grouped into a story's alert, or silenced)


@dataclass(frozen=True)
class SourceHealth:
    """How a source is doing, for ``monitor sources``."""

    name: str
    location: str
    status: str  # new | ok | failing | disabled
    last_success_at: datetime | None
    last_error: str | None
    error_count: int  # failures in a row
    next_check_at: datetime | None
    items_per_day: float  # new items per day over the last week (or since it was added)
    overflows: int  # polls in the last week that found every item new


@dataclass(frozen=True)
class OpsEvent:
    """An operational issue: opened, perhaps cleared, and whether each was announced."""

    id: int
    kind: str
    subject: str
    message: str
    opened_at: datetime
    resolved_at: datetime | None
    announced_at: datetime | None
    resolved_announced_at: datetime | None


#: The window over which a source's rhythm is measured.
RHYTHM_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class StoredArticle:
    """An article read back from the log, to be matched again (``rules test``, ``explain``)."""

    id: int
    article: Article
    fetched_at: datetime


@dataclass(frozen=True)
class MatchRecord:
    """What the log recorded when a rule matched an article."""

    rule: str
    rule_version: str | None
    created_at: datetime
    alerted: bool
    reason: str | None
    evidence: tuple[Mention, ...]


@dataclass(frozen=True)
class DeliveryRecord:
    channel: str
    status: str  # pending | sent | failed
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    set_aside: bool = False  # refused while its channel took others: retried alone
    mode: str = "now"  # now | quiet | digest
    note: str | None = None  # why it waits or waited: group timers, quiet hours, rate limit
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class MatchFate:
    """What became of a rule's match on an article: its outcome (``monitor.routing.Outcome``),
    why, the alert it made or joined, and that alert's deliveries."""

    id: int
    created_at: datetime
    rule: str
    source: str
    article_id: int
    title: str
    url: str | None
    story_id: int | None
    outcome: str
    reason: str | None
    alert_id: int | None
    deliveries: tuple[DeliveryRecord, ...]


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert and what became of each of its deliveries."""

    id: int
    created_at: datetime
    rule: str
    source: str
    article_id: int
    title: str
    url: str | None
    actors: tuple[str, ...]
    topics: tuple[str, ...]
    deliveries: tuple[DeliveryRecord, ...]


@dataclass(frozen=True)
class Claim:
    """A delivery taken for sending: the token that settles it, and its state when taken."""

    token: str
    attempts: int
    set_aside: bool


@dataclass(frozen=True)
class StoryArticle:
    """One article of a story, as ``monitor log stories`` shows it."""

    id: int
    title: str
    url: str | None  # a web address, or a folder document's file: URL
    outlet: str
    seen: datetime  # published, else fetched
    duplicate_of: int | None


@dataclass(frozen=True)
class StoryRecord:
    """A stored story and its articles, oldest first."""

    story: Story
    articles: tuple[StoryArticle, ...]


@dataclass(frozen=True)
class LogFilter:
    """Filters of ``monitor log``; None means any."""

    actor: str | None = None
    topic: str | None = None
    rule: str | None = None
    source: str | None = None
    since: datetime | None = None
    limit: int = 50


def open_engine(url: str) -> Engine:
    """An engine for ``url``, with SQLite set up for a long-running daemon."""
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ValueError, ModuleNotFoundError) as exc:
        raise StoreError(f"cannot use database url {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by _sqlite_on_begin
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    _use_wal(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch a new database to WAL. The switch needs the database to itself and SQLite does
    not wait for that (no busy timeout), so processes starting together take turns."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def _foreign_keys_deferred(conn: Connection) -> Iterator[None]:
    """SQLite rebuilds a table to alter it (copy, drop, rename). With foreign keys on,
    dropping the old table would delete, by cascade, every row that refers to it, so they are
    off while migrating (the pragma only works outside a transaction) and checked after."""
    sqlite = conn.dialect.name == "sqlite"
    raw = conn.connection.driver_connection if sqlite else None
    if raw is not None:
        raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys = ON")


def _check_references(conn: Connection) -> None:
    """Refuse a migration that left rows referring to rows that are not there."""
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL checks every reference as it goes
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise StoreError(
            f"the migration would leave {len(broken)} rows of {', '.join(tables)} referring to"
            " rows that are gone; it was rolled back"
        )


def _sqlite_on_begin(connection: Connection) -> None:
    writes = connection.get_execution_options().get(_WRITES, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._article_insert: Any = None

    @classmethod
    def open(cls, url: str, *, must_exist: bool = False) -> Store:
        """A store on ``url``; with ``must_exist``, a SQLite file that is not there is an error
        rather than a new, empty database (for reviewing the log)."""
        store = cls(open_engine(url))
        database = store.engine.url.database
        if (
            must_exist
            and store.engine.dialect.name == "sqlite"
            and database not in (None, "", ":memory:")
        ):
            path = Path(database).resolve()
            if not path.is_file():
                store.close()
                raise StoreError(
                    f"no database at {path}: run `monitor poll` or `monitor run` first, from the "
                    "folder the daemon runs in, or give its config with -c"
                )
        return store

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _transaction(self, *, writes: bool = True) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_WRITES: writes})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {exc}") from exc

    def _read(self) -> AbstractContextManager[Connection]:
        return self._transaction(writes=False)

    def upgrade(self, to: str = "head") -> None:
        """Apply every migration not yet applied; a failed migration is rolled back whole."""
        self._migrate(command.upgrade, to)

    def downgrade(self, to: str) -> None:
        """Undo migrations down to revision ``to`` (keeping every row the older schema holds)."""
        self._migrate(command.downgrade, to)

    def _migrate(self, step: Any, to: str) -> None:
        config = AlembicConfig()
        config.set_main_option("script_location", str(migrations_dir()))
        try:
            self.engine.connect().close()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the database {self.where}: {getattr(exc, 'orig', None) or exc}"
            ) from exc
        try:
            with self.engine.connect() as conn, _foreign_keys_deferred(conn):
                conn.execution_options(**{_WRITES: True})  # take the write lock up front
                with conn.begin():
                    config.attributes["connection"] = conn
                    step(config, to)
                    _check_references(conn)
        except AlembicError as exc:
            raise StoreError(
                f"the database {self.where} was migrated by another version of monitor ({exc});"
                " install the version that wrote it, or point [database] url elsewhere"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"database migration failed and was rolled back: {exc}") from exc

    @property
    def where(self) -> str:
        """The database URL, without its password."""
        return self.engine.url.render_as_string(hide_password=True)

    # --- sources -------------------------------------------------------------------------

    def sync_sources(self, sources: Sequence[SourceConfig], now: datetime) -> None:
        """Make sure every configured source has its row; a changed location is recorded."""
        with self._transaction() as conn:
            existing = dict(conn.execute(select(SourceRow.name, SourceRow.location)).all())
            for source in sources:
                if source.name not in existing:
                    conn.execute(
                        self._insert(SourceRow)
                        .values(
                            name=source.name,
                            location=source.location,
                            created_at=now,
                            error_count=0,
                        )
                        .on_conflict_do_nothing()
                    )
                elif existing[source.name] != source.location:
                    conn.execute(
                        update(SourceRow)
                        .where(SourceRow.name == source.name)
                        # a new location is a new feed: validators and first-poll rules anew
                        .values(
                            location=source.location,
                            etag=None,
                            last_modified=None,
                            last_success_at=None,
                        )
                    )

    def source_state(self, name: str) -> SourceState:
        with self._read() as conn:
            row = conn.execute(select(SourceRow).where(SourceRow.name == name)).one_or_none()
        if row is None:
            raise StoreError(f"source {name!r} is not in the database (run sync_sources first)")
        return SourceState(
            id=row.id,
            name=row.name,
            next_check_at=row.next_check_at,
            etag=row.etag,
            last_modified=row.last_modified,
            error_count=row.error_count,
            last_error=row.last_error,
            last_success_at=row.last_success_at,
            not_modified_streak=row.not_modified_streak,
            disabled_at=row.disabled_at,
            feed_wait=timedelta(seconds=row.feed_wait) if row.feed_wait else None,
        )

    def due_sources(self, names: Sequence[str], now: datetime) -> list[str]:
        """Of ``names``, those whose next check is due (or that were never checked)."""
        with self._read() as conn:
            rows = conn.execute(
                select(SourceRow.name)
                .where(SourceRow.name.in_(names))
                .where((SourceRow.next_check_at.is_(None)) | (SourceRow.next_check_at <= now))
                .order_by(SourceRow.next_check_at)
            ).scalars()
            return list(rows)

    def known_keys(self, source_id: int, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` the source already has."""
        found: set[str] = set()
        with self._read() as conn:
            for chunk in _chunks(list(keys), 500):
                rows = conn.execute(
                    select(ArticleRow.key)
                    .where(ArticleRow.source_id == source_id)
                    .where(ArticleRow.key.in_(chunk))
                ).scalars()
                found.update(rows)
        return found

    # --- one poll, written at once ---------------------------------------------------------

    def save_poll(
        self,
        source: SourceState,
        outcome: FetchOutcome,
        new: Sequence[NewArticle],
        router: Router | None = None,
    ) -> SavedPoll:
        """Record a poll and everything it found, in one transaction: articles, the stories
        they join, what the rules' matches become (``router``; without one, every match
        alerts at once through its rule's channels). Returns what was added."""
        router = router or Router((), (), StoriesConfig())
        with self._transaction() as conn:
            silences = self._active_silences(conn, outcome.started_at) if new else []
            ids = self._insert_articles(conn, source.id, new, outcome.started_at)
            copies = _earlier_copies(
                conn,
                [
                    (article_id, item.story)
                    for article_id, item in zip(ids, new, strict=True)
                    if article_id is not None and item.story is not None
                ],
            )
            placed: dict[int, _Placed] = {}
            alerts = [
                self._file_article(
                    conn, article_id, item, outcome.started_at, router, silences, copies, placed
                )
                for item, article_id in zip(new, ids, strict=True)
                if article_id is not None  # else another poll stored it first
            ]
            if placed:
                conn.execute(_SET_STORY, [p.values(article_id) for article_id, p in placed.items()])
            added = len(alerts)
            conn.execute(
                self._insert(FetchRow).values(
                    source_id=source.id,
                    started_at=outcome.started_at,
                    status=outcome.status,
                    http_status=outcome.http_status,
                    duration_ms=outcome.duration_ms,
                    items=outcome.items,
                    new_items=added,
                    error=outcome.error,
                    overflow=outcome.overflow,
                )
            )
            conn.execute(
                update(SourceRow).where(SourceRow.id == source.id).values(**_schedule(outcome))
            )
        return SavedPoll(added, sum(alerts))

    def _insert_articles(
        self, conn: Connection, source_id: int, new: Sequence[NewArticle], now: datetime
    ) -> list[int | None]:
        """Insert a poll's articles, their mentions and MinHash bands, a statement for each
        table: each article's id, in order (None: its source has it already)."""
        if not new:
            return []
        rows = conn.execute(self._insert_article(), [_article_row(source_id, i, now) for i in new])
        inserted = {key: article_id for article_id, key in rows}
        ids = [inserted.pop(item.key, None) for item in new]  # a key given twice is stored once
        stored = [
            (article_id, item)
            for article_id, item in zip(ids, new, strict=True)
            if article_id is not None
        ]
        mentions = [
            _mention_row(article_id, m) for article_id, item in stored for m in item.mentions
        ]
        if mentions:
            _insert_plain(conn, MentionRow, _MENTION_COLUMNS, mentions)
        bands = [row for article_id, item in stored for row in _band_rows(article_id, item, now)]
        if bands:
            _insert_plain(conn, ArticleBandRow, _BAND_COLUMNS, bands)
        return ids

    def _file_article(
        self,
        conn: Connection,
        article_id: int,
        item: NewArticle,
        now: datetime,
        router: Router,
        silences: Sequence[Silence],
        copies: dict[int, list[_Copy]],
        placed: dict[int, _Placed],
    ) -> int:
        """Put a stored article in its story and route its matches: the alerts it made."""
        story = self._join_story(conn, article_id, item, now, copies.get(article_id, []), placed)
        return sum(
            self._route(conn, article_id, plan, item, story, router, silences, now)
            for plan in item.alerts
        )

    def _join_story(
        self,
        conn: Connection,
        article_id: int,
        item: NewArticle,
        now: datetime,
        copies: list[_Copy],
        placed: dict[int, _Placed],
    ) -> StoryAssignment | None:
        """The story a new article joins or starts (None: it belongs to none), and the stored
        article it repeats, if any (of ``copies``), noted in ``placed`` (the poll writes them
        all at its end). Runs inside the poll's write transaction: on SQLite that transaction
        holds the write lock; on PostgreSQL an advisory lock keeps two daemons from starting
        the same story at once."""
        features = item.story
        if features is None:
            return None
        original = _original(features, copies, placed)
        duplicate_of = original.id if original is not None else None
        story_id = original.story_id if original is not None else None
        if story_id is None and not features.joins_stories:
            if duplicate_of is not None:
                placed[article_id] = _Placed(None, duplicate_of)
            return None
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(STORY_LOCK)))
        if story_id is None:
            story_id = best_story(features, _candidates(conn, features))
        row = None if story_id is None else conn.execute(_STORY, dict(story=story_id)).one()
        story = _grow_story(conn, row, item.article, features, profile=original is None)
        placed[article_id] = _Placed(story.id, duplicate_of)
        return StoryAssignment(story, row is None, features.outlet, duplicate_of)

    def _insert_article(self) -> Any:
        """The insert of new articles (nothing for one its source has already), built once."""
        if self._article_insert is None:
            self._article_insert = (
                self._insert(ArticleRow)
                .on_conflict_do_nothing()
                .returning(ArticleRow.id, ArticleRow.key)
            )
        return self._article_insert

    # --- stories ---------------------------------------------------------------------------

    def stories(self, filters: LogFilter) -> list[StoryRecord]:
        """Most recently seen stories first, with their articles."""
        query = select(StoryRow).order_by(StoryRow.last_seen_at.desc(), StoryRow.id.desc())
        if filters.since:
            query = query.where(StoryRow.last_seen_at >= filters.since)
        if filters.actor or filters.topic or filters.source:
            members = _filter_articles(
                select(ArticleRow.story_id).join(SourceRow, SourceRow.id == ArticleRow.source_id),
                filters,
                ArticleRow.id,
            )
            query = query.where(StoryRow.id.in_(members))
        with self._read() as conn:
            rows = conn.execute(query.limit(filters.limit)).all()
            articles = _story_articles(conn, [r.id for r in rows])
        return [StoryRecord(_story(r), articles.get(r.id, ())) for r in rows]

    def _route(
        self,
        conn: Connection,
        article_id: int,
        plan: AlertPlan,
        item: NewArticle,
        story: StoryAssignment | None,
        router: Router,
        silences: Sequence[Silence],
        now: datetime,
    ) -> int:
        """Record a rule's match on a new article, and what it becomes (``monitor.routing``):
        1 if it made an alert to send, else 0."""
        if plan.suppressed is not None:
            self._record_match(conn, article_id, plan, now, Outcome.BACKFILL, plan.suppressed)
            return 0
        said = None
        if story is not None and router.by_story(plan.rule):
            said = said_about(self._story_alerts(conn, plan.rule, story.story.id, now))
        decision = router.decide(plan, item.mentions, story, said, silences, now)
        alert_id = decision.alert
        if decision.outcome is Outcome.GROUPED:
            if decision.message is not None and alert_id is not None:  # not sent yet: refresh
                conn.execute(
                    update(AlertRow)
                    .where(AlertRow.id == alert_id)
                    .values(message=message_to_json(decision.message))
                )
        else:
            alert_id = self._queue_alert(conn, article_id, plan, story, decision, router, now)
        self._record_match(conn, article_id, plan, now, decision.outcome, decision.reason, alert_id)
        return int(decision.outcome in (Outcome.ALERT, Outcome.UPDATE))

    def _record_match(
        self,
        conn: Connection,
        article_id: int,
        plan: AlertPlan,
        now: datetime,
        outcome: Outcome,
        reason: str | None,
        alert_id: int | None = None,
    ) -> None:
        conn.execute(
            self._insert(MatchRow)
            .values(
                article_id=article_id,
                rule=plan.rule,
                rule_version=plan.rule_version or None,
                created_at=now,
                alerted=outcome in (Outcome.ALERT, Outcome.UPDATE),
                reason=reason,
                evidence=[asdict(m) for m in plan.evidence],
                alert_id=alert_id,
                outcome=str(outcome),
            )
            .on_conflict_do_nothing()
        )

    def _queue_alert(
        self,
        conn: Connection,
        article_id: int,
        plan: AlertPlan,
        story: StoryAssignment | None,
        decision: Decision,
        router: Router,
        now: datetime,
    ) -> int | None:
        """The alert (kept, and marked when silenced), and a pending delivery for each of the
        rule's channels, each at its time and in its way (the outbox)."""
        assert decision.message is not None
        silenced = decision.outcome is Outcome.SILENCED
        send_at = decision.send_at or now
        alert_id: int | None = conn.execute(
            self._insert(AlertRow)
            .values(
                article_id=article_id,
                rule=plan.rule,
                created_at=now,
                message=message_to_json(decision.message),
                story_id=story.story.id if story is not None else None,
                kind=decision.message.kind,
                follows=decision.message.follows,
                silence_id=decision.silence.id if decision.silence is not None else None,
                send_at=None if silenced else send_at,
            )
            .on_conflict_do_nothing()
            .returning(AlertRow.id)
        ).scalar_one_or_none()
        deliveries = [] if silenced else router.deliveries(plan, send_at, now)
        if alert_id is None or not deliveries:
            return alert_id
        conn.execute(
            self._insert(DeliveryRow).on_conflict_do_nothing(),
            [
                dict(
                    alert_id=alert_id,
                    channel=d.channel,
                    status="pending",
                    attempts=0,
                    next_attempt_at=d.at,
                    mode=str(d.mode),
                    note=d.note,
                )
                for d in deliveries
            ],
        )
        return alert_id

    def _story_alerts(
        self, conn: Connection, rule: str, story_id: int, now: datetime
    ) -> list[tuple[int, AlertMessage, bool, datetime]]:
        """A rule's alerts about a story, oldest first, silenced ones left out: (id, message,
        still open — none of its deliveries gone out or going —, when it was to go out)."""
        rows = conn.execute(
            select(AlertRow.id, AlertRow.message, AlertRow.send_at, AlertRow.created_at)
            .where(AlertRow.rule == rule)
            .where(AlertRow.story_id == story_id)
            .where(AlertRow.silence_id.is_(None))
            .order_by(AlertRow.id)
        ).all()
        if not rows:
            return []
        started = (
            (DeliveryRow.status != _PENDING)
            | (DeliveryRow.attempts > 0)
            | (DeliveryRow.lease_until.is_not(None) & (DeliveryRow.lease_until > now))
        )
        ids = [r.id for r in rows]
        counts = conn.execute(
            select(
                DeliveryRow.alert_id,
                func.count(),
                func.sum(case((started, 1), else_=0)),
            )
            .where(DeliveryRow.alert_id.in_(ids))
            .group_by(DeliveryRow.alert_id)
        ).all()
        opened = {alert_id for alert_id, total, gone in counts if total and not gone}
        return [
            (r.id, message_from_json(r.message), r.id in opened, r.send_at or r.created_at)
            for r in rows
        ]

    def _active_silences(self, conn: Connection, now: datetime) -> list[Silence]:
        rows = conn.execute(
            select(SilenceRow)
            .where(SilenceRow.expires_at > now)
            .where(SilenceRow.expired_at.is_(None))
            .order_by(SilenceRow.id)
        ).all()
        return [_silence(r) for r in rows]

    # --- the outbox ----------------------------------------------------------------------

    def due_deliveries(
        self, now: datetime, per_channel: int = 20, per_digest: int = 500
    ) -> list[PendingDelivery]:
        """Pending deliveries whose time has come, oldest alert first, at most ``per_channel``
        of each channel (a backlog on one holds up no other), leaving out channels that wait
        for a retry or are being sent to by another process. A delivery set aside (its channel
        takes other messages, not this one) waits alone."""
        pending = DeliveryRow.status == _PENDING
        # waiting for a retry (a failure, or a service that asked to wait), not for its time
        retrying = (DeliveryRow.attempts > 0) | DeliveryRow.last_error.is_not(None)
        held = (DeliveryRow.next_attempt_at > now) & DeliveryRow.set_aside.is_(False) & retrying
        leased = DeliveryRow.lease_until.is_not(None) & (DeliveryRow.lease_until > now)
        busy = select(DeliveryRow.channel).where(pending & (held | leased))
        position = (
            func.row_number()
            .over(
                partition_by=(DeliveryRow.channel, DeliveryRow.mode),
                order_by=(DeliveryRow.alert_id, DeliveryRow.id),
            )
            .label("position")
        )
        # a digest gathers every alert due for it, in one message
        limit = case((DeliveryRow.mode == literal_column("'now'"), per_channel), else_=per_digest)
        due = (
            select(DeliveryRow.id, position, limit.label("limit"))
            .where(pending & (DeliveryRow.next_attempt_at <= now))
            .where(DeliveryRow.channel.not_in(busy))
            .subquery()
        )
        query = (
            select(
                DeliveryRow.id,
                DeliveryRow.alert_id,
                DeliveryRow.channel,
                DeliveryRow.attempts,
                DeliveryRow.set_aside,
                DeliveryRow.mode,
                AlertRow.message,
                AlertRow.created_at,
            )
            .join(due, due.c.id == DeliveryRow.id)
            .join(AlertRow, AlertRow.id == DeliveryRow.alert_id)
            .where(due.c.position <= due.c.limit)
            .order_by(DeliveryRow.alert_id, DeliveryRow.id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            PendingDelivery(
                r.id,
                r.alert_id,
                r.channel,
                r.attempts,
                message_from_json(r.message),
                r.set_aside,
                r.mode,
                r.created_at,
            )
            for r in rows
        ]

    def claim(self, delivery_id: int, now: datetime) -> Claim | None:
        """Take a delivery for sending, with its state as it is now; None if another process
        has it, or it is settled or not due."""
        token = uuid.uuid4().hex
        with self._transaction() as conn:
            row = conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .where(DeliveryRow.status == _PENDING)
                .where(DeliveryRow.next_attempt_at <= now)
                .where(DeliveryRow.lease_until.is_(None) | (DeliveryRow.lease_until <= now))
                .values(lease_until=now + DELIVERY_LEASE, lease_token=token)
                .returning(DeliveryRow.attempts, DeliveryRow.set_aside)
            ).one_or_none()
        return None if row is None else Claim(token, row.attempts, row.set_aside)

    def renew_claim(self, delivery_id: int, token: str, now: datetime) -> bool:
        """Extend the lease of a claim still being sent; False if it is no longer held."""
        with self._transaction() as conn:
            return bool(
                conn.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.id == delivery_id)
                    .where(DeliveryRow.status == _PENDING)
                    .where(DeliveryRow.lease_token == token)
                    .values(lease_until=now + DELIVERY_LEASE)
                ).rowcount
            )

    def mark_sent(self, delivery_id: int, token: str, now: datetime) -> bool:
        """Record a delivery as sent; False if the claim had expired (another process has it)."""
        with self._transaction() as conn:
            return bool(
                conn.execute(
                    _settle(delivery_id, token).values(
                        status="sent",
                        sent_at=now,
                        attempts=DeliveryRow.attempts + 1,
                        last_error=None,
                        failing_since=None,
                    )
                ).rowcount
            )

    def mark_failed(
        self,
        delivery_id: int,
        token: str,
        error: str,
        retry_at: datetime,
        failed_at: datetime | None = None,
    ) -> bool:
        """Record a failed attempt, to be retried at ``retry_at``; False if the claim had
        expired (then another process has the delivery and nothing is changed)."""
        with self._transaction() as conn:
            return bool(
                conn.execute(
                    _settle(delivery_id, token).values(
                        attempts=DeliveryRow.attempts + 1,
                        last_error=error[:2000],
                        next_attempt_at=retry_at,
                        failing_since=func.coalesce(DeliveryRow.failing_since, failed_at),
                    )
                ).rowcount
            )

    def postpone(self, delivery_id: int, token: str, until: datetime, note: str) -> bool:
        """The service asked to wait (a rate limit): try again at ``until``, not counted as a
        failed attempt; the channel waits with it. False if the claim had expired."""
        with self._transaction() as conn:
            return bool(
                conn.execute(
                    _settle(delivery_id, token).values(
                        next_attempt_at=until, last_error=note[:2000], note=note[:2000]
                    )
                ).rowcount
            )

    def note_deliveries(self, delivery_ids: Sequence[int], note: str) -> None:
        """Say why deliveries waited (shown by ``monitor log alerts``)."""
        with self._transaction() as conn:
            for chunk in _chunks(list(delivery_ids), 500):
                conn.execute(
                    update(DeliveryRow).where(DeliveryRow.id.in_(chunk)).values(note=note[:2000])
                )

    def hold_channel(self, channel: str, until: datetime) -> None:
        """Make every pending delivery of a channel wait until ``until`` (it keeps its order)."""
        with self._transaction() as conn:
            conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.channel == channel)
                .where(DeliveryRow.status == _PENDING)
                .where(DeliveryRow.set_aside.is_(False))
                .where(DeliveryRow.next_attempt_at < until)
                .values(next_attempt_at=until)
            )

    def set_aside(self, delivery_id: int) -> None:
        """A delivery its channel refuses while it takes others: it no longer holds the
        channel up, and is retried on its own."""
        with self._transaction() as conn:
            conn.execute(
                update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(set_aside=True)
            )

    def give_up(self, delivery_id: int, token: str, error: str) -> None:
        """A delivery that can never succeed (its channel is gone): kept, marked failed."""
        with self._transaction() as conn:
            conn.execute(
                _settle(delivery_id, token).values(status="failed", last_error=error[:2000])
            )

    # --- review --------------------------------------------------------------------------

    def articles(self, filters: LogFilter) -> list[ArticleRecord]:
        """Most recent articles first."""
        query = (
            select(
                ArticleRow.id,
                SourceRow.name,
                ArticleRow.title,
                ArticleRow.url,
                ArticleRow.published_at,
                ArticleRow.fetched_at,
            )
            .join(SourceRow, SourceRow.id == ArticleRow.source_id)
            .order_by(ArticleRow.fetched_at.desc(), ArticleRow.id.desc())
            .limit(filters.limit)
        )
        query = _filter_articles(query, filters, ArticleRow.id)
        if filters.since:
            query = query.where(ArticleRow.fetched_at >= filters.since)
        if filters.rule:
            matched = select(MatchRow.article_id).where(MatchRow.rule == filters.rule)
            query = query.where(ArticleRow.id.in_(matched))
        with self._read() as conn:
            rows = conn.execute(query).all()
            entities = _entities(conn, [r.id for r in rows])
            rules = _rules(conn, [r.id for r in rows])
        return [
            ArticleRecord(
                r.id,
                r.name,
                r.title,
                r.url,
                r.published_at,
                r.fetched_at,
                *entities.get(r.id, ((), ())),
                rules.get(r.id, ()),
            )
            for r in rows
        ]

    def sources_health(self, now: datetime) -> list[SourceHealth]:
        since = now - RHYTHM_WINDOW
        with self._read() as conn:
            rows = conn.execute(
                select(
                    SourceRow.id,
                    SourceRow.name,
                    SourceRow.location,
                    SourceRow.created_at,
                    SourceRow.last_success_at,
                    SourceRow.last_error,
                    SourceRow.error_count,
                    SourceRow.next_check_at,
                    SourceRow.disabled_at,
                ).order_by(SourceRow.name)
            ).all()
            new_items = dict(_per_source(conn, func.count(ArticleRow.id), ArticleRow, since))
            overflows = dict(
                _per_source(conn, func.count(FetchRow.id), FetchRow, since, FetchRow.overflow)
            )
        return [
            SourceHealth(
                name=r.name,
                location=r.location,
                status=_status(r),
                last_success_at=r.last_success_at,
                last_error=r.last_error,
                error_count=r.error_count,
                next_check_at=r.next_check_at,
                items_per_day=_per_day(new_items.get(r.id, 0), r.created_at, now),
                overflows=overflows.get(r.id, 0),
            )
            for r in rows
        ]

    def items_per_day(self, source_id: int, now: datetime) -> float:
        """New items a day over the last week, or since the source was added."""
        with self._read() as conn:
            created = conn.execute(
                select(SourceRow.created_at).where(SourceRow.id == source_id)
            ).scalar_one()
            count = conn.execute(
                select(func.count(ArticleRow.id))
                .where(ArticleRow.source_id == source_id)
                .where(_seen_or_published(ArticleRow) >= now - RHYTHM_WINDOW)
            ).scalar_one()
        return _per_day(int(count), created, now)

    def newest_articles(self) -> dict[str, datetime]:
        """When each source last brought a new article."""
        query = (
            select(SourceRow.name, func.max(ArticleRow.fetched_at))
            .join(ArticleRow, ArticleRow.source_id == SourceRow.id)
            .group_by(SourceRow.name)
        )
        with self._read() as conn:
            return {name: _aware(when) for name, when in conn.execute(query).all()}

    def rhythms(self) -> dict[str, tuple[datetime, float]]:
        """For each source that brought anything: when it last brought something new, and
        how many items a day it brought in the week before that (by publication time, so a
        first poll's backlog is not a rhythm)."""
        newest = self.newest_articles()
        found = {}
        with self._read() as conn:
            ids = dict(conn.execute(select(SourceRow.name, SourceRow.id)).all())
            for name, last in newest.items():
                when = _seen_or_published(ArticleRow)
                count, first = conn.execute(
                    select(func.count(ArticleRow.id), func.min(when))
                    .where(ArticleRow.source_id == ids[name])
                    .where(when >= last - RHYTHM_WINDOW)
                    .where(ArticleRow.fetched_at <= last)
                ).one()
                span = max(last - _aware(first), timedelta(days=1)) if first else RHYTHM_WINDOW
                found[name] = (last, int(count) / (span / timedelta(days=1)))
        return found

    def failing_channels(self) -> dict[str, datetime]:
        """For each channel with deliveries pending after a failed attempt, since when (the
        first failure of the oldest); a message set aside (refused while the channel takes
        others) does not make its channel down."""
        query = (
            select(DeliveryRow.channel, func.min(DeliveryRow.failing_since))
            .where(DeliveryRow.status == _PENDING)
            .where(DeliveryRow.failing_since.is_not(None))
            .where(DeliveryRow.set_aside.is_(False))
            .group_by(DeliveryRow.channel)
        )
        with self._read() as conn:
            return {channel: _aware(when) for channel, when in conn.execute(query).all() if when}

    def sync_ops(self, issues: Sequence[tuple[str, str, str]], now: datetime) -> None:
        """Open an event for each (kind, subject, message) not open yet; clear the open
        events that are no longer issues."""
        current = {(kind, subject): message for kind, subject, message in issues}
        with self._transaction() as conn:
            open_rows = conn.execute(
                select(OpsEventRow.id, OpsEventRow.kind, OpsEventRow.subject).where(
                    OpsEventRow.resolved_at.is_(None)
                )
            ).all()
            opened = {(r.kind, r.subject) for r in open_rows}
            cleared = [r.id for r in open_rows if (r.kind, r.subject) not in current]
            if cleared:
                conn.execute(
                    update(OpsEventRow).where(OpsEventRow.id.in_(cleared)).values(resolved_at=now)
                )
            fresh = [
                dict(kind=kind, subject=subject, message=message, opened_at=now)
                for (kind, subject), message in current.items()
                if (kind, subject) not in opened
            ]
            if fresh:
                conn.execute(self._insert(OpsEventRow), fresh)

    def ops_events(
        self, *, unannounced: bool = False, open_only: bool = False, limit: int = 50
    ) -> list[OpsEvent]:
        """Most recent first; or, with ``unannounced``, those with an opening or a clearing
        still to announce, oldest first; or, with ``open_only``, those not cleared."""
        query = select(OpsEventRow)
        if open_only:
            query = query.where(OpsEventRow.resolved_at.is_(None)).order_by(OpsEventRow.id)
        elif unannounced:
            query = query.where(
                OpsEventRow.announced_at.is_(None)
                | (
                    OpsEventRow.resolved_at.is_not(None)
                    & OpsEventRow.resolved_announced_at.is_(None)
                )
            ).order_by(OpsEventRow.id)
        else:
            query = query.order_by(OpsEventRow.id.desc()).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            OpsEvent(
                r.id,
                r.kind,
                r.subject,
                r.message,
                r.opened_at,
                r.resolved_at,
                r.announced_at,
                r.resolved_announced_at,
            )
            for r in rows
        ]

    def mark_announced(self, event: OpsEvent, now: datetime) -> None:
        column = "resolved_announced_at" if event.resolved_at else "announced_at"
        with self._transaction() as conn:
            values: dict[str, Any] = {column: now}
            if event.resolved_at and event.announced_at is None:
                values["announced_at"] = now  # cleared before it was announced: both at once
            conn.execute(update(OpsEventRow).where(OpsEventRow.id == event.id).values(**values))

    def count_articles(self, since: datetime | None, source: str | None) -> int:
        query = select(func.count(ArticleRow.id)).join(
            SourceRow, SourceRow.id == ArticleRow.source_id
        )
        query = _filter_articles(query, LogFilter(source=source), ArticleRow.id)
        if since:
            query = query.where(ArticleRow.fetched_at >= since)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def stored_articles(
        self, since: datetime | None, source: str | None, batch: int = 500
    ) -> Iterator[StoredArticle]:
        """Every stored article fetched since ``since`` (of one source), oldest first, read a
        batch at a time."""
        after = 0
        while True:
            query = _article_query().where(ArticleRow.id > after).limit(batch)
            query = _filter_articles(query, LogFilter(source=source), ArticleRow.id)
            if since:
                query = query.where(ArticleRow.fetched_at >= since)
            with self._read() as conn:
                rows = conn.execute(query.order_by(ArticleRow.id)).all()
            yield from (_stored_article(r) for r in rows)
            if len(rows) < batch:
                return
            after = rows[-1].id

    def stored_article(self, article_id: int) -> StoredArticle | None:
        with self._read() as conn:
            row = conn.execute(_article_query().where(ArticleRow.id == article_id)).first()
        return None if row is None else _stored_article(row)

    def matches_of(self, article_id: int) -> list[MatchRecord]:
        query = (
            select(
                MatchRow.rule,
                MatchRow.rule_version,
                MatchRow.created_at,
                MatchRow.alerted,
                MatchRow.reason,
                MatchRow.evidence,
            )
            .where(MatchRow.article_id == article_id)
            .order_by(MatchRow.id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            MatchRecord(
                r.rule,
                r.rule_version,
                r.created_at,
                r.alerted,
                r.reason,
                tuple(Mention(**m) for m in r.evidence),
            )
            for r in rows
        ]

    def alerts(self, filters: LogFilter) -> list[AlertRecord]:
        """Most recent alerts first, with their deliveries."""
        query = (
            select(
                AlertRow.id,
                AlertRow.created_at,
                AlertRow.rule,
                AlertRow.article_id,
                SourceRow.name,
                ArticleRow.title,
                ArticleRow.url,
            )
            .join(ArticleRow, ArticleRow.id == AlertRow.article_id)
            .join(SourceRow, SourceRow.id == ArticleRow.source_id)
            .order_by(AlertRow.created_at.desc(), AlertRow.id.desc())
            .limit(filters.limit)
        )
        query = _filter_rule_rows(query, filters, AlertRow)
        with self._read() as conn:
            rows = conn.execute(query).all()
            entities = _entities(conn, [r.article_id for r in rows])
            deliveries = _deliveries(conn, [r.id for r in rows])
        return [
            AlertRecord(
                r.id,
                r.created_at,
                r.rule,
                r.name,
                r.article_id,
                r.title,
                r.url,
                *entities.get(r.article_id, ((), ())),
                deliveries.get(r.id, ()),
            )
            for r in rows
        ]

    def fates(self, filters: LogFilter) -> list[MatchFate]:
        """What became of each match, most recent first: alerted, grouped into its story's
        alert, an update, silenced, or not alerted (backfill); with the deliveries."""
        query = (
            select(
                MatchRow.id,
                MatchRow.created_at,
                MatchRow.rule,
                MatchRow.article_id,
                MatchRow.outcome,
                MatchRow.reason,
                MatchRow.alerted,
                MatchRow.alert_id,
                SourceRow.name,
                ArticleRow.title,
                ArticleRow.url,
                AlertRow.story_id,
            )
            .join(ArticleRow, ArticleRow.id == MatchRow.article_id)
            .join(SourceRow, SourceRow.id == ArticleRow.source_id)
            .outerjoin(AlertRow, AlertRow.id == MatchRow.alert_id)
            .order_by(MatchRow.created_at.desc(), MatchRow.id.desc())
            .limit(filters.limit)
        )
        query = _filter_rule_rows(query, filters, MatchRow)
        with self._read() as conn:
            rows = conn.execute(query).all()
            alert_ids = [r.alert_id for r in rows if r.alert_id is not None]
            deliveries = _deliveries(conn, alert_ids)
        return [
            MatchFate(
                r.id,
                r.created_at,
                r.rule,
                r.name,
                r.article_id,
                r.title,
                r.url,
                r.story_id,
                r.outcome or ("alert" if r.alerted else "backfill"),  # rows from before 0006
                r.reason,
                r.alert_id,
                deliveries.get(r.alert_id, ()) if r.alert_id is not None else (),
            )
            for r in rows
        ]

    # --- silences ------------------------------------------------------------------------

    def add_silence(
        self,
        *,
        created_by: str,
        reason: str,
        expires_at: datetime,
        now: datetime,
        actor: str | None = None,
        topic: str | None = None,
        source: str | None = None,
        rule: str | None = None,
    ) -> Silence:
        values = dict(
            created_at=now,
            created_by=created_by,
            reason=reason,
            expires_at=expires_at,
            actor=actor,
            topic=topic,
            source=source,
            rule=rule,
        )
        with self._transaction() as conn:
            silence_id = conn.execute(
                self._insert(SilenceRow).values(**values).returning(SilenceRow.id)
            ).scalar_one()
            row = conn.execute(select(SilenceRow).where(SilenceRow.id == silence_id)).one()
            return _silence(row)

    def silences(self, now: datetime, *, include_ended: bool = False) -> list[Silence]:
        """Active silences (and ended ones too, with ``include_ended``), newest first."""
        query = select(SilenceRow).order_by(SilenceRow.id.desc())
        if not include_ended:
            query = query.where(SilenceRow.expires_at > now, SilenceRow.expired_at.is_(None))
        with self._read() as conn:
            return [_silence(r) for r in conn.execute(query).all()]

    def expire_silence(self, silence_id: int, now: datetime) -> Silence | None:
        """End a silence now; None if there is no such silence. Ending one that has ended
        changes nothing."""
        with self._transaction() as conn:
            conn.execute(
                update(SilenceRow)
                .where(SilenceRow.id == silence_id)
                .where(SilenceRow.expired_at.is_(None))
                .where(SilenceRow.expires_at > now)
                .values(expired_at=now)
            )
            row = conn.execute(select(SilenceRow).where(SilenceRow.id == silence_id)).one_or_none()
            return None if row is None else _silence(row)

    def counts(self) -> dict[str, int]:
        """Rows per table, for a quick look at what the log holds."""
        tables = {
            "sources": SourceRow,
            "fetches": FetchRow,
            "articles": ArticleRow,
            "mentions": MentionRow,
            "matches": MatchRow,
            "alerts": AlertRow,
            "deliveries": DeliveryRow,
        }
        with self._read() as conn:
            return {
                name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in tables.items()
            }

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)


@dataclass(frozen=True)
class _Original:
    id: int
    story_id: int | None


@dataclass(frozen=True)
class _Placed:
    """Where the story stage put an article of the poll."""

    story_id: int | None
    duplicate_of: int | None

    def values(self, article_id: int) -> dict[str, int | None]:
        return dict(article_id=article_id, story=self.story_id, original=self.duplicate_of)


class _Copy(NamedTuple):
    """A stored article that a new one may repeat."""

    id: int
    duplicate_of: int | None
    story_id: int | None
    minhash: bytes | None  # to compare with; None: found by its URL or title


def _original(
    f: StoryFeatures, copies: list[_Copy], placed: dict[int, _Placed]
) -> _Original | None:
    """The first stored article this one repeats: the same URL, the same title within the
    window, or near-same text within the window, taken in that order. An article of this
    poll is where ``placed`` has it."""
    for copy in copies:
        if copy.minhash is None or (
            f.minhash is not None and near_duplicate(f.minhash, copy.minhash)
        ):
            found_at = placed.get(copy.id) or _Placed(copy.story_id, copy.duplicate_of)
            return _Original(found_at.duplicate_of or copy.id, found_at.story_id)
    return None


def _earlier_copies(
    conn: Connection, new: Sequence[tuple[int, StoryFeatures]]
) -> dict[int, list[_Copy]]:
    """For each of a poll's articles, the articles stored before it that it may repeat, in
    the order they are compared: the first with its URL, the first with its title within
    the window, then the first ``MAX_CANDIDATES * 5`` sharing a MinHash band within the
    window. Looked up for the whole poll at once, a few statements in all."""
    if not new:
        return {}
    newest = conn.execute(_NEWEST_DAY).scalar_one()
    assert newest is not None  # this poll's articles are in already
    days = [day for day in _window_days(f for _, f in new) if day <= newest]  # none later
    first_by_url: dict[str, Any] = {}
    for keys in _chunks(list(unique(f.url_key for _, f in new if f.url_key)), 500):
        first_by_url.update((r.url_key, r) for r in conn.execute(_FIRST_BY_URL, dict(keys=keys)))
    by_title: dict[str, list[Any]] = {}
    for keys in _chunks(list(unique(f.title_key for _, f in new if f.title_key)), 500):
        for r in conn.execute(_BY_TITLE, dict(keys=keys, days=days)):
            by_title.setdefault(r.title_key, []).append(r)
    banded = _sharing_bands(conn, new, days)
    texts: dict[int, Any] = {}
    for ids in _chunks(sorted({i for found in banded.values() for i in found}), 500):
        texts.update((r.id, r) for r in conn.execute(_TEXTS, dict(ids=ids)))
    copies = {}
    for article_id, f in new:
        same_url = [r for r in [first_by_url.get(f.url_key or "")] if r and r.id < article_id]
        same_title = [
            r for r in by_title.get(f.title_key or "", ()) if r.id < article_id and _within(f, r)
        ]
        near = [texts[i] for i in sorted(banded.get(article_id, ())) if _within(f, texts[i])]
        copies[article_id] = [
            *(_Copy(r.id, r.duplicate_of, r.story_id, None) for r in [*same_url, *same_title[:1]]),
            *(
                _Copy(r.id, r.duplicate_of, r.story_id, r.minhash)
                for r in near[: MAX_CANDIDATES * 5]
            ),
        ]
    return copies


def _within(f: StoryFeatures, row: Any) -> bool:
    """Whether a stored article came out within the window of the article of ``f``."""
    return f.at - f.window <= _aware(row.seen) <= f.at + f.window


def _sharing_bands(
    conn: Connection, new: Sequence[tuple[int, StoryFeatures]], days: list[int]
) -> dict[int, set[int]]:
    """For each of a poll's articles, the articles stored before it that share a MinHash
    band with it, seen on ``days`` (those of the poll's windows) and within the days its own
    window reaches: pairs found by the database from the bands the poll has just written,
    each pair once, the latest ``_PAIRS_EACH`` of each article."""
    with_text = [(article_id, f) for article_id, f in new if f.minhash is not None and f.bands]
    sharing: dict[int, set[int]] = {article_id: set() for article_id, _ in with_text}
    if not with_text:
        return sharing
    reach = max(-(-f.window // timedelta(days=1)) for _, f in with_text)  # days, rounded up
    for chunk in _chunks([article_id for article_id, _ in with_text], 100):
        found = conn.execute(_BAND_PAIRS, dict(days=days, ids=chunk, reach=reach))
        for article_id, earlier in found:
            sharing[article_id].add(earlier)
    return sharing


def _window_days(features: Iterable[StoryFeatures]) -> list[int]:
    """The UTC days that the windows of articles reach (days as the indexes have them)."""
    return sorted(
        {d for f in features for d in range(_day(f.at - f.window), _day(f.at + f.window) + 1)}
    )


def _candidates(conn: Connection, f: StoryFeatures) -> list[Candidate]:
    """Open stories sharing the most keys with the article, each its id and profile (only
    the one it joins is read whole): seen within the window, at most ``MAX_CANDIDATES``."""
    keys = [term for term, _ in f.terms]
    if not keys:
        return []
    since = f.at - f.window
    newest = conn.execute(_NEWEST_KEY_DAY).scalar_one()
    if newest is None:
        return []
    days = [_day_start(since) + timedelta(days=n) for n in range(_day(newest) - _day(since) + 1)]
    rows = conn.execute(
        _CANDIDATES, dict(keys=keys, since=since, key_days=days, until=f.at + f.window)
    )
    return [Candidate(row.id, _story_profile(row.profile)) for row in rows]


@functools.lru_cache(maxsize=512)  # a profile's text and terms: 10 KB or so each
def _story_profile(text: str) -> StoryProfile:
    """A story's profile from its JSON text: the open stories are read again and again, and
    each version of a profile is decoded once."""
    return StoryProfile.from_json(json.loads(text))


def _grow_story(
    conn: Connection, row: Any, article: Article, f: StoryFeatures, *, profile: bool
) -> Story:
    """Start a story with the article (``row`` None), or add the article to the story of
    ``row`` (a duplicate adds its outlet but not its words, which the story has already)."""
    story_id: int | None = None if row is None else row.id
    old = None if row is None else _story_profile(row.profile)
    new_profile = grown(old, f) if profile or old is None else old
    values: dict[str, Any] = dict(
        last_seen_at=f.at if row is None else max(_aware(row.last_seen_at), f.at),
        first_seen_at=f.at if row is None else min(_aware(row.first_seen_at), f.at),
        article_count=1 if row is None else row.article_count + 1,
        outlets=list(unique([*(row.outlets if row else []), f.outlet])),
        actors=list(unique([*(row.actors if row else []), *f.actors])),
        topics=list(unique([*(row.topics if row else []), *f.topics])),
    )
    if new_profile is not old:  # a copy leaves its story's words as they are
        values["profile"] = new_profile.to_json()
    if row is None:
        story_id = conn.execute(
            insert(StoryRow).values(title=article.title, **values).returning(StoryRow.id)
        ).scalar_one()
    else:
        conn.execute(_UPDATE_STORY, dict(story=story_id, **values))
    assert story_id is not None
    _index_story(conn, story_id, old, new_profile, values["last_seen_at"], row)
    title = article.title if row is None else row.title
    return Story(
        story_id,
        title,
        values["first_seen_at"],
        values["last_seen_at"],
        values["article_count"],
        tuple(values["outlets"]),
        tuple(values["actors"]),
        tuple(values["topics"]),
    )


def _index_story(
    conn: Connection,
    story_id: int,
    old: StoryProfile | None,
    new: StoryProfile,
    seen: datetime,
    row: Any,
) -> None:
    """Keep the story's keys those of its profile, with the day it was last seen (rewritten
    when that day changes, not with every article): only the keys that changed are written."""
    before = old.index_keys() if old is not None else ()
    after = new.index_keys() if new is not old else before
    gone = [key for key in before if key not in after]
    if gone:
        conn.execute(_DROP_KEYS, dict(story=story_id, keys=gone))
    seen = _day_start(seen)
    if row is not None and seen != _day_start(row.last_seen_at):
        conn.execute(_KEYS_SEEN, dict(story=story_id, seen=seen))
    added = [key for key in after if key not in before]
    if added:
        conn.execute(
            _INSERT_KEYS,
            [dict(story_id=story_id, key=key, last_seen_at=seen) for key in added],
        )


def _story(row: Any) -> Story:
    return Story(
        row.id,
        row.title,
        row.first_seen_at,
        row.last_seen_at,
        row.article_count,
        tuple(row.outlets),
        tuple(row.actors),
        tuple(row.topics),
    )


def _story_articles(conn: Connection, ids: list[int]) -> dict[int, tuple[StoryArticle, ...]]:
    found: dict[int, list[StoryArticle]] = {}
    for chunk in _chunks(ids, 500):
        rows = conn.execute(
            select(
                ArticleRow.id,
                ArticleRow.story_id,
                ArticleRow.title,
                ArticleRow.url,
                ArticleRow.outlet,
                ArticleRow.duplicate_of,
                _seen_or_published(ArticleRow).label("seen"),
            )
            .where(ArticleRow.story_id.in_(chunk))
            .order_by(ArticleRow.id)
        ).all()
        for r in rows:
            article = StoryArticle(
                r.id, r.title, r.url, r.outlet or "", _aware(r.seen), r.duplicate_of
            )
            found.setdefault(r.story_id, []).append(article)
    return {k: tuple(v) for k, v in found.items()}


def _settle(delivery_id: int, token: str) -> Any:
    """An update of a delivery that only the holder of its claim may make; it ends the claim."""
    return (
        update(DeliveryRow)
        .where(DeliveryRow.id == delivery_id)
        .where(DeliveryRow.status == _PENDING)
        .where(DeliveryRow.lease_token == token)
        .values(lease_until=None, lease_token=None)
    )


def _schedule(outcome: FetchOutcome) -> dict[str, Any]:
    values: dict[str, Any] = {
        "last_polled_at": outcome.started_at,
        "next_check_at": outcome.next_check_at,
    }
    if outcome.status == "error":
        values |= {"error_count": SourceRow.error_count + 1, "last_error": outcome.error}
        if outcome.disabled:
            values["disabled_at"] = func.coalesce(SourceRow.disabled_at, outcome.started_at)
        return values
    values |= {
        "error_count": 0,
        "last_error": None,
        "last_success_at": outcome.started_at,
        "disabled_at": None,
    }
    if outcome.status == "ok":
        values |= {
            "etag": outcome.etag,
            "last_modified": outcome.last_modified,
            "not_modified_streak": 0,
            "feed_wait": int(outcome.feed_wait.total_seconds()) if outcome.feed_wait else None,
        }
    else:
        values["not_modified_streak"] = SourceRow.not_modified_streak + 1
    return values


def _day_start(when: datetime) -> datetime:
    """Midnight UTC of the day of ``when``, as the story keys have it."""
    return datetime.combine(_aware(when).astimezone(UTC).date(), dt_time(), UTC)


def _day(when: datetime) -> int:
    """The UTC date of ``when``, as the bands' index has it."""
    return _aware(when).astimezone(UTC).date().toordinal()


def _aware(when: datetime) -> datetime:
    """Aggregates bypass the column type on SQLite: make their times aware (UTC)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _per_source(
    conn: Connection, counted: Any, table: Any, since: datetime, *conditions: Any
) -> list[tuple[int, int]]:
    """(source id, count) of a table's rows since ``since`` (articles by fetch time, fetches
    by start)."""
    when = _seen_or_published(table) if table is ArticleRow else table.started_at
    query = select(table.source_id, counted).where(when >= since)
    for condition in conditions:
        query = query.where(condition)
    return [(r[0], int(r[1])) for r in conn.execute(query.group_by(table.source_id)).all()]


def _seen_or_published(table: Any) -> Any:
    """When an article came out: its publication time, else when it was fetched (a first
    poll's backlog of old items does not count as the source's rhythm)."""
    return func.coalesce(table.published_at, table.fetched_at)


def _per_day(count: int, created_at: datetime, now: datetime) -> float:
    observed = min(RHYTHM_WINDOW, max(now - created_at, timedelta(hours=1)))
    return count / (observed / timedelta(days=1))


def _status(row: Any) -> str:
    if row.disabled_at is not None:
        return "disabled"
    if row.error_count:
        return "failing"
    return "ok" if row.last_success_at else "new"


def _article_query() -> Any:
    return select(
        ArticleRow.id,
        SourceRow.name,
        ArticleRow.title,
        ArticleRow.summary,
        ArticleRow.text,
        ArticleRow.url,
        ArticleRow.guid,
        ArticleRow.author,
        ArticleRow.lang,
        ArticleRow.published_at,
        ArticleRow.fetched_at,
    ).join(SourceRow, SourceRow.id == ArticleRow.source_id)


def _stored_article(row: Any) -> StoredArticle:
    article = Article(
        title=row.title,
        text=row.text,
        summary=row.summary,
        url=row.url,
        guid=row.guid,
        author=row.author,
        published=row.published_at,
        source=row.name,
        lang=row.lang,
    )
    return StoredArticle(row.id, article, row.fetched_at)


def _filter_articles(query: Any, filters: LogFilter, article_id: Any) -> Any:
    if filters.source:
        query = query.where(SourceRow.name == filters.source)
    for kind, entity in (("actor", filters.actor), ("topic", filters.topic)):
        if entity:
            named = select(MentionRow.article_id).where(
                (MentionRow.kind == kind) & (MentionRow.entity_id == entity)
            )
            query = query.where(article_id.in_(named))
    return query


def _filter_rule_rows(query: Any, filters: LogFilter, table: type[AlertRow | MatchRow]) -> Any:
    """Filters of alerts or matches: by the article (source, actor, topic), rule and time."""
    query = _filter_articles(query, filters, table.article_id)
    if filters.rule:
        query = query.where(table.rule == filters.rule)
    if filters.since:
        query = query.where(table.created_at >= filters.since)
    return query


def _entities(
    conn: Connection, ids: list[int]
) -> dict[int, tuple[tuple[str, ...], tuple[str, ...]]]:
    found: dict[int, tuple[dict[str, None], dict[str, None]]] = {}
    for chunk in _chunks(ids, 500):
        rows = conn.execute(
            select(MentionRow.article_id, MentionRow.kind, MentionRow.entity_id)
            .where(MentionRow.article_id.in_(chunk))
            .order_by(MentionRow.id)
        )
        for article_id, kind, entity_id in rows:
            actors, topics = found.setdefault(article_id, ({}, {}))
            (actors if kind == "actor" else topics)[entity_id] = None
    return {k: (tuple(a), tuple(t)) for k, (a, t) in found.items()}


def _rules(conn: Connection, ids: list[int]) -> dict[int, tuple[str, ...]]:
    found: dict[int, list[str]] = {}
    for chunk in _chunks(ids, 500):
        rows = conn.execute(
            select(MatchRow.article_id, MatchRow.rule)
            .where(MatchRow.article_id.in_(chunk))
            .order_by(MatchRow.id)
        )
        for article_id, rule in rows:
            found.setdefault(article_id, []).append(rule)
    return {k: tuple(v) for k, v in found.items()}


def _deliveries(conn: Connection, ids: list[int]) -> dict[int, tuple[DeliveryRecord, ...]]:
    found: dict[int, list[DeliveryRecord]] = {}
    for chunk in _chunks(ids, 500):
        rows = conn.execute(
            select(DeliveryRow).where(DeliveryRow.alert_id.in_(chunk)).order_by(DeliveryRow.id)
        ).all()
        for d in rows:
            record = DeliveryRecord(
                d.channel,
                d.status,
                d.attempts,
                d.last_error,
                d.sent_at,
                d.set_aside,
                d.mode,
                d.note,
                d.next_attempt_at,
            )
            found.setdefault(d.alert_id, []).append(record)
    return {k: tuple(v) for k, v in found.items()}


def _silence(row: Any) -> Silence:
    return Silence(
        id=row.id,
        created_at=row.created_at,
        created_by=row.created_by,
        reason=row.reason,
        expires_at=row.expires_at,
        expired_at=row.expired_at,
        actor=row.actor,
        topic=row.topic,
        source=row.source,
        rule=row.rule,
    )


def _article_row(source_id: int, item: NewArticle, now: datetime) -> dict[str, Any]:
    article, f = item.article, item.story
    return dict(
        source_id=source_id,
        key=item.key,
        guid=article.guid,
        url=article.url,
        title=article.title,
        summary=article.summary,
        text=article.text,
        author=article.author,
        lang=article.lang,
        published_at=article.published,
        fetched_at=now,
        outlet=f.outlet if f else None,
        url_key=f.url_key if f else None,
        title_key=f.title_key if f else None,
        minhash=f.minhash if f else None,
        day=_came_out(item, now),
    )


def _band_rows(article_id: int, item: NewArticle, now: datetime) -> list[tuple[int, int, int]]:
    """(article, band, day) for each MinHash band of the article."""
    if item.story is None:
        return []
    day = _came_out(item, now)
    return [(article_id, band, day) for band in item.story.bands]


def _came_out(item: NewArticle, now: datetime) -> int:
    """The UTC day a new article came out, as ``_seen_or_published`` has it."""
    return _day(item.article.published or now)


def _mention_row(article_id: int, m: Mention) -> tuple[int, str, str, str, int, int, str, str]:
    return (article_id, m.kind, m.id, m.field, m.start, m.end, m.text, m.alias)


def _insert_plain(
    conn: Connection, table: type[Base], columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert rows of plain values (numbers and text, in ``columns`` order) through the driver,
    which takes them as they are: for the tables a poll writes many rows to (an article's
    mentions and MinHash bands), where building each row's parameters costs more than the
    insert itself."""
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(
        f"INSERT INTO {quote(table.__tablename__)} ({', '.join(map(quote, columns))})"
        f" VALUES ({', '.join([mark] * len(columns))})",
        rows,
    )


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# The story stage runs these for every new article: built once, with bound parameters.
_COLUMNS = (ArticleRow.id, ArticleRow.duplicate_of, ArticleRow.story_id)
_FIRST_BY_URL = select(*_COLUMNS, ArticleRow.url_key).where(
    ArticleRow.id.in_(
        select(func.min(ArticleRow.id))
        .where(ArticleRow.url_key.in_(bindparam("keys", expanding=True)))
        .group_by(ArticleRow.url_key)
    )
)
_BY_TITLE = (
    select(*_COLUMNS, ArticleRow.title_key, _seen_or_published(ArticleRow).label("seen"))
    .where(ArticleRow.day.in_(bindparam("days", expanding=True)))
    .where(ArticleRow.title_key.in_(bindparam("keys", expanding=True)))
    .order_by(ArticleRow.id)
)
_NEWEST_DAY = select(func.max(ArticleRow.day))
_NEW_BAND = aliased(ArticleBandRow)
_PAIRS = (
    select(_NEW_BAND.article_id.label("new"), ArticleBandRow.article_id.label("earlier"))
    .join(
        ArticleBandRow,
        (ArticleBandRow.band == _NEW_BAND.band)
        & ArticleBandRow.day.in_(bindparam("days", expanding=True))
        & ArticleBandRow.day.between(
            _NEW_BAND.day - bindparam("reach"), _NEW_BAND.day + bindparam("reach")
        )
        & (ArticleBandRow.article_id < _NEW_BAND.article_id),
    )
    .where(_NEW_BAND.article_id.in_(bindparam("ids", expanding=True)))
    .distinct()
    .subquery()
)
# The latest pairs of each article only: a text that many items share (boilerplate under
# distinct titles) shares bands with each of them, and they need not all come back to be
# compared. The latest, as the earliest may lie outside the article's window by some hours of
# its first day; a later copy leads to the same original. Room for the window's hours too.
_PAIRS_EACH = MAX_CANDIDATES * 5 * 4
_RANKED = select(
    _PAIRS.c.new,
    _PAIRS.c.earlier,
    func.row_number()
    .over(partition_by=_PAIRS.c.new, order_by=_PAIRS.c.earlier.desc())
    .label("rank"),
).subquery()
_BAND_PAIRS = select(_RANKED.c.new, _RANKED.c.earlier).where(_RANKED.c.rank <= _PAIRS_EACH)
_TEXTS = select(*_COLUMNS, ArticleRow.minhash, _seen_or_published(ArticleRow).label("seen")).where(
    ArticleRow.id.in_(bindparam("ids", expanding=True))
)
_MENTION_COLUMNS = ("article_id", "kind", "entity_id", "field", "start", "end", "text", "alias")
_BAND_COLUMNS = ("article_id", "band", "day")
# a story's row with its profile as the JSON text, which ``_story_profile`` reads once
_PROFILE = cast(StoryRow.profile, Text).label("profile")
_STORY_COLUMNS = (*(c for c in StoryRow.__table__.c if c.name != "profile"), _PROFILE)
_SHARED = func.count(StoryKeyRow.key).label("shared")
_SHARING = (
    select(StoryKeyRow.story_id, _SHARED)
    .join(StoryRow, StoryRow.id == StoryKeyRow.story_id)
    .where(StoryKeyRow.key.in_(bindparam("keys", expanding=True)))
    .where(StoryKeyRow.last_seen_at.in_(bindparam("key_days", expanding=True)))
    .where(StoryRow.last_seen_at >= bindparam("since"))
    .group_by(StoryKeyRow.story_id)
    .order_by(_SHARED.desc(), StoryKeyRow.story_id.desc())
    .limit(MAX_CANDIDATES)
).subquery()
_NEWEST_KEY_DAY = select(func.max(StoryKeyRow.last_seen_at))
_CANDIDATES = (
    select(StoryRow.id, _PROFILE)
    .join(_SHARING, _SHARING.c.story_id == StoryRow.id)
    .where(StoryRow.first_seen_at <= bindparam("until"))
)
_STORY = select(*_STORY_COLUMNS).where(StoryRow.id == bindparam("story"))
_UPDATE_STORY = update(StoryRow).where(StoryRow.id == bindparam("story"))
_INSERT_KEYS = insert(StoryKeyRow)
_DROP_KEYS = delete(StoryKeyRow).where(
    StoryKeyRow.story_id == bindparam("story"),
    StoryKeyRow.key.in_(bindparam("keys", expanding=True)),
)
_KEYS_SEEN = (
    update(StoryKeyRow)
    .where(StoryKeyRow.story_id == bindparam("story"))
    .values(last_seen_at=bindparam("seen"))
)
_SET_STORY = (
    update(ArticleRow)
    .where(ArticleRow.id == bindparam("article_id"))
    .values(story_id=bindparam("story"), duplicate_of=bindparam("original"))
)
