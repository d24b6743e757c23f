"""Finding the watchlist in an article: one Aho–Corasick pass over each field for every alias.

Aliases and terms are folded (see ``monitor.normalise``) and loaded into one automaton. A hit
counts only on whole words: the characters around it must not be letters or digits, an
apostrophe inside a word joins it ("O'Sullivan", "Xi'an"), and a possessive ("Blinken's") ends
it. Scripts written without spaces (Chinese, Japanese) need no boundary: there a form matches
wherever its characters stand, and a change of script is a boundary ("美国国务卿Blinken"). Among
overlapping hits of the same kind the leftmost, then longest, wins ("Wang Yi" over "Wang").

Then the watchlist's rules apply: a role title names whoever held the role on the day the
article was published; weak forms are kept only where confirmed; a negative context cancels
its entry's hits nearby; a topic counts only when its hits' weights reach its minimum score.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import itertools
import operator
import re
import unicodedata
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Generic, NamedTuple, TypeVar

import ahocorasick_rs

from monitor.models import TEXT_FIELDS, Article, FieldName, Mention
from monitor.normalise import FoldedText, character_offsets, fold, form_key
from monitor.watchlist import Entity, Role, Watchlist


@dataclass(frozen=True)
class _Form:
    entity: Entity
    alias: str
    weak: bool
    role: Role | None = None  # a title that names the entity while it holds the role
    negative: bool = False  # a negative context: cancels the entity's hits nearby
    cased: bool = False  # matches only where the text has the same case


@dataclass(frozen=True)
class _Entry:
    """What one key stands for, sorted once: names of actors, terms of topics, role titles,
    negative contexts, and the forms that must match in their own case."""

    actors: tuple[_Form, ...]
    topics: tuple[_Form, ...]
    roles: tuple[_Form, ...]
    negative: tuple[_Form, ...]
    cased: tuple[_Form, ...]
    weak_actor: bool  # some name here is a weak form
    weak_topic: bool  # some term here is a weak form
    special: bool  # some role title, negative context or form in its own case

    @classmethod
    def of(cls, forms: list[_Form]) -> _Entry:
        # one loop: a key has a form or two, and there is an entry for every key
        actors, topics, roles, negative, cased = [], [], [], [], []
        for form in forms:
            if form.role:
                roles.append(form)
            if form.negative:
                negative.append(form)
            if form.cased:
                cased.append(form)
            if not (form.role or form.negative or form.cased):
                kind = form.entity.kind
                if kind == "actor":
                    actors.append(form)
                elif kind == "topic":
                    topics.append(form)
        names, terms = _strongest(actors), _strongest(topics)
        return cls(
            names,
            terms,
            tuple(roles),
            tuple(negative),
            tuple(cased),
            any(f.weak for f in names),
            any(f.weak for f in terms),
            bool(roles or negative or cased),
        )


def _strongest(forms: list[_Form]) -> tuple[_Form, ...]:
    """The forms of one key, less the weak forms of entities it is also a strong form of: a
    weak "Zurich" and a strong "Zürich" fold alike, and the key names Zürich plainly."""
    if len(forms) < 2 or all(not f.weak for f in forms):
        return tuple(forms)
    strong = {f.entity.id for f in forms if not f.weak}
    return tuple(f for f in forms if not (f.weak and f.entity.id in strong))


class _Found:
    """The hits of one article, by what they are."""

    def __init__(self) -> None:
        self.actors: list[_Hit] = []
        self.topics: list[_Hit] = []
        self.roles: list[_Hit] = []
        self.negatives: list[_Hit] = []
        self.weak_actors = self.weak_topics = False  # some hit of actors, of topics is weak

    def add(
        self,
        field: FieldName,
        hits: list[tuple[int, int, _Entry]],
        folded: FoldedText,
        source: str,
        day: date,
    ) -> None:
        """A field's hits, (start, end, what the key stands for) in the field's ``folded`` text,
        whose ``source`` it is; roles are read as of ``day``."""
        actors, topics = self.actors, self.topics
        for start, end, entry in hits:
            if entry.actors:
                actors.append(_Hit(field, start, end, entry.actors))
                self.weak_actors = self.weak_actors or entry.weak_actor
            if entry.topics:
                topics.append(_Hit(field, start, end, entry.topics))
                self.weak_topics = self.weak_topics or entry.weak_topic
            if entry.special:
                src_start, src_end = folded.span_in_source(start, end)
                self.add_special(field, start, end, entry, day, source[src_start:src_end])

    def add_special(
        self, field: FieldName, start: int, end: int, entry: _Entry, day: date, written: str
    ) -> None:
        """The role titles, negative contexts and forms in their own case of a hit, which
        ``written`` is as the text has it."""
        if entry.roles:
            held = tuple(f for f in entry.roles if f.role and f.role.held_on(day))
            if held:
                self.roles.append(_Hit(field, start, end, held))
        if entry.negative:
            self.negatives.append(_Hit(field, start, end, entry.negative))
        if entry.cased:
            same = [f for f in entry.cased if _same_case(written, f.alias)]
            for kind, pool in (("actor", self.actors), ("topic", self.topics)):
                forms = tuple(f for f in same if f.entity.kind == kind)
                if forms:
                    pool.append(_Hit(field, start, end, forms))


_Value = TypeVar("_Value")
_FIELD_RANK = {name: rank for rank, name in enumerate(TEXT_FIELDS)}
_Positions = dict[tuple[str, str], list[tuple[int, str, int]]]


class _Hit(NamedTuple):
    field: FieldName
    start: int  # in folded text
    end: int
    forms: tuple[_Form, ...]


def is_word_char(char: str) -> bool:
    return char.isalnum() or unicodedata.category(char) in ("Mn", "Mc")


# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, CJK radicals to
# ideographs (with kana and bopomofo), compatibility ideographs, and the supplementary planes
# of ideographs.
_UNSPACED = (
    ("\u0e00", "\u0eff"),
    ("\u1000", "\u109f"),
    ("\u1780", "\u17ff"),
    ("\u2e80", "\u9fff"),
    ("\uf900", "\ufaff"),
    ("\U00020000", "\U0003134f"),
)


def is_unspaced_script(char: str) -> bool:
    """Characters of scripts written without spaces between words (CJK, kana, Thai …)."""
    return char >= "\u0e00" and any(low <= char <= high for low, high in _UNSPACED)


def starts_word(text: str, start: int) -> bool:
    """Whether position ``start`` of folded ``text`` begins a word."""
    if start == 0 or is_unspaced_script(text[start]) or is_unspaced_script(text[start - 1]):
        return True
    before = text[start - 1]
    if before == "'":  # "O'Sullivan": an apostrophe between letters joins the word
        return start < 2 or not is_word_char(text[start - 2])
    return not is_word_char(before) or not is_word_char(text[start])


def ends_word(text: str, end: int) -> bool:
    """Whether position ``end`` of folded ``text`` ends a word (a possessive ends it too)."""
    if end == len(text) or is_unspaced_script(text[end - 1]) or is_unspaced_script(text[end]):
        return True
    after = text[end]
    if after == "'":  # "Blinken's" and "Davis'" end the name; "Xi'an" does not
        rest = text[end + 1 : end + 3]
        return (
            not rest[:1]
            or not is_word_char(rest[0])
            or (rest[0] == "s" and (len(rest) == 1 or not is_word_char(rest[1])))
        )
    return not is_word_char(after) or not is_word_char(text[end - 1])


# Where the text is not a word, a space: ASCII in one C pass, the rest by the characters found.
_ASCII_SPACES = bytes(b if chr(b).isalnum() or b >= 128 else 32 for b in range(256))
_ASCII = bytes(range(128))
# Non-ASCII characters met so far, and whether each stands outside words (a space in the
# word-spaced text). Filled as characters are first met; a dict's item assignment is atomic.
_OUTSIDE_WORDS: dict[str, bool] = {}
_HAS_UNSPACED = re.compile("[" + "".join(f"{low}-{high}" for low, high in _UNSPACED) + "]")
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]")
# Every byte but those that begin a character of three or four bytes in UTF-8 (U+0800 on).
_SHORT_UTF8 = bytes(range(0xE0))


def word_spaced(text: str) -> str:
    """``text`` with every character that is not part of a word turned into a space, the same
    length: scripts without spaces, punctuation and apostrophes. A form found between spaces in
    it is a whole word in ``text`` unless an apostrophe stands next to it: there
    ``starts_word`` and ``ends_word`` decide ("o'sullivan" holds no word "sullivan", but
    "blinken's" holds "blinken")."""
    return _word_spaced(text)[0]


def _word_spaced(text: str) -> tuple[str, bool]:
    """``word_spaced(text)``, and whether ``text`` has a character of a script without spaces
    (``_has_unspaced``, found on the way)."""
    encoded = text.encode("utf-8", "surrogatepass")
    spaced = encoded.translate(_ASCII_SPACES).decode("utf-8", "surrogatepass")
    if text.isascii():
        return spaced, False
    others = encoded.translate(None, _ASCII).decode("utf-8", "surrogatepass")
    unspaced = _has_unspaced(others)
    return _spaced_others(spaced, others, unspaced), unspaced


def _has_unspaced(text: str) -> bool:
    """Whether ``text`` has a character of a script without spaces. All of them take three
    bytes or more in UTF-8, so text without such characters (Latin, Greek, Cyrillic, Arabic …)
    is told by one pass over its bytes, not a search of its characters."""
    if text.isascii():
        return False
    long_chars = text.encode("utf-8", "surrogatepass").translate(None, _SHORT_UTF8)
    return bool(long_chars) and _HAS_UNSPACED.search(text) is not None


def _spaced_others(text: str, others: str, unspaced: bool) -> str:
    """``text`` with its non-ASCII characters outside words turned into spaces: ``others``
    is those characters of it, ``unspaced`` whether some are of a script without spaces.
    Letters and digits are outside words only in scripts without spaces."""
    if not others.isalnum():
        for char in set(_NOT_LETTER_OR_DIGIT.findall(others)):
            if _outside_words(char):
                text = text.replace(char, " ")
    if unspaced:
        text = _HAS_UNSPACED.sub(" ", text)
    return text


def _outside_words(char: str) -> bool:
    outside = _OUTSIDE_WORDS.get(char)
    if outside is None:
        outside = _OUTSIDE_WORDS[char] = not is_word_char(char) or is_unspaced_script(char)
    return outside


def _spaced_words(
    automaton: _Automaton[_SpacedKey], text: str, spaced: str, found: list[tuple[int, int, _Entry]]
) -> None:
    """Add to ``found`` the forms of spaced scripts in folded ``text``, looked up in its
    word-spaced form ``spaced``."""
    keys = automaton.values
    for index, start, last in automaton.find(f" {spaced} "):  # " words ": trim spaces
        end = last - 2
        if ((start and text[start - 1] == "'") or text[end : end + 1] == "'") and _inside_a_word(
            text, start, end
        ):
            continue
        word, variants = keys[index]
        if word is not None:
            found.append((start, end, word))
            continue
        for variant in variants:
            if place := variant.place(text, start, end):
                found.append(place)


def _inside_a_word(text: str, start: int, end: int) -> bool:
    """Whether words found between spaces in ``word_spaced(text)`` at ``start:end`` are part
    of a longer word that an apostrophe joins them to ("o'sullivan", "xi'an"): where
    ``starts_word`` or ``ends_word`` would say no, read for a hit of spaced script."""
    if start > 1 and text[start - 1] == "'" and is_word_char(text[start - 2]):
        return True
    if text[end : end + 1] != "'":
        return False
    after = text[end + 1 : end + 3]
    if after[:1] == "s" and not is_word_char(after[1:] or " "):  # a possessive ends the word
        return False
    return after != "" and is_word_char(after[0])


class Matcher:
    """Finds every mention of a watchlist's actors and topics in an article.

    Forms in spaced scripts are looked up, space-padded, in the text with everything that is
    not a word turned into spaces (``word_spaced``), so the automaton reports whole words only;
    forms in scripts without spaces are looked up in the folded text itself."""

    def __init__(self, watchlist: Watchlist) -> None:
        self.watchlist = watchlist
        self._topics = {t.id: t for t in watchlist.topics}
        # topics that one hit may not be enough for: weighted terms or a minimum above one
        self._scored = {t.id for t in watchlist.topics if t.weights or t.min_score > 1.0}
        keys: dict[str, list[_Form]] = {}
        unspaced: dict[str, list[_Form]] = {}
        with _collector_paused():
            for entity in watchlist.entities:
                for form in _forms(entity):
                    key = form_key(form.alias)
                    if _HAS_UNSPACED.search(key):
                        unspaced.setdefault(key, []).append(form)
                    elif key:
                        keys.setdefault(key, []).append(form)
            self._spaced = _spaced_automaton(keys)
            self._unspaced = _automaton(unspaced)

    def find(self, article: Article, on: date | None = None) -> tuple[Mention, ...]:
        """All confirmed mentions, in reading order (title, summary, text). Roles are read as
        of ``on``, else the day the article was published, else today."""
        day = on or (article.published or datetime.now(UTC)).astimezone(UTC).date()
        sources = {name: article.field_text(name) for name in TEXT_FIELDS}
        folded = {name: fold(text) for name, text in sources.items()}
        found = _Found()
        for name in TEXT_FIELDS:
            if sources[name]:
                hits = self._whole_words(folded[name].text)
                found.add(name, hits, folded[name], sources[name], day)
        chosen = _leftmost_longest(found.actors, found.weak_actors) + _leftmost_longest(
            found.topics, found.weak_topics
        )
        chosen = _with_roles(chosen, found.roles)
        if found.negatives:
            chosen = _without_negated(chosen, found.negatives, folded)
        mentions, undecided = [], []
        for hit, forms in chosen:
            first = forms[0]  # most hits: one strong form, which names its entity plainly
            form = _plainly_named(forms) if first.weak or first.role else first
            if form is None:
                undecided.append((hit, forms))
            else:
                mentions.append(_mention(hit, form, sources[hit.field], folded[hit.field]))
        if undecided:  # weak forms and role titles: the rest of the article decides
            mentions.extend(_decided(article, sources, folded, chosen, undecided))
        mentions = self._scoring(mentions)
        return tuple(sorted(mentions, key=lambda m: (_FIELD_RANK[m.field], m.start, m.kind)))

    def _whole_words(self, text: str) -> list[tuple[int, int, _Entry]]:
        """Every whole-word occurrence of a form in folded ``text``: (start, end, entry)."""
        found: list[tuple[int, int, _Entry]] = []
        if not text:
            return found
        spaced, unspaced = _word_spaced(text)
        if self._spaced is not None:
            _spaced_words(self._spaced, text, spaced, found)
        if self._unspaced is not None and unspaced:
            entries = self._unspaced.values
            for index, start, end in self._unspaced.find(text):
                if starts_word(text, start) and ends_word(text, end):
                    found.append((start, end, entries[index]))
        return found

    def _scoring(self, mentions: list[Mention]) -> list[Mention]:
        """Drop the topics whose hits weigh less than the topic's minimum score."""
        by_topic: dict[str, list[Mention]] = {}
        for m in mentions:
            if m.kind == "topic" and m.id in self._scored:
                by_topic.setdefault(m.id, []).append(m)
        short = {
            i
            for i, found in by_topic.items()
            if self._topics[i].score(found) < self._topics[i].min_score
        }
        return (
            [m for m in mentions if not (m.kind == "topic" and m.id in short)]
            if short
            else mentions
        )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused: building the automata makes several objects for every
    alias, none of them garbage, and the collector would walk them all again and again (a
    quarter of the time it takes to build for 50,000 aliases)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class _Variant:
    """One folded key behind a word-spaced key: its words, and the punctuation on either side
    that the text must also have ("u.s." is the words "u.s" and a final ".")."""

    lead: str
    words: str
    trail: str
    entry: _Entry

    @property
    def single(self) -> bool:
        """A single word with nothing around it: the text has it as written wherever its
        word-spaced form has it."""
        return not (self.lead or self.trail) and self.words.isalnum()

    def place(self, text: str, start: int, end: int) -> tuple[int, int, _Entry] | None:
        """(start, end, entry) of the key in folded ``text``, whose word-spaced form has its
        words at ``start:end``; None where the text does not have it as written."""
        if text[start:end] != self.words:
            return None
        if not (self.lead or self.trail):
            return start, end, self.entry
        lead, trail = len(self.lead), len(self.trail)
        if text[start - lead : start] != self.lead or text[end : end + trail] != self.trail:
            return None
        return start - lead, end + trail, self.entry


