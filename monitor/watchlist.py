"""The watchlist: tracked actors (people, organisations, places) and topics, from TOML files.

An actor has a ``name`` and ``aliases``; a topic has ``terms``. Both may list weak forms
(``weak_aliases``, ``weak_terms``), ambiguous on their own (a bare surname such as "Wang"), which
count only when the article also names the entry by a strong form, or when an entry listed in
``confirmed_by`` is named in the same field (the headline "Biden, Xi to meet").
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.config import validation_problems
from monitor.errors import ConfigError, Problem
from monitor.models import EntityKind

ActorKind = Literal["person", "organisation", "place"]
_ID = r"^[a-z0-9]+(-[a-z0-9]+)*$"


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


class _ActorEntry(_Entry):
    kind: ActorKind = "person"
    aliases: tuple[str, ...] = ()
    weak_aliases: tuple[str, ...] = ()


class _TopicEntry(_Entry):
    terms: tuple[str, ...] = ()
    weak_terms: tuple[str, ...] = ()


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
    )


def _topic(entry: _TopicEntry) -> Entity:
    return Entity(
        kind="topic",
        id=entry.id or slug(entry.name),
        name=entry.name,
        strong=_distinct(entry.terms or (entry.name,)),
        weak=_distinct(entry.weak_terms),
        confirmed_by=entry.confirmed_by,
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
    return problems
