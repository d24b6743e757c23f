"""The network edge: get a source's bytes over HTTP(S) or from a local file.

``Fetcher`` owns one shared ``httpx.Client`` (thread-safe, so a small pool of workers can share
it). A fetch is a conditional GET that streams the body, so the size cap holds even against a
server that never stops. httpx's timeouts are per read, so a server that drips one byte at a
time (headers or body) would never time out: a watchdog shuts the fetch's sockets when its
overall deadline passes. Connections are not kept alive between fetches (feeds are polled minutes
apart), so every socket a fetch uses is its own. Unless private networks are allowed, a fetch
connects only to public addresses: an address written in the URL is judged before connecting, a
host name by the address its connection reached (so a name that resolves, or is rebound, to
127.0.0.1 gains nothing), and redirects go through the same check. Every failure becomes a
``FetchError`` naming the URL and the cause; HTTP errors carry the status.

This module knows nothing about feeds or the database.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from monitor import __version__
from monitor.errors import FetchError

log = logging.getLogger(__name__)

#: The media types a feed may be served as, most specific first.
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)

# What an httpx error means to someone reading a source's last error, most specific first.
_CAUSES: tuple[tuple[type[Exception], str], ...] = (
    (httpx.TimeoutException, "timed out"),
    (httpx.ConnectError, "cannot connect"),
    (httpx.DecodingError, "cannot decode the body"),
    (httpx.UnsupportedProtocol, "unsupported URL"),
    (httpx.InvalidURL, "invalid URL"),
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Says why an address is not public ("a loopback address"), or None when it is.
AddressCheck = Callable[[IPAddress], str | None]
#: httpcore's trace hook: an event name and its details.
Trace = Callable[[str, Mapping[str, object]], None]

# What makes an address not public, in the words of a refusal, most specific first.
_NON_PUBLIC: tuple[tuple[str, str], ...] = (
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_site_local", "a site-local"),  # IPv6 only
    ("is_reserved", "a reserved"),
    ("is_private", "a private"),
)
# NAT64's well-known prefix: on an IPv6-only network every IPv4 site is reached through it.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class FetchSettings:
    """How patient and how generous a fetch is. Every default lives here."""

    timeout: float = 10.0  # seconds to connect, and to wait for each read
    deadline: float = 30.0  # seconds for a whole fetch, body included
    max_bytes: int = 10 * 1024 * 1024  # largest decoded body accepted
    max_redirects: int = 5
    allow_private_networks: bool = False  # connect to loopback, private and link-local addresses
    user_agent: str = f"monitor/{__version__} (+https://github.com/monitor-news/monitor)"


@dataclass(frozen=True)
class FetchResult:
    """What one fetch brought back."""

    url: str  # the final URL, after redirects
    status: int
    body: bytes  # empty on 304 Not Modified
    headers: Mapping[str, str]  # lower-case names
    etag: str | None = None
    last_modified: str | None = None
    elapsed: float = 0.0  # seconds

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher:
    """Fetches sources with one shared HTTP client; use as a context manager or call close()."""

    def __init__(
        self,
        settings: FetchSettings,
        transport: httpx.BaseTransport | None = None,
        non_public: AddressCheck | None = None,
    ) -> None:
        """``non_public`` judges the addresses connected to (default ``non_public_kind``);
        tests pass one that trusts their own server. It is ignored when
        ``settings.allow_private_networks`` is set."""
        self.settings = settings
        self._non_public = non_public or non_public_kind
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=True,
            max_redirects=settings.max_redirects,
            timeout=httpx.Timeout(settings.timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": settings.user_agent, "Accept": FEED_ACCEPT},
        )

    def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """Get ``url``; with validators from the last fetch the answer may be 304 Not Modified."""
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError as exc:
            raise FetchError(f"{url}: invalid URL ({exc})") from exc
        if scheme in ("http", "https"):
            return self._fetch_http(url, etag, last_modified)
        if scheme == "file":
            return self._fetch_file(url)
        if not scheme:
            raise FetchError(f"{url}: invalid URL (no scheme)")
        raise FetchError(f"{url}: unsupported URL scheme {scheme!r}")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fetch_http(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        started = time.monotonic()
        headers = _validators(etag, last_modified)
        with _Watchdog(self.settings.deadline) as watchdog:
            try:
                with self._client.stream(
                    "GET", url, headers=headers, extensions={"trace": self._trace(url, watchdog)}
                ) as resp:
                    _raise_for_status(url, resp)
                    body = b"" if resp.status_code == 304 else self._read_body(url, resp, started)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                if watchdog.expired:
                    raise FetchError(f"{url}: {self._deadline_passed()}") from exc
                raise FetchError(f"{url}: {self._cause(exc)}") from exc
        result = _result(resp, body, started, etag, last_modified)
        log.debug(
            "fetched url=%s status=%s bytes=%s elapsed=%.3f",
            url,
            result.status,
            len(body),
            result.elapsed,
        )
        return result

    def _trace(self, url: str, watchdog: _Watchdog) -> Trace:
        if self.settings.allow_private_networks:
            return watchdog.trace
        guard = _AddressGuard(url, self._non_public)

        def trace(event: str, info: Mapping[str, object]) -> None:
            guard.trace(event, info)
            watchdog.trace(event, info)

        return trace

    def _deadline_passed(self) -> str:
        return f"deadline of {self.settings.deadline:g}s passed before the fetch finished"

    def _cause(self, exc: Exception) -> str:
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.TooManyRedirects):
            return f"more than {self.settings.max_redirects} redirects"
        for kind, cause in _CAUSES:
            if isinstance(exc, kind):
                return f"{cause} ({detail})"
        return detail

    def _read_body(self, url: str, response: httpx.Response, started: float) -> bytes:
        limit = self.settings.max_bytes
        declared = response.headers.get("content-length", "")
        encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
        if declared.isdigit() and int(declared) > limit and not encoded:
            raise FetchError(f"{url}: body of {declared} bytes is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        for chunk in _timed(response.iter_bytes(), started + self.settings.deadline, url):
            size += len(chunk)
            if size > limit:
                raise FetchError(f"{url}: body is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _fetch_file(self, url: str) -> FetchResult:
        started = time.monotonic()
        path = _file_path(url)
        limit = self.settings.max_bytes
        try:
            with path.open("rb") as stream:
                body = stream.read(limit + 1)
        except OSError as exc:
            raise FetchError(f"{url}: cannot read file ({exc.strerror or exc})") from exc
        if len(body) > limit:
            raise FetchError(f"{url}: file is larger than {limit} bytes")
        elapsed = time.monotonic() - started
        return FetchResult(url, 200, body, MappingProxyType({}), elapsed=elapsed)


class _Watchdog:
    """Shuts every socket of one fetch once its deadline has passed."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def trace(self, event: str, info: Mapping[str, object]) -> None:
        """httpcore's trace hook: note each new connection's socket."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = getattr(stream, "get_extra_info", lambda _: None)("socket")
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                if self.expired:
                    _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


class _AddressGuard:
    """Refuses every connection of one fetch, redirects included, to an address not public."""

    def __init__(self, url: str, non_public: AddressCheck) -> None:
        self._url = url
        self._non_public = non_public
        self._host = ""

    def trace(self, event: str, info: Mapping[str, object]) -> None:
        """httpcore's trace hook: judge each connection's address."""
        if event == "connection.connect_tcp.started":
            self._host = str(info.get("host", ""))
            self._check_written_address()
        elif event == "connection.connect_tcp.complete":
            self._check_connected_address(info.get("return_value"))

    def _check_written_address(self) -> None:
        """An address written in the URL is refused before any connection is attempted."""
        try:
            address = ipaddress.ip_address(self._host)
        except ValueError:
            return  # a host name: judged by the address its connection reaches
        kind = self._non_public(address)
        if kind is not None:
            raise self._refused(f"{self._host} is {kind}")

    def _check_connected_address(self, stream: object) -> None:
        """The address actually connected to, so a name resolved twice cannot be rebound."""
        why = self._judge_connected_address(stream)
        if why is None:
            return
        close = getattr(stream, "close", None)
        if callable(close):
            with contextlib.suppress(OSError):
                close()  # nothing has been sent on it
        raise self._refused(why)

    def _judge_connected_address(self, stream: object) -> str | None:
        address = _peer_address(stream)
        if address is None:
            return f"cannot tell which address {self._host} reached"
        kind = self._non_public(address)
        return None if kind is None else f"{self._host} resolves to {address}, {kind}"

    def _refused(self, why: str) -> FetchError:
        allow = "set [fetch] allow_private_networks = true to allow it"
        return FetchError(f"{self._url}: refused: {why}; {allow}")


def non_public_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not on the public internet ("a loopback address"), or None if it is.

    An IPv4 address carried in IPv6 (``::ffff:127.0.0.1``, NAT64's ``64:ff9b::7f00:1``) is
    judged as that IPv4 address.
    """
    address = _carried_ipv4(address)
    for attribute, kind in _NON_PUBLIC:
        if getattr(address, attribute, False):
            return f"{kind} address"
    return None if address.is_global else "a non-public address"  # e.g. 100.64/10, shared NAT


