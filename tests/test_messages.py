"""What each kind of channel shows: the built-in templates carry the story, the matches and
the changes of an update; everything from a feed is escaped for its target, also through a
user's own template; a broken template is a config problem naming its file and line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from monitor.channels import Renderer, build_channels
from monitor.config import parse_config
from monitor.errors import ConfigError, DeliveryError
from monitor.messages import Target, message_from_json, message_to_json, subject
from monitor.models import AlertMessage, Digest

SNIPPET = "Antony Blinken met Wang Yi in Beijing on Monday."
ALERT = AlertMessage(
    rule="us-china",
    title="Blinken meets Wang Yi in Beijing",
    source="world",
    url="https://example.org/news/blinken-wang",
    published=datetime(2023, 6, 19, 8, 30, tzinfo=UTC),
    actors=("Antony Blinken", "Wang Yi"),
    topics=("High-level diplomacy",),
    snippet=SNIPPET,
    highlights=((0, 14), (19, 26)),
    story_id=7,
    story_title="Blinken visits Beijing",
    outlets=("world", "Reuters", "BBC News"),
    articles=3,
)
UPDATE = AlertMessage(
    **{
        **ALERT.__dict__,
        "kind": "update",
        "changes": ("new actor: Qin Gang", "now 5 outlets"),
        "follows": 41,
        "articles": 5,
    }
)
HOSTILE = AlertMessage(
    rule="us-china",
    title="Blinken <!channel> @here <@U123> *bold* | [x](https://evil.example)\r\nBcc: x@evil",
    source="evil <script>alert(1)</script> @channel",
    url="https://example.org/a?b=<@U1>|c&d=@everyone",
    published=None,
    actors=("Antony Blinken",),
    topics=(),
    snippet='Antony Blinken <img src=x onerror="alert(2)"> <!everyone> `code` ~strike~ _it_',
    highlights=((0, 14),),
    outlets=("<!here> outlet",),
    changes=("new outlet: <!channel>",),
    kind="update",
)

#: Each template key and the targets it is rendered for.
KINDS: list[tuple[str, Target]] = [
    ("text", "text"),
    ("text", "chat"),
    ("slack", "slack"),
    ("html", "html"),
]
MARKS = {"text": "**{}**", "chat": "**{}**", "slack": "*{}*", "html": "<mark>{}</mark>"}


@pytest.mark.parametrize(("key", "target"), KINDS)
def test_each_kind_carries_the_story_the_matches_and_the_link(key: str, target: Target) -> None:
    text = Renderer.load(key, target)(ALERT)
    for expected in (
        "Blinken meets Wang Yi in Beijing",
        "world, Reuters, BBC News",
        "3 articles",
        "Antony Blinken, Wang Yi",
        "High-level diplomacy",
        "https://example.org/news/blinken-wang",
        "2023-06-19 08:30 UTC",
        MARKS[target].format("Antony Blinken") + " met " + MARKS[target].format("Wang Yi"),
        " in Beijing on Monday.",
    ):
        assert expected in text, (expected, text)
    assert "Update" not in text


@pytest.mark.parametrize(("key", "target"), KINDS)
def test_an_update_says_what_changed_and_what_it_follows(key: str, target: Target) -> None:
    text = Renderer.load(key, target)(UPDATE)
    assert "Update" in text and "Blinken visits Beijing" in text
    assert "new actor: Qin Gang" in text and "now 5 outlets" in text
    assert "follows alert 41" in text and "5 articles" in text


def test_subjects_are_one_line_and_name_updates() -> None:
    assert subject(ALERT) == "[us-china] Blinken meets Wang Yi in Beijing"
    assert subject(UPDATE) == "[us-china] update: Blinken meets Wang Yi in Beijing"
    assert "\n" not in subject(HOSTILE) and "\r" not in subject(HOSTILE)


PINGS = ("<!channel", "<!here", "<!everyone", "<@U", "@channel", "@here", "@everyone")


def test_feed_text_cannot_ping_link_or_mark_up_in_slack() -> None:
    for template in ("slack", "slack_digest"):
        message = HOSTILE if template == "slack" else Digest("digest", (HOSTILE,))
        text = Renderer.load("slack", "slack")(message)
        for forbidden in (*PINGS, "*bold*", "<https://evil", "](https://evil", "`code`", "~st"):
            assert forbidden not in text, (template, forbidden, text)
        assert "|c" not in text  # the link's own | cannot end it early
        assert "*Antony Blinken*" in text  # our own markup still works


def test_feed_text_cannot_ping_on_chat_services() -> None:
    for message in (HOSTILE, Digest("digest", (HOSTILE,))):
        text = Renderer.load("text", "chat")(message)
        for forbidden in (*PINGS, "<script", "<img"):
            assert forbidden not in text, (forbidden, text)
        assert "**Antony Blinken**" in text


def test_feed_text_cannot_smuggle_html_into_email() -> None:
    for message in (HOSTILE, Digest("quiet hours", (HOSTILE,))):
        html = Renderer.load("html", "html")(message)
        page = BeautifulSoup(html, "html.parser")
        assert not page.find_all(["script", "img", "iframe"])
        assert not [a for tag in page.find_all(True) for a in tag.attrs if a.startswith("on")]
        assert [m.get_text() for m in page.find_all("mark")] == ["Antony Blinken"]
        assert 'onerror="alert(2)"' in page.get_text()  # shown as text, harmless
        assert [a["href"] for a in page.find_all("a")] == [HOSTILE.url]


def test_a_link_that_is_not_http_is_not_a_link() -> None:
    message = AlertMessage(**{**ALERT.__dict__, "url": "javascript:alert(1)"})
    assert "javascript" not in Renderer.load("html", "html")(message)
    assert "javascript" not in Renderer.load("slack", "slack")(message)


def digest() -> Digest:
    other = AlertMessage(
        **{**ALERT.__dict__, "story_id": 9, "story_title": "Fentanyl talks", "title": "Xi"}
    )
    return Digest("digest", (UPDATE, other, ALERT), since=datetime(2023, 6, 19, tzinfo=UTC))


@pytest.mark.parametrize(("key", "target"), KINDS)
def test_a_digest_groups_alerts_by_story_in_the_order_given(key: str, target: Target) -> None:
    text = Renderer.load(key, target)(digest())
    assert "3 alerts about 2 stories since 2023-06-19 00:00 UTC" in text
    first, second = text.index("Blinken visits Beijing"), text.index("Fentanyl talks")
    assert first < second
    assert text.count("Blinken meets Wang Yi in Beijing") == 2
    assert text.rindex("Blinken meets Wang Yi in Beijing") < second  # both under their story
    assert "new actor: Qin Gang" in text


def channels_config(tmp_path: Path, templates: str) -> str:
    return f"""
