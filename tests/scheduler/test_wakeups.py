"""The scheduler's per-check timers: never early, nothing per check on a reload, a tick each.

An early wake-up (uvloop rounds delays to whole ms from a clock read once per iteration)
finds its tick not yet due and must re-arm; a reload of many checks must not wake the loop
through its wake-up descriptor once per check; and a check armed on a running scheduler
still fires on its grid.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from uptime_probe.scheduler import planned_start, start_offset

from .fakes import FakeRun, Harness, build_harness, check_dict, plans_of, wait_until

MakeHarness = Callable[..., Harness]


def test_a_tick_never_starts_a_run_before_its_time_on_uvloop() -> None:
    """Ticks whose runs would start before their planned time are re-armed, not run: every
    run starts at or after its grid tick, even after busy iterations left uvloop's clock stale."""

    async def measure() -> list[float]:
        h = build_harness(FakeRun())
        # A long interval next to the busy iterations: an early run shows as late by almost
        # a whole interval, which no loaded machine makes an on-time run.
        h.start(
            plans_of(*(check_dict(f"c{i}", interval="250ms", timeout="40ms") for i in range(5)))
        )
        for _ in range(200):
            time.sleep(0.0007)  # a busy iteration: uvloop's cached clock is now stale
            await asyncio.sleep(0.003)
        await h.scheduler.stop(1.0)
        return [
            started - planned_start(started, 0.25, start_offset(name, 0.25))
            for name, starts in h.run.starts.items()
            for started in starts
        ]

    lateness = uvloop.run(measure())
    assert len(lateness) >= 10
    # A run that started early would sit just before the next tick: late by almost a whole
    # interval. On time, every run is a little after its tick.
    assert all(0 <= late < 0.24 for late in lateness), lateness


async def test_a_reload_of_many_checks_never_wakes_the_loop_per_check(
    harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 checks added to a running scheduler arm 300 timers and nothing else: no
    thread-safe wake-up (a write to the loop's descriptor) per check."""
    h = harness()
    h.scheduler.start()
    loop = asyncio.get_running_loop()
    hops = 0
    call_soon_threadsafe = loop.call_soon_threadsafe

    def counted(*args: Any, **kwargs: Any) -> asyncio.Handle:
        nonlocal hops
        hops += 1
        return call_soon_threadsafe(*args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    h.scheduler.apply(plans_of(*(check_dict(f"c{i:03d}", interval="1h") for i in range(300))))
    assert hops == 0
    now = time.time()
    for i in range(300):
        due = h.scheduler.next_run(f"c{i:03d}")
        assert due is not None
        assert now - 1 <= due < now + 3600


async def test_checks_added_while_running_are_due_on_their_grid(harness: MakeHarness) -> None:
    h = harness()
    h.scheduler.start()
    h.scheduler.apply(plans_of(check_dict("late", interval="50ms", timeout="40ms")))
    await wait_until(lambda: h.run.runs("late") >= 2, "two runs of the check added late")
    for started in h.run.starts["late"]:
        late = started - planned_start(started, 0.05, start_offset("late", 0.05))
        assert 0 <= late < 0.04
