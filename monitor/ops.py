"""Operational alerts: telling the users when monitor itself might be missing something.

A source that keeps failing (disabled), a source silent for much longer than its usual rhythm,
and a channel whose deliveries have been failing for too long are *issues*. Each issue opens an
ops event once, is announced through the ops channel (a different one from the channel that is
down), and is announced again when it clears. Pure functions of what the store reports; the
pipeline keeps the events and sends the notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.durations import format_duration
from monitor.models import AlertMessage
from monitor.store import OpsEvent, SourceHealth

#: A source is silent when nothing new came for this many of its usual gaps between items.
STALE_GAPS = 4
#: Nor is a source silent before this long, however busy it usually is.
STALE_AT_LEAST = timedelta(days=1)


@dataclass(frozen=True)
class Issue:
    kind: str  # source-disabled | source-silent | channel-down
    subject: str  # the source's or the channel's name
    message: str


def source_issues(
    health: list[SourceHealth], rhythms: dict[str, tuple[datetime, float]], now: datetime
) -> list[Issue]:
    """Disabled sources, and sources silent for ``STALE_GAPS`` of their usual gaps (their
    rhythm in the week before they went quiet)."""
    issues = []
    for source in health:
        if source.status == "disabled":
            issues.append(
                Issue(
                    "source-disabled",
                    source.name,
                    f"source {source.name} is disabled after {source.error_count} failures in a"
                    f" row; last error: {source.last_error}",
                )
            )
            continue
        if source.name not in rhythms or rhythms[source.name][1] <= 0:
            continue  # no rhythm to judge by yet
        newest, per_day = rhythms[source.name]
        gap = timedelta(days=1) / per_day
        silent = now - newest
        if silent > max(STALE_GAPS * gap, STALE_AT_LEAST):
            issues.append(
                Issue(
                    "source-silent",
                    source.name,
                    f"source {source.name} has brought nothing new for"
                    f" {format_duration(_whole(silent))}; it usually brings"
                    f" {per_day:.1f} items a day",
                )
            )
    return issues


def channel_issues(
    failing_since: dict[str, datetime], now: datetime, after: timedelta
) -> list[Issue]:
    """Channels whose oldest failing delivery has waited longer than ``after``."""
    return [
        Issue(
            "channel-down",
            channel,
            f"channel {channel} has failed to deliver for {format_duration(_whole(now - since))};"
            " its alerts are kept and will be sent when it works again",
        )
        for channel, since in sorted(failing_since.items())
        if now - since > after
    ]


def notice(event: OpsEvent) -> AlertMessage:
    """The message an ops event is announced with: opened, or resolved."""
    resolved = event.resolved_at is not None
    title = ("resolved: " if resolved else "") + event.message
    when = event.resolved_at if resolved else event.opened_at
    return AlertMessage(
        rule="ops",
        title=title,
        source="monitor",
        url=None,
        published=when,
        actors=(),
        topics=(),
        snippet=f"{event.kind} {event.subject}: "
        + ("cleared" if resolved else "see `monitor sources` and `monitor log alerts`"),
    )


def _whole(span: timedelta) -> timedelta:
    return timedelta(minutes=int(span.total_seconds() // 60))
