"""Broken and hostile input against the real pipeline: every ill-formed feed served over HTTP
beside a good one (the entity attacks among them refused), a parse that hangs stopped at its
deadline, and articles written to ping Slack or inject email headers."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import DATA, LOCAL_FETCH, SLACK_URL, article_item, quadratic_blowup_feed, rss
from endpoints import SmtpServer, WebhookEndpoint
from feedserver import FeedServer

from monitor.config import parse_config
from monitor.fetch import Fetcher
from monitor.models import ParsedFeed
from monitor.parse import parse_feed
from monitor.pipeline import Pipeline
from monitor.runtime import load_runtime
from monitor.sandbox import BoundedParser, ParseLimits
from monitor.store import LogFilter, Store

ILLFORMED = sorted(p for p in (DATA / "feeds" / "illformed").iterdir() if p.suffix != ".tsv")
ENTITY_ATTACKS = [p for p in ILLFORMED if p.name.startswith(("bomb_", "xxe_"))]
ENTITIES_REFUSED = "declares XML entities (<!ENTITY …>), which can expand without bound; refused"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".atom": "application/atom+xml",
    ".gz": "application/rss+xml",
}  # a raw gzip body without Content-Encoding
RSS_TYPE = {"Content-Type": "application/rss+xml"}
GOOD = (DATA / "feeds" / "real" / "washingtonpost_wellness.xml").read_bytes()


def build(
    tmp_path: Path,
    sources: str,
    channels: str,
    rule_channels: str,
    parser: BoundedParser | None = None,
) -> Pipeline:
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
    fetcher = Fetcher(replace(LOCAL_FETCH, deadline=5))
    pipeline = Pipeline(load_runtime(config), store, fetcher, parser=parser)
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
    feed_server.route("/quadratic", quadratic_blowup_feed(), headers=RSS_TYPE)
    sources += f'[[sources]]\nname = "quadratic"\nurl = "{feed_server.url("/quadratic")}"\n'
    feed_server.route("/good", GOOD, headers=RSS_TYPE)
    sources += f'[[sources]]\nname = "good"\nurl = "{feed_server.url("/good")}"\n'
    pipeline = build(tmp_path, sources, "", "[]")
    yield pipeline
    pipeline.close()


def test_broken_feeds_are_recorded_and_never_stop_the_others(hostile_pipeline: Pipeline) -> None:
    reports = {r.source: r for r in hostile_pipeline.poll_all()}
    assert len(reports) == len(ILLFORMED) + 2
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
    assert stored["fetches"] == len(ILLFORMED) + 2
    for article in hostile_pipeline.store.articles(LogFilter(limit=1000)):
        assert "<script" not in article.title.lower()


def test_feeds_declaring_entities_are_refused_and_nothing_is_kept(
    hostile_pipeline: Pipeline,
) -> None:
    reports = {r.source: r for r in hostile_pipeline.poll_all()}

    attacks = [f"bad-{ILLFORMED.index(p)}" for p in ENTITY_ATTACKS] + ["quadratic"]
    assert len(attacks) == 6
    for name in attacks:
        assert reports[name].status == "error"
        assert reports[name].error == f"{name}: {ENTITIES_REFUSED}"
        assert hostile_pipeline.store.source_state(name).last_error == reports[name].error
        assert hostile_pipeline.store.articles(LogFilter(source=name)) == []
    assert reports["good"].status == "ok" and reports["good"].new > 5


def parse_or_hang(
    data: bytes, *, headers: Mapping[str, str] | None = None, source: str = ""
) -> ParsedFeed:
    """parse_feed, except on the source named "slow", whose parse never ends."""
    if source == "slow":
        time.sleep(3600)
    return parse_feed(data, headers=headers, source=source)


def test_a_parse_that_hangs_is_stopped_and_the_next_poll_works(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    sources = ""
    for name in ("slow", "good"):
        feed_server.route(f"/{name}", GOOD, headers=RSS_TYPE)
        sources += f'[[sources]]\nname = "{name}"\nurl = "{feed_server.url(f"/{name}")}"\n'
    parser = BoundedParser(ParseLimits(timeout=1), parse=parse_or_hang)
    pipeline = build(tmp_path, sources, "", "[]", parser)

    reports = {r.source: r for r in pipeline.poll_all()}

    assert reports["slow"].status == "error"
    assert reports["slow"].error == "slow: parsing took longer than 1s; stopped"
    assert reports["good"].status == "ok" and reports["good"].new > 5
    feed_server.route("/good", rss([article_item("neg01.json")]), headers=RSS_TYPE)
    again = pipeline.poll_source(pipeline.runtime.config.sources[1])
    assert (again.source, again.status, again.new) == ("good", "ok", 1)
    pipeline.close()


HOSTILE = {
    "title": "Blinken <!channel> meets Wang Yi <!here> <@U024BE7LH> "
    '<iframe src="https://evil.example/"></iframe><b onclick="steal()">x</b>'
    "\r\nBcc: victim@example.org",
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
    page = BeautifulSoup(html, "html.parser")  # what a mail client would render
    assert not page.find_all(["script", "iframe", "img", "object", "embed", "b"])
    assert not [a for tag in page.find_all(True) for a in tag.attrs if a.startswith("on")]
    assert 'onclick="steal()"' in page.get_text()  # shown as text, harmless
    assert "<mark>Antony Blinken</mark>" in html

    [chat] = webhook.received  # any other service (Discord, Teams …): no mention survives
    chat_text = str(chat["title"]) + str(chat["message"])
    for forbidden in ("@channel", "@here", "@everyone", "<@U", "<!", "<script", "<iframe"):
        assert forbidden not in chat_text
    assert "**Antony Blinken**" in chat_text
    pipeline.close()


LONE_SURROGATES = {
    "feed.json": (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "news", "items": ['
        b'{"id": "https://example.org/\\ud800/1", "url": "https://example.org/\\ud800/1",'
        b' "title": "Blinken \\ud800 meets Wang Yi", "author": {"name": "A \\udfff B"},'
        b' "content_text": "Antony Blinken met Wang Yi \\udc00 in Beijing."}]}',
        "application/feed+json",
    ),
    "feed.xml": (
        b"<rss version='2.0'><channel><title>news</title><item>"
        b"<link>https://example.org/&#xD800;/2</link>"
        b"<title>Blinken &#xD800; meets Wang Yi</title>"
        b"<description>Antony Blinken met Wang Yi &#55296; in Beijing.</description>"
        b"</item></channel></rss>",
        "application/rss+xml",
    ),
}


@pytest.mark.parametrize("name", sorted(LONE_SURROGATES))
def test_lone_surrogates_in_a_feed_become_replacement_characters(
    tmp_path: Path, feed_server: FeedServer, name: str
) -> None:
    """JSON escapes and XML character references can spell half of a UTF-16 pair, which no
    UTF-8 text can hold: the feed is kept, with U+FFFD in its place, matched and stored."""
    body, content_type = LONE_SURROGATES[name]
    feed_server.route(f"/{name}", body, headers={"Content-Type": content_type})
    sources = f'[[sources]]\nname = "news"\nurl = "{feed_server.url(f"/{name}")}"\n'
    pipeline = build(tmp_path, sources, "", "[]")

    [report] = pipeline.poll_all()

    assert (report.status, report.new, report.error) == ("ok", 1, None)
    [article] = pipeline.store.articles(LogFilter(source="news"))
    assert article.title == "Blinken \ufffd meets Wang Yi"
    assert "\ufffd" in article.url
    assert pipeline.store.counts()["matches"] == 1
    pipeline.close()
