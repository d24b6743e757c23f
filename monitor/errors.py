"""The one exception tree of monitor.

    MonitorError                  anything monitor raises on purpose
    ├── ConfigError               a config, watchlist or rule problem (carries every problem found)
    ├── QueryError                a rule's query cannot be compiled (monitor.rules; becomes a
    │                             ConfigError problem naming the rule)
    ├── FetchError                a source could not be fetched (HTTP error, timeout, too large …)
    ├── ParseError                fetched bytes are not a usable feed or document
    ├── StoreError                the database refused or failed an operation
    └── DeliveryError             a channel did not accept a message

Third-party errors are translated where they cross into monitor, with ``raise … from exc``.
Library code raises these; only ``monitor.cli`` prints them and chooses exit codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta


class MonitorError(Exception):
    """Base of every error monitor raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, and where it is."""

    where: str  # file and key or line, e.g. "monitor.toml: sources[2].interval"
    message: str  # what is wrong and what to do

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ConfigError(MonitorError):
    """The configuration, watchlist or rules are invalid; ``problems`` lists every one found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class FetchError(MonitorError):
    """A source could not be fetched."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers = dict(headers or {})  # the response's, lower-case names (Retry-After)
        super().__init__(message)


class ParseError(MonitorError):
    """Fetched bytes are not a usable feed or document."""


class StoreError(MonitorError):
    """The database refused or failed an operation."""


class DeliveryError(MonitorError):
    """A channel did not accept a message. ``retry_after`` is set when the service said how
    long to wait (HTTP 429 with Retry-After): the channel is held that long, not failed."""

    def __init__(self, message: str, *, retry_after: timedelta | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)
