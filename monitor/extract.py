"""Propose a watchlist (actors and topics) from plain-text news documents, for a person to review.

Name sequences are runs of capitalised words joined by single spaces ("Antony J. Blinken",
"Asia-Pacific Economic Cooperation"), "of" joining two of them ("Secretary of State"). Stop words
("The", "Both"), month and day names, and a sentence's first word when the corpus also writes it
in lower case, or it stands alone and is never capitalised mid-sentence ("Talks", "Analysts"), are
trimmed off.

Persons: the words after a title ("Foreign Minister", "Mr."); two to four name-like words after a
lower-case role ("leader Xi Jinping"), after "said", or before an apposition with a role (", a
Cornell University professor"); two or three words whose first or last word also appears alone
("Wang Yi" … "Wang"). That word is the surname (else a very common surname written first, else the
last word); it is weak when two persons share it or it is very common. A name with a middle
initial joins the name without it. Aliases: the surname and each "Title Name" form written.

Organisations: runs with an organisation word ("Department", "Pentagon"), and acronyms, which
"Long Name (ACRONYM)" makes an alias. Places: a small built-in list of countries, capitals and
regions, and name-like runs right after "in", "to" or "from" that are nobody's name.

Topics: phrases of two to four words within a clause (and compounds such as
"military-to-military") seen at least twice, ranked by documents then occurrences. Rejected: a stop
word, demonym or generic word at either end; a first word the corpus writes after "to" (a verb);
part of a person's name; inside an actor's name; cutting a capitalised run; always followed by the
same word ("senior administration" officials); all of a longer phrase's occurrences; or holding a
shorter topic. Two-word topics add phrases with the same head ("surveillance balloon").

A strong alias that two actors share becomes weak for both. Counts are what monitor's matcher
finds in the documents with the proposed watchlist.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from monitor.matcher import Matcher
from monitor.models import Article
from monitor.normalise import clean_text, fold_string
from monitor.watchlist import Entity, Watchlist

ActorKind = Literal["person", "organisation", "place"]

MAX_TOPICS = 20  # how many topics a proposal offers at most
MIN_TOPIC_MENTIONS = 2  # a phrase seen once is not proposed as a topic


def _words(text: str, sep: str | None = None) -> frozenset[str]:
    return frozenset(word.strip() for word in text.split(sep))


_STOP = _words("""a about after against all also an and any are as at be because been before both
but by can could despite during each earlier either even every few for from had has have he her
here his how however i if in instead into is it its last later many may meanwhile more most much
my neither next no nor not now of on once one only or other our over per same several she should
since so some still such than that the their then there these they this those though through to
today under until up upon us was we were what when where whether which while who why will with
within without would yesterday yet you""")
_CALENDAR = _words("""january february march april may june july august september october november
december monday tuesday wednesday thursday friday saturday sunday""")
_TITLES = tuple(t.lower().split() for t in (
    "Secretary of State", "Secretary of Defense", "Assistant Secretary", "Secretary",
    "Foreign Minister", "Defense Minister", "Defence Minister", "Commerce Minister",
    "Prime Minister", "Minister", "Vice President", "President", "National Security Adviser",
    "National Security Advisor", "Foreign Policy Adviser", "Director", "Ambassador", "Senator",
    "Governor", "Mayor", "Chancellor", "Premier", "Chairman", "Spokesman", "Spokeswoman",
    "Professor", "Envoy", "King", "Queen", "Pope", "Mr", "Mr.", "Mrs", "Mrs.", "Ms", "Ms.", "Dr",
    "Dr.",
))  # fmt: skip
_TITLE_WORDS = frozenset(word for title in _TITLES for word in title)
_ROLES = _words("""adviser advisor ambassador analyst chairman chief counterpart diplomat director
economist envoy fellow leader leaders minister official president presidents professor researcher
scholar secretary senator spokesman spokeswoman spokesperson""")
_SAYS = _words("said says added wrote")
_ORG_WORDS = _words("""academy agency alliance army association bank bureau cia college command
commission committee company conference congress cooperation corporation council court department
embassy force forces foundation fund group guard house institute institution ministry navy
organisation organization parliament party pentagon police senate service university""")
_GEO_WORDS = _words("""north south east west middle central sea strait ocean gulf island islands
river coast bay peninsula lake""")
_DEMONYMS = _words("""american asian australian british chinese european french german indian
iranian israeli japanese korean russian taiwanese ukrainian""")
_COMMON_SURNAMES = _words("""brown chen davis garcia huang jones kim lee li lin liu miller nguyen
park smith wang williams wu yang zhang zhao zhou""")
_GENERIC = _words("""another around between day days first hour hours month months morning
official officials part people second side sides three time times toward two way week weeks year
years""")
_EDGE_EXCLUDED = _STOP | _SAYS | _CALENDAR | _DEMONYMS | _GENERIC
_PLACES = _words(
    """Afghanistan, Argentina, Australia, Brazil, Canada, China, Egypt, France,
