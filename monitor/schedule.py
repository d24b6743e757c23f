"""When to poll a source next: its interval, what the server and the feed ask for, and what
its history says.

The next check is the latest of the source's interval and every hint the source gave
(``Retry-After``, ``Cache-Control: max-age``, ``Expires``, RSS ``<ttl>``, ``sy:updatePeriod``),
clamped to the longest interval allowed. After failures the interval doubles with jitter, so
many sources of one host do not retry in step; a server's ``Retry-After`` is honoured on top.
An adaptive source is polled more often when it publishes often, within bounds.

Pure functions of their arguments: the pipeline gathers the facts, the store keeps the result.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?([0-9]+)", re.IGNORECASE)
_SECONDS = re.compile(r"[0-9]+")
#: No hint is taken to ask for more than this (the longest wait clamps it further).
LONGEST_HINT = timedelta(days=365)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\b", re.IGNORECASE)
_UPDATE_PERIODS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
    "monthly": timedelta(days=30),
    "yearly": timedelta(days=365),
}


@dataclass(frozen=True)
class Hints:
    """What a source said about when to come back; None where it said nothing."""

    retry_after: datetime | None = None  # Retry-After (with 429 or 503)
    fresh_until: datetime | None = None  # Cache-Control max-age, else Expires
    ttl: timedelta | None = None  # RSS <ttl>
    update_period: timedelta | None = None  # sy:updatePeriod / sy:updateFrequency

    @property
    def feed_wait(self) -> timedelta | None:
        """What the feed itself asks (kept for the polls that get 304 Not Modified)."""
        asked = [w for w in (self.ttl, self.update_period) if w is not None]
        return max(asked) if asked else None

    def latest(self, now: datetime) -> tuple[datetime, str] | None:
        """The latest moment any hint asks to wait until, and which hint that is."""
        asked = [
            (self.retry_after, "Retry-After"),
            (self.fresh_until, "Cache-Control/Expires"),
            (now + self.ttl if self.ttl else None, "ttl"),
            (now + self.update_period if self.update_period else None, "sy:updatePeriod"),
        ]
        found = [(when, name) for when, name in asked if when is not None]
        return max(found, key=lambda pair: pair[0]) if found else None


def header_hints(headers: Mapping[str, str], now: datetime) -> Hints:
    """``Retry-After``, and freshness from ``Cache-Control: max-age`` (less ``Age``) or
    ``Expires``; lower-case header names."""
    return Hints(
        retry_after=retry_after(headers, now),
        fresh_until=_fresh_until(headers, now),
    )


def retry_after(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """A ``Retry-After`` of seconds or an HTTP date, as a moment; None if absent or unreadable."""
    value = (headers.get("retry-after") or "").strip()
    if _SECONDS.fullmatch(value):
        return now + _capped(int(value))
    when = _http_date(value)
    return min(when, now + LONGEST_HINT) if when else None


def _fresh_until(headers: Mapping[str, str], now: datetime) -> datetime | None:
    control = headers.get("cache-control") or ""
    if _NO_CACHE.search(control):
        return None
    found = _MAX_AGE.search(control)
    if found:
        age = headers.get("age", "0").strip()
        fresh = int(found.group(1)) - (int(age) if _SECONDS.fullmatch(age) else 0)
        return now + _capped(fresh) if fresh > 0 else None
    expires = _http_date((headers.get("expires") or "").strip())
    return min(expires, now + LONGEST_HINT) if expires and expires > now else None


def _capped(seconds: int) -> timedelta:
    return timedelta(seconds=min(seconds, int(LONGEST_HINT.total_seconds())))


def _http_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def update_period(period: str | None, frequency: str | None) -> timedelta | None:
    """``sy:updatePeriod`` ("hourly" …) divided by ``sy:updateFrequency`` (default 1)."""
    base = _UPDATE_PERIODS.get((period or "").strip().lower())
    if base is None:
        return None
    times = (frequency or "1").strip()
    return base / int(times) if _SECONDS.fullmatch(times) and int(times) > 0 else base


def minutes(value: int | None) -> timedelta | None:
    """RSS ``<ttl>`` minutes as a duration, capped; None for none."""
    return _capped(value * 60) if value else None


def next_check(
    now: datetime, interval: timedelta, hints: Hints, longest: timedelta
) -> tuple[datetime, str | None]:
    """The latest of ``now + interval`` and every hint, at most ``now + longest``; and which
    hint decided it (None: the interval)."""
    planned, reason = now + interval, None
    asked = hints.latest(now)
    if asked is not None and asked[0] > planned:
        planned, reason = asked
    return min(planned, now + max(longest, interval)), reason


def backoff(base: timedelta, failures: int, ceiling: timedelta) -> timedelta:
    """base × 2^(failures-1) plus up to 25% jitter (so retries do not move in step), capped."""
    jittered: timedelta = base * (2 ** min(failures - 1, 20)) * random.uniform(1.0, 1.25)
    return min(jittered, max(ceiling, base))


def adaptive_interval(items_per_day: float, shortest: timedelta, longest: timedelta) -> timedelta:
    """Two polls per item a source publishes on average, within ``shortest`` … ``longest``."""
    if items_per_day <= 0:
        return longest
    wanted = timedelta(days=1) / (2 * items_per_day)
    return max(shortest, min(longest, wanted))
