"""A hanging target never delays another check's runs."""

from __future__ import annotations

import time

from uptime_probe.simulator import RunningSimulator

from .conftest import StartDaemon
from .support import history_check, http_check

RUNS = "uptime_probe_check_runs_total"
LAG = "uptime_probe_schedule_lag_seconds"


async def test_hanging_check_does_not_delay_a_healthy_one(
    simulator: RunningSimulator, start_daemon: StartDaemon
) -> None:
    simulator.set_faults({"chat": "hang"})  # `/` hangs; the history list answers
    daemon = start_daemon(
        [
            http_check("hanging", f"{simulator.url}/", interval="2500ms", timeout="2s"),
            history_check(simulator.url, name="healthy", interval="500ms", timeout="400ms"),
        ]
    )
    await daemon.started()
    start = await daemon.scrape()
    started = time.monotonic()
    end = await daemon.wait_for_scrape(
        lambda s: (
            s.value("uptime_probe_check_failures_total", check="hanging", reason="timeout") >= 2
        ),
        "two timed-out runs of the hanging check",
    )
    window = time.monotonic() - started

    # The healthy check kept its own rate while the other hung (2 s of every 2.5 s).
    healthy_runs = end.value(RUNS, check="healthy") - start.value(RUNS, check="healthy")
    assert healthy_runs >= 0.6 * window / 0.5 - 1, (healthy_runs, window)
    assert end.value("uptime_probe_check_success", check="healthy") == 1
    assert sum(v for _, v in end.find("uptime_probe_check_failures_total", check="healthy")) == 0
    # And started on time: the lag's p95 within 250 ms, nothing near the 2 s hang.
    assert end.quantile(LAG, 0.95) <= 0.25, end.find(f"{LAG}_bucket")
    assert end.quantile(LAG, 1.0) <= 1.0, end.find(f"{LAG}_bucket")
    assert end.value("uptime_probe_runs_skipped_total", check="hanging") == 0
