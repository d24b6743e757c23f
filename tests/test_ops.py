"""Operational alerts: sources disabled or silent and channels down are found, announced once
through the ops channel (a real local webhook), announced again when they clear, and kept in
the ops_events log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LOCAL_FETCH, article_item, rss
from endpoints import WebhookEndpoint
from feedserver import FeedServer

from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.fetch import Fetcher
from monitor.ops import channel_issues, source_issues
from monitor.pipeline import Pipeline
from monitor.runtime import load_runtime
from monitor.store import SourceHealth, Store

NOW = datetime(2023, 11, 14, 12, 0, tzinfo=UTC)


def health(name: str, status: str = "ok", per_day: float = 12.0) -> SourceHealth:
    return SourceHealth(
        name, "https://example.org/feed", status, NOW, "HTTP 500", 10, NOW, per_day, 0
    )


@pytest.mark.parametrize(
    ("source", "newest", "expected"),
    [
        (health("busy"), NOW - timedelta(hours=12), []),  # quiet for less than a day
        (health("busy"), NOW - timedelta(days=2), ["source-silent"]),
        (health("weekly", per_day=1 / 7), NOW - timedelta(days=20), []),  # four weeks' grace
        (health("weekly", per_day=1 / 7), NOW - timedelta(days=30), ["source-silent"]),
        (health("new", per_day=0), None, []),  # no rhythm yet
        (health("down", status="disabled"), NOW, ["source-disabled"]),
    ],
)
def test_source_issues(source: SourceHealth, newest: datetime | None, expected: list[str]) -> None:
    rhythm = {source.name: (newest, source.items_per_day)} if newest else {}
    assert [i.kind for i in source_issues([source], rhythm, NOW)] == expected


def test_channel_issues_after_the_threshold() -> None:
    failing = {"slack": NOW - timedelta(minutes=90), "email": NOW - timedelta(minutes=10)}
    [issue] = channel_issues(failing, NOW, timedelta(hours=1))
    assert (issue.kind, issue.subject) == ("channel-down", "slack")
    assert issue.message.startswith("channel slack has failed to deliver for 1h30m")


def test_a_channel_down_is_announced_through_the_ops_channel_and_cleared(
    tmp_path: Path, feed_server: FeedServer, slack: WebhookEndpoint, webhook: WebhookEndpoint
) -> None:
    feed_server.route("/feed", rss([article_item("pos01.json")]))
    clock = [NOW]
    pipeline = ops_pipeline(
        tmp_path, feed_server.url("/feed"), webhook, clock, alerts_to="slack://T000/B000/XXXX"
    )
    store = pipeline.store
    pipeline.poll_all()
    slack.fail_status = 500
    assert pipeline.deliver_due().failed == 1
    assert pipeline.check_operations() == 0  # failing, but not for an hour yet

    clock[0] += timedelta(hours=2)
    assert pipeline.check_operations() == 1
    [notice] = webhook.received
    assert "channel slack has failed to deliver for 2h" in notice["title"]
    assert pipeline.check_operations() == 0  # announced once

    slack.fail_status = None
    clock[0] += timedelta(hours=1)
    assert pipeline.deliver_due().sent == 1
    assert pipeline.check_operations() == 1
    assert webhook.received[-1]["title"].startswith("[ops] resolved: channel slack")
    [event] = store.ops_events()
    assert (event.kind, event.subject) == ("channel-down", "slack")
    assert event.resolved_at == clock[0] and event.resolved_announced_at == clock[0]
    pipeline.close()


def test_an_unreachable_ops_channel_is_tried_again(
    tmp_path: Path, feed_server: FeedServer, webhook: WebhookEndpoint
) -> None:
    feed_server.route("/feed", b"gone", status=500)
    config = parse_config(
        f"""
