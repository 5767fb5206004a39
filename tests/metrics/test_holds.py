"""Retries, maintenance and dependency metrics: counted per run, or read live at each scrape."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client.exposition import generate_latest

from uptime_probe.metrics import CheckMetrics
from uptime_probe.probe import Status
from uptime_probe.sinks import Hold, HoldKind

from .fixtures import CHECKS, Parsed, load, outcome, step_result

WITH_DEPENDENCY = [*CHECKS[:2], {**CHECKS[2], "depends_on": ["chat_load", "history"]}]
KEY = {"location": "eu-west"}


class Live:
    """What app.py reads at scrape time: the calendar's checks, the states' failing ones."""

    def __init__(self) -> None:
        self.maintained: set[str] = set()
        self.failing: set[str] = set()
        self.asked_at: list[float] = []

    def in_maintenance(self, now: float) -> set[str]:
        self.asked_at.append(now)
        return self.maintained

    def metrics(self) -> CheckMetrics:
        metrics = CheckMetrics(
            "eu-west",
            in_maintenance=self.in_maintenance,
            failing=self.failing.__contains__,
            clock=lambda: 1_700_000_100.0,
        )
        metrics.sync_checks(load(WITH_DEPENDENCY).checks)
        return metrics


def test_maintenance_and_suppression_move_at_the_next_scrape_without_a_run() -> None:
    live = Live()
    metrics = live.metrics()
    before = Parsed.of_text(metrics.render_text())
    assert before.value("uptime_probe_check_in_maintenance", check="history", **KEY) == 0
    assert before.value("uptime_probe_check_suppressed", check="tasks", by="history", **KEY) == 0

    live.maintained.add("history")
    live.failing.add("history")
    after = Parsed.of_text(metrics.render_text())

    assert after.value("uptime_probe_check_in_maintenance", check="history", **KEY) == 1
    assert after.value("uptime_probe_check_in_maintenance", check="chat_load", **KEY) == 0
    assert after.value("uptime_probe_check_suppressed", check="tasks", by="history", **KEY) == 1
    assert after.value("uptime_probe_check_suppressed", check="tasks", by="chat_load", **KEY) == 0
    # One series per configured dependency, none for checks without one.
    assert {s.labels["check"] for s in after.find("uptime_probe_check_suppressed")} == {"tasks"}
    assert live.asked_at == [1_700_000_100.0, 1_700_000_100.0]


def test_retries_and_runs_in_maintenance_are_counted_per_run() -> None:
    metrics = Live().metrics()
    down = outcome(
        "history", [step_result("conversations", Status.DOWN, reason="timeout")], state=Status.DOWN
    )
    window = Hold(HoldKind.MAINTENANCE, "db_upgrade", 1_700_003_600.0)
    metrics.accept(replace(down, result=replace(down.result, retries=2), hold=window))
    metrics.accept(
        replace(outcome("history", [step_result("conversations")], state=Status.UP), hold=window)
    )
    metrics.accept(replace(down, hold=Hold(HoldKind.DEPENDENCY, "chat_load")))  # not maintenance

    parsed = Parsed.of_text(metrics.render_text())
    history = {"check": "history", **KEY}
    assert parsed.value("uptime_probe_check_retries_total", **history) == 2
    assert parsed.value("uptime_probe_check_maintenance_runs_total", **history) == 2
    assert parsed.value("uptime_probe_check_maintenance_failures_total", **history) == 1
    assert parsed.value("uptime_probe_check_runs_total", **history) == 3  # monitoring goes on
    assert sum(s.value for s in parsed.find("uptime_probe_check_failures_total", **history)) == 2


def test_live_families_match_the_library_exposition() -> None:
    live = Live()
    live.maintained.add("tasks")
    live.failing.add("chat_load")
    metrics = live.metrics()
    fast = Parsed.of_text(metrics.render_text())
    library = Parsed.of_text(generate_latest(metrics).decode())
    assert fast.samples == library.samples
    assert fast.types == library.types
