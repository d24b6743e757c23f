"""Notification channels: the built-in console, Slack's incoming webhooks, email, and anything
else apprise speaks.

Each channel renders a message with its templates (``monitor.messages``): a Slack channel its
Slack ones, email an HTML and a plain-text part, the console and other services plain text.
apprise's ``notify()`` returns True, False or None and never raises: the adapter turns False and
None into ``DeliveryError`` carrying what apprise logged, so the outbox can record and retry it.
Email goes through our own SMTP code, to the server a ``mailto://`` URL names as apprise reads
it: apprise would derive the plain-text part from the HTML instead of sending ours.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any, Protocol, TextIO

import apprise
import httpx

from monitor.config import ChannelConfig, Templates
from monitor.errors import ConfigError, DeliveryError, Problem
from monitor.messages import (
    MessageTemplate,
    Target,
    TemplateProblem,
    chat_safe,
    load_template,
    slack_subject,
    subject,
)
from monitor.models import Digest, Message
from monitor.schedule import retry_after

log = logging.getLogger(__name__)

SEND_TIMEOUT = 15.0  # seconds to connect to a service, and for each read
SLACK_SECTION_CHARS = 3000  # Slack's limit on the text of one block
SLACK_BLOCKS = 50  # Slack's limit on the blocks of one message
EMAIL_MODES = {"insecure": 25, "ssl": 465, "starttls": 587}  # default port of each


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> None:
        """Deliver ``message`` (one alert, or a digest as one message) or raise DeliveryError."""


class Renderer:
    """A channel's templates for one target, alert and digest."""

    def __init__(self, alert: MessageTemplate, digest: MessageTemplate) -> None:
        self.alert = alert
        self.digest = digest

    def __call__(self, message: Message) -> str:
        return (self.digest if isinstance(message, Digest) else self.alert).render(message)

    @classmethod
    def load(cls, key: str, target: Target, templates: Templates | None = None) -> Renderer:
        """The ``key`` templates (``text``, ``html`` or ``slack``, and its ``_digest``) for
        ``target``: the config's, else the built-in ones. Raises TemplateProblem."""
        templates = templates or Templates()
        digest = f"{key}_digest"
        return cls(
            load_template(key, target, getattr(templates, key)),
            load_template(digest, target, getattr(templates, digest)),
        )


class ConsoleChannel:
    """Prints alerts to standard output (or the stream given)."""

    def __init__(
        self, name: str, stream: TextIO | None = None, render: Renderer | None = None
    ) -> None:
        self.name = name
        self._stream = stream
        self._render = render or Renderer.load("text", "text")
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        stream = self._stream or sys.stdout
        rule = "=" * 78
        heading = "DIGEST" if isinstance(message, Digest) else "ALERT"
        body = self._render(message)
        with self._lock:
            try:
                stream.write(f"\n{rule}\n{heading} {subject(message)}\n{body}{rule}\n")
                stream.flush()
            except (OSError, ValueError) as exc:
                raise DeliveryError(f"cannot write to the console: {exc}") from exc


class SlackChannel:
    """A Slack incoming webhook (``https://hooks.slack.com/services/…``), posted to directly:
    a mrkdwn section per part of the message, the subject as the notification's text. Slack's
    429 becomes a DeliveryError with ``retry_after`` from its Retry-After header."""

    def __init__(
        self,
        name: str,
        url: str,
        render: Renderer | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._url = url
        self._render = render or Renderer.load("slack", "slack")
        self._transport = transport

    def send(self, message: Message) -> None:
        payload = {"text": slack_subject(message), "blocks": slack_blocks(self._render(message))}
        try:
            with httpx.Client(transport=self._transport, timeout=SEND_TIMEOUT) as client:
                response = client.post(self._url, json=payload)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"slack: cannot reach the webhook: {exc}") from exc
        if response.status_code == 429:
            wait = _retry_after(response.headers)
            hint = f"; retry in {int(wait.total_seconds())}s" if wait else ""
            raise DeliveryError(f"slack is rate limiting (HTTP 429){hint}", retry_after=wait)
        if not response.is_success:
            excerpt = " ".join(response.text.split())[:200] or "no body"
            status = response.status_code
            raise DeliveryError(f"slack refused the message: HTTP {status}: {excerpt}")


def _retry_after(headers: Mapping[str, str]) -> timedelta | None:
    now = datetime.now(UTC)
    when = retry_after({"retry-after": headers.get("retry-after", "")}, now)
    return max(when - now, timedelta(0)) if when else None


def slack_blocks(text: str) -> list[dict[str, Any]]:
    """mrkdwn sections of at most Slack's length, cut between paragraphs where it can be."""
    sections: list[str] = []
    for paragraph in text.strip().split("\n\n"):
        while len(paragraph) > SLACK_SECTION_CHARS:
            cut = paragraph.rfind("\n", 0, SLACK_SECTION_CHARS)
            cut = cut if cut > 0 else SLACK_SECTION_CHARS
            sections.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip("\n")
        if sections and len(sections[-1]) + len(paragraph) + 2 <= SLACK_SECTION_CHARS:
            sections[-1] += "\n\n" + paragraph
        else:
            sections.append(paragraph)
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": s}}
        for s in sections[:SLACK_BLOCKS]
        if s.strip()
    ]


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send email, as apprise reads a ``mailto://`` URL."""

    host: str
    port: int
    mode: str  # insecure, ssl or starttls
    user: str | None
    password: str | None
    verify_certificate: bool
    sender: str  # the From header
    envelope_from: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    reply_to: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]  # the URL's own (+Name=value)

    @classmethod
    def from_apprise(cls, plugin: Any) -> SmtpSettings:
        mode = str(plugin.secure_mode)
        name, address = plugin.from_addr
        return cls(
            host=str(plugin.smtp_host),
            port=int(plugin.port or EMAIL_MODES.get(mode, 25)),
            mode=mode,
            user=plugin.user or None,
            password=plugin.password or None,
            verify_certificate=bool(plugin.verify_certificate),
            sender=formataddr((name or "", address)),
            envelope_from=address,
            to=tuple(formataddr((n or "", a)) for n, a in plugin.targets),
            cc=tuple(sorted(plugin.cc)),
            bcc=tuple(sorted(plugin.bcc)),
            reply_to=tuple(sorted(plugin.reply_to)),
            headers=tuple(plugin.headers.items()),
        )


