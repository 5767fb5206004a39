"""The daemon's history across a restart: the store is flushed on SIGTERM, and a new daemon
on the same data dir restores the check's state and continues its open incident.

Real processes: the simulator in this test's loop, `uptime-probe run --data-dir D` as a
child, `uptime-probe incidents` at the end. Every wait is a bounded poll (see support.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from uptime_probe.simulator import RunningSimulator
from uptime_probe.state.incidents import Incident, IncidentStatus
from uptime_probe.state.store import DB_FILE, Store

from .support import DEADLINE, POLL, DaemonProcess, Scrape, history_check, write_config

CHECK = "history"
RUNS = "uptime_probe_check_runs_total"
STATE = "uptime_probe_check_state"
FAILURE_THRESHOLD = 2

T = TypeVar("T")
StartDaemon = Callable[[], DaemonProcess]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def start_on_data_dir(config_path: Path, data_dir: Path) -> Iterator[StartDaemon]:
    """Start `uptime-probe run -c CONFIG --data-dir D` (the same D every time); every daemon
    started is killed at teardown."""
    started: list[DaemonProcess] = []

    def start() -> DaemonProcess:
        daemon = DaemonProcess(config_path, grace=2.0, extra_args=["--data-dir", str(data_dir)])
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


async def stored(data_dir: Path) -> tuple[list[Incident], int, list[str]]:
    """What another reader sees in the store now: incidents, the number of runs of the
    check, and their statuses (read-only, as the report does, beside a running daemon)."""
    store = Store(data_dir)
    await store.open(readonly=True)
    try:
        incidents = await store.incidents()
        runs = await store.runs(CHECK, limit=100_000)
    finally:
        await store.close()
    return incidents, len(runs), [r.status for r in runs]


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str) -> T:
    deadline = time.monotonic() + DEADLINE
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE}s waiting for {what}; last: {value}")
        await asyncio.sleep(POLL)


def state_of(scrape: Scrape) -> str | None:
    """The check's state from the stateset; None when every state is 0 (no state yet)."""
    on = [labels["state"] for labels, value in scrape.find(STATE, check=CHECK) if value == 1]
    assert len(on) <= 1, on
    return on[0] if on else None


async def incidents_command(data_dir: Path) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPTIME_PROBE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uptime_probe.cli", "incidents",
        "--data-dir", str(data_dir), "--since", "1h", "--format", "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode == 0, err.decode()
    docs: list[dict[str, Any]] = json.loads(out)
    return docs


def configure(config_path: Path, simulator: RunningSimulator, interval: str) -> None:
    write_config(
        config_path,
        [history_check(simulator.url, CHECK, interval=interval, timeout=interval)],
        defaults={"failure_threshold": FAILURE_THRESHOLD, "success_threshold": 1},
    )


