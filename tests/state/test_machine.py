"""The up/degraded/down state machine, as a table: runs in, state after each run out."""

from __future__ import annotations

import pytest

from uptime_probe.probe.model import Status
from uptime_probe.state.machine import CheckState, next_state

U, G, D = Status.UP, Status.DEGRADED, Status.DOWN
RUN_CODES = {"u": U, "g": G, "d": D}
STATE_CODES = {"-": None, "U": U, "G": G, "D": D}


def states_after(runs: str, *, failure: int, success: int) -> str:
    """Feed runs (`u`/`g`/`d`) through the machine; the state after each as `-UGD`."""
    current = CheckState()
    out = []
    for code in runs:
        current = next_state(
            current, RUN_CODES[code], failure_threshold=failure, success_threshold=success
        )
        out.append(next(k for k, v in STATE_CODES.items() if v is current.state))
    return "".join(out)


@pytest.mark.parametrize(
    ("runs", "failure", "success", "expected"),
    [
        # Initial state: None until a decisive run; a lone down run below the threshold is not.
        ("", 2, 1, ""),
        ("u", 2, 1, "U"),
        ("g", 2, 1, "G"),
        ("d", 2, 1, "-"),
        ("dd", 2, 1, "-D"),
        ("d", 1, 1, "D"),
        # failure_threshold counts consecutive down runs only.
        ("udd", 2, 1, "UUD"),
        ("ududud", 2, 1, "UUUUUU"),
        ("uddd", 3, 1, "UUUD"),
        ("udud", 1, 1, "UDUD"),
        # success_threshold: good runs needed to leave down, consecutive.
        ("ddu", 2, 1, "-DU"),
        ("dduu", 2, 2, "-DDU"),
        ("ddudu", 2, 2, "-DDDD"),  # a down run resets the good streak
        ("ddududuu", 2, 2, "-DDDDDDU"),
        ("dduuu", 2, 3, "-DDDU"),
        # success_threshold applies only to leaving down.
        ("du", 2, 3, "-U"),
        ("ug", 2, 3, "UG"),
        # Degraded: a degraded run with no down state turns it degraded, a good run back up.
        ("ugu", 2, 1, "UGU"),
        ("gdg", 2, 1, "GGG"),  # one down run below the threshold keeps degraded
        ("gdd", 2, 1, "GGD"),
        ("ddg", 2, 1, "-DG"),  # recovering into degraded
        ("ddgu", 2, 2, "-DDU"),  # degraded counts as good towards success_threshold
        ("ddug", 2, 2, "-DDG"),  # and the run that completes the streak sets the state
    ],
)
def test_transition_table(runs: str, failure: int, success: int, expected: str) -> None:
    assert states_after(runs, failure=failure, success=success) == expected


@pytest.mark.parametrize(
    ("before", "run", "after"),
    [
        (CheckState(), D, CheckState(None, 1, 0)),
        (CheckState(U, 0, 5), D, CheckState(U, 1, 0)),
        (CheckState(U, 1, 0), D, CheckState(D, 2, 0)),
        (CheckState(D, 7, 0), D, CheckState(D, 8, 0)),
        (CheckState(D, 3, 0), U, CheckState(D, 0, 1)),
        (CheckState(D, 0, 1), G, CheckState(G, 0, 2)),
        (CheckState(G, 1, 0), U, CheckState(U, 0, 1)),
    ],
)
def test_counters(before: CheckState, run: Status, after: CheckState) -> None:
    """The streak counters themselves (failure_threshold=2, success_threshold=2)."""
    assert next_state(before, run, failure_threshold=2, success_threshold=2) == after


def test_pure() -> None:
    """The input state is never changed: the scheduler keeps the old one as `previous`."""
    before = CheckState(U, 1, 0)
    next_state(before, D, failure_threshold=2, success_threshold=1)
    assert before == CheckState(U, 1, 0)
