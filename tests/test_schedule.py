"""Polite polling: what the server and the feed ask for, backoff, disabled sources, validators
that lie, coverage gaps, adaptive intervals and the per-host limit — the rules as a table,
then the pipeline against a real local feed server and a real SQLite file."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import rss
from feedserver import FeedServer

from monitor.config import parse_config
from monitor.fetch import Fetcher, FetchSettings
from monitor.pipeline import Pipeline
from monitor.runtime import load_runtime
from monitor.schedule import (
    Hints,
    adaptive_interval,
    header_hints,
    next_check,
    update_period,
)
from monitor.store import Store

NOW = datetime(2023, 11, 14, 12, 0, tzinfo=UTC)
RSS = {"Content-Type": "application/rss+xml"}


@pytest.mark.parametrize(
    ("headers", "retry", "fresh"),
    [
        ({}, None, None),
        ({"retry-after": "120"}, NOW + timedelta(seconds=120), None),
        (
            {"retry-after": format_datetime(NOW + timedelta(hours=2), usegmt=True)},
            NOW + timedelta(hours=2),
            None,
        ),
        ({"retry-after": "soon"}, None, None),
        ({"cache-control": "public, max-age=600"}, None, NOW + timedelta(seconds=600)),
        ({"cache-control": "max-age=600", "age": "100"}, None, NOW + timedelta(seconds=500)),
        ({"cache-control": "no-cache, max-age=600"}, None, None),
        (
            {"expires": format_datetime(NOW + timedelta(hours=1), usegmt=True)},
            None,
            NOW + timedelta(hours=1),
        ),
        ({"expires": format_datetime(NOW - timedelta(hours=1), usegmt=True)}, None, None),
        ({"expires": "0"}, None, None),
        ({"retry-after": "\u00b2"}, None, None),  # a digit to str.isdigit, not a number
        ({"retry-after": "99999999999999"}, NOW + timedelta(days=365), None),
        ({"cache-control": "max-age=99999999999999"}, None, NOW + timedelta(days=365)),
        ({"cache-control": "max-age=60", "age": "120"}, None, None),
    ],
)
def test_what_the_server_asks_for(
    headers: dict[str, str], retry: datetime | None, fresh: datetime | None
) -> None:
    hints = header_hints(headers, NOW)
    assert (hints.retry_after, hints.fresh_until) == (retry, fresh)


@pytest.mark.parametrize(
    ("period", "frequency", "expected"),
    [
        ("hourly", None, timedelta(hours=1)),
        ("daily", "2", timedelta(hours=12)),
        ("Weekly", "1", timedelta(weeks=1)),
        ("daily", "0", timedelta(days=1)),
        ("fortnightly", "1", None),
        (None, None, None),
    ],
)
def test_syndication_update_period(
    period: str | None, frequency: str | None, expected: timedelta | None
) -> None:
    assert update_period(period, frequency) == expected


@pytest.mark.parametrize(
    ("interval", "hints", "longest", "expected", "reason"),
    [
        (timedelta(minutes=15), Hints(), timedelta(hours=6), NOW + timedelta(minutes=15), None),
        (
            timedelta(minutes=15),
            Hints(ttl=timedelta(hours=1)),
            timedelta(hours=6),
            NOW + timedelta(hours=1),
            "ttl",
        ),
        (  # the interval when it is later than what the feed asks
            timedelta(hours=2),
            Hints(ttl=timedelta(hours=1)),
            timedelta(hours=6),
            NOW + timedelta(hours=2),
            None,
        ),
        (  # the latest hint wins, clamped to the longest wait
            timedelta(minutes=15),
            Hints(fresh_until=NOW + timedelta(hours=3), update_period=timedelta(days=1)),
            timedelta(hours=6),
            NOW + timedelta(hours=6),
            "sy:updatePeriod",
        ),
    ],
)
def test_next_check_is_the_latest_ask_within_the_longest_wait(
    interval: timedelta, hints: Hints, longest: timedelta, expected: datetime, reason: str | None
) -> None:
    assert next_check(NOW, interval, hints, longest) == (expected, reason)


@pytest.mark.parametrize(
    ("per_day", "expected"),
    [
        (0.0, timedelta(hours=1)),  # silent: the longest
        (4.0, timedelta(hours=1)),  # every 3 hours would be longer than the longest
        (48.0, timedelta(minutes=15)),
        (10_000.0, timedelta(minutes=5)),  # never below the shortest
    ],
)
def test_adaptive_interval(per_day: float, expected: timedelta) -> None:
    assert adaptive_interval(per_day, timedelta(minutes=5), timedelta(hours=1)) == expected


# --- the pipeline, against a local feed server ----------------------------------------------


def items(*names: str) -> list[dict[str, str]]:
    return [
        {
            "title": name,
            "text": "Xi Jinping spoke.",
            "url": f"https://example.org/{name}",
            "published": NOW.isoformat(),
        }
        for name in names
    ]


class Polling:
    """A pipeline over one config, with a clock the test moves."""

    def __init__(self, tmp_path: Path, body: str) -> None:
        self.clock = [NOW]
        text = f'[database]\nurl = "sqlite:///{tmp_path / "p.db"}"\n{body}'
        config = parse_config(text, origin="test.toml", base_dir=tmp_path)
        self.store = Store.open(config.database.url)
        self.store.upgrade()
        self.pipeline = Pipeline(
            load_runtime(config),
            self.store,
            Fetcher(FetchSettings(timeout=5, deadline=10, allow_private_networks=True)),
            clock=lambda: self.clock[0],
        )
        self.pipeline.prepare()

    def poll(self, after: timedelta = timedelta(0)) -> datetime:
        """Move the clock, poll every source, and return the first source's next check."""
        self.clock[0] += after
        self.pipeline.poll_all()
        name = self.pipeline.runtime.config.sources[0].name
        next_at = self.store.source_state(name).next_check_at
        assert next_at is not None
        return next_at

    def close(self) -> None:
        self.pipeline.close()


