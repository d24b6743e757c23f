"""One alert per story: thirty outlets publishing one event through a real feed server, a real
pipeline and SQLite file, and a local Slack webhook stand-in, with a controllable clock. The
texts are the seed corpus's reports of Blinken's June 2023 Beijing trip (files 001–003), each
outlet's copy lightly edited as syndicated copy is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import LOCAL_FETCH, REPO, rss
from endpoints import WebhookEndpoint
from feedserver import FeedServer

from monitor.config import parse_config
from monitor.fetch import Fetcher
from monitor.pipeline import Pipeline
from monitor.runtime import load_runtime
from monitor.store import LogFilter, Store

START = datetime(2023, 6, 18, 6, 0, tzinfo=UTC)
RSS_TYPE = {"Content-Type": "application/rss+xml"}
TRIP = sorted((REPO / "seeds" / "corpus").glob("00[123]_*.txt"))
HEADLINES = (
    "Blinken arrives in Beijing for talks with Chinese officials",
    "Blinken meets China's Wang Yi in Beijing as the two sides seek to steady ties",
    "Top US diplomat Blinken holds talks in Beijing",
)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def outlet_copy(index: int, published: datetime) -> dict[str, str]:
    """Outlet ``index``'s report: one of the three seed texts, with its own headline, a
    dateline and a credit line, as syndicated copy differs from outlet to outlet."""
    text = TRIP[index % 3].read_text(encoding="utf-8").split("\n", 1)[1]
    return {
        "title": f"{HEADLINES[index % 3]} ({index})",
        "url": f"https://news{index}.example/world/2023/06/18/blinken-beijing",
        "published": published.isoformat(),
        "text": f"BEIJING (Outlet {index}) — {text}\n\nReporting by outlet {index} staff.",
    }


@pytest.fixture
def slack_hook() -> Iterator[WebhookEndpoint]:
    endpoint = WebhookEndpoint()
    yield endpoint
    endpoint.close()


def build(
    tmp_path: Path, feed_server: FeedServer, hook: WebhookEndpoint, clock: Clock, rule: str = ""
) -> Pipeline:
    text = f"""