class _Automaton(Generic[_Value]):
    """Aho–Corasick over many keys at once, each standing for a value: every occurrence,
    overlapping ones included, as (index of the key's value in ``values``, start, end).

    It reads the text in UTF-8 and maps the few hits back to characters (none to map in ASCII
    text). Asked for character offsets, the automaton would map every byte of every text."""

    def __init__(self, keys: dict[str, _Value]) -> None:
        self.values = list(keys.values())
        encoded = [key.encode("utf-8", "surrogatepass") for key in keys]
        self._automaton = ahocorasick_rs.BytesAhoCorasick(encoded)

    def find(self, text: str) -> list[tuple[int, int, int]]:
        encoded = text.encode("utf-8", "surrogatepass")
        found: list[tuple[int, int, int]] = self._automaton.find_matches_as_indexes(
            encoded, overlapping=True
        )
        if not found or len(encoded) == len(text):  # ASCII: bytes are characters
            return found
        characters = character_offsets(
            encoded, (at for _, start, end in found for at in (start, end))
        )
        return [(index, characters[start], characters[end]) for index, start, end in found]


# A word-spaced key: the entry of the one single word it stands for (no need to look at the
# text), else None and the variants to check against the text.
_SpacedKey = tuple[_Entry | None, tuple[_Variant, ...]]


