"""Alert messages: what an alert says (built once, stored with the alert), and how each kind of
channel shows it. Every string that came from a feed is escaped for its target here, so that no
article can ping a Slack channel, inject an email header or smuggle HTML into an email.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from monitor.models import AlertMessage, Article, FieldName, Mention

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
    }


def message_from_json(data: dict[str, Any]) -> AlertMessage:
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
    )


# --- rendering ---------------------------------------------------------------------------


def one_line(text: str) -> str:
    """A header-safe single line: no CR/LF or control characters (no header injection)."""
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", text)).strip()


def _published(message: AlertMessage) -> str:
    return message.published.strftime("%Y-%m-%d %H:%M UTC") if message.published else "unknown"


def _marked(message: AlertMessage, mark: Any, escape: Any) -> str:
    """The snippet with each highlight wrapped by ``mark`` and everything escaped."""
    out, cursor = [], 0
    for start, end in message.highlights:
        out.append(escape(message.snippet[cursor:start]))
        out.append(mark(escape(message.snippet[start:end])))
        cursor = end
    out.append(escape(message.snippet[cursor:]))
    return "".join(out)


def subject(message: AlertMessage, escape: Callable[[str], str] | None = None) -> str:
    title = escape(message.title) if escape else message.title
    return one_line(f"[{message.rule}] {title}")[:200]


def render_text(message: AlertMessage, escape: Callable[[str], str] | None = None) -> str:
    """Plain text, for the console (as it is) and other channels (with ``escape`` applied to
    what came from the feed). Marks: **word**."""
    feed = escape or _plain
    link = one_line(message.url or "-")
    lines = [
        f"Source:    {feed(one_line(message.source))}",
        f"Published: {_published(message)}",
        f"Link:      {link if escape is None else _url_safe(link)}",
        f"Rule:      {message.rule}",
        f"Actors:    {', '.join(message.actors) or '-'}",
        f"Topics:    {', '.join(message.topics) or '-'}",
        "",
        _marked(message, lambda s: f"**{s}**", feed),
    ]
    return "\n".join(lines)


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


def render_html(message: AlertMessage) -> str:
    """HTML for email; every feed string is escaped. Marks: <mark>word</mark>."""
    e = html.escape
    link = (
        f'<a href="{e(message.url)}">{e(message.title)}</a>'
        if message.url and message.url.lower().startswith(("http://", "https://"))
        else e(message.title)
    )
    rows = [
        ("Source", e(message.source)),
        ("Published", e(_published(message))),
        ("Rule", e(message.rule)),
        ("Actors", e(", ".join(message.actors) or "-")),
        ("Topics", e(", ".join(message.topics) or "-")),
    ]
    table = "".join(f'<tr><th align="left">{k}</th><td>{v}</td></tr>' for k, v in rows)
    snippet = _marked(message, lambda s: f"<mark>{s}</mark>", e)
    return f"<p><strong>{link}</strong></p><table>{table}</table><p>{snippet}</p>"


def render_slack(message: AlertMessage) -> str:
    """Slack mrkdwn. Feed text cannot ping: ``!`` and ``@`` are neutralised, and ``<``, ``>``
    and ``|`` cannot open a Slack link or mention. Marks: *word*."""
    title = _slack_safe(one_line(message.title))
    link = f"<{_slack_url(message.url)}|{title}>" if message.url else title
    lines = [
        f"**{link}**",
        f"{_slack_safe(one_line(message.source))} · {_published(message)} · rule {message.rule}",
        f"**Actors:** {_slack_safe(', '.join(message.actors)) or '-'}",
        f"**Topics:** {_slack_safe(', '.join(message.topics)) or '-'}",
        "",
        _marked(message, lambda t: f"**{t}**", _slack_safe),
    ]
    return "\n".join(lines)


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


def _slack_safe(text: str) -> str:
    return _CONTROL.sub("", text).translate(_SLACK_LOOKALIKES)


def slack_subject(message: AlertMessage) -> str:
    return one_line(f"[{message.rule}] {_slack_safe(message.title)}")[:200]


def _slack_url(url: str) -> str:
    if not url.lower().startswith(("http://", "https://")):
        return "about:blank"
    return url.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C").replace(" ", "%20")
