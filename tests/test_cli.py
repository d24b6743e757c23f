"""The command line, in process (click's runner) on real files and a real SQLite database."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import DATA, REPO
from endpoints import WebhookEndpoint

from monitor.cli import main

COMMANDS = [
    ["run"],
    ["poll"],
    ["check-config"],
    ["match"],
    ["log"],
    ["watchlist"],
    ["watchlist", "extract"],
    ["db"],
    ["db", "upgrade"],
    ["explain"],
    ["rules"],
    ["rules", "test"],
    ["sources"],
]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # the built-in default writes ./monitor.db
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    return CliRunner()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(cli: CliRunner, command: list[str]) -> None:
    result = cli.invoke(main, [*command, "--help"], prog_name="monitor")
    assert result.exit_code == 0, result.output
    assert "Usage: monitor" in result.output


def test_poll_on_the_built_in_default_alerts_on_the_seed_corpus(cli: CliRunner) -> None:
    result = cli.invoke(main, ["--log-level", "WARNING", "poll"])
    assert result.exit_code == 0, result.output
    # five articles, three stories (001–003 are one trip): one message per story, naming both
    # rules, which match the same first article of each
    assert result.stdout.count("ALERT [us-china-principals, us-china-flashpoints]") == 3
    assert result.stdout.count("ALERT [") == 3
    assert "**Antony Blinken**" in result.stdout or "**Blinken**" in result.stdout
    assert "seed-corpus: ok, 5 items, 5 new" in result.stderr
    again = cli.invoke(main, ["--log-level", "WARNING", "poll"])
    assert again.exit_code == 0 and "ALERT" not in again.stdout

    alerts = cli.invoke(main, ["log", "alerts", "--format", "json"])
    records = [json.loads(line) for line in alerts.stdout.splitlines()]
    assert len(records) >= 5
    assert all(d["status"] == "sent" for r in records for d in r["deliveries"])
    table = cli.invoke(main, ["log", "articles", "--actor", "wang-wentao"])
    assert table.exit_code == 0
    assert len(table.stdout.splitlines()) == 2  # header and the one article naming him
    assert "no articles match" in cli.invoke(main, ["log", "articles", "--topic", "nope"]).stdout
    recent = cli.invoke(main, ["log", "alerts", "--since", "1h", "--rule", "us-china-flashpoints"])
    assert recent.exit_code == 0 and "us-china-flashpoints" in recent.stdout
    assert "console:sent(one message for alerts 1, 2)" in recent.stdout
    bad = cli.invoke(main, ["log", "alerts", "--since", "yesterday"])
    assert bad.exit_code == 2 and "is not a duration" in bad.output


def test_check_config_lists_every_problem(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        "[[sources]]\nname = 'a'\nurl = 'https://example.org/feed'\ninterval = '10 min'\n"
        "[[channels]]\nname = 'team'\nurl = '${TEAM_WEBHOOK}'\n"
    )
    result = cli.invoke(main, ["check-config", "-c", str(config)])
    assert result.exit_code == 1
    assert f"{config}: sources[0].interval: '10 min' is not a duration" in result.output
    assert (
        f"{config}: channels[0].url: environment variable TEAM_WEBHOOK is not set" in result.output
    )


def test_check_config_names_bad_rules(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "rules.toml"
    config.write_text(
        "[[channels]]\nname = 'out'\nkind = 'console'\n"
        "[[rules]]\nname = 'typo'\nquery = 'actor:antony-blinkn OR topic:taiwan'\n"
        "channels = ['out']\n"
    )
    result = cli.invoke(main, ["check-config", "-c", str(config)])
    assert result.exit_code == 1
    assert "rules[0] (typo).query: unknown actor id 'antony-blinkn'" in result.output
    assert "at position 6" in result.output


def test_check_config_accepts_the_example(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7")
    monkeypatch.setenv("ALERT_EMAIL_URL", "mailtos://user:pass@example.org?to=desk@example.org")
    result = cli.invoke(main, ["check-config", "-c", str(REPO / "config.example.toml")])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_config_from_the_environment(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "env.toml"
    config.write_text("[daemon]\nconcurrency = 'many'\n")
    monkeypatch.setenv("MONITOR_CONFIG", str(config))
    result = cli.invoke(main, ["check-config"])
    assert result.exit_code == 1 and "daemon.concurrency" in result.output


def test_match_json(cli: CliRunner) -> None:
    files = [str(DATA / "articles" / "pos01.json"), str(DATA / "articles" / "near04.json")]
    result = cli.invoke(main, ["match", "--format", "json", *files])
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["file"] == files[0]
    assert {"antony-blinken", "wang-yi"} <= set(first["actors"])
    assert "spy-balloon" in first["topics"]
    assert first["rules"] == ["us-china-principals", "us-china-flashpoints"]
    text = json.loads((DATA / "articles" / "pos01.json").read_text())["text"]
    wang = [m for m in first["mentions"] if m["id"] == "wang-yi" and m["field"] == "text"]
    assert [text[m["start"] : m["end"]] for m in wang] == [m["text"] for m in wang]
    assert "Wang Yi" in [m["text"] for m in wang]
    assert second["rules"] == [] and "wang-yi" not in second["actors"]


def test_match_text_explains(cli: CliRunner, tmp_path: Path) -> None:
    doc = tmp_path / "note.txt"
    doc.write_text("Biden, Xi to meet\nThe two leaders will meet at APEC in San Francisco.\n")
    result = cli.invoke(main, ["match", str(doc)])
    assert result.exit_code == 0, result.output
    assert "actor xi-jinping: 'Xi' in title [7:9]" in result.stdout
    assert "rules:  us-china-principals" in result.stdout


def test_match_reports_a_bad_file(cli: CliRunner, tmp_path: Path) -> None:
    doc = tmp_path / "bad.json"
    doc.write_text("[1, 2]")
    result = cli.invoke(main, ["match", str(doc)])
    assert result.exit_code == 1 and "bad.json" in result.output


def test_watchlist_extract_proposes_from_the_corpus(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "proposed.toml"
    result = cli.invoke(
        main, ["watchlist", "extract", str(REPO / "seeds" / "corpus"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    proposal = tomllib.loads(out.read_text())
    names = {a["name"] for a in proposal["actors"]}
    assert {"Antony Blinken", "Wang Yi", "Xi Jinping", "Jake Sullivan", "Qin Gang"} <= names
    assert proposal["topics"]


def test_db_upgrade_creates_the_tables(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "db.toml"
    config.write_text(f"[database]\nurl = 'sqlite:///{tmp_path / 'x.db'}'\n")
    result = cli.invoke(main, ["db", "upgrade", "-c", str(config)])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(tmp_path / "x.db") as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert {
        "sources",
        "fetches",
        "articles",
        "mentions",
        "matches",
        "alerts",
        "deliveries",
    } <= tables


def test_check_config_reports_every_layer_at_once(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "many.toml"
    config.write_text(
        "[[sources]]\nname = 'inbox'\npath = 'missing-folder'\n"
        "[[channels]]\nname = 'pager'\nurl = 'nosuchservice://x'\n"
        "[[rules]]\nname = 'a'\nquery = 'actor:nobody'\nchannels = ['pager']\n"
        "[[rules]]\nname = 'b'\nquery = 'topic:taiwan'\nchannels = ['email']\n"
    )
    result = cli.invoke(main, ["check-config", "-c", str(config)])
    assert result.exit_code == 1
    for expected in (
        "rules[1].channels: unknown channel 'email'",
        "rules[0] (a).query: unknown actor id 'nobody'",
        "channels[0] (pager).url: apprise does not understand this URL",
        "sources[0] (inbox).path: no such folder",
    ):
        assert expected in result.output
    assert "Unparseable" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("setup", "command", "expected"),
    [
        (
            lambda d: (d / "c.toml").write_bytes(b"[database]\nurl = '\xff\xfe'\n"),
            ["check-config", "-c", "c.toml"],
            "c.toml: not UTF-8 text",
        ),
        (
            lambda d: (
                (d / "w.toml").write_bytes(b"[[actors]]\nname = '\xe9'\n"),
                (d / "c.toml").write_text("[watchlist]\nfiles = ['w.toml']\n"),
            ),
            ["check-config", "-c", "c.toml"],
            "w.toml: not UTF-8 text",
        ),
        (
            lambda d: None,
            ["watchlist", "extract", str(REPO / "seeds" / "corpus"), "-o", "no/such/dir/out.toml"],
            "cannot write no/such/dir/out.toml",
        ),
        (
            lambda d: (d / "c.toml").write_text("[database]\nurl = 'sqlite:///absent.db'\n"),
            ["log", "alerts", "-c", "c.toml"],
            "no database at",
        ),
        (
            lambda d: (d / "c.toml").write_text("[database]\nurl = 'sqlite:///no/such/dir/x.db'\n"),
            ["db", "upgrade", "-c", "c.toml"],
            "cannot open the database sqlite:///no/such/dir/x.db",
        ),
    ],
    ids=["config-not-utf8", "watchlist-not-utf8", "extract-bad-output", "log-no-db", "db-bad-path"],
)
def test_errors_are_messages_not_tracebacks(
    cli: CliRunner, tmp_path: Path, setup: Any, command: list[str], expected: str
) -> None:
    setup(tmp_path)
    result = cli.invoke(main, command)
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_a_database_from_another_version_is_refused_clearly(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[database]\nurl = 'sqlite:///x.db'\n")
    assert cli.invoke(main, ["db", "upgrade", "-c", "c.toml"]).exit_code == 0
    with sqlite3.connect(tmp_path / "x.db") as conn:
        conn.execute("update alembic_version set version_num = '9999_future'")
    result = cli.invoke(main, ["poll", "-c", "c.toml"])
    assert result.exit_code == 1
    assert "was migrated by another version of monitor" in result.output


RULES_CONFIG = """
[watchlist]
files = ["{seeds}/watchlist.toml"]

