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
"Long Name (ACRONYM)" makes an alias; a demonym before a lower-case ministry, embassy or consulate
("Chinese embassy in Washington"). One named as another less its leading demonym ("Foreign
Ministry") is the other's weak alias. Places: a small built-in list of countries, capitals and
regions; runs ending in a word for a feature or a site ("Taiwan Strait", "Diaoyutai State
Guesthouse") or starting with a point of the compass ("South Carolina"); and name-like runs right
after "in", "to" or "from" that are nobody's name.

Topics: phrases scored against general-English word frequencies (``monitor.extract_topics`` says
how). Besides them, events and meetings: runs ending in "Conference", "Summit", "Forum" or
"Dialogue" ("Munich Security Conference") are events, not organisations; an organisation followed
by "summit", "conference" or "forum" holds one ("Asia-Pacific Economic Cooperation (APEC) summit",
proposed as "APEC summit"); and two persons written as meeting ("a phone call between Biden and
Xi") make one topic for the pair, with terms such as "Biden-Xi call".

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

from monitor.extract_topics import TopicRules, find_topics
from monitor.matcher import Matcher
from monitor.models import Article
from monitor.normalise import clean_text, fold_string
from monitor.watchlist import ActorKind, Entity, Watchlist


def _words(text: str, sep: str | None = None) -> frozenset[str]:
    return frozenset(word.strip() for word in text.split(sep))


_STOP = _words("""a about after against all also an and any are as at be because been before both
but by can could despite during each earlier either even every few for from had has have he her
here his how however i if in instead into is it its last later many may meanwhile more most much
my neither next no nor not now of on once one only or other our over per same several she should
since so some still such than that the their then there these they this those though through to
today under until up upon us was we were what when where whether which while who whose why will with
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
_COMPASS = _words("north south east west")
_FEATURES = _words("""airport bay coast guesthouse gulf island islands lake ocean palace peninsula
river sea shoal square strait straits""")  # a run ending in one names a place
_GEO_WORDS = _COMPASS | _FEATURES | _words("middle central")
_EVENT_WORDS = _words("conference dialogue forum summit")
_DEMONYMS = _words("""american asian australian british chinese european french german indian
iranian israeli japanese korean russian taiwanese ukrainian""")
_COMMON_SURNAMES = _words("""brown chen davis garcia huang jones kim lee li lin liu miller nguyen
park smith wang williams wu yang zhang zhao zhou""")
_GENERIC = _words("""another around between day days first hour hours kind kinds month months
morning official officials part people second side sides sort sorts three time times toward two
way week weeks year years""")
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
_EVENT_AFTER = re.compile(r"(?: \(([A-Z]{2,8})\))? (conference|forum|summit)\b")
_STATE_BODY = re.compile(
    r" (?:[a-z]+ )?(?:consulate|embassy|ministry)(?: in [A-Z][a-z]+(?: [A-Z][a-z]+)?)?\b"
)
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
    topics = _propose_topics(docs, actors, finds, min_mentions)
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
    events: dict[str, set[str]] = field(default_factory=dict)  # name: terms
    places: set[str] = field(default_factory=set)
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
    elif any(w.lower() in _ORG_WORDS | _EVENT_WORDS for w in words) or _ACRONYM.fullmatch(name):
        _add_organisation(sequence, finds)
    elif len(words) > 1 and _is_name(words) and _has_person_context(sequence):
        finds.persons.setdefault(words, set())
    elif _is_feature(words):
        finds.places.add(name)
    elif name.lower() in _DEMONYMS and (body := _STATE_BODY.match(sequence.after)):
        finds.orgs.setdefault(_title_case(f"{name}{body.group()}"), set())
    else:
        finds.alone.update(words if len(words) == 1 else ())
        finds.maybe_persons.add(words)
        if sequence.before in ("in", "to", "from") and len(words) <= 3:
            finds.maybe_places.add(name)


def _add_organisation(sequence: _Sequence, finds: _Finds) -> None:
    words, name = sequence.words, " ".join(sequence.words)
    if words[-1].lower() in _EVENT_WORDS:  # "Munich Security Conference" is an event: a topic
        finds.events.setdefault(name, {name})
        return
    acronym = _ACRONYM_AFTER.match(sequence.after)
    initials = "".join(p[0] for w in words for p in w.split("-") if p[:1].isupper())
    expanded = {acronym.group(1)} if acronym and acronym.group(1) == initials else set()
    finds.orgs.setdefault(name, set()).update(expanded)
    event = _EVENT_AFTER.match(sequence.after)  # "Asia-Pacific Economic Cooperation (APEC) summit"
    if event:
        short = event.group(1) if event.group(1) in expanded else name
        terms = {f"{short} {event.group(2)}", f"{name}{event.group()}", f"{name} {event.group(2)}"}
        finds.events.setdefault(f"{short} {event.group(2)}", set()).update(terms)


def _is_feature(words: tuple[str, ...]) -> bool:
    """Whether a run names a feature or a site ("Taiwan Strait") or a compass-named place ("South
    Carolina")."""
    shaped = all(_NAME_SHAPE.fullmatch(w) and w.lower() not in _DEMONYMS for w in words)
    named = words[-1].lower() in _FEATURES or words[0].lower() in _COMPASS
    return len(words) > 1 and shaped and named


def _title_case(name: str) -> str:
    return " ".join(w if w in ("in", "of") else w[:1].upper() + w[1:] for w in name.split())


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
    """Organisations; one named as another less its leading demonym is the other's weak alias:
    "Foreign Ministry" of "Chinese Foreign Ministry"."""
    acronyms = {a for found in finds.orgs.values() for a in found}
    drafts = {n: _Draft(n, "organisation", set(a)) for n, a in finds.orgs.items()}
    for name in sorted(drafts.keys() - acronyms):
        first, _, rest = name.partition(" ")
        if first.lower() in _DEMONYMS and rest in drafts:
            drafts[name].weak.add(drafts.pop(rest).name)
    return [draft for name, draft in drafts.items() if name not in acronyms]


def _places(finds: _Finds, persons: list[_Draft]) -> list[_Draft]:
    """The built-in list (counting drops the unseen), features and sites, runs after "in", "to"."""
    taken = {w for person in persons for w in person.name.split()} | set(finds.orgs)
    found = (
        set(_PLACES)
        | finds.places - taken
        | {
            name
            for name in finds.maybe_places
            if _is_name(tuple(name.split())) and taken.isdisjoint({name, *name.split()})
        }
    )
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


def _propose_topics(
    docs: Sequence[str], actors: Sequence[ProposedActor], finds: _Finds, min_mentions: int
) -> list[ProposedTopic]:
    """Topics found in phrases, best first, then named events and meetings between two persons."""
    named = [
        (e, tuple(sorted(terms, key=lambda t: (t != e, t)))) for e, terms in finds.events.items()
    ]
    named += _meetings(docs, [a for a in actors if a.kind == "person"])
    rules = _topic_rules(actors, [t for _, terms in named for t in terms])
    found = [(t.name, t.terms) for t in find_topics(docs, rules, min_mentions)]
    entities = [Entity("topic", str(i), n, terms) for i, (n, terms) in enumerate(found + named)]
    mentions, documents = _count(entities, docs)
    return [
        ProposedTopic("", e.name, e.strong, mentions[e.id], documents[e.id])
        for e in entities
        if mentions[e.id] >= min_mentions
    ]


def _topic_rules(actors: Sequence[ProposedActor], named_topics: list[str]) -> TopicRules:
    """Phrases must not repeat actors' names, but seas and straits are topics as well as places."""
    persons = [a.name.lower() for a in actors if a.kind == "person"]
    named = [a for a in actors if a.kind != "place"]
    features = {a.name for a in actors if a.name.split()[-1].lower() in _FEATURES}
    names = [n for a in actors if a.name not in features for n in (a.name, *a.aliases)]
    return TopicRules(
        stop_words=_STOP,
        edge_words=_EDGE_EXCLUDED,
        title_words=_TITLE_WORDS,
        role_words=_ROLES,
        person_words=frozenset(w for name in persons for w in name.split()),
        taken=frozenset(n.lower() for n in names + named_topics),
        masked=tuple(n for a in named for n in (a.name, *a.aliases, *a.weak_aliases)),
    )


def _meetings(
    docs: Sequence[str], persons: Sequence[ProposedActor]
) -> list[tuple[str, tuple[str, ...]]]:
    """A topic for each two persons written as meeting: "a phone call between Biden and Xi",
    "summit between presidents Joe Biden and Xi Jinping". Terms: those, and "Biden-Xi call"."""
    owners = {form: p for p in persons for form in (p.name, *p.aliases)}
    if not owners:
        return []
    forms = "|".join(re.escape(f) for f in sorted(owners, key=len, reverse=True))
    between = re.compile(
        rf"\b(call|meeting|summit|talk)s? between (?:[a-z]+ )?({forms}) and (?:[a-z]+ )?({forms})\b"
    )
    pairs: dict[frozenset[str], list[re.Match[str]]] = {}
    for found in (found for doc in docs for found in between.finditer(doc)):
        names = frozenset(owners[found.group(i)].name for i in (2, 3))
        if len(names) == 2:
            pairs.setdefault(names, []).append(found)
    return [_meeting_topic(written, owners) for written in pairs.values()]


def _meeting_topic(
    written: list[re.Match[str]], owners: dict[str, ProposedActor]
) -> tuple[str, tuple[str, ...]]:
    first, second = (_short_name(owners[written[0].group(i)]) for i in (2, 3))
    terms = [w.group() for w in written] + [f"{first}-{second} {w.group(1)}" for w in written]
    return f"{first}–{second} meetings", tuple(dict.fromkeys(terms))


def _short_name(person: ProposedActor) -> str:
    """The surname the person is known by ("Xi" for Xi Jinping), else the name."""
    words = person.name.split()
    return next((a for a in (*person.aliases, *person.weak_aliases) if a in words), person.name)


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