def source(url: str, extra: str = "") -> str:
    return f'[[sources]]\nname = "news"\nurl = "{url}"\ninterval = "15m"\n{extra}\n'


def test_retry_after_on_503_is_honoured_within_the_longest_wait(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.route("/feed", b"busy", status=503, headers={"Retry-After": "7200"})
    polling = Polling(tmp_path, source(feed_server.url("/feed")))
    assert polling.poll() == NOW + timedelta(hours=2)
    feed_server.route("/feed", b"slow down", status=429, headers={"Retry-After": "86400"})
    assert polling.poll(timedelta(hours=2)) == polling.clock[0] + timedelta(hours=6)
    polling.close()


def test_freshness_and_feed_hints_push_the_next_check_back(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.route("/feed", rss(items("a")), headers={**RSS, "Cache-Control": "max-age=3600"})
    polling = Polling(tmp_path, source(feed_server.url("/feed")))
    assert polling.poll() == NOW + timedelta(hours=1)
    with_ttl = rss(items("a")).replace(b"<description>test</description>", b"<ttl>120</ttl>")
    feed_server.route("/feed", with_ttl, headers=RSS)
    assert polling.poll(timedelta(hours=1)) == polling.clock[0] + timedelta(hours=2)
    syndication = (
        rss(items("a"))
        .replace(
            b'<rss version="2.0">',
            b'<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">',
        )
        .replace(b"<description>test</description>", b"<sy:updatePeriod>daily</sy:updatePeriod>")
    )
    feed_server.route("/feed", syndication, headers=RSS)
    assert polling.poll(timedelta(hours=2)) == polling.clock[0] + timedelta(hours=6)  # clamped
    polling.close()


def test_a_source_failing_too_often_is_disabled_and_reprobed(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.route("/feed", b"gone", status=500)
    daemon = '[daemon]\ndisable_after = 3\nreprobe_interval = "1d"\n'
    polling = Polling(tmp_path, daemon + source(feed_server.url("/feed")))
    for _ in range(2):
        assert polling.poll(timedelta(hours=7)) < polling.clock[0] + timedelta(hours=7)
    assert polling.store.sources_health(polling.clock[0])[0].status == "failing"
    assert polling.poll(timedelta(hours=7)) >= polling.clock[0] + timedelta(days=1)
    [health] = polling.store.sources_health(polling.clock[0])
    assert (health.status, health.error_count) == ("disabled", 3)
    assert "HTTP 500" in (health.last_error or "")
    feed_server.route("/feed", rss(items("back")), headers=RSS)
    polling.poll(timedelta(days=1))
    [health] = polling.store.sources_health(polling.clock[0])
    assert (health.status, health.error_count, health.last_error) == ("ok", 0, None)
    polling.close()


def test_validators_are_checked_after_many_not_modified(
    tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    feed_server.route("/feed", rss(items("a")), headers={**RSS, "ETag": '"v1"'})
    polling = Polling(
        tmp_path, "[fetch]\nunconditional_after = 2\n" + source(feed_server.url("/feed"))
    )
    polling.poll()
    for _ in range(2):
        polling.poll(timedelta(minutes=15))
    assert [h.get("if-none-match") for _, h in feed_server.requests] == [None, '"v1"', '"v1"']
    # the server keeps its ETag but has a new item: only an unconditional fetch sees it
    feed_server.route("/feed", rss(items("b", "a")), headers={**RSS, "ETag": '"v1"'})
    with caplog.at_level(logging.WARNING, logger="monitor.pipeline"):
        polling.poll(timedelta(minutes=15))
    assert feed_server.requests[-1][1].get("if-none-match") is None
    assert "its validators cannot be trusted source=news new=1" in caplog.text
    assert polling.store.source_state("news").not_modified_streak == 0
    polling.close()


def test_a_feed_whose_items_are_all_new_is_a_coverage_gap(
    tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    feed_server.route("/feed", rss(items("a", "b")), headers=RSS)
    polling = Polling(tmp_path, source(feed_server.url("/feed"), 'min_interval = "5m"'))
    assert polling.poll() == NOW + timedelta(minutes=15)  # a first poll is all new: no gap
    feed_server.route("/feed", rss(items("c", "d")), headers=RSS)
    with caplog.at_level(logging.WARNING, logger="monitor.pipeline"):
        next_at = polling.poll(timedelta(minutes=15))
    assert next_at == polling.clock[0] + timedelta(minutes=7, seconds=30)  # half the interval
    assert "coverage: every item was new" in caplog.text and "source=news" in caplog.text
    assert polling.store.sources_health(polling.clock[0])[0].overflows == 1
    feed_server.route("/feed", rss(items("e", "c", "d")), headers=RSS)
    assert polling.poll(timedelta(minutes=8)) == polling.clock[0] + timedelta(minutes=15)
    polling.close()


def test_an_adaptive_source_is_polled_by_its_rhythm(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    many = [f"item-{n}" for n in range(40)]
    feed_server.route("/feed", rss(items(*many)), headers=RSS)
    body = source(feed_server.url("/feed"), 'adaptive = true\nmin_interval = "10m"')
    polling = Polling(tmp_path, body.replace('interval = "15m"', 'interval = "2h"'))
    assert polling.poll() == NOW + timedelta(hours=2)  # no history yet: its interval
    # 40 items in its first two days: 20 a day, so polled every 36 minutes
    assert polling.poll(timedelta(days=2)) == polling.clock[0] + timedelta(minutes=36)
    polling.close()


def test_no_more_than_per_host_requests_to_one_host(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    body = rss(items("a"))
    sources = ""
    for n in range(4):
        feed_server.route(f"/feed{n}", body, headers=RSS, delay_per_byte=0.3 / len(body))
        sources += f'[[sources]]\nname = "f{n}"\nurl = "{feed_server.url(f"/feed{n}")}"\n'
    polling = Polling(tmp_path, "[daemon]\nconcurrency = 4\n[fetch]\nper_host = 2\n" + sources)
    busy, most, lock = [0], [0], threading.Lock()
    fetch = polling.pipeline.fetcher.fetch

    def counted(url: str, **kwargs: object) -> object:
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        try:
            return fetch(url, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                busy[0] -= 1

    polling.pipeline.fetcher.fetch = counted  # type: ignore[method-assign]
    started = time.monotonic()
    reports = polling.pipeline.poll_all()
    assert [r.status for r in reports] == ["ok"] * 4
    assert most[0] == 2 and time.monotonic() - started >= 0.5  # two rounds of two
    polling.close()


def test_a_huge_ttl_and_retry_after_are_capped_not_fatal(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    huge = rss(items("a")).replace(b"<description>test</description>", b"<ttl>999999999</ttl>")
    feed_server.route("/feed", huge, headers=RSS)
    polling = Polling(tmp_path, source(feed_server.url("/feed")))
    assert polling.poll() == NOW + timedelta(hours=6)
    feed_server.route("/feed", b"busy", status=503, headers={"Retry-After": "9" * 14})
    assert polling.poll(timedelta(hours=6)) == polling.clock[0] + timedelta(hours=6)
    polling.close()


def test_the_feeds_own_wait_holds_across_not_modified(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    with_ttl = rss(items("a")).replace(b"<description>test</description>", b"<ttl>120</ttl>")
    feed_server.route("/feed", with_ttl, headers={**RSS, "ETag": '"v1"'})
    polling = Polling(tmp_path, source(feed_server.url("/feed")))
    assert polling.poll() == NOW + timedelta(hours=2)
    assert polling.poll(timedelta(hours=2)) == polling.clock[0] + timedelta(hours=2)  # a 304
    assert feed_server.requests[-1][1].get("if-none-match") == '"v1"'
    polling.close()


def test_a_feed_that_changed_honestly_is_no_lie(
    tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    feed_server.route("/feed", rss(items("a")), headers={**RSS, "ETag": '"v1"'})
    polling = Polling(
        tmp_path, "[fetch]\nunconditional_after = 1\n" + source(feed_server.url("/feed"))
    )
    polling.poll()
    polling.poll(timedelta(minutes=15))  # 304
    feed_server.route("/feed", rss(items("b", "a")), headers={**RSS, "ETag": '"v2"'})
    with caplog.at_level(logging.WARNING, logger="monitor.pipeline"):
        polling.poll(timedelta(minutes=15))  # unconditional; new items, and a new ETag
    assert "validators cannot be trusted" not in caplog.text
    polling.close()


def test_a_coverage_gap_never_lengthens_a_short_interval(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.route("/feed", rss(items("a", "b")), headers=RSS)
    body = source(feed_server.url("/feed")).replace('interval = "15m"', 'interval = "1m"')
    polling = Polling(tmp_path, body)  # min_interval stays at its default, 5m
    polling.poll()
    feed_server.route("/feed", rss(items("c", "d")), headers=RSS)
    assert polling.poll(timedelta(minutes=1)) == polling.clock[0] + timedelta(minutes=1)
    polling.close()
