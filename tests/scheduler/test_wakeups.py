"""The scheduler's APScheduler wake-ups: never early, and one pass for many requests.

Both are what made the stock AsyncIOScheduler cost 211 µs a run on uvloop (docs/benchmarks.md):
its timer fired before the next job was due and spun, and each of a reload's add_job calls
woke it through call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop
from apscheduler.triggers.interval import IntervalTrigger

from uptime_probe.scheduler import _LoopScheduler

from .fakes import Harness, check_dict, plans_of, wait_until

MakeHarness = Callable[..., Harness]


def test_the_timer_never_fires_before_the_wait_on_uvloop() -> None:
    """uvloop rounds delays to whole ms from a clock read at the start of the iteration; a
    wake-up that comes early finds nothing due and re-arms, so it must not come early."""

    async def measure() -> list[float]:
        scheduler = _LoopScheduler()
        scheduler.start(paused=True)
        fired: list[float] = []
        scheduler._process_jobs = lambda: fired.append(time.perf_counter())  # type: ignore[method-assign]
        early: list[float] = []
        for wait in (0.0004, 0.0013, 0.0049, 0.0101):
            time.sleep(0.0007)  # a busy iteration: uvloop's cached clock is now stale
            armed = time.perf_counter()
            scheduler._start_timer(wait)
            count = len(fired)
            while len(fired) == count:
                await asyncio.sleep(0)
            early.append(wait - (fired[-1] - armed))
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
        return early

    early = uvloop.run(measure())
    assert all(e <= 0 for e in early), early


async def test_a_reload_of_many_checks_wakes_the_job_store_once(
    harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each add_job asks for a wake-up; 300 of them in one reload make one pass."""
    h = harness()
    h.scheduler.start()
    for _ in range(3):  # the start's own pass
        await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    hops = 0
    call_soon_threadsafe = loop.call_soon_threadsafe

    def counted(*args: Any, **kwargs: Any) -> asyncio.Handle:
        nonlocal hops
        hops += 1
        return call_soon_threadsafe(*args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    h.scheduler.apply(plans_of(*(check_dict(f"c{i:03d}", interval="1h") for i in range(300))))
    assert hops == 1
    apscheduler = h.scheduler._apscheduler
    await wait_until(lambda: not apscheduler._wakeup_pending, "the one pass asked for")
    assert len(apscheduler.get_jobs()) == 300


async def test_jobs_added_while_running_are_still_due_on_their_grid() -> None:
    """Coalescing wake-ups must not lose one: a job added to a running scheduler fires."""
    scheduler = _LoopScheduler()
    scheduler.start()
    fired = asyncio.Event()

    async def job() -> None:
        fired.set()

    scheduler.add_job(job, IntervalTrigger(seconds=0.05), id="j")
    await asyncio.wait_for(fired.wait(), timeout=10)
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0)