Germany, India, Indonesia, Iran, Iraq, Israel, Italy, Japan, Mexico, North Korea, Pakistan,
Philippines, Poland, Russia, Saudi Arabia, Singapore, South Africa, South Korea, Syria, Taiwan,
Thailand, Turkey, Ukraine, United Kingdom, United States, Vietnam, Bangkok, Beijing, Berlin,
Brussels, Cairo, Delhi, Geneva, Hong Kong, Jakarta, Kyiv, London, Manila, Moscow, Munich, New
Delhi, New York, Paris, Seoul, Taipei, Tehran, Tokyo, Vienna, Washington, Africa, Asia, Europe,
Middle East""",
    ",",
)
_PLACE_ALIASES = {
    "United States": ("U.S.", "USA"),  # not "US": matching ignores case, and "us" is a word
    "United Kingdom": ("UK", "U.K.", "Britain"),
}
_NOT_NAMES = _STOP | _CALENDAR | _TITLE_WORDS | _ORG_WORDS | _GEO_WORDS | _DEMONYMS

_NAME_WORD = (
    r"(?:[A-Z]\.)+(?:-[A-Za-z]+)*|(?:Mr|Mrs|Ms|Dr)\."
    r"|[A-Z][A-Za-z0-9]*(?:'(?!s\b)[A-Za-z]+|-[A-Za-z0-9]+)*"
)
_NAME_RUN = re.compile(rf"(?<![\w'-])(?:{_NAME_WORD})(?: (?:of )?(?:{_NAME_WORD}))*")
_INITIAL = re.compile(r"[A-Z]\.")
_NAME_SHAPE = re.compile(r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)*")
_ACRONYM = re.compile(r"(?!USA\b)[A-Z]{3,8}")  # three to eight capitals, but not "USA"
_ACRONYM_AFTER = re.compile(r" \(([A-Z]{2,8})\)")
_CLAUSE_BREAK = re.compile(r"'s\b|[^A-Za-z\s'-]+|\s-\s|\n")
_TOPIC_WORD = re.compile(r"[A-Za-z]{2,}(?:-[A-Za-z]+)*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # TOML basic strings must escape these
_PLAIN_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_KIND_ORDER: dict[ActorKind, int] = {"person": 0, "organisation": 1, "place": 2}
_TOML_HEADER = """\
# Proposed watchlist, extracted from documents. Review it before adopting it: delete what you
# do not want to follow, fix names and kinds, and move to weak_aliases any alias that could
# mean someone else. Counts are how often each entry's aliases or terms were seen."""


@dataclass(frozen=True)
class ProposedActor:
    id: str
    name: str
    kind: ActorKind
    aliases: tuple[str, ...]
    weak_aliases: tuple[str, ...]
    mentions: int  # how many times the name or an alias was seen
    documents: int  # in how many documents


@dataclass(frozen=True)
class ProposedTopic:
    id: str
    name: str
    terms: tuple[str, ...]
    mentions: int
    documents: int


