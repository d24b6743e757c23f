"""Routing decisions (monitor.routing) as tables of cases, and their effect through a real
pipeline, a real SQLite file and a local webhook, with a controllable clock: silences, quiet
hours (across midnight and daylight saving time), digests, group timers and rate limits."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from endpoints import WebhookEndpoint

from monitor.cli import main
from monitor.config import QuietHours, StoriesConfig, parse_config
from monitor.durations import parse_crontab
from monitor.fetch import Fetcher, FetchSettings
from monitor.messages import build_message
from monitor.models import (
    AlertMessage,
    AlertPlan,
    Article,
    FetchOutcome,
    Mention,
    Story,
    StoryAssignment,
)
from monitor.pipeline import Pipeline
from monitor.routing import (
    Mode,
    Outcome,
    Router,
    Said,
    Silence,
    digest_order,
    next_digest,
    one_message,
    quiet_end,
)
from monitor.runtime import load_runtime
from monitor.store import LogFilter, Store

BERLIN = "Europe/Berlin"
NIGHT = QuietHours.model_validate({"start": "22:00", "end": "07:00", "timezone": BERLIN})


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# --- quiet hours and digest schedules ----------------------------------------------------


@pytest.mark.parametrize(
    ("at", "end"),
    [
        # winter (CET, UTC+1): 23:30 local is inside, the window ends 07:00 local = 06:00 UTC
        (utc(2026, 1, 15, 22, 30), utc(2026, 1, 16, 6, 0)),
        (utc(2026, 1, 16, 5, 59), utc(2026, 1, 16, 6, 0)),  # 06:59 local, still inside
        (utc(2026, 1, 16, 6, 0), None),  # 07:00 local: over
        (utc(2026, 1, 15, 20, 59), None),  # 21:59 local: not yet
        (utc(2026, 1, 15, 21, 0), utc(2026, 1, 16, 6, 0)),  # 22:00 local: begins
        # the night the clocks go forward (29 March 2026, 02:00 → 03:00): 07:00 CEST = 05:00 UTC
        (utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 5, 0)),
        (utc(2026, 3, 29, 4, 59), utc(2026, 3, 29, 5, 0)),
        (utc(2026, 3, 29, 5, 0), None),
        # the night they go back (25 October 2026, 03:00 → 02:00): begins 22:00 CEST = 20:00 UTC,
        # ends 07:00 CET = 06:00 UTC, a night one hour longer
        (utc(2026, 10, 24, 20, 0), utc(2026, 10, 25, 6, 0)),
        (utc(2026, 10, 25, 5, 30), utc(2026, 10, 25, 6, 0)),
        (utc(2026, 10, 24, 19, 59), None),
    ],
)
def test_quiet_hours_cross_midnight_and_follow_daylight_saving_time(
    at: datetime, end: datetime | None
) -> None:
    assert quiet_end(NIGHT, at) == end


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours.model_validate({"start": "12:00", "end": "13:30", "timezone": "UTC"})
    assert quiet_end(lunch, utc(2026, 5, 1, 12, 45)) == utc(2026, 5, 1, 13, 30)
    assert quiet_end(lunch, utc(2026, 5, 1, 13, 30)) is None
    assert quiet_end(lunch, utc(2026, 5, 1, 11, 59)) is None


@pytest.mark.parametrize(
    ("crontab", "zone", "after", "fires"),
    [
        ("0 * * * *", "UTC", utc(2026, 5, 1, 10, 5), utc(2026, 5, 1, 11, 0)),
        ("0 * * * *", "UTC", utc(2026, 5, 1, 11, 0), utc(2026, 5, 1, 11, 0)),
        # 08:00 in Berlin: 07:00 UTC in winter, 06:00 UTC once summer time begins
        ("0 8 * * *", BERLIN, utc(2026, 3, 28, 9, 0), utc(2026, 3, 29, 6, 0)),
        ("0 8 * * *", BERLIN, utc(2026, 3, 27, 6, 0), utc(2026, 3, 27, 7, 0)),
        ("0 8 * * 1-5", "UTC", utc(2026, 11, 21, 9, 0), utc(2026, 11, 23, 8, 0)),  # Sat → Mon
    ],
)
def test_digest_schedules(crontab: str, zone: str, after: datetime, fires: datetime) -> None:
    assert next_digest(crontab, zone, after) == fires


def message(title: str, **fields: object) -> AlertMessage:
    base = AlertMessage("r", title, "news", None, None, (), (), "")
    return replace(base, **fields)  # type: ignore[arg-type]


def test_a_digest_groups_alerts_by_story_most_important_first() -> None:
    alerts = [
        (1, message("small story", story_id=1, outlets=("a",))),
        (2, message("big story", story_id=2, outlets=("a", "b", "c"), articles=3)),
        (3, message("small story, update", story_id=1, outlets=("a", "b"), kind="update")),
        (4, message("critical one", story_id=3, outlets=("a",), critical=True)),
        (5, message("no story")),
    ]
    order = [m.title for m in digest_order(alerts)]
    assert order == [
        "critical one",
        "big story",
        "small story",
        "small story, update",
        "no story",
    ]


# --- decisions ---------------------------------------------------------------------------

NOW = utc(2026, 5, 1, 10, 0)
RULES = """
[[channels]]
name = "chat"
url = "json://127.0.0.1:9/chat"
[[rules]]
name = "r"
query = "actor:wang-yi"
channels = ["chat"]
group_interval = "30m"
"""


def router(important: frozenset[str] = frozenset()) -> Router:
    config = parse_config(RULES, origin="t", base_dir=Path("."))
    return Router(config.rules, config.channels, StoriesConfig(), important)


def story(outlets: tuple[str, ...], outlet: str = "b.example") -> StoryAssignment:
    told = Story(7, "Wang Yi in Washington", NOW, NOW, len(outlets), outlets, (), ())
    return StoryAssignment(told, started=False, outlet=outlet)


def plan(actors: tuple[str, ...] = ("Wang Yi",), source: str = "news") -> AlertPlan:
    said = message("Wang Yi meets Blinken", actors=actors, source=source)
    return AlertPlan("r", ("chat",), said, ())


WANG = (Mention("actor", "wang-yi", "title", 0, 7, "Wang Yi", "Wang Yi"),)


def said(
    open_: bool, outlets: tuple[str, ...] = ("a.example",), actors: tuple[str, ...] = ("Wang Yi",)
) -> Said:
    first = message("first", actors=actors, outlets=outlets, story_id=7)
    return Said(
        40,
        first,
        open_,
        NOW - timedelta(minutes=10),
        frozenset(actors),
        frozenset(),
        frozenset(outlets),
    )


def test_a_story_s_first_match_alerts_and_a_later_one_with_nothing_new_joins_it() -> None:
    first = router().decide(plan(), WANG, story(("a.example",)), None, (), NOW)
    assert first.outcome is Outcome.ALERT and first.send_at == NOW
    assert first.message is not None and first.message.story_id == 7
    later = router().decide(plan(), WANG, story(("a.example", "b.example")), said(False), (), NOW)
    assert later.outcome is Outcome.GROUPED and later.alert == 40 and later.message is None
    assert "nothing new" in (later.reason or "")


def test_an_alert_not_sent_yet_takes_in_what_a_later_article_adds() -> None:
    later = router().decide(
        plan(actors=("Wang Yi", "Qin Gang")),
        WANG,
        story(("a.example", "b.example")),
        said(True),
        (),
        NOW,
    )
    assert later.outcome is Outcome.GROUPED and later.alert == 40
    assert later.message is not None
    assert later.message.actors == ("Wang Yi", "Qin Gang")
    assert later.message.outlets == ("a.example", "b.example") and later.message.kind == "new"


@pytest.mark.parametrize(
    ("actors", "outlets", "important", "changes"),
    [
        (("Wang Yi", "Qin Gang"), 2, frozenset(), ("new actor: Qin Gang",)),
        (("Wang Yi",), 5, frozenset(), ("now 5 outlets",)),
        (("Wang Yi",), 2, frozenset({"news"}), ("important outlet: b.example",)),
        (("Wang Yi",), 4, frozenset(), ()),
    ],
)
def test_material_changes_make_an_update_that_says_what_changed(
    actors: tuple[str, ...], outlets: int, important: frozenset[str], changes: tuple[str, ...]
) -> None:
    now_outlets = tuple(f"{c}.example" for c in "abcdefgh"[:outlets])
    before = said(False, outlets=now_outlets[:-1])
    decision = router(important).decide(
        plan(actors=actors), WANG, story(now_outlets, now_outlets[-1]), before, (), NOW
    )
    if not changes:
        assert decision.outcome is Outcome.GROUPED
        return
    assert decision.outcome is Outcome.UPDATE and decision.message is not None
    assert decision.message.changes == changes and decision.message.follows == 40
    # the last message went out ten minutes ago: the update waits for group_interval (30m)
    assert decision.send_at == NOW + timedelta(minutes=20)


def test_a_silence_keeps_the_alert_marked() -> None:
    silence = Silence(
        3, NOW - timedelta(hours=1), "ana", "known", NOW + timedelta(hours=1), actor="wang-yi"
    )
    elsewhere = replace(silence, id=4, actor="xi-jinping")
    ended = replace(silence, id=5, expired_at=NOW - timedelta(minutes=1))
    decision = router().decide(plan(), WANG, None, None, (elsewhere, ended, silence), NOW)
    assert decision.outcome is Outcome.SILENCED and decision.silence == silence
    assert decision.reason == "silenced by silence 3 (known)"
    expired = replace(silence, expires_at=NOW)
    assert router().decide(plan(), WANG, None, None, (expired,), NOW).outcome is Outcome.ALERT


def test_one_message_for_several_rules_names_all_they_matched() -> None:
    """Rules watching actors and rules watching topics match one article: the one message
    names every rule, actor and topic, and goes through quiet hours if any rule is critical."""
    article = Article(title="Blinken in Beijing", text="Antony Blinken on Taiwan.", source="s")
    principals = build_message("principals", article, (), (), {})
    principals = replace(principals, actors=("Antony Blinken",))
    flashpoints = replace(
        principals, rule="flashpoints", actors=(), topics=("Taiwan",), critical=True
    )
    merged = one_message([principals, flashpoints, principals])
    assert merged.rule == "principals, flashpoints"
    assert (merged.actors, merged.topics) == (("Antony Blinken",), ("Taiwan",))
    assert merged.critical and merged.snippet == principals.snippet


# --- through the pipeline ----------------------------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def hook() -> Iterator[WebhookEndpoint]:
    endpoint = WebhookEndpoint()
    yield endpoint
    endpoint.close()


def build(
    tmp_path: Path, hook: WebhookEndpoint, clock: Clock, extra: str = "", rule: str = ""
) -> Pipeline:
    text = f"""
