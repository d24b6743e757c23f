"""The benchmark scripts still run and print whole figures.

Benchmarks fail no target (bench/README.md), so nothing else would notice when a change to the
code they drive breaks them. Each is run here at its smallest size; only what it prints is
checked, never how fast anything was.
"""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO

BENCH = REPO / "bench"
_NUMBER = r"([\d,]+(?:\.\d+)?)"


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def test_match_compiles_every_rule_and_prints_a_row_for_each_set_of_texts() -> None:
    out = _run("match", "--sizes", "1000")
    assert re.search(r"^rules: (\d+) of \1 compile$", out, re.MULTILINE), out
    row = re.compile(
        rf"^\s*(on-topic|stream)\s+{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}×"
        rf"\s+{_NUMBER}$",
        re.MULTILINE,
    )
    rows = {m[0]: [_number(x) for x in m[1:]] for m in row.findall(out)}
    assert set(rows) == {"on-topic", "stream"}, out
    for aliases, _, ours, baseline, ratio, _ in rows.values():
        assert aliases >= 1000
        assert ours > 0 and baseline > 0
        assert abs(ratio - ours / baseline) <= 1 + 0.01 * ratio
    # the on-topic texts are dense with the seed watchlist's names; the stream is not
    assert rows["on-topic"][5] > 10 * rows["stream"][5]


def test_match_floor_adds_up_the_passes_in_c() -> None:
    out = _run("match", "--sizes", "1000", "--floor", "stream")
    passes = ("fold", "word-spacing", "automaton (UTF-8 and Aho–Corasick)", "word filter (RE2)")
    took = [_figure(out, name) for name in passes]
    assert all(t > 0 for t in took)
    assert abs(sum(took) - _figure(out, "passes in C, in all")) <= 0.3
    assert _figure(out, "matching and rules") > 0
    assert re.search(r"\(passes in C: \d+%\)$", out, re.MULTILINE), out


def _figure(out: str, label: str) -> float:
    """The figure printed after ``label`` at the start of a line of ``out``."""
    found = re.search(rf"^  {re.escape(label)}\s+{_NUMBER}\b", out, re.MULTILINE)
    assert found, f"no {label!r} in:\n{out}"
    return _number(found[1])


def test_stories_prints_a_row_for_the_log_it_builds() -> None:
    out = _run("stories", "--sizes", "1000", "--repeat", "1")
    row = re.search(
        rf"^\s*1,000\s+{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}×\s+{_NUMBER}$",
        out,
        re.MULTILINE,
    )
    assert row, out
    filled, best, median, baseline, _, open_stories = (_number(x) for x in row.groups())
    assert min(filled, best, median, baseline) > 0
    assert open_stories > 0


def test_the_shipped_story_background_is_what_the_script_builds() -> None:
    """monitor/story_background.json is built by bench/story-background from the real texts
    with the seed watchlist: a change to either that alters it must rebuild the file."""
    assert _run("story-background", "--check").strip() == "monitor/story_background.json: the same"
