"""Runs each check at its interval: spread starts, one run per check in flight, a global cap.

Each check has its own loop timer (`loop.call_later`) armed for its next tick of its grid
(a stable offset + k * interval); when it fires it re-arms for the following tick and
starts our run task. Overlap is skipped and counted here, the concurrency cap is
`RunSlots`, and stop drains our in-flight set before cancelling what is left.

Why not APScheduler jobs, the project's scheduling library, for the runs: a due job went
through APScheduler's job store, its trigger's datetime arithmetic, its executor's
bookkeeping and a task of its own before reaching ours, about 106 µs per run
(bench/micro.py's `scheduler_cost`, docs/benchmarks.md); one timer per check costs a
timer handle and our task. APScheduler still runs the daemon's housekeeping (`housekeeping.py`),
periodic jobs where its coalescing and single-instance rules are what is wanted
and a few wake-ups a minute cost nothing.

It schedules and runs, nothing more: each finished run goes to `on_result` with its
schedule lag (app.py hands it to `state.checks.CheckStates`, which keeps the states).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from uptime_probe.probe import CheckPlan, CheckResult, run_check
from uptime_probe.slices import Steps, run_all

log = structlog.get_logger("uptime_probe.scheduler")


def timer_slack(loop: asyncio.AbstractEventLoop) -> float:
    """How early a timer of `loop` may fire. asyncio's own loop reads a precise clock when it
    arms and runs timers; uvloop rounds a delay to whole milliseconds from a clock it reads
    once per iteration, so its timers can fire up to 1.5 ms early
    (tests/scheduler/test_wakeups.py)."""
    return 0.0 if isinstance(loop, asyncio.BaseEventLoop) else 0.0015


RunCheck = Callable[[CheckPlan], Awaitable[CheckResult]]
# A finished run and its schedule lag (seconds late); called on the loop, must not block.
OnResult = Callable[[CheckResult, float], None]


def start_offset(name: str, interval: float) -> float:
    """Where in its interval a check starts: a stable hash of its name, so restarts and
    1,000 checks spread the same way every time."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


def planned_start(now: float, interval: float, offset: float) -> float:
    """The latest tick of the check's grid at or before `now` (epoch seconds)."""
    return math.floor((now - offset) / interval) * interval + offset


