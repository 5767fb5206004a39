"""The scheduler with a fake `run`: spread, grid, overlap, cap, isolation, reload diff, stop."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import pytest

from uptime_probe.scheduler import ScheduleChange, planned_start, start_offset
from uptime_probe.slices import run_all

from .fakes import Harness, check_dict, plans_of, wait_until

MakeHarness = Callable[..., Harness]


# --- start_offset and planned_start: pure --------------------------------------------------


@pytest.mark.parametrize("interval", [0.5, 30.0, 3600.0])
def test_start_offsets_spread_over_the_interval(interval: float) -> None:
    """1,000 checks: no 1% slice of the interval holds more than 2.5x its share, and no
    2 s (at 60 s) window more than ~2x: a restart never fires them in one burst."""
    offsets = sorted(start_offset(f"check-{i:04d}", interval) for i in range(1000))
    assert all(0 <= o < interval for o in offsets)
    per_bucket = Counter(math.floor(o / interval * 100) for o in offsets)
    assert max(per_bucket.values()) <= 25  # the share is 10
    assert len(per_bucket) == 100  # and no slice is empty either
    window = interval * 2 / 60
    busiest = max(bisect.bisect_right(offsets, o + window) - i for i, o in enumerate(offsets))
    assert busiest <= 60  # the share is 33
    assert len(set(offsets)) == 1000


def test_start_offset_is_the_same_in_every_process() -> None:
    """A stable hash, not Python's per-process `hash()`: restarts keep each check's slot."""
    names = [f"check-{i}" for i in range(50)]
    mine = [start_offset(n, 60.0) for n in names]
    code = (
        "import json, sys; from uptime_probe.scheduler import start_offset; "
        "print(json.dumps([start_offset(n, 60.0) for n in json.loads(sys.argv[1])]))"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(names)],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        assert json.loads(out.stdout) == mine
    # Proportional to the interval: the same place in any interval.
    assert start_offset("chat_load", 120.0) == pytest.approx(2 * start_offset("chat_load", 60.0))


@pytest.mark.parametrize(
    ("now", "interval", "offset", "expected"),
    [
        (100.0, 10.0, 3.0, 93.0),
        (103.0, 10.0, 3.0, 103.0),  # exactly on a tick: that tick
        (102.999, 10.0, 3.0, 93.0),
        (112.5, 10.0, 3.0, 103.0),
        (3.0, 10.0, 3.0, 3.0),
        (0.0, 10.0, 3.0, -7.0),
        (1_700_000_000.25, 0.5, 0.2, 1_699_999_999.7),
    ],
)
def test_planned_start(now: float, interval: float, offset: float, expected: float) -> None:
    planned = planned_start(now, interval, offset)
    assert planned == pytest.approx(expected)
    assert planned <= now < planned + interval


# --- the scheduler running, with a fake run ---------------------------------------------------


async def test_runs_fire_on_their_grid(harness: MakeHarness) -> None:
    """Each check's job sits on offset + k * interval; runs start at those ticks, and the
    lag is measured from them."""
    h = harness()
    h.start(plans_of("a", "b", "c"))
    for name in ("a", "b", "c"):
        fire_at = h.scheduler.next_run(name)
        assert fire_at is not None
        off_grid = (fire_at - start_offset(name, 0.3)) % 0.3
        assert min(off_grid, 0.3 - off_grid) < 1e-6, name
    await wait_until(lambda: all(h.run.runs(n) >= 3 for n in "abc"), "3 runs each")
    for name in ("a", "b", "c"):
        for started in h.run.starts[name]:
            late = started - planned_start(started, 0.3, start_offset(name, 0.3))
            assert late < 0.25, f"{name} ran {late:.3f}s after its tick"
    assert len(h.lags) >= 9
    assert all(0 <= lag < 0.25 for lag in h.lags), h.lags
    # Each finished run is handed on with the lag measured for it.
    handed_on = [lag for _result, lag in h.results.runs]
    assert len(handed_on) >= 9
    assert set(handed_on) <= set(h.lags)


async def test_overlapping_run_is_skipped_and_counted(harness: MakeHarness) -> None:
    h = harness()
    h.run.gates["slow"] = gate = asyncio.Event()
    h.start(plans_of("slow"))
    await wait_until(lambda: h.skips.count("slow") >= 2, "two skipped runs")
    assert h.run.runs("slow") == 1  # still the first run: the overlapping ones never started
    assert set(h.skips) == {"slow"}
    gate.set()
    await wait_until(lambda: h.run.runs("slow") >= 2, "a new run once the first finished")
    assert h.run.max_active_per_check["slow"] == 1


async def test_concurrency_cap_bounds_runs_in_flight(harness: MakeHarness) -> None:
    h = harness(max_concurrency=2)
    plans = plans_of(*(f"c{i}" for i in range(5)))
    gate = asyncio.Event()
    for name in plans:
        h.run.gates[name] = gate
    h.start(plans)
    # Every check fired (its task exists), but only two got past the semaphore.
    await wait_until(lambda: len(h.scheduler.in_flight) == 5, "all five checks in flight")
    await wait_until(lambda: h.run.active_total == 2, "two runs active")
    assert h.run.max_active_total == 2
    gate.set()
    await wait_until(lambda: all(h.run.finished[n] >= 1 for n in plans), "every check ran")
    assert h.run.max_active_total == 2  # the queued ones ran as slots freed, never above it


async def test_hanging_run_does_not_delay_other_checks(harness: MakeHarness) -> None:
    h = harness()
    h.run.gates["hangs"] = asyncio.Event()  # never set: hangs until cancelled at teardown
    h.start(
        plans_of(
            check_dict("hangs", interval="200ms", timeout="150ms"),
            check_dict("healthy", interval="200ms", timeout="150ms"),
        )
    )
    await wait_until(lambda: h.run.runs("hangs") == 1, "the hanging run")
    before = h.run.runs("healthy")
    await wait_until(lambda: h.run.runs("healthy") >= before + 8, "eight more healthy runs")
    gaps = [b - a for a, b in itertools.pairwise(h.run.starts["healthy"][before:])]
    assert max(gaps) < 0.2 + 0.6, gaps  # on its own cadence, not waiting for `hangs`
    assert h.run.runs("hangs") == 1
    assert "hangs" in h.skips
    assert len(h.results.of("healthy")) >= 7


async def test_apply_keeps_unchanged_checks_and_diffs_the_rest(harness: MakeHarness) -> None:
    h = harness()
    h.start(plans_of("keep", "gone"))
    await wait_until(
        lambda: len(h.results.of("keep")) >= 2 and len(h.results.of("gone")) >= 1, "runs of both"
    )
    # Peeks at the check's timer: an unchanged check must keep the very same one (its timing).
    timer = h.scheduler._timers["keep"]
    next_run = h.scheduler.next_run("keep")
    change = h.scheduler.apply(plans_of("keep", "new"))  # freshly compiled, equal config
    assert change == ScheduleChange(added=("new",), removed=("gone",), updated=())
    assert h.scheduler._timers["keep"] is timer
    assert h.scheduler.next_run("keep") == next_run
    assert h.scheduler.next_run("gone") is None
    assert set(h.scheduler.checks) == {"keep", "new"}
    gone_runs = h.run.runs("gone")
    kept = len(h.results.of("keep"))
    await wait_until(
        lambda: len(h.results.of("new")) >= 2 and len(h.results.of("keep")) >= kept + 2,
        "the new check running and the kept one going on",
    )
    assert h.run.runs("gone") == gone_runs


async def test_apply_reports_updates_and_reschedules_a_new_interval(harness: MakeHarness) -> None:
    h = harness()
    h.start(plans_of("a", "b"))
    timer_a = h.scheduler._timers["a"]
    timer_b = h.scheduler._timers["b"]
    change = h.scheduler.apply(
        plans_of(check_dict("a", timeout="100ms"), check_dict("b", interval="1s"))
    )
    assert change == ScheduleChange(added=(), removed=(), updated=("a", "b"))
    assert h.scheduler._timers["a"] is timer_a  # same interval: same timing
    assert h.scheduler.checks["a"].timeout == pytest.approx(0.1)  # but the new plan runs
    new_b = h.scheduler._timers["b"]
    assert new_b is not timer_b
    assert timer_b.handle is None  # the old tick will not fire
    assert new_b.interval == pytest.approx(1.0)
    # Still on b's grid, now at the new interval.
    first_b = h.scheduler.next_run("b")
    assert first_b is not None
    off_grid = (first_b - start_offset("b", 1.0)) % 1.0
    assert min(off_grid, 1.0 - off_grid) < 1e-6


async def test_apply_in_steps_moves_one_check_at_a_time(harness: MakeHarness) -> None:
    """A reload applies the schedule in slices (slices.py) with runs going on between them:
    after each step the check done has its new timer, a removed one none, and a check not
    done yet keeps running on its old timer."""
    h = harness()
    h.start(plans_of("a", "b", "gone"))
    old_b = h.scheduler._timers["b"]
    steps = h.scheduler.apply_steps(plans_of(check_dict("a", interval="1s"), "b"))
    for _ in range(3 + 2):  # what was removed and added, found a check a step
        next(steps)
    assert "gone" in h.scheduler.checks  # nothing changed yet
    next(steps)  # the removed check
    assert h.scheduler.next_run("gone") is None
    gone_runs = h.run.runs("gone")
    assert "gone" not in h.scheduler.checks
    assert h.scheduler._timers["a"].interval == pytest.approx(0.3)  # not reached yet
    next(steps)  # a
    assert h.scheduler._timers["a"].interval == pytest.approx(1.0)
    first_a = h.scheduler.next_run("a")
    assert first_a is not None
    off_grid = (first_a - start_offset("a", 1.0)) % 1.0
    assert min(off_grid, 1.0 - off_grid) < 1e-6  # armed, on a's grid at the new interval
    runs_b = len(h.results.of("b"))
    await wait_until(lambda: len(h.results.of("b")) >= runs_b + 2, "b running mid-apply")
    assert h.run.runs("gone") == gone_runs  # nothing of it started since its step
    change = run_all(steps)
    assert change == ScheduleChange(added=(), removed=("gone",), updated=("a",))
    assert h.scheduler._timers["b"] is old_b  # unchanged: the same timing throughout


async def test_result_of_a_removed_check_is_dropped(harness: MakeHarness) -> None:
    h = harness()
    h.run.gates["x"] = gate = asyncio.Event()
    h.start(plans_of("x", "y"))
    await wait_until(lambda: h.run.active["x"] == 1, "x in flight")
    task = h.scheduler.in_flight["x"]
    h.scheduler.apply(plans_of("y"))
    gate.set()
    await asyncio.wait_for(task, timeout=10)  # ends cleanly: no error for the missing check
    assert h.run.finished["x"] == 1
    assert "x" not in h.scheduler.in_flight
    assert h.results.of("x") == []


async def test_stop_drains_then_cancels(harness: MakeHarness) -> None:
    h = harness()
    h.run.delays["finishes"] = 0.3
    h.run.gates["hangs"] = asyncio.Event()
    h.start(plans_of("finishes", "hangs"))
    await wait_until(
        lambda: h.run.active["finishes"] == 1 and h.run.active["hangs"] == 1, "both in flight"
    )
    began = time.monotonic()
    cancelled = await h.scheduler.stop(grace=1.0)
    took = time.monotonic() - began
    assert cancelled == 1
    assert h.run.cancelled == Counter({"hangs": 1})
    assert h.run.finished["finishes"] == 1
    assert len(h.results.of("finishes")) == 1  # the drained run's result was delivered
    assert 0.95 <= took < 1.0 + 2.0
    assert h.scheduler.in_flight == {}
    assert not h.scheduler.running
    runs = sum(len(s) for s in h.run.starts.values())
    await asyncio.sleep(0.7)  # an observation window: over two intervals, nothing may start
    assert sum(len(s) for s in h.run.starts.values()) == runs


async def test_stop_returns_as_soon_as_runs_finish(harness: MakeHarness) -> None:
    h = harness()
    h.run.delays["short"] = 0.2
    h.start(plans_of("short"))
    await wait_until(lambda: h.run.active["short"] == 1, "a run in flight")
    began = time.monotonic()
    assert await h.scheduler.stop(grace=10.0) == 0
    assert time.monotonic() - began < 5.0  # far under the grace: it did not wait it out
    assert len(h.results.of("short")) == 1


async def test_stop_starts_no_run_queued_behind_the_cap(harness: MakeHarness) -> None:
    """Stop means no new runs: one waiting for a concurrency slot never starts."""
    h = harness(max_concurrency=1)
    h.run.delays["a"] = h.run.delays["b"] = 0.5
    h.start(plans_of("a", "b"))
    await wait_until(lambda: len(h.scheduler.in_flight) == 2, "one running, one queued")
    running = next(name for name in ("a", "b") if h.run.active[name])
    queued = "b" if running == "a" else "a"
    before = h.run.runs(queued)
    assert await h.scheduler.stop(grace=5.0) == 0
    assert h.run.runs(queued) == before
    assert h.run.finished[running] >= 1
