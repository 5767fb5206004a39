"""SIGTERM: in-flight runs finish within the grace period, or are cancelled at its end."""

from __future__ import annotations

import signal
import time

from uptime_probe.simulator import RunningSimulator

from .conftest import StartDaemon
from .support import http_check

IN_FLIGHT = "uptime_probe_runs_in_flight"


async def test_sigterm_lets_a_slow_run_finish(
    simulator: RunningSimulator, start_daemon: StartDaemon
) -> None:
    grace = 8.0
    simulator.set_faults({"chat": {"mode": "slow", "latency": 1.5}})
    # debug: one check_passed line per run, so the run's end is visible in the log.
    daemon = start_daemon(
        [http_check("chat_load", f"{simulator.url}/", interval="2500ms", timeout="2500ms")],
        grace=grace,
        log_level="debug",
    )
    await daemon.started()
    await daemon.wait_for_scrape(lambda s: s.value(IN_FLIGHT) >= 1, "a slow run in flight")

    mark = daemon.log_count
    sent = time.monotonic()
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=grace + 10) == 0
    took = time.monotonic() - sent

    await daemon.wait_for_log("stop_requested", after=mark, why="SIGTERM")
    draining = await daemon.wait_for_log("draining_runs", after=mark)
    assert draining["in_flight"] == 1
    assert draining["grace_seconds"] == grace
    # The run finished (its result was handled) before the daemon stopped, none cancelled.
    events = [r["event"] for r in daemon.logs(after=mark)]
    assert "check_passed" in events, daemon.log_text()
    assert events.index("check_passed") < events.index("daemon_stopped")
    stopped = daemon.logs("daemon_stopped")[0]
    assert stopped["cancelled_runs"] == 0
    # It left when the run ended (at most 1.5 s), not at the end of the grace period.
    assert took < grace, f"took {took:.2f}s"


async def test_sigterm_cancels_a_hanging_run_at_the_end_of_the_grace(
    simulator: RunningSimulator, start_daemon: StartDaemon
) -> None:
    grace = 1.0
    simulator.set_faults({"chat": "hang"})
    # The run's own timeout (4 s) is far beyond SIGTERM + grace: only the grace can end it.
    daemon = start_daemon(
        [http_check("chat_load", f"{simulator.url}/", interval="4s", timeout="4s")], grace=grace
    )
    await daemon.started()
    await daemon.wait_for_scrape(lambda s: s.value(IN_FLIGHT) >= 1, "a hanging run in flight")

    sent = time.monotonic()
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=grace + 10) == 0
    took = time.monotonic() - sent

    stopped = await daemon.wait_for_log("daemon_stopped")
    assert stopped["cancelled_runs"] == 1
    assert daemon.logs("draining_runs")[0]["in_flight"] == 1
    assert grace - 0.1 <= took < grace + 4.0, f"took {took:.2f}s"  # waited the grace, no more