[database]
url = "sqlite:///{tmp_path / "routing.db"}"
[[sources]]
name = "news"
url = "https://example.org/feed"
[[channels]]
name = "chat"
url = "json://127.0.0.1:{hook.port}/chat"
{extra}
[[rules]]
name = "principals"
query = "actor:wang-yi OR actor:antony-blinken"
channels = ["chat"]
group_by = "article"
{rule}
"""
    (tmp_path / "monitor.toml").write_text(text)
    config = parse_config(text, origin="monitor.toml", base_dir=tmp_path)
    store = Store.open(config.database.url)
    store.upgrade()
    pipeline = Pipeline(load_runtime(config), store, Fetcher(FetchSettings()), clock=clock)
    pipeline.prepare()
    return pipeline


def publish(pipeline: Pipeline, *titles: str) -> None:
    """Store one new article per title, as a poll would, matched by the pipeline."""
    source = next(iter(pipeline.runtime.config.sources))
    state = pipeline.store.source_state("news")
    now = pipeline.clock()
    state = replace(state, last_success_at=now - timedelta(hours=1))  # not the first poll
    items = [
        pipeline._decide(
            f"guid:{title}",
            Article(title=title, text=f"{title}. Antony Blinken met Wang Yi.", source="news"),
            source,
            state,
            now,
        )
        for title in titles
    ]
    outcome = FetchOutcome(now, "ok", 1, now + timedelta(minutes=15))
    pipeline.store.save_poll(state, outcome, items, pipeline.router)


def received(hook: WebhookEndpoint) -> list[str]:
    return [str(r["title"]) + "\n" + str(r["message"]) for r in hook.received]


def test_quiet_hours_hold_alerts_and_send_one_digest_when_they_end(
    tmp_path: Path, hook: WebhookEndpoint
) -> None:
    clock = Clock(utc(2026, 3, 28, 22, 30))  # 23:30 in Berlin, the night clocks go forward
    quiet = 'quiet_hours = { start = "22:00", end = "07:00", timezone = "Europe/Berlin" }'
    pipeline = build(tmp_path, hook, clock, extra=quiet)
    publish(pipeline, "Late talks in Beijing", "Overnight statement")
    pipeline.deliver_due()
    assert hook.received == []
    [fate, _] = pipeline.store.fates(LogFilter())
    [delivery] = fate.deliveries
    assert delivery.mode == "quiet" and delivery.status == "pending"
    assert delivery.note == "held for quiet hours until 2026-03-29 07:00 Europe/Berlin"
    clock.now = utc(2026, 3, 29, 4, 59)  # 06:59 summer time
    pipeline.deliver_due()
    assert hook.received == []
    clock.now = utc(2026, 3, 29, 5, 0)  # 07:00 summer time: the window ends
    pipeline.deliver_due()
    [digest] = received(hook)
    assert "Late talks in Beijing" in digest and "Overnight statement" in digest
    assert all(d.status == "sent" for f in pipeline.store.fates(LogFilter()) for d in f.deliveries)
    pipeline.close()


def test_a_critical_rule_goes_through_quiet_hours(tmp_path: Path, hook: WebhookEndpoint) -> None:
    clock = Clock(utc(2026, 1, 15, 23, 0))  # midnight in Berlin
    quiet = 'quiet_hours = { start = "22:00", end = "07:00", timezone = "Europe/Berlin" }'
    pipeline = build(tmp_path, hook, clock, extra=quiet, rule="critical = true")
    publish(pipeline, "Urgent: talks collapse")
    pipeline.deliver_due()
    assert len(hook.received) == 1 and "Urgent: talks collapse" in received(hook)[0]
    pipeline.close()


def test_a_digest_schedule_gathers_alerts_into_one_message(
    tmp_path: Path, hook: WebhookEndpoint
) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 5))
    pipeline = build(tmp_path, hook, clock, extra='digest = "0 * * * *"')
    publish(pipeline, "First of the hour")
    clock.now = utc(2026, 5, 1, 10, 40)
    publish(pipeline, "Second of the hour")
    pipeline.deliver_due()
    assert hook.received == []
    notes = [d.note for f in pipeline.store.fates(LogFilter()) for d in f.deliveries]
    assert notes == ["in the digest of 2026-05-01 11:00 UTC"] * 2
    clock.now = utc(2026, 5, 1, 11, 0)
    pipeline.deliver_due()
    pipeline.deliver_due()
    [digest] = received(hook)
    assert "First of the hour" in digest and "Second of the hour" in digest
    clock.now = utc(2026, 5, 1, 11, 10)
    publish(pipeline, "Next hour")
    clock.now = utc(2026, 5, 1, 12, 0)
    pipeline.deliver_due()
    assert len(hook.received) == 2 and "Next hour" in received(hook)[1]
    pipeline.close()


def test_group_wait_holds_the_first_alert(tmp_path: Path, hook: WebhookEndpoint) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 0))
    pipeline = build(tmp_path, hook, clock, rule='group_wait = "2m"')
    publish(pipeline, "Blinken lands")
    pipeline.deliver_due()
    assert hook.received == []
    clock.now += timedelta(minutes=2)
    pipeline.deliver_due()
    assert len(hook.received) == 1
    pipeline.close()


def test_a_channel_rate_limit_spaces_messages(tmp_path: Path, hook: WebhookEndpoint) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 0))
    pipeline = build(tmp_path, hook, clock, extra='rate_limit = "2/s"')
    publish(pipeline, "one", "two", "three", "four", "five")
    started = time.monotonic()
    report = pipeline.deliver_due()
    elapsed = time.monotonic() - started
    assert report.sent == 5 and len(hook.received) == 5
    assert elapsed >= 1.0  # five at two a second: the third waits for the first second to pass
    notes = [d.note for f in pipeline.store.fates(LogFilter()) for d in f.deliveries]
    assert sum(1 for n in notes if n and n.startswith("rate limited: waited")) >= 2
    pipeline.close()


def test_silences_from_the_command_line_keep_alerts_marked(
    tmp_path: Path, hook: WebhookEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(datetime.now(UTC))
    pipeline = build(tmp_path, hook, clock)
    cli = CliRunner()
    monkeypatch.chdir(tmp_path)
    made = cli.invoke(
        main,
        [
            "silence",
            "add",
            "--actor",
            "wang-yi",
            "--for",
            "2h",
            "--reason",
            "known trip",
            "--by",
            "ana",
        ],
    )
    assert made.exit_code == 0, made.output
    assert "silence 1 until" in made.output and "actor=wang-yi" in made.output
    typo = cli.invoke(
        main, ["silence", "add", "--actor", "wang-yii", "--for", "2h", "--reason", "x"]
    )
    assert typo.exit_code != 0 and "did you mean wang-yi?" in typo.output
    listed = cli.invoke(main, ["silence", "list", "--format", "json"])
    [silence] = [json.loads(line) for line in listed.output.splitlines()]
    assert silence["created_by"] == "ana" and silence["reason"] == "known trip"

    publish(pipeline, "Wang Yi visits")
    pipeline.deliver_due()
    assert hook.received == []
    log = cli.invoke(main, ["log", "alerts"])
    assert "silenced by silence 1 (known trip)" in log.output
    [alert] = pipeline.store.alerts(LogFilter())
    assert alert.deliveries == ()  # kept, not sent

    ended = cli.invoke(main, ["silence", "expire", "1"])
    assert ended.exit_code == 0 and "silence 1 ended" in ended.output
    assert "no active silences" in cli.invoke(main, ["silence", "list"]).output
    assert cli.invoke(main, ["silence", "expire", "9"]).exit_code != 0
    publish(pipeline, "Wang Yi visits again")
    pipeline.deliver_due()
    assert len(hook.received) == 1
    pipeline.close()


def test_silences_need_something_to_cover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["silence", "add", "--for", "1h", "--reason", "x"])
    assert result.exit_code == 2 and "say what to silence" in result.output
    result = CliRunner().invoke(
        main, ["silence", "add", "--rule", "us-china-principals", "--for", "soon", "--reason", "x"]
    )
    assert result.exit_code == 2 and "is not a duration" in result.output


def test_routes_of_a_rule_in_the_log(tmp_path: Path, hook: WebhookEndpoint) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 0))
    pipeline = build(tmp_path, hook, clock)
    publish(pipeline, "Blinken lands")
    pipeline.deliver_due()
    [fate] = pipeline.store.fates(LogFilter())
    assert fate.outcome == "alert" and fate.alert_id is not None
    assert [(d.channel, d.status, d.mode) for d in fate.deliveries] == [("chat", "sent", "now")]
    assert Mode.NOW == "now"
    build_message  # noqa: B018 - imported for the doctest-like use above
    pipeline.close()


@pytest.mark.parametrize(
    ("weekdays", "fires_on"),
    [
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("0,6", ["Sat", "Sun"]),
        ("sat-sun", ["Sat", "Sun"]),
        ("fri-mon", ["Fri", "Sat", "Sun", "Mon"]),
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("1/3", ["Mon", "Thu"]),
        ("*", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ],
)
def test_cron_weekdays_are_numbered_as_cron_numbers_them(
    weekdays: str, fires_on: list[str]
) -> None:
    fired, at = set(), utc(2026, 11, 22, 12, 0)  # a Sunday
    for _ in range(7):
        at = next_digest(f"0 8 * * {weekdays}", "UTC", at + timedelta(minutes=1))
        fired.add(at.strftime("%a"))
    assert fired == set(fires_on)


@pytest.mark.parametrize(
    "bad", ["0 8 * *", "0 8 * * 8", "0 8 * * mon/x", "61 * * * *", "0 8 * * funday"]
)
def test_bad_cron_schedules_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_crontab(bad)


def test_a_failing_channel_holds_only_its_own_digests(
    tmp_path: Path, hook: WebhookEndpoint
) -> None:
    other = WebhookEndpoint()
    quiet = 'quiet_hours = { start = "22:00", end = "07:00", timezone = "Europe/Berlin" }'
    text = f"""
