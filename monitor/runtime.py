"""Everything the daemon needs, loaded and checked at start-up, before anything runs.

``load_runtime`` gathers the problems of the config, the watchlist, the rules and the channels
into one ConfigError, so ``monitor check-config`` and start-up report all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from monitor.channels import Channel, build_channels
from monitor.config import Config, cross_check
from monitor.durations import format_duration
from monitor.errors import ConfigError, Problem
from monitor.rules import RuleSet, compile_rules
from monitor.watchlist import Watchlist, load_watchlist, watchlist_warnings

SHORT_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class Runtime:
    config: Config
    watchlist: Watchlist
    rules: RuleSet
    channels: dict[str, Channel]
    warnings: tuple[str, ...] = ()


def load_runtime(config: Config, *, channels: dict[str, Channel] | None = None) -> Runtime:
    """Load the watchlist, compile the rules and build the channels; raise every problem."""
    problems: list[Problem] = cross_check(config)
    watchlist = None
    try:
        watchlist = load_watchlist(config.watchlist.files)
    except ConfigError as exc:
        problems.extend(exc.problems)
    rules = RuleSet(())
    if watchlist is not None:  # rules name watchlist ids: check them against a readable one
        try:
            rules = compile_rules(config.rules, watchlist, config.origin, config.queries)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if channels is None:
        try:
            channels = build_channels(config.channels, config.origin)
        except ConfigError as exc:
            problems.extend(exc.problems)
            channels = {}
    problems.extend(_folder_problems(config))
    if problems or watchlist is None:
        raise ConfigError(problems)
    return Runtime(config, watchlist, rules, channels, _warnings(config, watchlist))


def _folder_problems(config: Config) -> list[Problem]:
    return [
        Problem(f"{config.origin}: sources[{i}] ({s.name}).path", f"no such folder: {s.path}")
        for i, s in enumerate(config.sources)
        if s.path is not None and not s.path.is_dir()
    ]


def _warnings(config: Config, watchlist: Watchlist) -> tuple[str, ...]:
    warnings = [
        f"source {s.name}: interval {format_duration(s.interval)} is under a minute; "
        "fine for tests, impolite to real feeds"
        for s in config.sources
        if s.enabled and s.interval < SHORT_INTERVAL
    ]
    if not config.rules:
        warnings.append("no rules are configured: articles are stored and matched, nothing alerts")
    warnings.extend(f"watchlist: {w}" for w in watchlist_warnings(watchlist))
    return tuple(warnings)
