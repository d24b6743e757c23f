"""Channels against real local endpoints: the native Slack webhook (and its 429), email with
our own HTML and plain-text parts over SMTP, a digest as one message, and
``monitor notify test`` through the command line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SLACK_URL
from endpoints import SmtpServer, WebhookEndpoint, free_port
from test_messages import ALERT, HOSTILE, digest

from monitor.channels import AppriseChannel, SlackChannel, build_channels
from monitor.cli import main
from monitor.config import parse_config
from monitor.errors import DeliveryError


def test_the_slack_channel_posts_blocks_with_a_text_fallback(webhook: WebhookEndpoint) -> None:
    SlackChannel("slack", webhook.url + "/services/T/B/X").send(ALERT)
    [payload] = webhook.received
    assert webhook.paths == ["/services/T/B/X"]
    assert payload["text"] == "[us-china] Blinken meets Wang Yi in Beijing"
    text = "\n".join(b["text"]["text"] for b in payload["blocks"])
    assert all(b["type"] == "section" and b["text"]["type"] == "mrkdwn" for b in payload["blocks"])
    assert "<https://example.org/news/blinken-wang|Blinken meets Wang Yi in Beijing>" in text
    assert "*Antony Blinken* met *Wang Yi*" in text


def test_the_slack_channel_escapes_feed_text(webhook: WebhookEndpoint) -> None:
    SlackChannel("slack", webhook.url).send(HOSTILE)
    [payload] = webhook.received
    posted = payload["text"] + "".join(b["text"]["text"] for b in payload["blocks"])
    for forbidden in ("<!channel", "<!here", "<!everyone", "<@U", "@here", "@channel", "*bold*"):
        assert forbidden not in posted


def test_slack_rate_limiting_holds_the_channel_as_long_as_slack_asks(
    webhook: WebhookEndpoint,
) -> None:
    webhook.fail_status, webhook.retry_after = 429, "30"
    with pytest.raises(DeliveryError, match=r"rate limiting \(HTTP 429\); retry in 3\ds") as err:
        SlackChannel("slack", webhook.url).send(ALERT)
    assert err.value.retry_after is not None
    assert timedelta(seconds=29) <= err.value.retry_after <= timedelta(seconds=30)


def test_other_slack_failures_carry_the_status_and_the_body(webhook: WebhookEndpoint) -> None:
    webhook.fail_status = 500
    with pytest.raises(DeliveryError, match="HTTP 500: service unavailable") as err:
        SlackChannel("slack", webhook.url).send(ALERT)
    assert err.value.retry_after is None
    with pytest.raises(DeliveryError, match="cannot reach the webhook"):
        SlackChannel("slack", f"http://127.0.0.1:{free_port()}/services/x").send(ALERT)


def test_a_digest_is_one_slack_message(webhook: WebhookEndpoint) -> None:
    SlackChannel("slack", webhook.url).send(digest())
    [payload] = webhook.received
    assert payload["text"].startswith("Digest: 3 alerts about 2 stories")


def test_apprise_slack_still_works_with_mrkdwn(slack: WebhookEndpoint) -> None:
    AppriseChannel("slack", SLACK_URL).send(ALERT)
    [payload] = slack.received
    text = payload["attachments"][0]["text"]
    assert "*Antony Blinken* met *Wang Yi*" in text and "*Story:* 3 articles" in text


def email_channels(smtp: SmtpServer, url: str | None = None) -> dict[str, object]:
    config = parse_config(
        f'[[channels]]\nname = "email"\nurl = "{url or smtp.mailto()}"\n',
        origin="t.toml",
        base_dir=Path("."),
    )
    return dict(build_channels(config.channels, config.origin))


def test_email_has_our_html_and_plain_text_parts(smtp: SmtpServer) -> None:
    url = smtp.mailto() + "&bcc=hidden@example.org&cc=copy@example.org"
    email_channels(smtp, url)["email"].send(ALERT)  # type: ignore[attr-defined]
    [mail] = smtp.messages
    assert mail["Subject"] == "[us-china] Blinken meets Wang Yi in Beijing"
    assert mail["From"] == "monitor@example.org" and mail["To"] == "analyst@example.org"
    assert mail["Cc"] == "copy@example.org" and mail["Bcc"] is None
    assert sorted(smtp.inbox.envelopes[0].rcpt_tos) == [
        "analyst@example.org",
        "copy@example.org",
        "hidden@example.org",
    ]
    assert mail.get_content_type() == "multipart/alternative"
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<mark>Antony Blinken</mark> met <mark>Wang Yi</mark>" in html
    assert "**Antony Blinken** met **Wang Yi**" in text and "<" not in text
    for part in (html, text):
        assert "world, Reuters, BBC News" in part and "High-level diplomacy" in part


def test_feed_text_cannot_inject_email_headers(smtp: SmtpServer) -> None:
    email_channels(smtp)["email"].send(HOSTILE)  # type: ignore[attr-defined]
    [mail] = smtp.messages
    assert mail["Bcc"] is None and smtp.inbox.envelopes[0].rcpt_tos == ["analyst@example.org"]
    assert "\n" not in mail["Subject"] and "\r" not in mail["Subject"]


def test_an_email_server_that_is_down_is_a_delivery_error(smtp: SmtpServer) -> None:
    url = f"mailto://127.0.0.1:{free_port()}?mode=insecure&from=m@example.org&to=a@example.org"
    with pytest.raises(DeliveryError, match=r"email via 127\.0\.0\.1:\d+ failed"):
        email_channels(smtp, url)["email"].send(ALERT)  # type: ignore[attr-defined]


def config_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "m.db"}"\n'
        f'[[channels]]\nname = "desk"\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path


def test_notify_test_sends_a_sample_alert_and_digest_to_slack(
    tmp_path: Path, slack: WebhookEndpoint
) -> None:
    config = config_file(tmp_path, SLACK_URL)
    result = CliRunner().invoke(main, ["notify", "test", "-c", str(config), "desk", "--digest"])
    assert result.exit_code == 0, result.output
    assert "desk: the sample alert was accepted" in result.output
    assert "desk: the sample digest was accepted" in result.output
    alert, digest_message = (p["attachments"][0] for p in slack.received)
    assert alert["title"].startswith("[notify-test] Secretary of State Antony Blinken")
    assert "*Blinken*" in alert["text"] and "4 articles from seed-corpus" in alert["text"]
    assert (
        digest_message["title"]
        == "Digest: 3 alerts about 2 stories since "
        + (digest_message["title"].rsplit("since ", 1)[1])
    )
    assert "new outlet: The Guardian" in digest_message["text"]


def test_notify_test_sends_a_sample_email(tmp_path: Path, smtp: SmtpServer) -> None:
    config = config_file(tmp_path, smtp.mailto())
    result = CliRunner().invoke(main, ["notify", "test", "--config", str(config), "desk"])
    assert result.exit_code == 0, result.output
    [mail] = smtp.messages
    assert "<mark>" in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "**" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_notify_test_fails_with_the_channels_error(tmp_path: Path, slack: WebhookEndpoint) -> None:
    slack.fail_status = 503
    config = config_file(tmp_path, SLACK_URL)
    result = CliRunner().invoke(main, ["notify", "test", "-c", str(config), "desk"])
    assert result.exit_code == 1
    assert (
        "desk: the sample alert failed: Slack refused the message: Failed to send to Slack"
        in result.output
    )
    unknown = CliRunner().invoke(main, ["notify", "test", "-c", str(config), "nope"])
    assert unknown.exit_code == 1 and "no channel named 'nope' (channels: desk)" in unknown.output
