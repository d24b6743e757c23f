"""The database schema, as SQLAlchemy models. Only ``monitor.store`` queries these tables;
``migrations/`` creates them. Times are stored as timezone-aware UTC.

    sources     one row per configured source: its schedule, validators and health
    fetches     one row per poll of a source: when, outcome, HTTP status, duration, new items
    articles    one row per distinct item of a source (unique by source and identity key)
    mentions    where an article names a tracked actor or topic (field and character span)
    matches     one row per (rule, article) the rule matched, and what became of it (outcome):
                a new alert, grouped into its story's alert, an update, silenced, backfill
    alerts      one row per message about a story (its first alert or an update) or article,
                with the message it carries; kept and marked when a silence covers it
    deliveries  one row per (alert, channel): the outbox, with attempts and the last error, and
                whether it goes at once, at the end of quiet hours or in a digest
    silences    who silenced which actor, topic, source or rule, why, and until when
    ops_events  one row per operational issue (a source disabled or silent, a channel down):
                when it opened and cleared, and when each was announced
    stories     one row per story: title, first and last seen, outlets, entities, profile
    story_keys  the distinctive terms of each story, indexed to find it (with the day it was
                last seen)
    article_bands  the locality-sensitive bands of each article's MinHash signature (with the
                day it came out)
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class SourceRow(Base):
    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    location: Mapped[str] = mapped_column(Text)  # feed URL or folder path
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_modified_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # too many failures
    feed_wait: Mapped[int | None] = mapped_column(Integer)  # seconds the feed asks (ttl …)


class FetchRow(Base):
    __tablename__ = "fetches"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))  # ok | not_modified | error
    http_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    items: Mapped[int] = mapped_column(Integer, default=0)  # items the feed held
    new_items: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    overflow: Mapped[bool] = mapped_column(default=False, server_default=false())  # all new
    __table_args__ = (Index("ix_fetches_source_started", "source_id", "started_at"),)


class ArticleRow(Base):
    __tablename__ = "articles"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(600))  # guid:…, url:…, hash:… or file:…
    guid: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(35))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    story_id: Mapped[int | None] = mapped_column(Id, index=True)  # stories.id
    duplicate_of: Mapped[int | None] = mapped_column(Id)  # the first article it repeats
    outlet: Mapped[str | None] = mapped_column(String(200))
    url_key: Mapped[str | None] = mapped_column(String(600), index=True)  # canonical URL
    title_key: Mapped[str | None] = mapped_column(String(600))  # normalised title
    minhash: Mapped[bytes | None] = mapped_column(LargeBinary)  # shingle signature
    # the UTC date it came out (published, else fetched), as date.toordinal(): titles are
    # indexed by day, so a poll's go near the end of the index and a look-up reads its window
    day: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (
        UniqueConstraint("source_id", "key", name="uq_articles_source_key"),
        Index("ix_articles_day_title_key", "day", "title_key"),
    )


class MentionRow(Base):
    __tablename__ = "mentions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))  # actor | topic
    entity_id: Mapped[str] = mapped_column(String(200))
    field: Mapped[str] = mapped_column(String(20))  # title | summary | text
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)  # the words as the article writes them
    alias: Mapped[str] = mapped_column(Text)  # the watchlist form that matched
    __table_args__ = (Index("ix_mentions_entity", "kind", "entity_id"),)


class MatchRow(Base):
    __tablename__ = "matches"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(200), index=True)
    rule_version: Mapped[str | None] = mapped_column(String(16))  # a hash of the rule's query
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    alerted: Mapped[bool] = mapped_column(default=True)
    reason: Mapped[str | None] = mapped_column(Text)  # why it did not alert (e.g. backfill)
    evidence: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    alert_id: Mapped[int | None] = mapped_column(Integer)  # the alert it made or joined
    outcome: Mapped[str | None] = mapped_column(String(20))  # see monitor.routing.Outcome
    __table_args__ = (UniqueConstraint("rule", "article_id", name="uq_matches_rule_article"),)


class AlertRow(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    message: Mapped[dict[str, object]] = mapped_column(JSON)  # the AlertMessage, as JSON
    story_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10), default="new", server_default="new")  # update
    follows: Mapped[int | None] = mapped_column(Integer)  # the alert an update follows
    silence_id: Mapped[int | None] = mapped_column(Integer)  # kept, not sent: silenced
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # after group_wait …
    __table_args__ = (
        UniqueConstraint("rule", "article_id", name="uq_alerts_rule_article"),
        Index("ix_alerts_rule_story", "rule", "story_id"),
    )


class DeliveryRow(Base):
    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # claimed for sending
    lease_token: Mapped[str | None] = mapped_column(String(36))  # by whom (one claim)
    set_aside: Mapped[bool] = mapped_column(default=False, server_default=false())  # see store
    last_error: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first failed attempt
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mode: Mapped[str] = mapped_column(
        String(10), default="now", server_default="now"
    )  # quiet, digest
    note: Mapped[str | None] = mapped_column(Text)  # why it waits: quiet hours, digest, 429
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", name="uq_deliveries_alert_channel"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # the outbox reads only pending rows: keep that cheap however long the history grows
        Index(
            "ix_deliveries_pending_order",
            "alert_id",
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_deliveries_pending_channel",
            "channel",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )


class SilenceRow(Base):
    __tablename__ = "silences"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # ended early, by hand
    # what it covers: every one given must hold (an actor or topic the article names)
    actor: Mapped[str | None] = mapped_column(String(200))
    topic: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(200))
    rule: Mapped[str | None] = mapped_column(String(200))


class OpsEventRow(Base):
    __tablename__ = "ops_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))  # source-disabled | source-silent | channel-down
    subject: Mapped[str] = mapped_column(String(200))  # the source or channel
    message: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (Index("ix_ops_events_subject", "kind", "subject", "resolved_at"),)


class StoryRow(Base):
    __tablename__ = "stories"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    title: Mapped[str] = mapped_column(Text)  # its first article's
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    article_count: Mapped[int] = mapped_column(Integer)
    outlets: Mapped[list[str]] = mapped_column(JSON)  # in the order they joined
    actors: Mapped[list[str]] = mapped_column(JSON)
    topics: Mapped[list[str]] = mapped_column(JSON)
    profile: Mapped[dict[str, object]] = mapped_column(JSON)  # monitor.stories.StoryProfile


class StoryKeyRow(Base):
    __tablename__ = "story_keys"
    story_id: Mapped[int] = mapped_column(
        ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # the start of the day (UTC) the story was last seen, to skip old stories
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # by day first: a poll's keys go near the end of the index; a look-up seeks each day
    __table_args__ = (Index("ix_story_keys_seen_key", "last_seen_at", "key", "story_id"),)


class ArticleBandRow(Base):
    """Keyed and indexed so that a poll writes near the end of each: by article, and by day
    then band (a look-up reads the few days of its window, whatever the size of the log; the
    articles it finds are then held to the window exactly). The index carries the article, so
    a look-up never visits the table."""

    __tablename__ = "article_bands"
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    band: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # the UTC date the article came out (published, else fetched), as date.toordinal()
    day: Mapped[int] = mapped_column(Integer)
    __table_args__ = (Index("ix_article_bands_day_band_article", "day", "band", "article_id"),)
