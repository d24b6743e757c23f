"""Counting instructions instead of time, for the benchmarks: callgrind's instrumentation
switched on for one block of a process that runs under
``valgrind --tool=callgrind --instr-atstart=no``, whose closing "Collected" line is then the
number of instructions that block took. Unlike time, the count does not depend on how much of
a core a shared or virtual machine gives the process from one minute to the next."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def instructions_counted(on: bool = True) -> Iterator[None]:
    """Callgrind's instrumentation switched on for the block (nothing happens if not ``on``)."""
    if not on:
        yield
        return
    _instrumentation("on")
    try:
        yield
    finally:
        _instrumentation("off")


def _instrumentation(state: str) -> None:
    control = ["callgrind_control", f"--instr={state}", str(os.getpid())]
    subprocess.run(control, check=True, capture_output=True)