@dataclass(frozen=True)
class WatchlistProposal:
    actors: tuple[ProposedActor, ...]
    topics: tuple[ProposedTopic, ...]


def propose_watchlist(texts: Sequence[str], *, min_mentions: int = 1) -> WatchlistProposal:
    """Propose the actors and topics of ``texts`` that were seen at least ``min_mentions`` times."""
    docs = [clean_text(text).translate(_PLAIN_QUOTES) for text in texts]
    finds = _Finds()
    for sequence in _name_sequences(docs):
        _classify(sequence, finds)
    persons = _persons(finds)
    drafts = persons + _organisations(finds) + _places(finds, persons)
    actors = [a for a in _count_actors(drafts, docs) if a.mentions >= max(1, min_mentions)]
    actors.sort(key=lambda a: (_KIND_ORDER[a.kind], -a.mentions, -a.documents, a.name))
    topics = _propose_topics(docs, actors, min_mentions)
    actor_ids: set[str] = set()
    topic_ids: set[str] = set()
    actors = [replace(a, id=_new_id(a.name, actor_ids)) for a in actors]
    topics = [replace(t, id=_new_id(t.name, topic_ids)) for t in topics]
    return WatchlistProposal(tuple(actors), tuple(topics))


# Name sequences ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sequence:
    words: tuple[str, ...]
    before: str = ""  # the word just before, in lower case, when only a space separates them
    after: str = ""  # the text that follows


def _name_sequences(docs: Sequence[str]) -> Iterator[_Sequence]:
    runs = [(d, m, _starts_sentence(d, m.start())) for d in docs for m in _NAME_RUN.finditer(d)]
    lower = {w for doc in docs for w in re.findall(r"\b[a-z][a-z'-]*", doc)}
    mid_sentence = {w for _, m, initial in runs for w in m.group().split(" ")[int(initial) :]}
    for doc, match, initial in runs:
        words = match.group().split(" ")
        start, end = _trimmed(words, initial, lower, mid_sentence)
        if end > start:
            before = "" if start else _word_before(doc, match.start())
            after = doc[match.end() : match.end() + 80] if end == len(words) else ""
            yield _Sequence(tuple(words[start:end]), before, after)


def _trimmed(words: list[str], initial: bool, lower: set[str], mid: set[str]) -> tuple[int, int]:
    """Where a run's words start and end once noise is trimmed off both ends."""
    start, end = 0, len(words)
    while start < end and _noise_at_start(
        words[start], initial and not start, end - start, lower, mid
    ):
        start += 1
    while end > start and (_is_stop(words[end - 1]) or words[end - 1].lower() in _CALENDAR):
        end -= 1
    return start, end


def _starts_sentence(doc: str, start: int) -> bool:
    gap = doc[max(0, start - 12) : start]
    text = gap.rstrip()
    if "\n" in gap[len(text) :] or (start <= len(gap) and not text):
        return True
    return text[-1:] in (".", "!", "?", ":") or re.search(r'(?:^|\s)"$', text) is not None


def _word_before(doc: str, start: int) -> str:
    found = re.search(r"([A-Za-z]+) $", doc[max(0, start - 40) : start])
    return found.group(1).lower() if found else ""


def _noise_at_start(word: str, initial: bool, left: int, lower: set[str], mid: set[str]) -> bool:
    """Whether a run's first word is noise; ``left`` is how many words the run still has."""
    if _is_stop(word) or word.lower() in _CALENDAR or word == "of":
        return True
    if not initial or word.lower() in _TITLE_WORDS:
        return False
    return word.lower() in lower or (left == 1 and word not in mid)


def _is_stop(word: str) -> bool:
    return word.lower() in _STOP and not (len(word) > 1 and word.isupper())


# Classification ----------------------------------------------------------------------------------


