"""Parsing: the bytes of a feed or a document in, plain-text articles out.

RSS 0.9x/1.0/2.0 and Atom go through feedparser, which finds the encoding from the bytes and the
HTTP headers, sanitises HTML and never resolves external entities. A feed that declares entities
of its own is refused before feedparser sees it: feedparser's fallback parser expands one large
entity used many times without limit. JSON Feed 1.0 and 1.1, which feedparser cannot read, go
through the json module. Every text field leaves as plain text
(``monitor.normalise``). A document that is not a feed, or a feed so broken that no entry could
be read, raises ``ParseError``; a feed with no entries is not an error, and a feed that is broken
but still yields entries keeps them, with the complaint in ``ParsedFeed.warning``.

This module knows nothing about HTTP or the database.
"""

from __future__ import annotations

import calendar
import codecs
import email.utils
import io
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser

from monitor.errors import ParseError
from monitor.models import Article, ParsedFeed
from monitor.normalise import clean_text, html_to_text, whole_characters

#: The file types a folder source or the command line can hand to ``read_document``.
DOCUMENT_SUFFIXES = (".txt", ".md", ".json")

_JSON_FEED_VERSION = "https://jsonfeed.org/version/"
_JSON_MEDIA_TYPES = ("application/feed+json", "application/json")
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_ENTITIES_REFUSED = "declares XML entities (<!ENTITY …>), which can expand without bound; refused"