def _spaced_automaton(keys: dict[str, list[_Form]]) -> _Automaton[_SpacedKey] | None:
    """The keys by their words, space-padded: each found word-spaced key is checked against
    the folded text, so punctuation inside a key must be in the text as written."""
    variants: dict[str, list[_Variant]] = {}
    for key, forms in keys.items():
        spaced = word_spaced(key)
        words = spaced.strip()
        if not words:
            continue
        first = len(spaced) - len(spaced.lstrip())
        last = first + len(words)
        variant = _Variant(key[:first], key[first:last], key[last:], _Entry.of(forms))
        variants.setdefault(f" {words} ", []).append(variant)
    if not variants:
        return None
    return _Automaton(
        {
            padded: (found[0].entry, ())
            if len(found) == 1 and found[0].single
            else (None, tuple(found))
            for padded, found in variants.items()
        }
    )


def _automaton(forms: dict[str, list[_Form]]) -> _Automaton[_Entry] | None:
    """One automaton over every key, each standing for what its forms name; None if none."""
    if not forms:
        return None
    return _Automaton({key: _Entry.of(found) for key, found in forms.items()})


def _same_case(written: str, alias: str) -> bool:
    """Whether the text has the alias's case (quotes and dashes as matching folds them)."""
    return form_key(written) == form_key(alias) and all(
        a.isupper() == b.isupper() for a, b in zip(written, alias, strict=False)
    )


