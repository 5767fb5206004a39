"""CheckStates: results in, outcomes (state before and after the thresholds) out to a sink.

Fed by hand, as the scheduler feeds it; configs through the real model; the restart test
goes through a real Store on tmp_path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from uptime_probe.config.model import CheckConfig, Config
from uptime_probe.probe.model import CheckResult, Status
from uptime_probe.sinks import FanOut, RunOutcome
from uptime_probe.state.checks import CheckStates
from uptime_probe.state.store import Store

T0 = 1_764_720_000.0  # 2025-12-03 00:00 UTC
RUN_CODES = {"u": Status.UP, "g": Status.DEGRADED, "d": Status.DOWN}
STATE_CODES = {None: "-", Status.UP: "U", Status.DEGRADED: "G", Status.DOWN: "D"}


@dataclass
class Recording:
    outcomes: list[RunOutcome] = field(default_factory=list)

    def accept(self, outcome: RunOutcome) -> None:
        self.outcomes.append(outcome)

    def of(self, check: str) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.result.check == check]


def checks(*specs: str | dict[str, Any], **defaults: Any) -> list[CheckConfig]:
    """Checks through the real config model; a bare name takes the defaults (2 and 1)."""
    step = {"name": "fetch", "request": {"url": "http://127.0.0.1:9/"}}
    entries = [{"name": s} if isinstance(s, str) else s for s in specs]
    config = Config.model_validate(
        {"checks": [{"steps": [step], **e} for e in entries], "defaults": defaults}
    )
    return list(config.checks)


def result(check: str, code: str, at: float = T0) -> CheckResult:
    status = RUN_CODES[code]
    down = status is Status.DOWN
    return CheckResult(
        check,
        status,
        "timeout" if down else None,
        "fetch" if down else None,
        "no answer" if down else "ok",
        at,
        0.05,
    )


def feed(states: CheckStates, check: str, codes: Iterable[str]) -> None:
    for i, code in enumerate(codes):
        states.accept(result(check, code, T0 + 10 * i))


def codes_of(outcomes: Iterable[RunOutcome]) -> str:
    return "".join(STATE_CODES[o.state] for o in outcomes)


@pytest.mark.parametrize(
    ("runs", "failure", "success", "expected"),
    [
        ("ddd", 3, 1, "--D"),
        ("dud", 2, 1, "-UU"),  # a down run below the threshold keeps the last state
        ("ddu", 2, 1, "-DU"),
        ("dduu", 2, 2, "-DDU"),  # back up only after `success` good runs
        ("ddgu", 2, 2, "-DDU"),  # degraded counts as good
        ("ug", 2, 1, "UG"),
    ],
)
def test_outcomes_carry_the_state_after_the_checks_thresholds(
    runs: str, failure: int, success: int, expected: str
) -> None:
    sink = Recording()
    states = CheckStates(sink, location="eu-west")
    states.apply(checks({"name": "c", "failure_threshold": failure, "success_threshold": success}))
    for i, code in enumerate(runs):
        states.accept(result("c", code, T0 + 10 * i), lag_seconds=0.01 * i)
    outcomes = sink.of("c")
    assert codes_of(outcomes) == expected
    # Each outcome's previous state is the one before it; location and lag passed through.
    assert [o.previous_state for o in outcomes] == [None, *(o.state for o in outcomes[:-1])]
    assert [o.lag_seconds for o in outcomes] == pytest.approx([0.01 * i for i in range(len(runs))])
    assert {o.location for o in outcomes} == {"eu-west"}
    assert states.state_of("c") is outcomes[-1].state


def test_each_check_has_its_own_thresholds_and_state() -> None:
    sink = Recording()
    states = CheckStates(sink, location="local")
    states.apply(checks({"name": "strict", "failure_threshold": 1}, "lenient"))
    feed(states, "strict", "d")
    feed(states, "lenient", "d")
    assert states.state_of("strict") is Status.DOWN
    assert states.state_of("lenient") is None  # one down run is below its threshold of 2
    assert states.state_of("never_ran") is None


def test_a_result_of_a_check_it_does_not_know_is_dropped() -> None:
    """A run that finished after a reload removed its check: no outcome, no state."""
    sink = Recording()
    states = CheckStates(sink, location="local")
    states.apply(checks("kept"))
    states.accept(result("removed", "d"))
    assert sink.outcomes == []
    assert states.state_of("removed") is None
    assert states.get("removed") is None


def test_reload_forgets_removed_checks_and_keeps_the_rest() -> None:
    sink = Recording()
    states = CheckStates(sink, location="local")
    states.apply(checks("keep", "gone", {"name": "stricter", "failure_threshold": 3}))
    for name in ("keep", "gone", "stricter"):
        feed(states, name, "dd")
    kept = states.get("keep")
    assert kept is not None
    assert kept.state is Status.DOWN

    # The same check freshly loaded, one removed, one with new thresholds, one new.
    states.apply(checks("keep", {"name": "stricter", "failure_threshold": 1}, "new"))
    assert states.get("keep") is kept
    assert states.get("gone") is None
    assert states.get("new") is None
    # The updated check keeps its streak; its next run is judged by the new threshold.
    assert states.state_of("stricter") is None
    feed(states, "stricter", "d")
    assert states.state_of("stricter") is Status.DOWN
    # The kept streak goes on: one good run is what success_threshold 1 needs.
    feed(states, "keep", "u")
    assert sink.of("keep")[-1].previous_state is Status.DOWN
    assert states.state_of("keep") is Status.UP

    # A removed check that comes back starts afresh: no state carried over its absence.
    states.apply(checks("keep", "gone"))
    feed(states, "gone", "d")
    assert sink.of("gone")[-1].previous_state is None
    assert states.state_of("gone") is None


def test_restore_sets_the_stored_state_of_checks_it_runs() -> None:
    sink = Recording()
    states = CheckStates(sink, location="local")
    states.apply(checks("down", "pending", {"name": "slow_back", "success_threshold": 2}))
    restored = states.restore(
        {"down": Status.DOWN, "pending": None, "slow_back": Status.DOWN, "elsewhere": Status.UP}
    )
    assert restored == {"down": Status.DOWN, "pending": None, "slow_back": Status.DOWN}
    assert states.get("elsewhere") is None  # another shard's, or removed from the config
    assert states.state_of("down") is Status.DOWN
    # The next run starts from the restored state, and needs the usual runs to change it.
    feed(states, "down", "d")
    assert sink.of("down")[-1].previous_state is Status.DOWN
    assert not sink.of("down")[-1].state_changed
    feed(states, "slow_back", "u")
    assert states.state_of("slow_back") is Status.DOWN
    feed(states, "slow_back", "u")
    assert states.state_of("slow_back") is Status.UP


async def test_states_survive_a_restart_through_the_store(tmp_path: Path) -> None:
    """As the daemon runs: CheckStates feeds the store; a new process restores from it."""
    configured = checks("history", "chat", {"name": "flaky", "failure_threshold": 3})
    store = Store(tmp_path / "data")
    await store.open()
    try:
        states = CheckStates(FanOut([store]), location="local")
        states.apply(configured)
        feed(states, "history", "dd")
        feed(states, "chat", "du")
        feed(states, "flaky", "dd")
    finally:
        await store.close()  # flushes

    again = Store(tmp_path / "data")
    await again.open()
    try:
        sink = Recording()
        restored = CheckStates(sink, location="local")
        restored.apply(configured)
        restored.restore(await again.check_states())
    finally:
        await again.close()
    assert restored.state_of("history") is Status.DOWN
    assert restored.state_of("chat") is Status.UP
    assert restored.state_of("flaky") is None  # two down runs of three: no state yet
    feed(restored, "history", "u")
    assert [(o.previous_state, o.state) for o in sink.outcomes] == [(Status.DOWN, Status.UP)]
