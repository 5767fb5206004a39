"""SIGTERM in the middle of 500 in-flight runs: exit 0 within the grace, the store flushed.

The 500 checks are named so that their start offsets (a hash of the name) fall within
0.2 s of each other: they fire together, and the target holds every request, so at the
moment of SIGTERM all 500 runs are in flight, seen from the target's side (it counts
requests it holds open). Five quick checks run beside them, so the store also holds runs
that finished before the signal.

Two endings:
  finish   the target answers after 2 s, inside the 5 s grace: every run completes and
           is stored; none is cancelled.
  cancel   the target holds requests for 30 s, beyond the run's 4 s timeout and the 1 s
           grace: every slow run is cancelled at the end of the grace, none is stored, and
           the daemon still exits 0 with everything that did finish written.

"Stored" is checked against the daemon's own account at debug level: one `check_passed`
or `check_failed` line per completed run. The SQLite `runs` table must hold exactly that
many rows, and the daemon's `daemon_stopped` line must report no lost rows.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.conftest import ServeApp
from tests.daemon.support import http_check

from .conftest import StartDaemon
from .support import (
    CountingTarget,
    assert_loop_never_blocked,
    names_firing_together,
    poll_until,
    run_rows,
)

IN_FLIGHT = 500
QUICK = 5
INTERVAL = 4.0
WINDOW = 0.2
MARGIN = 3.0
"""Seconds beyond the grace the process may take to exit (closing 500 sockets, flushing)."""


@pytest.mark.parametrize(
    ("ending", "target_delay", "timeout", "grace", "cancelled"),
    [("finish", 2.0, "3s", 5.0, 0), ("cancel", 30.0, "4s", 1.0, IN_FLIGHT)],
)
async def test_sigterm_with_500_runs_in_flight(
    start_daemon: StartDaemon,
    serve_app: ServeApp,
    tmp_path: Path,
    ending: str,
    target_delay: float,
    timeout: str,
    grace: float,
    cancelled: int,
) -> None:
    slow = CountingTarget(delay=target_delay, expect_open=IN_FLIGHT)
    quick = CountingTarget()
    slow_url, quick_url = await serve_app(slow.app()), await serve_app(quick.app())
    names = names_firing_together("slow", IN_FLIGHT, INTERVAL, WINDOW)
    checks = [
        http_check(name, f"{slow_url}/{name}", interval="4s", timeout=timeout) for name in names
    ]
    checks += [
        http_check(f"quick_{i}", f"{quick_url}/quick_{i}", interval="200ms", timeout="200ms")
        for i in range(QUICK)
    ]
    daemon = start_daemon(
        checks,
        grace=grace,
        log_level="debug",  # a check_passed line per run: the daemon's own count
        max_concurrency=IN_FLIGHT + 100,
        server={"watch_interval": "1h"},
    )
    await daemon.started(timeout=60)

    # Every slow run in flight at once (first fire within one interval of starting).
    await poll_until(slow.all_open.is_set, "500 requests held by the target", INTERVAL + 20)
    assert slow.open_now == IN_FLIGHT
    sent = time.monotonic()
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=grace + 20) == 0
    took = time.monotonic() - sent

    print(
        f"figures: {ending}: exit 0 after {took:.2f}s (grace {grace}s), rows {run_rows(tmp_path / 'data')}"
    )
    assert took < grace + MARGIN, f"took {took:.2f}s with a {grace}s grace"
    draining = daemon.logs("draining_runs")
    assert len(draining) == 1
    # The slow runs, and any quick run that happened to be in flight.
    assert IN_FLIGHT <= draining[0]["in_flight"] <= IN_FLIGHT + QUICK
    stopped = daemon.logs("daemon_stopped")
    assert len(stopped) == 1, daemon.log_text()
    assert stopped[0]["store_lost_rows"] == 0
    assert stopped[0]["cancelled_runs"] == cancelled
    completed = daemon.logs("check_passed") + daemon.logs("check_failed")
    slow_completed = [r for r in completed if r["check"].startswith("slow_")]
    assert len(slow_completed) == IN_FLIGHT - cancelled
    assert sum(quick.count(f"quick_{i}") for i in range(QUICK)) >= QUICK  # they ran too
    # Flushed: every run the daemon finished is a row, and nothing else is.
    assert run_rows(tmp_path / "data") == len(completed)
    if ending == "finish":
        assert slow.answered == IN_FLIGHT
    assert slow.max_open_per_check == 1
    assert_loop_never_blocked(daemon)
