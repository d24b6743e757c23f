"""The story stage: which stored article a new one repeats, and which story it joins or starts.

Pure: features, similarity and decisions over plain values; ``monitor.store`` looks the
candidates up and writes the result.

- **Same article** (a duplicate): the same canonical URL (tracking parameters dropped, an
  aggregator's redirect link resolved to the URL it carries), or the same normalised title
  within the window.
- **Near-same article** (syndicated wire copy with small edits): MinHash signatures over
  word shingles whose estimated Jaccard similarity is at least ``NEAR_DUPLICATE``; candidates
  come from locality-sensitive bands of the signature.
- **Same story**: articles that name tracked actors or topics and are close in time and in
  their distinctive terms: the tracked entities they name and their proper nouns, weighted
  by rarity in a background corpus (``story_background.json``), the title and lede counting
  double. Articles that place their event in different places (``in Munich`` against ``in
  Beijing``) are never one story.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
import struct
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from rensa import RMinHash

from monitor.identity import canonical_url
from monitor.models import TEXT_FIELDS, Article, Mention, unique
from monitor.normalise import fold_string

NUM_PERM = 64  # MinHash permutations: 256 bytes a signature
BANDS = 16  # LSH bands of NUM_PERM // BANDS rows: pairs above ~0.5 Jaccard share a band
SHINGLE_WORDS = 3
NEAR_DUPLICATE = 0.8  # estimated Jaccard of shingles at or above which texts are one article
MIN_SHINGLES = 8  # shorter texts are compared by URL and title only
MIN_TITLE_WORDS = 4  # a shorter title ("Live updates") identifies nothing
JOIN = 0.45  # cosine of distinctive terms at or above which an article joins a story
JOIN_SAME_PLACE = 0.35  # … when both put the event in the same tracked place
ARTICLE_TERMS = 40  # distinctive terms kept per article
STORY_TERMS = 60  # and per story
STORY_KEYS = 12  # the story's heaviest terms, indexed to find it
LEDE_CHARS = 400  # the opening of the text that counts like the title
LEDE_WEIGHT = 2.0
PROPER_NOUN_WEIGHT = 0.5  # a capitalised word, against 1 for a tracked entity
MAX_CANDIDATES = 20  # stories compared with one article, those sharing most keys first

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_PROPER_NOUN = re.compile(r"\b[^\W\d_a-z][\w’'-]*")
_REDIRECT_PARAMETERS = ("url", "u", "q", "target", "dest", "destination")
_LOCATIVE = ("in ", "at ")
# ASCII that is not a letter or a digit, as a space (shingles are of words, not punctuation)
_NOT_WORD = bytes(b if chr(b).isalnum() or b >= 128 else 32 for b in range(256))
_BACKGROUND = Path(__file__).with_name("story_background.json")
_SEED = 1  # of the MinHash permutations: every signature ever stored used the same
_PRIME = (1 << 56) - 5  # the largest prime below 2**56: a band's values modulo it key the band


@dataclass(frozen=True)
class StoryFeatures:
    """What the story stage needs of one new article, computed before the write transaction."""

    at: datetime  # published, else fetched
    outlet: str
    window: timedelta  # how far apart in time two articles of one story may be
    url_key: str | None  # canonical URL, redirects resolved
    title_key: str | None  # normalised title, when long enough to identify anything
    minhash: bytes | None  # signature of the text's shingles; None for a short text
    bands: tuple[int, ...] = ()  # LSH band keys of the signature
    # of an article that joins stories: its distinctive terms, unit length, heaviest first,
    # and the tracked places its title or lede puts the event in
    terms: tuple[tuple[str, float], ...] = ()
    places: tuple[str, ...] = ()
    actors: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()

    @property
    def joins_stories(self) -> bool:
        """Only articles naming a tracked actor or topic belong to stories."""
        return bool(self.actors or self.topics)


@dataclass(frozen=True)
class StoryProfile:
    """What a story is about, summed over its articles: compared with each new article."""

    terms: Mapping[str, float] = field(default_factory=dict)
    places: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"terms": dict(self.terms), "places": list(self.places)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> StoryProfile:
        terms = data.get("terms") or {}
        places = data.get("places") or []
        assert isinstance(terms, dict) and isinstance(places, list)
        return cls({str(k): float(v) for k, v in terms.items()}, tuple(map(str, places)))

    def index_keys(self) -> tuple[str, ...]:
        """The terms indexed to find the story."""
        return tuple(t for t, _ in _heaviest(self.terms.items(), STORY_KEYS))


@dataclass(frozen=True)
class Candidate:
    """An open story that shares keys with the article."""

    story_id: int
    profile: StoryProfile


@dataclass(frozen=True)
class Background:
    """How many documents of a background corpus have each term."""

    documents: int
    frequencies: Mapping[str, int]

    def idf(self, term: str) -> float:
        return math.log((self.documents + 1) / (self.frequencies.get(term, 0) + 1))


@functools.cache
def background() -> Background:
    data = json.loads(_BACKGROUND.read_text(encoding="utf-8"))
    return Background(int(data["documents"]), data["frequencies"])


def article_features(
    article: Article,
    mentions: Sequence[Mention],
    *,
    at: datetime,
    outlet: str,
    window: timedelta,
    places: frozenset[str],
    weights: Background | None = None,
) -> StoryFeatures:
    """Everything the story stage compares, for one article. ``places`` are the ids of the
    tracked actors that are places. Only an article that can join stories (it names a tracked
    actor or topic) is given distinctive terms and places: the others are compared as copies
    only."""
    minhash = text_signature(article.title, article.text, article.summary)
    features = StoryFeatures(
        at=at,
        outlet=outlet,
        window=window,
        url_key=article_url_key(article.url),
        title_key=title_key(article.title),
        minhash=minhash,
        bands=() if minhash is None else band_keys(minhash),
        actors=unique(m.id for m in mentions if m.kind == "actor"),
        topics=unique(m.id for m in mentions if m.kind == "topic"),
    )
    if not features.joins_stories:
        return features
    return replace(
        features,
        terms=weighted_terms(article, mentions, weights or background()),
        places=_event_places(article, mentions, places),
    )


def outlet_of(url: str | None, source: str, *, folder: bool) -> str:
    """The source's name for a folder; for a feed, the article URL's host without ``www.``."""
    if folder or not url:
        return source
    host = (urlsplit(resolved_url(url)).hostname or "").lower().removeprefix("www.")
    return host or source


def resolved_url(url: str) -> str:
    """The URL an aggregator's redirect link leads to, when the link carries it."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return url
    for name, value in parse_qsl(query):
        if name.lower() in _REDIRECT_PARAMETERS and value.startswith(("http://", "https://")):
            return value
    return url