[database]
url = "sqlite:///{tmp_path / "stories.db"}"
[[sources]]
name = "wire"
url = "{feed_server.url("/wire.xml")}"
[[channels]]
name = "slack"
kind = "slack"
url = "http://127.0.0.1:{hook.port}/services/T/B/X"
[[rules]]
name = "principals"
query = "actor:antony-blinken OR actor:wang-yi OR actor:qin-gang OR actor:xi-jinping"
channels = ["slack"]
group_interval = "10m"
{rule}
"""
    config = parse_config(text, origin="stories.toml", base_dir=tmp_path)
    store = Store.open(config.database.url)
    store.upgrade()
    pipeline = Pipeline(load_runtime(config), store, Fetcher(LOCAL_FETCH), clock=clock)
    pipeline.prepare()
    return pipeline


def messages(hook: WebhookEndpoint) -> list[str]:
    return [
        str(r["text"]) + "\n" + "\n".join(b["text"]["text"] for b in r["blocks"])
        for r in hook.received
    ]


def test_thirty_articles_about_one_event_give_one_alert_and_only_material_updates(
    tmp_path: Path, feed_server: FeedServer, slack_hook: WebhookEndpoint
) -> None:
    clock = Clock()
    feed_server.route("/wire.xml", rss([]), headers=RSS_TYPE)
    pipeline = build(tmp_path, feed_server, slack_hook, clock)
    pipeline.poll_all()  # the first poll of an empty feed: from now on, every new item is news
    items: list[dict[str, str]] = []
    for index in range(30):  # thirty outlets within an hour, polled every six minutes
        clock.now = START + timedelta(minutes=2 * index + 1)
        items.append(outlet_copy(index, clock.now))
        if index % 3 == 2:
            feed_server.route("/wire.xml", rss(items[::-1]), headers=RSS_TYPE)
            pipeline.poll_all()
            pipeline.deliver_due()
    clock.now += timedelta(hours=1)  # any update still waiting for group_interval goes now
    pipeline.deliver_due()

    fates = pipeline.store.fates(LogFilter(rule="principals", limit=100))
    assert len(fates) == 30  # every article matched, and the log says what became of each
    assert len({f.story_id for f in fates}) == 1  # one story
    alerts = pipeline.store.alerts(LogFilter(limit=100))
    sent = messages(slack_hook)
    assert len(sent) == len(alerts)  # every alert made was sent once
    first, *updates = sent
    assert "Blinken" in first and "update" not in first.split("\n", 1)[0]
    # updates only for what is material: the milestones of 5, 10 and 25 outlets, and tracked
    # actors the first message had not named
    assert 1 <= len(updates) <= 6
    for update in updates:
        assert "update" in update.lower() and ("outlets" in update or "new actor" in update)
    assert any("now 5 outlets" in u for u in updates) or "5 outlets" in first
    # messages about the story are at least group_interval (10m) apart
    sent_at = sorted({d.sent_at for a in alerts for d in a.deliveries if d.sent_at})
    assert len(sent_at) == len(sent)
    assert all(b - a >= timedelta(minutes=10) for a, b in pairwise(sent_at))
    outcomes = sorted(f.outcome for f in fates)
    assert outcomes.count("alert") == 1 and outcomes.count("update") == len(updates)
    assert outcomes.count("grouped") == 30 - 1 - len(updates)
    pipeline.close()


def test_group_wait_gathers_outlets_into_the_first_message(
    tmp_path: Path, feed_server: FeedServer, slack_hook: WebhookEndpoint
) -> None:
    clock = Clock()
    feed_server.route("/wire.xml", rss([]), headers=RSS_TYPE)
    pipeline = build(tmp_path, feed_server, slack_hook, clock, rule='group_wait = "5m"')
    pipeline.poll_all()
    items = []
    for index in range(4):  # four outlets, a minute apart
        clock.now = START + timedelta(minutes=index + 1)
        items.append(outlet_copy(index, clock.now))
        feed_server.route("/wire.xml", rss(items[::-1]), headers=RSS_TYPE)
        pipeline.poll_all()
        pipeline.deliver_due()
        assert slack_hook.received == []  # held: the first came a minute or more ago
    clock.now = START + timedelta(minutes=6)  # five minutes after the first
    pipeline.deliver_due()
    [message] = messages(slack_hook)
    for index in range(4):
        assert f"news{index}.example" in message  # every outlet gathered, in one message
    pipeline.close()


def test_slack_rate_limiting_holds_the_channel_for_as_long_as_it_asks(
    tmp_path: Path, feed_server: FeedServer, slack_hook: WebhookEndpoint
) -> None:
    clock = Clock()
    feed_server.route("/wire.xml", rss([]), headers=RSS_TYPE)
    pipeline = build(tmp_path, feed_server, slack_hook, clock)
    pipeline.poll_all()
    clock.now = START + timedelta(minutes=1)
    feed_server.route("/wire.xml", rss([outlet_copy(0, clock.now)]), headers=RSS_TYPE)
    pipeline.poll_all()
    slack_hook.fail_status, slack_hook.retry_after = 429, "30"
    report = pipeline.deliver_due()
    assert report.sent == 0 and slack_hook.received == []  # refused with 429 and Retry-After
    [fate] = pipeline.store.fates(LogFilter())
    [delivery] = fate.deliveries
    assert delivery.status == "pending" and delivery.attempts == 0  # not counted as a failure
    assert delivery.note == "rate limited by the service: asked to wait 30s"
    slack_hook.fail_status = None
    clock.now += timedelta(seconds=29)
    pipeline.deliver_due()
    assert slack_hook.received == []  # still waiting
    clock.now += timedelta(seconds=2)
    pipeline.deliver_due()
    assert len(slack_hook.received) == 1
    [fate] = pipeline.store.fates(LogFilter())
    assert fate.deliveries[0].status == "sent"
    pipeline.close()
