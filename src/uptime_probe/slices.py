"""Work on the event loop a piece at a time: a reload of 10,000 checks, not one long pause.

A component that applies a config check by check writes it as a generator that yields
after each piece (`Steps`): `run_all` does it all at once (start-up, tests), and
`run_in_slices` gives the loop back whenever a slice has taken SLICE_SECONDS, so runs'
timers, scrapes and /healthz wait at most that long. Applied whole, a reload of 10,000
checks held the loop for more than a second (docs/benchmarks.md, "Reloads").

Each step must be short: a step over a whole config (a comprehension over 10,000 checks
costs 2-6 ms) makes its slice that much longer. Write such a pass as a loop that yields.

Between slices other work runs: what a component changes must be consistent after each
piece (one check at a time), and what must change together is swapped in one piece.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")

Steps = Generator[None, None, T]

SLICE_SECONDS = 0.005
# Bare turns of the loop between slices. One is not enough: a timer that fell due during
# the slice fires at the start of the next turn, and what it wakes is queued behind the
# next slice (uvloop; the asyncio loop queues the timer's handle itself behind it, and
# what that wakes behind the slice after). Each empty turn costs microseconds; with one,
# a 1 ms timer waited two slices, 10 ms (bench/reload_pause.py).
_TURNS_BETWEEN_SLICES = 3


def run_all(steps: Steps[T]) -> T:
    """Every piece at once; what the generator returns."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


async def run_in_slices(steps: Steps[T], slice_seconds: float = SLICE_SECONDS) -> T:
    """Every piece, on the running loop, giving it back after each `slice_seconds` of work."""
    deadline = time.perf_counter() + slice_seconds
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if time.perf_counter() >= deadline:
            for _ in range(_TURNS_BETWEEN_SLICES):
                await asyncio.sleep(0)
            deadline = time.perf_counter() + slice_seconds
            # The young generations, collected here, within the slice's time: the
            # collector triggers on allocations minus deallocations, and a reload frees
            # the old config as it builds the new one, so on its own it waited while
            # 30,000 new objects gathered, then walked them all at once (6-11 ms).
            gc.collect(1)