def article_url_key(url: str | None) -> str | None:
    if not url or not url.startswith(("http://", "https://")):
        return None  # a folder document's file: URL is its own
    return canonical_url(resolved_url(url))[:600]


def title_key(title: str) -> str | None:
    words = _WORD.findall(fold_string(title))
    return " ".join(words)[:600] if len(words) >= MIN_TITLE_WORDS else None


def near_duplicate(a: bytes, b: bytes) -> bool:
    """Whether two signatures estimate a shingle Jaccard similarity of ``NEAR_DUPLICATE``."""
    if len(a) != len(b):
        return False
    same: int = sum(map(operator.eq, memoryview(a).cast("I"), memoryview(b).cast("I")))
    return same >= NEAR_DUPLICATE * (len(a) // 4)


def similarity(article: StoryFeatures, profile: StoryProfile) -> float:
    """Cosine of the article's distinctive terms and the story's; 0 when they place the
    event in different places."""
    if article.places and profile.places and not set(article.places) & set(profile.places):
        return 0.0
    norm = math.sqrt(sum(w * w for w in profile.terms.values())) or 1.0
    return sum(w * profile.terms.get(t, 0.0) for t, w in article.terms) / norm


def best_story(article: StoryFeatures, candidates: Iterable[Candidate]) -> int | None:
    """The story the article joins (the most similar at or above ``JOIN``), or None."""
    scored = [
        (similarity(article, c.profile) / _threshold(article, c.profile), c.story_id)
        for c in candidates
    ]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] >= 1.0 else None


def _threshold(article: StoryFeatures, profile: StoryProfile) -> float:
    """Reports that put the event in the same place need less else in common to be one."""
    same_place = bool(set(article.places) & set(profile.places))
    return JOIN_SAME_PLACE if same_place else JOIN


def grown(profile: StoryProfile | None, article: StoryFeatures) -> StoryProfile:
    """The story's profile with the article added."""
    terms: defaultdict[str, float] = defaultdict(float, profile.terms if profile else {})
    for term, weight in article.terms:
        terms[term] += weight
    places = unique([*(profile.places if profile else ()), *article.places])
    return StoryProfile(dict(_heaviest(terms.items(), STORY_TERMS)), places)


