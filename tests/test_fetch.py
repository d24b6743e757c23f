from __future__ import annotations

import gzip
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import LOCAL_FETCH
from feedserver import FeedServer

from monitor import __version__
from monitor.errors import FetchError
from monitor.fetch import Fetcher, FetchSettings, IPAddress, non_public_kind

FEED = (Path(__file__).parent / "data" / "feeds" / "real" / "nbc_newyork_2023.xml").read_bytes()
RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}


ALLOW = "set [fetch] allow_private_networks = true to allow it"


@contextmanager
def fetcher(**settings: Any) -> Iterator[Fetcher]:
    """A fetcher for the test servers on 127.0.0.1: private networks allowed unless told not."""
    with Fetcher(replace(LOCAL_FETCH, **settings)) as opened:
        yield opened


def test_ok(feed_server: FeedServer) -> None:
    feed_server.route("/feed.xml", FEED, headers=RSS_TYPE)

    with fetcher() as f:
        result = f.fetch(feed_server.url("/feed.xml"))

    assert result.status == 200
    assert result.body == FEED
    assert result.url == feed_server.url("/feed.xml")
    assert result.headers["content-type"] == RSS_TYPE["Content-Type"]
    assert not result.not_modified
    assert result.elapsed > 0


def test_identifies_itself(feed_server: FeedServer) -> None:
    feed_server.route("/feed.xml", FEED)

    with fetcher() as f:
        f.fetch(feed_server.url("/feed.xml"))

    _, headers = feed_server.requests[-1]
    assert headers["user-agent"] == FetchSettings().user_agent
    assert headers["user-agent"].startswith(f"monitor/{__version__} ")
    assert "application/rss+xml" in headers["accept"]
    assert "gzip" in headers["accept-encoding"]


@pytest.mark.parametrize(
    ("sent", "expected_header"),
    [
        ({"etag": '"v1"'}, "if-none-match"),
        ({"last_modified": "Sat, 16 Dec 2023 02:02:33 GMT"}, "if-modified-since"),
    ],
)
def test_conditional_get(
    feed_server: FeedServer, sent: dict[str, str], expected_header: str
) -> None:
    validators = {"ETag": '"v1"', "Last-Modified": "Sat, 16 Dec 2023 02:02:33 GMT"}
    feed_server.route("/feed.xml", FEED, headers={**RSS_TYPE, **validators})

    with fetcher() as f:
        first = f.fetch(feed_server.url("/feed.xml"))
        second = f.fetch(feed_server.url("/feed.xml"), **sent)

    assert (first.etag, first.last_modified) == ('"v1"', validators["Last-Modified"])
    assert second.status == 304
    assert second.not_modified
    assert second.body == b""
    assert (second.etag, second.last_modified) == (first.etag, first.last_modified)
    assert feed_server.requests[-1][1][expected_header] == next(iter(sent.values()))


def test_changed_etag_gets_the_body(feed_server: FeedServer) -> None:
    feed_server.route("/feed.xml", FEED, headers={"ETag": '"v2"'})

    with fetcher() as f:
        result = f.fetch(feed_server.url("/feed.xml"), etag='"v1"')

    assert (result.status, result.body, result.etag) == (200, FEED, '"v2"')


def test_gzip_is_decoded(feed_server: FeedServer) -> None:
    feed_server.route("/feed.xml", gzip.compress(FEED), headers={"Content-Encoding": "gzip"})

    with fetcher() as f:
        result = f.fetch(feed_server.url("/feed.xml"))

    assert result.body == FEED


def test_redirect_is_followed(feed_server: FeedServer) -> None:
    feed_server.route("/old.xml", redirect_to="/new.xml")
    feed_server.route("/new.xml", FEED)

    with fetcher() as f:
        result = f.fetch(feed_server.url("/old.xml"))

    assert result.url == feed_server.url("/new.xml")
    assert result.body == FEED


@pytest.mark.parametrize(("redirects", "ok"), [(5, True), (6, False)])
def test_redirect_limit(feed_server: FeedServer, redirects: int, ok: bool) -> None:
    for hop in range(redirects):
        feed_server.route(f"/r{hop}", redirect_to=f"/r{hop + 1}")
    feed_server.route(f"/r{redirects}", FEED)

    with fetcher(max_redirects=5) as f:
        if ok:
            assert f.fetch(feed_server.url("/r0")).body == FEED
            return
        with pytest.raises(FetchError, match="more than 5 redirects") as caught:
            f.fetch(feed_server.url("/r0"))
    assert caught.value.status is None


