"""Durations as users write them: ``30s``, ``15m``, ``2h``, ``1d``, ``1w``, or ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

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
