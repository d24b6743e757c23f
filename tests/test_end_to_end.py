"""The whole loop against real local parts: a feed server, a Slack stand-in, an SMTP server
and a SQLite file. Items are real news items from tests/data/articles/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LOCAL_FETCH, SLACK_URL, article_item, rss
from endpoints import SmtpServer, WebhookEndpoint
from feedserver import FeedServer

from monitor.config import Config, parse_config
from monitor.fetch import Fetcher
from monitor.pipeline import Pipeline
from monitor.runtime import load_runtime
from monitor.store import LogFilter, Store

QUIET = [article_item(n) for n in ("neg01.json", "neg03.json", "near04.json")]
BLINKEN_QIN = article_item("pos05.json")  # already in the feed at the first poll
BLINKEN_WANG = article_item("pos01.json")  # appears later
XI_FENTANYL = article_item("pos13.json")  # appears later still


START = datetime(2023, 6, 18, 12, 0, tzinfo=UTC)
RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def make_config(database_url: str, feed_server: FeedServer, smtp: SmtpServer) -> Config:
    text = f"""
[database]
url = "{database_url}"

[[sources]]
name = "world"
url = "{feed_server.url("/world.xml")}"
interval = "1m"

[[sources]]
name = "broken"
url = "{feed_server.url("/broken.xml")}"

[[channels]]
name = "slack"
url = "{SLACK_URL}"

[[channels]]
name = "email"
url = "{smtp.mailto()}"

