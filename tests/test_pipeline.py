"""The orchestrator's decisions: which first-poll items alert (backfill), and folder sources
that pick up new documents, on real files and a real SQLite database."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import LOCAL_FETCH, REPO, rss
from feedserver import FeedServer

from monitor.config import parse_config
from monitor.fetch import Fetcher
from monitor.pipeline import Pipeline
from monitor.runtime import load_runtime
from monitor.store import LogFilter, Store

NOW = datetime(2023, 11, 14, 12, 0, tzinfo=UTC)
RULE = '[[rules]]\nname = "principals"\nquery = "actor:antony-blinken OR actor:xi-jinping"\n'


def pipeline_for(tmp_path: Path, sources: str, clock: list[datetime]) -> Pipeline:
    text = f'[database]\nurl = "sqlite:///{tmp_path / "p.db"}"\n{sources}\n{RULE}'
    config = parse_config(text, origin="test.toml", base_dir=tmp_path)
    store = Store.open(config.database.url)
    store.upgrade()
    pipeline = Pipeline(load_runtime(config), store, Fetcher(LOCAL_FETCH), clock=lambda: clock[0])
    pipeline.prepare()
    return pipeline


def item(title: str, published: datetime | None) -> dict[str, str]:
    return {
        "title": title,
        "text": "Xi Jinping and Joe Biden met in Woodside.",
        "url": f"https://example.org/{title.replace(' ', '-')}",
        "published": (published or NOW).isoformat(),
    }


def test_a_finite_backfill_alerts_only_on_recent_items(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    items = [item("yesterday", NOW - timedelta(days=1)), item("last week", NOW - timedelta(days=7))]
    feed_server.route("/feed", rss(items), headers={"Content-Type": "application/rss+xml"})
    sources = f'[[sources]]\nname = "news"\nurl = "{feed_server.url("/feed")}"\nbackfill = "2d"\n'
    clock = [NOW]
    pipeline = pipeline_for(tmp_path, sources, clock)
    [report] = pipeline.poll_all()
    assert (report.new, report.alerts) == (2, 1)
    [alert] = pipeline.store.alerts(LogFilter())
    assert alert.title == "yesterday"
    # every later new item alerts, whatever its date
    feed_server.route(
        "/feed",
        rss([item("old but new here", NOW - timedelta(days=30)), *items]),
        headers={"Content-Type": "application/rss+xml"},
    )
    clock[0] = NOW + timedelta(hours=1)
    [report] = pipeline.poll_all()
    assert (report.new, report.alerts) == (1, 1)
    pipeline.close()


def test_a_folder_source_picks_up_new_documents(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settled = time.time() - 60
    for name in ("000_81446209d6b7f92d.txt", "001_1890e989d0248038.txt"):
        shutil.copy(REPO / "seeds" / "corpus" / name, inbox / name)
        os.utime(inbox / name, (settled, settled))
    clock = [NOW]
    pipeline = pipeline_for(tmp_path, '[[sources]]\nname = "inbox"\npath = "inbox"\n', clock)
    [report] = pipeline.poll_all()
    assert (report.items, report.new, report.alerts) == (2, 2, 0)  # first poll: no backfill

    document = {
        "title": "Xi Jinping to attend APEC",
        "text": "Xi Jinping will travel to San Francisco.",
    }
    (inbox / "new.json").write_text(json.dumps(document))
    [report] = pipeline.poll_all()
    assert report.new == 0  # just written: it may still be being written, so it waits
    # and is looked at again as soon as it has settled, not a whole interval later
    next_check = pipeline.store.source_state("inbox").next_check_at
    assert next_check is not None and next_check <= clock[0] + timedelta(seconds=3)
    os.utime(inbox / "new.json", (settled, settled))
    (inbox / "notes").mkdir()
    (inbox / "notes" / "ignored.pdf").write_bytes(b"%PDF")
    [report] = pipeline.poll_all()
    assert (report.items, report.new, report.alerts) == (3, 1, 1)
    [article] = pipeline.store.articles(LogFilter(source="inbox", actor="xi-jinping", limit=1))
    assert article.title == "Xi Jinping to attend APEC"
    assert article.url == (inbox / "new.json").resolve().as_uri()
    pipeline.close()


def test_short_intervals_are_allowed_with_a_warning(tmp_path: Path) -> None:
    text = '[[sources]]\nname = "fast"\nurl = "https://example.org/feed"\ninterval = "10s"\n' + RULE
    runtime = load_runtime(parse_config(text, origin="t.toml", base_dir=tmp_path), channels={})
    assert any("fast" in w and "under a minute" in w for w in runtime.warnings)


def test_a_weak_alias_that_reads_like_a_strong_one_is_named_in_a_warning(tmp_path: Path) -> None:
    (tmp_path / "watchlist.toml").write_text(
        '[[actors]]\nid = "zurich"\nname = "Zürich"\nkind = "place"\n'
        'weak_aliases = ["ZURICH", "Zurich Re"]\n'
        '[[topics]]\nname = "Tariffs"\nterms = ["tariff"]\nweak_terms = ["Tariff", "duty"]\n',
        encoding="utf-8",
    )
    rule = '[[rules]]\nname = "zurich"\nquery = "actor:zurich"\n'
    text = '[watchlist]\nfiles = ["watchlist.toml"]\n' + rule
    runtime = load_runtime(parse_config(text, origin="t.toml", base_dir=tmp_path), channels={})
    assert [w for w in runtime.warnings if w.startswith("watchlist:")] == [
        "watchlist: actor 'zurich': weak_aliases 'ZURICH' matches like its strong form 'Zürich' "
        "(case and accents aside) and counts as strong; drop it from weak_aliases",
        "watchlist: topic 'tariffs': weak_terms 'Tariff' matches like its strong form 'tariff' "
        "(case and accents aside) and counts as strong; drop it from weak_terms",
    ]
