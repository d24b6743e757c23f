"""Broken and hostile input against the real pipeline: every ill-formed real-world feed served
over HTTP beside a good one, and articles written to ping Slack or inject email headers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import DATA, LOCAL_FETCH, SLACK_URL, article_item, rss
from endpoints import SmtpServer, WebhookEndpoint
from feedserver import FeedServer

from monitor.config import parse_config
from monitor.fetch import Fetcher
from monitor.pipeline import Pipeline
from monitor.runtime import load_runtime
from monitor.store import LogFilter, Store

ILLFORMED = sorted(p for p in (DATA / "feeds" / "illformed").iterdir() if p.suffix != ".tsv")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".atom": "application/atom+xml",
    ".gz": "application/rss+xml",
}  # a raw gzip body without Content-Encoding


def build(tmp_path: Path, sources: str, channels: str, rule_channels: str) -> Pipeline:
    text = f"""
[database]
url = "sqlite:///{tmp_path / "monitor.db"}"
{sources}
{channels}
[[rules]]
name = "principals"
query = "actor:antony-blinken OR actor:wang-yi"
channels = {rule_channels}
"""
    config = parse_config(text, origin="test.toml", base_dir=tmp_path)
    store = Store.open(config.database.url)
    store.upgrade()
    pipeline = Pipeline(load_runtime(config), store, Fetcher(replace(LOCAL_FETCH, deadline=5)))
    pipeline.prepare()
    return pipeline


@pytest.fixture
def hostile_pipeline(tmp_path: Path, feed_server: FeedServer) -> Iterator[Pipeline]:
    sources = ""
    for index, path in enumerate(ILLFORMED):
        content_type = CONTENT_TYPES.get(path.suffix, "application/rss+xml")
        feed_server.route(
            f"/bad/{index}", path.read_bytes(), headers={"Content-Type": content_type}
        )
        sources += (
            f'[[sources]]\nname = "bad-{index}"\nurl = "{feed_server.url(f"/bad/{index}")}"\n'
        )
    good = (DATA / "feeds" / "real" / "washingtonpost_wellness.xml").read_bytes()
    feed_server.route("/good", good, headers={"Content-Type": "application/rss+xml"})
    sources += f'[[sources]]\nname = "good"\nurl = "{feed_server.url("/good")}"\n'
    pipeline = build(tmp_path, sources, "", "[]")
    yield pipeline
    pipeline.store.close()
    pipeline.fetcher.close()


def test_broken_feeds_are_recorded_and_never_stop_the_others(hostile_pipeline: Pipeline) -> None:
    reports = {r.source: r for r in hostile_pipeline.poll_all()}
    assert len(reports) == len(ILLFORMED) + 1
    assert reports["good"].status == "ok" and reports["good"].new > 5
    failed = [r for r in reports.values() if r.status == "error"]
    assert failed, "some of the ill-formed feeds must be refused"
    for report in failed:
        state = hostile_pipeline.store.source_state(report.source)
        assert state.error_count == 1 and state.last_error == report.error
        assert report.error and "Traceback" not in report.error
    html_page = ILLFORMED.index(DATA / "feeds" / "illformed" / "notfeed_html_page.html")
    assert reports[f"bad-{html_page}"].status == "error"
    kept = sum(r.new for r in reports.values() if r.status == "ok" and r.source != "good")
    assert kept > 0, "usable entries of malformed feeds are kept"
    stored = hostile_pipeline.store.counts()
    assert stored["fetches"] == len(ILLFORMED) + 1
    for article in hostile_pipeline.store.articles(LogFilter(limit=1000)):
        assert "<script" not in article.title.lower()


HOSTILE = {
    "title": "Blinken <!channel> meets Wang Yi <!here> <@U024BE7LH>\r\nBcc: victim@example.org",
    "text": "Antony Blinken met Wang Yi. @channel @here <script>alert(1)</script> "
    '<img src=x onerror="alert(2)"> !channel> &lt;!everyone&gt; <https://evil.example|click>',
    "url": "https://example.org/story?a=1&b=<@&123456>&c=@everyone",
    "published": "2023-02-18T23:57:58+00:00",
}


def test_feed_text_cannot_ping_or_inject_on_any_channel(
    tmp_path: Path,
    feed_server: FeedServer,
    slack: WebhookEndpoint,
    smtp: SmtpServer,
    webhook: WebhookEndpoint,
) -> None:
    feed_server.route(
        "/feed", rss([article_item("neg01.json")]), headers={"Content-Type": "application/rss+xml"}
    )
    sources = f'[[sources]]\nname = "news"\nurl = "{feed_server.url("/feed")}"\n'
    channels = (
        f'[[channels]]\nname = "slack"\nurl = "{SLACK_URL}"\n'
        f'[[channels]]\nname = "email"\nurl = "{smtp.mailto()}"\n'
        f'[[channels]]\nname = "chat"\nurl = "json://127.0.0.1:{webhook.port}/hook"\n'
    )
    pipeline = build(tmp_path, sources, channels, '["slack", "email", "chat"]')
    pipeline.poll_all()
    feed_server.route(
        "/feed",
        rss([HOSTILE, article_item("neg01.json")]),
        headers={"Content-Type": "application/rss+xml"},
    )
    pipeline.poll_all()
    assert pipeline.deliver_due().sent == 3

    [payload] = slack.received
    slack_text = payload["attachments"][0]["title"] + payload["attachments"][0]["text"]
    for forbidden in (
        "<!channel",
        "<!here",
        "<!everyone",
        "<@U",
        "@channel",
        "@here",
        "<https://evil",
        "<script",
    ):
        assert forbidden not in slack_text
    assert "*Antony Blinken*" in slack_text  # our own markup still works

    [mail] = smtp.messages
    assert mail["Bcc"] is None and "victim@example.org" not in str(smtp.inbox.envelopes[0].rcpt_tos)
    assert "\n" not in mail["Subject"] and "\r" not in mail["Subject"]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script" not in html and "onerror=" not in html and "<img" not in html
    assert "<mark>Antony Blinken</mark>" in html

    [chat] = webhook.received  # any other service (Discord, Teams …): no mention survives
    chat_text = str(chat["title"]) + str(chat["message"])
    for forbidden in ("@channel", "@here", "@everyone", "<@U", "<!", "<script"):
        assert forbidden not in chat_text
    assert "**Antony Blinken**" in chat_text
    pipeline.store.close()
    pipeline.fetcher.close()
