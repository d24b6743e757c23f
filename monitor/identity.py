"""An article's identity within its source: the key that says "seen before".

A feed entry is known by its GUID, else by its canonical URL, else by a hash of its title and
text. As in miniflux, a GUID that occurs more than once in one feed document identifies nothing,
so those entries fall back to their URL (or to the hash when the URLs repeat too) and distinct
items are not merged. A document from a folder source is known by its relative path.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from monitor.models import Article

#: Longest key stored; a longer one is replaced by its SHA-256 (``"guid-sha256:" + hex``).
MAX_KEY_LENGTH = 512

# Query parameters that only say where a reader came from; case-insensitive.
_TRACKING_PARAMETERS = frozenset(
    {"fbclid", "gclid", "mc_cid", "mc_eid", "at_medium", "at_campaign", "ito", "cmp", "ocid"}
)
_TRACKING_PREFIXES = ("utm_", "ns_")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def canonical_url(url: str) -> str:
    """One spelling of a URL: lower-case scheme and host, no default port, fragment or tracking.

    The remaining query parameters are sorted by name (repeated names keep their order) and
    keep their original encoding. A ``#!`` fragment is kept: it addresses a page. A URL too
    broken to split is returned as it is, stripped.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return url.strip()
    scheme = parts.scheme.lower()
    netloc = _canonical_netloc(scheme, parts.netloc)
    path = parts.path or ("/" if netloc and scheme in _DEFAULT_PORTS else "")
    fragment = parts.fragment if parts.fragment.startswith("!") else ""
    return urlunsplit((scheme, netloc, path, _canonical_query(parts.query), fragment))


def article_keys(articles: Sequence[Article]) -> list[str]:
    """The key of each article of one feed document, in order."""
    guid_counts = Counter(a.guid for a in articles if a.guid)
    guids = [a.guid if a.guid and guid_counts[a.guid] == 1 else None for a in articles]
    urls = [
        canonical_url(a.url) if a.url and not guid else None
        for a, guid in zip(articles, guids, strict=True)
    ]
    url_counts = Counter(url for url in urls if url)
    keys = []
    for article, guid, url in zip(articles, guids, urls, strict=True):
        if guid:
            keys.append(_bounded("guid", guid))
        elif url and url_counts[url] == 1:
            keys.append(_bounded("url", url))
        else:
            keys.append("hash:" + _sha256(f"{article.title}\n{article.text}"))
    return keys


def document_key(relative_path: str) -> str:
    """The key of a document in a folder source, from its POSIX path relative to the folder."""
    return _bounded("file", relative_path)


def _bounded(kind: str, value: str) -> str:
    key = f"{kind}:{value}"
    return key if len(key) <= MAX_KEY_LENGTH else f"{kind}-sha256:{_sha256(value)}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical_netloc(scheme: str, netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    host = host.lower().removesuffix(":")
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port:
        host = host.removesuffix(default_port)
    return f"{userinfo}{at}{host}"


def _canonical_query(query: str) -> str:
    kept = [p for p in query.split("&") if p and not _is_tracking(_parameter_name(p))]
    return "&".join(sorted(kept, key=_parameter_name))


def _parameter_name(parameter: str) -> str:
    return unquote_plus(parameter.partition("=")[0])


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name in _TRACKING_PARAMETERS or name.startswith(_TRACKING_PREFIXES)
