"""Routing: what becomes of a rule's match. Alertmanager's discipline, made for events.

    match → story → route → outbox

A story's first matching article alerts. Later articles of the story do not alert again unless
something material changes (a tracked actor or topic not seen in the story before, an outlet
marked important, the story reaching a number of outlets); then an update says what changed and
which alert it follows. An alert not yet sent takes in what later articles add instead, so one
message goes out (``group_wait`` holds a first alert for this). Updates of one story are at
least ``group_interval`` apart. A silence keeps its alerts, marked, and sends nothing.

Each channel of an alert is then given its time and way: at once, at the end of the channel's
quiet hours (``critical`` rules go through), or in the next digest of the rule or channel.

Everything here is pure: the store reads what was said before and writes what is decided.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.config import ChannelConfig, QuietHours, RuleConfig, StoriesConfig
from monitor.durations import parse_crontab
from monitor.models import (
    AlertMessage,
    AlertPlan,
    Mention,
    PendingDelivery,
    StoryAssignment,
    unique,
)


class Outcome(enum.StrEnum):
    """What became of a match, as the log says it."""

    ALERT = "alert"  # a new alert: the story's first, or an article's own
    GROUPED = "grouped"  # nothing new to say: joined its story's alert
    UPDATE = "update"  # something material changed: an update of the story's alert
    SILENCED = "silenced"  # an alert kept and marked, not sent
    BACKFILL = "backfill"  # on a source's first poll, older than its backfill window


class Mode(enum.StrEnum):
    """How a delivery goes out."""

    NOW = "now"  # on its own, when due
    QUIET = "quiet"  # held for the channel's quiet hours, sent with the others as one digest
    DIGEST = "digest"  # in the channel's or rule's next digest


@dataclass(frozen=True)
class Silence:
    """Alerts that match every given field are kept, marked and not sent until it expires."""

    id: int
    created_at: datetime
    created_by: str
    reason: str
    expires_at: datetime
    expired_at: datetime | None = None  # ended early, by hand
    actor: str | None = None
    topic: str | None = None
    source: str | None = None
    rule: str | None = None

    def active(self, now: datetime) -> bool:
        return now < self.expires_at and self.expired_at is None

    def covers(self, rule: str, source: str, actors: Sequence[str], topics: Sequence[str]) -> bool:
        return (
            (self.rule is None or self.rule == rule)
            and (self.source is None or self.source == source)
            and (self.actor is None or self.actor in actors)
            and (self.topic is None or self.topic in topics)
        )

    @property
    def matchers(self) -> str:
        """``actor=wang-yi rule=us-china`` — what it covers."""
        fields = {"actor": self.actor, "topic": self.topic, "source": self.source}
        fields["rule"] = self.rule
        return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


@dataclass(frozen=True)
class Said:
    """What one rule's alerts have told about one story so far (silenced ones excepted)."""

    latest: int  # the latest alert
    latest_message: AlertMessage
    latest_open: bool  # none of its deliveries has gone out: it can still take more in
    latest_send_at: datetime  # when it was to go out
    actors: frozenset[str]  # display names, as the messages carry them
    topics: frozenset[str]
    outlets: frozenset[str]


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    message: AlertMessage | None  # the new alert's, or the open alert's as refreshed
    alert: int | None = None  # the alert joined (grouped) or followed (update)
    send_at: datetime | None = None  # for a new alert or update
    silence: Silence | None = None
    reason: str | None = None  # said in the log


@dataclass(frozen=True)
class Delivery:
    channel: str
    mode: Mode
    at: datetime
    note: str | None = None  # why it waits