[[sources]]
name = "seeds"
path = "{seeds}/corpus"

[queries]
principals = "actor:antony-blinken OR actor:wang-yi"

[[rules]]
name = "principals-meet"
query = "SENTENCE(actor:antony-blinken actor:wang-yi)"

[[rules]]
name = "trial"
query = "rule:principals AND (actor:qin-gang NEAR/5 sunday)"
enabled = false
"""


@pytest.fixture
def polled(cli: CliRunner, tmp_path: Path) -> Path:
    """A config with a named query, an enabled and a disabled rule, after one poll."""
    config = tmp_path / "monitor.toml"
    config.write_text(RULES_CONFIG.format(seeds=REPO / "seeds"), encoding="utf-8")
    result = cli.invoke(main, ["--log-level", "WARNING", "poll", "-c", str(config)])
    assert result.exit_code == 0, result.output
    return config


def test_matches_record_their_evidence_and_the_rule_version(polled: Path, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        rows = db.execute("select rule, rule_version, evidence from matches").fetchall()
    assert rows and {r[0] for r in rows} == {"principals-meet"}  # the disabled rule is silent
    for _, version, evidence in rows:
        assert len(version) == 12
        spans = json.loads(evidence)
        assert {e["id"] for e in spans} == {"antony-blinken", "wang-yi"}
        assert all(
            e["field"] in ("title", "summary", "text") and e["end"] > e["start"] for e in spans
        )


def test_explain_shows_each_rule_and_the_clause_that_failed(cli: CliRunner, polled: Path) -> None:
    listed = cli.invoke(main, ["log", "articles", "--format", "json", "-c", str(polled)])
    articles = [json.loads(line) for line in listed.stdout.splitlines()]
    matched = next(a for a in articles if "principals-meet" in a["rules"])
    missed = next(a for a in articles if "principals-meet" not in a["rules"])

    shown = cli.invoke(main, ["explain", str(matched["id"]), "-c", str(polled)])
    assert shown.exit_code == 0, shown.output
    assert "rule principals-meet (version " in shown.stdout
    assert ": matched\n  the log recorded a match with version" in shown.stdout
    assert "rule trial (version " in shown.stdout and ", disabled)" in shown.stdout
    assert "✓ SENTENCE(actor:antony-blinken actor:wang-yi) — " in shown.stdout

    other = cli.invoke(
        main, ["explain", str(missed["id"]), "--rule", "principals-meet", "-c", str(polled)]
    )
    assert other.exit_code == 0, other.output
    assert "principals-meet" in other.stdout and ": did not match" in other.stdout
    assert "✗ SENTENCE(actor:antony-blinken actor:wang-yi)" in other.stdout
    assert "the log recorded no match" in other.stdout
    assert "rule trial" not in other.stdout

    assert "no article 999" in cli.invoke(main, ["explain", "999", "-c", str(polled)]).output
    unknown = cli.invoke(main, ["explain", "1", "--rule", "nope", "-c", str(polled)])
    assert unknown.exit_code == 1 and "no rule named nope" in unknown.output


def test_explain_a_file(cli: CliRunner) -> None:
    shown = cli.invoke(main, ["explain", str(DATA / "articles" / "pos01.json")])
    assert shown.exit_code == 0, shown.output
    assert "rule us-china-principals (version" in shown.stdout
    assert "✓ actor:antony-blinken — 'Blinken' in title [0:7]" in shown.stdout


def test_rules_test_backtests_without_sending(cli: CliRunner, polled: Path, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        before = db.execute("select count(*) from matches").fetchone()
        matched = db.execute(
            "select count(*) from matches where rule = 'principals-meet'"
        ).fetchone()
    result = cli.invoke(main, ["rules", "test", "principals-meet", "-c", str(polled)])
    assert result.exit_code == 0, result.output
    assert f"{matched[0]} of 5 articles would have matched" in result.stdout
    as_json = cli.invoke(
        main, ["rules", "test", "trial", "--format", "json", "--sample", "1", "-c", str(polled)]
    )
    report = json.loads(as_json.stdout)
    assert report["examined"] == 5 and report["matched"] >= 1  # disabled rules can be tested
    assert len(report["sample"]) == 1 and report["sample"][0]["evidence"]
    assert sum(report["per_day"].values()) == report["matched"]
    query = cli.invoke(
        main,
        ["rules", "test", "--query", "rule:principals", "--source", "seeds", "-c", str(polled)],
    )
    assert "5 of 5 articles would have matched" in query.stdout
    none = cli.invoke(
        main, ["rules", "test", "--query", "x", "--source", "elsewhere", "-c", str(polled)]
    )
    assert "0 of 0 articles" in none.stdout
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        assert db.execute("select count(*) from matches").fetchone() == before  # nothing written


def test_rules_test_sends_nothing_and_reads_since_by_fetching(
    cli: CliRunner, tmp_path: Path, webhook: WebhookEndpoint
) -> None:
    config = tmp_path / "monitor.toml"
    hook = f'[[channels]]\nname = "hook"\nurl = "json://127.0.0.1:{webhook.port}/alerts"\n'
    text = RULES_CONFIG.format(seeds=REPO / "seeds") + hook
    live = 'query = "SENTENCE(actor:antony-blinken actor:wang-yi)"\n'
    text = text.replace(live, live + 'channels = ["hook"]\n')
    config.write_text(text.replace('/corpus"\n', '/corpus"\nbackfill = "all"\n'))
    polled = cli.invoke(main, ["--log-level", "WARNING", "poll", "-c", str(config)])
    assert polled.exit_code == 0, polled.output
    sent = len(webhook.received)
    assert sent > 0  # the live rule alerts through the channel

    def counts() -> list[int]:
        with sqlite3.connect(tmp_path / "monitor.db") as db:
            tables = ("matches", "alerts", "deliveries", "articles")
            return [db.execute(f"select count(*) from {t}").fetchone()[0] for t in tables]

    before = counts()
    for args in (["principals-meet"], ["trial"], ["--query", "actor:antony-blinken"]):
        result = cli.invoke(main, ["rules", "test", *args, "-c", str(config)])
        assert result.exit_code == 0, result.output
    assert len(webhook.received) == sent and counts() == before
    # --since counts by when articles were fetched: one of the five fetched 40 days ago
    long_ago = f"{datetime.now(UTC) - timedelta(days=40):%Y-%m-%d %H:%M:%S.%f}"
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        db.execute("update articles set fetched_at = ? where id = 1", (long_ago,))
    query = ["rules", "test", "--query", "actor:antony-blinken", "-c", str(config)]
    for since, examined in (("30d", 4), ("41d", 5)):
        report = json.loads(cli.invoke(main, [*query, "--since", since, "--format", "json"]).stdout)
        assert report["examined"] == examined, since


def test_rules_test_draws_a_progress_bar_on_a_terminal(polled: Path) -> None:
    """On a terminal, standard error shows how far the backtest has gone (5 articles here)."""
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "rules", "test", "trial", "-c", str(polled)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
            check=False,
        )
        os.close(terminal)
        drawn = b""
        while select.select([controller], [], [], 1)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal is closed and everything has been read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0
    assert re.search(rb"matching\s+\[#+\]\s+5/5", drawn), drawn
    assert b"of 5 articles would have matched" in done.stdout


def test_rules_test_on_a_folder_and_its_mistakes(cli: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("pos01.json", "pos05.json", "neg01.json"):
        (folder / name).write_bytes((DATA / "articles" / name).read_bytes())
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    undated = folder / "note.txt"  # no date of its own: it takes its file's, as when polled
    undated.write_text("Blinken lands in Beijing\n\nAntony Blinken arrived.", encoding="utf-8")
    when = datetime(2024, 3, 5, 12, tzinfo=UTC).timestamp()
    os.utime(undated, (when, when))
    query = ["rules", "test", "--query", "actor:antony-blinken", "--folder", str(folder)]
    result = cli.invoke(main, query)
    assert result.exit_code == 0, result.output
    assert "3 of 4 articles would have matched" in result.stdout
    per_day = ("2023-02-18", "2023-06-18", "2024-03-05")
    assert all(day in result.stdout for day in per_day)
    assert f"skipped {folder / 'broken.json'}" in result.stdout
    report = json.loads(cli.invoke(main, [*query, "--format", "json"]).stdout)
    assert sorted(report["per_day"]) == list(per_day)
    both = cli.invoke(main, ["rules", "test", "x", "--query", "y"])
    assert both.exit_code == 2 and "not both" in both.output
    for narrowed in (["--since", "30d"], ["--source", "seeds"]):
        ignored = cli.invoke(main, [*query, *narrowed])
        assert ignored.exit_code == 2 and "not with --folder" in ignored.output
    bad = cli.invoke(main, ["rules", "test", "--query", "actor:nobody", "--folder", str(folder)])
    assert (
        bad.exit_code == 1
        and "unknown actor id 'nobody' (not in the watchlist) at position 6" in bad.output
    )


def test_sources_shows_each_sources_health(cli: CliRunner, polled: Path) -> None:
    table = cli.invoke(main, ["sources", "-c", str(polled)])
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()[:2]
    assert header.split()[:2] == ["source", "status"]
    assert row.split()[:2] == ["seeds", "ok"]
    [record] = [
        json.loads(line)
        for line in cli.invoke(
            main, ["sources", "--format", "json", "-c", str(polled)]
        ).stdout.splitlines()
    ]
    assert record["name"] == "seeds" and record["status"] == "ok"
    assert record["error_count"] == 0 and record["overflows"] == 0
    assert record["items_per_day"] == 5 * 24  # five documents in the source's first hour
