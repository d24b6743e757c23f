"""The real daemon killed with SIGKILL again and again, at random moments, while feeds gain items:
nothing is lost and nothing is stored twice.

Kills are aimed at the three moments that matter: a fetch in flight (one feed answers slowly),
a write transaction (the database's write lock is held) and a delivery in flight (the webhook
answers slowly). After the last kill the daemon runs until everything is stored and sent, and
stops on SIGTERM; the database is then read directly. A delivery may be repeated, but only when
a kill fell between sending it and recording it, so there are never more repeats than kills; its
claim runs out within the store's DELIVERY_LEASE, and until then its channel waits, in order.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import rss
from endpoints import WebhookEndpoint
from feedserver import FeedServer

SEED = 20261122
KILLS = 15
KILL_DELAY = (0.2, 2.0)  # seconds after the daemon says it started
AIM_FOR = 0.5  # seconds a kill waits, after its delay, for the moment it aims at
FEEDS = ("alpha", "bravo", "charlie", "slow")
SLOW_FEED_DELAY = 1.5  # seconds the slow feed takes to answer
WEBHOOK_DELAY = 0.05  # seconds the webhook takes to answer
ITEM_EVERY = 1.0  # seconds between new items, while the daemon is being killed
EVERY_RULE, SOME_RULE = "every-zebra", "some-quagga"  # every item says zebra, a third quagga
STARTED = "daemon started"
RSS_TYPE = {"Content-Type": "application/rss+xml"}


def wait_for(condition: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


@dataclass
class Feeds:
    """Feeds on the server that gain items; ``served`` is every item the feeds hold (the test
    waits until the daemon has fetched them all)."""

    server: FeedServer
    chooser: random.Random
    items: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for name in FEEDS:
            self.items[name] = []
            self._publish(name)

    def add(self) -> None:
        with self._lock:
            name = self.chooser.choice(FEEDS)
            self.count += 1
            number = self.count
            words = "zebra quagga" if number % 3 == 0 else "zebra"
            self.items[name].append(
                {
                    "title": f"Report {number} from {name}",
                    "url": f"https://example.org/{name}/{number}",
                    "published": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
                    "text": f"A {words} crossing was seen by observer number {number}.",
                }
            )
            self._publish(name)

    def _publish(self, name: str) -> None:
        delay = SLOW_FEED_DELAY if name == "slow" else 0.0
        self.server.route(f"/{name}.xml", rss(self.items[name]), headers=RSS_TYPE, delay=delay)

    @property
    def served(self) -> list[dict[str, str]]:
        with self._lock:
            return [item for items in self.items.values() for item in items]


@pytest.fixture
def config(tmp_path: Path, feed_server: FeedServer, webhook: WebhookEndpoint) -> Path:
    sources = "".join(
        f"""
[[sources]]
name = "{name}"
url = "{feed_server.url(f"/{name}.xml")}"
interval = "1s"
backfill = "all"
"""
        for name in FEEDS
    )
    path = tmp_path / "monitor.toml"
    path.write_text(f"""
[database]
url = "sqlite:///{tmp_path / "monitor.db"}"

[fetch]
timeout = "5s"
deadline = "5s"
allow_private_networks = true  # the feeds are served on 127.0.0.1

[daemon]
tick = "1s"
delivery_tick = "1s"
concurrency = 2
retry_base = "1s"
{sources}
[[channels]]
name = "hook"
url = "json://127.0.0.1:{webhook.port}/alerts"

[[rules]]
name = "{EVERY_RULE}"
query = "zebra"
channels = ["hook"]

[[rules]]
name = "{SOME_RULE}"
query = "quagga"
channels = ["hook"]
""")
    return path


class Daemons:
    """Starts the daemon, each run logging to a file of its own; kills what is left at the end."""

    def __init__(self, config: Path, folder: Path) -> None:
        self.config = config
        self.folder = folder
        self.runs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.folder / f"run-{len(self.runs):02d}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "-c", str(self.config)],
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.runs.append((process, log))
        return process

    def wait_started(self, timeout: float = 30) -> None:
        if not wait_for(lambda: STARTED in self.log(), timeout):
            pytest.fail(f"the daemon did not start: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.runs[-1][1].read_text(errors="replace")

    def close(self) -> None:
        for process, _ in self.runs:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@pytest.fixture
def daemons(config: Path, tmp_path: Path) -> Iterator[Daemons]:
    started = Daemons(config, tmp_path)
    yield started
    started.close()


def writing(database: Path) -> bool:
    """True while another connection holds the database's write lock (a write transaction)."""
    if not database.exists():
        return False
    db = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    finally:
        db.close()


