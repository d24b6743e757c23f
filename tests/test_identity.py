from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from monitor.identity import MAX_KEY_LENGTH, article_keys, canonical_url, document_key
from monitor.models import Article
from monitor.parse import parse_feed

REAL = Path(__file__).parent / "data" / "feeds" / "real"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/a", "https://example.org/a"),
        ("HTTPS://Example.ORG/Path/Case", "https://example.org/Path/Case"),
        ("http://example.org:80/a", "http://example.org/a"),
        ("https://example.org:443/a", "https://example.org/a"),
        ("http://example.org:443/a", "http://example.org:443/a"),
        ("https://example.org:8443/a", "https://example.org:8443/a"),
        ("https://example.org:/a", "https://example.org/a"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org/a#comments", "https://example.org/a"),
        ("https://example.org/#!/story/42", "https://example.org/#!/story/42"),
        ("https://example.org/a?b=2&a=1", "https://example.org/a?a=1&b=2"),
        ("https://example.org/a?tag=x&id=3&tag=a", "https://example.org/a?id=3&tag=x&tag=a"),
        ("https://example.org/a?utm_source=rss&utm_medium=feed&id=3", "https://example.org/a?id=3"),
        ("https://example.org/a?UTM_Campaign=x", "https://example.org/a"),
        ("https://example.org/a?fbclid=abc&gclid=def", "https://example.org/a"),
        ("https://example.org/a?mc_cid=1&mc_eid=2&ito=3&ocid=4", "https://example.org/a"),
        ("https://www.theguardian.com/a?CMP=share_btn_tw", "https://www.theguardian.com/a"),
        ("https://bbc.co.uk/news/1?at_medium=RSS&at_campaign=KARANGA", "https://bbc.co.uk/news/1"),
        (
            "https://example.org/a?ns_mchannel=rss&ns_campaign=x&ns_source=y",
            "https://example.org/a",
        ),
        ("https://example.org/a?src=rss", "https://example.org/a?src=rss"),  # not only tracking
        ("https://example.org/a?q=a+b%20c&", "https://example.org/a?q=a+b%20c"),
        ("https://user:Pw@Example.org/a", "https://user:Pw@example.org/a"),
        ("http://[2001:DB8::1]:80/a", "http://[2001:db8::1]/a"),
        ("  https://example.org/a  ", "https://example.org/a"),
        ("/relative/path?utm_source=x#top", "/relative/path"),
        ("urn:uuid:1225c695-cfb8-4ebb", "urn:uuid:1225c695-cfb8-4ebb"),
        ("http://[::1/broken", "http://[::1/broken"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_is_idempotent() -> None:
    url = "HTTP://Example.org:80/a?utm_source=x&b=2&a=1#frag"

    assert canonical_url(canonical_url(url)) == canonical_url(url)


def _hash(title: str, text: str) -> str:
    return "hash:" + hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()


def test_keys_prefer_guid_then_url_then_content() -> None:
    articles = [
        Article("one", guid="tag:example.org,2024:1", url="https://example.org/1"),
        Article("two", url="https://Example.org/2?utm_source=rss"),
        Article("three", text="body"),
    ]

    assert article_keys(articles) == [
        "guid:tag:example.org,2024:1",
        "url:https://example.org/2",
        _hash("three", "body"),
    ]


def test_repeated_guid_falls_back_to_url() -> None:
    articles = [
        Article("first", guid="same", url="https://example.org/1"),
        Article("second", guid="same", url="https://example.org/2"),
        Article("other", guid="unique", url="https://example.org/1"),
    ]

    assert article_keys(articles) == [
        "url:https://example.org/1",
        "url:https://example.org/2",
        "guid:unique",
    ]


def test_repeated_guid_and_url_fall_back_to_content() -> None:
    articles = [
        Article("first", text="a", guid="same", url="https://example.org/"),
        Article("second", text="b", guid="same", url="https://example.org"),
        Article("third", text="c", url="https://example.org/?utm_source=x"),
    ]

    assert article_keys(articles) == [_hash(a.title, a.text) for a in articles]


def test_long_keys_are_hashed() -> None:
    guid = "g" * 600
    url = "https://example.org/" + "p" * 600

    keys = article_keys([Article("a", guid=guid), Article("b", url=url)])

    assert keys == [
        "guid-sha256:" + hashlib.sha256(guid.encode()).hexdigest(),
        "url-sha256:" + hashlib.sha256(url.encode()).hexdigest(),
    ]
    assert all(len(k) <= MAX_KEY_LENGTH for k in keys)


def test_key_of_exactly_max_length_is_kept() -> None:
    guid = "g" * (MAX_KEY_LENGTH - len("guid:"))

    assert article_keys([Article("a", guid=guid)]) == ["guid:" + guid]


def test_document_key() -> None:
    long_path = "deep/" * 120 + "notes.md"

    assert document_key("2024/notes.md") == "file:2024/notes.md"
    assert document_key(long_path) == (
        "file-sha256:" + hashlib.sha256(long_path.encode()).hexdigest()
    )


FEEDS = [p for p in sorted(REAL.iterdir()) if p.suffix != ".tsv" and "rss-in-json" not in p.name]


@pytest.mark.parametrize("path", FEEDS, ids=lambda p: p.name)
def test_real_feeds_give_distinct_keys(path: Path) -> None:
    articles = parse_feed(path.read_bytes()).articles

    keys = article_keys(articles)

    assert len(keys) == len(articles)
    assert len(set(keys)) == len(set(articles))  # only identical items share a key
