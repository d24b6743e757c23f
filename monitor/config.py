"""The configuration: TOML parsed once, at the edge, into typed, validated, immutable objects.

Every default lives here, next to its key. ``${ENV_VAR}`` in any string is replaced from the
environment before validation; an unknown key, a bad value or a missing variable is a ``Problem``
naming the file and the key, and all of them are raised together as one ``ConfigError``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.durations import parse_crontab, parse_duration
from monitor.errors import ConfigError, Problem
from monitor.fetch import FetchSettings
from monitor.resources import seeds_dir
from monitor.sandbox import ParseLimits

#: Where the configuration is looked for when no ``-c/--config`` is given.
CONFIG_ENV_VAR = "MONITOR_CONFIG"
DEFAULT_CONFIG_FILE = Path("monitor.toml")

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

#: Backfill value meaning "alert on everything a new source already holds".
BACKFILL_ALL = timedelta(days=365 * 1000)


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f'write durations with a unit, e.g. "{value}s" or "{value}m"')
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _backfill(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() == "all":
        return BACKFILL_ALL
    return _duration(value)


def _time_zone(value: object) -> object:
    if isinstance(value, str):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin or UTC"
            ) from exc
    return value


def _crontab(value: object) -> object:
    if isinstance(value, str):
        try:
            parse_crontab(value)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a cron schedule (minute hour day month weekday,"
                f' e.g. "0 8 * * *" for 08:00 every day): {exc}'
            ) from exc
    return value


def _rate(value: object) -> object:
    if isinstance(value, str):
        count, _, per = value.partition("/")
        if not count.strip().isdigit() or int(count) < 1 or not per.strip():
            raise ValueError(f'{value!r} is not a rate: write messages per period, e.g. "1/s"')
        period = per.strip()
        return (int(count), parse_duration(period if period[0].isdigit() else f"1{period}"))
    return value


#: A duration such as "15m"; never zero.
Duration = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_positive)]
#: A duration that may be zero ("0s").
Wait = Annotated[timedelta, BeforeValidator(_duration)]
#: A backfill window: a duration, "0s" for none, or "all".
Backfill = Annotated[timedelta, BeforeValidator(_backfill)]
#: An IANA time zone name, e.g. "Europe/Berlin".
TimeZone = Annotated[str, BeforeValidator(_time_zone)]
#: A cron schedule: minute hour day-of-month month day-of-week, e.g. "0 8 * * 1-5".
Crontab = Annotated[str, BeforeValidator(_crontab)]
#: A rate: messages per period, e.g. "1/s", "20/m", "100/1h"; as (count, period).
Rate = Annotated[tuple[int, timedelta], BeforeValidator(_rate)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    url: str = "sqlite:///monitor.db"  # relative SQLite paths are taken from the working folder


class WatchlistConfig(_Section):
    files: tuple[Path, ...] = Field(default_factory=lambda: (seeds_dir() / "watchlist.toml",))


class FetchConfig(_Section):
    """The defaults are the fetch stage's own (``monitor.fetch.FetchSettings``) and the bounded
    parser's (``monitor.sandbox.ParseLimits``)."""

    timeout: Duration = timedelta(seconds=FetchSettings.timeout)  # connect, and each read
    deadline: Duration = timedelta(seconds=FetchSettings.deadline)  # a whole fetch
    max_bytes: StrictInt = Field(default=FetchSettings.max_bytes, gt=0)  # counted while streaming
    user_agent: str = FetchSettings.user_agent
    per_host: StrictInt = Field(default=2, ge=1, le=64)  # requests to one host at once
    # after this many 304 Not Modified in a row, fetch once without validators and compare
    unconditional_after: StrictInt = Field(default=20, ge=1)
    # loopback, private and link-local addresses (a feed on this machine or the LAN)
    allow_private_networks: StrictBool = FetchSettings.allow_private_networks
    parse_timeout: Duration = timedelta(seconds=ParseLimits.timeout)  # parsing one fetched feed
    # Memory of a parsing process, in MB (Linux); it needs about 40 MB before it reads anything.
    parse_memory_mb: StrictInt = Field(default=ParseLimits.memory_mb, ge=128)

    def settings(self) -> FetchSettings:
        return FetchSettings(
            timeout=self.timeout.total_seconds(),
            deadline=self.deadline.total_seconds(),
            max_bytes=self.max_bytes,
            user_agent=self.user_agent,
            allow_private_networks=self.allow_private_networks,
        )

    def parse_limits(self) -> ParseLimits:
        return ParseLimits(
            timeout=self.parse_timeout.total_seconds(), memory_mb=self.parse_memory_mb
        )


