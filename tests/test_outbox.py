"""The outbox with real channels (apprise json:// to local endpoints) and a real SQLite file:
several deliverers never send an alert twice, a channel that is down neither starves the others
nor loses its order, a slow send keeps its claim, a restart resumes what is pending, and a
removed channel is given up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from endpoints import WebhookEndpoint

from monitor.config import parse_config
from monitor.fetch import Fetcher, FetchSettings
from monitor.messages import build_message
from monitor.models import AlertPlan, Article, FetchOutcome, NewArticle
from monitor.pipeline import MAX_PROBES, DeliveryReport, Pipeline
from monitor.runtime import load_runtime
from monitor.store import CLAIM_RENEWAL, DELIVERY_LEASE, LogFilter, Store

START = datetime(2024, 2, 16, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def hooks() -> Iterator[tuple[WebhookEndpoint, WebhookEndpoint]]:
    a, b = WebhookEndpoint(), WebhookEndpoint()
    yield a, b
    a.close()
    b.close()


def config_text(tmp_path: Path, a: WebhookEndpoint, b: WebhookEndpoint, channels: str) -> str:
    return f"""
[database]
url = "sqlite:///{tmp_path / "outbox.db"}"
[daemon]
retry_base = "1m"
[[sources]]
name = "news"
url = "https://example.org/feed"
[[channels]]
name = "a"
url = "json://127.0.0.1:{a.port}/a"
[[channels]]
name = "b"
url = "json://127.0.0.1:{b.port}/b"
[[rules]]
name = "principals"
query = "actor:antony-blinken"
channels = {channels}
"""


def pipeline_for(
    text: str, clock: Clock, tmp_path: Path, claim_renewal: timedelta = CLAIM_RENEWAL
) -> Pipeline:
    config = parse_config(text, origin="test.toml", base_dir=tmp_path)
    store = Store.open(config.database.url)
    store.upgrade()
    fetcher = Fetcher(FetchSettings())
    pipeline = Pipeline(
        load_runtime(config), store, fetcher, clock=clock, claim_renewal=claim_renewal
    )
    pipeline.prepare()
    return pipeline


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def queue_alerts(pipeline: Pipeline, titles: list[str], channels: tuple[str, ...]) -> None:
    """Store one matching article per title, each with an alert to ``channels``."""
    items = []
    for title in titles:
        article = Article(title=title, text="Antony Blinken spoke.", source="news")
        message = build_message("principals", article, (), (), {})
        plan = AlertPlan("principals", channels, message, ())
        items.append(NewArticle(f"guid:{title}", article, (), (plan,)))
    state = pipeline.store.source_state("news")
    outcome = FetchOutcome(pipeline.clock(), "ok", 1, pipeline.clock() + timedelta(minutes=15))
    pipeline.store.save_poll(state, outcome, items)


def titles(endpoint: WebhookEndpoint) -> list[str]:
    return [str(r["title"]).removeprefix("[principals] ") for r in endpoint.received]


def test_two_deliverers_never_send_an_alert_twice(
    tmp_path: Path, hooks: tuple[WebhookEndpoint, WebhookEndpoint]
) -> None:
    a, b = hooks
    a.delay = 0.05
    clock = Clock()
    text = config_text(tmp_path, a, b, '["a", "b"]')
    first, second = pipeline_for(text, clock, tmp_path), pipeline_for(text, clock, tmp_path)
    queue_alerts(first, [f"t{i}" for i in range(8)], ("a", "b"))
    threads = [threading.Thread(target=p.deliver_due) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for _ in range(3):  # whatever one left because the other held the channel
        first.deliver_due()
        second.deliver_due()
    assert titles(a) == [f"t{i}" for i in range(8)]
    assert titles(b) == [f"t{i}" for i in range(8)]
    first.store.close()
    second.store.close()


def test_a_slow_send_keeps_its_claim_past_the_first_lease(
    tmp_path: Path, hooks: tuple[WebhookEndpoint, WebhookEndpoint]
) -> None:
    a, b = hooks
    a.delay = 0.5
    clock, other_clock = Clock(), Clock()
    text = config_text(tmp_path, a, b, '["a"]')
    sender = pipeline_for(text, clock, tmp_path, claim_renewal=timedelta(seconds=0.05))
    other = pipeline_for(text, other_clock, tmp_path)
    queue_alerts(sender, ["t0"], ("a",))
    sending = threading.Thread(target=sender.deliver_due)
    sending.start()
    assert wait_until(lambda: a.in_flight == 1)
    clock.now = START + DELIVERY_LEASE / 2  # time passes while the send is under way
    time.sleep(0.2)  # the sender renews its claim
    other_clock.now = START + DELIVERY_LEASE  # past the claim as it was first taken
    assert other.deliver_due() == DeliveryReport(0, 0)  # the channel is still being sent to
    sending.join(timeout=10)
    assert titles(a) == ["t0"]
    sender.store.close()
    other.store.close()


def test_a_channel_down_for_hours_starves_no_other_and_gets_everything_in_order(
    tmp_path: Path, hooks: tuple[WebhookEndpoint, WebhookEndpoint]
) -> None:
    a, b = hooks
    a.fail_status = 503
    clock = Clock()
    pipeline = pipeline_for(config_text(tmp_path, a, b, '["a"]'), clock, tmp_path)
    queue_alerts(pipeline, [f"t{i:03}" for i in range(150)], ("a",))
    assert pipeline.deliver_due() == DeliveryReport(0, 1)  # one attempt, then a backs off
    queue_alerts(pipeline, ["for-b"], ("b",))
    queue_alerts(pipeline, ["late-a"], ("a",))
    assert pipeline.deliver_due() == DeliveryReport(1, 0)
    assert titles(b) == ["for-b"]
    assert pipeline.deliver_due() == DeliveryReport(0, 0)  # a is still waiting

    for _ in range(12):  # down for hours: retried with backoff, probed, never out of order
        clock.now += timedelta(hours=2)
        report = pipeline.deliver_due()
        assert report.sent == 0 and 1 <= report.failed <= 1 + MAX_PROBES
    a.fail_status = None
    clock.now += timedelta(hours=2)
    for _ in range(8):  # twenty a round per channel
        pipeline.deliver_due()
    assert titles(a) == [f"t{i:03}" for i in range(150)] + ["late-a"]
    pipeline.store.close()


def test_a_message_the_channel_always_refuses_is_set_aside(
    tmp_path: Path, hooks: tuple[WebhookEndpoint, WebhookEndpoint]
) -> None:
    a, b = hooks
    a.refuse_containing = b"POISON"
    clock = Clock()
    pipeline = pipeline_for(config_text(tmp_path, a, b, '["a"]'), clock, tmp_path)
    queue_alerts(pipeline, ["POISON", "t1", "t2"], ("a",))
    for _ in range(3):
        pipeline.deliver_due()
        clock.now += timedelta(hours=2)
    assert titles(a) == ["t1", "t2"]  # the third failure probed t1, which went through
    queue_alerts(pipeline, ["t3"], ("a",))
    pipeline.deliver_due()
    assert titles(a) == ["t1", "t2", "t3"]  # the refused message no longer holds the channel
    [poison] = [r for r in pipeline.store.alerts(LogFilter()) if r.title == "POISON"]
    [delivery] = poison.deliveries
    assert delivery.status == "pending" and delivery.attempts == 4  # kept, retried alone
    assert "error=400" in (delivery.last_error or "")
    pipeline.store.close()


def test_a_backlog_on_one_channel_holds_up_no_other(
    tmp_path: Path, hooks: tuple[WebhookEndpoint, WebhookEndpoint]
) -> None:
    a, b = hooks
    pipeline = pipeline_for(config_text(tmp_path, a, b, '["a"]'), Clock(), tmp_path)
    queue_alerts(pipeline, [f"t{i:03}" for i in range(120)], ("a",))
    queue_alerts(pipeline, ["urgent"], ("b",))
    assert pipeline.deliver_due() == DeliveryReport(21, 0)
    assert titles(b) == ["urgent"] and titles(a) == [f"t{i:03}" for i in range(20)]
    pipeline.store.close()


def test_two_refused_messages_in_a_row_do_not_block_the_channel(
    tmp_path: Path, hooks: tuple[WebhookEndpoint, WebhookEndpoint]
) -> None:
    a, b = hooks
    a.refuse_containing = b"POISON"
    clock = Clock()
    pipeline = pipeline_for(config_text(tmp_path, a, b, '["a"]'), clock, tmp_path)
    queue_alerts(pipeline, ["POISON-1", "POISON-2", "t1", "t2"], ("a",))
    for _ in range(6):
        pipeline.deliver_due()
        clock.now += timedelta(hours=2)
    assert titles(a) == ["t1", "t2"]
    statuses = {
        r.title: [(d.status, d.set_aside) for d in r.deliveries]
        for r in pipeline.store.alerts(LogFilter())
    }
    assert statuses["POISON-1"] == statuses["POISON-2"] == [("pending", True)]
    pipeline.store.close()


def test_a_restart_resumes_pending_deliveries_and_gives_up_removed_channels(
    tmp_path: Path, hooks: tuple[WebhookEndpoint, WebhookEndpoint]
) -> None:
    a, b = hooks
    a.fail_status = 503
    clock = Clock()
    pipeline = pipeline_for(config_text(tmp_path, a, b, '["a", "b"]'), clock, tmp_path)
    queue_alerts(pipeline, ["t0"], ("a", "b"))
    assert pipeline.deliver_due().sent == 1  # b got it, a is down
    pipeline.store.close()

    a.fail_status = None
    clock.now += timedelta(minutes=2)
    restarted = pipeline_for(config_text(tmp_path, a, b, '["a", "b"]'), clock, tmp_path)
    assert restarted.deliver_due().sent == 1
    assert titles(a) == ["t0"] and titles(b) == ["t0"]  # b was not sent to again

    queue_alerts(restarted, ["t1"], ("a", "b"))
    restarted.store.close()
    text = config_text(tmp_path, a, b, '["b"]').replace(
        f'name = "a"\nurl = "json://127.0.0.1:{a.port}/a"\n[[channels]]\n', ""
    )
    without_a = pipeline_for(text, clock, tmp_path)
    assert without_a.deliver_due() == DeliveryReport(sent=1, failed=1)
    [alert] = [r for r in without_a.store.alerts(LogFilter()) if r.title == "t1"]
    statuses = {d.channel: (d.status, d.last_error) for d in alert.deliveries}
    assert statuses == {"a": ("failed", "channel 'a' is no longer configured"), "b": ("sent", None)}
    without_a.store.close()


def test_rules_matching_one_article_send_one_message_per_channel(
    tmp_path: Path, hooks: tuple[WebhookEndpoint, WebhookEndpoint]
) -> None:
    """Two rules match one article: a channel both send to gets one message naming both; a
    channel only one sends to gets that one's. After a failure they are retried one by one."""
    a, b = hooks
    clock = Clock()
    text = config_text(tmp_path, a, b, '["a", "b"]')
    text += '[[rules]]\nname = "talks"\nquery = "actor:antony-blinken"\nchannels = ["a"]\n'
    pipeline = pipeline_for(text, clock, tmp_path)

    def queue(title: str) -> None:
        article = Article(title=title, text="Antony Blinken spoke.", source="news")
        plans = tuple(
            AlertPlan(rule, channels, build_message(rule, article, (), (), {}), ())
            for rule, channels in (("principals", ("a", "b")), ("talks", ("a",)))
        )
        outcome = FetchOutcome(clock(), "ok", 1, clock() + timedelta(minutes=15))
        pipeline.store.save_poll(
            pipeline.store.source_state("news"),
            outcome,
            [NewArticle(f"guid:{title}", article, (), plans)],
        )

    queue("t0")
    assert pipeline.deliver_due() == DeliveryReport(3, 0)  # three deliveries, two messages
    assert [r["title"] for r in a.received] == ["[principals, talks] t0"]
    assert [r["title"] for r in b.received] == ["[principals] t0"]
    to_a = [d for r in pipeline.store.alerts(LogFilter()) for d in r.deliveries if d.channel == "a"]
    assert [(d.status, d.note) for d in to_a] == [("sent", "one message for alerts 1, 2")] * 2

    a.fail_status = 503
    queue("t1")
    assert pipeline.deliver_due() == DeliveryReport(1, 2)  # b's went out; a's failed together
    a.fail_status = None
    clock.now += timedelta(hours=2)
    pipeline.deliver_due()
    assert [r["title"] for r in a.received][1:] == ["[principals] t1", "[talks] t1"]
    pipeline.store.close()
