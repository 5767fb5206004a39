"""The up/degraded/down state of a check after its thresholds: pure, no I/O.

`failure_threshold` consecutive down runs turn a check down; `success_threshold`
consecutive good (up or degraded) runs turn a down check back. A degraded run with
no down run turns the check degraded. Before its first decisive run a check has no
state (`None`), which the metrics show as every state at 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from uptime_probe.probe.model import Status


@dataclass(frozen=True, slots=True)
class CheckState:
    state: Status | None = None
    consecutive_down: int = 0
    consecutive_good: int = 0


def next_state(
    current: CheckState, run: Status, *, failure_threshold: int, success_threshold: int
) -> CheckState:
    if run is Status.DOWN:
        down = current.consecutive_down + 1
        state = Status.DOWN if down >= failure_threshold else current.state
        return CheckState(state, down, 0)
    good = current.consecutive_good + 1
    if current.state is Status.DOWN and good < success_threshold:
        return CheckState(Status.DOWN, 0, good)
    return CheckState(run, 0, good)