@dataclass
class _Finds:
    """What the name sequences showed, before names are merged and aliases chosen."""

    persons: dict[tuple[str, ...], set[str]] = field(default_factory=dict)  # name: title forms
    maybe_persons: set[tuple[str, ...]] = field(default_factory=set)
    titled: set[tuple[str, str]] = field(default_factory=set)  # (title, one-word name)
    alone: Counter[str] = field(default_factory=Counter)  # words seen as a run of their own
    orgs: dict[str, set[str]] = field(default_factory=dict)  # name: acronyms
    maybe_places: set[str] = field(default_factory=set)


def _classify(sequence: _Sequence, finds: _Finds) -> None:
    words, name = sequence.words, " ".join(sequence.words)
    title = _find_title(words)
    if title is not None:
        start, end = title
        if start:
            _classify(_Sequence(words[:start], sequence.before), finds)
        if end < len(words) and _is_name(words[end:]):
            _add_titled_person(" ".join(words[start:end]), words[end:], finds)
    elif any(w.lower() in _ORG_WORDS for w in words) or _ACRONYM.fullmatch(name):
        acronym = _ACRONYM_AFTER.match(sequence.after)
        initials = "".join(p[0] for w in words for p in w.split("-") if p[:1].isupper())
        expanded = {acronym.group(1)} if acronym and acronym.group(1) == initials else set()
        finds.orgs.setdefault(name, set()).update(expanded)
    elif len(words) > 1 and _is_name(words) and _has_person_context(sequence):
        finds.persons.setdefault(words, set())
    else:
        finds.alone.update(words if len(words) == 1 else ())
        finds.maybe_persons.add(words)
        if sequence.before in ("in", "to", "from") and len(words) <= 3:
            finds.maybe_places.add(name)


def _find_title(words: tuple[str, ...]) -> tuple[int, int] | None:
    """The span of the title that ends last (and of those the longest), if any."""
    lowered = [w.lower() for w in words]
    spans = [
        (start, start + len(title))
        for start in range(len(words))
        for title in _TITLES
        if lowered[start : start + len(title)] == title
    ]
    return max(spans, key=lambda span: (span[1], -span[0]), default=None)


def _add_titled_person(title: str, name: tuple[str, ...], finds: _Finds) -> None:
    if len(name) == 1:
        finds.titled.add((title, name[0]))
        finds.alone[name[0]] += 1
    else:
        finds.persons.setdefault(name, set()).add(f"{title} {' '.join(name)}")


def _has_person_context(sequence: _Sequence) -> bool:
    if sequence.before in _ROLES or sequence.before in _SAYS:
        return True
    apposition = re.match(r",((?: [\w'-]+){1,6})", sequence.after)
    return apposition is not None and not _ROLES.isdisjoint(apposition.group(1).lower().split())


def _is_name(words: tuple[str, ...]) -> bool:
    if not 1 <= len(words) <= 4 or " ".join(words) in _PLACES or _INITIAL.fullmatch(words[-1]):
        return False
    return all(
        _INITIAL.fullmatch(w)
        or (_NAME_SHAPE.fullmatch(w) and w.lower() not in _NOT_NAMES and w not in _PLACES)
        for w in words
    )


# Drafting actors ---------------------------------------------------------------------------------


@dataclass
class _Draft:
    name: str
    kind: ActorKind
    aliases: set[str] = field(default_factory=set)
    weak: set[str] = field(default_factory=set)
    surname: str = ""