[[channels]]
name = "desk"
kind = "console"
templates = {templates}
"""


def test_a_users_template_is_used_and_still_escapes(tmp_path: Path) -> None:
    (tmp_path / "mine.j2").write_text(
        "MINE {{ title }} {{ source | upper }} {{ title ~ '<!channel>' }}"
        "{% autoescape false %}{{ snippet }}{% endautoescape %}",
        encoding="utf-8",
    )
    config = parse_config(
        '[[channels]]\nname = "s"\nkind = "slack"\nurl = "https://hooks.slack.com/services/x"\n'
        'templates = { slack = "mine.j2" }\n'
        '[[channels]]\nname = "e"\nurl = "mailto://127.0.0.1:2525?mode=insecure&from=m@example.org&to=a@b.org"\n'
        'templates = { html = "mine.j2" }\n',
        origin="test.toml",
        base_dir=tmp_path,
    )
    assert config.channels[0].templates.slack == tmp_path / "mine.j2"
    channels = build_channels(config.channels, config.origin)
    slack = Renderer.load("slack", "slack", config.channels[0].templates)(HOSTILE)
    assert slack.startswith("MINE Blinken")
    for forbidden in PINGS:
        assert forbidden not in slack
    mail = channels["e"].compose(HOSTILE)  # type: ignore[attr-defined]
    html = mail.get_body(("html",)).get_content()
    assert html.startswith("MINE Blinken &lt;!channel&gt;") and "<img" not in html
    assert "EVIL &lt;SCRIPT&gt;" in html
    text = mail.get_body(("plain",)).get_content()
    assert "Title:" in text  # the plain part keeps the built-in template


def test_a_template_error_at_send_time_names_the_template(tmp_path: Path) -> None:
    (tmp_path / "typo.j2").write_text("{{ titel }}", encoding="utf-8")
    config = parse_config(
        channels_config(tmp_path, '{ text = "typo.j2" }'), origin="t.toml", base_dir=tmp_path
    )
    channels = build_channels(config.channels, config.origin)
    with pytest.raises(DeliveryError, match=r"typo\.j2 cannot render: UndefinedError.*titel"):
        channels["desk"].send(ALERT)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("line one\n{{ title }\n", r"broken\.j2:2: unexpected '}'"),
        ("{% for a in actors %}\n{{ a }}\n", r"broken\.j2:2: Unexpected end of template"),
        (None, r"broken\.j2: cannot read the template: No such file"),
        (b"\xff\xfe{{ title }}", r"broken\.j2: not UTF-8 text"),
    ],
)
def test_a_broken_template_is_a_config_problem_naming_file_and_line(
    tmp_path: Path, content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / "broken.j2"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif content is not None:
        path.write_bytes(content)
    config = parse_config(
        channels_config(tmp_path, '{ text_digest = "broken.j2" }'),
        origin="t.toml",
        base_dir=tmp_path,
    )
    with pytest.raises(ConfigError) as caught:
        build_channels(config.channels, config.origin)
    [problem] = caught.value.problems
    assert problem.where == "t.toml: channels[0] (desk).templates.text_digest"
    assert str(path) in problem.message
    assert caught.match(expected)


def test_stored_messages_round_trip_and_old_rows_still_load() -> None:
    assert message_from_json(message_to_json(UPDATE)) == UPDATE
    old = {
        "rule": "r",
        "title": "t",
        "source": "s",
        "url": None,
        "published": None,
        "actors": ["A"],
        "topics": [],
        "snippet": "A.",
        "highlights": [[0, 1]],
    }
    loaded = message_from_json(old)
    assert (loaded.kind, loaded.story_id, loaded.outlets, loaded.articles) == ("new", None, (), 1)
    assert Renderer.load("text", "text")(loaded).count("from s") == 1
