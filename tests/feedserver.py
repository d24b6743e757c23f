"""A real HTTP server on 127.0.0.1 that serves feeds to tests.

Routes are registered at run time. The server answers conditional GETs (ETag, Last-Modified),
counts requests per path and records their headers, and can misbehave on purpose: answer late,
drip a body slowly, redirect, or stream for ever.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

_CHUNK = b"<!-- endless -->\n" * 64


@dataclass(frozen=True)
class Route:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_per_byte: float = 0.0  # seconds to wait before each byte of the body
    delay: float = 0.0  # seconds to wait before answering at all
    redirect_to: str | None = None  # a path on this server or a full URL
    endless: bool = False  # stream the body again and again until the client hangs up


class FeedServer:
    """Start with ``start()`` or ``with FeedServer() as server:``; stop with ``stop()``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.in_flight = 0  # requests being answered now
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(
        self,
        path: str,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay_per_byte: float = 0.0,
        redirect_to: str | None = None,
        endless: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.routes[path] = Route(
            body, status, dict(headers or {}), delay_per_byte, delay, redirect_to, endless
        )

    def record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.hits[path] += 1
            self.requests.append((path, headers))

    def count_in_flight(self, change: int) -> None:
        with self._lock:
            self.in_flight += change

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, feeds: FeedServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.feeds = feeds


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, and a body without a length ends when we close.
    protocol_version = "HTTP/1.0"
    server: _HTTPServer

    def do_GET(self) -> None:
        feeds = self.server.feeds
        feeds.record(self.path, {k.lower(): v for k, v in self.headers.items()})
        route = feeds.routes.get(self.path)
        feeds.count_in_flight(+1)
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                if route is not None and route.delay and feeds.stopping.wait(route.delay):
                    return
                self._answer(route)
        finally:
            feeds.count_in_flight(-1)

    def _answer(self, route: Route | None) -> None:
        if route is None:
            self._send(404, {}, b"not found")
        elif route.redirect_to is not None:
            self._send(302, {"Location": route.redirect_to}, b"")
        elif _not_modified(
            route, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        ):
            self._send(304, _validators(route), b"")
        elif route.endless:
            self._send_endless(route)
        else:
            self._send(route.status, route.headers, route.body, route.delay_per_byte)

    def _send(self, status: int, headers: dict[str, str], body: bytes, delay: float = 0.0) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if delay:
            self._drip(body, delay)
        else:
            self.wfile.write(body)

    def _drip(self, body: bytes, delay: float) -> None:
        for index in range(len(body)):
            if self.server.feeds.stopping.wait(delay):
                return
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()

    def _send_endless(self, route: Route) -> None:
        self.send_response(route.status)
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(route.body)
        while not self.server.feeds.stopping.is_set():
            self.wfile.write(_CHUNK)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet


def _validators(route: Route) -> dict[str, str]:
    wanted = ("etag", "last-modified")
    return {k: v for k, v in route.headers.items() if k.lower() in wanted}


def _not_modified(route: Route, if_none_match: str | None, if_modified_since: str | None) -> bool:
    validators = {k.lower(): v for k, v in _validators(route).items()}
    if if_none_match is not None and "etag" in validators:
        return if_none_match == validators["etag"]
    return if_modified_since is not None and if_modified_since == validators.get("last-modified")