def _persons(finds: _Finds) -> list[_Draft]:
    names = dict(finds.persons)
    for words in finds.maybe_persons:
        seen_alone = finds.alone[words[0]] or finds.alone[words[-1]]
        if 2 <= len(words) <= 3 and _is_name(words) and seen_alone:
            names.setdefault(words, set())
    drafts: dict[tuple[str, ...], _Draft] = {}
    for words in sorted(names, key=lambda w: (len(w), w)):
        plain = tuple(w for w in words if not _INITIAL.fullmatch(w))  # "Antony J. Blinken"
        draft = drafts.get(plain) or drafts.setdefault(words, _Draft(" ".join(words), "person"))
        draft.aliases |= names[words] | ({" ".join(words)} - {draft.name})
        draft.surname = _surname(words, finds.alone)
    by_surname: defaultdict[str, list[_Draft]] = defaultdict(list)
    for draft in drafts.values():
        by_surname[draft.surname].append(draft)
    for _, word in sorted(finds.titled):
        if word not in by_surname:  # "President Obama", and no other Obama
            by_surname[word] = [drafts.setdefault((word,), _Draft(word, "person", surname=word))]
    for surname, owners in by_surname.items():
        forms = {surname} | {f"{title} {word}" for title, word in finds.titled if word == surname}
        weak = len(owners) > 1 or surname.lower() in _COMMON_SURNAMES
        for owner in owners:
            (owner.weak if weak else owner.aliases).update(forms - {owner.name})
    return list(drafts.values())


def _surname(words: tuple[str, ...], alone: Counter[str]) -> str:
    if alone[words[-1]] or len(words) == 1:
        return words[-1]
    if alone[words[0]] or words[0].lower() in _COMMON_SURNAMES:
        return words[0]  # "Wang Yi", "Li Shangfu"
    return words[-1]


def _organisations(finds: _Finds) -> list[_Draft]:
    acronyms = {a for found in finds.orgs.values() for a in found}
    return [_Draft(n, "organisation", set(a)) for n, a in finds.orgs.items() if n not in acronyms]


def _places(finds: _Finds, persons: list[_Draft]) -> list[_Draft]:
    """Every place of the built-in list (counting drops the unseen) and runs after "in", "to"."""
    taken = {w for person in persons for w in person.name.split()} | set(finds.orgs)
    found = set(_PLACES) | {
        name
        for name in finds.maybe_places
        if _is_name(tuple(name.split())) and taken.isdisjoint({name, *name.split()})
    }
    return [_Draft(name, "place", set(_PLACE_ALIASES.get(name, ()))) for name in sorted(found)]


# Counting ----------------------------------------------------------------------------------------


def _count(entities: Sequence[Entity], docs: Sequence[str]) -> tuple[Counter[str], Counter[str]]:
    """Mentions and documents per entity id, as monitor's matcher finds them."""
    actors = tuple(e for e in entities if e.kind == "actor")
    matcher = Matcher(Watchlist(actors, tuple(e for e in entities if e.kind == "topic")))
    mentions: Counter[str] = Counter()
    documents: Counter[str] = Counter()
    for doc in docs:
        found = matcher.find(Article(title="", text=doc))
        mentions.update(m.id for m in found)
        documents.update({m.id for m in found})
    return mentions, documents


def _count_actors(drafts: Sequence[_Draft], docs: Sequence[str]) -> list[ProposedActor]:
    holders = Counter(fold_string(a) for d in drafts for a in {d.name, *d.aliases})
    for draft in drafts:  # a strong alias belongs to one actor: shared, it is weak for all
        shared = {a for a in draft.aliases if holders[fold_string(a)] > 1}
        draft.aliases, draft.weak = draft.aliases - shared, draft.weak | shared
    entities = [
        Entity("actor", str(i), d.name, (d.name, *sorted(d.aliases)), tuple(sorted(d.weak)))
        for i, d in enumerate(drafts)
    ]
    mentions, documents = _count(entities, docs)
    return [
        ProposedActor(
            id="",  # given once the proposal is sorted
            name=d.name,
            kind=d.kind,
            aliases=tuple(sorted(d.aliases, key=lambda a: (a != d.surname, a))),
            weak_aliases=tuple(sorted(d.weak)),
            mentions=mentions[e.id],
            documents=documents[e.id],
        )
        for d, e in zip(drafts, entities, strict=True)
    ]


# Topics ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TopicRules:
    person_words: frozenset[str]  # lower-case words of proposed persons' names
    actor_parts: frozenset[str]  # lower-case names and aliases of actors, and the runs inside them
    verbs: frozenset[str]  # words the corpus writes after "to": "to stabilize", "to visit"
    lower_words: frozenset[str]  # words the corpus writes in lower case


