"""The machine misbehaves: a full disk or a locked database makes a poll fail with a clear
error and change nothing, and the next poll, once the fault is gone, stores everything — on a
real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LOCAL_FETCH, article_item, rss
from feedserver import FeedServer
from sqlalchemy import event

from monitor import store as store_module
from monitor.config import parse_config
from monitor.errors import StoreError
from monitor.fetch import Fetcher
from monitor.pipeline import Pipeline
from monitor.runtime import load_runtime
from monitor.store import LogFilter, Store


@pytest.fixture
def polling(tmp_path: Path, feed_server: FeedServer) -> Iterator[Pipeline]:
    items = []
    for n in range(20):  # enough text to need new pages in the database
        item = article_item("pos01.json")
        title, url = f"{item['title']} ({n})", f"{item['url']}/{n}"
        items.append({**item, "title": title, "url": url, "text": item["text"] * 8})
    feed_server.route("/feed", rss(items), headers={"Content-Type": "application/rss+xml"})
    config = parse_config(
        f'[database]\nurl = "sqlite:///{tmp_path / "faults.db"}"\n'
        f'[[sources]]\nname = "news"\nurl = "{feed_server.url("/feed")}"\nbackfill = "all"\n'
        '[[channels]]\nname = "console"\nkind = "console"\n'
        '[[rules]]\nname = "principals"\nquery = "actor:antony-blinken"\nchannels = ["console"]\n',
        origin="faults.toml",
        base_dir=tmp_path,
    )
    store = Store.open(config.database.url)
    store.upgrade()
    pipeline = Pipeline(load_runtime(config, channels={}), store, Fetcher(LOCAL_FETCH))
    pipeline.prepare()
    yield pipeline
    pipeline.close()


def test_a_full_disk_fails_the_poll_and_loses_nothing(polling: Pipeline) -> None:
    store = polling.store
    before = store.source_state("news")

    def no_room(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")  # not one page more

    store.engine.dispose()
    event.listen(store.engine, "connect", no_room)
    source = polling.runtime.config.sources[0]
    with pytest.raises(StoreError, match="database or disk is full"):
        polling.poll_source(source)
    assert store.source_state("news") == before  # still due, validators unchanged
    assert store.counts()["articles"] == 0

    event.remove(store.engine, "connect", no_room)
    store.engine.dispose()
    report = polling.poll_source(source)
    # twenty copies of one wire story: one story, one alert, and every match recorded
    assert (report.status, report.new, report.alerts) == ("ok", 20, 1)
    assert len(store.alerts(LogFilter())) == 1
    fates = store.fates(LogFilter())
    assert len(fates) == 20 and sorted({f.outcome for f in fates}) == ["alert", "grouped"]


def test_a_locked_database_fails_the_poll_and_the_next_one_stores_it(
    polling: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    polling.store.engine.dispose()  # new connections wait 200 ms for a lock, not 30 s
    other = sqlite3.connect(tmp_path / "faults.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another program holds the database
    source = polling.runtime.config.sources[0]
    try:
        with pytest.raises(StoreError, match="database is locked"):
            polling.poll_source(source)
    finally:
        other.execute("ROLLBACK")
        other.close()
    report = polling.poll_source(source)
    assert (report.status, report.new) == ("ok", 20)
    assert polling.store.counts()["articles"] == 20