def parse_feed(
    data: bytes, *, headers: Mapping[str, str] | None = None, source: str = ""
) -> ParsedFeed:
    """Articles of an RSS, Atom or JSON Feed document; ``headers`` help find the encoding."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    start = data.removeprefix(_BOM).lstrip()[:1]
    if not start:
        raise _error(source, "empty document")
    if start == b"{" or (_media_type(lowered) in _JSON_MEDIA_TYPES and start != b"<"):
        return _parse_json_feed(data, source)
    if data.startswith(_GZIP_MAGIC):
        raise _error(source, "gzip-compressed data, not a feed (was Content-Encoding lost?)")
    return _parse_xml_feed(data, lowered, source)


def read_document(path: Path, *, source: str = "") -> Article:
    """One article from a ``.txt``, ``.md`` or ``.json`` file; the caller gives it its key."""
    suffix = path.suffix.lower()
    if suffix not in DOCUMENT_SUFFIXES:
        raise ParseError(f"{path}: not a document (expected {', '.join(DOCUMENT_SUFFIXES)})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    text = data.decode("utf-8-sig", errors="replace")  # a stray bad byte must not lose the file
    if suffix == ".json":
        return _json_document(text, path, source)
    return _text_document(text, path, source, markdown=suffix == ".md")


# RSS and Atom --------------------------------------------------------------------------------


def _parse_xml_feed(data: bytes, headers: dict[str, str], source: str) -> ParsedFeed:
    if _declares_entities(data, headers):
        raise _error(source, _ENTITIES_REFUSED)
    data = _SURROGATE_REFERENCE.sub(b"&#xFFFD;", data)
    try:
        parsed = feedparser.parse(io.BytesIO(data), response_headers=headers, sanitize_html=True)
    except Exception as exc:  # feedparser's SAX and sgmllib back ends raise many kinds
        raise _error(source, f"cannot parse feed ({exc})") from exc
    entries = parsed.get("entries") or []
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    version = parsed.get("version") or ""
    if not entries and (not version or not _is_minor(problem)):
        raise _error(source, _not_a_feed_reason(data, version, problem))
    feed = parsed.get("feed") or {}
    feed_lang = _feed_lang(feed)
    articles = tuple(
        article
        for article in (_entry_article(entry, feed_lang, source) for entry in entries)
        if article is not None
    )
    return ParsedFeed(
        articles=articles,
        title=_detail_text(feed, "title"),
        ttl_minutes=_ttl(feed),
        update_period=_optional_text(_raw(feed, "sy_updateperiod")),
        update_frequency=_optional_text(_raw(feed, "sy_updatefrequency")),
        warning=_describe(problem) if problem is not None else None,
    )


def _is_minor(problem: object) -> bool:
    """No problem, or only a guessed encoding or media type: the document was still read."""
    return problem is None or isinstance(problem, feedparser.ThingsNobodyCaresAboutButMe)


def _not_a_feed_reason(data: bytes, version: str, problem: object) -> str:
    detail = f" ({_describe(problem)})" if problem is not None else ""
    if version:
        return f"broken {version} feed with no entries{detail}"
    if b"<html" in data[:4096].lower():
        return f"not a feed: an HTML page{detail}"
    return f"not an RSS, Atom or JSON feed{detail}"


def _entry_article(entry: Any, feed_lang: str | None, source: str) -> Article | None:
    title = _detail_text(entry, "title")
    summary = _detail_text(entry, "summary")
    text = _content_text(entry) or summary
    url = _optional(_raw(entry, "link"))
    if not (title or text or url):
        return None  # nothing to match, show or link to
    return Article(
        title=title,
        text=text,
        summary=summary,
        url=url,
        guid=_optional(_raw(entry, "id")),
        author=_optional_text(_raw(entry, "author")),
        published=_entry_published(entry),
        source=source,
        lang=_detail_lang(entry) or feed_lang,
    )


def _raw(entry: Any, key: str) -> Any:
    # Plain dict access: FeedParserDict's own lookups alias keys and warn on some of them.
    return dict.get(entry, key) if isinstance(entry, dict) else None


def _detail_text(entry: Any, key: str) -> str:
    """Plain text of a field; feedparser may copy content to summary without saying its type."""
    value = _raw(entry, key)
    if not isinstance(value, str):
        return ""
    detail = _raw(entry, f"{key}_detail")
    return _as_text(value, _raw(detail, "type"))


def _content_text(entry: Any) -> str:
    contents = _raw(entry, "content")
    for content in contents if isinstance(contents, list) else []:
        value = _raw(content, "value")
        if isinstance(value, str) and value.strip():
            return _as_text(value, _raw(content, "type"))
    return ""


def _as_text(value: str, media_type: object) -> str:
    """Plain text is taken as it is only when declared so; anything else may carry markup."""
    if media_type == "text/plain":
        return clean_text(value)
    return html_to_text(value)


def _detail_lang(entry: Any) -> str | None:
    contents = _raw(entry, "content")
    details = [*(contents if isinstance(contents, list) else [])]
    details += [_raw(entry, "summary_detail"), _raw(entry, "title_detail")]
    for detail in details:
        lang = _lang(_raw(detail, "language"))
        if lang:
            return lang
    return None


def _feed_lang(feed: Any) -> str | None:
    return _lang(_raw(feed, "language")) or _detail_lang(feed)


def _ttl(feed: Any) -> int | None:
    value = _raw(feed, "ttl")
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value.strip()) and int(value) > 0:
        return int(value)
    return None


def _entry_published(entry: Any) -> datetime | None:
    for key in ("published", "updated"):
        parsed = _raw(entry, f"{key}_parsed")
        published = _struct_time_utc(parsed) or _foreign_date(_raw(entry, key))
        if published:
            return published
    return None


def _foreign_date(value: object) -> datetime | None:
    """An RFC 822 date with the weekday in another language ("mer, 16 nov 2022 …")."""
    if not isinstance(value, str) or "," not in value:
        return None
    return _rfc822_datetime(value.partition(",")[2])


def _struct_time_utc(value: object) -> datetime | None:
    """feedparser's dates are UTC ``struct_time``s."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


# Entity declarations -------------------------------------------------------------------------

# How the start of a document shows its encoding when it has no byte order mark: which of its
# first four bytes are zero (XML 1.0, appendix F, for any ASCII first character).
_ZERO_BYTES_ENCODING: dict[tuple[bool, ...], str] = {
    (True, True, True, False): "utf-32-be",
    (False, True, True, True): "utf-32-le",
    (True, False, True, False): "utf-16-be",
    (False, True, False, True): "utf-16-le",
}
_MARKS = (  # longest first: the UTF-32 LE mark begins with the UTF-16 LE one
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (b"\x4c\x6f\xa7\x94", "cp037"),  # "<?xm" in EBCDIC
)
# Every ASCII-compatible encoding (UTF-8, Latin-1, windows-125x …) writes markup as ASCII bytes,
# so one byte-for-byte reading serves them all.
_BYTEWISE = "latin-1"
_PROLOG_PEEK = 64 * 1024  # bytes decoded first: almost every prolog ends well before
# comment, PI, DOCTYPE, root element: an element starts where feedparser's DOCTYPE handling
# stops looking (``<`` and an ASCII letter, digit or underscore), so nothing after it is missed
_PROLOG_MARKUP = re.compile(r"<!--|<\?|<!|<(?=[A-Za-z0-9_])")
_DOCTYPE_MARKUP = re.compile(r"[\"'\[\]>]|<!--|<\?")
_SKIPPED_TO = {"<!--": "-->", "<?": "?>", '"': '"', "'": "'"}
_ENTITY_DECLARATION = re.compile(r"<!ENTITY", re.IGNORECASE)
# A character reference to a surrogate (U+D800 to U+DFFF, 55296 to 57343), which feedparser
# cannot encode: the whole feed would be lost for it.
_SURROGATE_REFERENCE = re.compile(
    rb"&#(?:[xX]0*[dD][89a-fA-F][0-9a-fA-F]{2}"
    rb"|0*(?:5529[6-9]|55[3-9][0-9]{2}|56[0-9]{3}|57[0-2][0-9]{2}|573[0-3][0-9]|5734[0-3]));"
)
_XML_ENCODING = re.compile(r"\s*<\?xml[^>]*?\sencoding\s*=\s*[\"']([\w.:-]+)")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