def _forms(entity: Entity) -> Iterator[_Form]:
    for alias in entity.cased:
        yield _Form(entity, alias, weak=False, cased=True)
    for alias in entity.strong:
        yield _Form(entity, alias, weak=False)
    for alias in entity.weak:
        yield _Form(entity, alias, weak=True)
    for role in entity.roles:
        for title in role.titles:
            yield _Form(entity, title, weak=False, role=role)
    for phrase in entity.negative_contexts:
        yield _Form(entity, phrase, weak=False, negative=True)


class _Reading:
    """What deciding about one hit may look at: the article, its folded fields, where each
    entity is named in full, whether the headline is in Title Case, and where a person's name
    ends (for titles in apposition: "Qin Gang, China's foreign minister"). The last two are
    worked out when first asked for."""

    def __init__(
        self,
        article: Article,
        folded: dict[FieldName, FoldedText],
        chosen: list[tuple[_Hit, tuple[_Form, ...]]],
        strong: _Positions,
    ) -> None:
        self.article, self.folded, self._chosen = article, folded, chosen
        self.strong = strong  # _strong_positions(chosen)
        self.named_in = {  # (actor id, field) where an actor is named by a strong form
            (actor_id, field)
            for (kind, actor_id), places in self.strong.items()
            if kind == "actor"
            for _, field, _ in places
        }

    @functools.cached_property
    def title_case(self) -> bool:
        return _title_cased(self.article.title)

    @functools.cached_property
    def name_ends(self) -> set[tuple[FieldName, int]]:
        return {
            (hit.field, hit.end)
            for hit, forms in self._chosen
            if any(f.entity.actor_kind == "person" and not (f.weak or f.role) for f in forms)
        }


