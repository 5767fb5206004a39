"""slices.py: work done all at once, or on the loop in slices that give it back."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from uptime_probe.slices import Steps, run_all, run_in_slices

PIECES = 40
PIECE_SECONDS = 0.001


def pieces(done: list[int]) -> Steps[str]:
    for i in range(PIECES):
        started = time.perf_counter()
        while time.perf_counter() - started < PIECE_SECONDS:  # a millisecond of CPU work
            pass
        done.append(i)
        yield
    return "applied"


def test_run_all_does_every_piece_and_returns_the_result() -> None:
    done: list[int] = []
    assert run_all(pieces(done)) == "applied"
    assert done == list(range(PIECES))


async def test_run_in_slices_gives_the_loop_back_between_slices() -> None:
    done: list[int] = []
    seen: list[int] = []  # how many pieces were done each time another task got the loop
    stop = asyncio.Event()

    async def other_task() -> None:
        while not stop.is_set():
            seen.append(len(done))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    result = await run_in_slices(pieces(done), slice_seconds=4 * PIECE_SECONDS)
    stop.set()
    await watcher
    assert result == "applied"
    assert done == list(range(PIECES))
    during = sorted(set(n for n in seen if 0 < n < PIECES))
    assert len(during) >= PIECES // 8  # the loop ran between slices, all along
    # and no slice was much longer than asked: at most 4 pieces, plus the one that crossed
    gaps = [b - a for a, b in zip([0, *during], [*during, PIECES], strict=True)]
    assert max(gaps) <= 5


RUNNERS: dict[str, Callable[[Coroutine[Any, Any, list[str]]], list[str]]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


@pytest.mark.parametrize("loop", RUNNERS)
def test_a_timer_due_during_a_slice_runs_before_the_next_slice(loop: str) -> None:
    # With one bare turn between slices, a 1 ms timer that fell due during a slice woke
    # its task only after the next slice as well (two slices late on uvloop, three on
    # asyncio's loop): the reload pause was twice the slice (docs/benchmarks.md).
    order: list[str] = []
    timer_seconds = 0.001

    def slow_pieces() -> Steps[None]:
        for i in range(3):
            due = time.monotonic() + 3 * timer_seconds
            while time.monotonic() < due:  # past the timer's due time, whatever the clock
                pass
            order.append(f"slice {i}")
            yield

    async def main() -> list[str]:
        async def ticker() -> None:
            await asyncio.sleep(timer_seconds)
            order.append("timer")

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)  # the ticker's timer is armed
        await run_in_slices(slow_pieces(), slice_seconds=0.0)  # each piece a slice
        await task
        return order

    assert RUNNERS[loop](main()) == ["slice 0", "timer", "slice 1", "slice 2"]


async def test_the_young_generations_are_collected_between_slices() -> None:
    # A reload frees the old config as it builds the new one, so the collector's count
    # (allocations minus deallocations) stayed low while young objects gathered; its
    # first pass then took 6-11 ms at 10,000 checks. Collected at each slice's start, a
    # pass sees one slice's objects.
    young: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            young.append(info["generation"])

    def replacing(kept: list[object]) -> Steps[None]:
        for i in range(len(kept)):
            kept[i] = [i]  # the old one freed as the new one is made
            yield

    kept: list[object] = [[i] for i in range(1000)]
    gc.callbacks.append(record)
    try:
        await run_in_slices(replacing(kept), slice_seconds=0.0)
    finally:
        gc.callbacks.remove(record)
    assert young.count(1) >= len(kept) - 1  # every slice but the first began with one
