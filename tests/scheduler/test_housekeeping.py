"""The daemon's upkeep on APScheduler: its timer never early, jobs never overlapping themselves.

A stock AsyncIOScheduler's timer fired before its job was due on uvloop, found nothing to
run and re-armed, again and again: on a quiet daemon every spurious wake-up is CPU.
"""

from __future__ import annotations

import asyncio
import time

import uvloop

from uptime_probe.housekeeping import Housekeeping, _LoopScheduler


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


async def test_a_job_runs_every_period_and_never_overlaps_itself() -> None:
    housekeeping = Housekeeping()
    active = 0
    most = 0
    runs = 0
    release = asyncio.Event()

    async def job() -> None:
        nonlocal active, most, runs
        active += 1
        most = max(most, active)
        runs += 1
        try:
            if runs == 1:
                await release.wait()  # the first run outlasts several periods
        finally:
            active -= 1

    housekeeping.every(0.05, "job", job)
    housekeeping.start()
    deadline = time.monotonic() + 10
    while runs < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # four periods while the first run holds on
    assert runs == 1
    release.set()
    while runs < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert runs >= 3
    assert most == 1
    await housekeeping.stop()
    after = runs
    await asyncio.sleep(0.15)  # an observation window of three periods: nothing runs
    assert runs == after


async def test_the_same_period_again_keeps_the_job() -> None:
    """A reload re-registers its jobs: an unchanged period must not restart the count."""
    housekeeping = Housekeeping()
    calls = 0

    async def job() -> None:
        nonlocal calls
        calls += 1

    housekeeping.every(60, "job", job)
    housekeeping.start()
    job_before = housekeeping._apscheduler.get_job("job")
    housekeeping.every(60, "job", job)
    assert housekeeping._apscheduler.get_job("job") is job_before
    housekeeping.every(30, "job", job)
    assert housekeeping._apscheduler.get_job("job").trigger.interval.total_seconds() == 30
    await housekeeping.stop()
