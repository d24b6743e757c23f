"""Propose topics: the phrases that say what a set of documents is about.

``monitor.extract`` finds the actors first and hands over, in ``TopicRules``, what topics must
leave to them; this module finds the phrases and ranks them.

Candidates are phrases of two to four words within a clause (and compounds such as
"military-to-military"), read with persons' and organisations' names taken out of the text, so
that "foreign ministry readouts" cannot yield "ministry readouts". Rejected: a stop word, demonym
or generic word at either end; a verb first (a word the documents write after "to", a modal or a
pronoun); a role last ("veteran diplomat"); part of a person's name; an actor's name or a run
inside one; cutting a capitalised run; always followed by the same word ("senior administration"
officials); all of a longer candidate's occurrences; or holding a shorter candidate.

Distinctiveness. No phrase is more common in English than its rarest word, so how much more often
the documents use a phrase than English uses that word (wordfreq's Zipf scale, log10 of uses per
billion words) is a floor on how specific the phrase is to them. "fentanyl precursors", seen once
in 3,000 words, scores 2.7 (500 times commoner here than "fentanyl" in English); "human rights",
seen twice, 0.7. The score adds ``DOCUMENT_BONUS`` for each document beyond the first, and
``LISTED_BONUS`` for an item of a list or what something is about ("Taiwan, human rights, the flow
of fentanyl precursors and …", "issues including climate change").

Choice. A phrase seen in two documents is a candidate. A phrase seen in one must score at least
``MIN_SCORE`` and be shaped like the name of a thing: lower case, two words or "X of Y", no verb,
no adverb in -ly, no -ing word, no -ed word but the first, and never followed by "the", "a" or a
pronoun (then its last word is a verb: "the firm believes the …"). After "a" or a name it is a
one-off ("a crucial juncture") or a verb ("China attaches importance"): it may join a topic but
not make one. Phrases seen twice are chosen first, then the best scored, up to ``MAX_TOPICS``;
topics come out best scored first.

Terms. A candidate holding a chosen one's rarest word, or whose rarest word a chosen one holds,
belongs to that topic ("spy balloon", "balloon incident", "surveillance balloon"): up to
``MAX_EXTRA_TERMS`` of them join it if seen twice or ending in that word, and the rest are dropped.
Every spelling the documents use is a term.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache

from wordfreq import zipf_frequency

MAX_TOPICS = 20  # how many phrase topics a proposal offers at most
MAX_EXTRA_TERMS = 3  # how many other phrases a topic takes in as terms
MIN_SCORE = 1.2  # seen in one document: about 16 times commoner than its rarest word in English
DOCUMENT_BONUS = 0.5  # added to the score for each document beyond the first
LISTED_BONUS = 1.0  # added to the score of an item of a list

_CLAUSE_BREAK = re.compile(r"'s\b|[^A-Za-z\s'-]+|\s-\s|\n")
_TOPIC_WORD = re.compile(r"[A-Za-z]{2,}(?:-[A-Za-z]+)*")
_VERB = re.compile(
    r"\b(?:to|will|would|can|could|should|may|might|must|did|does|not|he|she|it|we|they|who"
    r"|which)\s+(?:[a-z]+ly\s+|also\s+|not\s+)?([a-z]+)"
)  # the word after "to", a modal or a pronoun (an adverb may come between): a verb
_PARTICLES = frozenset(["ahead", "around", "away", "back", "down", "off", "out", "together"])
_SUBJECT_BEFORE = re.compile(
    r"(?:[,:]|\b(?:and|or|about|over|regarding|including|discuss))\s+(?:(?:the|a|an)\s+)?"
    r'(?:[a-z-]+\s+(?:of\s+)?){0,2}"?$'
)  # an item of a list ("Taiwan, human rights, …") or what something is about ("talks on …")
_LISTED_AFTER = re.compile(r'"?,?\s+(?:and|or)\b')
_DETERMINER_AFTER = re.compile(
    r"\s+(?:a|an|the|this|these|those|its|their|his|her|our|it|they|he|she|we)\b", re.IGNORECASE
)  # a phrase seen once and followed by one ends in a verb: "the company believes the"
_NAME_BEFORE = re.compile(r"\b[A-Z][\w.'-]*\s+$")
_INDEFINITE_BEFORE = re.compile(r"\b(?:a|an|another|any)\s+(?:[\w-]+,?\s+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class TopicRules:
    """What topic proposal must know of English and of the actors already proposed."""

    stop_words: frozenset[str]
    edge_words: frozenset[str]  # never first or last: stop words, demonyms, generic words …
    title_words: frozenset[str]  # words of titles: a phrase of nothing else is no topic
    role_words: frozenset[str]  # "diplomat", "official": a phrase ending in one is a person
    person_words: frozenset[str]  # lower-case words of persons' names
    taken: frozenset[str]  # lower-case names and aliases of actors and events
    masked: tuple[str, ...]  # names and aliases of persons and organisations


@dataclass(frozen=True)
class FoundTopic:
    """A topic found in phrases: its name (how the documents write it most), terms and score."""

    name: str
    terms: tuple[str, ...]
    score: float


def find_topics(docs: Sequence[str], rules: TopicRules, min_mentions: int = 1) -> list[FoundTopic]:
    """The topics of ``docs``, best scored first, each seen at least ``min_mentions`` times."""
    taken = frozenset(p for name in rules.taken for p in (name, *_parts(name)))
    phrases = _phrases(docs, replace(rules, taken=taken))
    candidates = _outermost(list(_candidates(docs, phrases, rules, max(1, min_mentions))), phrases)
    chosen = sorted(candidates, key=lambda c: (not c.repeated, -c.score, c.key))
    topics = [
        FoundTopic(group[0].name, _terms(group, phrases), group[0].score)
        for group in _grouped(chosen)
    ]
    return sorted(topics, key=lambda t: (-t.score, t.name))


# Phrases -----------------------------------------------------------------------------------------


@dataclass
class _Phrases:
    counts: Counter[str] = field(default_factory=Counter)  # by key: words singular, lower case
    documents: Counter[str] = field(default_factory=Counter)
    spellings: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    followers: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    words: int = 0  # how many words the documents have
    verbs: frozenset[str] = frozenset()

    def always_followed(self, key: str) -> bool:
        """Whether one word always follows ("senior administration" officials)."""
        return len(self.followers[key]) == 1 and "" not in self.followers[key]

    def name(self, key: str) -> str:
        """The spelling the documents use most."""
        return min(self.spellings[key], key=lambda s: (-self.spellings[key][s], s))

    def written(self, key: str) -> list[str]:
        """How the documents write a key, most often first, in lower case."""
        spelt: Counter[str] = Counter()
        for spelling, n in self.spellings[key].items():
            spelt[spelling.lower()] += n
        return sorted(spelt, key=lambda s: (-spelt[s], s))


def _phrases(docs: Sequence[str], rules: TopicRules) -> _Phrases:
    lower_words = frozenset(w for doc in docs for w in re.findall(r"\b[a-z][a-z-]*\b", doc))
    verbs = frozenset(v for doc in docs for v in _VERB.findall(doc))
    found = _Phrases(verbs=verbs)
    names = sorted(rules.masked, key=len, reverse=True)
    masked = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, names))})(?!\w)", re.IGNORECASE)
    for doc in docs:
        found.words += len(_TOPIC_WORD.findall(doc))
        keys: set[str] = set()
        for words in _clauses(masked.sub("|", doc) if names else doc, lower_words):
            for phrase, follower in _clause_phrases(words, rules, verbs):
                key = _key(phrase)
                found.counts[key] += 1
                found.spellings[key][phrase] += 1
                found.followers[key][_singular(follower.lower())] += 1
                keys.add(key)
        found.documents.update(keys)
    return found


def _key(phrase: str) -> str:
    return " ".join(_singular(w.lower()) for w in phrase.split())


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies") and word != "series":
        return word[:-3] + "y"
    plural = len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is"))
    return word[:-1] if plural else word


def _parts(phrase: str) -> Iterator[str]:
    """The shorter runs of words inside a phrase: "south china sea" holds "china sea", "sea" …"""
    words = phrase.split()
    for size in range(1, len(words)):
        for start in range(len(words) - size + 1):
            yield " ".join(words[start : start + size])


def _clauses(doc: str, lower_words: frozenset[str]) -> Iterator[list[str]]:
    for clause in _CLAUSE_BREAK.split(doc):
        words: list[str] = []
        for word in clause.split():
            if not _TOPIC_WORD.fullmatch(word):
                yield words
                words = []
            elif not words and word.lower() in lower_words:
                words.append(word.lower())  # "Bilateral relations" at the start of a sentence
            else:
                words.append(word)
        yield words


def _clause_phrases(
    words: list[str], rules: TopicRules, verbs: frozenset[str]
) -> Iterator[tuple[str, str]]:
    """Candidate phrases of a clause, each with the word that follows it ("" for a stop word)."""
    followers = [w if w.lower() not in rules.stop_words else "" for w in words[1:]] + [""]
    capital = [w[0].isupper() for w in words]
    for start, word in enumerate(words):
        if word.count("-") >= 2 and word.islower():
            yield word, followers[start]
        for end in range(start + 2, min(start + 4, len(words)) + 1):
            phrase = words[start:end]
            if _keeps_names_whole(capital, start, end) and _is_topic(phrase, rules, verbs):
                yield " ".join(phrase), followers[end - 1]


def _keeps_names_whole(capital: list[bool], start: int, end: int) -> bool:
    """Whether words[start:end] of a clause, capitalised as ``capital`` says, cuts no capitalised
    run and has no capital after a small word ("visit China")."""
    cuts_start = start > 0 and capital[start - 1] and capital[start]
    cuts_end = end < len(capital) and capital[end - 1] and capital[end]
    small_first = any(not a and b for a, b in itertools.pairwise(capital[start:end]))
    return not (cuts_start or cuts_end or small_first)


def _is_topic(words: list[str], rules: TopicRules, verbs: frozenset[str]) -> bool:
    lowered = [w.lower() for w in words]
    edges = (lowered[0], lowered[-1])
    return not (
        any(w in rules.edge_words or (len(w) > 4 and w.endswith("ed")) for w in edges)
        or any(w in rules.stop_words and w != "of" for w in lowered)
        or all(w in rules.title_words for w in lowered)
        or lowered[-1] in rules.role_words
        or not rules.person_words.isdisjoint(lowered)
        or lowered[0] in verbs
        or " ".join(lowered) in rules.taken
    )


# Choice ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    key: str  # words singular, lower case
    name: str  # the spelling the documents use most
    rarest: str  # the key's word that is rarest in English
    score: float
    repeated: bool  # seen twice or more
    one_off: bool  # seen in one document, after "a" or a name: it may join a topic, not make one


@cache
def _zipf(word: str) -> float:
    return zipf_frequency(word, "en")


def _candidates(
    docs: Sequence[str], phrases: _Phrases, rules: TopicRules, least: int
) -> Iterator[_Candidate]:
    for key, count in phrases.counts.items():
        if count >= least and not phrases.always_followed(key):
            found = _candidate(key, docs, phrases, rules)
            if found is not None:
                yield found


def _candidate(
    key: str, docs: Sequence[str], phrases: _Phrases, rules: TopicRules
) -> _Candidate | None:
    name, count, documents = phrases.name(key), phrases.counts[key], phrases.documents[key]
    spread = documents >= 2 and count >= 2
    if not spread and not _names_a_thing(name, phrases.verbs):
        return None
    contexts = list(_contexts(docs, name))
    if not spread and any(_DETERMINER_AFTER.match(after) for _, after in contexts):
        return None
    rarest = min((w for w in name.lower().split() if w != "of"), key=lambda w: (_zipf(w), w))
    listed = any(_SUBJECT_BEFORE.search(b) or _LISTED_AFTER.match(a) for b, a in contexts)
    score = (
        math.log10(count * 1e9 / phrases.words)
        - _zipf(rarest)
        + DOCUMENT_BONUS * (documents - 1)
        + LISTED_BONUS * listed
    )
    if not spread and score < MIN_SCORE:
        return None
    one_off = not spread and any(_is_one_off(before, rules) for before, _ in contexts)
    return _Candidate(key, name, _singular(rarest), score, count >= 2, one_off)


def _names_a_thing(phrase: str, verbs: frozenset[str]) -> bool:
    """Whether a phrase seen once is shaped like the name of a thing ("fentanyl precursors")."""
    words = phrase.split()
    if not phrase.islower() or len(words) > 3 or (len(words) == 3 and words[1] != "of"):
        return False
    return not any(
        w in verbs
        or w in _PARTICLES
        or (len(w) > 4 and w.endswith("ly"))
        or (len(w) > 5 and w.endswith("ing"))
        or (i > 0 and len(w) > 4 and w.endswith("ed"))
        for i, w in enumerate(words)
        if w != "of"
    )


def _is_one_off(before: str, rules: TopicRules) -> bool:
    """Whether the text before a phrase makes it a one-off ("a crucial juncture") or a verb
    ("China attaches importance")."""
    name = _NAME_BEFORE.search(before)
    return bool(_INDEFINITE_BEFORE.search(before)) or (
        name is not None and name.group().strip().lower() not in rules.edge_words
    )


def _contexts(docs: Sequence[str], phrase: str) -> Iterator[tuple[str, str]]:
    """The text just before and just after each place a phrase is written."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", re.IGNORECASE)
    for doc in docs:
        for found in pattern.finditer(doc):
            yield (
                doc[max(0, found.start() - 40) : found.start()],
                doc[found.end() : found.end() + 12],
            )