@pytest.mark.parametrize(("path", "status"), [("/missing.xml", 404), ("/error.xml", 500)])
def test_http_error_has_status(feed_server: FeedServer, path: str, status: int) -> None:
    feed_server.route("/error.xml", b"oops", status=500)
    url = feed_server.url(path)

    with fetcher() as f, pytest.raises(FetchError) as caught:
        f.fetch(url)

    assert caught.value.status == status
    assert url in str(caught.value)
    assert f"HTTP {status}" in str(caught.value)


def test_body_over_max_bytes(feed_server: FeedServer) -> None:
    feed_server.route("/big.xml", b"x" * 2000)

    with fetcher(max_bytes=1000) as f, pytest.raises(FetchError, match="larger than 1000 bytes"):
        f.fetch(feed_server.url("/big.xml"))


def test_max_bytes_counts_the_decoded_body(feed_server: FeedServer) -> None:
    bomb = gzip.compress(b"\0" * 1_000_000)
    feed_server.route("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"})

    with fetcher(max_bytes=100_000) as f, pytest.raises(FetchError, match="larger than"):
        f.fetch(feed_server.url("/bomb.xml"))
    assert len(bomb) < 100_000


def test_endless_body_stopped_by_max_bytes(feed_server: FeedServer) -> None:
    feed_server.route("/endless.xml", b"<rss>", endless=True)

    with fetcher(max_bytes=200_000) as f, pytest.raises(FetchError, match="larger than"):
        f.fetch(feed_server.url("/endless.xml"))


def test_slow_drip_stopped_by_deadline(feed_server: FeedServer) -> None:
    feed_server.route("/slow.xml", FEED[:100], delay_per_byte=0.1)  # 10 s in all

    started = time.monotonic()
    with fetcher(deadline=1.0, timeout=5.0) as f, pytest.raises(FetchError, match="deadline"):
        f.fetch(feed_server.url("/slow.xml"))

    assert time.monotonic() - started < 1.0 + 2