[database]
url = "sqlite:///{tmp_path / "routing.db"}"
[[sources]]
name = "news"
url = "https://example.org/feed"
[[channels]]
name = "chat"
url = "json://127.0.0.1:{hook.port}/chat"
{quiet}
[[channels]]
name = "other"
url = "json://127.0.0.1:{other.port}/other"
{quiet}
[[rules]]
name = "digested"
query = "actor:wang-yi"
channels = ["chat"]
group_by = "article"
digest = "0 * * * *"
[[rules]]
name = "principals"
query = "actor:antony-blinken"
channels = ["chat", "other"]
group_by = "article"
"""
    config = parse_config(text, origin="monitor.toml", base_dir=tmp_path)
    store = Store.open(config.database.url)
    store.upgrade()
    clock = Clock(utc(2026, 1, 15, 23, 0))  # midnight in Berlin: both channels are quiet
    pipeline = Pipeline(load_runtime(config), store, Fetcher(FetchSettings()), clock=clock)
    pipeline.prepare()
    publish(pipeline, "Night statement")
    modes = sorted((d.channel, d.mode) for f in store.fates(LogFilter()) for d in f.deliveries)
    assert modes == [("chat", "digest"), ("chat", "quiet"), ("other", "quiet")]
    clock.now = utc(2026, 1, 16, 6, 0)  # 07:00 in Berlin: everything held is due
    hook.fail_status = 503
    pipeline.deliver_due()
    assert hook.received == []  # "chat" is down: its digests wait for their retry
    assert len(other.received) == 1 and "Night statement" in str(other.received[0])
    pipeline.close()
    other.close()
