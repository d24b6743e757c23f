"""Alert messages: what an alert says (built once, stored with the alert), and how each kind of
channel shows it, through Jinja2 templates (built-in ones in ``monitor/templates/``, or the
user's). Every ``{{ … }}`` of a template is escaped for its target by the environment itself, so
that no article can ping a Slack channel, inject an email header or smuggle HTML into an email,
whatever the template says; templates run sandboxed, and an undefined variable is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2
import markupsafe
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from monitor.errors import DeliveryError
from monitor.models import AlertMessage, Article, Digest, FieldName, Mention, Message

SNIPPET_CHARS = 280  # length of the snippet around the first mention

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_LINE_BREAKS = re.compile(r"[\r\n]+")


def build_message(
    rule: str,
    article: Article,
    mentions: Sequence[Mention],
    evidence: Sequence[Mention],
    names: dict[tuple[str, str], str],
) -> AlertMessage:
    """The message for one rule hit: article facts, who and what matched, a marked snippet.

    ``names`` maps (kind, id) to display names; ``evidence`` is what made the rule true.
    """
    field, snippet, offset = _snippet(article, evidence or mentions)
    marks = sorted(
        (m.start - offset, m.end - offset)
        for m in {*mentions, *evidence}
        if m.field == field and m.start >= offset and m.end <= offset + len(snippet)
    )
    return AlertMessage(
        rule=rule,
        title=article.title,
        source=article.source,
        url=article.url,
        published=article.published,
        actors=_names(mentions, "actor", names),
        topics=_names(mentions, "topic", names),
        snippet=snippet,
        highlights=_non_overlapping(marks),
    )


def _names(
    mentions: Sequence[Mention], kind: str, names: dict[tuple[str, str], str]
) -> tuple[str, ...]:
    ids = dict.fromkeys(m.id for m in mentions if m.kind == kind)
    return tuple(names.get((kind, i), i) for i in ids)


def _snippet(article: Article, mentions: Sequence[Mention]) -> tuple[str, str, int]:
    """(field, snippet, offset of the snippet in the field): around the first mention in the
    body, else the opening of the body."""
    body_fields: tuple[FieldName, ...] = ("text", "summary")
    for field in body_fields:
        text = article.field_text(field)
        first = min((m.start for m in mentions if m.field == field), default=None)
        if first is not None:
            return field, *_window(text, first)
    opening: FieldName = "text" if article.text else "summary"
    return opening, *_window(article.field_text(opening), 0)


def _window(text: str, around: int) -> tuple[str, int]:
    start = max(0, around - SNIPPET_CHARS // 3)
    if start > 0:
        space = text.rfind(" ", 0, start + 1)
        start = space + 1 if space >= 0 and start - space < 40 else start
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    return text[start:end], start


def _non_overlapping(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return tuple(out)


# --- storage -----------------------------------------------------------------------------


def message_to_json(message: AlertMessage) -> dict[str, Any]:
    return {
        "rule": message.rule,
        "title": message.title,
        "source": message.source,
        "url": message.url,
        "published": message.published.isoformat() if message.published else None,
        "actors": list(message.actors),
        "topics": list(message.topics),
        "snippet": message.snippet,
        "highlights": [list(h) for h in message.highlights],
        "story_id": message.story_id,
        "story_title": message.story_title,
        "outlets": list(message.outlets),
        "articles": message.articles,
        "kind": message.kind,
        "changes": list(message.changes),
        "follows": message.follows,
        "critical": message.critical,
    }


def message_from_json(data: dict[str, Any]) -> AlertMessage:
    """The stored message; keys missing from rows written before they existed take defaults."""
    published = data.get("published")
    return AlertMessage(
        rule=data["rule"],
        title=data["title"],
        source=data["source"],
        url=data.get("url"),
        published=datetime.fromisoformat(published) if published else None,
        actors=tuple(data.get("actors", ())),
        topics=tuple(data.get("topics", ())),
        snippet=data.get("snippet", ""),
        highlights=tuple((int(a), int(b)) for a, b in data.get("highlights", ())),
        story_id=data.get("story_id"),
        story_title=data.get("story_title"),
        outlets=tuple(data.get("outlets", ())),
        articles=int(data.get("articles", 1)),
        kind="update" if data.get("kind") == "update" else "new",
        changes=tuple(data.get("changes", ())),
        follows=data.get("follows"),
        critical=bool(data.get("critical", False)),
    )


# --- escaping ----------------------------------------------------------------------------


def one_line(text: str) -> str:
    """A header-safe single line: no CR/LF or control characters (no header injection)."""
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", text)).strip()


def _plain(text: str) -> str:
    return _CONTROL.sub("", text)


# Chat services (Discord, Teams, Mattermost, Telegram …) turn "@everyone", "<@id>" and
# "<!here>" in a message into pings: in feed text these characters become look-alikes.
_CHAT_LOOKALIKES = str.maketrans({"@": "＠", "<": "‹", ">": "›"})


def chat_safe(text: str) -> str:
    """Feed text that no chat service will read as a mention."""
    return _plain(text).translate(_CHAT_LOOKALIKES)


def _url_safe(url: str) -> str:
    """A link with the characters of a mention percent-encoded (it still leads there)."""
    return url.replace("@", "%40").replace("<", "%3C").replace(">", "%3E")


# Feed text is shown, never interpreted: these characters could open a mention, a link or
# markup in Slack, so they are replaced by look-alikes.
_SLACK_LOOKALIKES = str.maketrans(
    {
        "<": "‹",
        ">": "›",
        "|": "│",
        "!": "ǃ",
        "@": "＠",
        "&": "＆",
        "*": "∗",
        "_": "＿",
        "~": "∼",
        "`": "ˋ",
        "[": "［",
        "]": "］",
        "#": "＃",
    }
)


def slack_safe(text: str) -> str:
    """Feed text that Slack shows as it is: no mention, link or markup."""
    return _CONTROL.sub("", text).translate(_SLACK_LOOKALIKES)


def _web_link(url: str | None) -> str | None:
    return url if url and url.lower().startswith(("http://", "https://")) else None


def _slack_url(url: str) -> str:
    return _url_safe(url).replace("|", "%7C").replace(" ", "%20")


def subject(message: Message, escape: Callable[[str], str] | None = None) -> str:
    """One line naming the message: an email's subject, a notification's title."""
    if isinstance(message, Digest):
        return one_line(digest_heading(message))[:200]
    title = escape(message.title) if escape else message.title
    update = "update: " if message.kind == "update" else ""
    return one_line(f"[{message.rule}] {update}{title}")[:200]


def slack_subject(message: Message) -> str:
    return subject(message, slack_safe)


def digest_heading(digest: Digest) -> str:
    alerts, stories = len(digest.alerts), len(digest.stories)
    what = f"{alerts} alert{'' if alerts == 1 else 's'} about {stories} stor" + (
        "y" if stories == 1 else "ies"
    )
    since = f" since {digest.since.strftime('%Y-%m-%d %H:%M UTC')}" if digest.since else ""
    if digest.reason == "quiet hours":
        return f"While you were away: {what}{since}"
    return f"Digest: {what}{since}"


# --- templates ---------------------------------------------------------------------------

#: What a template's output is escaped for: the console (as it is), chat services (no
#: mentions), Slack mrkdwn, HTML.
Target = Literal["text", "chat", "slack", "html"]

#: The built-in template of each key of a channel's ``templates`` table.
BUILT_IN = {
    "text": "alert.txt.j2",
    "html": "alert.html.j2",
    "slack": "alert.slack.j2",
    "text_digest": "digest.txt.j2",
    "html_digest": "digest.html.j2",
    "slack_digest": "digest.slack.j2",
}
_BUILT_IN_DIR = resources.files("monitor") / "templates"


class Trusted(str):
    """A string monitor has already made safe for its target (a link): shown as it is."""

    __slots__ = ()


def _escaper(target: Target) -> Callable[[str], str]:
    return {"text": _plain, "chat": chat_safe, "slack": slack_safe}[target]


def _finalize(target: Target) -> Callable[[object], object]:
    """What every ``{{ … }}`` goes through: escaped for the target, so that no template can
    forget to escape what came from a feed."""
    if target == "html":
        # Markup, so that ``{% autoescape false %}`` cannot turn the escaping off either.
        return lambda value: "" if value is None else markupsafe.escape(value)
    escape = _escaper(target)
    return lambda value: (
        "" if value is None else value if type(value) is Trusted else escape(str(value))
    )


def _environment(target: Target) -> SandboxedEnvironment:
    environment = SandboxedEnvironment(
        undefined=StrictUndefined,
        finalize=_finalize(target),
        autoescape=target == "html",
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.pop("safe", None)  # nothing from a feed is trusted
    return environment


@dataclass(frozen=True)
class MessageTemplate:
    """One compiled template and the file it came from (named in errors)."""

    name: str
    target: Target
    template: jinja2.Template

    def render(self, message: Message) -> str:
        context = (
            digest_context(message, self.target)
            if isinstance(message, Digest)
            else alert_context(message, self.target)
        )
        try:
            return self.template.render(context).strip() + "\n"
        except Exception as exc:  # a user's template can fail in any way: say which one
            raise DeliveryError(
                f"template {self.name} cannot render: {exc.__class__.__name__}: {exc}"
            ) from exc


def load_template(key: str, target: Target, override: Path | None) -> MessageTemplate:
    """The template for ``key`` (``text``, ``slack_digest`` …): the user's file, or the
    built-in one. Raises TemplateProblem naming the file and line."""
    if override is None:
        name, source = f"built-in {BUILT_IN[key]}", (_BUILT_IN_DIR / BUILT_IN[key]).read_text()
    else:
        name = str(override)
        try:
            source = override.read_text(encoding="utf-8")
        except OSError as exc:
            message = f"{override}: cannot read the template: {exc.strerror}"
            raise TemplateProblem(key, message) from exc
        except UnicodeDecodeError as exc:
            raise TemplateProblem(key, f"{override}: not UTF-8 text (byte {exc.start})") from exc
    try:
        template = _environment(target).from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(key, f"{name}:{exc.lineno}: {exc.message}") from exc
    return MessageTemplate(name, target, template)


class TemplateProblem(ValueError):
    """A template that cannot be read or compiled (becomes a ConfigError problem)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key  # of the channel's ``templates`` table: text, slack_digest …
        super().__init__(message)


