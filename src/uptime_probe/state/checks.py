"""Each check's up/degraded/down state: finished runs in, outcomes out to the sinks.

    Scheduler --accept(result, lag)--> CheckStates --RunOutcome--> FanOut --> metrics, latest,
    (when runs start)                  (thresholds, state/machine.py)         log, store, incidents

The scheduler only schedules and runs; this is where a run meets its check's thresholds
and becomes an outcome with the state before and after it. The status page and the API
read states here. A restart restores them from the store; a reload forgets removed
checks and keeps every other check's state, even one whose thresholds changed (its next
run is judged by the new ones).

Each outcome also says whether the check's alerting is held back at that run (`Hold`):
by an open maintenance window covering it (`state/maintenance.py`), else by a check it
`depends_on` that is failing, its state down or its latest run down. Failing, not only
down: a dependency and its dependents break together, and the dependent must not win
the race to the page because its threshold was met a run earlier. Monitoring is never
held: the state moves and the outcome reaches every sink as always.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from uptime_probe.config.model import CheckConfig
from uptime_probe.probe.model import CheckResult, Status
from uptime_probe.sinks import Hold, HoldKind, ResultSink, RunOutcome
from uptime_probe.slices import Steps, run_all
from uptime_probe.state.machine import CheckState, next_state
from uptime_probe.state.maintenance import MaintenanceCalendar


class CheckStates:
    def __init__(
        self,
        sink: ResultSink,
        *,
        location: str,
        calendar: MaintenanceCalendar | None = None,
    ) -> None:
        self._sink = sink
        self._location = location
        self._calendar = calendar
        self._thresholds: dict[str, tuple[int, int]] = {}  # (failure, success) runs
        self._depends_on: dict[str, tuple[str, ...]] = {}
        self._states: dict[str, CheckState] = {}

    def apply(self, checks: Iterable[CheckConfig]) -> list[tuple[str, str]]:
        """A config (re)load: these checks' thresholds and dependencies from now on;
        removed checks forgotten. Returns the (check, dependency) pairs whose dependency
        this process does not run: those never hold anything back."""
        return run_all(self.apply_steps(checks))

    def apply_steps(self, checks: Iterable[CheckConfig]) -> Steps[list[tuple[str, str]]]:
        """`apply` in pieces (slices.py): the new thresholds and dependencies are gathered
        a check at a time and swapped in at once, so every run is judged by one config."""
        thresholds: dict[str, tuple[int, int]] = {}
        depends_on: dict[str, tuple[str, ...]] = {}
        for check in checks:
            thresholds[check.name] = (check.failure_threshold_runs, check.success_threshold_runs)
            depends_on[check.name] = tuple(check.depends_on)
            yield
        self._thresholds, self._depends_on = thresholds, depends_on
        for name in list(self._states):
            if name not in thresholds:
                del self._states[name]
            yield
        not_local: list[tuple[str, str]] = []
        for name, needs in depends_on.items():
            not_local.extend((name, needed) for needed in needs if needed not in thresholds)
            yield
        return not_local

    def dependencies(self, check: str) -> tuple[str, ...]:
        return self._depends_on.get(check, ())

    def failing(self, check: str) -> bool:
        """Down, or its latest run was: what makes it hold back the checks depending on it."""
        found = self._states.get(check)
        return found is not None and (found.state is Status.DOWN or found.consecutive_down > 0)

    def failing_dependencies(self, check: str) -> tuple[str, ...]:
        return tuple(needed for needed in self.dependencies(check) if self.failing(needed))

    def hold_of(self, check: str, at: float) -> Hold | None:
        """Why the check's alerting is held back at `at`: maintenance first, then the first
        failing dependency in `depends_on` order; None when nothing holds it."""
        if self._calendar is not None:
            opening = self._calendar.open_for(check, at)
            if opening is not None:
                return Hold(HoldKind.MAINTENANCE, opening.window.name, opening.end)
        for needed in self.failing_dependencies(check):
            return Hold(HoldKind.DEPENDENCY, needed)
        return None

    def restore(self, stored: Mapping[str, Status | None]) -> dict[str, Status | None]:
        """States read back from the store after a restart; returns those of checks this
        process runs, the only ones restored (another shard's, or a removed check's, are not
        ours to judge)."""
        restored = {name: state for name, state in stored.items() if name in self._thresholds}
        for name, state in restored.items():
            self._states[name] = CheckState(state)
        return restored

    def get(self, check: str) -> CheckState | None:
        return self._states.get(check)

    def state_of(self, check: str) -> Status | None:
        """The check's state after its thresholds; None before its first decisive run."""
        found = self._states.get(check)
        return found.state if found is not None else None

    def accept(self, result: CheckResult, lag_seconds: float = 0.0) -> None:
        """A finished run: its check's new state, and the outcome handed to the sink.

        A run whose check a reload removed while it ran is dropped.
        """
        thresholds = self._thresholds.get(result.check)
        if thresholds is None:
            return
        failure, success = thresholds
        before = self._states.get(result.check, CheckState())
        after = next_state(
            before, result.status, failure_threshold=failure, success_threshold=success
        )
        self._states[result.check] = after
        self._sink.accept(
            RunOutcome(
                result=result,
                state=after.state,
                previous_state=before.state,
                location=self._location,
                lag_seconds=lag_seconds,
                hold=self.hold_of(result.check, result.started_at),
            )
        )