def _declares_entities(data: bytes, headers: Mapping[str, str]) -> bool:
    """Whether the document declares an entity before its root element, read in every encoding
    it could be parsed in: as its first bytes show, as the HTTP headers say, as it declares.
    Comments count too: feedparser's fallback parser takes declarations from them."""
    sniffed = _sniffed_encoding(data)
    prolog = _prolog(data, sniffed)
    if _ENTITY_DECLARATION.search(prolog):
        return True
    declared = _CHARSET.search(headers.get("content-type", "")), _XML_ENCODING.match(prolog)
    names = [_codec_name(match.group(1)) for match in declared if match]
    others = {name for name in names if name and name != _codec_name(sniffed)}
    return any(_ENTITY_DECLARATION.search(_prolog(data, name)) for name in sorted(others))


def _sniffed_encoding(data: bytes) -> str:
    for mark, encoding in _MARKS:
        if data.startswith(mark):
            return encoding
    zeros = tuple(byte == 0 for byte in data[:4])
    return _ZERO_BYTES_ENCODING.get(zeros, _BYTEWISE)


def _codec_name(encoding: str) -> str | None:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return None


def _prolog(data: bytes, encoding: str) -> str:
    """The text before the root element (all of it when no root element can be found)."""
    try:
        for size in (_PROLOG_PEEK, len(data)):
            text = data[:size].decode(encoding, errors="replace")
            root = _root_start(text)
            if root is not None or size >= len(data):
                return text[:root]
    except (UnicodeError, LookupError):  # a codec that cannot decode leniently
        pass
    return ""


def _root_start(text: str) -> int | None:
    """Where the root element starts, past comments, processing instructions and the DOCTYPE;
    None when the text ends first."""
    position = 0
    while match := _PROLOG_MARKUP.search(text, position):
        markup = match.group()
        if markup == "<":
            return match.start()
        if markup == "<!":
            end = _doctype_end(text, match.end())
        else:
            end = _skip(text, markup, match.end())
        if end is None:
            return None
        position = end
    return None


def _doctype_end(text: str, position: int) -> int | None:
    """Just past the ``>`` that closes a DOCTYPE, whose internal subset and quoted strings
    may hold ``>`` and ``<`` of their own."""
    in_subset = False
    while match := _DOCTYPE_MARKUP.search(text, position):
        markup = match.group()
        if markup in _SKIPPED_TO:
            end = _skip(text, markup, match.end())
            if end is None:
                return None
            position = end
            continue
        if markup == ">" and not in_subset:
            return match.end()
        in_subset = markup == "[" or (in_subset and markup != "]")
        position = match.end()
    return None


def _skip(text: str, opening: str, position: int) -> int | None:
    """Just past what closes ``opening`` (a comment, a PI, a quoted string), or None."""
    closing = _SKIPPED_TO[opening]
    end = text.find(closing, position)
    return None if end < 0 else end + len(closing)


# JSON Feed -----------------------------------------------------------------------------------


def _parse_json_feed(data: bytes, source: str) -> ParsedFeed:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _error(source, f"invalid JSON ({exc})") from exc
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version.startswith(_JSON_FEED_VERSION):
        raise _error(source, f"JSON that is not a JSON Feed (no {_JSON_FEED_VERSION} version)")
    items = document.get("items")
    if not isinstance(items, list):
        raise _error(source, "JSON Feed without an items list")
    articles = tuple(
        article
        for article in (_json_item_article(item, document, source) for item in items)
        if article is not None
    )
    return ParsedFeed(articles=articles, title=html_to_text(_json_str(document, "title")))


