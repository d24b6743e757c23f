"""The real daemon as a subprocess: it alerts within one poll interval of an item appearing,
and exits cleanly on SIGTERM (at once on a second signal)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import article_item, rss
from endpoints import WebhookEndpoint
from feedserver import FeedServer

RSS_TYPE = {"Content-Type": "application/rss+xml"}


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def daemon_config(tmp_path: Path, feed_server: FeedServer, webhook: WebhookEndpoint) -> Path:
    config = tmp_path / "monitor.toml"
    config.write_text(f"""
[database]
url = "sqlite:///{tmp_path / "monitor.db"}"

[fetch]
deadline = "3s"
allow_private_networks = true  # the feed server is on 127.0.0.1

[daemon]
tick = "1s"
delivery_tick = "1s"

[[sources]]
name = "world"
url = "{feed_server.url("/world.xml")}"
interval = "1s"

[[channels]]
name = "hook"
url = "json://127.0.0.1:{webhook.port}/alerts"

[[channels]]
name = "console"
kind = "console"

[[rules]]
name = "principals"
query = "actor:antony-blinken OR actor:xi-jinping"
channels = ["hook", "console"]
""")
    return config


@pytest.fixture
def start_daemon(
    daemon_config: Path, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(daemon_config)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def sent_deliveries(folder: Path) -> int:
    with sqlite3.connect(folder / "monitor.db") as db:
        return int(
            db.execute("select count(*) from deliveries where status = 'sent'").fetchone()[0]
        )


def test_daemon_alerts_within_one_interval_and_stops_on_sigterm(
    start_daemon: Callable[[], subprocess.Popen[str]],
    feed_server: FeedServer,
    webhook: WebhookEndpoint,
    tmp_path: Path,
) -> None:
    feed_server.route("/world.xml", rss([article_item("neg01.json")]), headers=RSS_TYPE)
    daemon = start_daemon()
    assert wait_for(lambda: feed_server.hits["/world.xml"] >= 2, timeout=20), "never polled"
    assert webhook.received == []  # the first poll alerts nothing

    feed_server.route(
        "/world.xml",
        rss([article_item("pos01.json"), article_item("neg01.json")]),
        headers=RSS_TYPE,
    )
    appeared = time.monotonic()
    assert wait_for(lambda: len(webhook.received) == 1, timeout=15), "no alert arrived"
    latency = time.monotonic() - appeared
    assert latency < 1 + 2 + 2  # interval + tick + delivery tick
    assert "Blinken meets with China" in json.dumps(webhook.received[0])

    assert wait_for(lambda: sent_deliveries(tmp_path) == 2, timeout=10)  # hook and console

    daemon.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    out, err = daemon.communicate(timeout=10)
    assert daemon.returncode == 0, err
    assert time.monotonic() - stopped < 5
    assert "ALERT [principals] Blinken meets with China" in out
    assert "daemon stopped" in err
    assert len(webhook.received) == 1  # exactly once


def test_a_slow_channel_does_not_fill_the_log_with_skipped_runs(
    start_daemon: Callable[[], subprocess.Popen[str]],
    feed_server: FeedServer,
    webhook: WebhookEndpoint,
) -> None:
    """A delivery that takes longer than the delivery tick holds the next ticks back: by
    design, one run at a time, and nothing to warn about."""
    feed_server.route("/world.xml", rss([article_item("neg01.json")]), headers=RSS_TYPE)
    webhook.delay = 2.5  # two delivery ticks and more, within the channel's 4 s timeout
    daemon = start_daemon()
    assert wait_for(lambda: feed_server.hits["/world.xml"] >= 2, timeout=20), "never polled"
    feed_server.route(
        "/world.xml",
        rss([article_item("pos01.json"), article_item("neg01.json")]),
        headers=RSS_TYPE,
    )
    assert wait_for(lambda: len(webhook.received) == 1, timeout=20), "no alert arrived"
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=15)
    assert daemon.returncode == 0, err
    assert "skipped" not in err and "WARNING" not in err, err


def test_sigterm_finishes_the_fetch_in_flight_and_a_second_signal_exits_at_once(
    start_daemon: Callable[[], subprocess.Popen[str]], feed_server: FeedServer, tmp_path: Path
) -> None:
    body = rss([article_item("neg01.json")])
    feed_server.route("/world.xml", body, headers=RSS_TYPE, delay_per_byte=0.01)  # ~5 s
    daemon = start_daemon()
    assert wait_for(lambda: feed_server.hits["/world.xml"] >= 1, timeout=20)
    daemon.send_signal(signal.SIGTERM)  # mid-fetch: the fetch ends at its 3 s deadline
    daemon.communicate(timeout=10)
    assert daemon.returncode == 0
    with sqlite3.connect(tmp_path / "monitor.db") as db:  # the fetch in flight was recorded
        [(status, error)] = db.execute("select status, error from fetches").fetchall()
    assert status == "error" and "deadline" in error

    daemon = start_daemon()
    assert wait_for(lambda: feed_server.hits["/world.xml"] >= 2, timeout=20)
    daemon.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    daemon.send_signal(signal.SIGTERM)
    forced = time.monotonic()
    daemon.communicate(timeout=10)
    assert daemon.returncode == 130
    assert time.monotonic() - forced < 2


def descendants(pid: int) -> set[int]:
    """The processes started by ``pid``, and by them in turn (Linux)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_hostile_feed_is_refused_and_sigterm_stops_the_parsing_processes(
    start_daemon: Callable[[], subprocess.Popen[str]],
    daemon_config: Path,
    feed_server: FeedServer,
    tmp_path: Path,
) -> None:
    laughs = Path(__file__).parent / "data" / "feeds" / "illformed" / "bomb_billion_laughs.xml"
    feed_server.route("/laughs.xml", laughs.read_bytes(), headers=RSS_TYPE)
    feed_server.route("/world.xml", rss([article_item("neg01.json")]), headers=RSS_TYPE)
    with daemon_config.open("a", encoding="utf-8") as config:
        config.write(f'[[sources]]\nname = "laughs"\nurl = "{feed_server.url("/laughs.xml")}"\n')
    daemon = start_daemon()
    assert wait_for(lambda: feed_server.hits["/world.xml"] >= 2, timeout=20), "never polled"
    assert wait_for(lambda: feed_server.hits["/laughs.xml"] >= 1, timeout=5)
    started = descendants(daemon.pid)
    assert started, "no parsing process"

    daemon.send_signal(signal.SIGTERM)
    daemon.communicate(timeout=10)

    assert daemon.returncode == 0
    assert wait_for(lambda: not any(running(pid) for pid in started), timeout=5)
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        errors = db.execute(
            "select f.status, f.error from fetches f join sources s on s.id = f.source_id "
            "where s.name = 'laughs'"
        ).fetchall()
        stored = db.execute(
            "select count(*) from articles a join sources s on s.id = a.source_id "
            "where s.name = 'laughs'"
        ).fetchone()[0]
    assert errors and all(
        status == "error" and "declares XML entities" in error for status, error in errors
    )
    assert stored == 0
