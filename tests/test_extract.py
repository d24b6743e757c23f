"""Proposing a watchlist from documents: the seed corpus, name sequences, and the TOML output."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from monitor.extract import (
    ProposedActor,
    ProposedTopic,
    WatchlistProposal,
    _name_sequences,
    propose_watchlist,
    render_toml,
)
from monitor.watchlist import load_watchlist

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SEED_CORPUS = SEEDS / "corpus"

SEED_PERSONS = (
    "Antony Blinken", "Wang Yi", "Joe Biden", "Xi Jinping", "Jake Sullivan", "Qin Gang",
    "Vladimir Putin", "Jessica Chen Weiss", "Ryan Hass", "Daniel Kritenbrink", "Wang Wentao",
    "Bill Burns", "Li Shangfu", "Lloyd Austin",
)  # fmt: skip

STOP_STARTS = {"the", "in", "last", "both", "a", "an", "since", "however", "according", "despite"}
CALENDAR = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday",
}  # fmt: skip
ID_SHAPE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@pytest.fixture(scope="module")
def seed_texts() -> list[str]:
    paths = sorted(SEED_CORPUS.glob("*.txt"))
    assert len(paths) == 5
    return [path.read_text(encoding="utf-8") for path in paths]


@pytest.fixture(scope="module")
def seed_proposal(seed_texts: list[str]) -> WatchlistProposal:
    return propose_watchlist(seed_texts)


def actor(proposal: WatchlistProposal, actor_id: str) -> ProposedActor:
    found = [a for a in proposal.actors if a.id == actor_id]
    assert found, f"no actor {actor_id!r} in {[a.id for a in proposal.actors]}"
    return found[0]


def persons(proposal: WatchlistProposal) -> list[ProposedActor]:
    return [a for a in proposal.actors if a.kind == "person"]


# The seed corpus ---------------------------------------------------------------------------------


def test_seed_corpus_persons_are_proposed(seed_proposal: WatchlistProposal) -> None:
    known = {n for p in persons(seed_proposal) for n in (p.name, *p.aliases, *p.weak_aliases)}
    found = [name for name in SEED_PERSONS if name in known]
    assert len(found) >= 12, f"found {found}"


def test_seed_corpus_surnames_are_aliases_and_shared_ones_weak(
    seed_proposal: WatchlistProposal,
) -> None:
    blinken = actor(seed_proposal, "antony-blinken")
    assert blinken.kind == "person"
    assert "Blinken" in blinken.aliases
    assert "Antony J. Blinken" in blinken.aliases  # the middle initial joins the same person
    assert "Secretary of State Antony Blinken" in blinken.aliases
    for wang in ("wang-yi", "wang-wentao"):
        assert "Wang" in actor(seed_proposal, wang).weak_aliases
        assert "Wang" not in actor(seed_proposal, wang).aliases
    assert {"Biden", "President Biden"} <= set(actor(seed_proposal, "joe-biden").aliases)


def test_seed_corpus_organisations_and_places(seed_proposal: WatchlistProposal) -> None:
    kinds = {a.name: a.kind for a in seed_proposal.actors}
    for name in ("State Department", "White House", "Pentagon"):
        assert kinds.get(name) == "organisation", name
    for name in ("China", "Taiwan", "Beijing"):
        assert kinds.get(name) == "place", name
    apec = actor(seed_proposal, "asia-pacific-economic-cooperation")
    assert apec.aliases == ("APEC",)
    # matching ignores case, so the pronoun "us" must not name the country
    assert actor(seed_proposal, "united-states").aliases == ("U.S.", "USA")


def test_a_strong_alias_two_actors_share_becomes_weak() -> None:
    proposal = propose_watchlist([
        "Leaders met at the Asia-Pacific Economic Cooperation (APEC) summit. "
        "The Asia Pacific Energy Council (APEC) disagreed."
    ])  # fmt: skip
    for org in ("asia-pacific-economic-cooperation", "asia-pacific-energy-council"):
        assert actor(proposal, org).aliases == ()
        assert actor(proposal, org).weak_aliases == ("APEC",)


def test_seed_corpus_topics(seed_proposal: WatchlistProposal) -> None:
    terms = {t.lower() for topic in seed_proposal.topics for t in (topic.name, *topic.terms)}
    assert {"spy balloon", "south china sea", "taiwan strait", "human rights"} <= terms
    # seen once, but rare in English: distinctive
    assert {"fentanyl precursors", "semiconductor chips", "artificial intelligence"} <= terms
    spy_balloon = next(t for t in seed_proposal.topics if t.id == "spy-balloon")
    assert spy_balloon.terms[0] == "spy balloon"  # phrases sharing "balloon" join it
    assert {"surveillance balloon", "balloon incident"} <= set(spy_balloon.terms)
    assert 15 <= len(seed_proposal.topics) <= 25


def test_seed_corpus_topics_come_most_distinctive_first(seed_proposal: WatchlistProposal) -> None:
    names = [t.name for t in seed_proposal.topics]
    assert names.index("fentanyl precursors") < names.index("human rights")
    assert names.index("spy balloon") < names.index("military-to-military")


def test_seed_corpus_events_and_meetings_are_topics(seed_proposal: WatchlistProposal) -> None:
    topics = {t.name: t for t in seed_proposal.topics}
    kinds = {a.name: a.kind for a in seed_proposal.actors}
    assert "Munich Security Conference" in topics and "Munich Security Conference" not in kinds
    assert {"APEC summit", "Asia-Pacific Economic Cooperation (APEC) summit"} <= set(
        topics["APEC summit"].terms
    )
    biden_xi = set(topics["Biden–Xi meetings"].terms)
    assert {
        "meeting between Biden and Xi",
        "call between Biden and Xi",
        "Biden-Xi summit",
    } <= biden_xi
    assert topics["Biden–Xi meetings"].documents == 2


def test_seed_corpus_features_and_state_bodies(seed_proposal: WatchlistProposal) -> None:
    kinds = {a.name: a.kind for a in seed_proposal.actors}
    for name in (
        "Taiwan Strait",
        "South China Sea",
        "South Carolina",
        "Diaoyutai State Guesthouse",
    ):
        assert kinds.get(name) == "place", name
    for name in ("Chinese Foreign Ministry", "Chinese Embassy in Washington"):
        assert kinds.get(name) == "organisation", name
    assert "Foreign Ministry" not in kinds
    assert actor(seed_proposal, "chinese-foreign-ministry").weak_aliases == ("Foreign Ministry",)
    # a sea or a strait is a place, and a topic as well
    assert {"South China Sea", "Taiwan Strait"} <= {t.name for t in seed_proposal.topics}


def _unproposed(entries: list[dict[str, Any]], proposed: set[str]) -> list[str]:
    """The seed entries none of whose name, aliases or terms was proposed, ignoring case."""
    return [
        entry["name"]
        for entry in entries
        if proposed.isdisjoint(
            f.lower() for f in (entry["name"], *entry.get("aliases", ()), *entry.get("terms", ()))
        )
    ]


def test_seed_corpus_proposes_most_of_the_seed_watchlist(seed_proposal: WatchlistProposal) -> None:
    """The seed watchlist was made by hand from the seed corpus; extraction finds most of it."""
    seed = tomllib.loads((SEEDS / "watchlist.toml").read_text(encoding="utf-8"))
    actors = {f.lower() for a in seed_proposal.actors for f in (a.name, *a.aliases)}
    topics = {f.lower() for t in seed_proposal.topics for f in (t.name, *t.terms)}
    seed_persons = [a for a in seed["actors"] if a["kind"] == "person"]
    assert _unproposed(seed_persons, actors) == []
    missing_actors = _unproposed(seed["actors"], actors)
    assert 1 - len(missing_actors) / len(seed["actors"]) >= 0.85, missing_actors
    missing_topics = _unproposed(seed["topics"], topics)
    assert 1 - len(missing_topics) / len(seed["topics"]) >= 0.6, missing_topics


def test_seed_corpus_has_no_junk_persons(seed_proposal: WatchlistProposal) -> None:
    names = [p.name for p in persons(seed_proposal)]
    assert "The State Department" not in names
    for name in names:
        words = name.lower().split()
        assert words[0] not in STOP_STARTS, name
        assert not CALENDAR & set(words), name


def test_seed_corpus_counts_and_order(seed_proposal: WatchlistProposal) -> None:
    blinken = actor(seed_proposal, "antony-blinken")
    assert blinken.documents == 5
    assert blinken.mentions >= 30
    kinds = [a.kind for a in seed_proposal.actors]
    assert kinds == sorted(kinds, key=["person", "organisation", "place"].index)
    assert persons(seed_proposal)[0] == blinken  # the most mentioned person comes first


def test_min_mentions_drops_rare_entries(seed_texts: list[str]) -> None:
    proposal = propose_watchlist(seed_texts, min_mentions=5)
    assert proposal.actors and all(a.mentions >= 5 for a in proposal.actors)
    assert all(t.mentions >= 5 for t in proposal.topics)
    assert "lloyd-austin" not in {a.id for a in proposal.actors}


def test_proposal_is_deterministic(seed_texts: list[str]) -> None:
    assert propose_watchlist(seed_texts) == propose_watchlist(seed_texts)


def test_empty_corpus_proposes_nothing() -> None:
    assert propose_watchlist([]) == WatchlistProposal(actors=(), topics=())
    assert propose_watchlist([""]) == WatchlistProposal(actors=(), topics=())


# Name sequences ----------------------------------------------------------------------------------

NAME_SEQUENCE_CASES = [
    (
        "Secretary of State Antony J. Blinken met Wang Yi.",
        [("Secretary", "of", "State", "Antony", "J.", "Blinken"), ("Wang", "Yi")],
    ),
    ("The State Department said so.", [("State", "Department")]),
    (
        "Last month, Wang met in Bangkok with national security adviser Jake Sullivan.",
        [("Wang",), ("Bangkok",), ("Jake", "Sullivan")],
    ),
    ("Talks began on Monday in Beijing.", [("Beijing",)]),
    ('"Diplomacy matters," said Jessica Chen Weiss, a professor.', [("Jessica", "Chen", "Weiss")]),
    ("Mr. Blinken and Mr Xi met Blinken's team.", [("Mr.", "Blinken"), ("Mr", "Xi"), ("Blinken",)]),
    (
        "They met at the Asia-Pacific Economic Cooperation (APEC) summit.",
        [("Asia-Pacific", "Economic", "Cooperation"), ("APEC",)],
    ),
    ("In February the U.S.-China Working Group met.", [("U.S.-China", "Working", "Group")]),
    ("Both sides met in Washington, DC. China agreed.", [("Washington",), ("DC",)]),
    ("China agreed. Analysts praised China.", [("China",), ("China",)]),
    ("Biden met Xi on Tuesday\nTalks went well for Biden.", [("Biden",), ("Xi",), ("Biden",)]),
    ("Daniel Kritenbrink spoke.", [("Daniel", "Kritenbrink")]),
]


@pytest.mark.parametrize(("text", "expected"), NAME_SEQUENCE_CASES)
def test_name_sequences(text: str, expected: list[tuple[str, ...]]) -> None:
    assert [s.words for s in _name_sequences([text])] == expected


# (text, name proposed, its aliases, its weak aliases)
PERSON_CASES = [
    (
        "Chinese Defense Minister Li Shangfu met officials.",
        "Li Shangfu",
        ("Defense Minister Li Shangfu",),
        ("Li",),
    ),
    ("He met his counterpart Lloyd Austin. Austin agreed.", "Lloyd Austin", ("Austin",), ()),
    ('"It is hard," said Ryan Hass. "Yes," added Mr. Hass.', "Ryan Hass", ("Hass", "Mr. Hass"), ()),
    (
        "Daniel Kritenbrink, the assistant secretary, spoke.",
        "Daniel Kritenbrink",
        ("Kritenbrink",),
        (),
    ),
    (
        "Xi Jinping arrived. Later Xi spoke, and President Xi left.",
        "Xi Jinping",
        ("Xi", "President Xi"),
        (),
    ),
    ("Ask President Obama.", "Obama", ("President Obama",), ()),
]


@pytest.mark.parametrize(("text", "name", "aliases", "weak"), PERSON_CASES)
def test_persons(text: str, name: str, aliases: tuple[str, ...], weak: tuple[str, ...]) -> None:
    found = {p.name: p for p in persons(propose_watchlist([text]))}
    assert name in found, list(found)
    assert found[name].aliases == aliases
    assert found[name].weak_aliases == weak


# (document, phrase, whether it is proposed as a topic): a phrase seen once must be rare in
# English and shaped like the name of a thing
TOPIC_CASES = [
    ("Officials discussed fentanyl precursors at length.", "fentanyl precursors", True),
    ("It was a crucial juncture.", "crucial juncture", False),  # a one-off, after "a"
    ("Beijing attaches importance to it.", "attaches importance", False),  # a verb, after a name
    ("The firm believes the plan works.", "firm believes", False),  # a verb, before "the"
    ("They discussed reestablishing channels.", "reestablishing channels", False),
    ("Reporters met the veteran diplomat.", "veteran diplomat", False),  # a person
]


@pytest.mark.parametrize(("text", "phrase", "proposed"), TOPIC_CASES)
def test_topics(text: str, phrase: str, proposed: bool) -> None:
    terms = {t for topic in propose_watchlist([text]).topics for t in topic.terms}
    assert (phrase in terms) == proposed, terms


def test_a_common_phrase_is_a_topic_when_seen_in_two_documents() -> None:
    proposal = propose_watchlist(["Both spoke of human rights at length.", "Human rights came up."])
    assert [(t.name, t.terms, t.documents) for t in proposal.topics] == [
        ("human rights", ("human rights",), 2)
    ]


# TOML ------------------------------------------------------------------------------------------


def test_render_toml_round_trips(seed_proposal: WatchlistProposal) -> None:
    text = render_toml(seed_proposal)
    assert text.startswith("# Proposed watchlist")
    assert "\n# seen 1 time in 1 document\n[[actors]]\n" in text
    data = tomllib.loads(text)
    assert len(data["actors"]) == len(seed_proposal.actors)
    for table, proposed in zip(data["actors"], seed_proposal.actors, strict=True):
        assert table == {
            "id": proposed.id,
            "name": proposed.name,
            "kind": proposed.kind,
            "aliases": list(proposed.aliases),
            "weak_aliases": list(proposed.weak_aliases),
            "confirmed_by": [],
        }
    topics = [(t["id"], t["name"], tuple(t["terms"])) for t in data["topics"]]
    assert topics == [(t.id, t.name, t.terms) for t in seed_proposal.topics]


def test_ids_are_unique_and_well_formed(seed_proposal: WatchlistProposal) -> None:
    for ids in ([a.id for a in seed_proposal.actors], [t.id for t in seed_proposal.topics]):
        assert len(ids) == len(set(ids))
        assert all(ID_SHAPE.match(i) for i in ids), ids


def test_rendered_proposal_loads_as_a_watchlist(
    seed_proposal: WatchlistProposal, tmp_path: Path
) -> None:
    path = tmp_path / "proposed.toml"
    path.write_text(render_toml(seed_proposal), encoding="utf-8")
    watchlist = load_watchlist([path])
    assert [a.id for a in watchlist.actors] == [a.id for a in seed_proposal.actors]
    assert [t.id for t in watchlist.topics] == [t.id for t in seed_proposal.topics]


def test_render_toml_escapes_strings() -> None:
    awkward = 'Tab\there "quoted" back\\slash\nnew line \x7f and Zürich'
    proposal = WatchlistProposal(
        actors=(ProposedActor("odd", awkward, "organisation", (awkward,), (), 2, 1),),
        topics=(ProposedTopic("odd-topic", awkward, (awkward, "plain"), 3, 2),),
    )
    data = tomllib.loads(render_toml(proposal))
    assert data["actors"][0]["name"] == awkward
    assert data["actors"][0]["aliases"] == [awkward]
    assert data["topics"][0]["terms"] == [awkward, "plain"]
    assert "# seen 3 times in 2 documents\n[[topics]]" in render_toml(proposal)
