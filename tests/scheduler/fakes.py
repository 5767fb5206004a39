"""A fake `run` coroutine and a recording `on_result`, so the scheduler is tested without HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from uptime_probe.config import parse_config
from uptime_probe.probe import CheckPlan, CheckResult, Status, compile_checks
from uptime_probe.scheduler import Scheduler

# Generous: the machine is shared; a healthy run of these tests meets each in well under 1 s.
DEADLINE = 15.0


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll `condition` until true; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def check_dict(
    name: str, interval: str = "300ms", timeout: str = "250ms", **extra: Any
) -> dict[str, Any]:
    step = {"name": "fetch", "request": {"url": "http://127.0.0.1:9/"}}
    return {"name": name, "interval": interval, "timeout": timeout, "steps": [step], **extra}


def plans_of(*checks: dict[str, Any] | str) -> dict[str, CheckPlan]:
    """Plans through the real loader; a bare name is a check at the default 300 ms."""
    dicts = [check_dict(c) if isinstance(c, str) else c for c in checks]
    config = parse_config(yaml.safe_dump({"checks": dicts}), env={})
    return compile_checks(config)


@dataclass
class FakeRun:
    """Stands in for run_check. A check with a gate waits for it (forever if never set);
    one with a delay takes that long; others return at once. Result status per check."""

    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, Status] = field(default_factory=dict)
    starts: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    finished: Counter[str] = field(default_factory=Counter)
    cancelled: Counter[str] = field(default_factory=Counter)
    active: Counter[str] = field(default_factory=Counter)
    max_active_per_check: Counter[str] = field(default_factory=Counter)
    max_active_total: int = 0

    def runs(self, name: str) -> int:
        return len(self.starts[name])

    @property
    def active_total(self) -> int:
        return sum(self.active.values())

    async def __call__(self, plan: CheckPlan) -> CheckResult:
        name = plan.name
        started_at = time.time()
        self.starts[name].append(started_at)
        self.active[name] += 1
        self.max_active_per_check[name] = max(self.max_active_per_check[name], self.active[name])
        self.max_active_total = max(self.max_active_total, self.active_total)
        try:
            if name in self.gates:
                await self.gates[name].wait()
            elif name in self.delays:
                await asyncio.sleep(self.delays[name])  # the run's own duration, not a sync
        except asyncio.CancelledError:
            self.cancelled[name] += 1
            raise
        finally:
            self.active[name] -= 1
        self.finished[name] += 1
        status = self.statuses.get(name, Status.UP)
        down = status is Status.DOWN
        return CheckResult(
            check=name,
            status=status,
            reason="timeout" if down else None,
            failed_step="fetch" if down else None,
            message="fake",
            started_at=started_at,
            duration_seconds=time.time() - started_at,
        )


@dataclass
class RecordingResults:
    """The scheduler's `on_result`: every finished run handed on, with its lag."""

    runs: list[tuple[CheckResult, float]] = field(default_factory=list)

    def __call__(self, result: CheckResult, lag_seconds: float) -> None:
        self.runs.append((result, lag_seconds))

    def of(self, name: str) -> list[CheckResult]:
        return [result for result, _lag in self.runs if result.check == name]


@dataclass
class Harness:
    scheduler: Scheduler
    run: FakeRun
    results: RecordingResults
    skips: list[str]
    lags: list[float]

    def start(self, plans: dict[str, CheckPlan]) -> None:
        self.scheduler.apply(plans)
        self.scheduler.start()


def build_harness(run: FakeRun, max_concurrency: int = 512) -> Harness:
    results = RecordingResults()
    skips: list[str] = []
    lags: list[float] = []
    scheduler = Scheduler(
        on_result=results,
        max_concurrency=max_concurrency,
        observe_lag=lags.append,
        on_skip=skips.append,
        run=run,
    )
    return Harness(scheduler, run, results, skips, lags)