class Router:
    """The routing decisions for the configured rules and channels."""

    def __init__(
        self,
        rules: Sequence[RuleConfig],
        channels: Sequence[ChannelConfig],
        stories: StoriesConfig,
        important_sources: frozenset[str] = frozenset(),
    ) -> None:
        self._rules = {r.name: r for r in rules}
        self._channels = {c.name: c for c in channels}
        self._milestones = tuple(sorted(stories.outlet_milestones))
        self._important = important_sources

    def by_story(self, rule: str) -> bool:
        config = self._rules.get(rule)
        return config is None or config.group_by == "story"

    def decide(
        self,
        plan: AlertPlan,
        mentions: Sequence[Mention],
        story: StoryAssignment | None,
        said: Said | None,
        silences: Sequence[Silence],
        now: datetime,
    ) -> Decision:
        """What a match of ``plan.rule`` on a new article becomes."""
        rule = self._rules.get(plan.rule)
        message = _with_story(plan.message, story, rule is not None and rule.critical)
        actors = [m.id for m in mentions if m.kind == "actor"]
        topics = [m.id for m in mentions if m.kind == "topic"]
        source = plan.message.source
        for silence in silences:
            if silence.active(now) and silence.covers(plan.rule, source, actors, topics):
                reason = f"silenced by silence {silence.id} ({silence.reason})"
                return Decision(Outcome.SILENCED, message, silence=silence, reason=reason)
        wait = rule.group_wait if rule else timedelta(0)
        if story is None or said is None or not self.by_story(plan.rule):
            return Decision(Outcome.ALERT, message, send_at=now + wait)
        changes = self._changes(said, message, story, source)
        where = f"story {story.story.id}, alert {said.latest}"
        if said.latest_open:  # not sent yet: it takes in what this article adds
            merged = _merged(said.latest_message, message, changes)
            reason = f"grouped into {where}, before it went out"
            return Decision(Outcome.GROUPED, merged, said.latest, reason=reason)
        if not changes:
            reason = f"grouped into {where}: nothing new"
            return Decision(Outcome.GROUPED, None, said.latest, reason=reason)
        interval = rule.group_interval if rule else timedelta(0)
        update = replace(message, kind="update", changes=changes, follows=said.latest)
        send_at = max(now, said.latest_send_at + interval)
        reason = "update of " + where + ": " + "; ".join(changes)
        return Decision(Outcome.UPDATE, update, said.latest, send_at, reason=reason)

    def _changes(
        self, said: Said, message: AlertMessage, story: StoryAssignment, source: str
    ) -> tuple[str, ...]:
        changes = [f"new actor: {a}" for a in message.actors if a not in said.actors]
        changes += [f"new topic: {t}" for t in message.topics if t not in said.topics]
        if source in self._important and story.outlet not in said.outlets:
            changes.append(f"important outlet: {story.outlet}")
        reached = [m for m in self._milestones if len(said.outlets) < m <= len(message.outlets)]
        if reached:
            changes.append(f"now {len(message.outlets)} outlets")
        return tuple(changes)

    def deliveries(self, plan: AlertPlan, send_at: datetime, now: datetime) -> list[Delivery]:
        """When and how each of the rule's channels gets an alert due at ``send_at``."""
        config = self._rules.get(plan.rule)
        out = []
        for name in plan.channels:
            channel = self._channels.get(name)
            if channel is None or config is None:  # not configured: at once (the outbox
                out.append(Delivery(name, Mode.NOW, send_at))  # gives up an unknown channel)
                continue
            out.append(_delivery(channel, config, send_at, now))
        return out


def _delivery(
    channel: ChannelConfig, rule: RuleConfig, send_at: datetime, now: datetime
) -> Delivery:
    schedule = (rule.digest, rule.timezone) if rule.digest else (channel.digest, channel.timezone)
    mode, at, note = Mode.NOW, send_at, None
    if send_at > now:
        note = f"held until {send_at:%Y-%m-%d %H:%M} UTC to gather outlets (group timers)"
    if schedule[0]:
        mode, at = Mode.DIGEST, next_digest(schedule[0], schedule[1], send_at)
        note = f"in the digest of {_local(at, schedule[1])}"
    quiet = channel.quiet_hours
    end = quiet_end(quiet, at) if quiet is not None and not rule.critical else None
    if quiet is not None and end is not None:
        mode = Mode.DIGEST if mode is Mode.DIGEST else Mode.QUIET
        at = end
        note = f"held for quiet hours until {_local(end, quiet.timezone)}"
    return Delivery(channel.name, mode, at, note)


def quiet_end(quiet: QuietHours, at: datetime) -> datetime | None:
    """When the quiet window that ``at`` falls in ends (UTC), or None if ``at`` is outside.
    Windows are wall-clock times in their zone, so they follow daylight saving time."""
    zone = ZoneInfo(quiet.timezone)
    day = at.astimezone(zone).date()
    for start_day in (day - timedelta(days=1), day):
        start = datetime.combine(start_day, quiet.start, zone).astimezone(UTC)
        end_day = start_day if quiet.end > quiet.start else start_day + timedelta(days=1)
        end = datetime.combine(end_day, quiet.end, zone).astimezone(UTC)
        if start <= at < end:
            return end
    return None