@pytest.mark.crash
@pytest.mark.timeout(300)  # about a minute of kills, then up to 90 s to settle, then checks
def test_sigkill_at_random_moments_loses_nothing_and_duplicates_nothing(
    daemons: Daemons,
    feed_server: FeedServer,
    webhook: WebhookEndpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    began = time.monotonic()
    chance = random.Random(SEED)
    feeds = Feeds(feed_server, random.Random(SEED + 1))
    webhook.delay = WEBHOOK_DELAY
    database = tmp_path / "monitor.db"
    adding = threading.Event()
    adding.set()

    def add_items() -> None:
        while adding.is_set():
            feeds.add()
            time.sleep(ITEM_EVERY)

    adder = threading.Thread(target=add_items, daemon=True)
    adder.start()

    aims: dict[str, Callable[[], bool]] = {  # in turn
        "delivery": lambda: webhook.in_flight > 0,
        "fetch": lambda: feed_server.in_flight > 0,
        "transaction": lambda: writing(database),
    }
    landed: Counter[str] = Counter()
    try:
        for kill in range(KILLS):
            daemon = daemons.start()
            daemons.wait_started()
            time.sleep(chance.uniform(*KILL_DELAY))
            aim = list(aims)[kill % len(aims)]
            wait_for(aims[aim], AIM_FOR, every=0.005)
            moment = [name for name, now in aims.items() if now()]
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=10)
            landed.update(moment or ["none of these"])
    finally:
        adding.clear()
        adder.join(timeout=5)

    killing = time.monotonic() - began
    served = feeds.served
    expected_alerts = {(EVERY_RULE, i["title"]) for i in served} | {
        (SOME_RULE, i["title"]) for i in served if "quagga" in i["text"]
    }
    daemon = daemons.start()
    daemons.wait_started()
    done = wait_for(
        lambda: settled(database, len(served), len(expected_alerts)), timeout=90, every=0.2
    )
    settling = time.monotonic() - began - killing
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=15) == 0, daemons.log()[-3000:]
    assert done, f"not settled: {summary(database)}\n{sources(database)}\n{daemons.log()[-4000:]}"

    with closing(sqlite3.connect(database)) as db:
        articles = Counter(r[0] for r in db.execute("select guid from articles"))
        matches = Counter(
            db.execute(
                "select m.rule, a.title from matches m join articles a on a.id = m.article_id"
                " where m.alerted"
            ).fetchall()
        )
        in_order = db.execute(
            "select l.rule, a.title from alerts l join articles a on a.id = l.article_id"
            " order by l.id"
        ).fetchall()
        deliveries = db.execute(
            "select status, count(*) from deliveries group by status"
        ).fetchall()

    assert articles == Counter(i["url"] for i in served)  # every served item, exactly once
    assert matches == Counter(expected_alerts)  # one alerting match per rule and article
    assert Counter(in_order) == Counter(expected_alerts)  # and one alert
    assert deliveries == [("sent", len(expected_alerts))]  # one delivery each, all sent

    arrivals = [alert for body in webhook.received for alert in received_alerts(body)]
    received = Counter(arrivals)
    assert set(received) == expected_alerts  # every alert arrived, and nothing else did
    assert list(dict.fromkeys(arrivals)) == in_order  # first arrivals in alert order
    duplicates = len(arrivals) - len(received)
    elapsed = time.monotonic() - began
    with capsys.disabled():
        print(
            f"\ncrash test: kills={KILLS} items={len(served)} alerts={len(expected_alerts)} "
            f"duplicates={duplicates} time={elapsed:.1f}s (killing {killing:.1f}s, settling "
            f"{settling:.1f}s); kills landed during: "
            + ", ".join(f"{k} {v}" for k, v in sorted(landed.items()))
        )
    # a kill can repeat the message in flight, which carries both rules' alerts of an article
    assert duplicates <= 2 * KILLS


def settled(database: Path, articles: int, alerts: int) -> bool:
    counts = summary(database)
    return counts == {"articles": articles, "alerts": alerts, "sent": alerts}


def sources(database: Path) -> list[tuple[object, ...]]:
    """Each source's schedule and health, to say why a run did not settle."""
    with closing(sqlite3.connect(database)) as db:
        return db.execute(
            "select name, error_count, last_error, next_check_at, disabled_at from sources"
        ).fetchall()


def summary(database: Path) -> dict[str, int]:
    with closing(sqlite3.connect(database)) as db:
        return {
            "articles": db.execute("select count(*) from articles").fetchone()[0],
            "alerts": db.execute("select count(*) from alerts").fetchone()[0],
            "sent": db.execute("select count(*) from deliveries where status = 'sent'").fetchone()[
                0
            ],
        }


def received_alerts(body: dict[str, object]) -> list[tuple[str, str]]:
    """(rule, article title) from the subject a JSON webhook receives: "[rule] title", or
    "[rule, other rule] title" for one message about an article both rules matched."""
    found = re.fullmatch(r"\[([^\]]+)\] (.*)", str(body.get("title")))
    assert found, body
    return [(rule, found[2]) for rule in found[1].split(", ")]