def _outermost(candidates: list[_Candidate], phrases: _Phrases) -> list[_Candidate]:
    """Drop a candidate seen only inside a longer one, then one holding a shorter one."""
    counts = phrases.counts
    most_in_longer: Counter[str] = Counter()
    for candidate in candidates:
        for part in _parts(candidate.key):
            most_in_longer[part] = max(most_in_longer[part], counts[candidate.key])
    kept = [c for c in candidates if counts[c.key] > most_in_longer[c.key]]
    keys = {c.key for c in kept}
    return [c for c in kept if keys.isdisjoint(_parts(c.key))]


def _grouped(chosen: list[_Candidate]) -> list[list[_Candidate]]:
    """Candidates in topics by the rarest words they share, at most ``MAX_TOPICS`` topics."""
    groups: list[list[_Candidate]] = []
    for candidate in chosen:
        group = next((g for g in groups if _shares_a_rarest_word(candidate, g)), None)
        if group is None and len(groups) < MAX_TOPICS and not candidate.one_off:
            groups.append([candidate])
        elif group is not None and len(group) <= MAX_EXTRA_TERMS and _joins(candidate, group):
            group.append(candidate)
    return groups


def _shares_a_rarest_word(candidate: _Candidate, group: list[_Candidate]) -> bool:
    words = candidate.key.split()
    return any(m.rarest in words or candidate.rarest in m.key.split() for m in group)


def _joins(candidate: _Candidate, group: list[_Candidate]) -> bool:
    """Whether a candidate is a term of a topic: seen twice, or ending in a word they share."""
    return candidate.repeated or candidate.key.split()[-1] in {m.rarest for m in group}


def _terms(group: list[_Candidate], phrases: _Phrases) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for c in group for t in phrases.written(c.key)))
