"""The watchlist: tracked actors (people, organisations, places) and topics, from TOML files.

An actor has a ``name`` and ``aliases``; a topic has ``terms``. Both may list weak forms
(``weak_aliases``, ``weak_terms``), ambiguous on their own (a bare surname such as "Wang"), which
count only when the article also names the entry by a strong form, or when an entry listed in
``confirmed_by`` is named in the same field (the headline "Biden, Xi to meet").

Forms listed in ``cased_aliases`` / ``cased_terms`` match only in the case written ("US" but
not the pronoun "us"). An actor may also be named by a role that changes hands (``roles``:
"China's foreign minister" from one date until another), and any entry may list
``negative_contexts``, phrases that cancel a hit nearby ("Xi'an", "balloon payment"). A
topic's terms may carry ``weights``; the topic counts in an article when the weights of its hits
add up to its ``min_score`` (title hits count twice).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.config import validation_problems
from monitor.errors import ConfigError, Problem
from monitor.models import EntityKind, Mention
from monitor.normalise import form_key

ActorKind = Literal["person", "organisation", "place"]
_ID = r"^[a-z0-9]+(-[a-z0-9]+)*$"


#: How much more a hit in the title weighs towards a topic's score than one in the body.
TITLE_WEIGHT = 2.0


@dataclass(frozen=True)
class Role:
    """Titles that name an actor while the actor holds the role: from ``start`` (inclusive)
    until ``end`` (exclusive); an open end means still held, an open start since ever."""

    titles: tuple[str, ...]
    start: date | None = None
    end: date | None = None

    def held_on(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day < self.end)


@dataclass(frozen=True)
class Entity:
    """A tracked actor or topic, with every form that names it."""

    kind: EntityKind
    id: str
    name: str
    strong: tuple[str, ...]  # the name and aliases (actors) or terms (topics)
    weak: tuple[str, ...] = ()
    confirmed_by: tuple[str, ...] = ()
    actor_kind: ActorKind | None = None  # person, organisation or place, for actors
    roles: tuple[Role, ...] = ()
    negative_contexts: tuple[str, ...] = ()
    weights: tuple[tuple[str, float], ...] = ()  # (term, weight); terms not listed weigh 1
    min_score: float = 1.0
    cased: tuple[str, ...] = ()  # strong forms that match only as written ("US", not "us")

    def weight(self, alias: str) -> float:
        return next((w for term, w in self.weights if term == alias), 1.0)

    def score(self, mentions: Iterable[Mention]) -> float:
        """The weight of this entity's hits among ``mentions``; a title hit counts twice."""
        return sum(
            self.weight(m.alias) * (TITLE_WEIGHT if m.field == "title" else 1.0)
            for m in mentions
            if m.id == self.id and m.kind == self.kind
        )


@dataclass(frozen=True)
class Watchlist:
    actors: tuple[Entity, ...]
    topics: tuple[Entity, ...]

    @property
    def entities(self) -> tuple[Entity, ...]:
        return self.actors + self.topics

    def get(self, kind: EntityKind, entity_id: str) -> Entity | None:
        pool = self.actors if kind == "actor" else self.topics
        return next((e for e in pool if e.id == entity_id), None)

    def display_name(self, kind: EntityKind, entity_id: str) -> str:
        entity = self.get(kind, entity_id)
        return entity.name if entity else entity_id