def _decided(
    article: Article,
    sources: dict[FieldName, str],
    folded: dict[FieldName, FoldedText],
    chosen: list[tuple[_Hit, tuple[_Form, ...]]],
    undecided: list[tuple[_Hit, tuple[_Form, ...]]],
) -> Iterator[Mention]:
    """The mentions that hits of weak forms and role titles make, read with the rest of the
    article. Most weak hits (a common word that is someone's surname) have no full name
    nearby to confirm them, and are dropped at once."""
    strongly = {(f.entity.kind, f.entity.id) for _, forms in chosen for f in forms if not f.weak}
    undecided = [(hit, forms) for hit, forms in undecided if _may_be_named(forms, strongly)]
    if not undecided:
        return
    reading = _Reading(article, folded, chosen, _strong_positions(chosen))
    for hit, forms in undecided:
        named = _named(reading, hit, forms)
        if named is not None:
            yield _mention(hit, named, sources[hit.field], folded[hit.field])


def _may_be_named(forms: tuple[_Form, ...], strong: Container[tuple[str, str]]) -> bool:
    """Whether the rest of the article may have a hit's weak forms or role title name
    someone: a role title may; a weak form only where its entity, or an actor confirming it,
    is named by a strong form somewhere (``strong``: those entities, as (kind, id))."""
    for form in forms:
        entity = form.entity
        if not form.weak or (entity.kind, entity.id) in strong:
            return True
        for other in entity.confirmed_by:
            if ("actor", other) in strong:
                return True
    return False


