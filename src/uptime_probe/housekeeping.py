"""The daemon's periodic upkeep, on APScheduler: jobs every few seconds or minutes.

Check runs do not go through here (scheduler.py arms one loop timer per check: a due
APScheduler job cost about 106 µs of CPU per run, a timer a few). What suits APScheduler
is upkeep: a handful of jobs where its rules are what is wanted (a job never overlaps
itself, missed ticks coalesce into one, a late tick still runs) and a few wake-ups a
minute cost nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.interval import IntervalTrigger

from uptime_probe.scheduler import timer_slack


class _LoopScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """APScheduler's asyncio scheduler with its wake-ups made cheap.

    Measured with bench/micro.py's `scheduler_cost` when check runs were APScheduler jobs
    (1,000 checks a second, uvloop), the stock scheduler processed its job store 11 times
    per run: its timer fired before the next job was due (see `timer_slack`), found
    nothing to run and re-armed with an ever smaller delay; and every wake-up, even its
    own timer's, went through `call_soon_threadsafe`, a write to the loop's wake-up
    descriptor. Here the timer never fires early, and wake-ups asked for in one loop
    iteration are served by one pass. A quiet daemon pays for every spurious wake-up.
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
            delay = wait_seconds + timer_slack(loop)
            self._timeout = loop.call_later(delay, self._process_now)


class Housekeeping:
    """Named periodic jobs of the daemon; `every` again with the same name replaces one."""

    def __init__(self) -> None:
        self._apscheduler = _LoopScheduler(timezone=UTC)
        self._periods: dict[str, float] = {}

    def every(self, seconds: float, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` every `seconds`, never two at once; a changed period restarts its count."""
        if self._periods.get(name) == seconds:
            return
        self._periods[name] = seconds
        self._apscheduler.add_job(
            job,
            trigger=IntervalTrigger(seconds=seconds, timezone=UTC),
            id=name,
            name=name,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # late is better than never
        )

    def start(self) -> None:
        self._apscheduler.start()

    async def stop(self) -> None:
        """No job starts after this; one running is cancelled."""
        if self._apscheduler.state == STATE_STOPPED:
            return
        self._apscheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # let a cancelled job's task see its cancellation
