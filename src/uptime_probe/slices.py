"""Work on the event loop a piece at a time: a reload of 10,000 checks, not one long pause.

A component that applies a config check by check writes it as a generator that yields
after each piece (`Steps`): `run_all` does it all at once (start-up, tests), and
`run_in_slices` gives the loop back whenever a slice has taken SLICE_SECONDS, so runs'
timers, scrapes and /healthz wait at most that long. Applied whole, a reload of 10,000
checks held the loop for more than a second (docs/benchmarks.md, "Reloads").

Between slices other work runs: what a component changes must be consistent after each
piece (one check at a time), and what must change together is swapped in one piece.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")

Steps = Generator[None, None, T]

SLICE_SECONDS = 0.005


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
            await asyncio.sleep(0)
            deadline = time.perf_counter() + slice_seconds