def next_digest(crontab: str, timezone: str, after: datetime) -> datetime:
    """The first time at or after ``after`` that a cron schedule fires (UTC)."""
    trigger = parse_crontab(crontab, ZoneInfo(timezone))
    fire: datetime | None = trigger.get_next_fire_time(None, after)
    assert fire is not None  # a valid crontab fires again, within a few years at most
    return fire.astimezone(UTC)


def _local(at: datetime, timezone: str) -> str:
    return f"{at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} {timezone}"


def _with_story(
    message: AlertMessage, story: StoryAssignment | None, critical: bool
) -> AlertMessage:
    if story is None:
        return replace(message, critical=critical, outlets=(message.source,))
    return replace(
        message,
        story_id=story.story.id,
        story_title=story.story.title,
        outlets=story.story.outlets,
        articles=story.story.articles,
        critical=critical,
    )


def _merged(
    open_alert: AlertMessage, later: AlertMessage, changes: tuple[str, ...]
) -> AlertMessage:
    """An alert not sent yet, refreshed with what a later article of its story adds."""
    return replace(
        open_alert,
        story_title=later.story_title,
        outlets=later.outlets,
        articles=later.articles,
        actors=unique([*open_alert.actors, *later.actors]),
        topics=unique([*open_alert.topics, *later.topics]),
        changes=unique([*open_alert.changes, *changes]) if open_alert.kind == "update" else (),
    )


def said_about(
    alerts: Sequence[tuple[int, AlertMessage, bool, datetime]],
) -> Said | None:
    """What alerts (id, message, open, send_at; oldest first, silenced ones left out) said."""
    if not alerts:
        return None
    latest, message, is_open, send_at = alerts[-1]
    return Said(
        latest=latest,
        latest_message=message,
        latest_open=is_open,
        latest_send_at=send_at,
        actors=frozenset(a for _, m, _, _ in alerts for a in m.actors),
        topics=frozenset(t for _, m, _, _ in alerts for t in m.topics),
        outlets=frozenset(o for _, m, _, _ in alerts for o in m.outlets),
    )


def digest_order(messages: Sequence[tuple[int, AlertMessage]]) -> list[AlertMessage]:
    """Alerts (id, message) for one digest: grouped by story, most important story first
    (critical, then most outlets, then most articles), each story's alerts in order."""
    stories: dict[object, list[tuple[int, AlertMessage]]] = {}
    for alert_id, message in sorted(messages, key=lambda pair: pair[0]):
        key = message.story_id if message.story_id is not None else ("alert", alert_id)
        stories.setdefault(key, []).append((alert_id, message))

    def importance(group: list[tuple[int, AlertMessage]]) -> tuple[int, int, int, int]:
        last = group[-1][1]
        critical = any(m.critical for _, m in group)
        return (-int(critical), -len(last.outlets), -last.articles, group[0][0])

    return [m for group in sorted(stories.values(), key=importance) for _, m in group]


#: The note on deliveries that went out as one message: "one message for alerts 5, 6".
SENT_TOGETHER = "one message for alerts"


def sent_together(due: Sequence[PendingDelivery]) -> dict[int, list[PendingDelivery]]:
    """Deliveries that go out as one message: those for one channel, not tried yet, whose
    alerts say the same of the same article but for the rule that made them and the snippet
    around its words (several rules matching one article). Each group of two or more, by the
    id of its first delivery."""
    groups: dict[tuple[str, AlertMessage], list[PendingDelivery]] = {}
    for delivery in due:
        if delivery.attempts == 0 and not delivery.set_aside:
            said = replace(delivery.message, rule="", critical=False, snippet="", highlights=())
            groups.setdefault((delivery.channel, said), []).append(delivery)
    return {group[0].id: group for group in groups.values() if len(group) > 1}


def one_message(messages: Sequence[AlertMessage]) -> AlertMessage:
    """Alerts of several rules about one article as one message that names every rule and
    every actor and topic any of them matched (with the first one's snippet)."""
    return replace(
        messages[0],
        rule=", ".join(unique(m.rule for m in messages)),
        actors=unique(a for m in messages for a in m.actors),
        topics=unique(t for m in messages for t in m.topics),
        critical=any(m.critical for m in messages),
    )