async def test_restart_restores_state_and_continues_the_open_incident(
    simulator: RunningSimulator,
    config_path: Path,
    data_dir: Path,
    start_on_data_dir: StartDaemon,
) -> None:
    configure(config_path, simulator, "300ms")

    # --- 1: the history list comes back empty; the check goes down, an incident opens.
    simulator.set_faults({"conversations": "empty"})
    first = start_on_data_dir()
    await first.started()
    await first.wait_for_log("check_state_changed", check=CHECK, state="down")
    incidents, _, _ = await eventually(
        lambda: stored(data_dir), lambda s: len(s[0]) == 1, "the incident to be stored"
    )
    (opened,) = incidents
    assert opened.status is IncidentStatus.INVESTIGATING
    assert opened.first_reason == "empty_history"

    # A slow disk at stop: another connection holds the write lock, so the daemon's writer
    # waits inside SQLite while runs go on and queue up; SIGTERM comes, and only then the
    # lock goes. Stopping must wait for the writer, not drop what it holds.
    blocker = await asyncio.to_thread(
        sqlite3.connect, data_dir / DB_FILE, isolation_level=None, check_same_thread=False
    )
    try:
        await asyncio.to_thread(blocker.execute, "BEGIN IMMEDIATE")
        before = (await first.scrape()).value(RUNS, check=CHECK)
        last_scrape = await first.wait_for_scrape(
            lambda s: s.value(RUNS, check=CHECK) >= before + 2, "runs while the disk is held"
        )
        first.send(signal.SIGTERM)
        await first.wait_for_log("stop_requested")
    finally:
        await asyncio.to_thread(blocker.execute, "ROLLBACK")
        await asyncio.to_thread(blocker.close)
    scraped_runs = last_scrape.value(RUNS, check=CHECK)
    assert state_of(last_scrape) == "down"
    assert await first.wait_exit() == 0, first.log_text()
    (stopped,) = first.logs("daemon_stopped")
    assert stopped["store_lost_rows"] == 0

    # Flushed on stop: every run that reached the sinks (each one a logged failure) is a
    # row, at least as many as the last scrape counted, and the incident counted them all.
    logged_failures = len(first.logs("check_failed", check=CHECK))
    incidents, stored_runs, statuses = await stored(data_dir)
    assert stored_runs == logged_failures, first.log_text()
    assert stored_runs >= scraped_runs
    assert set(statuses) == {"down"}
    (before_restart,) = incidents
    assert before_restart.id == opened.id
    assert before_restart.status is IncidentStatus.INVESTIGATING
    assert before_restart.reasons == {"empty_history": stored_runs}

    # --- 2: restart on the same data dir while the list hangs, so that each run lasts its
    # whole timeout, here 1 s (the only change to the config): the first scrape comes well
    # before the state machine alone could have turned the check down again (two runs).
    simulator.set_faults({"conversations": "hang"})
    configure(config_path, simulator, "1s")
    second = start_on_data_dir()
    await second.started()
    scrape = await second.scrape()
    runs_after_restart = scrape.get(RUNS, check=CHECK)
    assert runs_after_restart < FAILURE_THRESHOLD, (
        "the first scrape came too late to show the restored state"
    )
    assert state_of(scrape) == "down"  # restored, not recomputed
    restored = await second.wait_for_log("state_restored")
    assert restored["open_incidents"] == 1

    # The next failure (a timeout now) continues the same incident: a new reason on it.
    incidents, _, _ = await eventually(
        lambda: stored(data_dir),
        lambda s: any("timeout" in i.reasons for i in s[0]),
        "the restored incident to count a timeout",
    )
    (continued,) = incidents
    assert continued.id == opened.id
    assert continued.status is IncidentStatus.INVESTIGATING
    assert continued.reasons["empty_history"] == before_restart.reasons["empty_history"]

    # --- 3: the fault clears; one good run turns the check up and resolves the incident.
    simulator.clear_faults()
    await second.wait_for_log("check_state_changed", check=CHECK, state="up")
    await second.wait_for_scrape(lambda s: state_of(s) == "up", "the check to be up")
    await eventually(
        lambda: stored(data_dir),
        lambda s: [i.status for i in s[0]] == [IncidentStatus.RESOLVED],
        "the incident to be resolved",
    )
    second.send(signal.SIGTERM)
    assert await second.wait_exit() == 0, second.log_text()
    assert second.logs("daemon_stopped")[0]["store_lost_rows"] == 0

    # --- 4: the postmortem draft: one incident, the one opened before the restart, resolved.
    (doc,) = await incidents_command(data_dir)
    assert doc["id"] == opened.id
    assert doc["check"] == CHECK
    assert doc["status"] == "resolved"
    assert doc["first_reason"] == "empty_history"
    assert doc["reasons"]["empty_history"] == before_restart.reasons["empty_history"]
    assert doc["reasons"]["timeout"] >= 1
    assert doc["failing_steps"] == ["conversations"]
    assert doc["first_failure_at"] < doc["opened_at"] < doc["resolved_at"]
    # Detected at the second failed run, about one 300 ms interval after the first.
    assert doc["time_to_detect_seconds"] == round(doc["opened_at"] - doc["first_failure_at"], 3)
    assert 0 < doc["time_to_detect_seconds"] <= 3.0
    assert [e["status"] for e in doc["timeline"]] == [
        "investigating",
        "investigating",  # the new failure after the restart: timeout
        "monitoring",
        "resolved",
    ]
    assert "timeout" in doc["timeline"][1]["message"]
