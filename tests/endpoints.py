"""Real local endpoints that stand in for the services alerts go to: an HTTP endpoint that
answers like Slack's incoming webhook, and an SMTP server (aiosmtpd) that keeps what it
receives."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import socket
import threading
import time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebhookEndpoint:
    """Records every POST; answers 200 "ok" like Slack, or ``fail_status`` while failing (with
    a Retry-After header when ``retry_after`` is set, as Slack's 429 has)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.fail_status: int | None = None
        self.retry_after: str | None = None  # sent as Retry-After with a failing status (429)
        self.delay = 0.0  # seconds to wait before answering, like a slow service
        self.refuse_containing: bytes | None = None  # answer 400 to bodies containing this
        self.in_flight = 0  # requests being answered now
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with endpoint._lock:
                    endpoint.in_flight += 1
                try:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self._answer()  # the sender may have died waiting
                finally:
                    with endpoint._lock:
                        endpoint.in_flight -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the sender died while sending
                time.sleep(endpoint.delay)
                status = endpoint.fail_status
                if (
                    status is None
                    and endpoint.refuse_containing
                    and endpoint.refuse_containing in body
                ):
                    status = 400  # a message this service will never take
                if status is None:
                    with endpoint._lock:
                        endpoint.received.append(json.loads(body or b"{}"))
                        endpoint.paths.append(self.path)
                self.send_response(status or 200)
                self.send_header("Content-Type", "text/plain")
                if status is not None and endpoint.retry_after is not None:
                    self.send_header("Retry-After", endpoint.retry_after)
                self.end_headers()
                self.wfile.write(b"ok" if status is None else b"service unavailable")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on 127.0.0.1 keeping every message it receives."""

    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def messages(self) -> list[EmailMessage]:
        return self.inbox.messages

    def mailto(self, to: str = "analyst@example.org") -> str:
        """An apprise URL that sends to this server without TLS."""
        return f"mailto://127.0.0.1:{self.port}?mode=insecure&from=monitor@example.org&to={to}"

    def close(self) -> None:
        self.controller.stop()
