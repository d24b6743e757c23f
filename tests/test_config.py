"""Configuration: every kind of mistake gets a message naming the file and the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import BACKFILL_ALL, default_config, locate_config, parse_config
from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError
from monitor.runtime import load_runtime
from monitor.sandbox import ParseLimits

GOOD = """
[[sources]]
name = "news"
url = "https://example.org/feed.xml"

[[channels]]
name = "team"
url = "json://127.0.0.1:9/hook"

[[rules]]
name = "principals"
query = "actor:antony-blinken"
channels = ["team"]
"""


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    """Every problem found reading ``text`` and checking it as start-up does."""
    with pytest.raises(ConfigError) as caught:
        config = parse_config(text, origin="my.toml", base_dir=Path("/etc"), environ=environ or {})
        load_runtime(config, channels={})
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[database]\nurll = 'x'", "my.toml: database.urll: unknown key"),
        (
            "[[sources]]\nname='a'\nurl='https://x'\nintervall='5m'",
            "sources[0].intervall: unknown key",
        ),
        (
            "[[sources]]\nname='a'\nurl='https://x'\ninterval='5 minutes'",
            "sources[0].interval: '5 minutes' is not a duration",
        ),
        (
            "[[sources]]\nname='a'\nurl='https://x'\ninterval=300",
            'sources[0].interval: write durations with a unit, e.g. "300s"',
        ),
        (
            "[[sources]]\nname='a'\nurl='ftp://x'",
            "sources[0].url: a source url must start with http://",
        ),
        ("[[sources]]\nname='a'", "sources[0]: give a source either `url` (a feed) or `path`"),
        ("[[sources]]\nname='a'\nurl='https://x'\npath='/tmp'", "not both"),
        (
            "[[sources]]\nname='a'\nurl='https://x'\nenabled='yes'",
            "sources[0].enabled: Input should be a valid boolean",
        ),
        ("[[channels]]\nname='c'", "channels[0]: give a channel `url`"),
        (
            "[[channels]]\nname='c'\nkind='pager'",
            "channels[0].kind: Input should be 'apprise', 'console' or 'slack'",
        ),
        (
            "[[channels]]\nname='c'\nurl='${SLACK_WEBHOOK}'",
            "my.toml: channels[0].url: environment variable SLACK_WEBHOOK is not set",
        ),
        (
            "[[rules]]\nname='r'\nquery='x'\nchannels=['nowhere']",
            "rules[0].channels: unknown channel 'nowhere'",
        ),
        (
            "[[rules]]\nname='r'\nquery='x'\n[[rules]]\nname='r'\nquery='y'",
            "rules[1].name: duplicate name 'r'",
        ),
        ("[[rules]]\nname='has space'\nquery='x'", "rules[0].name: String should match pattern"),
        ("[database\nurl='x'", "my.toml: not valid TOML"),
        (
            "[daemon]\nconcurrency=0",
            "daemon.concurrency: Input should be greater than or equal to 1",
        ),
        ("[daemon]\ntick='0s'", "daemon.tick: must be longer than 0s"),
        ("[fetch]\ntimeout='0s'", "fetch.timeout: must be longer than 0s"),
        ("[fetch]\nparse_timeout='0s'", "fetch.parse_timeout: must be longer than 0s"),
        (
            "[fetch]\nparse_memory_mb=64",
            "fetch.parse_memory_mb: Input should be greater than or equal to 128",
        ),
        (
            "[fetch]\nallow_private_networks='yes'",
            "fetch.allow_private_networks: Input should be a valid boolean",
        ),
        (
            "[[sources]]\nname='a'\nurl='https://x'\ninterval='all'",
            "sources[0].interval: 'all' is not a duration",
        ),
        (
            "[[sources]]\nname='a'\nurl='https://x'\ninterval='9999999999d'",
            "is too long a duration",
        ),
        (
            "[[sources]]\nname='a'\nurl='https://x'\nbackfill='all'\n"
            "[[rules]]\nname='r'\nquery='x'\nchannels=['nowhere']",
            "rules[0].channels: unknown channel 'nowhere'",
        ),
    ],
)
def test_mistakes_are_named(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


def test_all_problems_are_reported_at_once() -> None:
    found = problems("[database]\nurll='x'\n[fetch]\ntimeout='soon'\n[[channels]]\nname='c'")
    assert len(found) == 3


def test_environment_variables_are_substituted() -> None:
    text = GOOD.replace("json://127.0.0.1:9/hook", "${TEAM_HOOK}")
    config = parse_config(
        text, origin="my.toml", base_dir=Path("."), environ={"TEAM_HOOK": "slack://a/b/c"}
    )
    assert config.channels[0].url == "slack://a/b/c"


def test_relative_paths_are_taken_from_the_config_folder() -> None:
    text = "[watchlist]\nfiles = ['lists/mine.toml']\n[[sources]]\nname='docs'\npath='inbox'"
    config = parse_config(text, origin="my.toml", base_dir=Path("/etc/monitor"))
    assert config.watchlist.files == (Path("/etc/monitor/lists/mine.toml"),)
    assert config.sources[0].path == Path("/etc/monitor/inbox")


def test_defaults() -> None:
    config = parse_config(GOOD, origin="my.toml", base_dir=Path("."))
    source = config.sources[0]
    assert source.interval == timedelta(minutes=15) and source.enabled
    assert source.backfill == timedelta(0)
    assert config.database.url == "sqlite:///monitor.db"
    assert config.watchlist.files[0].name == "watchlist.toml"
    assert config.fetch.parse_limits() == ParseLimits(timeout=10.0, memory_mb=512)


def test_parse_limits_reach_the_parser() -> None:
    text = "[fetch]\nparse_timeout = '2m'\nparse_memory_mb = 1024"
    config = parse_config(text, origin="my.toml", base_dir=Path("."))
    assert config.fetch.parse_limits() == ParseLimits(timeout=120.0, memory_mb=1024)


def test_private_networks_are_allowed_only_when_asked() -> None:
    refused = parse_config(GOOD, origin="my.toml", base_dir=Path("."))
    allowed = parse_config(
        "[fetch]\nallow_private_networks = true\n" + GOOD, origin="my.toml", base_dir=Path(".")
    )
    assert not refused.fetch.settings().allow_private_networks
    assert allowed.fetch.settings().allow_private_networks


def test_the_built_in_default_is_complete() -> None:
    config = default_config()
    runtime = load_runtime(config)
    assert config.sources[0].path is not None and config.sources[0].path.is_dir()
    assert config.sources[0].backfill == BACKFILL_ALL
    assert [c.kind for c in config.channels] == ["console"]
    assert len(runtime.rules.rules) >= 2 and len(runtime.watchlist.actors) > 20


def test_config_is_located_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert locate_config(None, {}) is None
    (tmp_path / "monitor.toml").write_text("")
    assert locate_config(None, {}) == Path("monitor.toml")
    assert locate_config(None, {"MONITOR_CONFIG": "/etc/m.toml"}) == Path("/etc/m.toml")
    assert locate_config(Path("x.toml"), {"MONITOR_CONFIG": "/etc/m.toml"}) == Path("x.toml")


def test_config_objects_are_immutable() -> None:
    config = parse_config(GOOD, origin="my.toml", base_dir=Path("."))
    with pytest.raises(ValueError, match="frozen"):
        config.sources[0].interval = timedelta(0)  # type: ignore[misc]


def test_unknown_watchlist_ids_and_bad_watchlists_are_named(tmp_path: Path) -> None:
    watchlist = tmp_path / "list.toml"
    watchlist.write_text("[[actors]]\nname = 'Ann Example'\nalias = ['Ann']\n")
    text = f"[watchlist]\nfiles = ['{watchlist}']\n" + GOOD
    with pytest.raises(ConfigError) as caught:
        load_runtime(parse_config(text, origin="my.toml", base_dir=tmp_path))
    assert [str(p) for p in caught.value.problems] == [
        f"{watchlist}: actors[0].alias: unknown key (check its spelling and where it is)"
    ]
    watchlist.write_text("[[actors]]\nname = 'Ann Example'\n")
    with pytest.raises(ConfigError) as caught:
        load_runtime(parse_config(text, origin="my.toml", base_dir=tmp_path))
    assert "rules[0] (principals).query: unknown actor id 'antony-blinken'" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("text", ["", "5", "m", "5 minutes", "-5m", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_an_apprise_url_apprise_cannot_read_is_named(tmp_path: Path) -> None:
    text = GOOD.replace("json://127.0.0.1:9/hook", "nosuchservice://whatever")
    with pytest.raises(ConfigError) as caught:
        load_runtime(parse_config(text, origin="my.toml", base_dir=tmp_path))
    [problem] = caught.value.problems
    assert problem.where == "my.toml: channels[0] (team).url"
    assert "apprise does not understand this URL" in problem.message


def test_a_missing_folder_source_is_named(tmp_path: Path) -> None:
    text = GOOD + "[[sources]]\nname = 'inbox'\npath = 'no-such-folder'\n"
    with pytest.raises(ConfigError) as caught:
        load_runtime(parse_config(text, origin="my.toml", base_dir=tmp_path))
    [problem] = caught.value.problems
    assert problem.where == "my.toml: sources[1] (inbox).path"
    assert "no such folder" in problem.message
