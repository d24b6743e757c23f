"""Arbitrary text for the property tests of text handling: any characters, with the tricky ones
of a test drawn more often, checked on a thousand fixed examples."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

THOROUGHLY = settings(
    max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def texts(tricky: str) -> st.SearchStrategy[str]:
    """Strings of up to 40 characters, any at all or one of ``tricky``."""
    return st.lists(st.one_of(st.sampled_from(tricky), st.characters()), max_size=40).map("".join)