def _plainly_named(forms: tuple[_Form, ...]) -> _Form | None:
    """The strong form, not a role title, that a hit names its entity by; None when the hit
    has only weak forms or a role title, and the rest of the article must decide."""
    form = _strong(forms)
    return form if form is not None and form.role is None else None


def _strong(forms: tuple[_Form, ...]) -> _Form | None:
    """The first form that is not weak (a loop: quicker than a generator, for a form or two)."""
    for form in forms:
        if not form.weak:
            return form
    return None


def _named(reading: _Reading, hit: _Hit, forms: tuple[_Form, ...]) -> _Form | None:
    """The form a chosen hit names its entity by, or None when it names no one here."""
    form = _strong(forms)
    if form is not None and form.role is not None:
        return None if _title_of_someone(reading, hit) else form
    if form is not None:
        return form
    form = _named_in_full(hit, forms, reading.strong)
    if form is None:
        form = _confirmed_nearby(hit, forms, reading.named_in)
        if form is not None and _inside_another_name(
            reading.article, reading.folded, hit, reading.title_case
        ):
            return None
    return form


def _leftmost_longest(hits: list[_Hit], weak: bool) -> list[tuple[_Hit, tuple[_Form, ...]]]:
    """Non-overlapping hits per field: the earliest start wins, then the longest. A weak form
    (``weak``: some hit may have one) overlapping a strong form of the same entity gives way to
    it first ("Mr Wang Yi" is the strong "Wang Yi", not the weak "Mr Wang"). A lone hit has
    nothing to order and nothing to give way to: no key is both a weak and a strong form of one
    entity (``_strongest``)."""
    if len(hits) < 2:
        return [(hit, hit.forms) for hit in hits]
    if weak:
        weakly = {(h.field, f.entity.id) for h in hits for f in h.forms if f.weak}
        strong: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for hit in hits:
            for form in hit.forms:
                key = (hit.field, form.entity.id)
                if not form.weak and key in weakly:
                    strong.setdefault(key, []).append((hit.start, hit.end))
        if strong:
            spans = {key: _SpanIndex(found) for key, found in strong.items()}
            hits = [h for h in hits if not _gives_way(h, h.forms, spans)]
    chosen = []
    reach: dict[str, int] = {}
    for hit in _in_reading_order(hits):
        if hit.start >= reach.get(hit.field, 0):
            reach[hit.field] = hit.end
            chosen.append((hit, hit.forms))
    return chosen


def _in_reading_order(hits: list[_Hit]) -> list[_Hit]:
    """Hits by field and start, the longest first where two start together (two stable sorts
    on the hit's own items: quicker than one on a key made for each)."""
    return sorted(sorted(hits, key=_END, reverse=True), key=_FIELD_START)


_END = operator.itemgetter(2)
_FIELD_START = operator.itemgetter(0, 1)


def _with_roles(
    chosen: list[tuple[_Hit, tuple[_Form, ...]]], roles: list[_Hit]
) -> list[tuple[_Hit, tuple[_Form, ...]]]:
    """Role titles compete among themselves, beside the names: "U.S. Secretary of State" is
    both the United States and whoever held the role. A title inside a chosen name of an
    person ("Chinese Foreign Minister Wang Yi") gives way to the name."""
    if not roles:
        return chosen
    names: dict[str, list[tuple[int, int]]] = {}
    for hit, forms in chosen:
        if any(f.entity.actor_kind == "person" and not f.weak for f in forms):
            names.setdefault(hit.field, []).append((hit.start, hit.end))
    within = {field: _SpanIndex(spans) for field, spans in names.items()}
    kept = []
    reach: dict[str, int] = {}
    for hit in _in_reading_order(roles):
        forms, index = hit.forms, within.get(hit.field)
        if hit.start >= reach.get(hit.field, 0) and not (
            index and index.overlaps(hit.start, hit.end)
        ):
            reach[hit.field] = hit.end
            kept.append((hit, forms))
    return chosen + kept