@dataclass
class _Phrases:
    counts: Counter[str] = field(default_factory=Counter)  # by key: words singular, lower case
    documents: Counter[str] = field(default_factory=Counter)
    spellings: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    followers: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def always_followed(self, key: str) -> bool:
        """Whether one word always follows ("senior administration" officials)."""
        return len(self.followers[key]) == 1 and "" not in self.followers[key]

    def name(self, key: str) -> str:
        """The spelling the corpus uses most."""
        return min(self.spellings[key], key=lambda s: (-self.spellings[key][s], s))

    def written(self, key: str) -> list[str]:
        """How the corpus writes a key, most often first, in lower case."""
        spelt: Counter[str] = Counter()
        for spelling, n in self.spellings[key].items():
            spelt[spelling.lower()] += n
        return sorted(spelt, key=lambda s: (-spelt[s], s))


def _propose_topics(
    docs: Sequence[str], actors: Sequence[ProposedActor], min_mentions: int
) -> list[ProposedTopic]:
    phrases = _phrases(docs, _topic_rules(docs, actors))
    counts = phrases.counts
    least = max(MIN_TOPIC_MENTIONS, min_mentions)
    frequent = [k for k in counts if counts[k] >= least and not phrases.always_followed(k)]
    most_in_longer: Counter[str] = Counter()
    for key in frequent:
        for part in _parts(key):
            most_in_longer[part] = max(most_in_longer[part], counts[key])
    kept = {k for k in frequent if counts[k] > most_in_longer[k]}
    kept = {k for k in kept if kept.isdisjoint(_parts(k))}
    chosen = sorted(kept, key=lambda k: (-phrases.documents[k], -counts[k], k))[:MAX_TOPICS]
    entities = [
        Entity("topic", str(i), phrases.name(k), _terms(k, phrases, set(chosen)))
        for i, k in enumerate(chosen)
    ]
    mentions, documents = _count(entities, docs)
    topics = [
        ProposedTopic("", e.name, e.strong, mentions[e.id], documents[e.id])
        for e in entities
        if mentions[e.id] >= min_mentions
    ]
    return sorted(topics, key=lambda t: (-t.documents, -t.mentions, t.name))


def _topic_rules(docs: Sequence[str], actors: Sequence[ProposedActor]) -> _TopicRules:
    names = [n.lower() for a in actors for n in (a.name, *a.aliases)]
    persons = [a.name.lower() for a in actors if a.kind == "person"]
    return _TopicRules(
        person_words=frozenset(w for name in persons for w in name.split()),
        actor_parts=frozenset(p for name in names for p in (name, *_parts(name))),
        verbs=frozenset(v for doc in docs for v in re.findall(r"\bto ([a-z]+)", doc)),
        lower_words=frozenset(w for doc in docs for w in re.findall(r"\b[a-z][a-z-]*\b", doc)),
    )


def _parts(phrase: str) -> Iterator[str]:
    """The shorter runs of words inside a phrase: "south china sea" holds "china sea", "sea" …"""
    words = phrase.split()
    for size in range(1, len(words)):
        for start in range(len(words) - size + 1):
            yield " ".join(words[start : start + size])


def _phrases(docs: Sequence[str], rules: _TopicRules) -> _Phrases:
    found = _Phrases()
    for doc in docs:
        keys: set[str] = set()
        for words in _clauses(doc, rules.lower_words):
            for phrase, follower in _clause_phrases(words, rules):
                key = " ".join(_singular(w.lower()) for w in phrase.split())
                found.counts[key] += 1
                found.spellings[key][phrase] += 1
                found.followers[key][_singular(follower.lower())] += 1
                keys.add(key)
        found.documents.update(keys)
    return found


def _singular(word: str) -> str:
    plural = len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is"))
    return word[:-1] if plural else word


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


