"""Parsing that can be stopped: each feed is parsed in a worker process with a deadline and, on
Linux, a cap on its memory.

A feed built to make a parser run for minutes or take gigabytes cannot be stopped in a thread.
``BoundedParser`` hands each document to a worker process (started when first needed, then kept
for the next documents, one per poll running at once); a worker still parsing at the deadline is
killed, and one that runs out of memory ends itself, so the next parse starts a fresh one. Workers
are started by a small server process (``forkserver``) that has the parser imported already, so
none is forked from the multi-threaded daemon and a replacement starts in milliseconds. A worker
ignores SIGINT, so Ctrl-C in a terminal reaches only the daemon, which stops its workers on its
way out (``close``).

Every way a parse can fail is a ``ParseError`` naming the source; an unexpected error in the
parser is raised again here, with the worker's traceback as a note.

This module knows nothing about HTTP or the database.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import traceback
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Protocol

from monitor.errors import ParseError
from monitor.models import ParsedFeed
from monitor.parse import parse_feed

if sys.platform == "linux":
    import resource

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

    WorkerContext = ForkServerContext | SpawnContext

_START_TIMEOUT = 60.0  # seconds a new worker may take to be ready; not counted in the deadline
_STOP_TIMEOUT = 5.0  # seconds to wait for a killed worker to be gone
_READY = "ready"


@dataclass(frozen=True)
class ParseLimits:
    """How long and how much memory one document may take to parse. Every default lives here."""

    timeout: float = 10.0  # seconds for one document, start-up of its worker not counted
    memory_mb: int = 512  # address space of a worker process, in MiB (enforced on Linux only)


class ParseFunction(Protocol):
    """What a worker runs: ``monitor.parse.parse_feed``, or a stand-in in tests. It must be a
    module-level function, so that a worker can import it by name."""

    def __call__(
        self, data: bytes, *, headers: Mapping[str, str] | None = None, source: str = ""
    ) -> ParsedFeed: ...


@dataclass(frozen=True)
class _Reply:
    """What came back from a worker for one document."""

    feed: ParsedFeed | None = None
    error: Exception | None = None  # raised by the parse function
    out_of_memory: bool = False  # the worker ends after it
    ended: bool = False  # set on this side: the worker ended without a reply


class BoundedParser:
    """Parses feeds in worker processes it owns; thread-safe. Call ``close`` (or use it as a
    context manager) to stop the workers."""

    def __init__(self, limits: ParseLimits | None = None, *, parse: ParseFunction = parse_feed):
        self.limits = limits or ParseLimits()
        self._parse = parse
        self._context = _worker_context()
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        weakref.finalize(self, _stop_all, self._workers)  # a parser dropped without close()

    def parse(
        self, data: bytes, *, headers: Mapping[str, str] | None = None, source: str = ""
    ) -> ParsedFeed:
        """What ``parse`` makes of ``data``, or ``ParseError`` if it overran its limits."""
        worker = self._take(source)
        reply = worker.run((data, dict(headers or {}), source), self.limits.timeout)
        if reply is None or reply.out_of_memory or reply.ended:
            reason = self._failure(worker, reply)
            self._discard(worker)
            raise _error(source, reason)
        self._release(worker)
        if reply.error is not None:
            raise reply.error
        assert reply.feed is not None
        return reply.feed

    def close(self) -> None:
        """Stop every worker; a later ``parse`` starts new ones."""
        with self._lock:
            self._idle.clear()
            workers = list(self._workers)
            self._workers.clear()
        for worker in workers:
            worker.stop()

    def __enter__(self) -> BoundedParser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _take(self, source: str) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        memory = self.limits.memory_mb * 1024 * 1024
        worker = _Worker(self._context, self._parse, memory)
        with self._lock:
            self._workers.add(worker)
        if not worker.wait_ready(_START_TIMEOUT):
            reason = f"the parsing process did not start ({worker.end_reason()})"
            self._discard(worker)
            raise _error(source, reason)
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._workers:  # not stopped by close() meanwhile
                self._idle.append(worker)

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._workers.discard(worker)
        worker.stop()

    def _failure(self, worker: _Worker, reply: _Reply | None) -> str:
        if reply is None:
            return f"parsing took longer than {self.limits.timeout:g}s; stopped"
        if reply.out_of_memory:
            return f"parsing needed more than {self.limits.memory_mb} MB; stopped"
        ended = f"the parsing process ended ({worker.end_reason()})"
        if worker.killed():  # by C code out of memory, or by the system's OOM killer
            return f"{ended}; it may have needed more than {self.limits.memory_mb} MB"
        return ended


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, context: WorkerContext, parse: ParseFunction, memory_bytes: int) -> None:
        self._connection, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, parse, memory_bytes), name="monitor-parse", daemon=True
        )
        self._process.start()
        child.close()

    def wait_ready(self, timeout: float) -> bool:
        try:
            return bool(self._connection.poll(timeout)) and self._connection.recv() == _READY
        except (EOFError, OSError):
            return False

    def run(self, job: tuple[bytes, dict[str, str], str], timeout: float) -> _Reply | None:
        """The worker's reply, or None if it did not answer in time."""
        try:
            self._connection.send(job)
            if not self._connection.poll(timeout):
                return None
            reply = self._connection.recv()
        except Exception:  # the worker died, or sent what cannot be read back (unpicklable)
            return _Reply(ended=True)
        return reply if isinstance(reply, _Reply) else _Reply(ended=True)

    def end_reason(self) -> str:
        self._process.join(_STOP_TIMEOUT)
        code = self._process.exitcode
        if code is None:
            return "no answer"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def killed(self) -> bool:
        return (self._process.exitcode or 0) < 0

    def stop(self) -> None:
        self._connection.close()
        if self._process.is_alive():
            self._process.kill()
        self._process.join(_STOP_TIMEOUT)


def _stop_all(workers: set[_Worker]) -> None:
    while workers:
        workers.pop().stop()


def _worker_context() -> WorkerContext:
    """A fork server where there is one (never a fork of the threaded daemon), else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["monitor.parse"])  # takes effect if the server is not up yet
    return context


# In the worker -------------------------------------------------------------------------------


def _serve(connection: Connection, parse: ParseFunction, memory_bytes: int) -> None:
    """Parse documents from ``connection`` until it closes, or until memory ran out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _cap_memory(memory_bytes)
    connection.send(_READY)
    while True:
        try:
            data, headers, source = connection.recv()
        except EOFError:
            return
        reply = _parse_one(parse, data, headers, source)
        _send(connection, reply)
        if reply.out_of_memory:
            return


def _parse_one(parse: ParseFunction, data: bytes, headers: dict[str, str], source: str) -> _Reply:
    try:
        return _Reply(feed=parse(data, headers=headers, source=source))
    except MemoryError:
        return _Reply(out_of_memory=True)
    except ParseError as exc:
        return _Reply(error=exc)
    except Exception as exc:  # a bug in the parser: raised again in the daemon, traceback kept
        exc.add_note("In the parsing process:\n" + "".join(traceback.format_exception(exc)))
        return _Reply(error=exc)


def _send(connection: Connection, reply: _Reply) -> None:
    try:
        connection.send(reply)
    except Exception as exc:  # an error that cannot be pickled: send its description
        what = f"{type(reply.error).__name__}: {reply.error}" if reply.error else "the result"
        connection.send(_Reply(error=RuntimeError(f"cannot send {what} ({exc})")))


def _cap_memory(memory_bytes: int) -> None:
    if sys.platform != "linux":
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _error(source: str, reason: str) -> ParseError:
    return ParseError(f"{source}: {reason}" if source else reason)
