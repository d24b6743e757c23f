"""The bounded parser: real feeds parse as they do in-process, and a parse that hangs, runs out of
memory or kills its process is stopped with a ParseError while the next parse works. The
stand-ins for a hostile parse are module-level functions, which a worker imports by name."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.models import ParsedFeed
from monitor.parse import parse_feed
from monitor.sandbox import BoundedParser, ParseLimits
from monitor.stories import text_signature

REAL = Path(__file__).parent / "data" / "feeds" / "real"
FEEDS = sorted(p for p in REAL.iterdir() if p.name != "SOURCES.tsv")
GOOD = REAL / "washingtonpost_wellness.xml"


class OddError(Exception):
    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} {second}")


def misbehaving_parse(
    data: bytes, *, headers: Mapping[str, str] | None = None, source: str = ""
) -> ParsedFeed:
    """parse_feed, unless ``data`` asks for trouble; every call writes its process id to the
    file named by the ``pid-file`` header, if there is one."""
    if headers and "pid-file" in headers:
        Path(headers["pid-file"]).write_text(str(os.getpid()))
    if data == b"hang":
        time.sleep(3600)
    if data == b"greedy":
        hoard = [bytearray(64 * 1024 * 1024) for _ in range(64)]  # 4 GB, 64 MB at a time
        return ParsedFeed(articles=(), title=str(len(hoard)))
    if data == b"crash":
        os._exit(3)
    if data == b"bug":
        raise KeyError("a bug in the parser")
    if data == b"odd":
        raise OddError("cannot", "be rebuilt")  # pickles, but cannot be unpickled

    return parse_feed(data, headers=headers, source=source)


def parse_beside_the_story_stage(
    data: bytes, *, headers: Mapping[str, str] | None = None, source: str = ""
) -> ParsedFeed:
    """parse_feed in a worker that loaded the story stage (rensa) with this module, before its
    memory was capped, as a worker whose parse function lives beside the daemon's code does."""
    assert "rensa" in sys.modules
    assert text_signature("title", " ".join(map(str, range(100)))) is not None
    return parse_feed(data, headers=headers, source=source)


@pytest.fixture
def parser() -> Iterator[BoundedParser]:
    with BoundedParser(ParseLimits(timeout=10, memory_mb=256), parse=misbehaving_parse) as bounded:
        yield bounded


def alive(pid: int) -> bool:
    """Whether a process is still running (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def worker_pid(parser: BoundedParser, tmp_path: Path) -> int:
    """The process that parses the next document (a good one)."""
    pid_file = tmp_path / "pid"
    parser.parse(GOOD.read_bytes(), headers={"pid-file": str(pid_file)})
    return int(pid_file.read_text())


@pytest.mark.parametrize("path", FEEDS, ids=lambda p: p.name)
def test_real_feeds_parse_as_they_do_in_process(path: Path) -> None:
    data = path.read_bytes()
    headers = {"content-type": "application/rss+xml"}
    try:
        expected: ParsedFeed | str = parse_feed(data, headers=headers, source="real")
    except ParseError as exc:
        expected = str(exc)

    with BoundedParser() as bounded:
        try:
            got: ParsedFeed | str = bounded.parse(data, headers=headers, source="real")
        except ParseError as exc:
            got = str(exc)

    assert got == expected


def test_workers_start_when_needed_and_are_reused(parser: BoundedParser, tmp_path: Path) -> None:
    first = worker_pid(parser, tmp_path)

    assert worker_pid(parser, tmp_path) == first != os.getpid()


def test_concurrent_parses_each_get_their_own_result(parser: BoundedParser) -> None:
    documents = FEEDS[:8]
    expected = [parse_feed(p.read_bytes(), source=p.name) for p in documents]

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: parser.parse(p.read_bytes(), source=p.name), documents))

    assert got == expected


def test_a_parse_that_hangs_is_stopped_at_the_deadline(tmp_path: Path) -> None:
    limits = ParseLimits(timeout=0.5)
    with BoundedParser(limits, parse=misbehaving_parse) as parser:
        worker_pid(parser, tmp_path)  # started: its start-up is not counted
        pid_file = tmp_path / "hung"
        started = time.monotonic()

        with pytest.raises(ParseError, match=r"^slow: parsing took longer than 0.5s; stopped$"):
            parser.parse(b"hang", headers={"pid-file": str(pid_file)}, source="slow")

        assert 0.5 <= time.monotonic() - started < 3
        assert not alive(int(pid_file.read_text()))
        assert parser.parse(GOOD.read_bytes()).articles


@pytest.mark.skipif(sys.platform != "linux", reason="the memory cap is set on Linux only")
def test_a_parse_that_needs_too_much_memory_is_stopped(
    parser: BoundedParser, tmp_path: Path
) -> None:
    pid_file = tmp_path / "greedy"

    with pytest.raises(ParseError, match=r"^greedy: parsing needed more than 256 MB; stopped$"):
        parser.parse(b"greedy", headers={"pid-file": str(pid_file)}, source="greedy")

    assert not alive(int(pid_file.read_text()))
    assert parser.parse(GOOD.read_bytes()).articles


@pytest.mark.skipif(sys.platform != "linux", reason="the memory cap is set on Linux only")
def test_the_story_stage_leaves_a_capped_worker_its_memory() -> None:
    """rensa's allocator reserves 1 GiB of address space when it loads, unless told less:
    more than a worker's whole cap, so every parse beside it would fail for want of memory."""
    limits = ParseLimits(timeout=10, memory_mb=256)
    with BoundedParser(limits, parse=parse_beside_the_story_stage) as bounded:
        assert bounded.parse(GOOD.read_bytes()).articles


def test_a_parse_that_ends_its_process_is_an_error(parser: BoundedParser) -> None:
    with pytest.raises(ParseError, match=r"^lost: the parsing process ended \(exit code 3\)"):
        parser.parse(b"crash", source="lost")

    assert parser.parse(GOOD.read_bytes()).articles


def test_errors_of_the_parser_come_back(parser: BoundedParser) -> None:
    with pytest.raises(ParseError, match=r"^notfeed: not an RSS, Atom or JSON feed"):
        parser.parse(b"<nothing/>", source="notfeed")
    with pytest.raises(KeyError, match="a bug in the parser") as bug:
        parser.parse(b"bug")

    assert "misbehaving_parse" in "".join(getattr(bug.value, "__notes__", []))


def test_close_stops_the_workers(tmp_path: Path) -> None:
    parser = BoundedParser(parse=misbehaving_parse)
    barrier = threading.Barrier(2)

    def parse_at_once(index: int) -> int:
        barrier.wait()
        return worker_pid(parser, tmp_path / str(index))

    for index in range(2):
        (tmp_path / str(index)).mkdir()
    with ThreadPoolExecutor(2) as pool:
        pids = set(pool.map(parse_at_once, range(2)))

    parser.close()

    assert pids and not any(alive(pid) for pid in pids)
    assert parser.parse(GOOD.read_bytes()).articles  # a closed parser starts afresh
    parser.close()


def test_an_error_that_cannot_come_back_does_not_leak_a_worker(parser: BoundedParser) -> None:
    for _ in range(3):
        with pytest.raises(ParseError, match=r"^odd: the parsing process ended"):
            parser.parse(b"odd", source="odd")
    assert parser.parse(GOOD.read_bytes()).articles
    assert len([c for c in multiprocessing.active_children() if c.is_alive()]) <= 1
