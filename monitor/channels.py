"""Notification channels: the built-in console, and anything apprise speaks.

apprise's ``notify()`` returns True, False or None and never raises; the adapter turns False and
None into ``DeliveryError`` carrying what apprise logged, so the outbox can record and retry it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import Protocol, TextIO

import apprise

from monitor.config import ChannelConfig
from monitor.errors import ConfigError, DeliveryError, Problem
from monitor.messages import (
    chat_safe,
    render_html,
    render_slack,
    render_text,
    slack_subject,
    subject,
)
from monitor.models import AlertMessage, Digest, Message

log = logging.getLogger(__name__)


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> None:
        """Deliver ``message`` (one alert, or a digest) or raise DeliveryError."""


class ConsoleChannel:
    """Prints alerts to standard output (or the stream given)."""

    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        if isinstance(message, Digest):
            for alert in message.alerts:
                self.send(alert)
            return
        stream = self._stream or sys.stdout
        rule = "=" * 78
        with self._lock:
            try:
                stream.write(
                    f"\n{rule}\nALERT {subject(message)}\n{render_text(message)}\n{rule}\n"
                )
                stream.flush()
            except (OSError, ValueError) as exc:
                raise DeliveryError(f"cannot write to the console: {exc}") from exc


class AppriseChannel:
    """One apprise URL; the message is rendered for the kind of service it points at."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self._apprise = apprise.Apprise()
        with apprise.LogCapture(level=logging.ERROR):  # type: ignore[no-untyped-call]
            understood = self._apprise.add(url)  # its complaint is ours to report
        if not understood:
            raise ValueError("apprise does not understand this URL (see https://appriseit.com/)")
        self.plugin = self._apprise[0]
        self.service = str(getattr(self.plugin, "service_name", "") or "")
        self._schema = url.split(":", 1)[0].lower()

    def send(self, message: Message) -> None:
        if isinstance(message, Digest):
            title, body, body_format = self._render(message.alerts[0])
            for alert in message.alerts[1:]:
                body += "\n\n" + self._render(alert)[1]
            title = f"Digest ({message.reason}): {len(message.alerts)} alerts"
        else:
            title, body, body_format = self._render(message)
        with apprise.LogCapture(level=logging.DEBUG) as captured:  # type: ignore[no-untyped-call]
            ok = self._apprise.notify(body=body, title=title, body_format=body_format)
        if not ok:
            lines = [
                line.split(" - ", 2)[-1]
                for line in str(captured.getvalue()).splitlines()
                if " - WARNING - " in line or " - ERROR - " in line or "Exception" in line
            ]
            detail = "; ".join(lines)[-500:] or "no detail given"
            raise DeliveryError(f"{self.service or self._schema} refused the message: {detail}")

    def _render(self, message: AlertMessage) -> tuple[str, str, apprise.NotifyFormat]:
        if self._schema == "slack":
            return slack_subject(message), render_slack(message), apprise.NotifyFormat.MARKDOWN
        if self._schema in ("mailto", "mailtos"):
            return subject(message), render_html(message), apprise.NotifyFormat.HTML
        safe = chat_safe
        return subject(message, safe), render_text(message, safe), apprise.NotifyFormat.TEXT


def build_channels(configs: Sequence[ChannelConfig], origin: str) -> dict[str, Channel]:
    """A channel per config entry; an apprise URL apprise cannot read is a ConfigError."""
    channels: dict[str, Channel] = {}
    problems = []
    for index, config in enumerate(configs):
        if config.kind == "console":
            channels[config.name] = ConsoleChannel(config.name)
            continue
        try:
            channels[config.name] = AppriseChannel(config.name, config.url or "")
        except ValueError as exc:
            problems.append(Problem(f"{origin}: channels[{index}] ({config.name}).url", str(exc)))
    if problems:
        raise ConfigError(problems)
    return channels