def _carried_ipv4(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address


def _peer_address(stream: object) -> IPAddress | None:
    try:
        peer = stream.get_extra_info("server_addr")  # type: ignore[attr-defined]
        return ipaddress.ip_address(peer[0])
    except (AttributeError, OSError, TypeError, IndexError, ValueError):
        return None


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _validators(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _raise_for_status(url: str, response: httpx.Response) -> None:
    status = response.status_code
    if status >= 400:
        raise FetchError(
            f"{url}: HTTP {status} {response.reason_phrase or 'error'}",
            status=status,
            headers={name.lower(): value for name, value in response.headers.items()},
        )


def _timed(chunks: Iterator[bytes], deadline: float, url: str) -> Iterator[bytes]:
    """Pass chunks through until the deadline passes (httpx's own timeouts are per read)."""
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise FetchError(f"{url}: deadline passed while reading the body")
        yield chunk


def _result(
    response: httpx.Response,
    body: bytes,
    started: float,
    etag: str | None,
    last_modified: str | None,
) -> FetchResult:
    headers = MappingProxyType(dict(response.headers.items()))
    not_modified = response.status_code == 304
    # A 304 need not repeat the validators; the ones sent are still the current ones.
    return FetchResult(
        url=str(response.url),
        status=response.status_code,
        body=body,
        headers=headers,
        etag=headers.get("etag") or (etag if not_modified else None),
        last_modified=headers.get("last-modified") or (last_modified if not_modified else None),
        elapsed=time.monotonic() - started,
    )


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"{url}: file URL names a remote host {parts.netloc!r}")
    if not parts.path:
        raise FetchError(f"{url}: invalid URL (no file path)")
    return Path(url2pathname(parts.path))  # url2pathname also decodes %XX