class DaemonConfig(_Section):
    tick: Duration = timedelta(seconds=5)  # how often due sources are looked for
    concurrency: StrictInt = Field(default=4, ge=1, le=64)  # sources fetched at once
    delivery_tick: Duration = timedelta(seconds=5)  # how often the outbox is drained
    retry_base: Duration = timedelta(seconds=30)  # first retry delay, doubled per failure
    max_interval: Duration = timedelta(hours=6)  # the longest wait, whatever a server asks
    disable_after: StrictInt = Field(default=10, ge=1)  # failures in a row that disable a source
    reprobe_interval: Duration = timedelta(hours=12)  # how often a disabled source is tried
    ops_channel: str | None = None  # where operational alerts go (None: the log only)
    ops_interval: Duration = timedelta(minutes=1)  # how often sources and channels are checked
    channel_down_after: Duration = timedelta(hours=1)  # failing this long is an ops alert


class SourceConfig(_Section):
    name: str = Field(pattern=_NAME)
    url: str | None = None  # http(s) or file:// feed
    path: Path | None = None  # folder of .txt, .md and .json documents
    interval: Duration = timedelta(minutes=15)
    enabled: StrictBool = True
    # On the first poll, alert only on items published this recently ("all": every item).
    backfill: Backfill = timedelta(0)
    # Poll more often when the source publishes often: between min_interval and interval.
    adaptive: StrictBool = False
    min_interval: Duration = timedelta(minutes=5)
    # An outlet of the tier the user marked important: a story it joins is worth an update.
    important: StrictBool = False

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.lower().startswith(("http://", "https://", "file://")):
            raise ValueError("a source url must start with http://, https:// or file://")
        return url

    @model_validator(mode="after")
    def _url_or_path(self) -> SourceConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("give a source either `url` (a feed) or `path` (a folder), not both")
        if self.interval <= timedelta(0):
            raise ValueError("interval must be positive")
        return self

    @property
    def location(self) -> str:
        return self.url if self.url is not None else str(self.path)


class QuietHours(_Section):
    """A daily window (``start`` to ``end``, across midnight when ``end`` is earlier) in which
    a channel is not disturbed: what matches is held and sent as one digest when it ends."""

    start: time
    end: time
    timezone: TimeZone = "UTC"

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end at the same time: give a window")
        return self


class Templates(_Section):
    """Jinja2 files that replace a channel's built-in templates (paths relative to the config).
    ``text`` serves the console and plain-text services, ``slack`` Slack, ``html`` and ``text``
    the two parts of an email; ``*_digest`` the same for digests."""

    text: Path | None = None
    html: Path | None = None
    slack: Path | None = None
    text_digest: Path | None = None
    html_digest: Path | None = None
    slack_digest: Path | None = None


class ChannelConfig(_Section):
    name: str = Field(pattern=_NAME)
    url: str | None = None  # any apprise URL: slack://…, mailto://…, json://…
    kind: Literal["apprise", "console", "slack"] = "apprise"  # slack: an incoming-webhook URL
    rate_limit: Rate | None = None  # e.g. "1/s" (Slack's); None: as fast as the service takes
    quiet_hours: QuietHours | None = None
    digest: Crontab | None = None  # deliver as digests on this schedule instead of one by one
    timezone: TimeZone = "UTC"  # of the digest schedule
    templates: Templates = Templates()

    @model_validator(mode="after")
    def _url_for_apprise(self) -> ChannelConfig:
        if self.kind == "apprise" and not self.url:
            raise ValueError('give a channel `url` (an apprise URL) or `kind = "console"`')
        if self.kind == "console" and self.url:
            raise ValueError("a console channel takes no `url`")
        if self.kind == "slack" and not (self.url or "").lower().startswith(
            ("https://", "http://")
        ):
            raise ValueError(
                "a slack channel takes its incoming-webhook `url` (https://hooks.slack.com/…)"
            )
        return self