[database]
url = "sqlite:///{tmp_path / "ops.db"}"
[daemon]
ops_channel = "ops"
disable_after = 1
[[sources]]
name = "news"
url = "{feed_server.url("/feed")}"
[[channels]]
name = "ops"
url = "json://127.0.0.1:{webhook.port}/ops"
""",
        origin="ops.toml",
        base_dir=tmp_path,
    )
    store = Store.open(config.database.url)
    store.upgrade()
    pipeline = Pipeline(load_runtime(config), store, Fetcher(LOCAL_FETCH), clock=lambda: NOW)
    pipeline.prepare()
    pipeline.poll_all()
    webhook.fail_status = 503
    assert pipeline.check_operations() == 0
    webhook.fail_status = None
    assert pipeline.check_operations() == 1
    assert "source news is disabled after 1 failures in a row" in webhook.received[0]["title"]
    pipeline.close()


def test_the_ops_channel_must_exist(tmp_path: Path) -> None:
    config = parse_config('[daemon]\nops_channel = "pager"\n', origin="x.toml", base_dir=tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_runtime(config)
    assert "daemon.ops_channel: unknown channel 'pager'" in str(caught.value)


def ops_pipeline(
    tmp_path: Path,
    feed_url: str,
    webhook: WebhookEndpoint,
    clock: list[datetime],
    alerts_to: str | None = None,
) -> Pipeline:
    """A source, the ops channel, and a rule alerting through a channel of its own (an
    apprise URL in ``alerts_to``, named "slack") or else through the ops channel too."""
    alerts = f'[[channels]]\nname = "slack"\nurl = "{alerts_to}"\n' if alerts_to else ""
    config = parse_config(
        f"""
[database]
url = "sqlite:///{tmp_path / "ops.db"}"
[daemon]
ops_channel = "ops"
channel_down_after = "1h"
[[sources]]
name = "news"
url = "{feed_url}"
backfill = "all"
[[channels]]
name = "ops"
url = "json://127.0.0.1:{webhook.port}/ops"
{alerts}[[rules]]
name = "all"
query = "actor:antony-blinken"
channels = ["{"slack" if alerts_to else "ops"}"]
""",
        origin="ops.toml",
        base_dir=tmp_path,
    )
    store = Store.open(config.database.url)
    store.upgrade()
    pipeline = Pipeline(load_runtime(config), store, Fetcher(LOCAL_FETCH), clock=lambda: clock[0])
    pipeline.prepare()
    return pipeline


def test_down_time_counts_from_the_first_failure_and_the_ops_channel_reports_its_recovery(
    tmp_path: Path, feed_server: FeedServer, webhook: WebhookEndpoint
) -> None:
    feed_server.route("/feed", rss([article_item("pos01.json")]))
    clock = [NOW]
    pipeline = ops_pipeline(tmp_path, feed_server.url("/feed"), webhook, clock)
    pipeline.poll_all()  # an alert, not delivered yet
    clock[0] += timedelta(hours=2)
    webhook.fail_status = 500
    assert pipeline.deliver_due().failed == 1
    assert pipeline.check_operations() == 0  # failing for a moment, not two hours
    clock[0] += timedelta(minutes=90)
    assert pipeline.check_operations() == 1  # the ops channel itself: logged, not sent
    assert webhook.received == []
    webhook.fail_status = None
    clock[0] += timedelta(hours=2)
    assert pipeline.deliver_due().sent == 1
    assert pipeline.check_operations() == 1
    assert webhook.received[-1]["title"].startswith("[ops] resolved: channel ops")
    pipeline.close()


def test_a_silent_source_stays_silent_until_something_new_comes(
    tmp_path: Path, feed_server: FeedServer, webhook: WebhookEndpoint
) -> None:
    week = [
        {
            **article_item("pos01.json"),
            "url": f"https://example.org/{day}",
            "title": f"Day {day}",
            "published": (NOW - timedelta(days=day)).isoformat(),
        }
        for day in range(7)
    ]
    feed_server.route("/feed", rss(week), headers={"Content-Type": "application/rss+xml"})
    clock = [NOW]
    pipeline = ops_pipeline(tmp_path, feed_server.url("/feed"), webhook, clock)
    pipeline.poll_all()
    pipeline.deliver_due()
    clock[0] += timedelta(days=5)
    assert pipeline.check_operations() == 1
    assert "source news has brought nothing new for 5d" in webhook.received[-1]["title"]
    clock[0] += timedelta(days=10)  # no rhythm left in the last week: still silent
    assert pipeline.check_operations() == 0
    [event] = pipeline.store.ops_events(open_only=True)
    assert event.kind == "source-silent"
    fresh = {
        **week[0],
        "url": "https://example.org/new",
        "title": "New",
        "published": clock[0].isoformat(),
    }
    feed_server.route("/feed", rss([fresh, *week]), headers={"Content-Type": "application/rss+xml"})
    pipeline.poll_all()
    assert pipeline.check_operations() == 1
    assert webhook.received[-1]["title"].startswith("[ops] resolved: source news")
    pipeline.close()