class EmailChannel:
    """Email with an HTML part and a plain-text part, each from its own template."""

    def __init__(self, name: str, settings: SmtpSettings, html: Renderer, text: Renderer) -> None:
        self.name = name
        self.settings = settings
        self._html = html
        self._text = text

    def send(self, message: Message) -> None:
        self._submit(self.compose(message))

    def compose(self, message: Message) -> EmailMessage:
        s = self.settings
        mail = EmailMessage()
        mail["Subject"] = subject(message)  # one line: nothing from a feed becomes a header
        mail["From"] = s.sender
        mail["To"] = ", ".join(s.to)
        if s.cc:
            mail["Cc"] = ", ".join(s.cc)
        if s.reply_to:
            mail["Reply-To"] = ", ".join(s.reply_to)
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain=s.host or None)
        for key, value in s.headers:
            mail[key] = value
        mail.set_content(self._text(message))
        mail.add_alternative(self._html(message), subtype="html")
        return mail

    def _submit(self, mail: EmailMessage) -> None:
        s = self.settings
        recipients = [*s.to, *s.cc, *s.bcc]
        context = ssl.create_default_context()
        if not s.verify_certificate:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            smtp = (
                smtplib.SMTP_SSL(s.host, s.port, timeout=SEND_TIMEOUT, context=context)
                if s.mode == "ssl"
                else smtplib.SMTP(s.host, s.port, timeout=SEND_TIMEOUT)
            )
            with smtp:
                if s.mode == "starttls":
                    smtp.starttls(context=context)
                if s.user and s.password:
                    smtp.login(s.user, s.password)
                refused = smtp.send_message(mail, s.envelope_from, recipients)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email via {s.host}:{s.port} failed: {exc}") from exc
        if refused:
            who = ", ".join(f"{a} ({code})" for a, (code, _) in refused.items())
            raise DeliveryError(f"email via {s.host}:{s.port}: recipients refused: {who}")


class AppriseChannel:
    """One apprise URL; the message is rendered for the kind of service it points at."""

    def __init__(self, name: str, url: str, templates: Templates | None = None) -> None:
        self.name = name
        self._apprise = _apprise(url)
        self.plugin = self._apprise[0]
        self.service = str(getattr(self.plugin, "service_name", "") or "")
        self._schema = url.split(":", 1)[0].lower()
        slack = self._schema == "slack"
        self._render = Renderer.load(
            "slack" if slack else "text", "slack" if slack else "chat", templates
        )

    def send(self, message: Message) -> None:
        title, body_format = (
            (slack_subject(message), apprise.NotifyFormat.MARKDOWN)
            if self._schema == "slack"
            else (subject(message, chat_safe), apprise.NotifyFormat.TEXT)
        )
        body = self._render(message)
        if self._schema == "slack":
            # apprise reads CommonMark and writes Slack's mrkdwn: bold is ** there. Feed text
            # holds no * (it became a look-alike), so every * here is the template's markup.
            body = body.replace("*", "**")
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


def _apprise(url: str) -> apprise.Apprise:
    notifier = apprise.Apprise()
    with apprise.LogCapture(level=logging.ERROR):  # type: ignore[no-untyped-call]
        understood = notifier.add(url)  # its complaint is ours to report
    if not understood:
        raise ValueError("apprise does not understand this URL (see https://appriseit.com/)")
    return notifier


def build_channel(config: ChannelConfig) -> Channel:
    """The channel ``config`` describes. Raises ValueError for a URL apprise cannot read and
    TemplateProblem for a template that cannot be read or compiled."""
    templates = config.templates
    if config.kind == "console":
        return ConsoleChannel(config.name, render=Renderer.load("text", "text", templates))
    url = config.url or ""
    if config.kind == "slack":
        return SlackChannel(config.name, url, Renderer.load("slack", "slack", templates))
    if url.split(":", 1)[0].lower() in ("mailto", "mailtos"):
        settings = SmtpSettings.from_apprise(_apprise(url)[0])
        html = Renderer.load("html", "html", templates)
        return EmailChannel(config.name, settings, html, Renderer.load("text", "text", templates))
    return AppriseChannel(config.name, url, templates)


def build_channels(configs: Sequence[ChannelConfig], origin: str) -> dict[str, Channel]:
    """A channel per config entry; an apprise URL apprise cannot read, or a template that
    cannot be read or compiled, is a ConfigError."""
    channels: dict[str, Channel] = {}
    problems = []
    for index, config in enumerate(configs):
        where = f"{origin}: channels[{index}] ({config.name})"
        try:
            channels[config.name] = build_channel(config)
        except TemplateProblem as exc:
            problems.append(Problem(f"{where}.templates.{exc.key}", str(exc)))
        except ValueError as exc:
            problems.append(Problem(f"{where}.url", str(exc)))
    if problems:
        raise ConfigError(problems)
    return channels
