from __future__ import annotations

import codecs
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import quadratic_blowup_feed
from feedserver import FeedServer

from monitor.errors import ParseError
from monitor.models import Article, ParsedFeed
from monitor.parse import DOCUMENT_SUFFIXES, parse_feed, read_document

DATA = Path(__file__).parent / "data"
REAL = DATA / "feeds" / "real"
ILLFORMED = DATA / "feeds" / "illformed"
ARTICLES = DATA / "articles"

BOM = b"\xef\xbb\xbf"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name not in ("SOURCES.tsv", "README.md"))


def _parse(path: Path, headers: dict[str, str] | None = None) -> ParsedFeed:
    return parse_feed(path.read_bytes(), headers=headers, source="test")


def _text_fields(article: Article) -> list[str]:
    return [article.title, article.summary, article.text, article.author or "", article.url or ""]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to open a network connection while the test runs."""

    def refuse(*args: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# Real feeds ----------------------------------------------------------------------------------

# RSS serialised as JSON (scripting.com rss.json) is not JSON Feed: no version, so not a feed.
NOT_JSON_FEED = "scriptingnews_rss-in-json.json"
DATE_MARKERS = (b"<pubDate", b"<published", b"<updated", b"<dc:date", b'"date_published"')


@pytest.mark.parametrize(
    "path", [p for p in _files(REAL) if p.name != NOT_JSON_FEED], ids=lambda p: p.name
)
def test_real_feed_parses(path: Path, no_network: None) -> None:
    feed = _parse(path)

    assert feed.articles, "no articles"
    assert feed.title
    for article in feed.articles:
        assert article.title or article.text
        assert article.source == "test"
        assert article.published is None or article.published.utcoffset() == timedelta(0)
    if any(marker in path.read_bytes() for marker in DATE_MARKERS):
        assert any(a.published for a in feed.articles), "the feed gives dates; none was read"


def test_rss_in_json_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match="not a JSON Feed"):
        _parse(REAL / NOT_JSON_FEED)


@pytest.mark.parametrize(
    ("name", "feed_title", "article_title"),
    [
        (
            "golem_de_iso-8859-1.xml",
            "Golem.de",
            "Machine Learning: Von KI erstelltes Porträt für 432.500 US.Dollar versteigert",
        ),
        (
            "dicas-l_rss0.91_iso-8859-1.xml",
            "Dicas-L: Dicas técnicas de Linux e Software Livre",
            "bash - Expansão de Parâmetros",
        ),
        (
            "inovacao_tecnologica_iso-8859-1.xml",
            "RSS Feed do Site Inovação Tecnológica",
            "Revolução nas telas com pontos quânticos impressos em 3D",
        ),
        ("ibash_ru_windows-1251.xml", "iBash.Org.Ru", "Цитата #17703"),
        (
            "aktuality_sk_slovak.rss",
            "Aktuality.sk - aktuálne spravodajstvo",
            "Analytici Goldman Sachs zvýšili odhad rastu ekonomiky USA",
        ),
        (
            "bbc_urdu_utf8.xml",
            "BBC News اردو - پاکستان کے لیے امریکی امداد کی بہار و خزاں",
            "امریکہ کے ساتھ خفیہ معلومات کا تبادلہ اور فوجی تعاون معطل کر دیا: وزیر دفاع",
        ),
    ],
)
def test_encodings(name: str, feed_title: str, article_title: str) -> None:
    feed = _parse(REAL / name)

    assert feed.title == feed_title
    assert article_title in [a.title for a in feed.articles]
    assert feed.warning is None


def test_utf8_bom() -> None:
    data = (REAL / "aktuality_sk_slovak.rss").read_bytes()

    feed = parse_feed(BOM + data)

    assert feed.title == "Aktuality.sk - aktuálne spravodajstvo"
    assert feed.articles[0].title == "Analytici Goldman Sachs zvýšili odhad rastu ekonomiky USA"
    assert feed.articles == parse_feed(data).articles


def test_declared_koi8r() -> None:
    feed = _parse(ILLFORMED / "enc_koi8r_declared.xml")

    assert feed.title == "Пример RSS ленты"
    assert [a.title for a in feed.articles] == ["Первая новость", "Вторая новость"]


def test_http_charset_decides_an_undeclared_encoding() -> None:
    path = ILLFORMED / "enc_undeclared_latin1_cerclepsy.xml"

    guessed = _parse(path)
    told = _parse(path, headers={"Content-Type": "application/rss+xml; charset=ISO-8859-1"})

    # Undeclared, the encoding is detected (chardet) and the feed is flagged as guessed.
    assert guessed.warning and "iso-8859-1" in guessed.warning.lower()
    assert told.warning is None
    for feed in (guessed, told):
        assert "La criminalité liée surtout à... l'ennui ?" in [a.title for a in feed.articles]


def test_rss_fields() -> None:
    feed = _parse(REAL / "cloudflare_blog.xml")
    article = feed.articles[0]

    assert feed.ttl_minutes == 60
    assert article.title == "Privacy-Preserving Compromised Credential Checking"
    assert article.url and article.url.startswith("https://blog.cloudflare.com/privacy-pres")
    assert article.guid == "6166e7e065133e02a961145d"
    assert article.author == "Luke Valenta"
    assert article.published == datetime(2021, 10, 14, 12, 59, 53, tzinfo=UTC)
    assert article.text.startswith("Today we’re announcing a public demo")
    assert "<" not in article.text


def test_atom_fields_prefer_published_and_content() -> None:
    feed = _parse(REAL / "heise_de.atom")
    article = feed.articles[0]

    assert article.title == "Java-Anwendungsserver: Red Hat gibt WildFly 10 frei"
    assert article.guid == "http://heise.de/-3088438"
    assert article.published == datetime(2016, 2, 1, 16, 22, tzinfo=UTC)  # not <updated>
    assert article.summary.startswith("Die nun verfügbare Version 10")


def test_full_content_is_the_text() -> None:
    article = _parse(REAL / "nyt_wirecutter.xml").articles[0]

    assert article.summary.startswith("Modern board games can be wonderfully complex")
    assert article.text.startswith(article.summary[:100])
    assert len(article.text) > len(article.summary)  # from <content:encoded>


def test_weekday_in_another_language() -> None:
    article = _parse(REAL / "ilmessaggero_mondo_it.xml").articles[0]  # "mer, 16 nov 2022 …"

    assert article.published == datetime(2022, 11, 15, 23, 38, 15, tzinfo=UTC)


def test_language_is_one_spelling() -> None:
    assert {a.lang for a in _parse(REAL / "nbc_newyork_2023.xml").articles} == {"en-us"}
    assert {a.lang for a in _parse(REAL / "ilmessaggero_mondo_it.xml").articles} == {"it-it"}


# JSON Feed -----------------------------------------------------------------------------------


def test_json_feed_1_0() -> None:
    feed = _parse(REAL / "daringfireball_jsonfeed1.json")
    article = feed.articles[0]

    assert feed.title == "Daring Fireball"
    assert len(feed.articles) == 48
    assert article.title == "The Talk Show: ‘I Do Like Throwing a Baby’"
    assert article.guid == "https://daringfireball.net/linked/2017/06/26/the-talk-show-195"
    assert article.url == "https://daringfireball.net/linked/2017/06/26/the-talk-show-195"
    assert article.author == "John Gruber"
    assert article.published == datetime(2017, 6, 27, 0, 54, 17, tzinfo=UTC)
    assert article.text.startswith("New episode of America’s favorite 3-star podcast")
    assert "<p>" not in article.text


def test_json_feed_1_1() -> None:
    feed = _parse(REAL / "influxdata_jsonfeed1.1.json")
    article = feed.articles[0]

    assert feed.title == "Blog – InfluxData"  # the feed leaves "&#8211;" in its title
    assert len(feed.articles) == 3
    assert article.title == "InfluxDB vs. Graphite for Time Series Data & Metrics Benchmark"
    assert article.guid is None  # no "id" in this feed: identity falls back to the URL
    assert article.author == "Chris Churilo"  # 1.1 "authors" before the 1.0 "author"
    assert article.lang == "en-us"
    # An RFC 822 date where the spec wants RFC 3339.
    assert article.published == datetime(2019, 5, 31, 19, 17, 58, tzinfo=UTC)


@pytest.mark.parametrize(
    ("document", "content_type", "expected"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": []}', None, 0),
        (
            b' \n{"version": "https://jsonfeed.org/version/1", "items": [{"content_text": "x"}]}',
            None,
            1,
        ),
        (
            BOM
            + b'{"version": "https://jsonfeed.org/version/1", "items": [{"url": "https://a/"}]}',
            "application/feed+json",
            1,
        ),
    ],
)
def test_json_feed_detection(document: bytes, content_type: str | None, expected: int) -> None:
    headers = {"Content-Type": content_type} if content_type else None

    feed = parse_feed(document, headers=headers)

    assert len(feed.articles) == expected


def test_json_feed_numeric_id_becomes_a_guid() -> None:
    data = b'{"version": "https://jsonfeed.org/version/1", "items": [{"id": 7, "title": "x"}]}'

    assert parse_feed(data).articles[0].guid == "7"


@pytest.mark.parametrize(
    ("document", "content_type", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', None, "invalid JSON"),
        (b'{"title": "no version", "items": []}', None, "not a JSON Feed"),
        (
            b'[{"version": "https://jsonfeed.org/version/1.1"}]',
            "application/json",
            "not a JSON Feed",
        ),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', None, "items"),
    ],
)
def test_json_that_is_not_a_feed(document: bytes, content_type: str | None, message: str) -> None:
    headers = {"content-type": content_type} if content_type else None

    with pytest.raises(ParseError, match=message):
        parse_feed(document, headers=headers)


# Ill-formed and hostile input ----------------------------------------------------------------

ERROR = "ParseError"

# What each ill-formed file gives: ParseError, or the number of articles kept.
ILLFORMED_OUTCOMES: dict[str, int | str] = {
    "bomb_billion_laughs.xml": ERROR,
    "bomb_cyclic_entities.xml": ERROR,
    "bomb_entity_expansion_small.xml": ERROR,
    "enc_bogus_encoding_name.xml": 0,  # a valid empty feed; the encoding was guessed
    "enc_chardet_big5_undeclared.xml": 0,
    "enc_chardet_gb2312_undeclared.xml": 1,
    "enc_chardet_koi8r_undeclared.xml": 1,
    "enc_chardet_windows1255_undeclared.xml": 1,
    "enc_double_encoded_html.xml": 1,
    "enc_high_bit_greek_date.xml": 0,
    "enc_http_text_xml_vs_utf8.xml": 0,
    "enc_invalid_bytes_with_bom.xml": ERROR,
    "enc_invalid_encoding_name.xml": 1,
    "enc_koi8r_declared.xml": 2,
    "enc_linenoise_cdata.xml": 1,
    "enc_undeclared_latin1_cerclepsy.xml": 9,  # the tenth item is empty
    "enc_utf8_bytes_declared_cp1252.xml": 0,
    "enc_utf8_bytes_declared_latin1.xml": 1,
    "gzip_raw_body_nshipster.xml.gz": ERROR,
    "notfeed_daringfireball_homepage.html": ERROR,
    "notfeed_html_meta_charset_after_1024.html": ERROR,
    "notfeed_html_page.html": ERROR,
    "notfeed_wikipedia_miniflux.html": ERROR,
    "sem_atom_entry_only_empty_author.atom": 0,  # its one entry has nothing in it
    "sem_georss_insufficient_coords.xml": 0,
    "trunc_empty_document.xml": ERROR,
    "trunc_incomplete_cdata.xml": 0,
    "xml_bogus_doctype_html.xml": 0,
    "xml_empty_textinput_rdf.xml": 1,
    "xml_entity_undefined_aacute.xml": ERROR,
    "xml_numeric_entity_unclosed_root.xml": ERROR,
    "xml_rss_without_channel.xml": 9,
    "xml_unclosed_root_crlf.xml": 1,
    "xml_unclosed_root_tag.xml": ERROR,
    "xml_undeclared_namespace_prefix.xml": ERROR,
    "xml_unescaped_ampersand_saxerror.xml": 3,  # items before and after the error survive
    "xss_content_crazy_html.xml": 1,
    "xss_content_onerror.xml": 0,  # an image and nothing else: no text left
    "xss_summary_css_overlay.xml": 1,
    "xss_summary_script_base64.xml": 1,
    "xxe_etc_passwd.xml": ERROR,
    "xxe_external_file_entity.xml": ERROR,
}


def test_every_illformed_file_has_an_expected_outcome() -> None:
    assert sorted(ILLFORMED_OUTCOMES) == [p.name for p in _files(ILLFORMED)]


@pytest.mark.parametrize("name", sorted(ILLFORMED_OUTCOMES))
def test_illformed(name: str, no_network: None) -> None:
    expected = ILLFORMED_OUTCOMES[name]

    if expected == ERROR:
        with pytest.raises(ParseError):
            _parse(ILLFORMED / name)
        return
    feed = _parse(ILLFORMED / name)
    assert len(feed.articles) == expected


def test_bozo_feed_keeps_entries_with_a_warning() -> None:
    feed = _parse(ILLFORMED / "xml_unescaped_ampersand_saxerror.xml")

    assert [a.title for a in feed.articles] == ["Good Item", "Bad Item", "Item After Error"]
    assert feed.warning and "not well-formed" in feed.warning


@pytest.mark.parametrize("name", [p.name for p in _files(ILLFORMED) if p.name.startswith("xss_")])
def test_no_active_content_in_text(name: str) -> None:
    for article in _parse(ILLFORMED / name).articles:
        for text in _text_fields(article):
            lowered = text.lower()
            for marker in ("<script", "<iframe", "onerror", "onmouseover", "javascript:"):
                assert marker not in lowered, f"{marker!r} in {text!r}"


def test_base64_summary_script_removed() -> None:
    article = _parse(ILLFORMED / "xss_summary_script_base64.xml").articles[0]

    assert article.summary == "safe description"


NOT_FEEDS = [p.name for p in _files(ILLFORMED) if p.name.startswith("notfeed_")]


@pytest.mark.parametrize("name", NOT_FEEDS)
def test_html_page_is_not_a_feed(name: str) -> None:
    with pytest.raises(ParseError, match="HTML page"):
        _parse(ILLFORMED / name)


@pytest.mark.parametrize("data", [b"", b"   \n\t", BOM])
def test_empty_document(data: bytes) -> None:
    with pytest.raises(ParseError, match="empty document"):
        parse_feed(data)


def test_raw_gzip_body_is_named() -> None:
    with pytest.raises(ParseError, match="gzip"):
        _parse(ILLFORMED / "gzip_raw_body_nshipster.xml.gz")


def test_error_names_the_source() -> None:
    with pytest.raises(ParseError, match=r"^test: "):
        _parse(ILLFORMED / "notfeed_html_page.html")


def test_external_entity_is_not_resolved(tmp_path: Path, feed_server: FeedServer) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-CONTENT", encoding="utf-8")
    feed_server.route("/entity", b"REMOTE-CONTENT")
    original = (ILLFORMED / "xxe_external_file_entity.xml").read_bytes()
    local = original.replace(b"file:///PATH/TO/xmltestdata/simple.xml", secret.as_uri().encode())
    # The same entity used inside a feed item, where a resolved value would show.
    in_item = (
        b'<!DOCTYPE rss [<!ENTITY ee SYSTEM "' + secret.as_uri().encode() + b'">'
        b'<!ENTITY rr SYSTEM "' + feed_server.url("/entity").encode() + b'">]>'
        b'<rss version="2.0"><channel><title>t</title>'
        b"<item><title>before &ee; &rr; after</title></item></channel></rss>"
    )

    for document in (local, in_item):
        with pytest.raises(ParseError, match="declares XML entities") as refused:
            parse_feed(document)
        assert "SECRET" not in str(refused.value) and "REMOTE" not in str(refused.value)

    assert feed_server.hits["/entity"] == 0


# Entity declarations -------------------------------------------------------------------------

ENTITIES_REFUSED = (
    r"^test: declares XML entities \(<!ENTITY …>\), which can expand without bound; refused$"
)
ENTITY_FILES = [p.name for p in _files(ILLFORMED) if p.name.startswith(("bomb_", "xxe_"))]


@pytest.mark.parametrize("name", ENTITY_FILES)
def test_entity_declarations_are_refused(name: str, no_network: None) -> None:
    with pytest.raises(ParseError, match=ENTITIES_REFUSED):
        _parse(ILLFORMED / name)


def test_quadratic_blowup_is_refused_before_expansion() -> None:
    with pytest.raises(ParseError, match=ENTITIES_REFUSED):
        parse_feed(quadratic_blowup_feed(), source="test")


DECLARING = (
    '<?xml version="1.0" encoding="{encoding}"?>\n'
    '<!DOCTYPE rss [\n<!ENTITY big "{value}">\n]>\n'
    '<rss version="2.0"><channel><title>t</title><link>https://example.org/</link>'
    "<item><title>Entities &big;</title><link>https://example.org/1</link></item>"
    "</channel></rss>"
)


@pytest.mark.parametrize(
    ("declared", "codec", "mark"),
    [
        ("UTF-8", "utf-8", b""),
        ("UTF-8", "utf-8", codecs.BOM_UTF8),
        ("ISO-8859-1", "latin-1", b""),
        ("windows-1251", "cp1251", b""),
        ("UTF-16", "utf-16-le", b""),
        ("UTF-16", "utf-16-le", codecs.BOM_UTF16_LE),
        ("UTF-16", "utf-16-be", b""),
        ("UTF-16", "utf-16-be", codecs.BOM_UTF16_BE),
        ("UTF-32", "utf-32-le", b""),
        ("UTF-32", "utf-32-le", codecs.BOM_UTF32_LE),
        ("UTF-32", "utf-32-be", b""),
        ("UTF-32", "utf-32-be", codecs.BOM_UTF32_BE),
    ],
)
def test_entity_declarations_are_found_in_any_encoding(
    declared: str, codec: str, mark: bytes
) -> None:
    document = mark + DECLARING.format(encoding=declared, value="x" * 100).encode(codec)

    with pytest.raises(ParseError, match=ENTITIES_REFUSED):
        parse_feed(document, source="test")


def test_entity_declaration_hidden_by_the_declared_encoding() -> None:
    # In UTF-7, "+ADwAIQ-" is "<!": only a reader of the declared encoding sees the declaration.
    hidden = DECLARING.format(encoding="UTF-7", value="x" * 100).replace(
        "<!ENTITY", "+ADwAIQ-ENTITY"
    )
    undeclared = hidden.replace(' encoding="UTF-7"', "")
    utf7_header = {"Content-Type": "application/rss+xml; charset=utf-7"}

    for document, headers in ((hidden, None), (undeclared, utf7_header)):
        with pytest.raises(ParseError, match=ENTITIES_REFUSED):
            parse_feed(document.encode("ascii"), headers=headers, source="test")


@pytest.mark.parametrize(
    "prolog",
    [
        '<!-- a comment holding <rss> -->\n<!DOCTYPE rss [<!ENTITY big "x">]>',
        '<!DOCTYPE rss [<!ATTLIST rss note CDATA "<rss>"> <!ENTITY big "x">]>',
        '<!DOCTYPE rss [<!-- ]> <rss> --> <!ENTITY big "x">]>',
        '<!--\n<!ENTITY big "x">\n-->\n<!DOCTYPE rss>',  # feedparser reads comments too
        'junk\n<!DOCTYPE rss [\n<!ENTITY big "x">\n]>',
        '<!DOCTYPE rss [<!entity big "x">]>',
        '<!DOCTYPE rss [<!ENTITY % evil SYSTEM "https://example.org/evil.dtd"> %evil;]>',
        '<:x/>\n<!DOCTYPE rss [<!ENTITY big "x">]>',  # not an element to feedparser
        '<\u00e9/>\n<!DOCTYPE rss [<!ENTITY big "x">]>',
    ],
)
def test_entity_declarations_anywhere_before_the_root(prolog: str) -> None:
    document = f'<?xml version="1.0"?>\n{prolog}\n<rss version="2.0"><channel><title>t</title>'
    document += (
        "<item><title>&big;</title><link>https://example.org/1</link></item></channel></rss>"
    )

    with pytest.raises(ParseError, match=ENTITIES_REFUSED):
        parse_feed(document.encode(), source="test")


NETSCAPE_DOCTYPE = (
    b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"\n'
    b' "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
)


def test_a_doctype_without_declarations_still_parses(no_network: None) -> None:
    original = (REAL / "dicas-l_rss0.91_iso-8859-1.xml").read_bytes()
    declaration, rest = original.split(b"\n", 1)
    with_doctype = declaration + b"\n" + NETSCAPE_DOCTYPE + rest

    feed = parse_feed(with_doctype, source="test")

    assert (
        feed.articles and feed.articles == _parse(REAL / "dicas-l_rss0.91_iso-8859-1.xml").articles
    )


def test_entity_declarations_inside_the_feed_are_text() -> None:
    cdata = "<![CDATA[ <!DOCTYPE x [<!ENTITY big 'x'>]> ]]>"
    document = (
        '<?xml version="1.0"?><!DOCTYPE rss><rss version="2.0"><channel><title>t</title>'
        f"<item><title>XML entities</title><link>https://example.org/1</link>"
        f"<description>{cdata} and &lt;!ENTITY&gt;</description></item></channel></rss>"
    )

    [article] = parse_feed(document.encode(), source="test").articles

    assert "<!ENTITY big 'x'>" in article.text and "<!ENTITY>" in article.text


def test_parse_error_wraps_third_party_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("feedparser.parse", explode)

    with pytest.raises(ParseError, match="boom") as caught:
        _parse(REAL / "nbc_newyork_2023.xml")
    assert isinstance(caught.value.__cause__, RuntimeError)


# Documents -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _files(ARTICLES), ids=lambda p: p.name)
def test_read_json_document(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))

    article = read_document(path)

    assert article.title == raw["title"]
    assert article.text
    assert article.url == raw["url"]
    assert article.source == raw["source"]
    assert article.published == datetime.fromisoformat(raw["published"])
    assert article.guid is None


def test_source_argument_names_the_source() -> None:
    article = read_document(ARTICLES / "pos01.json", source="guardian-world")

    assert article.source == "guardian-world"


@pytest.mark.parametrize(
    ("suffix", "first_line"),
    [(".txt", "{title}"), (".md", "# {title}"), (".md", "##   {title}  ")],
)
def test_read_text_document(tmp_path: Path, suffix: str, first_line: str) -> None:
    raw = json.loads((ARTICLES / "pos13.json").read_text(encoding="utf-8"))
    path = tmp_path / f"item{suffix}"
    path.write_text("\n\n" + first_line.format(**raw) + "\n\n" + raw["text"], encoding="utf-8")

    article = read_document(path, source="folder")

    assert article.title == raw["title"]
    assert article.text == raw["text"]
    assert (article.url, article.guid, article.source) == (None, None, "folder")


def test_read_document_decodes_bom_and_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "item.txt"
    path.write_bytes(BOM + "Zürich talks\n".encode() + b"caf\xe9 society")

    article = read_document(path)

    assert article.title == "Zürich talks"
    assert article.text == "caf\ufffd society"


def test_read_json_document_with_html_text(tmp_path: Path) -> None:
    path = tmp_path / "item.json"
    path.write_text(
        json.dumps({"title": "T", "text": "<p>One</p><script>x()</script><p>Two &amp; three</p>"}),
        encoding="utf-8",
    )

    assert read_document(path).text == "One\n\nTwo & three"


@pytest.mark.parametrize(
    ("fields", "lang"),
    [
        ({"lang": "zh"}, "zh"),
        ({"language": "en_US"}, "en-us"),
        ({"lang": " "}, None),
        ({"language": {"code": "en"}}, None),
        ({}, None),
    ],
)
def test_a_json_document_says_its_language(
    tmp_path: Path, fields: dict[str, str], lang: str | None
) -> None:
    path = tmp_path / "item.json"
    document = {"title": "王毅会见布林肯", "text": "…", **fields}
    path.write_text(json.dumps(document), encoding="utf-8")

    assert read_document(path).lang == lang


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", b'{"title": "T", "text": ', "invalid JSON"),
        ("list.json", b'[{"title": "T"}]', "not an object"),
        ("untitled.json", b'{"text": "body only"}', "no title"),
        ("blank.json", b'{"title": "  ", "text": "x"}', "no title"),
        ("number.json", b'{"title": "T", "text": 5}', "text must be a string"),
        ("date.json", b'{"title": "T", "published": "yesterday"}', "ISO 8601"),
        ("empty.txt", b"\n \n", "empty document"),
        ("hash.md", b"#\nbody", "no title"),
        ("note.rtf", b"{\\rtf1 hello}", "not a document"),
    ],
)
def test_bad_document(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(ParseError, match=message) as caught:
        read_document(path)
    assert name in str(caught.value)


@pytest.mark.parametrize("suffix", DOCUMENT_SUFFIXES)
def test_missing_document(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(ParseError, match="cannot read"):
        read_document(tmp_path / f"gone{suffix}")