def slug(name: str) -> str:
    """The default id of a name: "Antony Blinken" → "antony-blinken"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str | None = Field(default=None, pattern=_ID)
    name: str = Field(min_length=1)
    confirmed_by: tuple[str, ...] = ()


class _Role(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    titles: tuple[str, ...] = Field(min_length=1)
    start: date | None = Field(default=None, alias="from")
    end: date | None = Field(default=None, alias="until")

    @model_validator(mode="after")
    def _ordered(self) -> _Role:
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"'until' ({self.end}) must come after 'from' ({self.start})")
        return self


class _ActorEntry(_Entry):
    kind: ActorKind = "person"
    aliases: tuple[str, ...] = ()
    weak_aliases: tuple[str, ...] = ()
    cased_aliases: tuple[str, ...] = ()
    roles: tuple[_Role, ...] = ()
    negative_contexts: tuple[str, ...] = ()


class _TopicEntry(_Entry):
    terms: tuple[str, ...] = ()
    weak_terms: tuple[str, ...] = ()
    cased_terms: tuple[str, ...] = ()
    weights: dict[str, float] = {}
    min_score: float = Field(default=1.0, gt=0)
    negative_contexts: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _weighs_its_own_terms(self) -> _TopicEntry:
        forms = set(self.terms or (self.name,)) | set(self.weak_terms) | set(self.cased_terms)
        unknown = sorted(set(self.weights) - forms)
        if unknown:
            raise ValueError(f"weights given for {unknown}, which are not among its terms")
        if any(w <= 0 for w in self.weights.values()):
            raise ValueError("weights must be greater than 0")
        return self


class _WatchlistFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    actors: tuple[_ActorEntry, ...] = ()
    topics: tuple[_TopicEntry, ...] = ()


def load_watchlist(paths: Sequence[Path]) -> Watchlist:
    """Read and merge watchlist files; every problem found is raised in one ConfigError."""
    problems: list[Problem] = []
    actors: list[Entity] = []
    topics: list[Entity] = []
    for path in paths:
        parsed = _read_file(path, problems)
        if parsed is not None:
            actors.extend(_actor(e) for e in parsed.actors)
            topics.extend(_topic(e) for e in parsed.topics)
    watchlist = Watchlist(tuple(actors), tuple(topics))
    where = ", ".join(str(p) for p in paths)
    problems.extend(_check(watchlist, where))
    if problems:
        raise ConfigError(problems)
    return watchlist


def watchlist_warnings(watchlist: Watchlist) -> list[str]:
    """What loads but does not work as written: a weak form that reads like one of its entry's
    strong forms once case and accents are set aside is matched as that strong form."""
    found = []
    for entity in watchlist.entities:
        strong = {form_key(form): form for form in entity.strong}
        for form in entity.weak:
            same = strong.get(form_key(form))
            if same is not None:
                listed = "weak_aliases" if entity.kind == "actor" else "weak_terms"
                found.append(
                    f"{entity.kind} {entity.id!r}: {listed} {form!r} matches like its strong "
                    f"form {same!r} (case and accents aside) and counts as strong; drop it from "
                    f"{listed}"
                )
    return found


def _read_file(path: Path, problems: list[Problem]) -> _WatchlistFile | None:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return _WatchlistFile.model_validate(raw)
    except OSError as exc:
        problems.append(Problem(str(path), f"cannot read the watchlist: {exc.strerror}"))
    except UnicodeDecodeError as exc:
        problems.append(Problem(str(path), f"not UTF-8 text (byte {exc.start}): save it as UTF-8"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(str(path), f"not valid TOML: {exc}"))
    except ValidationError as exc:
        problems.extend(validation_problems(exc, str(path)))
    return None


def _actor(entry: _ActorEntry) -> Entity:
    return Entity(
        kind="actor",
        id=entry.id or slug(entry.name),
        name=entry.name,
        strong=_distinct([entry.name, *entry.aliases]),
        weak=_distinct(entry.weak_aliases),
        confirmed_by=entry.confirmed_by,
        actor_kind=entry.kind,
        roles=tuple(Role(_distinct(r.titles), r.start, r.end) for r in entry.roles),
        negative_contexts=_distinct(entry.negative_contexts),
        cased=_distinct(entry.cased_aliases),
    )


def _topic(entry: _TopicEntry) -> Entity:
    return Entity(
        kind="topic",
        id=entry.id or slug(entry.name),
        name=entry.name,
        strong=_distinct(entry.terms or (entry.name,)),
        weak=_distinct(entry.weak_terms),
        confirmed_by=entry.confirmed_by,
        negative_contexts=_distinct(entry.negative_contexts),
        weights=tuple(entry.weights.items()),
        min_score=entry.min_score,
        cased=_distinct(entry.cased_terms),
    )


def _distinct(forms: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(f.strip() for f in forms if f.strip()))


def _check(watchlist: Watchlist, where: str) -> list[Problem]:
    problems = []
    actor_ids = {a.id for a in watchlist.actors}
    for pool, label in ((watchlist.actors, "actor"), (watchlist.topics, "topic")):
        seen: set[str] = set()
        for entity in pool:
            if entity.id in seen:
                problems.append(Problem(where, f"duplicate {label} id {entity.id!r}"))
            seen.add(entity.id)
            for other in entity.confirmed_by:
                if other not in actor_ids:
                    message = f"{label} {entity.id!r}: confirmed_by names unknown actor {other!r}"
                    problems.append(Problem(where, message))
    problems.extend(_shared_roles(watchlist.actors, where))
    return problems


def _shared_roles(actors: Sequence[Entity], where: str) -> Iterable[Problem]:
    """A title held by two actors on the same day cannot say which one is meant."""
    holders: dict[str, list[tuple[Entity, Role]]] = {}
    for actor in actors:
        for role in actor.roles:
            for title in role.titles:
                holders.setdefault(title.casefold(), []).append((actor, role))
    for title, held in holders.items():
        for index, (actor, role) in enumerate(held):
            for other, other_role in held[index + 1 :]:
                if other.id != actor.id and _overlap(role, other_role):
                    message = f"role {title!r} is held by both {actor.id!r} and {other.id!r}"
                    yield Problem(where, f"{message} at the same time: make their dates meet")


def _overlap(a: Role, b: Role) -> bool:
    a_start, b_start = a.start or date.min, b.start or date.min
    a_end, b_end = a.end or date.max, b.end or date.max
    return a_start < b_end and b_start < a_end
