"""The story stage on real texts, through the real pipeline and a real database: the seed
corpus, syndicated copies, one article reached through several feeds, the window, and real
unrelated items."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, LOCAL_FETCH, REPO, article_item, rss
from feedserver import FeedServer

from monitor.cli import main
from monitor.config import parse_config
from monitor.fetch import Fetcher
from monitor.pipeline import Pipeline
from monitor.runtime import load_runtime
from monitor.store import LogFilter, Store, StoryRecord
from monitor.stories import (
    MIN_SHINGLES,
    NEAR_DUPLICATE,
    NUM_PERM,
    _shingles,
    band_keys,
    near_duplicate,
    text_signature,
)

NOW = datetime(2023, 6, 20, 12, 0, tzinfo=UTC)
RSS_TYPE = {"Content-Type": "application/rss+xml"}
SEEDS = sorted((REPO / "seeds" / "corpus").glob("*.txt"))


def pipeline_for(url: str, tmp_path: Path, sources: str, now: datetime = NOW) -> Pipeline:
    text = f'[database]\nurl = "{url}"\n{sources}'
    config = parse_config(text, origin="test.toml", base_dir=tmp_path)
    store = Store.open(config.database.url)
    store.upgrade()
    pipeline = Pipeline(load_runtime(config), store, Fetcher(LOCAL_FETCH), clock=lambda: now)
    pipeline.prepare()
    return pipeline


def seed_stories(url: str, tmp_path: Path) -> list[StoryRecord]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settled = time.time() - 60  # a file just written may still be being written: it waits
    for path in SEEDS:
        shutil.copy(path, inbox / path.name)
        os.utime(inbox / path.name, (settled, settled))
    pipeline = pipeline_for(url, tmp_path, '[[sources]]\nname = "seeds"\npath = "inbox"\n')
    pipeline.poll_all()
    stories = pipeline.store.stories(LogFilter())
    pipeline.close()
    return stories


def grouping(stories: list[StoryRecord]) -> set[frozenset[str]]:
    """The seed files of each story, by their number."""
    return {frozenset(Path(a.url or "").name[:3] for a in s.articles) for s in stories}


def test_the_seed_corpus_makes_three_stories(tmp_path: Path) -> None:
    stories = seed_stories(f"sqlite:///{tmp_path / 'm.db'}", tmp_path)
    assert grouping(stories) == {
        frozenset({"000"}),
        frozenset({"001", "002", "003"}),
        frozenset({"004"}),
    }
    trip = next(s for s in stories if s.story.articles == 3)
    assert trip.story.outlets == ("seeds",)
    assert "antony-blinken" in trip.story.actors


def test_the_seed_corpus_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    assert len(grouping(seed_stories(postgres_url, tmp_path))) == 3


def feed_sources(server: FeedServer, names: list[str]) -> str:
    return "".join(f'[[sources]]\nname = "{n}"\nurl = "{server.url("/" + n)}"\n' for n in names)


def edited(item: dict[str, str], outlet: str, n: int) -> dict[str, str]:
    """A syndicated copy: another outlet's URL, the dateline and one sentence changed."""
    text = item["text"].replace(". ", f". (Reporting by desk {n}.) ", 1)
    return {**item, "url": f"https://{outlet}/world/{n}", "text": f"{outlet.upper()} — {text}"}