# --- what templates see ------------------------------------------------------------------


def alert_context(message: AlertMessage, target: Target) -> dict[str, Any]:
    """The variables of an alert template. Strings are shown through the target's escaping;
    the one-line fields have no line breaks, so no field can break the layout."""
    source = one_line(message.source)
    return {
        "kind": message.kind,
        "rule": message.rule,
        "critical": message.critical,
        "title": one_line(message.title),
        "source": source,
        "published": _published(message),
        "url": _link(message.url, target),
        "actors": [one_line(a) for a in message.actors],
        "topics": [one_line(t) for t in message.topics],
        "snippet": message.snippet,
        "snippet_parts": _snippet_parts(message),
        "story_id": message.story_id,
        "story_title": one_line(message.story_title or message.title),
        "outlets": [one_line(o) for o in message.outlets] or [source],
        "articles": message.articles,
        "changes": [one_line(c) for c in message.changes],
        "follows": message.follows,
        "subject": subject(message),
    }


def digest_context(digest: Digest, target: Target) -> dict[str, Any]:
    """The variables of a digest template: every alert's, and the alerts grouped by story."""
    stories = []
    for group in digest.stories:
        alerts = [alert_context(a, target) for a in group]
        latest = max(alerts, key=lambda a: int(a["articles"]))
        stories.append(
            {
                "id": latest["story_id"],
                "title": latest["story_title"],
                "outlets": latest["outlets"],
                "articles": latest["articles"],
                "alerts": alerts,
            }
        )
    return {
        "reason": digest.reason,
        "heading": digest_heading(digest),
        "since": digest.since.strftime("%Y-%m-%d %H:%M UTC") if digest.since else None,
        "alerts": [a for s in stories for a in s["alerts"]],
        "stories": stories,
        "subject": subject(digest),
    }


def _published(message: AlertMessage) -> str:
    return message.published.strftime("%Y-%m-%d %H:%M UTC") if message.published else "unknown"


def _link(url: str | None, target: Target) -> str | None:
    """The article's link as the target shows it; None when there is none to follow."""
    if target == "text":
        return one_line(url) if url else None
    if (web := _web_link(one_line(url or ""))) is None:
        return None
    if target == "html":
        return web  # escaped as an attribute by the template
    return Trusted(_slack_url(web) if target == "slack" else _url_safe(web))


def _snippet_parts(message: AlertMessage) -> list[dict[str, Any]]:
    """The snippet cut at its highlights: ``{"text": …, "matched": True}`` for matched words."""
    parts, cursor = [], 0
    for start, end in message.highlights:
        if start > cursor:
            parts.append({"text": message.snippet[cursor:start], "matched": False})
        parts.append({"text": message.snippet[start:end], "matched": True})
        cursor = end
    if cursor < len(message.snippet):
        parts.append({"text": message.snippet[cursor:], "matched": False})
    return parts
