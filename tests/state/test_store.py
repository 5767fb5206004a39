"""Store: a real SQLite file in tmp_path, written by the batching writer, read back.

Rows are fed as the daemon feeds them (`accept`, `record_incident`), then `flush()`ed.
Timestamps are relative to the real clock where the background retention (which runs at
open with `time.time()`) could otherwise delete them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest
from structlog.testing import capture_logs

from uptime_probe.probe.model import CheckResult, Status, StepResult
from uptime_probe.sinks import RunOutcome
from uptime_probe.state.incidents import (
    EntryKind,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    IncidentTracker,
)
from uptime_probe.state.machine import CheckState, next_state
from uptime_probe.state.store import BATCH_MAX, DB_FILE, MIGRATIONS, RunRow, Store, daily_uptime

DAY = 86400.0
DEADLINE = 10.0

OpenStore = Callable[..., Awaitable[Store]]


def outcome(
    check: str,
    status: Status,
    at: float,
    *,
    state: Status | Literal["same"] | None = "same",
    duration: float = 0.1,
    reason: str | None = None,
    step: str | None = None,
    http_status: int | None = 200,
    message: str = "ok",
    sample: str | None = None,
    artifact: str | None = None,
    lag: float = 0.0,
) -> RunOutcome:
    if status is Status.DOWN:
        reason = reason or "empty_history"
        step = step or "conversations"
    steps = (
        StepResult(
            step or "conversations",
            status,
            reason,
            message,
            duration,
            http_status=http_status,
            response_sample=sample,
            artifact=artifact,
        ),
    )
    result = CheckResult(check, status, reason, step, message, at, duration, steps)
    return RunOutcome(result, status if state == "same" else state, None, "local", lag)


async def count(store: Store, table: str) -> int:
    async with store.db.execute(f"SELECT COUNT(*) FROM {table}") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE}s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def open_store(tmp_path: Path) -> AsyncIterator[OpenStore]:
    """`await open_store(**kwargs)` -> an open Store on tmp_path/data; closed at the end."""
    stores: list[Store] = []

    async def make(data_dir: Path | None = None, **kwargs: object) -> Store:
        store = Store(data_dir or tmp_path / "data", **kwargs)  # type: ignore[arg-type]
        await store.open()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


def opened_event(check: str = "history", at: float | None = None) -> IncidentEvent:
    """An incident opened by the real tracker: two down runs 10 s apart."""
    events: list[IncidentEvent] = []
    tracker = IncidentTracker([events.append])
    start = time.time() - 60 if at is None else at
    tracker.accept(outcome(check, Status.DOWN, start, state=None, sample='{"items": []}'))
    tracker.accept(outcome(check, Status.DOWN, start + 10, state=Status.DOWN))
    assert [e.kind for e in events] == [IncidentEventKind.OPENED]
    return events[0]


# --- schema -------------------------------------------------------------------------------


async def test_migrations_create_the_schema_once(open_store: OpenStore, tmp_path: Path) -> None:
    store = await open_store()
    assert store.path == tmp_path / "data" / DB_FILE
    assert store.path.is_file()
    async with store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cur:
        tables = {row[0] async for row in cur}
    assert {"schema_version", "runs", "rollups", "check_states", "incidents"} <= tables
    store.accept(outcome("a", Status.UP, time.time()))
    await store.close()

    # Opened again (a restart): no migration runs twice, nothing is lost.
    with capture_logs() as logs:
        again = await open_store()
    assert [e for e in logs if e["event"] == "store_migrated"] == []
    async with again.db.execute("SELECT version FROM schema_version") as cur:
        versions = [row[0] async for row in cur]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert await count(again, "runs") == 1


async def test_an_older_database_migrates_and_keeps_its_incidents(
    open_store: OpenStore, tmp_path: Path
) -> None:
    """A database a previous release wrote (schema 1): its open incident reads back, with
    no HTTP status, and goes on being written with one."""
    event = opened_event()
    path = tmp_path / "data" / DB_FILE
    path.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.executescript(MIGRATIONS[0])
        old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        old.execute("INSERT INTO schema_version VALUES (1)")
        i = event.incident
        old.execute(
            "INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                i.id, i.check, i.location, i.status.value, i.opened_at, None,
                i.first_failure_at, i.first_reason, i.first_message, i.response_sample,
                json.dumps(i.reasons), json.dumps(list(i.failing_steps)),
                json.dumps([[e.at, e.status.value, e.message] for e in i.timeline]),
                i.last_reason,
            ),
        )  # fmt: skip
        old.execute(
            "INSERT INTO runs (check_name, location, started_at, status, duration, message) "
            "VALUES (?,?,?,?,?,?)",
            (i.check, i.location, i.opened_at, "down", 0.2, "old run"),
        )
        old.commit()

    with capture_logs() as logs:
        store = await open_store()
    migrated = [e["version"] for e in logs if e["event"] == "store_migrated"]
    assert migrated == list(range(2, len(MIGRATIONS) + 1))
    (restored,) = await store.open_incidents()
    assert restored == replace(event.incident, last_http_status=None)
    # A run written before runs kept their schedule lag reads back without one.
    assert [(r.message, r.lag_seconds) for r in await store.runs(i.check)] == [("old run", None)]
    store.record_incident(IncidentEvent(IncidentEventKind.COUNTED, event.incident))
    assert await store.flush()
    assert (await store.open_incidents())[0].last_http_status == 200


async def test_a_file_that_is_not_a_database_fails_open_and_leaves_no_thread(
    tmp_path: Path,
) -> None:
    # aiosqlite's thread is not a daemon thread: left running, it kept the daemon process
    # alive after the start failed.
    def connection_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}

    (tmp_path / DB_FILE).write_bytes(b"not an SQLite database " * 100)
    before = connection_threads()
    store = Store(tmp_path)
    with pytest.raises(sqlite3.DatabaseError):
        await store.open()

    async def no_new_thread() -> bool:
        return connection_threads() <= before

    await wait_until(no_new_thread, "the connection's thread to end")
    await store.close()  # as the daemon's start-failure path does: a no-op now


async def test_journal_is_wal(open_store: OpenStore) -> None:
    # Readers (the report, the status page) never block the writer, nor the writer them.
    store = await open_store()
    async with store.db.execute("PRAGMA journal_mode") as cur:
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == "wal"


# --- writing and reading back ---------------------------------------------------------------


async def test_runs_read_back_newest_first(open_store: OpenStore) -> None:
    store = await open_store()
    now = time.time()
    store.accept(outcome("history", Status.UP, now - 20, duration=0.25))
    store.accept(
        outcome(
            "history",
            Status.DOWN,
            now - 10,
            duration=0.5,
            http_status=200,
            message="length(items) = 0, expected > 0",
            lag=0.0125,  # a busy daemon started it late: kept beside its duration
        )
    )
    store.accept(outcome("other", Status.UP, now - 5))
    assert await store.flush()
    rows = await store.runs("history")
    assert rows == [
        RunRow(
            "history",
            now - 10,
            "down",
            "empty_history",
            "conversations",
            0.5,
            200,
            "length(items) = 0, expected > 0",
            0.0125,
        ),
        RunRow("history", now - 20, "up", None, None, 0.25, 200, "ok", 0.0),
    ]
    assert [r.started_at for r in await store.runs("history", since=now - 15)] == [now - 10]
    assert await store.recent_runs({"history": 0.0, "none": 0.0}) == [
        ("history", now - 20, 0.25),
        ("history", now - 10, 0.5),
    ]
    # The last `limit`, and only those started after the time given with each check.
    assert await store.recent_runs({"history": 0.0}, limit=1) == [("history", now - 10, 0.5)]
    assert await store.recent_runs({"history": now - 20, "other": 0.0}) == [
        ("history", now - 10, 0.5),
        ("other", now - 5, 0.1),
    ]


async def test_rollups_count_per_hour_across_batches(open_store: OpenStore) -> None:
    store = await open_store()
    hour = math.floor(time.time() / 3600) * 3600 - 3 * 3600
    store.accept(outcome("a", Status.UP, hour + 1, duration=0.1))
    store.accept(outcome("a", Status.DEGRADED, hour + 2, duration=0.7))
    assert await store.flush()
    # A second batch into the same hour adds to it (an upsert, not a replace).
    store.accept(outcome("a", Status.DOWN, hour + 3599, duration=0.2))
    store.accept(outcome("a", Status.UP, hour + 3600, duration=0.4))  # the next hour
    store.accept(outcome("b", Status.DOWN, hour + 5, duration=0.3))
    assert await store.flush()
    async with store.db.execute(
        "SELECT check_name, hour, runs, up, degraded, down, duration_sum, duration_max "
        "FROM rollups ORDER BY check_name, hour"
    ) as cur:
        rows = [tuple(row) async for row in cur]
    assert rows == [
        ("a", hour, 3, 1, 1, 1, pytest.approx(1.0), 0.7),
        ("a", hour + 3600, 1, 1, 0, 0, pytest.approx(0.4), 0.4),
        ("b", hour, 1, 0, 0, 1, pytest.approx(0.3), 0.3),
    ]


async def test_check_states_keep_the_latest(open_store: OpenStore) -> None:
    store = await open_store()
    now = time.time()
    store.accept(outcome("a", Status.DOWN, now - 3, state=Status.UP))
    store.accept(outcome("a", Status.DOWN, now - 2, state=Status.DOWN))
    store.accept(outcome("b", Status.DEGRADED, now - 1, state=Status.DEGRADED))
    # A check with no state yet (a down run below the threshold) is stored as None.
    store.accept(RunOutcome(outcome("c", Status.DOWN, now).result, None, None, "local"))
    assert await store.flush()
    assert await store.check_states() == {"a": Status.DOWN, "b": Status.DEGRADED, "c": None}


async def test_incidents_upsert_and_read_back(open_store: OpenStore) -> None:
    store = await open_store()
    events: list[IncidentEvent] = []
    tracker = IncidentTracker([events.append, store.record_incident])
    now = time.time() - 600
    tracker.accept(outcome("a", Status.DOWN, now, state=None, sample='{"items": []}'))
    shot = "a/20251203T101502.123Z-conversations.png"
    tracker.accept(outcome("a", Status.DOWN, now + 10, state=Status.DOWN, artifact=shot))
    tracker.accept(
        outcome("a", Status.DOWN, now + 20, state=Status.DOWN, reason="timeout", http_status=504)
    )
    tracker.accept(outcome("b", Status.DOWN, now + 30, state=Status.DOWN))
    tracker.accept(outcome("b", Status.UP, now + 40, state=Status.UP))
    assert await store.flush()
    assert await count(store, "incidents") == 2  # one row per incident, updated in place

    latest = {e.incident.id: e.incident for e in events}
    a = next(i for i in latest.values() if i.check == "a")
    b = next(i for i in latest.values() if i.check == "b")
    assert await store.open_incidents() == [a]
    stored_a = (await store.incidents(check="a"))[0]
    assert stored_a == a
    assert stored_a.reasons == {"empty_history": 2, "timeout": 1}
    assert stored_a.response_sample == '{"items": []}'
    assert stored_a.last_http_status == 504
    assert stored_a.artifact == shot  # the latest failing run that left a screenshot
    assert stored_a.time_to_detect == 10.0
    assert [e.status for e in stored_a.timeline] == [IncidentStatus.INVESTIGATING] * 2
    # Newest first; resolved ones within `since`, open ones always.
    assert await store.incidents() == [b, a]
    assert b.resolved_at is not None
    assert await store.incidents(since=b.resolved_at + 1) == [a]
    assert await store.incidents(since=b.resolved_at) == [b, a]
    assert await store.incidents(check="nope") == []


async def test_restart_keeps_states_and_open_incidents(
    open_store: OpenStore, tmp_path: Path
) -> None:
    first = await open_store()
    tracker = IncidentTracker([first.record_incident])
    now = time.time() - 120
    runs = [
        outcome("history", Status.DOWN, now, state=None, sample="[]"),
        outcome("history", Status.DOWN, now + 10, state=Status.DOWN),
        outcome("chat", Status.UP, now + 10, state=Status.UP),
    ]
    for run in runs:
        first.accept(run)
        tracker.accept(run)
    (opened,) = tracker.open_incidents()
    await first.close()  # close flushes: no flush() here

    second = await open_store()
    assert await second.check_states() == {"history": Status.DOWN, "chat": Status.UP}
    assert await second.open_incidents() == [opened]

    # The restored incident goes on under the same id, and is stored as it goes.
    restored = IncidentTracker([second.record_incident])
    restored.restore(await second.open_incidents())
    restored.accept(outcome("history", Status.DOWN, now + 20, state=Status.DOWN))
    restored.accept(outcome("history", Status.UP, now + 30, state=Status.UP))
    assert await second.flush()
    (incident,) = await second.incidents()
    assert incident.id == opened.id
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.reasons == {"empty_history": 3}
    assert incident.resolved_at == now + 30
    assert await second.open_incidents() == []


async def test_close_flushes_what_was_accepted(open_store: OpenStore) -> None:
    store = await open_store()
    now = time.time()
    for i in range(300):
        store.accept(outcome("a", Status.UP, now + i / 1000))
    store.record_incident(opened_event())
    await store.close()
    reopened = await open_store()
    assert await count(reopened, "runs") == 300
    assert await count(reopened, "incidents") == 1
    assert store.lost == 0


# --- retention and daily uptime -------------------------------------------------------------


async def test_retention_deletes_old_runs_and_rollups_only(open_store: OpenStore) -> None:
    # Written under a retention long enough that the pass at open keeps everything.
    store = await open_store(raw_retention=1000 * DAY, rollup_retention=1000 * DAY)
    now = time.time()
    ages = [401 * DAY, 399 * DAY, 15 * DAY, 13 * DAY, 60.0]
    for age in ages:
        store.accept(outcome("a", Status.UP, now - age))
    assert await store.flush()
    assert await count(store, "runs") == 5
    assert await count(store, "rollups") == 5

    store.raw_retention, store.rollup_retention = 14 * DAY, 400 * DAY

    deleted = await store.apply_retention(now)
    assert deleted == (3, 1)  # runs older than 14 days; the rollup older than 400 days
    kept_runs = sorted(now - r.started_at for r in await store.runs("a"))
    assert kept_runs == pytest.approx([60.0, 13 * DAY])
    async with store.db.execute("SELECT hour FROM rollups ORDER BY hour") as cur:
        hours = [row[0] async for row in cur]
    assert len(hours) == 4
    assert min(hours) > now - 400 * DAY
    # Idempotent: a second pass finds nothing more.
    assert await store.apply_retention(now) == (0, 0)


async def test_retention_runs_in_the_background_from_open(
    open_store: OpenStore, tmp_path: Path
) -> None:
    store = await open_store(raw_retention=DAY)
    now = time.time()
    store.accept(outcome("a", Status.UP, now - 2 * DAY))
    store.accept(outcome("a", Status.UP, now - 60))
    await store.close()
    reopened = await open_store(raw_retention=DAY)

    async def old_run_gone() -> bool:
        return await count(reopened, "runs") == 1

    await wait_until(old_run_gone, "the background retention to delete the old run")
    assert await count(reopened, "rollups") == 2


async def test_retention_alongside_writes_loses_nothing(open_store: OpenStore) -> None:
    # Retention and the writer share one connection: a DELETE's implicit transaction once
    # made the writer's BEGIN fail, and the whole batch was lost.
    losses: list[int] = []
    store = await open_store(on_loss=losses.append)
    now = time.time()
    await asyncio.sleep(0)
    await store.apply_retention(now)  # after the pass open() started (the lock is fair)
    retention = asyncio.create_task(store.apply_retention(now))
    await asyncio.sleep(0)  # its first DELETE is on the connection's queue: then the writer
    for i in range(100):
        store.accept(outcome("a", Status.UP, now + i))
    await retention
    assert await store.flush()
    assert losses == []
    assert await count(store, "runs") == 100


async def test_daily_uptime_has_one_entry_per_day_oldest_first(open_store: OpenStore) -> None:
    store = await open_store()
    now = time.time()
    today = math.floor(now / DAY) * DAY
    # today: 2 good (up, degraded) of 3; 10 days ago: 1 of 1; 89 days ago: 0 of 2;
    # 90 days ago: outside the 90 days.
    for status in (Status.UP, Status.DEGRADED, Status.DOWN):
        store.accept(outcome("a", status, today + 1))
    store.accept(outcome("a", Status.DEGRADED, today - 10 * DAY + 3600))
    store.accept(outcome("a", Status.DOWN, today - 89 * DAY + 1))
    store.accept(outcome("a", Status.DOWN, today - 89 * DAY + 7200))
    store.accept(outcome("a", Status.UP, today - 90 * DAY + 1))
    store.accept(outcome("other", Status.DOWN, today + 2))
    assert await store.flush()

    checks = ["a", "other", "none"]
    found = daily_uptime(await store.daily_runs(checks, 90, now), checks, 90, now)
    assert sorted(found) == ["a", "none", "other"]
    assert [(d.runs, d.good) for d in found["other"] if d.runs] == [(1, 0)]
    assert len(found["none"]) == 90
    assert all(d.runs == 0 for d in found["none"])
    days = found["a"]
    assert len(days) == 90
    assert [d.day for d in days] == [today - (89 - i) * DAY for i in range(90)]
    by_age = {round((today - d.day) / DAY): d for d in days}
    assert (by_age[0].runs, by_age[0].good) == (3, 2)
    assert by_age[0].ratio == pytest.approx(2 / 3)
    assert (by_age[10].runs, by_age[10].good, by_age[10].ratio) == (1, 1, 1.0)
    assert (by_age[89].runs, by_age[89].good, by_age[89].ratio) == (2, 0, 0.0)
    empty = [d for age, d in by_age.items() if age not in (0, 10, 89)]
    assert len(empty) == 87
    assert all(d.runs == 0 and d.ratio is None for d in empty)


# --- batching, losses, a failing disk -------------------------------------------------------


async def test_writes_are_batched_into_few_transactions(open_store: OpenStore) -> None:
    store = await open_store()
    statements: list[str] = []
    await store.db.set_trace_callback(statements.append)  # runs on the SQLite thread
    now = time.time()
    for i in range(2000):
        store.accept(outcome(f"c{i % 7}", Status.UP, now + i / 1000))
    assert await store.flush()
    assert await count(store, "runs") == 2000
    commits = [s for s in statements if s.strip().upper() == "COMMIT"]
    assert 1 <= len(commits) <= 10, f"{len(commits)} transactions for 2000 runs"
    assert store.lost == 0


async def test_sparse_runs_gather_into_one_transaction(open_store: OpenStore) -> None:
    """A quiet daemon's runs arrive a few a second: a batch gathers across them (one
    transaction and its thread hand-offs, instead of one per run), until a flush."""
    store = await open_store(batch_gather=3600.0)
    statements: list[str] = []
    await store.db.set_trace_callback(statements.append)
    now = time.time()
    for i in range(5):
        store.accept(outcome("quiet", Status.UP, now + i))
        await asyncio.sleep(0.15)  # the runs' pace: sparser than a batch used to gather
    assert await store.flush(timeout=30)
    assert await count(store, "runs") == 5
    assert transactions_writing_runs(statements) == 1


def transactions_writing_runs(statements: list[str]) -> int:
    """How many committed transactions of the trace inserted runs (retention's do not)."""
    found, inserting = 0, False
    for statement in statements:
        inserting = inserting or statement.startswith("INSERT INTO runs")
        if statement.strip().upper() == "COMMIT":
            found, inserting = found + inserting, False
    return found


async def test_a_flush_writes_a_gathering_batch_at_once(open_store: OpenStore) -> None:
    store = await open_store(batch_gather=3600.0)
    store.accept(outcome("quiet", Status.UP, time.time()))
    assert await store.flush(timeout=30), "the flush waited for the batch to gather"
    assert await count(store, "runs") == 1


async def test_a_full_batch_is_written_without_waiting_to_gather(open_store: OpenStore) -> None:
    store = await open_store(batch_gather=3600.0)
    now = time.time()
    for i in range(BATCH_MAX):
        store.accept(outcome(f"c{i % 7}", Status.UP, now + i / 1000))
    deadline = time.monotonic() + 30
    while await count(store, "runs") < BATCH_MAX:
        assert time.monotonic() < deadline, "a full batch waited for its gathering time"
        await asyncio.sleep(0.05)  # a bounded poll for the writer's transaction


async def test_a_full_queue_counts_losses_and_never_raises(open_store: OpenStore) -> None:
    losses: list[int] = []
    store = await open_store(on_loss=losses.append, queue_size=10)
    now = time.time()
    with capture_logs() as logs:
        for i in range(50):  # no await in between: the writer cannot drain
            store.accept(outcome("a", Status.UP, now + i))
        store.record_incident(opened_event())
    assert sum(losses) == 41
    assert store.lost == 41
    assert sum(e["rows"] for e in logs if e["event"] == "store_write_lost") == 41
    assert await store.flush()
    assert await count(store, "runs") == 10
    # Room again once drained.
    store.accept(outcome("a", Status.UP, now + 100))
    assert await store.flush()
    assert await count(store, "runs") == 11
    assert store.lost == 41


async def _disk_full(store: Store) -> None:
    # SQLITE_FULL, as on a full disk: no page may be added to the file.
    async with store.db.execute("PRAGMA page_count") as cur:
        row = await cur.fetchone()
    assert row is not None
    await store.db.execute(f"PRAGMA max_page_count = {row[0]}")


async def _read_only(store: Store) -> None:
    # "attempt to write a readonly database", as on a read-only remount; chmod would not do
    # it, tests run as root.
    await store.db.execute("PRAGMA query_only = 1")


async def _connection_gone(store: Store) -> None:
    # The connection closed under the writer: aiosqlite raises ValueError, not sqlite3.Error.
    await store.db.close()


@pytest.mark.parametrize("break_store", [_disk_full, _read_only, _connection_gone])
async def test_an_unwritable_store_loses_rows_counts_them_and_never_blocks(
    open_store: OpenStore, break_store: Callable[[Store], Awaitable[None]]
) -> None:
    losses: list[int] = []
    store = await open_store(on_loss=losses.append)
    now = time.time()
    store.accept(outcome("a", Status.UP, now - 1))
    assert await store.flush()
    await break_store(store)

    big = "x" * 2000  # enough new pages that a full disk cannot take them
    with capture_logs() as logs:
        for batch in range(3):
            started = time.perf_counter()
            for i in range(200):
                store.accept(outcome("a", Status.DOWN, now + batch + i / 1000, message=big))
            store.record_incident(opened_event())
            assert time.perf_counter() - started < 0.5, "accept() waited for the disk"
            # The writer survives each failed batch: every flush completes.
            assert await store.flush(timeout=DEADLINE), "the writer stopped"
    assert sum(losses) == 3 * 201
    assert store.lost == 3 * 201
    lost_logs = [e for e in logs if e["event"] == "store_write_lost"]
    assert lost_logs
    assert all(e["log_level"] == "error" and e["why"] for e in lost_logs)
    assert sum(e["rows"] for e in lost_logs) == 3 * 201


async def test_a_store_that_recovers_writes_again(open_store: OpenStore) -> None:
    losses: list[int] = []
    store = await open_store(on_loss=losses.append)
    now = time.time()
    await _read_only(store)
    store.accept(outcome("a", Status.UP, now))
    assert await store.flush()
    assert losses == [1]
    await store.db.execute("PRAGMA query_only = 0")
    store.accept(outcome("a", Status.UP, now + 1))
    assert await store.flush()
    assert [r.started_at for r in await store.runs("a")] == [now + 1]


async def test_a_slow_disk_never_delays_accept(open_store: OpenStore) -> None:
    """Another connection holds the write lock: the writer waits inside SQLite (busy
    timeout), on its own thread; accept() and the event loop go on; nothing is lost."""
    losses: list[int] = []
    store = await open_store(on_loss=losses.append)
    # Let the retention pass started by open() finish first (the write lock is fair), or the
    # blocker below would hold it up instead of the writer.
    await asyncio.sleep(0)
    await store.apply_retention(time.time())
    statements: list[str] = []
    in_insert = threading.Event()

    def trace(sql: str) -> None:
        statements.append(sql)
        if sql.lstrip().upper().startswith("INSERT INTO RUNS"):
            in_insert.set()

    await store.db.set_trace_callback(trace)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        now = time.time()
        store.accept(outcome("a", Status.UP, now))

        async def writer_blocked() -> bool:
            return in_insert.is_set()

        await wait_until(writer_blocked, "the writer to be held inside its INSERT")
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(1, 1000):
            store.accept(outcome("a", Status.UP, now + i / 1000))
            if i % 100 == 0:
                await asyncio.sleep(0)  # the loop turns: nothing on it waits for the disk
        assert loop.time() - started < 0.5
        assert await count_committed(store.path) == 0
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert await store.flush(timeout=DEADLINE)
    assert losses == []
    assert await count(store, "runs") == 1000


async def count_committed(path: Path) -> int:
    """Runs committed so far, seen from another connection (what a reader would see)."""

    def read() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as reader:
            return int(reader.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    return await asyncio.to_thread(read)


async def test_text_sqlite_cannot_encode_does_not_lose_the_batch(open_store: OpenStore) -> None:
    # A JSON body may escape a lone surrogate ("\udc80"); an assertion message that quotes it
    # cannot be encoded as UTF-8. It is stored replaced, the rest of its batch with it.
    losses: list[int] = []
    store = await open_store(on_loss=losses.append)
    now = time.time()
    store.accept(outcome("a", Status.UP, now))
    store.accept(outcome("a", Status.DOWN, now + 1, message="items[0] = '\udc80'"))
    events: list[IncidentEvent] = []
    tracker = IncidentTracker([events.append, store.record_incident])
    tracker.accept(outcome("b", Status.DOWN, now, state=Status.DOWN, sample='["\udc80"]'))
    store.accept(outcome("a", Status.UP, now + 2))
    assert await store.flush()
    assert losses == []
    assert [r.message for r in await store.runs("a")] == ["ok", "items[0] = '?'", "ok"]
    (incident,) = await store.incidents(check="b")
    assert incident.response_sample == '["?"]'


async def test_a_flapping_incident_keeps_a_small_row(open_store: OpenStore) -> None:
    """10,000 runs, down and up in turn, under success_threshold 2: the incident stays open
    and is rewritten on every run; its row stays small and reads back as it was."""
    store = await open_store()
    events: list[IncidentEvent] = []
    tracker = IncidentTracker([events.append, store.record_incident])
    start = time.time() - 3 * 86400  # one run every 10 s
    state = CheckState()
    for i in range(10_002):
        status = Status.DOWN if i < 2 or i % 2 else Status.UP
        state = next_state(state, status, failure_threshold=2, success_threshold=2)
        message = f"length(items) = 0, expected > 0 (run {i})"
        tracker.accept(
            outcome("flappy", status, start + 10 * i, state=state.state, message=message)
        )
        if i % 1000 == 0:
            assert await store.flush()  # as the writer keeps up in the daemon
    assert await store.flush()
    latest = events[-1].incident
    assert latest.open
    async with store.db.execute(
        "SELECT length(timeline), length(id) + length(first_message) + length(reasons) "
        "+ length(failing_steps) + length(timeline) + length(coalesce(response_sample, '')) "
        "FROM incidents WHERE check_name = 'flappy'"
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    timeline_bytes, row_bytes = row
    assert timeline_bytes < 1024, timeline_bytes  # two entries (was 670 KB after a day)
    assert row_bytes < 2048, row_bytes
    (stored,) = await store.incidents(check="flappy")
    assert stored == latest
    assert [(e.kind, e.count) for e in stored.timeline] == [
        (EntryKind.UPDATE, 1),
        (EntryKind.FLAPPING, 10_000),
    ]
    assert stored.timeline[1].until == start + 10 * 10_001


async def test_rows_written_before_counted_entries_read_back(open_store: OpenStore) -> None:
    """A timeline stored as [at, status, message] (before counted entries) still reads."""
    store = await open_store()
    event = opened_event("old")
    store.record_incident(event)
    assert await store.flush()
    async with store.db.execute("SELECT timeline FROM incidents") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    assert all(len(entry) == 3 for entry in json.loads(row[0]))
    (stored,) = await store.incidents(check="old")
    assert stored == event.incident


@pytest.mark.parametrize("database", ["good", "not a database"])
async def test_readers_never_see_a_connection_that_is_still_opening(
    tmp_path: Path, database: str
) -> None:
    # The daemon retries opening a store on a read-only disk while the status page reads
    # it. A reader handed the connection of a failing attempt had it closed under it, and
    # aiosqlite says so with a ValueError: the page answered 500.
    if database != "good":
        (tmp_path / DB_FILE).write_bytes(b"not an SQLite database " * 100)
    store = Store(tmp_path)
    opening = asyncio.create_task(store.open())
    polls = 0
    while not opening.done():
        polls += 1
        with pytest.raises(sqlite3.OperationalError, match="store is not open"):
            await store.recent_runs({"a": 0.0})
        await asyncio.sleep(0)
    assert polls > 1  # the reads interleaved with the opening's own awaits
    if database == "good":
        await opening
        assert await store.recent_runs({"a": 0.0}) == []
    else:
        with pytest.raises(sqlite3.DatabaseError):
            await opening
    await store.close()
    with pytest.raises(sqlite3.OperationalError, match="store is not open"):
        await store.recent_runs({"a": 0.0})