class RunSlots:
    """The concurrency cap: a counting semaphore whose waiters go cheapest first.

    With FIFO waiters (asyncio.Semaphore), an overloaded daemon makes a healthy check wait
    behind one queued run of every hanging check: 2,000 checks of a hanging target under a
    cap of 200 delayed a 10 ms check by 10 s. Here a waiter's `cost` (its check's last run
    duration) orders the queue, ties by arrival: quick checks keep their schedule, and slow
    ones share the slots left, in turn. Nothing is lost; the order only matters when full.

    Every `FAIR_SHARE_EVERY`-th slot handed to a waiter goes to the one waiting longest,
    whatever its cost: when quick checks alone fill the daemon, cheapest-first never gets
    to the others (offered 3,000 quick runs a second, a daemon doing 1,600 never ran 190
    checks, which had no duration yet and so queued at their whole timeout). One grant in
    16 is all a quick check gives up.
    """

    FAIR_SHARE_EVERY = 16

    def __init__(self, value: int) -> None:
        self._free = value
        # Every waiter is in both queues; whichever serves it first leaves a done future
        # in the other, dropped when it comes to the top.
        self._by_cost: list[tuple[float, int, asyncio.Future[None]]] = []
        self._by_arrival: list[tuple[int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()
        self._grants = 0

    def _drop_abandoned(self) -> None:
        while self._by_cost and self._by_cost[0][2].done():
            heapq.heappop(self._by_cost)
        while self._by_arrival and self._by_arrival[0][1].done():
            heapq.heappop(self._by_arrival)

    async def acquire(self, cost: float) -> None:
        self._drop_abandoned()
        if self._free > 0 and not self._by_cost:
            self._free -= 1
            return
        granted = asyncio.get_running_loop().create_future()
        arrival = next(self._arrival)
        heapq.heappush(self._by_cost, (cost, arrival, granted))
        heapq.heappush(self._by_arrival, (arrival, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # handed a slot as it was cancelled: pass it on
            raise

    def release(self) -> None:
        self._drop_abandoned()
        if not self._by_cost:
            self._free += 1
            return
        self._grants += 1
        if self._grants % self.FAIR_SHARE_EVERY == 0:
            _arrival, waiter = heapq.heappop(self._by_arrival)
        else:
            _cost, _arrival, waiter = heapq.heappop(self._by_cost)
        waiter.set_result(None)


class _Timer:
    """One check's place on its grid and the loop timer armed for its next tick."""

    __slots__ = ("due", "handle", "interval", "offset")

    def __init__(self, interval: float, offset: float) -> None:
        self.interval = interval
        self.offset = offset
        self.due = 0.0  # epoch seconds of the next tick
        self.handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    updated: tuple[str, ...]


class Scheduler:
    def __init__(
        self,
        *,
        on_result: OnResult,
        max_concurrency: int,
        observe_lag: Callable[[float], None],
        on_skip: Callable[[str], None],
        run: RunCheck = run_check,
    ) -> None:
        self._on_result = on_result
        self._observe_lag = observe_lag
        self._on_skip = on_skip
        self._run = run
        self._slots = RunSlots(max_concurrency)
        self._max_concurrency = max_concurrency
        self._last_duration: dict[str, float] = {}  # its place in the queue for a slot
        self._skip_logged: set[str] = set()  # checks whose current overrun was logged
        self._plans: dict[str, CheckPlan] = {}
        self._timers: dict[str, _Timer] = {}  # each check's grid and its armed tick
        self.in_flight: dict[str, asyncio.Task[None]] = {}  # started, probing or waiting
        self.runs_probing = 0  # holding one of max_concurrency slots
        self.runs_waiting = 0  # queued for a slot
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running = False
        self._stopping = False

    @property
    def checks(self) -> Mapping[str, CheckPlan]:
        return self._plans

    def next_run(self, name: str) -> float | None:
        """When `name` next starts (epoch seconds), or None if it is not scheduled."""
        timer = self._timers.get(name)
        return timer.due if timer is not None and timer.handle is not None else None

    def set_max_concurrency(self, value: int) -> None:
        if value != self._max_concurrency:
            # Runs holding the old semaphore finish under it; new ones use the new cap.
            self._slots = RunSlots(value)
            self._max_concurrency = value

    def apply(self, plans: Mapping[str, CheckPlan]) -> ScheduleChange:
        """Make the schedule match `plans`; unchanged checks keep their timing."""
        return run_all(self.apply_steps(plans))

    def apply_steps(self, plans: Mapping[str, CheckPlan]) -> Steps[ScheduleChange]:
        """`apply`, a check at a time (slices.py), so that 10,000 changed checks are not one
        long pause of the loop. After each step the check done is in its new state (its
        timer re-armed if its interval changed); one not done yet runs on its old plan and
        timing."""
        removed: list[str] = []
        added: list[str] = []
        for name in self._plans:  # a check a step, as every pass over them: slices.py
            if name not in plans:
                removed.append(name)
            yield
        for name in plans:
            if name not in self._plans:
                added.append(name)
            yield
        updated = []
        for name in removed:
            self._plans.pop(name, None)
            timer = self._timers.pop(name, None)
            if timer is not None:
                timer.cancel()
            self._last_duration.pop(name, None)
            self._skip_logged.discard(name)
            yield
        for name, plan in plans.items():
            interval = plan.check.interval_seconds
            previous = self._plans.get(name)
            self._plans[name] = plan
            if previous is not None and previous.check != plan.check:
                updated.append(name)
            timer = self._timers.get(name)
            if timer is None or timer.interval != interval:
                if timer is not None:
                    timer.cancel()
                timer = self._timers[name] = _Timer(interval, start_offset(name, interval))
                if self.running:
                    self._arm_first(name, timer)
            yield
        return ScheduleChange(tuple(added), tuple(removed), tuple(updated))

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.running = True
        for name, timer in self._timers.items():
            self._arm_first(name, timer)

    def _arm_first(self, name: str, timer: _Timer) -> None:
        """Arm the first tick of the grid at or after now: a (re)start fires on the grid,
        never at once for every check."""
        now = time.time()
        due = planned_start(now, timer.interval, timer.offset)
        timer.due = due if due >= now else due + timer.interval
        self._arm(name, timer, now)

    def _arm(self, name: str, timer: _Timer, now: float) -> None:
        loop = self._loop
        assert loop is not None
        loop.time()  # uvloop: brings the clock its timers count from up to date
        delay = max(0.0, timer.due - now) + timer_slack(loop)
        timer.handle = loop.call_later(delay, self._tick, name, timer)

    def _tick(self, name: str, timer: _Timer) -> None:
        timer.handle = None
        if self._stopping:
            return
        now = time.time()
        if now < timer.due:  # the clock a timer counts from is not the wall clock
            self._arm(name, timer, now)
            return
        # Coalesce: however late the loop got here, one run, for the latest tick passed.
        planned = planned_start(now, timer.interval, timer.offset)
        timer.due = planned + timer.interval
        self._arm(name, timer, now)
        self._fire(name, planned)

    def _fire(self, name: str, planned: float) -> None:
        plan = self._plans.get(name)
        if plan is None or self._stopping:
            return
        if name in self.in_flight:
            self._on_skip(name)
            # Logged once per run overrun, counted every time: 2,000 checks of a hanging
            # target skipping 800 times a second must not flood the log (and the CPU).
            if name not in self._skip_logged:
                self._skip_logged.add(name)
                log.warning("run_skipped", check=name, why="previous run still in flight")
            return
        self._skip_logged.discard(name)
        task = asyncio.create_task(self._run_one(plan, planned), name=f"check:{name}")
        self.in_flight[name] = task
        task.add_done_callback(lambda _t: self.in_flight.pop(name, None))

    async def _run_one(self, plan: CheckPlan, planned: float) -> None:
        name = plan.name
        structlog.contextvars.bind_contextvars(check=name)
        slots = self._slots
        try:
            # A check not run yet is assumed to take its whole timeout: checks already
            # known to be quick never queue behind a reload's new, possibly hanging ones.
            self.runs_waiting += 1
            try:
                await slots.acquire(self._last_duration.get(name, plan.timeout))
            finally:
                self.runs_waiting -= 1
            self.runs_probing += 1
            try:
                if self._stopping:
                    return  # queued behind the cap when stop began: it never started
                lag = max(0.0, time.time() - planned)
                self._observe_lag(lag)
                result = await self._run(plan)
            finally:
                self.runs_probing -= 1
                slots.release()
        except Exception:
            # run_check never raises; if a bug makes it, lose this run, not the daemon.
            log.exception("run_crashed")
            return
        if self._plans.get(name) is None:
            return  # removed by a reload while it ran
        self._last_duration[name] = result.duration_seconds
        self._on_result(result, lag)

    async def stop(self, grace: float) -> int:
        """Start no new runs, let in-flight ones finish up to `grace`, cancel the rest.

        Returns how many runs were cancelled.
        """
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        pending = set(self.in_flight.values())
        if pending:
            log.info("draining_runs", in_flight=len(pending), grace_seconds=grace)
            _done, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self.running = False
        return len(pending)
