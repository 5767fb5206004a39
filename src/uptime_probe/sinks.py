"""How results leave the engine: a small protocol, and a fan-out that isolates failures.

A sink's `accept` runs on the event loop right after a run; it must be cheap and
must not block (the store and notifiers only enqueue). One sink raising never
keeps the others from seeing the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import structlog

from uptime_probe.probe.model import CheckResult, Status

log = structlog.get_logger("uptime_probe.sinks")


class HoldKind(StrEnum):
    MAINTENANCE = "maintenance"
    DEPENDENCY = "dependency"


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a check's alerting is held back at a run: monitoring goes on, incidents wait.

    `by` is the maintenance window's name, or the check depended on that is failing;
    `until` is the window's end (None for a dependency: until it recovers).
    """

    kind: HoldKind
    by: str
    until: float | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """A run's result together with the check's state after the thresholds."""

    result: CheckResult
    state: Status | None
    previous_state: Status | None
    location: str
    lag_seconds: float = 0.0
    hold: Hold | None = None

    @property
    def in_maintenance(self) -> bool:
        return self.hold is not None and self.hold.kind is HoldKind.MAINTENANCE

    @property
    def state_changed(self) -> bool:
        return self.state is not self.previous_state


class ResultSink(Protocol):
    def accept(self, outcome: RunOutcome) -> None: ...


class FanOut:
    def __init__(self, sinks: Sequence[ResultSink]) -> None:
        self._sinks = tuple(sinks)

    def accept(self, outcome: RunOutcome) -> None:
        for sink in self._sinks:
            try:
                sink.accept(outcome)
            except Exception:
                log.exception("sink_failed", sink=type(sink).__name__, check=outcome.result.check)


class LogSink:
    """Log lines for what a person watching the daemon cares about: failures and changes."""

    def accept(self, outcome: RunOutcome) -> None:
        result = outcome.result
        if result.status is Status.DOWN:
            log.info(
                "check_failed",
                check=result.check,
                reason=result.reason,
                step=result.failed_step,
                message=result.message,
                duration_seconds=round(result.duration_seconds, 4),
            )
        else:
            log.debug(
                "check_passed",
                check=result.check,
                status=result.status.value,
                duration_seconds=round(result.duration_seconds, 4),
            )
        if outcome.state_changed and outcome.state is not None:
            first = outcome.previous_state is None
            (log.info if first else log.warning)(
                "check_state_changed",
                check=result.check,
                state=outcome.state.value,
                previous=outcome.previous_state.value if outcome.previous_state else None,
                reason=result.reason,
                step=result.failed_step,
                run_started_at=result.started_at,
            )
