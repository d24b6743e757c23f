"""Shared fixtures: real local servers (feeds, a Slack stand-in, SMTP), real database files and
the real-world test items in tests/data/."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from apprise.plugins.slack import NotifySlack
from endpoints import SmtpServer, WebhookEndpoint
from feedserver import FeedServer
from sqlalchemy import create_engine, text

from monitor.fetch import FetchSettings

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"  # apprise's documented example
#: Fetch settings for the test servers, which listen on 127.0.0.1 (a private address).
LOCAL_FETCH = FetchSettings(allow_private_networks=True)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A feed server on 127.0.0.1, empty until a test adds routes."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookEndpoint]:
    """A local endpoint standing in for Slack's incoming webhook; apprise's Slack plugin is
    pointed at it (Slack itself cannot be reached from here)."""
    endpoint = WebhookEndpoint()
    monkeypatch.setattr(NotifySlack, "webhook_url", endpoint.url + "/services")
    yield endpoint
    endpoint.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.close()


@pytest.fixture
def webhook() -> Iterator[WebhookEndpoint]:
    endpoint = WebhookEndpoint()
    yield endpoint
    endpoint.close()


def article_item(name: str) -> dict[str, str]:
    """A real news item from tests/data/articles/ (see its SOURCES.tsv)."""
    return json.loads((DATA / "articles" / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def rss(items: list[dict[str, str]], title: str = "Test feed") -> bytes:
    """An RSS 2.0 document holding ``items`` (dicts with title, text, url, published)."""
    entries = "".join(
        f"<item><title>{escape(i['title'])}</title><link>{escape(i['url'])}</link>"
        f"<guid>{escape(i['url'])}</guid>"
        f"<pubDate>{format_datetime(datetime.fromisoformat(i['published']))}</pubDate>"
        f"<description>{escape(i['text'])}</description></item>"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://example.org/</link>"
        f"<description>test</description>{entries}</channel></rss>"
    ).encode()


def quadratic_blowup_feed(entity_bytes: int = 50_000, references: int = 50_000) -> bytes:
    """A synthetic attack feed: one large entity used many times (50 KB × 50,000 is 2.5 GB once
    expanded), which nesting limits such as billion-laughs guards do not catch. Built here, not
    kept in tests/data/, for its size."""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<!DOCTYPE rss [\n<!ENTITY a "' + b"x" * entity_bytes + b'">\n]>\n'
        b'<rss version="2.0"><channel><title>Quadratic blowup</title>'
        b"<link>https://example.org/</link><description>test</description>"
        b"<item><title>Antony Blinken meets Wang Yi</title><link>https://example.org/q</link>"
        b"<description>" + b"&a;" * references + b"</description></item></channel></rss>"
    )


POSTGRES_URL = os.environ.get(
    "MONITOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty schema on the PostgreSQL server, dropped afterwards."""
    if os.environ.get("MONITOR_POSTGRES_UNAVAILABLE"):
        pytest.skip(os.environ["MONITOR_POSTGRES_UNAVAILABLE"])
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # no server: say why, and skip (but never in CI, which has one)
        reason = f"no PostgreSQL server at {POSTGRES_URL}: {exc.__class__.__name__}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    schema = f"monitor_test_{os.getpid()}_{datetime.now().strftime('%H%M%S%f')}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
