"""The store on a real SQLite file and on PostgreSQL: migrations agree with the models, SQLite
is set up for a daemon, and writing is idempotent."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from conftest import REPO
from sqlalchemy import Connection, bindparam, text

from monitor.config import SourceConfig
from monitor.errors import StoreError
from monitor.messages import build_message
from monitor.models import AlertPlan, Article, FetchOutcome, Mention, NewArticle
from monitor.resources import migrations_dir
from monitor.store import (
    _BAND_PAIRS,
    _BY_TITLE,
    _CANDIDATES,
    DELIVERY_LEASE,
    LogFilter,
    Store,
    _earlier_copies,
)
from monitor.stories import MAX_CANDIDATES, StoryFeatures, band_keys, text_signature
from monitor.tables import Base, UTCDateTime

NOW = datetime(2023, 6, 18, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    store = Store.open(url)
    store.upgrade()
    request.addfinalizer(store.close)
    return store


def test_migrations_agree_with_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_the_bands_a_poll_shares_are_looked_up_from_its_own(tmp_path: Path) -> None:
    """SQLite plans without statistics: the look-up of the articles sharing a poll's bands
    must start from the poll's bands (by article) and find the others in the covering index,
    not read every band of the window (a hundred times slower with a full log)."""
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    store.upgrade()
    query = _BAND_PAIRS.params(days=[738_000, 738_001], ids=[1, 2], reach=3).compile(
        dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
    )
    with store.engine.connect() as conn:
        plan = [r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")]
    store.close()
    searches = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
    assert searches[0].startswith("SEARCH article_bands_1 USING"), plan
    assert "(article_id=?)" in searches[0], plan
    assert searches[1].startswith(
        "SEARCH article_bands USING COVERING INDEX ix_article_bands_day_band_article"
    ), plan
    assert not any(step.startswith("SCAN article_bands") for step in plan), plan


def test_an_article_sharing_bands_with_very_many_gets_the_latest_of_them(store: Store) -> None:
    """Boilerplate text under distinct titles makes articles that share bands without being
    copies: each new one brings back only the latest few hundred of them to compare."""
    day = NOW.date().toordinal()
    with store.engine.begin() as conn:
        insert_source_and_article(conn)
        conn.execute(
            text(
                "insert into articles (source_id, key, title, summary, text, fetched_at)"
                " select source_id, :key, title, '', '', fetched_at from articles where id = 1"
            ),
            [{"key": f"guid:{n}"} for n in range(2, 601)],
        )
        ids = conn.execute(text("select id from articles order by id")).scalars().all()
        conn.execute(
            text("insert into article_bands (article_id, band, day) values (:id, 42, :day)"),
            [{"id": i, "day": day} for i in ids],
        )
        pairs = conn.execute(_BAND_PAIRS, dict(days=[day], ids=[ids[-1]], reach=3)).all()
    assert sorted(earlier for _, earlier in pairs) == ids[-1 - MAX_CANDIDATES * 5 * 4 : -1]
    assert {new for new, _ in pairs} == {ids[-1]}


def test_a_copy_is_found_among_many_older_articles_sharing_its_bands(store: Store) -> None:
    """A poll with an old item and a new one: the old one's window brings days long gone into
    the look-up, where hundreds of articles share a band with the new one; its copy of an hour
    before is still among what it is compared with."""
    wire = text_signature("t", "the minister met the delegation in the capital to talk trade " * 2)
    other = text_signature("t", "subscribe to our newsletter for more stories like this one " * 2)
    assert wire is not None and other is not None
    window = timedelta(days=3)

    def add(conn: Connection, key: str, published: datetime, minhash: bytes) -> int:
        row = dict(key=key, title=key, at=published, now=NOW, minhash=minhash)
        row["day"] = published.toordinal()
        conn.execute(
            text(
                "insert into articles (source_id, key, title, summary, text, published_at,"
                " fetched_at, minhash, day) select id, :key, :title, '', '', :at, :now,"
                " :minhash, :day from sources"
            ).bindparams(bindparam("at", type_=UTCDateTime), bindparam("now", type_=UTCDateTime)),
            row,
        )
        article_id = conn.execute(
            text("select id from articles where key = :key"), {"key": key}
        ).scalar_one()
        conn.execute(
            text("insert into article_bands (article_id, band, day) values (:id, 42, :day)"),
            {"id": article_id, "day": published.toordinal()},
        )
        return int(article_id)

    with store.engine.begin() as conn:
        insert_source_and_article(conn)
        for n in range(450):  # published from 13 days before to 7 days before
            add(conn, f"boilerplate:{n}", NOW - timedelta(days=13, hours=-n * 0.32), other)
        copy = add(conn, "wire:earlier", NOW - timedelta(hours=1), wire)
        old = add(conn, "poll:old", NOW - timedelta(days=10), other)
        new = add(conn, "poll:new", NOW, wire)
        features = [
            (old, StoryFeatures(NOW - timedelta(days=10), "x", window, None, None, other, (42,))),
            (new, StoryFeatures(NOW, "x", window, None, None, wire, (42,))),
        ]
        copies = _earlier_copies(conn, features)
    assert copy in [c.id for c in copies[new]]


def test_the_same_titles_are_looked_up_by_day(tmp_path: Path) -> None:
    """The look-up of a poll's titles seeks each day of the window in the day-first index."""
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    store.upgrade()
    query = _BY_TITLE.params(days=[738_000, 738_001], keys=["a b c d", "e f g h"]).compile(
        dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
    )
    with store.engine.connect() as conn:
        plan = [r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")]
    store.close()
    assert plan[0] == (
        "SEARCH articles USING INDEX ix_articles_day_title_key (day=? AND title_key=?)"
    ), plan


def test_the_stories_sharing_terms_are_looked_up_by_day(tmp_path: Path) -> None:
    """The look-up of the open stories sharing an article's terms seeks each day of the
    day-first index of story keys and reads nothing else of them."""
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    store.upgrade()
    days = [NOW, NOW + timedelta(days=1)]
    query = _CANDIDATES.params(keys=["actor:a", "b"], since=NOW, key_days=days, until=NOW)
    compiled = query.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
    with store.engine.connect() as conn:
        plan = [r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    store.close()
    assert (
        "SEARCH story_keys USING COVERING INDEX ix_story_keys_seen_key (last_seen_at=? AND key=?)"
        in plan
    ), plan


def test_upgrade_twice_changes_nothing(store: Store) -> None:
    store.upgrade()
    assert store.counts()["sources"] == 0


def test_sqlite_is_set_up_for_a_daemon(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    store.close()


def new_article(key: str = "guid:1") -> NewArticle:
    article = Article(
        title="Blinken meets Wang Yi",
        text="Antony Blinken met Wang Yi.",
        url="https://example.org/a",
        source="news",
        published=NOW,
    )
    mentions = (
        Mention("actor", "antony-blinken", "text", 0, 14, "Antony Blinken", "Antony Blinken"),
        Mention("actor", "wang-yi", "text", 19, 26, "Wang Yi", "Wang Yi"),
    )
    names = {("actor", "antony-blinken"): "Antony Blinken", ("actor", "wang-yi"): "Wang Yi"}
    message = build_message("principals", article, mentions, mentions, names)
    plans = (
        AlertPlan("principals", ("slack", "email"), message, mentions),
        AlertPlan("quiet", ("slack",), message, mentions, suppressed="backfill"),
    )
    return NewArticle(key, article, mentions, plans)


def test_saving_a_poll_is_idempotent(store: Store) -> None:
    store.sync_sources([SourceConfig(name="news", url="https://example.org/feed")], NOW)
    state = store.source_state("news")
    outcome = FetchOutcome(NOW, "ok", 5, NOW + timedelta(minutes=15), 200, items=1, etag='"a"')
    assert store.save_poll(state, outcome, [new_article()]).articles == 1
    assert store.save_poll(state, outcome, [new_article()]).articles == 0
    counts = store.counts()
    assert counts | {"sources": 1} == {
        "sources": 1,
        "fetches": 2,
        "articles": 1,
        "mentions": 2,
        "matches": 2,
        "alerts": 1,
        "deliveries": 2,
    }
    assert store.known_keys(state.id, ["guid:1", "guid:2"]) == {"guid:1"}
    state = store.source_state("news")
    assert state.etag == '"a"' and state.last_success_at == NOW and not state.first_poll
    [record] = store.articles(LogFilter(actor="wang-yi"))
    assert record.rules == ("principals", "quiet") and record.published == NOW


def test_a_poll_stores_what_is_new_once_in_order(store: Store) -> None:
    store.sync_sources([SourceConfig(name="news", url="https://example.org/feed")], NOW)
    state = store.source_state("news")
    outcome = FetchOutcome(NOW, "ok", 5, NOW + timedelta(minutes=15), 200, items=4)
    store.save_poll(state, outcome, [new_article("guid:1")])
    keys = ["guid:2", "guid:1", "guid:3", "guid:2"]
    saved = store.save_poll(state, outcome, [new_article(k) for k in keys])
    assert (saved.articles, saved.alerts) == (2, 2)
    assert store.counts()["mentions"] == 6
    with store.engine.connect() as conn:
        stored = conn.execute(text("select key from articles order by id")).scalars().all()
    assert stored == ["guid:1", "guid:2", "guid:3"]


def test_the_outbox(store: Store) -> None:
    store.sync_sources([SourceConfig(name="news", url="https://example.org/feed")], NOW)
    state = store.source_state("news")
    outcome = FetchOutcome(NOW, "ok", 5, NOW + timedelta(minutes=15))
    store.save_poll(state, outcome, [new_article()])
    due = store.due_deliveries(NOW)
    assert [d.channel for d in due] == ["slack", "email"]
    assert due[0].message.actors == ("Antony Blinken", "Wang Yi")
    slack, email = store.claim(due[0].id, NOW), store.claim(due[1].id, NOW)
    assert slack and email and store.claim(due[0].id, NOW) is None  # one claim at a time
    assert (slack.attempts, slack.set_aside) == (0, False)
    retry = NOW + timedelta(minutes=1)
    assert store.mark_failed(due[0].id, slack.token, "503 from Slack", retry)
    assert store.mark_sent(due[1].id, email.token, NOW)
    assert not store.mark_sent(due[1].id, email.token, NOW)  # settled once
    assert store.due_deliveries(NOW) == []
    [retry] = store.due_deliveries(NOW + timedelta(minutes=1))
    assert retry.channel == "slack" and retry.attempts == 1
    [alert] = store.alerts(LogFilter())
    assert {(d.channel, d.status, d.last_error) for d in alert.deliveries} == {
        ("slack", "pending", "503 from Slack"),
        ("email", "sent", None),
    }


def test_a_failed_poll_counts_errors_and_keeps_validators(store: Store) -> None:
    store.sync_sources([SourceConfig(name="news", url="https://example.org/feed")], NOW)
    ok = FetchOutcome(NOW, "ok", 5, NOW, 200, etag='"a"', last_modified="Sun, 18 Jun 2023")
    store.save_poll(store.source_state("news"), ok, [])
    failed = FetchOutcome(NOW, "error", 5, NOW + timedelta(hours=1), 500, error="HTTP 500")
    store.save_poll(store.source_state("news"), failed, [])
    store.save_poll(store.source_state("news"), failed, [])
    state = store.source_state("news")
    assert (state.error_count, state.last_error, state.etag) == (2, "HTTP 500", '"a"')
    assert store.due_sources(["news"], NOW) == []
    assert store.due_sources(["news"], NOW + timedelta(hours=1)) == ["news"]


def test_a_source_moved_to_a_new_url_starts_afresh(store: Store) -> None:
    store.sync_sources([SourceConfig(name="news", url="https://example.org/feed")], NOW)
    ok = FetchOutcome(NOW, "ok", 5, NOW, 200, etag='"a"')
    store.save_poll(store.source_state("news"), ok, [])
    assert not store.source_state("news").first_poll
    store.sync_sources([SourceConfig(name="news", url="https://example.org/other")], NOW)
    state = store.source_state("news")
    assert state.first_poll and state.etag is None  # no flood from the new feed's backlog


def test_an_expired_claim_cannot_settle_what_another_process_took(store: Store) -> None:
    store.sync_sources([SourceConfig(name="news", url="https://example.org/feed")], NOW)
    outcome = FetchOutcome(NOW, "ok", 5, NOW + timedelta(minutes=15))
    store.save_poll(store.source_state("news"), outcome, [new_article()])
    first = store.due_deliveries(NOW)[0]
    slow = store.claim(first.id, NOW)
    later = NOW + DELIVERY_LEASE  # the first claim's lease has run out
    fast = store.claim(first.id, later)
    assert slow and fast and slow.token != fast.token
    assert store.mark_sent(first.id, fast.token, later)
    assert not store.mark_failed(first.id, slow.token, "timed out", later + timedelta(hours=1))
    [alert] = store.alerts(LogFilter())
    slack_delivery = alert.deliveries[0]
    assert (slack_delivery.channel, slack_delivery.status) == ("slack", "sent")


def test_a_renewed_claim_holds_and_an_abandoned_one_runs_out(store: Store) -> None:
    store.sync_sources([SourceConfig(name="news", url="https://example.org/feed")], NOW)
    outcome = FetchOutcome(NOW, "ok", 5, NOW + timedelta(minutes=15))
    store.save_poll(store.source_state("news"), outcome, [new_article()])
    first = store.due_deliveries(NOW)[0]
    sending = store.claim(first.id, NOW)
    assert sending is not None
    halfway = NOW + DELIVERY_LEASE / 2
    assert store.renew_claim(first.id, sending.token, halfway)
    after_first_lease = NOW + DELIVERY_LEASE
    due = [d.id for d in store.due_deliveries(after_first_lease)]
    assert first.id not in due  # its channel is being sent to
    assert store.claim(first.id, after_first_lease) is None

    abandoned = halfway + DELIVERY_LEASE  # the sender died: nothing renews the claim
    assert first.id in [d.id for d in store.due_deliveries(abandoned)]
    taken = store.claim(first.id, abandoned)
    assert taken is not None
    assert not store.renew_claim(first.id, sending.token, abandoned)  # no longer its claim
    assert store.mark_sent(first.id, taken.token, abandoned)
    assert not store.renew_claim(first.id, taken.token, abandoned)  # settled


def test_processes_starting_together_migrate_one_after_the_other(tmp_path: Path) -> None:
    """A daemon and a `monitor poll` starting at once on a new database."""
    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'race{attempt}.db'}"
        errors: list[Exception] = []

        def upgrade(url: str = url, errors: list[Exception] = errors) -> None:
            store = Store.open(url)
            try:
                store.upgrade()
            except Exception as exc:
                errors.append(exc)
            finally:
                store.close()

        threads = [threading.Thread(target=upgrade) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []


def insert_source_and_article(conn: Connection) -> None:
    """A source and one article of it, in plain SQL, as every schema version writes them."""
    conn.execute(
        text(
            "insert into sources (name, location, created_at, error_count)"
            " values ('feed', 'http://127.0.0.1/feed', :now, 0)"
        ),
        {"now": NOW},
    )
    conn.execute(
        text(
            "insert into articles (source_id, key, title, summary, text, fetched_at)"
            " select id, 'guid:1', 'Blinken meets Wang Yi', '', '', :now from sources"
        ),
        {"now": NOW},
    )


def test_upgrading_a_database_with_matches_keeps_them(store: Store) -> None:
    """0002 → head on a database that already holds a source, an article and its match."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    with store.engine.begin() as conn:  # as that version wrote them, in plain SQL
        insert_source_and_article(conn)
        conn.execute(
            text(
                "insert into matches (article_id, rule, created_at, alerted, evidence)"
                " select id, 'principals', :now, true, '[]' from articles"
            ),
            {"now": NOW},
        )
    store.upgrade()
    with store.engine.connect() as conn:
        rows = conn.execute(text("select rule, rule_version from matches")).all()
    assert [tuple(r) for r in rows] == [("principals", None)]
    assert store.counts()["articles"] == 1


def test_upgrading_keeps_the_bands_each_with_its_day(store: Store) -> None:
    """0007 → 0009 copies the MinHash bands into their new shape, each with the UTC date of
    its time; down again, each gets its article's time."""
    store.downgrade("0007")
    times = [datetime(2023, 6, 18, 23, 59, 59, 999999, tzinfo=UTC), NOW]
    with store.engine.begin() as conn:  # as 0007 wrote them, in plain SQL
        insert_source_and_article(conn)
        for band, at in zip(("00ab", "01cd"), times, strict=True):
            conn.execute(
                text(
                    "insert into article_bands (band, article_id, at)"
                    " select :band, id, :at from articles"
                ).bindparams(bindparam("at", type_=UTCDateTime)),
                {"band": band, "at": at},
            )
    store.upgrade("0009")
    with store.engine.connect() as conn:
        rows = conn.execute(text("select band, day from article_bands order by band")).all()
    assert [tuple(r) for r in rows] == [
        ("00ab", date(2023, 6, 18).toordinal()),
        ("01cd", NOW.date().toordinal()),
    ]
    store.downgrade("0007")
    with store.engine.connect() as conn:
        times = conn.execute(text("select at from article_bands").columns(at=UTCDateTime))
        assert times.scalars().all() == [NOW, NOW]  # its article's
    store.upgrade()


def test_upgrading_works_out_signatures_and_bands_again(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """0009 → 0010 gives each stored article rensa's signature of its text and its integer
    bands, each with the UTC day it came out; going back clears them."""
    store.downgrade("0009")
    published = datetime(2023, 6, 18, 23, 30, tzinfo=UTC)
    title = "Blinken meets Wang Yi"
    body = (REPO / "seeds" / "corpus" / "001_1890e989d0248038.txt").read_text(encoding="utf-8")
    with store.engine.begin() as conn:  # as 0009 wrote them, in plain SQL
        insert_source_and_article(conn)
        conn.execute(
            text("update articles set text = :text, published_at = :at, minhash = :old").bindparams(
                bindparam("at", type_=UTCDateTime)
            ),
            {"text": body, "at": published, "old": bytes(512)},
        )
        conn.execute(
            text(
                "insert into article_bands (article_id, band, day)"
                " select id, '00ab', 1 from articles"
            )
        )
    with caplog.at_level(logging.INFO, logger="monitor.store"):
        store.upgrade()
    assert "migration 0010: signatures worked out again for 1 stored articles" in caplog.messages
    signature = text_signature(title, body)
    assert signature is not None
    with store.engine.connect() as conn:
        assert conn.execute(text("select minhash from articles")).scalar_one() == signature
        rows = conn.execute(text("select band, day from article_bands order by band")).all()
    assert [tuple(r) for r in rows] == [
        (b, published.date().toordinal()) for b in band_keys(signature)
    ]
    store.downgrade("0009")
    with store.engine.connect() as conn:
        assert conn.execute(text("select minhash from articles")).scalar_one() is None
        assert conn.execute(text("select count(*) from article_bands")).scalar_one() == 0
    store.upgrade()


def test_upgrading_gives_each_article_its_day(store: Store) -> None:
    """0010 → 0011 gives each stored article the UTC day it came out: published, else
    fetched; going back drops the day and keeps the articles."""
    store.downgrade("0010")
    late = datetime(2023, 6, 18, 23, 59, 59, 999999, tzinfo=UTC)
    with store.engine.begin() as conn:  # as 0010 wrote them, in plain SQL
        insert_source_and_article(conn)  # fetched at NOW, no publication time
        conn.execute(
            text(
                "insert into articles (source_id, key, title, summary, text, published_at,"
                " fetched_at) select id, 'guid:2', 'Late', '', '', :late, :now from sources"
            ).bindparams(bindparam("late", type_=UTCDateTime), bindparam("now", type_=UTCDateTime)),
            {"late": late, "now": NOW + timedelta(days=2)},
        )
    store.upgrade()
    with store.engine.connect() as conn:
        days = conn.execute(text("select key, day from articles order by key")).all()
    assert [tuple(r) for r in days] == [
        ("guid:1", NOW.date().toordinal()),
        ("guid:2", late.date().toordinal()),
    ]
    store.downgrade("0010")
    assert store.counts()["articles"] == 2
    store.upgrade()


def test_migrations_that_rebuild_tables_keep_the_rows_that_refer_to_them(tmp_path: Path) -> None:
    """Going down to 0003 rebuilds `sources` and `fetches` on SQLite (batch mode); with foreign
    keys on, dropping the old `sources` would cascade to every article. Nothing may be lost."""
    store = Store.open(f"sqlite:///{tmp_path / 'rebuild.db'}")
    store.upgrade()
    store.sync_sources([SourceConfig(name="feed", url="https://example.org/feed")], NOW)
    state = store.source_state("feed")
    ok = FetchOutcome(NOW, "ok", 5, NOW + timedelta(minutes=15), 200, items=2)
    store.save_poll(state, ok, [new_article("guid:1"), new_article("guid:2")])
    before = store.counts()
    assert before["articles"] == 2 and before["deliveries"] >= 2
    store.downgrade("0003")
    assert store.counts() == before
    store.upgrade()
    assert store.counts() == before
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    store.close()


def test_a_failed_migration_is_rolled_back_whole_and_says_why(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'half.db'}")
    store.upgrade("0003")
    with store.engine.begin() as conn:  # something in the way of migration 0005
        conn.execute(text("create table ops_events (id integer primary key)"))
    with pytest.raises(StoreError) as caught:
        store.upgrade()
    assert "database migration failed and was rolled back" in str(caught.value)
    assert "ops_events" in str(caught.value)
    with store.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0003"
        columns = [row[1] for row in conn.execute(text("PRAGMA table_info(sources)"))]
    assert "not_modified_streak" not in columns  # 0004 went too: nothing half-done
    store.close()
