"""FanOut: every sink sees every outcome, whichever of them raises."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from uptime_probe.probe.model import CheckResult, Status
from uptime_probe.sinks import FanOut, ResultSink, RunOutcome


@dataclass
class Recording:
    outcomes: list[RunOutcome] = field(default_factory=list)

    def accept(self, outcome: RunOutcome) -> None:
        self.outcomes.append(outcome)


class Broken:
    """A sink with a bug: raises on every outcome."""

    def accept(self, outcome: RunOutcome) -> None:
        raise RuntimeError(f"cannot take {outcome.result.check}")


def outcome(check: str) -> RunOutcome:
    result = CheckResult(check, Status.DOWN, "timeout", "page", "no answer", 1.0e9, 0.1)
    return RunOutcome(result, Status.DOWN, Status.UP, "local")


@pytest.mark.parametrize("broken_at", [0, 1, 2])
def test_a_failing_sink_does_not_stop_the_others(broken_at: int) -> None:
    first, second = Recording(), Recording()
    sinks: list[ResultSink] = [first, second]
    sinks.insert(broken_at, Broken())
    fan_out = FanOut(sinks)
    runs = [outcome("chat_load"), outcome("history")]
    with capture_logs() as logs:
        for run in runs:
            fan_out.accept(run)  # never raises
    assert first.outcomes == runs
    assert second.outcomes == runs
    failures = [e for e in logs if e["event"] == "sink_failed"]
    assert [(e["sink"], e["check"]) for e in failures] == [
        ("Broken", "chat_load"),
        ("Broken", "history"),
    ]
    assert all(e["log_level"] == "error" and e["exc_info"] for e in failures)
