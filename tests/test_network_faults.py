"""What the network throws at a fetch, each against a real local socket or server: a reset
connection, a name that does not resolve, TLS spoken to a plain HTTP server, a redirect loop,
a feed served with the wrong Content-Type and an HTML error page served with 200. Each is a
clear error naming the URL (or, for the wrong Content-Type, a feed read all the same)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import LOCAL_FETCH
from feedserver import FeedServer

from monitor.errors import FetchError, ParseError
from monitor.fetch import Fetcher
from monitor.parse import parse_feed

DATA = Path(__file__).parent / "data" / "feeds"
FEED = (DATA / "real" / "nbc_newyork_2023.xml").read_bytes()


@contextmanager
def resetting_server() -> Iterator[int]:
    """A TCP server that accepts each connection, reads the request, and resets it (RST)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(4096)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join()
        listener.close()


def test_a_reset_connection_is_a_clear_error() -> None:
    with resetting_server() as port, Fetcher(LOCAL_FETCH) as fetcher:
        url = f"http://127.0.0.1:{port}/feed"
        with pytest.raises(FetchError) as caught:
            fetcher.fetch(url)
    assert str(caught.value).startswith(f"{url}: ")
    assert "reset" in str(caught.value).lower() or "disconnected" in str(caught.value).lower()


def test_a_name_that_does_not_resolve_is_a_clear_error() -> None:
    url = "http://no-such-host.invalid/feed"  # .invalid never resolves (RFC 2606)
    started = time.monotonic()
    with Fetcher(LOCAL_FETCH) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.fetch(url)
    assert str(caught.value).startswith(f"{url}: cannot connect")
    assert time.monotonic() - started < LOCAL_FETCH.deadline


def test_tls_spoken_to_a_plain_http_server_is_a_clear_error(feed_server: FeedServer) -> None:
    feed_server.route("/feed", FEED)
    url = feed_server.url("/feed").replace("http://", "https://")
    with Fetcher(LOCAL_FETCH) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.fetch(url)
    assert str(caught.value).startswith(f"{url}: cannot connect")
    assert "SSL" in str(caught.value) or "TLS" in str(caught.value)


def test_a_redirect_loop_stops(feed_server: FeedServer) -> None:
    feed_server.route("/a", redirect_to="/b")
    feed_server.route("/b", redirect_to="/a")
    with Fetcher(LOCAL_FETCH) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.fetch(feed_server.url("/a"))
    assert "redirect" in str(caught.value).lower()
    assert feed_server.hits["/a"] + feed_server.hits["/b"] <= LOCAL_FETCH.max_redirects + 1


def test_a_feed_with_the_wrong_content_type_is_read(feed_server: FeedServer) -> None:
    feed_server.route("/feed", FEED, headers={"Content-Type": "text/html; charset=utf-8"})
    with Fetcher(LOCAL_FETCH) as fetcher:
        result = fetcher.fetch(feed_server.url("/feed"))
    feed = parse_feed(result.body, headers=dict(result.headers), source="nbc")
    as_rss = parse_feed(FEED, headers={"content-type": "application/rss+xml"}, source="nbc")
    assert feed.articles == as_rss.articles and feed.articles


def test_an_html_error_page_served_with_200_is_not_a_feed(feed_server: FeedServer) -> None:
    page = (DATA / "illformed" / "notfeed_html_page.html").read_bytes()
    feed_server.route("/feed", page, headers={"Content-Type": "text/html"})
    with Fetcher(LOCAL_FETCH) as fetcher:
        result = fetcher.fetch(feed_server.url("/feed"))
    assert result.status == 200
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(result.body, headers=dict(result.headers), source="page")