def test_a_wire_story_republished_with_small_edits_is_duplicates_in_one_story(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    wire = article_item("pos01.json")
    outlets = ["www.example-times.com", "news.example.org", "example.net"]
    for n, outlet in enumerate(outlets):
        feed_server.route(f"/{n}", rss([edited(wire, outlet, n)]), headers=RSS_TYPE)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    pipeline = pipeline_for(url, tmp_path, feed_sources(feed_server, ["0", "1", "2"]))
    pipeline.poll_all()
    [story] = pipeline.store.stories(LogFilter())
    pipeline.close()
    first, *copies = story.articles
    assert first.duplicate_of is None and [a.duplicate_of for a in copies] == [first.id] * 2
    assert set(story.story.outlets) == {"example-times.com", "news.example.org", "example.net"}


def test_in_one_poll_a_copy_of_a_copy_repeats_the_first(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """The second has the first's title, the third the second's URL: both repeat the first."""
    first = article_item("pos05.json")
    second = {**first, "url": "https://news.example.org/world/5"}
    third = {**second, "url": second["url"] + "?utm_source=rss", "title": "Another headline"}
    feed_server.route("/a", rss([first, second, third]), headers=RSS_TYPE)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    pipeline = pipeline_for(url, tmp_path, feed_sources(feed_server, ["a"]))
    pipeline.poll_all()
    [story] = pipeline.store.stories(LogFilter())
    pipeline.close()
    original, *copies = story.articles
    assert original.duplicate_of is None and [a.duplicate_of for a in copies] == [original.id] * 2


def test_one_article_through_two_feeds_and_an_aggregator_link_is_one(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    item = article_item("pos05.json")
    tracked = {**item, "url": item["url"] + "?utm_source=rss&utm_medium=feed"}
    redirect = {**item, "url": "https://news.example.com/redirect?u=" + item["url"]}
    redirect["text"] = item["text"][: len(item["text"]) // 3]  # an aggregator's excerpt
    feed_server.route("/a", rss([tracked]), headers=RSS_TYPE)
    feed_server.route("/b", rss([redirect]), headers=RSS_TYPE)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    pipeline = pipeline_for(url, tmp_path, feed_sources(feed_server, ["a", "b"]))
    pipeline.poll_all()
    [story] = pipeline.store.stories(LogFilter())
    pipeline.close()
    assert story.story.articles == 2
    assert story.articles[1].duplicate_of == story.articles[0].id


def test_the_same_story_beyond_the_window_starts_a_new_one(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    item = article_item("pos01.json")
    later = {**edited(item, "example.net", 1), "published": "2023-03-20T12:00:00+00:00"}
    feed_server.route("/a", rss([item]), headers=RSS_TYPE)
    feed_server.route("/b", rss([later]), headers=RSS_TYPE)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    pipeline = pipeline_for(url, tmp_path, feed_sources(feed_server, ["a", "b"]))
    pipeline.poll_all()
    stories = pipeline.store.stories(LogFilter())
    pipeline.close()
    assert [s.story.articles for s in stories] == [1, 1]
    assert all(a.duplicate_of is None for s in stories for a in s.articles)


def labelled_items() -> list[dict[str, str]]:
    items = []
    for path in sorted((DATA / "labelled").glob("*.json")):
        item = json.loads(path.read_text(encoding="utf-8"))
        if item.get("published") and item.get("url"):
            text = "\n\n".join(p for p in (item.get("summary"), item.get("text")) if p)
            items.append({**item, "text": text})
    return items


def test_unrelated_real_items_do_not_merge(tmp_path: Path, feed_server: FeedServer) -> None:
    items = labelled_items()
    feed_server.route("/all", rss(items), headers=RSS_TYPE)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    now = datetime(2024, 3, 1, tzinfo=UTC)
    pipeline = pipeline_for(url, tmp_path, feed_sources(feed_server, ["all"]), now)
    pipeline.poll_all()
    stories = pipeline.store.stories(LogFilter(limit=1000))
    pipeline.close()
    in_stories = sum(s.story.articles for s in stories)
    largest = max(s.story.articles for s in stories)
    assert in_stories >= len(items) // 2  # most name a tracked actor or topic
    assert len(stories) >= in_stories * 2 // 3  # mostly stories of one article
    assert largest <= 6
    for s in stories:
        assert s.story.last_seen - s.story.first_seen <= timedelta(days=3) * s.story.articles


def test_signatures_and_bands_stay_the_ones_stored() -> None:
    """Signatures and band keys of real texts are the ones the database holds: a change of
    tokens, of rensa's hashing or of the bands (which would leave every stored article
    uncomparable with new ones) fails here and needs a migration that works them out again."""
    digest = hashlib.sha256()
    signed = 0
    for item in labelled_items():
        signature = text_signature(item["title"], item["text"])
        if signature is not None:
            assert len(signature) == 4 * NUM_PERM
            digest.update(signature)
            digest.update(repr(band_keys(signature)).encode())
            signed += 1
    assert signed >= len(labelled_items()) - 2
    assert digest.hexdigest() == SIGNATURES_DIGEST


SIGNATURES_DIGEST = "214d2cb74afdfb4bfd2f663b5ebfc6ec885cdb8037f0da3a15d8a4c45c4253db"


def test_signatures_estimate_the_shingles_overlap() -> None:
    """On real texts and copies of them with the last part cut, rewritten or added to, the
    share of equal values in two signatures is the Jaccard similarity of their shingles
    within what 64 permutations can tell (a standard error of about 0.06)."""
    item = labelled_items()[0]
    words = item["text"].split()
    edits = {
        "cut": " ".join(words[: len(words) * 9 // 10]),
        "rewritten": " ".join(
            words[: len(words) // 2] + [w + "x" for w in words[len(words) // 2 :]]
        ),
        "added to": item["text"] + " " + labelled_items()[1]["text"],
    }
    original = set(_shingles(f"{item['title']}\n{item['text']}"))
    signature = text_signature(item["title"], item["text"])
    assert signature is not None
    for name, edited in edits.items():
        shingles = set(_shingles(f"{item['title']}\n{edited}"))
        jaccard = len(original & shingles) / len(original | shingles)
        other = text_signature(item["title"], edited)
        assert other is not None
        same = zip(values(signature), values(other), strict=True)
        estimate = sum(a == b for a, b in same) / NUM_PERM
        assert abs(estimate - jaccard) < 0.2, (name, estimate, jaccard)
        assert near_duplicate(signature, other) == (estimate >= NEAR_DUPLICATE)


def test_only_a_text_of_enough_different_shingles_is_signed() -> None:
    """A text is signed when it holds ``MIN_SHINGLES`` different runs of three words: ten
    words are enough, nine are not, and neither is a seven-word phrase said over and over,
    however long, as it holds only seven different runs."""
    assert MIN_SHINGLES == 8
    ten = "one two three four five six seven eight nine ten"
    assert text_signature("", ten) is not None
    assert text_signature("", ten.removesuffix(" ten")) is None
    assert text_signature("Buy", "now at the lowest price ever buy " * 100) is None
    assert text_signature("Buy", "now at the lowest price ever again buy " * 100) is not None


def values(signature: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{NUM_PERM}I", signature)


def test_log_stories_as_text_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    seed_stories(url, tmp_path)
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    runner = CliRunner()
    text = runner.invoke(main, ["log", "stories", "-c", str(config)])
    assert text.exit_code == 0, text.output
    assert text.output.count("story ") == 3 and "outlets: seeds" in text.output
    assert "001_1890e989d0248038.txt" in text.output
    lines = runner.invoke(main, ["log", "stories", "-c", str(config), "--format", "json"])
    records = [json.loads(line) for line in lines.output.splitlines()]
    assert sorted(r["story"]["articles"] for r in records) == [1, 1, 3]
    assert all(len(r["articles"]) == r["story"]["articles"] for r in records)
    only = runner.invoke(main, ["log", "stories", "-c", str(config), "--limit", "1"])
    assert only.output.count("story ") == 1