def weighted_terms(
    article: Article, mentions: Sequence[Mention], weights: Background
) -> tuple[tuple[str, float], ...]:
    """Tracked entities and proper nouns, weighted by count and rarity, unit length."""
    counts = term_counts(article, mentions)
    scored = {t: (1 + math.log(c)) * weights.idf(t) for t, c in counts.items() if c > 0}
    top = _heaviest(scored.items(), ARTICLE_TERMS)
    norm = math.sqrt(sum(w * w for _, w in top)) or 1.0
    return tuple((t, round(w / norm, 6)) for t, w in top if w > 0)


def term_counts(article: Article, mentions: Sequence[Mention]) -> dict[str, float]:
    """The raw terms of an article (the background table counts the same ones)."""
    counts: defaultdict[str, float] = defaultdict(float)
    for m in mentions:
        counts[f"{m.kind}:{m.id}"] += _position_weight(m.field, m.start)
    for name in TEXT_FIELDS:
        for word, weight in _proper_nouns(name, article.field_text(name)):
            term = _proper_noun_term(word)
            if len(term) > 1:
                counts[term] += PROPER_NOUN_WEIGHT * weight
    return counts


def _proper_nouns(field_name: str, text: str) -> Iterable[tuple[str, float]]:
    """The capitalised words of a field, each with its position weight times its count (the
    words after the lede all weigh the same, and are counted at once)."""
    found: list[tuple[str, float]] = []
    for match in _PROPER_NOUN.finditer(text):
        weight = _position_weight(field_name, match.start())
        if weight != LEDE_WEIGHT:  # past the lede: the rest, from this word on
            rest = Counter(_PROPER_NOUN.findall(text, match.start()))
            return [*found, *((word, weight * n) for word, n in rest.items())]
        found.append((match.group(), weight))
    return found


@functools.lru_cache(maxsize=65_536)
def _proper_noun_term(word: str) -> str:
    """A capitalised word as a term: folded, without a possessive 's (the same words recur in
    every article, so they are folded once)."""
    return fold_string(word).removesuffix("’s").removesuffix("'s")


def _position_weight(field_name: str, start: int) -> float:
    return LEDE_WEIGHT if field_name == "title" or start < LEDE_CHARS else 1.0


def _event_places(
    article: Article, mentions: Sequence[Mention], places: frozenset[str]
) -> tuple[str, ...]:
    """Tracked places that the title or lede names after "in" or "at"."""
    found = []
    for m in mentions:
        if m.id not in places or (m.field != "title" and m.start >= LEDE_CHARS):
            continue
        before = article.field_text(m.field)[max(0, m.start - 3) : m.start].lower()
        if before.endswith(_LOCATIVE):
            found.append(m.id)
    return unique(found)


def text_signature(title: str, text: str, summary: str = "") -> bytes | None:
    """The MinHash signature of the word shingles of a title and text (the summary where
    there is no text), as rensa's ``RMinHash`` works it out: ``NUM_PERM`` 32-bit values,
    little-endian. None for a text too short to compare."""
    shingles = _shingles(f"{title}\n{text or summary}")
    if not _distinct_at_least(shingles, MIN_SHINGLES):
        return None
    signature = RMinHash(NUM_PERM, _SEED)
    signature.update(shingles)  # a shingle given twice changes nothing: it is a set's minimum
    return struct.pack(f"<{NUM_PERM}I", *signature.digest())


def band_keys(signature: bytes) -> tuple[int, ...]:
    """The signature's locality-sensitive bands, one 60-bit key each: the band's number in
    the top bits, and below them its values (already hashes) as one number modulo a prime."""
    size = len(signature) // BANDS
    return tuple(
        band << 56 | int.from_bytes(signature[band * size : (band + 1) * size], "little") % _PRIME
        for band in range(BANDS)
    )


def _shingles(text: str) -> list[str]:
    """The runs of ``SHINGLE_WORDS`` words of the folded text (its ASCII punctuation left
    out), in order, repeats and all."""
    encoded = fold_string(text).encode("utf-8", "surrogatepass").translate(_NOT_WORD)
    words = encoded.decode("utf-8", "surrogatepass").split()
    runs = zip(*(words[i:] for i in range(SHINGLE_WORDS)), strict=False)
    return list(map(" ".join, runs))


def _distinct_at_least(items: Iterable[str], count: int) -> bool:
    """Whether ``items`` hold ``count`` different ones, reading no further than it takes."""
    seen: set[str] = set()
    for item in items:
        seen.add(item)
        if len(seen) >= count:
            return True
    return False


def _heaviest(items: Iterable[tuple[str, float]], count: int) -> list[tuple[str, float]]:
    return sorted(items, key=lambda item: (-item[1], item[0]))[:count]
