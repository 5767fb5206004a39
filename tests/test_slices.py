"""slices.py: work done all at once, or on the loop in slices that give it back."""

from __future__ import annotations

import asyncio
import time

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