def test_headers_dripped_a_byte_at_a_time_are_stopped_by_the_deadline() -> None:
    """Each byte arrives well within the read timeout; only the overall deadline stops it."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n" * 10:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    with fetcher(deadline=1.5, timeout=1.0) as f, pytest.raises(FetchError, match="deadline"):
        f.fetch(f"http://127.0.0.1:{port}/feed.xml")
    assert time.monotonic() - started < 1.5 + 1
    stop.set()
    listener.close()
    thread.join(timeout=5)


def test_silent_server_times_out(feed_server: FeedServer) -> None:
    feed_server.route("/silent.xml", FEED[:10], delay_per_byte=5.0)

    started = time.monotonic()
    with fetcher(timeout=0.3) as f, pytest.raises(FetchError, match="timed out"):
        f.fetch(feed_server.url("/silent.xml"))

    assert time.monotonic() - started < 2


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the fetch: nothing listens there

    with fetcher() as f, pytest.raises(FetchError, match="cannot connect"):
        f.fetch(f"http://127.0.0.1:{port}/feed.xml")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/feed.xml", "unsupported URL scheme 'ftp'"),
        ("example.org/feed.xml", "no scheme"),
        ("not a url", "no scheme"),
        ("http://", "invalid URL|unsupported URL"),
        ("http://[::1/feed", "invalid URL"),
    ],
)
def test_bad_url(url: str, message: str) -> None:
    with fetcher() as f, pytest.raises(FetchError, match=message):
        f.fetch(url)


def test_file_url(tmp_path: Path) -> None:
    path = tmp_path / "local feed.xml"
    path.write_bytes(FEED)

    with fetcher(allow_private_networks=False) as f:  # a file is no network
        result = f.fetch(path.as_uri())

    assert (result.status, result.body, result.url) == (200, FEED, path.as_uri())


def test_missing_file(tmp_path: Path) -> None:
    with fetcher() as f, pytest.raises(FetchError, match="cannot read file"):
        f.fetch((tmp_path / "gone.xml").as_uri())


def test_file_over_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"x" * 2000)

    with fetcher(max_bytes=1000) as f, pytest.raises(FetchError, match="larger than"):
        f.fetch(path.as_uri())


def test_shared_client_serves_a_thread_pool(feed_server: FeedServer) -> None:
    for n in range(8):
        feed_server.route(f"/feed{n}.xml", FEED + str(n).encode())

    with fetcher() as f, ThreadPoolExecutor(max_workers=4) as pool:
        bodies = list(pool.map(lambda n: f.fetch(feed_server.url(f"/feed{n}.xml")).body, range(8)))

    assert bodies == [FEED + str(n).encode() for n in range(8)]


def test_transport_is_injectable() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=FEED, headers={"ETag": '"t"'})

    with Fetcher(FetchSettings(), transport=httpx.MockTransport(answer)) as f:
        result = f.fetch("https://feeds.example.org/feed.xml")

    assert (result.body, result.etag) == (FEED, '"t"')


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
        ("::ffff:93.184.216.34", None),
        ("64:ff9b::5db8:d822", None),  # NAT64 of 93.184.216.34
        ("127.0.0.1", "a loopback address"),
        ("127.53.0.1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("100.64.0.1", "a non-public address"),  # carrier-grade NAT
        ("0.0.0.0", "an unspecified address"),
        ("0.1.2.3", "a private address"),
        ("224.0.0.1", "a multicast address"),
        ("255.255.255.255", "a reserved address"),
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%eth0", "a link-local address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("fec0::1", "a site-local address"),
        ("ff02::1", "a multicast address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("64:ff9b::7f00:1", "a loopback address"),  # NAT64 of 127.0.0.1
    ],
)
def test_non_public_addresses(address: str, kind: str | None) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) == kind


def test_private_addresses_are_refused_unless_allowed(feed_server: FeedServer) -> None:
    feed_server.route("/feed.xml", FEED)
    url = feed_server.url("/feed.xml")

    with fetcher(allow_private_networks=False) as f, pytest.raises(FetchError) as caught:
        f.fetch(url)
    assert str(caught.value) == f"{url}: refused: 127.0.0.1 is a loopback address; {ALLOW}"
    assert caught.value.status is None
    assert feed_server.hits["/feed.xml"] == 0

    with fetcher(allow_private_networks=True) as f:
        assert f.fetch(url).body == FEED


def test_a_host_name_is_judged_by_the_address_it_reached(feed_server: FeedServer) -> None:
    feed_server.route("/feed.xml", FEED)
    url = f"http://localhost:{feed_server.port}/feed.xml"

    with fetcher(allow_private_networks=False) as f, pytest.raises(FetchError) as caught:
        f.fetch(url)
    assert str(caught.value) == (
        f"{url}: refused: localhost resolves to 127.0.0.1, a loopback address; {ALLOW}"
    )
    assert feed_server.hits["/feed.xml"] == 0  # connected, but nothing was asked


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1:9/feed", "10.0.0.1 is a private address"),
        ("https://0.0.0.0:9/feed", "0.0.0.0 is an unspecified address"),
        ("http://[::1]:9/feed", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]:9/feed", "::ffff:127.0.0.1 is a loopback address"),
    ],
)
def test_an_address_in_the_url_is_refused_before_connecting(url: str, refusal: str) -> None:
    started = time.monotonic()
    with fetcher(allow_private_networks=False, timeout=5.0) as f, pytest.raises(FetchError) as c:
        f.fetch(url)
    assert str(c.value) == f"{url}: refused: {refusal}; {ALLOW}"
    assert time.monotonic() - started < 1


def trusting(server_address: str) -> Callable[[IPAddress], str | None]:
    """An address check that takes the test server's address for a public one."""

    def non_public(address: IPAddress) -> str | None:
        return None if str(address) == server_address else non_public_kind(address)

    return non_public


def test_a_redirect_to_the_metadata_address_is_refused(feed_server: FeedServer) -> None:
    metadata = "http://169.254.169.254/latest/meta-data/"
    feed_server.route("/feed.xml", redirect_to=metadata)
    feed_server.route("/ok.xml", FEED)
    url = feed_server.url("/feed.xml")
    settings = replace(LOCAL_FETCH, allow_private_networks=False, timeout=5.0)

    with Fetcher(settings, non_public=trusting("127.0.0.1")) as f:
        assert f.fetch(feed_server.url("/ok.xml")).body == FEED  # the server passes as public
        started = time.monotonic()
        with pytest.raises(FetchError) as caught:
            f.fetch(url)

    assert str(caught.value) == (
        f"{url}: refused: 169.254.169.254 is a link-local address; {ALLOW}"
    )
    assert feed_server.hits["/feed.xml"] == 1
    assert time.monotonic() - started < 1  # no connection to 169.254.169.254 was tried