def _gives_way(
    hit: _Hit, forms: tuple[_Form, ...], strong: dict[tuple[str, str], _SpanIndex]
) -> bool:
    """Whether a weak hit overlaps a strong hit of one of its own entities."""
    for form in forms:
        if form.weak:
            index = strong.get((hit.field, form.entity.id))
            if index is not None and index.overlaps(hit.start, hit.end):
                return True
    return False


class _SpanIndex:
    """Spans, sorted, with the furthest end reached so far: overlap tests in O(log n)."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.spans = sorted(spans)
        self.reach = list(itertools.accumulate((end for _, end in self.spans), max))

    def overlaps(self, start: int, end: int) -> bool:
        index = bisect.bisect_left(self.spans, (end,))  # the spans starting before ``end``
        return index > 0 and self.reach[index - 1] > start


def _strong_positions(chosen: list[tuple[_Hit, tuple[_Form, ...]]]) -> _Positions:
    """Where each entity is named by a strong form: (kind, id) → [(field rank, field, start)]."""
    positions: _Positions = {}
    for hit, forms in chosen:
        position = None
        for form in forms:
            if not form.weak:
                position = position or _position(hit)
                key = (form.entity.kind, form.entity.id)
                positions.setdefault(key, []).append(position)
    return positions


def _position(hit: _Hit) -> tuple[int, str, int]:
    return (_FIELD_RANK[hit.field], hit.field, hit.start)


# Capitalised words that may stand next to a surname without making it someone else's name.
_NEIGHBOURS = frozenset(
    """mr mr. mrs mrs. ms ms. dr dr. president minister secretary premier chairman chairwoman
    leader chief general ambassador adviser advisor director senator governor envoy spokesman
    spokeswoman spokesperson vice foreign defense defence commerce trade state chinese american
    the a an in on at for of and or but to from with by as when after before while where though
    if that this then so yet says said monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november
    december""".split()  # noqa: SIM905 (a word list reads better as text)
)
# Lower-case words a title-cased headline keeps lower-case.
_TITLE_CASE_SMALL = frozenset(["with", "from", "into", "over", "upon", "than", "that", "amid"])
_WINDOW = 40  # characters looked at around a weak alias
_SENTENCE_OPENERS = frozenset('.!?:;"“‘«(—–-')
_WORD = re.compile(r"[^\W\d_][\w'’.-]*")


def _inside_another_name(
    article: Article, folded: dict[FieldName, FoldedText], hit: _Hit, title_case: bool
) -> bool:
    """Whether a weak alias of a person is part of a longer capitalised name ("Alexander Wang",
    "Xi Mingze") rather than the surname on its own. A Title Case headline carries no such
    evidence, nor does a capital that starts a sentence."""
    if not any(f.entity.actor_kind == "person" for f in hit.forms) or (
        hit.field == "title" and title_case
    ):
        return False
    text = article.field_text(hit.field)
    start, end = folded[hit.field].span_in_source(hit.start, hit.end)
    before = text[max(0, start - _WINDOW) : start]
    after = text[end : end + _WINDOW]
    words_before, words_after = _WORD.findall(before), _WORD.findall(after)
    joined_before = bool(words_before) and before.endswith(f"{words_before[-1]} ")
    joined_after = bool(words_after) and after.startswith(f" {words_after[0]}")
    return (
        joined_before
        and _is_name_word(words_before[-1])
        and not _starts_sentence(before[: -len(words_before[-1]) - 1])
    ) or (joined_after and _is_name_word(words_after[0]))


def _starts_sentence(before: str) -> bool:
    """Whether a word preceded by ``before`` opens a sentence or a quotation."""
    stripped = before.rstrip()
    return not stripped or stripped[-1] in _SENTENCE_OPENERS


def _is_name_word(word: str) -> bool:
    ends_clause = word.endswith(("'s", "’s", "."))  # a possessive, or the end of a sentence
    return word[:1].isupper() and word.lower() not in _NEIGHBOURS and not ends_clause


def _title_cased(text: str) -> bool:
    """A headline in Title Case: no lower-case word longer than three letters but the few
    that title case keeps small."""
    words = [w for w in _WORD.findall(text) if len(w) > 3]
    lower = [w for w in words if w[0].islower() and w not in _TITLE_CASE_SMALL]
    return len(words) >= 3 and not lower


def _named_in_full(hit: _Hit, forms: tuple[_Form, ...], strong: _Positions) -> _Form | None:
    """The entity a weak hit belongs to by being named in full in the article: the one named
    most recently before it, else the first one named anywhere."""
    if not all(f.weak for f in forms):
        return None
    here = _position(hit)
    named = [
        (f, strong[(f.entity.kind, f.entity.id)])
        for f in forms
        if (f.entity.kind, f.entity.id) in strong
    ]
    before = [
        (max(p for p in places if p < here), f)
        for f, places in named
        if any(p < here for p in places)
    ]
    if before:
        return max(before, key=lambda pair: pair[0])[1]
    if named:
        return min(named, key=lambda pair: min(pair[1]))[0]
    return None


def _confirmed_nearby(
    hit: _Hit, forms: tuple[_Form, ...], named_in: set[tuple[str, str]]
) -> _Form | None:
    """The entity a weak hit belongs to by a confirming actor named in the same field."""
    return next(
        (f for f in forms if any((o, hit.field) in named_in for o in f.entity.confirmed_by)),
        None,
    )


_NEGATIVE_REACH = 3  # words between a negative context and a hit it cancels
_WORDS = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"[.!?;。！？；]")


def _without_negated(
    chosen: list[tuple[_Hit, tuple[_Form, ...]]],
    negatives: Sequence[_Hit],
    folded: dict[FieldName, FoldedText],
) -> list[tuple[_Hit, tuple[_Form, ...]]]:
    """The chosen hits less the forms whose entity has a negative context next to the hit."""
    kept = []
    for hit, forms in chosen:
        text = folded[hit.field].text
        weak = all(f.weak for f in forms)
        near = {
            f.entity.id
            for n in negatives
            if n.field == hit.field and _within_reach(text, hit, n, weak)
            for f in n.forms
        }
        remaining = tuple(f for f in forms if f.entity.id not in near)
        if remaining:
            kept.append((hit, remaining))
    return kept


def _within_reach(text: str, hit: _Hit, negative: _Hit, weak: bool) -> bool:
    """A negative context cancels a hit it contains ("Xi" in "Xi Mingze"), and a weak hit it
    overlaps or stands a few words from in the same sentence ("balloon" in "a balloon and a
    payment")."""
    if negative.start <= hit.start and hit.end <= negative.end:
        return True
    if not weak:
        return False
    if negative.start < hit.end and hit.start < negative.end:
        return True
    if hit.end <= negative.start:
        gap = text[hit.end : negative.start]
    else:
        gap = text[negative.end : hit.start]
    return not _SENTENCE_END.search(gap) and len(_WORDS.findall(gap)) <= _NEGATIVE_REACH


def _title_of_someone(reading: _Reading, hit: _Hit) -> bool:
    """Whether a role title belongs to a name next to it: before a name ("Foreign Minister Li
    Zhaoxing") or after one, in apposition ("Qin Gang, China's foreign minister"). Then it
    names that person, not whoever held the role that day."""
    folded = reading.folded[hit.field].text
    for lead in (", ", ", the ", " (", " (the "):
        at = hit.start - len(lead)
        if folded[max(at, 0) : hit.start] == lead and (hit.field, at) in reading.name_ends:
            return True
    if hit.field == "title" and reading.title_case:  # every word is capitalised there
        return False
    text = reading.article.field_text(hit.field)
    _, end = reading.folded[hit.field].span_in_source(hit.start, hit.end)
    words = _WORD.findall(text[end : end + _WINDOW])
    return text[end : end + 1] == " " and bool(words) and _is_name_word(words[0])


def _mention(hit: _Hit, form: _Form, source: str, folded: FoldedText) -> Mention:
    """The mention a hit in folded text makes, in the words of the field's ``source`` text."""
    start, end = hit.start, hit.end
    if type(folded.origin) is not range:  # some characters folded to several or to none
        start, end = folded.span_in_source(start, end)
    entity = form.entity
    return Mention(entity.kind, entity.id, hit.field, start, end, source[start:end], form.alias)