def _json_item_article(item: object, feed: dict[str, Any], source: str) -> Article | None:
    if not isinstance(item, dict):
        return None
    title = html_to_text(_json_str(item, "title"))
    summary = html_to_text(_json_str(item, "summary"))
    text = _json_content(item) or summary
    url = _optional(_json_str(item, "url") or _json_str(item, "external_url"))
    if not (title or text or url):
        return None
    return Article(
        title=title,
        text=text,
        summary=summary,
        url=url,
        guid=_json_id(item),
        author=_json_author(item) or _json_author(feed),
        published=_json_published(item),
        source=source,
        lang=_lang(_json_str(item, "language") or _json_str(feed, "language")),
    )


def _json_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return whole_characters(value) if isinstance(value, str) else ""


def _json_content(item: dict[str, Any]) -> str:
    html = _json_str(item, "content_html")
    return html_to_text(html) if html.strip() else clean_text(_json_str(item, "content_text"))


def _json_id(item: dict[str, Any]) -> str | None:
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None  # feeds in the wild use numbers although the spec says string
    return _optional(whole_characters(str(value)))


def _json_published(item: dict[str, Any]) -> datetime | None:
    for key in ("date_published", "date_modified"):
        value = _json_str(item, key)
        # The spec says RFC 3339; some feeds write RFC 822 dates as in RSS.
        published = _iso_datetime(value) or _rfc822_datetime(value)
        if published:
            return published
    return None


def _json_author(obj: dict[str, Any]) -> str | None:
    authors = obj.get("authors")  # JSON Feed 1.1
    candidates = [*(authors if isinstance(authors, list) else []), obj.get("author")]  # 1.0
    for author in candidates:
        if isinstance(author, dict) and _json_str(author, "name").strip():
            return _optional_text(_json_str(author, "name"))
    return None


# Documents -----------------------------------------------------------------------------------


def _json_document(text: str, path: Path, source: str) -> Article:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise ParseError(f"{path}: the JSON document is not an object")
    fields = {
        name: _document_field(document, name, path)
        for name in ("title", "text", "summary", "url", "source", "published", "author", "guid")
    }
    title = html_to_text(fields["title"])
    if not title:
        raise ParseError(f"{path}: no title")
    return Article(
        title=title,
        text=html_to_text(fields["text"]),
        summary=html_to_text(fields["summary"]),
        url=_optional(fields["url"]),
        guid=_optional(fields["guid"]),
        author=_optional_text(fields["author"]),
        published=_document_date(fields["published"], path),
        source=source or fields["source"].strip(),
        # optional metadata: a language that is not a string is left out, not an error
        lang=_lang(_json_str(document, "lang") or _json_str(document, "language")),
    )


def _document_field(document: dict[str, Any], name: str, path: Path) -> str:
    value = document.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParseError(f"{path}: {name} must be a string, not {type(value).__name__}")
    return whole_characters(value)


def _document_date(value: str, path: Path) -> datetime | None:
    if not value.strip():
        return None
    published = _iso_datetime(value)
    if published is None:
        raise ParseError(f"{path}: published is not an ISO 8601 date: {value!r}")
    return published


def _text_document(text: str, path: Path, source: str, *, markdown: bool) -> Article:
    lines = text.splitlines()
    index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if index is None:
        raise ParseError(f"{path}: empty document, no title")
    title = clean_text(lines[index].lstrip("#") if markdown else lines[index])
    if not title:
        raise ParseError(f"{path}: no title on the first non-empty line")
    return Article(title=title, text=clean_text("\n".join(lines[index + 1 :])), source=source)


# Shared --------------------------------------------------------------------------------------


def _iso_datetime(value: str) -> datetime | None:
    """An ISO 8601 / RFC 3339 date as aware UTC; a date without a zone is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return _as_utc(parsed)


def _rfc822_datetime(value: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return _as_utc(parsed)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _lang(value: object) -> str | None:
    """A language tag in one spelling: "en_US", "EN-us" → "en-us"."""
    tag = _optional(value)
    return tag.replace("_", "-").lower() if tag else None


def _optional(value: object) -> str | None:
    """An identifier (URL, GUID, language tag) as given, or None when absent or blank."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _optional_text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return clean_text(value) or None


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _describe(problem: object) -> str:
    return str(problem) or type(problem).__name__


def _error(source: str, reason: str) -> ParseError:
    return ParseError(f"{source}: {reason}" if source else reason)
