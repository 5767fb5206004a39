"""Runs each check at its interval: spread starts, one run per check in flight, a global cap.

APScheduler decides *when*; this module decides *whether* and *how many*. Its job
only starts our own task and returns, so APScheduler never holds a run: overlap is
skipped and counted here, the concurrency cap is our semaphore, and stop drains our
in-flight set before APScheduler's shutdown (which would cancel running jobs).

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
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.interval import IntervalTrigger

from uptime_probe.probe import CheckPlan, CheckResult, run_check
from uptime_probe.slices import Steps, run_all

log = structlog.get_logger("uptime_probe.scheduler")


def _timer_slack(loop: asyncio.AbstractEventLoop) -> float:
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


class _LoopScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """APScheduler's asyncio scheduler with its wake-ups made cheap.

    Measured with bench/micro.py's `scheduler_cost` (1,000 checks a second, uvloop), the
    stock scheduler processed its job store 11 times per run and cost 211 µs per run:
    its timer fired before the next job was due (see `_timer_slack`), found nothing to run
    and re-armed with an ever smaller delay; and every wake-up, even its own timer's,
    went through `call_soon_threadsafe`, a write to the loop's wake-up descriptor. Here
    the timer never fires early, and wake-ups asked for in one loop iteration (a reload
    adding 10,000 jobs asks 10,000 times) are served by one pass.
    """

    _wakeup_pending = False

    def wakeup(self) -> None:
        if self._wakeup_pending or self._eventloop is None:
            return
        self._wakeup_pending = True
        self._eventloop.call_soon_threadsafe(self._process_now)

    def _process_now(self) -> None:
        self._wakeup_pending = False
        if self.state == STATE_STOPPED:
            return  # a wake-up asked for just before shutdown
        self._stop_timer()
        self._start_timer(self._process_jobs())

    def _start_timer(self, wait_seconds: float | None) -> None:
        self._stop_timer()
        if wait_seconds is not None and self._eventloop is not None:
            loop = self._eventloop
            loop.time()  # uvloop: brings the clock its timers count from up to date
            delay = wait_seconds + _timer_slack(loop)
            self._timeout = loop.call_later(delay, self._process_now)


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
        self._grids: dict[str, tuple[float, float]] = {}  # (interval, start offset)
        self.in_flight: dict[str, asyncio.Task[None]] = {}  # started, probing or waiting
        self.runs_probing = 0  # holding one of max_concurrency slots
        self.runs_waiting = 0  # queued for a slot
        self._apscheduler = _LoopScheduler(timezone=UTC)
        self.running = False
        self._stopping = False

    @property
    def checks(self) -> Mapping[str, CheckPlan]:
        return self._plans

    def set_max_concurrency(self, value: int) -> None:
        if value != self._max_concurrency:
            # Runs holding the old semaphore finish under it; new ones use the new cap.
            self._slots = RunSlots(value)
            self._max_concurrency = value

    def apply(self, plans: Mapping[str, CheckPlan]) -> ScheduleChange:
        """Make the schedule match `plans`; unchanged checks keep their timing."""
        return run_all(self.apply_steps(plans))

    def apply_steps(self, plans: Mapping[str, CheckPlan]) -> Steps[ScheduleChange]:
        """`apply`, a check at a time (slices.py): rescheduling one takes about 0.1 ms in
        APScheduler, 1 s for 10,000 changed intervals. After each step the check done is
        in its new state; one not done yet runs on its old plan and timing."""
        removed = tuple(name for name in self._plans if name not in plans)
        added = tuple(name for name in plans if name not in self._plans)
        updated = []
        for name in removed:
            self._plans.pop(name, None)
            self._grids.pop(name, None)
            self._last_duration.pop(name, None)
            self._skip_logged.discard(name)
            if self._apscheduler.get_job(name) is not None:
                self._apscheduler.remove_job(name)
            yield
        for name, plan in plans.items():
            interval = plan.check.interval_seconds
            previous = self._plans.get(name)
            self._plans[name] = plan
            if previous is not None and previous.check != plan.check:
                updated.append(name)
            if name not in self._grids or self._grids[name][0] != interval:
                self._grids[name] = (interval, start_offset(name, interval))
                self._schedule(name, *self._grids[name])
            yield
        return ScheduleChange(added, removed, tuple(updated))

    def _schedule(self, name: str, interval: float, offset: float) -> None:
        first = planned_start(time.time(), interval, offset)
        self._apscheduler.add_job(
            self._fire,
            trigger=IntervalTrigger(
                seconds=interval, start_date=datetime.fromtimestamp(first, UTC), timezone=UTC
            ),
            args=[name],
            id=name,
            name=name,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(interval)),
        )

    def start(self) -> None:
        self._apscheduler.start()
        self.running = True

    async def _fire(self, name: str) -> None:
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
        planned = planned_start(time.time(), *self._grids[name])
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
        if self.running:
            self._apscheduler.pause()
        pending = set(self.in_flight.values())
        if pending:
            log.info("draining_runs", in_flight=len(pending), grace_seconds=grace)
            _done, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self.running:
            self._apscheduler.shutdown(wait=False)
            self.running = False
        return len(pending)