def _clause_phrases(words: list[str], rules: _TopicRules) -> Iterator[tuple[str, str]]:
    """Candidate phrases of a clause, each with the word that follows it ("" for a stop word)."""
    followers = [w if w.lower() not in _STOP else "" for w in words[1:]] + [""]
    capital = [w[0].isupper() for w in words]
    for start, word in enumerate(words):
        if word.count("-") >= 2 and word.islower():
            yield word, followers[start]
        for end in range(start + 2, min(start + 4, len(words)) + 1):
            if _keeps_names_whole(capital, start, end) and _is_topic(words[start:end], rules):
                yield " ".join(words[start:end]), followers[end - 1]


def _keeps_names_whole(capital: list[bool], start: int, end: int) -> bool:
    """Whether words[start:end] of a clause, capitalised as ``capital`` says, cuts no capitalised
    run and has no capital after a small word ("visit China")."""
    cuts_start = start > 0 and capital[start - 1] and capital[start]
    cuts_end = end < len(capital) and capital[end - 1] and capital[end]
    small_first = any(not a and b for a, b in itertools.pairwise(capital[start:end]))
    return not (cuts_start or cuts_end or small_first)


def _is_topic(words: list[str], rules: _TopicRules) -> bool:
    lowered = [w.lower() for w in words]
    edges = (lowered[0], lowered[-1])
    return not (
        any(w in _EDGE_EXCLUDED or (len(w) > 4 and w.endswith("ed")) for w in edges)
        or any(w in _STOP and w != "of" for w in lowered)
        or all(w in _TITLE_WORDS or w in _ROLES for w in lowered)
        or not rules.person_words.isdisjoint(lowered)
        or lowered[0] in rules.verbs
        or " ".join(lowered) in rules.actor_parts
    )


def _terms(key: str, phrases: _Phrases, chosen: set[str]) -> tuple[str, ...]:
    """How the corpus writes the phrase, and for two words up to three with the same head."""
    if len(key.split()) != 2:
        return tuple(phrases.written(key))
    variants = [
        k for k in phrases.counts
        if len(k.split()) == 2 and k.endswith(f" {key.split()[1]}") and k not in chosen
        and not re.search(r"(?:ed|ing|ly)\b", k) and chosen.isdisjoint(_parts(k))
    ]  # fmt: skip
    best = sorted(variants, key=lambda k: (-phrases.counts[k], k))[:3]
    return (*phrases.written(key), *(phrases.written(k)[0] for k in best))


# Output ------------------------------------------------------------------------------------------


def _new_id(name: str, taken: set[str]) -> str:
    """Lower-case hyphenated ASCII of the name, with "-2", "-3" … if already ``taken``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "entry"
    candidates = (base if n == 1 else f"{base}-{n}" for n in itertools.count(1))
    found = next(c for c in candidates if c not in taken)
    taken.add(found)
    return found


def render_toml(proposal: WatchlistProposal) -> str:
    """The proposal as watchlist TOML, each entry with a comment saying how often it was seen."""
    entries = [_TOML_HEADER]
    for a in proposal.actors:
        entries.append(
            _toml_entry(
                "actors", a.mentions, a.documents, id=a.id, name=a.name, kind=a.kind,
                aliases=a.aliases, weak_aliases=a.weak_aliases, confirmed_by=(),
            )
        )  # fmt: skip
    for t in proposal.topics:
        entries.append(
            _toml_entry("topics", t.mentions, t.documents, id=t.id, name=t.name, terms=t.terms)
        )
    return "\n\n".join(entries) + "\n"


def _toml_entry(table: str, mentions: int, documents: int, **fields: str | tuple[str, ...]) -> str:
    times = "time" if mentions == 1 else "times"
    in_documents = "document" if documents == 1 else "documents"
    lines = [f"# seen {mentions} {times} in {documents} {in_documents}", f"[[{table}]]"]
    for key, value in fields.items():
        if isinstance(value, str):
            lines.append(f"{key} = {_toml_string(value)}")
        else:
            lines.append(f"{key} = [{', '.join(_toml_string(v) for v in value)}]")
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'
