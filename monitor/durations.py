"""Durations as users write them: ``30s``, ``15m``, ``2h``, ``1d``, ``1w``, or ``1h30m``; and
cron schedules (``0 8 * * 1-5``)."""

from __future__ import annotations

import re
from datetime import timedelta, tzinfo

from apscheduler.triggers.cron import CronTrigger

_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
_LONGEST = 100 * 365 * 86400  # a century
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"15m"`` → 15 minutes. Raises ValueError naming the accepted forms."""
    if not _WHOLE.match(text.lower()):
        raise ValueError(f"{text!r} is not a duration: write e.g. 30s, 15m, 2h, 1d or 1h30m")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text.lower()))
    if seconds > _LONGEST:
        raise ValueError(f"{text!r} is too long a duration (at most {_LONGEST // 86400}d)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact form of ``value``: 900 s → ``15m``."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in "wdhms":
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbers them 0 (or 7) to 6


def parse_crontab(text: str, timezone: tzinfo | str = "UTC") -> CronTrigger:
    """A cron schedule, ``minute hour day month weekday`` with cron's own weekday numbers
    (0 or 7 Sunday, 1 Monday … 6 Saturday), as an APScheduler trigger. (APScheduler 3 reads
    weekday numbers from Monday = 0, so "1-5" would mean Tuesday to Saturday: the weekday field
    is given to it by name.) Raises ValueError naming the mistake."""
    fields = text.split()
    if len(fields) != 5:
        raise ValueError("write five fields: minute hour day month weekday")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekday_names(weekday),
        timezone=timezone,
    )


def _weekday_names(field: str) -> str:
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            raise ValueError(f"weekday step {step!r} is not a number")
        stride = int(step) if step else 1
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            start, end = base.split("-", 1)
            first, last = _weekday(start), _weekday(end)
            last = last + 7 if last < first else last  # fri-mon wraps round the week
        else:
            first = _weekday(base)
            last = 6 if step else first  # "1/2": from Monday, every other day
        if stride < 1:
            raise ValueError("a weekday step must be at least 1")
        days.update(d % 7 for d in range(first, last + 1, stride))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token) % 7
    if token[:3] in _WEEKDAYS:
        return _WEEKDAYS.index(token[:3])
    raise ValueError(f"{token!r} is not a weekday (0-7 or sun, mon … sat)")