class RuleConfig(_Section):
    name: str = Field(pattern=_NAME)
    query: str = Field(min_length=1)
    channels: tuple[str, ...] = ()
    enabled: StrictBool = True
    # One alert per story (later articles only update it), or one per article.
    group_by: Literal["story", "article"] = "story"
    # Hold a new story's first alert this long, to gather more outlets into one message.
    group_wait: Wait = timedelta(0)
    # At least this long between two messages about one story (its updates wait).
    group_interval: Wait = timedelta(minutes=30)
    digest: Crontab | None = None  # deliver this rule's alerts as digests on this schedule
    timezone: TimeZone = "UTC"  # of the digest schedule
    critical: StrictBool = False  # goes through quiet hours (silences still apply)


class StoriesConfig(_Section):
    """How articles are grouped into stories (``monitor.stories``)."""

    # A story stays open this long after its last article; later articles start a new one.
    window: Duration = timedelta(days=3)
    # A story reaching each of these numbers of outlets is worth an update.
    outlet_milestones: tuple[Annotated[StrictInt, Field(ge=2)], ...] = (5, 10, 25)


class Config(_Section):
    database: DatabaseConfig = DatabaseConfig()
    watchlist: WatchlistConfig = Field(default_factory=WatchlistConfig)
    fetch: FetchConfig = FetchConfig()
    daemon: DaemonConfig = DaemonConfig()
    stories: StoriesConfig = StoriesConfig()
    sources: tuple[SourceConfig, ...] = ()
    channels: tuple[ChannelConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    queries: dict[Annotated[str, StringConstraints(pattern=_NAME)], str] = {}  # rule:NAME
    origin: str = Field(default="built-in default", exclude=True)  # where it was read from


def locate_config(explicit: Path | None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """``-c/--config``, then ``$MONITOR_CONFIG``, then ``./monitor.toml``; None: the default."""
    if explicit is not None:
        return explicit
    if environ.get(CONFIG_ENV_VAR):
        return Path(environ[CONFIG_ENV_VAR])
    if DEFAULT_CONFIG_FILE.is_file():
        return DEFAULT_CONFIG_FILE
    return None


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    """The configuration in ``path``, or the built-in default when ``path`` is None."""
    if path is None:
        return default_config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem(str(path), f"cannot read the config file: {exc.strerror}")
        raise ConfigError([problem]) from exc
    except UnicodeDecodeError as exc:
        problem = Problem(str(path), f"not UTF-8 text (byte {exc.start}): save it as UTF-8")
        raise ConfigError([problem]) from exc
    return parse_config(text, origin=str(path), base_dir=path.parent, environ=environ)


def parse_config(
    text: str, *, origin: str, base_dir: Path, environ: Mapping[str, str] = os.environ
) -> Config:
    """Validate TOML text; relative paths are taken from ``base_dir`` (the config's folder)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(origin, f"not valid TOML: {exc}")]) from exc
    problems: list[Problem] = []
    raw = _substitute_env(raw, environ, origin, "", problems)
    try:
        config = Config.model_validate({**raw, "origin": origin})
    except ValidationError as exc:
        unset = {p.where for p in problems}  # a missing variable is one problem, not two
        problems.extend(p for p in validation_problems(exc, origin) if not _under(p, unset))
        raise ConfigError(problems) from exc
    if problems:
        raise ConfigError(problems)
    return _resolve_paths(config, base_dir)


def _under(problem: Problem, keys: set[str]) -> bool:
    return any(problem.where == k or k.startswith(problem.where + ".") for k in keys)


def _substitute_env(
    value: Any, environ: Mapping[str, str], origin: str, key: str, problems: list[Problem]
) -> Any:
    if isinstance(value, str):

        def replace(found: re.Match[str]) -> str:
            name = found.group(1)
            if name not in environ:
                problems.append(
                    Problem(f"{origin}: {key}", f"environment variable {name} is not set")
                )
                return ""
            return environ[name]

        return _ENV_REFERENCE.sub(replace, value)
    if isinstance(value, dict):
        return {
            k: _substitute_env(v, environ, origin, _join(key, k), problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _substitute_env(v, environ, origin, f"{key}[{i}]", problems)
            for i, v in enumerate(value)
        ]
    return value


def _join(key: str, part: str) -> str:
    return f"{key}.{part}" if key else part


def validation_problems(exc: ValidationError, origin: str) -> list[Problem]:
    """pydantic's complaints as problems naming the file and the key (``sources[2].url``)."""
    problems = []
    for error in exc.errors():
        key = ""
        for part in error["loc"]:
            key = f"{key}[{part}]" if isinstance(part, int) else _join(key, str(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and where it is)"
        problems.append(Problem(f"{origin}: {key}", message))
    return problems


def cross_check(config: Config) -> list[Problem]:
    """Names that must be unique, and rules that name channels that do not exist."""
    problems = []
    for section in ("sources", "channels", "rules"):
        seen: set[str] = set()
        for index, item in enumerate(getattr(config, section)):
            if item.name in seen:
                where = f"{config.origin}: {section}[{index}].name"
                problems.append(Problem(where, f"duplicate name {item.name!r}"))
            seen.add(item.name)
    for name in sorted(set(config.queries) & {r.name for r in config.rules}):
        where = f"{config.origin}: queries.{name}"
        problems.append(Problem(where, f"a rule is named {name!r} too: rule:{name} is ambiguous"))
    channel_names = {c.name for c in config.channels}
    ops = config.daemon.ops_channel
    if ops is not None and ops not in channel_names:
        known = ", ".join(sorted(channel_names)) or "none defined"
        where = f"{config.origin}: daemon.ops_channel"
        problems.append(Problem(where, f"unknown channel {ops!r} (channels: {known})"))
    for index, rule in enumerate(config.rules):
        for name in rule.channels:
            if name not in channel_names:
                where = f"{config.origin}: rules[{index}].channels"
                known = ", ".join(sorted(channel_names)) or "none defined"
                problems.append(Problem(where, f"unknown channel {name!r} (channels: {known})"))
    return problems


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    def resolve(path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else (base_dir / path).resolve()

    sources = tuple(
        s.model_copy(update={"path": resolve(s.path)}) if s.path is not None else s
        for s in config.sources
    )
    watchlist = config.watchlist.model_copy(
        update={"files": tuple(resolve(f) for f in config.watchlist.files)}
    )
    channels = tuple(
        c.model_copy(
            update={
                "templates": c.templates.model_copy(
                    update={k: resolve(v) for k, v in c.templates if v is not None}
                )
            }
        )
        for c in config.channels
    )
    return config.model_copy(
        update={"sources": sources, "watchlist": watchlist, "channels": channels}
    )


#: The built-in default: the seed corpus as a source, the seeded watchlist, console alerts.
DEFAULT_CONFIG_TOML = """
[[sources]]
name = "seed-corpus"
path = "corpus"
interval = "1m"
backfill = "all"

[[channels]]
name = "console"
kind = "console"

[[rules]]
name = "us-china-principals"
query = '''actor:antony-blinken OR actor:wang-yi OR actor:xi-jinping OR actor:joe-biden
           OR actor:jake-sullivan OR actor:qin-gang'''
channels = ["console"]

[[rules]]
name = "us-china-flashpoints"
query = '''topic:spy-balloon OR topic:taiwan OR topic:south-china-sea OR topic:fentanyl
           OR topic:military-to-military'''
channels = ["console"]
"""


def default_config() -> Config:
    seeds = seeds_dir()
    return parse_config(DEFAULT_CONFIG_TOML, origin="built-in default", base_dir=seeds, environ={})
