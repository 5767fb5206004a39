"""The daemon starts on a full or read-only data directory, and history resumes after.

Real filesystems (mounts.py): an 8 MiB tmpfs filled to the last byte, and a tmpfs holding
a database from an earlier run, remounted read-only. Before the fix the daemon exited 1
(`start_failed`: "database or disk is full", "attempt to write a readonly database"), so a
restart during a disk-full event became a crash loop with no monitoring at all.

What must hold, for both:
- it starts, probes at its pace and serves /metrics;
- it says the store is away: `uptime_probe_store_available 0`, a /readyz detail (still
  200: probing does not need the store), a note on the status page, a `store_unavailable`
  log line naming the path; the runs it cannot record are counted as lost;
- it tries again every `store.retry_interval`; once the filesystem has room (or is
  writable) again, runs are recorded, the metric is 1 and the note is gone;
- on the read-only one, an incident stored open before the restart is tracked again
  once the store is back, and resolved by the next good run.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

from tests.conftest import ServeApp
from tests.daemon.support import DaemonProcess, Scrape, http_check
from uptime_probe.state.incidents import Incident, IncidentStatus, TimelineEntry
from uptime_probe.state.store import DB_FILE, Store

from .conftest import StartDaemon
from .mounts import fill, remount, tmpfs
from .support import CountingTarget, assert_loop_never_blocked, run_rows

AVAILABLE = "uptime_probe_store_available"
LOST = "uptime_probe_store_errors_total"
RUNS = "uptime_probe_check_runs_total"
NOT_RECORDED = "History is not being recorded"
STORE = {"retry_interval": "300ms"}


def runs(scrape: Scrape) -> float:
    return scrape.value(RUNS, check="healthy")


async def assert_away_but_probing(daemon: DaemonProcess, data: Path) -> Scrape:
    """Started, probing and serving, and saying everywhere that the store is away."""
    await daemon.started()
    logged = await daemon.wait_for_log("store_unavailable")
    assert logged["path"] == str(data / DB_FILE), logged
    away = await daemon.wait_for_scrape(
        lambda s: runs(s) >= 3 and s.value(LOST) >= 3, "runs, each counted as lost"
    )
    assert away.value(AVAILABLE) == 0
    assert away.value("uptime_probe_check_success", check="healthy") == 1
    status, text, _headers = await daemon.request("GET", "/readyz")
    assert status == 200, text
    assert "history store unavailable (cannot be opened: " in text, text
    status, page, _headers = await daemon.request("GET", "/")
    assert status == 200
    assert NOT_RECORDED in page
    assert not daemon.logs("start_failed")
    return away


async def assert_history_resumes(daemon: DaemonProcess, data: Path, away: Scrape) -> None:
    await daemon.wait_for_log("store_available")
    back = await daemon.wait_for_scrape(lambda s: s.value(AVAILABLE) == 1, "the store back")
    await daemon.wait_for_scrape(
        lambda s: runs(s) >= runs(back) + 3 and run_rows(data) >= 3, "runs recorded again"
    )
    final = await daemon.scrape()
    assert final.value(LOST) == back.value(LOST)  # nothing lost once it is back
    assert runs(final) > runs(away)
    status, text, _headers = await daemon.request("GET", "/readyz")
    assert (status, text) == (200, "ready: 1 checks scheduled\n")
    status, page, _headers = await daemon.request("GET", "/")
    assert NOT_RECORDED not in page
    assert "History is unavailable" not in page


async def test_a_full_data_dir(
    start_daemon: StartDaemon, serve_app: ServeApp, tmp_path: Path
) -> None:
    url = await serve_app(CountingTarget().app())
    with tmpfs(tmp_path / "data", "8m") as data:
        filler = fill(data)
        daemon = start_daemon(
            [http_check("healthy", f"{url}/healthy", interval="250ms", timeout="250ms")],
            store=STORE,
        )
        away = await assert_away_but_probing(daemon, data)
        assert daemon.logs("store_unavailable")[0]["error"] == (
            "database or disk is full (the filesystem is full)"
        )

        filler.unlink()  # the disk frees up
        await assert_history_resumes(daemon, data, away)
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    assert_loop_never_blocked(daemon)


async def seed_open_incident(data: Path, at: float) -> Incident:
    """A database from an earlier run, with `healthy`'s incident still open in it."""
    incident = Incident(
        id="healthy-earlier",
        check="healthy",
        location="local",
        status=IncidentStatus.INVESTIGATING,
        opened_at=at,
        first_failure_at=at,
        first_message="fetch: HTTP 503",
        first_reason="http_5xx",
        response_sample=None,
        reasons={"http_5xx": 2},
        failing_steps=("fetch",),
        timeline=(TimelineEntry(at, IncidentStatus.INVESTIGATING, "http_5xx at step fetch"),),
        last_reason="http_5xx",
    )
    store = Store(data)
    await store.open()
    store.save_incident(incident)
    assert await store.flush()
    await store.close()
    return incident


def incident_status(data: Path, incident_id: str, *, read_only_fs: bool = False) -> str:
    # On a read-only filesystem even a read-only connection cannot make the WAL's
    # shared-memory file: `immutable` reads the database file alone.
    mode = "immutable=1" if read_only_fs else "mode=ro"
    with sqlite3.connect(f"file:{data / DB_FILE}?{mode}", uri=True) as db:
        row = db.execute("SELECT status FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    return str(row[0])


async def test_a_read_only_data_dir(
    start_daemon: StartDaemon, serve_app: ServeApp, tmp_path: Path
) -> None:
    url = await serve_app(CountingTarget().app())
    with tmpfs(tmp_path / "data", "8m") as data:
        earlier = await seed_open_incident(data, time.time() - 600)
        remount(data, "ro")
        daemon = start_daemon(
            [http_check("healthy", f"{url}/healthy", interval="250ms", timeout="250ms")],
            store=STORE,
        )
        away = await assert_away_but_probing(daemon, data)
        assert "(the filesystem is read-only)" in daemon.logs("store_unavailable")[0]["error"]
        # The stored incident is untouched meanwhile: nothing can be written.
        assert incident_status(data, earlier.id, read_only_fs=True) == "investigating"

        remount(data, "rw")
        await assert_history_resumes(daemon, data, away)
        # Tracked again once the store was back, and the check is up: resolved.
        deadline = time.monotonic() + 20
        while incident_status(data, earlier.id) != "resolved":
            assert time.monotonic() < deadline, "the earlier incident was never resolved"
            await asyncio.sleep(0.05)
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    assert_loop_never_blocked(daemon)