[[rules]]
name = "us-china-diplomacy"
query = "actor:antony-blinken OR actor:xi-jinping"
channels = ["slack", "email"]
"""
    return parse_config(text, origin="test.toml", base_dir=Path("."))


Factory = Callable[[], Pipeline]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def pipelines(
    database_url: str, tmp_path: Path, feed_server: FeedServer, smtp: SmtpServer
) -> Iterator[tuple[Factory, Clock]]:
    """Builds a fresh pipeline on the same database, as a restarted daemon would."""
    config = make_config(database_url, feed_server, smtp)
    clock = Clock()
    feed_server.route("/world.xml", headers=RSS_TYPE, body=rss([*QUIET, BLINKEN_QIN]))
    broken = (Path(__file__).parent / "data/feeds/illformed/notfeed_html_page.html").read_bytes()
    feed_server.route("/broken.xml", broken, headers={"Content-Type": "text/html"})

    built: list[Pipeline] = []

    def build() -> Pipeline:
        store = Store.open(config.database.url)
        store.upgrade()
        pipeline = Pipeline(load_runtime(config), store, Fetcher(LOCAL_FETCH), clock=clock)
        pipeline.prepare()
        built.append(pipeline)
        return pipeline

    yield build, clock
    for pipeline in built:
        pipeline.close()


def cycle(pipeline: Pipeline) -> None:
    pipeline.poll_all()
    pipeline.deliver_due()


def test_the_whole_loop(
    pipelines: tuple[Factory, Clock],
    feed_server: FeedServer,
    slack: WebhookEndpoint,
    smtp: SmtpServer,
) -> None:
    build, clock = pipelines
    pipeline = build()

    # First poll: everything is stored, nothing alerts (backfill defaults to none).
    reports = {r.source: r for r in pipeline.poll_all()}
    pipeline.deliver_due()
    assert reports["world"].status == "ok" and reports["world"].new == 4
    assert reports["world"].alerts == 0
    assert slack.received == [] and smtp.messages == []
    # The broken source is recorded with its error and did not stop the other.
    assert reports["broken"].status == "error"
    assert pipeline.store.source_state("broken").error_count == 1
    assert "feed" in (pipeline.store.source_state("broken").last_error or "").lower()
    # The first poll's match is logged, marked as not alerting.
    assert pipeline.store.articles(LogFilter(actor="antony-blinken"))[0].rules == (
        "us-china-diplomacy",
    )

    # A new matching item alerts exactly once on each channel.
    feed_server.route("/world.xml", headers=RSS_TYPE, body=rss([BLINKEN_WANG, *QUIET, BLINKEN_QIN]))
    clock.advance(minutes=1)
    cycle(pipeline)
    assert len(slack.received) == 1 and len(smtp.messages) == 1
    text = slack.received[0]["attachments"][0]["text"]
    assert "Blinken meets with China" in text and "*Antony Blinken*" in text
    assert BLINKEN_WANG["url"] in text and "The Guardian" not in text  # source is the config's
    assert "Blinken meets with China" in smtp.messages[0]["Subject"]
    html = smtp.messages[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<mark>Antony Blinken</mark>" in html and "Wang Yi" in html

    # A re-poll alerts nothing.
    clock.advance(minutes=1)
    cycle(pipeline)
    assert len(slack.received) == 1 and len(smtp.messages) == 1

    # A restart alerts nothing.
    pipeline.store.close()
    pipeline = build()
    clock.advance(minutes=1)
    cycle(pipeline)
    assert len(slack.received) == 1 and len(smtp.messages) == 1

    # A channel that is down gets the alert after it comes back, once.
    slack.fail_status = 503
    feed_server.route(
        "/world.xml", headers=RSS_TYPE, body=rss([XI_FENTANYL, BLINKEN_WANG, *QUIET, BLINKEN_QIN])
    )
    clock.advance(minutes=1)
    cycle(pipeline)
    assert len(slack.received) == 1 and len(smtp.messages) == 2
    alert = pipeline.store.alerts(LogFilter())[0]
    failed = next(d for d in alert.deliveries if d.channel == "slack")
    assert failed.status == "pending" and failed.attempts == 1 and failed.last_error
    slack.fail_status = None
    pipeline.deliver_due()  # not due yet: the retry waits for its backoff
    assert len(slack.received) == 1
    clock.advance(minutes=5)
    pipeline.deliver_due()
    assert len(slack.received) == 2 and "fentanyl" in slack.received[1]["attachments"][0]["text"]
    clock.advance(minutes=5)
    cycle(pipeline)
    assert len(slack.received) == 2 and len(smtp.messages) == 2
    delivered = [d.status for a in pipeline.store.alerts(LogFilter()) for d in a.deliveries]
    assert delivered == ["sent"] * 4


def test_conditional_get_uses_stored_validators(
    pipelines: tuple[Factory, Clock], feed_server: FeedServer
) -> None:
    build, clock = pipelines
    feed_server.route("/world.xml", rss(QUIET), headers={**RSS_TYPE, "ETag": '"v1"'})
    pipeline = build()
    pipeline.poll_all()
    clock.advance(minutes=1)
    reports = {r.source: r for r in pipeline.poll_all()}
    assert reports["world"].status == "not_modified"
    conditional = [h for path, h in feed_server.requests if path == "/world.xml"][-1]
    assert conditional.get("if-none-match") == '"v1"'


def test_schedule_lives_in_the_database(
    pipelines: tuple[Factory, Clock], feed_server: FeedServer
) -> None:
    build, clock = pipelines
    pipeline = build()
    pipeline.poll_due()
    assert feed_server.hits["/world.xml"] == 1
    pipeline.store.close()
    pipeline = build()  # a restart remembers when each source is next due
    pipeline.poll_due()
    assert feed_server.hits["/world.xml"] == 1
    clock.advance(seconds=61)
    pipeline.poll_due()
    assert feed_server.hits["/world.xml"] == 2
    # The broken source backs off: 15 minutes (its interval) after one failure, 30 after two.
    first_retry = pipeline.store.source_state("broken").next_check_at
    assert first_retry is not None
    assert timedelta(minutes=15) <= first_retry - START <= timedelta(minutes=19)
    clock.now = first_retry
    pipeline.poll_due()
    second_retry = pipeline.store.source_state("broken").next_check_at
    assert second_retry is not None
    assert timedelta(minutes=30) <= second_retry - first_retry <= timedelta(minutes=38)


class BrokenChannel:
    """A channel with a bug: it raises something other than DeliveryError."""

    name = "slack"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: object) -> None:
        self.calls += 1
        raise RuntimeError("bug in a channel")


def test_a_channel_that_raises_is_recorded_and_retried(
    tmp_path: Path, feed_server: FeedServer, smtp: SmtpServer
) -> None:
    config = make_config(f"sqlite:///{tmp_path / 'm.db'}", feed_server, smtp)
    feed_server.route("/world.xml", rss(QUIET), headers=RSS_TYPE)
    feed_server.route("/broken.xml", rss([]), headers=RSS_TYPE)
    store = Store.open(config.database.url)
    store.upgrade()
    broken = BrokenChannel()
    runtime = load_runtime(config, channels={"slack": broken, "email": broken})  # type: ignore[dict-item]
    clock = Clock()
    pipeline = Pipeline(runtime, store, Fetcher(LOCAL_FETCH), clock=clock)
    pipeline.prepare()
    pipeline.poll_all()
    feed_server.route("/world.xml", rss([BLINKEN_WANG, *QUIET]), headers=RSS_TYPE)
    pipeline.poll_all()
    report = pipeline.deliver_due()
    assert (report.sent, report.failed, broken.calls) == (0, 2, 2)
    [alert] = store.alerts(LogFilter())
    assert [(d.status, d.attempts, d.last_error) for d in alert.deliveries] == [
        ("pending", 1, "RuntimeError: bug in a channel")
    ] * 2
    clock.advance(hours=2)
    pipeline.deliver_due()
    assert broken.calls == 4
    pipeline.close()
