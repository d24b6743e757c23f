"""Property tests: random text and random feeds through normalisation, matching, rules and
parsing never raise anything but our own errors, and spans always point at their words."""

from __future__ import annotations

from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.matcher import Matcher, ends_word, starts_word
from monitor.models import Article
from monitor.normalise import clean_text, fold, html_to_text
from monitor.parse import parse_feed
from monitor.rules import ArticleView, compile_query
from monitor.watchlist import Entity, Watchlist, load_watchlist

WATCHLIST = load_watchlist([REPO / "seeds" / "watchlist.toml"])
MATCHER = Matcher(WATCHLIST)
QUERY = compile_query(
    'actor:xi-jinping OR (topic:taiwan AND NOT "basketball") OR sanction* OR '
    "SENTENCE(actor:wang-yi NOT taiwan) OR (blinken NEAR/3 /wang( yi)?/) OR "
    "ATLEAST(2, topic:taiwan actor:xi-jinping basketball)",
    WATCHLIST,
)

# Text made of watchlist words, punctuation that matters to word boundaries, and anything else.
NAMES = st.sampled_from(["Xi", "Wang Yi", "Blinken", "Taiwan", "O'", "’s", "Xi'an", "习近平", "-"])
TEXT = st.lists(st.one_of(NAMES, st.text(max_size=12)), max_size=30).map(" ".join)
SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(TEXT)
def test_fold_keeps_a_way_back(text: str) -> None:
    clean = clean_text(text)
    folded = fold(clean)
    assert len(folded.origin) == len(folded.text)
    assert all(0 <= i < len(clean) for i in folded.origin)
    assert list(folded.origin) == sorted(folded.origin)


@SETTINGS
@given(TEXT, TEXT)
def test_mentions_point_at_their_words(title: str, text: str) -> None:
    article = Article(title=clean_text(title), text=clean_text(text))
    for mention in MATCHER.find(article):
        assert article.field_text(mention.field)[mention.start : mention.end] == mention.text
    QUERY.explain(ArticleView(article, MATCHER.find(article)))


@SETTINGS
@given(st.text(max_size=300))
def test_html_to_text_never_raises_and_drops_scripts(html: str) -> None:
    sentinel = "SCRIPT-BODY-4f1c"
    text = html_to_text(f"<div>{html}</div><script>{sentinel}</script>")
    assert sentinel not in text or sentinel in html


ITEM = st.builds(
    lambda title, body: f"<item><title>{title}</title><description>{body}</description></item>",
    st.text(max_size=40),
    st.text(max_size=80),
)
FEED = st.lists(ITEM, max_size=5).map(
    lambda items: (
        f'<?xml version="1.0"?><rss version="2.0"><channel>{"".join(items)}</channel></rss>'
    )
)


@SETTINGS
@given(st.one_of(FEED.map(str.encode), st.binary(max_size=400)))
def test_parsing_random_feeds_raises_only_parse_errors(data: bytes) -> None:
    try:
        feed = parse_feed(data, headers={"content-type": "application/rss+xml"})
    except ParseError:
        return
    for article in feed.articles:
        MATCHER.find(article)


# Whole words: the word-spaced lookup finds exactly what a plain search with boundary checks
# finds, for forms of letters and spaces in text mixing letters, punctuation, apostrophes and
# Chinese.
WORDS = st.sampled_from(
    ["wang", "yi", "xi", "an", "s", "li", "o", "sullivan", "xi'an", "王毅", "习"]
)
GLUE = st.sampled_from([" ", "'", "’", ", ", ".", "-", "", "\n", " ('", "'s ", "_", "é"])
MIXED = st.lists(st.tuples(WORDS, GLUE), max_size=25).map(
    lambda parts: "".join(w + g for w, g in parts)
)
FORMS = st.lists(
    st.lists(WORDS.filter(str.isascii), min_size=1, max_size=2).map(" ".join),
    min_size=1,
    max_size=4,
    unique=True,
)


@SETTINGS
@given(forms=FORMS, text=MIXED)
def test_whole_words_are_found_as_a_boundary_check_finds_them(forms: list[str], text: str) -> None:
    entities = tuple(Entity("topic", f"t{i}", form, (form,)) for i, form in enumerate(forms))
    matcher = Matcher(Watchlist((), entities))
    folded = fold(clean_text(text)).text
    found = {(start, end) for start, end, _ in matcher._whole_words(folded)}
    expected = {
        (start, start + len(form))
        for form in forms
        for start in range(len(folded))
        if folded.startswith(form, start)
        and starts_word(folded, start)
        and ends_word(folded, start + len(form))
    }
    assert found == expected
