"""The plain values that pass between the stages of the pipeline.

    source → fetch → parse → normalise → store (new only) → match → route → outbox → deliver

Each stage takes and returns these frozen dataclasses, never another stage's internals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from monitor.stories import StoryFeatures

FieldName = Literal["title", "summary", "text", "source", "url", "author"]
EntityKind = Literal["actor", "topic", "term"]

#: The text fields of an article that matching looks at, in the order they are read.
TEXT_FIELDS: tuple[FieldName, ...] = ("title", "summary", "text")


@dataclass(frozen=True)
class Article:
    """One item of a source, as parsed: plain text fields, no HTML."""

    title: str
    text: str = ""
    summary: str = ""
    url: str | None = None
    guid: str | None = None
    author: str | None = None
    published: datetime | None = None  # timezone-aware (UTC) when known
    source: str = ""  # the source's name in the config
    lang: str | None = None

    def field_text(self, name: FieldName) -> str:
        return str(getattr(self, name))


@dataclass(frozen=True)
class ParsedFeed:
    """What a parser found in one fetched document."""

    articles: tuple[Article, ...]
    title: str = ""
    ttl_minutes: int | None = None
    update_period: str | None = None  # sy:updatePeriod (hourly, daily …)
    update_frequency: str | None = None  # sy:updateFrequency (times per period)
    warning: str | None = None  # the parser's complaint when it still found entries (bozo)


@dataclass(frozen=True, init=False)
class Mention:
    """One place where an article names a tracked actor or topic."""

    kind: EntityKind
    id: str  # the actor's or topic's id
    field: FieldName
    start: int  # character offsets into the article's field text
    end: int
    text: str  # the words as the article writes them
    alias: str  # the watchlist alias or term that matched

    def __init__(
        self,
        kind: EntityKind,
        id: str,
        field: FieldName,
        start: int,
        end: int,
        text: str,
        alias: str,
    ) -> None:
        # Matching makes one for every name it finds: one update of the instance's dict takes
        # about half the time of a frozen dataclass's generated __init__, which sets each field
        # through object.__setattr__.
        self.__dict__.update(
            kind=kind, id=id, field=field, start=start, end=end, text=text, alias=alias
        )


@dataclass(frozen=True)
class RuleHit:
    """A rule that an article satisfies, with the mentions that made it true."""

    rule: str
    mentions: tuple[Mention, ...] = ()
    version: str = ""  # the rule's version: a hash of its query


@dataclass(frozen=True)
class MatchResult:
    """Everything matching found in one article."""

    mentions: tuple[Mention, ...]
    rule_hits: tuple[RuleHit, ...] = ()

    @property
    def actors(self) -> tuple[str, ...]:
        return unique(m.id for m in self.mentions if m.kind == "actor")

    @property
    def topics(self) -> tuple[str, ...]:
        return unique(m.id for m in self.mentions if m.kind == "topic")

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(h.rule for h in self.rule_hits)


@dataclass(frozen=True)
class AlertMessage:
    """What an alert says, independent of the channel that will carry it."""

    rule: str
    title: str
    source: str
    url: str | None
    published: datetime | None
    actors: tuple[str, ...]  # display names
    topics: tuple[str, ...]  # display names
    snippet: str  # plain text
    highlights: tuple[tuple[int, int], ...] = field(default=())  # spans of matched words in snippet
    # The story the article belongs to, as it stood when the message was made or last held.
    story_id: int | None = None
    story_title: str | None = None
    outlets: tuple[str, ...] = ()  # outlets that have published the story
    articles: int = 1  # articles in the story
    kind: Literal["new", "update"] = "new"  # a new story, or an update of one already alerted
    changes: tuple[str, ...] = ()  # for an update: what changed ("new actor: Qin Gang" …)
    follows: int | None = None  # for an update: the alert it follows
    critical: bool = False  # the rule goes through quiet hours


@dataclass(frozen=True)
class Digest:
    """Several alerts delivered as one message: on a digest schedule, or at the end of a
    channel's quiet hours. Grouped by story, most important first."""

    reason: Literal["digest", "quiet hours"]
    alerts: tuple[AlertMessage, ...]
    since: datetime | None = None  # the earliest alert gathered

    @property
    def stories(self) -> tuple[tuple[AlertMessage, ...], ...]:
        """The alerts grouped by story (an alert without one is its own), in order."""
        groups: dict[object, list[AlertMessage]] = {}
        for index, alert in enumerate(self.alerts):
            key = alert.story_id if alert.story_id is not None else ("alert", index)
            groups.setdefault(key, []).append(alert)
        return tuple(tuple(g) for g in groups.values())


def unique(items: Iterable[str]) -> tuple[str, ...]:
    """Each item once, in the order first seen."""
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class AlertPlan:
    """What to do about one rule hit: alert through its channels, or record why not."""

    rule: str
    channels: tuple[str, ...]
    message: AlertMessage
    evidence: tuple[Mention, ...]
    suppressed: str | None = None  # why no alert goes out (e.g. "backfill"); None: alert
    rule_version: str = ""  # a hash of the rule's query, recorded with the match


@dataclass(frozen=True)
class Story:
    """Articles from one or more outlets about one event, as it stands."""

    id: int
    title: str
    first_seen: datetime
    last_seen: datetime
    articles: int
    outlets: tuple[str, ...]  # in the order they joined
    actors: tuple[str, ...]  # ids of the tracked actors its articles name
    topics: tuple[str, ...]


@dataclass(frozen=True)
class StoryAssignment:
    """Where a new article went: the story it joined or started, as it stands after."""

    story: Story
    started: bool  # the article started the story
    outlet: str  # the article's outlet
    duplicate_of: int | None = None  # the stored article it repeats (same or near-same text)


@dataclass(frozen=True)
class NewArticle:
    """An article not seen before, with everything matching decided about it."""

    key: str  # identity within its source
    article: Article
    mentions: tuple[Mention, ...]
    alerts: tuple[AlertPlan, ...]
    story: StoryFeatures | None = None  # what the story stage compares; None: not compared


@dataclass(frozen=True)
class SourceState:
    """What the database remembers of a source between polls."""

    id: int
    name: str
    next_check_at: datetime | None
    etag: str | None
    last_modified: str | None
    error_count: int
    last_error: str | None
    last_success_at: datetime | None
    not_modified_streak: int = 0  # 304 answers in a row
    disabled_at: datetime | None = None  # set after too many failures; re-probed slowly
    feed_wait: timedelta | None = None  # what the feed last asked to wait (ttl, sy:updatePeriod)

    @property
    def first_poll(self) -> bool:
        return self.last_success_at is None


@dataclass(frozen=True)
class FetchOutcome:
    """How one poll of a source went, for the ``fetches`` log and the source's schedule."""

    started_at: datetime
    status: Literal["ok", "not_modified", "error"]
    duration_ms: int
    next_check_at: datetime
    http_status: int | None = None
    items: int = 0
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    disabled: bool = False  # a failure that disables the source (too many in a row)
    overflow: bool = False  # every item was new: some may have scrolled off unseen
    feed_wait: timedelta | None = None  # what the feed asks to wait (ttl, sy:updatePeriod)


@dataclass(frozen=True)
class PendingDelivery:
    """One message owed to one channel."""

    id: int
    alert_id: int
    channel: str
    attempts: int
    message: AlertMessage
    set_aside: bool = False  # refused while its channel took others: it waits alone
    mode: str = "now"  # now | quiet | digest (see monitor.routing.Mode)
    created_at: datetime | None = None  # of its alert


#: What a channel carries: one alert, or a digest of several.
Message = AlertMessage | Digest
