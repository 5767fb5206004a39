"""SQLite history: every run's summary, hourly rollups, check states and incidents.

One writer task drains a bounded queue in batches, one transaction a batch, on
aiosqlite's own thread: a slow or failing disk never delays a probe. A full queue or
a failed write loses those rows, counts them (`on_loss`) and logs; probing goes on.

A store that cannot be opened at all (a full or read-only data directory, a file that
is not a database) does not stop the daemon either: `start` reports it, tries again
every `retry_interval`, and meanwhile reads raise `StoreUnavailable` and writes are
counted as lost. Restarting during a disk-full event used to exit 1, so a crash loop
took the monitoring away exactly when it was needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from uptime_probe.probe.model import Status
from uptime_probe.sinks import RunOutcome
from uptime_probe.state.incidents import (
    EntryKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
    TimelineEntry,
)
from uptime_probe.state.maintenance import Window, WindowSource

log = structlog.get_logger("uptime_probe.store")

DB_FILE = "uptime-probe.sqlite3"
BATCH_MAX = 500
# How long a batch gathers after its first row, at most: until BATCH_MAX rows are queued or
# a flush asks for it, whichever comes first. Each batch is one transaction and about ten
# wake-ups of the loop and of aiosqlite's thread (each call a hand-off each way): a quiet
# daemon (3.3 runs/s) made one a run with 0.1 s, and pays for one a second now. A busy one
# fills a batch sooner and writes it at once. The history is readable up to this late.
BATCH_GATHER_SECONDS = 1.0
RETENTION_EVERY_SECONDS = 3600.0

# Each entry moves the schema one version up; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        check_name TEXT NOT NULL,
        location TEXT NOT NULL,
        started_at REAL NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        step TEXT,
        duration REAL NOT NULL,
        http_status INTEGER,
        message TEXT NOT NULL
    );
    CREATE INDEX runs_by_check_time ON runs (check_name, started_at);
    CREATE INDEX runs_by_time ON runs (started_at);
    CREATE TABLE rollups (
        check_name TEXT NOT NULL,
        hour INTEGER NOT NULL,
        runs INTEGER NOT NULL,
        up INTEGER NOT NULL,
        degraded INTEGER NOT NULL,
        down INTEGER NOT NULL,
        duration_sum REAL NOT NULL,
        duration_max REAL NOT NULL,
        PRIMARY KEY (check_name, hour)
    );
    CREATE TABLE check_states (
        check_name TEXT PRIMARY KEY,
        state TEXT,
        updated_at REAL NOT NULL
    );
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        check_name TEXT NOT NULL,
        location TEXT NOT NULL,
        status TEXT NOT NULL,
        opened_at REAL NOT NULL,
        resolved_at REAL,
        first_failure_at REAL NOT NULL,
        first_reason TEXT NOT NULL,
        first_message TEXT NOT NULL,
        response_sample TEXT,
        reasons TEXT NOT NULL,
        failing_steps TEXT NOT NULL,
        timeline TEXT NOT NULL,
        last_reason TEXT NOT NULL
    );
    CREATE INDEX incidents_by_open ON incidents (opened_at);
    CREATE INDEX incidents_by_status ON incidents (status);
    """,
    # 2: the HTTP status of an incident's latest failing run (NULL for incidents before it).
    """
    ALTER TABLE incidents ADD COLUMN last_http_status INTEGER;
    """,
    # 3: the checks an incident held back (depends_on), and maintenance windows opened
    # through the API (config windows live in the config).
    """
    ALTER TABLE incidents ADD COLUMN held_back TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE maintenance_windows (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        checks TEXT NOT NULL,
        tags TEXT NOT NULL,
        start REAL NOT NULL,
        end_at REAL NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX maintenance_windows_by_end ON maintenance_windows (end_at);
    """,
    # 4: the file of its latest failing run that left one: a browser step's screenshot.
    """
    ALTER TABLE incidents ADD COLUMN artifact TEXT;
    """,
    # 5: each run's schedule lag beside its duration: how late a busy daemon started it
    # (NULL for runs before it).
    """
    ALTER TABLE runs ADD COLUMN lag REAL;
    """,
)


class StoreUnavailable(sqlite3.OperationalError):
    """The store is not open: a `sqlite3.Error`, so every reader that survives a failed
    read (the status page, the API) survives this one too."""


def _describe(exc: BaseException) -> str:
    """What went wrong, without the path (logged beside it): "database or disk is full"."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _filesystem_state(path: Path) -> str:
    """ " (the filesystem is read-only)", " (... is full)" or "" for the file's directory."""
    try:
        found = os.statvfs(path.parent)
    except OSError:
        return ""
    if found.f_flag & os.ST_RDONLY:
        return " (the filesystem is read-only)"
    if found.f_bavail == 0:
        return " (the filesystem is full)"
    return ""


@dataclass(frozen=True, slots=True)
class RunRow:
    check: str
    started_at: float
    status: str
    reason: str | None
    step: str | None
    duration_seconds: float
    http_status: int | None
    message: str
    # Seconds after its planned tick the run started (None: written before it was kept).
    lag_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class DailyUptime:
    day: int  # epoch seconds of the UTC day's start
    runs: int
    good: int

    @property
    def ratio(self) -> float | None:
        return self.good / self.runs if self.runs else None


_Write = tuple[str, Any]


def _text(value: str) -> str:
    """Text SQLite can store: a lone surrogate (a JSON body can escape one into a message)
    cannot be encoded as UTF-8 and would fail the whole batch, so it becomes `?`."""
    if value.isascii():
        return value
    return value.encode("utf-8", "replace").decode("utf-8")


def _entry_row(entry: TimelineEntry) -> list[Any]:
    """[at, status, message], and for a counted entry its kind, count and end as well."""
    row: list[Any] = [entry.at, entry.status.value, _text(entry.message)]
    if entry.kind is not EntryKind.UPDATE:
        row += [entry.kind.value, entry.count, entry.until]
    return row


def _entry_from_row(row: Sequence[Any]) -> TimelineEntry:
    at, status, message, *counted = row
    if not counted:
        return TimelineEntry(at, IncidentStatus(status), message)
    kind, count, until = counted
    return TimelineEntry(at, IncidentStatus(status), message, EntryKind(kind), count, until)


def _incident_row(incident: Incident) -> tuple[Any, ...]:
    return (
        incident.id,
        incident.check,
        incident.location,
        incident.status.value,
        incident.opened_at,
        incident.resolved_at,
        incident.first_failure_at,
        incident.first_reason,
        _text(incident.first_message),
        _text(incident.response_sample) if incident.response_sample is not None else None,
        json.dumps(incident.reasons),
        json.dumps(list(incident.failing_steps)),
        json.dumps([_entry_row(entry) for entry in incident.timeline]),
        incident.last_reason,
        incident.last_http_status,
        json.dumps(list(incident.held_back)),
        incident.artifact,
    )


def _incident_from_row(row: Sequence[Any]) -> Incident:
    return Incident(
        id=row[0],
        check=row[1],
        location=row[2],
        status=IncidentStatus(row[3]),
        opened_at=row[4],
        resolved_at=row[5],
        first_failure_at=row[6],
        first_reason=row[7],
        first_message=row[8],
        response_sample=row[9],
        reasons=json.loads(row[10]),
        failing_steps=tuple(json.loads(row[11])),
        timeline=tuple(_entry_from_row(entry) for entry in json.loads(row[12])),
        last_reason=row[13],
        last_http_status=row[14],
        held_back=tuple(json.loads(row[15])),
        artifact=row[16],
    )


_SELECT_INCIDENTS = (
    "SELECT id, check_name, location, status, opened_at, resolved_at, first_failure_at, "
    "first_reason, first_message, response_sample, reasons, failing_steps, timeline, "
    "last_reason, last_http_status, held_back, artifact FROM incidents "
)


class Store:
    def __init__(
        self,
        data_dir: Path,
        *,
        on_loss: Callable[[int], None] = lambda _n: None,
        queue_size: int = 20_000,
        raw_retention: float = 14 * 86400.0,
        rollup_retention: float = 400 * 86400.0,
        batch_gather: float = BATCH_GATHER_SECONDS,
    ) -> None:
        self.path = data_dir / DB_FILE
        self._on_loss = on_loss
        self._queue: asyncio.Queue[_Write] = asyncio.Queue(maxsize=queue_size)
        self._batch_gather = batch_gather
        # Set when the batch gathering should be written now: it is full, or a flush waits.
        self._write_now = asyncio.Event()
        self._flushes = 0  # flushes waiting: no batch gathers meanwhile
        self.raw_retention = raw_retention
        self.rollup_retention = rollup_retention
        self._db: aiosqlite.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        # One connection, one transaction at a time: the writer's batches and retention
        # take turns, or a DELETE's implicit transaction fails the writer's BEGIN.
        self._write_lock = asyncio.Lock()
        self.lost = 0
        # Why the store cannot be opened (None once open) and why the last write failed
        # (None once one succeeds): what `available` and `problem` report.
        self._open_error: str | None = None
        self._write_error: str | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    @property
    def available(self) -> bool:
        """Open, and its last write (if any) succeeded."""
        return self._db is not None and self._write_error is None

    @property
    def problem(self) -> str | None:
        """Why the store is not available, in a few words; None when it is."""
        if self._open_error is not None:
            return f"cannot be opened: {self._open_error}"
        if self._write_error is not None:
            return f"writes are failing: {self._write_error}"
        return None

    async def start(
        self,
        *,
        retry_interval: float,
        on_opened: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Open the store for the daemon; if it cannot be opened, keep trying in the
        background, calling `on_opened` once it is. True if it opened now."""
        try:
            await self.open()
        except (sqlite3.Error, OSError) as exc:
            await self._open_failed(exc, retry_interval)
            self._reopen = asyncio.create_task(
                self._reopen_loop(retry_interval, on_opened), name="store-reopen"
            )
            return False
        return True

    async def _open_failed(self, exc: BaseException, retry_interval: float) -> None:
        # SQLite says "unable to open database file" for a read-only directory: the
        # filesystem's own state says which it is.
        self._open_error = _describe(exc) + await asyncio.to_thread(_filesystem_state, self.path)
        log.error(
            "store_unavailable",
            path=str(self.path.absolute()),
            error=self._open_error,
            retry_in_seconds=retry_interval,
        )

    async def _reopen_loop(
        self, retry_interval: float, on_opened: Callable[[], Awaitable[None]] | None
    ) -> None:
        while True:
            # Not a cancellable sleep: `close` waits for an attempt under way to end, or
            # aiosqlite's thread could outlive the store.
            try:
                await asyncio.wait_for(self._closing.wait(), retry_interval)
                return
            except TimeoutError:
                pass
            try:
                await self.open()
            except (sqlite3.Error, OSError) as exc:
                await self._open_failed(exc, retry_interval)
                continue
            self._open_error = None
            log.info("store_available", path=str(self.path.absolute()))
            if on_opened is not None:
                try:
                    await on_opened()
                except Exception:
                    log.exception("store_reopen_hook_failed")
            return

    async def open(self, *, readonly: bool = False) -> None:
        """Open (creating and migrating) the database; `readonly` only reads, for reports."""
        if readonly:
            self._db = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True)
            return
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        # Readers see the connection only once it is migrated: a status page read during a
        # failing retry (a read-only disk) got a connection closed under it, and aiosqlite
        # says so with a ValueError, which no reader expects.
        db = await aiosqlite.connect(self.path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await _migrate(db)
        except BaseException:
            # Not a database, or one we cannot migrate: close, or aiosqlite's (non-daemon)
            # thread keeps the process alive after the error.
            await db.close()
            raise
        self._db = db
        self._writer = asyncio.create_task(self._write_loop(), name="store-writer")
        self._retention = asyncio.create_task(self._retention_loop(), name="store-retention")

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreUnavailable(self._open_error or "store is not open")
        return self._db

    # -- writing (sinks: called on the event loop, never block) ------------------------

    def _enqueue(self, write: _Write) -> None:
        if self._open_error is not None:
            # Not opened, and retried on its own schedule: counted, not queued (nothing
            # drains the queue meanwhile) and not logged row by row.
            self.lost += 1
            self._on_loss(1)
            return
        try:
            self._queue.put_nowait(write)
        except asyncio.QueueFull:
            self._lose(1, "queue full")
        if self._queue.qsize() >= BATCH_MAX - 1:  # with the row the writer holds: full
            self._write_now.set()

    def _lose(self, count: int, why: str) -> None:
        self.lost += count
        self._on_loss(count)
        log.error("store_write_lost", rows=count, why=why)

    def accept(self, outcome: RunOutcome) -> None:
        self._enqueue(("run", outcome))

    def record_incident(self, event: IncidentEvent) -> None:
        self.save_incident(event.incident)

    def save_incident(self, incident: Incident) -> None:
        self._enqueue(("incident", incident))

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if len(batch) + self._queue.qsize() < BATCH_MAX and not self._flushes:
                # Let a batch gather: one row a transaction cost 65 us of CPU at 1,000
                # runs/s, a 500-row batch 9 us a row (docs/benchmarks.md).
                self._write_now.clear()
                timer = asyncio.get_running_loop().call_later(
                    self._batch_gather, self._write_now.set
                )
                try:
                    await self._write_now.wait()
                finally:
                    timer.cancel()
            while len(batch) < BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self._write_lock:
                    try:
                        await self._write_batch(batch)
                    except Exception as exc:
                        # Whatever fails (disk, a closed connection, a value SQLite will not
                        # bind), the writer goes on: these rows are lost and counted.
                        self._write_error = _describe(exc)
                        self._lose(len(batch), f"{type(exc).__name__}: {exc}")
                        await self._rollback()
                    else:
                        if self._write_error is not None:
                            log.info("store_writes_resumed", path=str(self.path.absolute()))
                        self._write_error = None
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            await self.db.rollback()

    async def _write_batch(self, batch: Iterable[_Write]) -> None:
        runs: list[tuple[Any, ...]] = []
        rollups: dict[tuple[str, int], list[Any]] = {}
        states: dict[str, tuple[Any, ...]] = {}
        incidents: dict[str, tuple[Any, ...]] = {}
        for kind, item in batch:
            if kind == "run":
                outcome: RunOutcome = item
                r = outcome.result
                runs.append(
                    (
                        r.check,
                        outcome.location,
                        r.started_at,
                        r.status.value,
                        r.shown_reason,  # a degraded run's cause too, for the API
                        r.failed_step,
                        r.duration_seconds,
                        r.http_status,
                        _text(r.message),
                        outcome.lag_seconds,
                    )
                )
                key = (r.check, int(r.started_at // 3600 * 3600))
                agg = rollups.get(key, [0, 0, 0, 0, 0.0, 0.0])
                agg[0] += 1
                agg[1 + (Status.UP, Status.DEGRADED, Status.DOWN).index(r.status)] += 1
                agg[4] += r.duration_seconds
                agg[5] = max(agg[5], r.duration_seconds)
                rollups[key] = agg
                states[r.check] = (
                    r.check,
                    outcome.state.value if outcome.state else None,
                    r.started_at,
                )
            else:
                incident: Incident = item
                incidents[incident.id] = _incident_row(incident)
        db = self.db
        await db.execute("BEGIN")
        if runs:
            await db.executemany(
                "INSERT INTO runs (check_name, location, started_at, status, reason, step, "
                "duration, http_status, message, lag) VALUES (?,?,?,?,?,?,?,?,?,?)",
                runs,
            )
        if rollups:
            await db.executemany(
                "INSERT INTO rollups VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (check_name, hour) DO "
                "UPDATE SET runs=runs+excluded.runs, up=up+excluded.up, "
                "degraded=degraded+excluded.degraded, down=down+excluded.down, "
                "duration_sum=duration_sum+excluded.duration_sum, "
                "duration_max=MAX(duration_max, excluded.duration_max)",
                [(c, h, *agg) for (c, h), agg in rollups.items()],
            )
        if states:
            await db.executemany(
                "INSERT INTO check_states VALUES (?,?,?) ON CONFLICT (check_name) DO UPDATE SET "
                "state=excluded.state, updated_at=excluded.updated_at",
                list(states.values()),
            )
        if incidents:
            await db.executemany(
                "INSERT OR REPLACE INTO incidents (id, check_name, location, status, opened_at, "
                "resolved_at, first_failure_at, first_reason, first_message, response_sample, "
                "reasons, failing_steps, timeline, last_reason, last_http_status, held_back, "
                "artifact) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                list(incidents.values()),
            )
        await db.commit()

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (or lost), without waiting for
        a batch to gather. False on timeout."""
        self._flushes += 1
        self._write_now.set()
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            return False
        finally:
            self._flushes -= 1
        return True

    async def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        if self._reopen is not None:
            await asyncio.gather(self._reopen, return_exceptions=True)
            self._reopen = None
        if self._writer is not None:
            flushed = await self.flush(timeout)
            if not flushed:
                self._lose(self._queue.qsize(), "store did not flush before stop")
        for task in (self._writer, self._retention):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._writer = self._retention = None
        db, self._db = self._db, None  # new reads fail as StoreUnavailable from here
        if db is not None:
            await db.close()

    # -- retention -------------------------------------------------------------------

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.apply_retention(time.time())
            except (sqlite3.Error, OSError) as exc:
                log.error("store_retention_failed", error=str(exc))
            await asyncio.sleep(RETENTION_EVERY_SECONDS)

    async def apply_retention(self, now: float) -> tuple[int, int]:
        """Delete raw runs past raw_retention and rollups past rollup_retention."""
        async with self._write_lock:
            db = self.db
            try:
                runs = await db.execute(
                    "DELETE FROM runs WHERE started_at < ?", (now - self.raw_retention,)
                )
                rollups = await db.execute(
                    "DELETE FROM rollups WHERE hour < ?", (now - self.rollup_retention,)
                )
                # API windows are kept as long as the runs they covered.
                await db.execute(
                    "DELETE FROM maintenance_windows WHERE end_at < ?",
                    (now - self.raw_retention,),
                )
                await db.commit()
            except (sqlite3.Error, OSError):
                await self._rollback()
                raise
        return runs.rowcount, rollups.rowcount

    # -- maintenance windows opened through the API -----------------------------------

    async def save_window(self, window: Window) -> None:
        """Write (or rewrite) an API window now, committed before this returns: the API
        answers only once a restart would keep it. Not through the batching queue, which
        may lose rows under pressure."""
        if window.start is None or window.end is None:
            raise ValueError("only one-off windows are stored")
        row = (
            window.id,
            _text(window.name),
            _text(window.description),
            json.dumps(list(window.checks)),
            json.dumps(list(window.tags)),
            window.start,
            window.end,
            window.created_at if window.created_at is not None else window.start,
        )
        async with self._write_lock:
            try:
                await self.db.execute(
                    "INSERT OR REPLACE INTO maintenance_windows VALUES (?,?,?,?,?,?,?,?)", row
                )
                await self.db.commit()
            except (sqlite3.Error, OSError):
                await self._rollback()
                raise

    async def windows(self, ending_after: float) -> list[Window]:
        """API windows that end after `ending_after`, by start."""
        query = (
            "SELECT id, name, description, checks, tags, start, end_at, created_at "
            "FROM maintenance_windows WHERE end_at > ? ORDER BY start"
        )
        async with self.db.execute(query, (ending_after,)) as cursor:
            return [
                Window(
                    id=row[0],
                    name=row[1],
                    source=WindowSource.API,
                    description=row[2],
                    checks=tuple(json.loads(row[3])),
                    tags=tuple(json.loads(row[4])),
                    start=row[5],
                    end=row[6],
                    created_at=row[7],
                )
                async for row in cursor
            ]

    # -- reading ---------------------------------------------------------------------

    async def check_states(self) -> dict[str, Status | None]:
        async with self.db.execute("SELECT check_name, state FROM check_states") as cursor:
            return {name: Status(state) if state else None async for name, state in cursor}

    async def open_incidents(self) -> list[Incident]:
        async with self.db.execute(
            _SELECT_INCIDENTS + "WHERE status != 'resolved' ORDER BY opened_at"
        ) as cursor:
            return [_incident_from_row(row) async for row in cursor]

    async def incidents(
        self, since: float = 0.0, check: str | None = None, limit: int = 200
    ) -> list[Incident]:
        """Incidents open at or after `since` (still open ones always), newest first."""
        query = (
            _SELECT_INCIDENTS
            + "WHERE (resolved_at IS NULL OR resolved_at >= ?) AND (? IS NULL OR check_name = ?) "
            "ORDER BY opened_at DESC LIMIT ?"
        )
        async with self.db.execute(query, (since, check, check, limit)) as cursor:
            return [_incident_from_row(row) async for row in cursor]

    async def runs(self, check: str, since: float = 0.0, limit: int = 1000) -> list[RunRow]:
        query = (
            "SELECT check_name, started_at, status, reason, step, duration, http_status, message, "
            "lag FROM runs WHERE check_name = ? AND started_at >= ? ORDER BY started_at DESC "
            "LIMIT ?"
        )
        async with self.db.execute(query, (check, since, limit)) as cursor:
            return [RunRow(*row) async for row in cursor]

    async def daily_runs(self, checks: Collection[str], days: int, now: float) -> list[DayRow]:
        """(check, day, runs, good runs) for each UTC day of the last `days` (today the
        last) in which each of `checks` ran; `daily_uptime` makes the page's days of them.

        One query for every check: the status page reads all of them on every view, and a
        query per check cost 0.7 s at 500 checks (each a trip to aiosqlite's thread). The
        rows come as SQLite gives them, so the reader shapes them where it likes (the page:
        in a web thread, not on the event loop)."""
        query = (
            "SELECT check_name, (hour / 86400) * 86400 AS day, SUM(runs), SUM(up + degraded) "
            "FROM rollups WHERE check_name IN (SELECT value FROM json_each(?)) AND hour >= ? "
            "GROUP BY check_name, day"
        )
        async with self.db.execute(query, (json.dumps(list(checks)), _first_day(days, now))) as c:
            return list(await c.fetchall())  # type: ignore[arg-type]

    async def recent_runs(self, after: Mapping[str, float], limit: int = 60) -> list[RecentRow]:
        """(check, started_at, duration) of each check's last `limit` runs started after
        `after[check]`, by check and then oldest first.

        One query for every check, each an index seek: a reader that keeps what it read
        asks only for the runs stored since (`after` its newest), a few rows a check."""
        query = (
            "SELECT c.key, r.started_at, r.duration FROM json_each(?) AS c "
            "JOIN runs AS r ON r.check_name = c.key AND r.started_at > c.value "
            "AND r.started_at >= COALESCE((SELECT started_at FROM runs WHERE check_name = c.key "
            "ORDER BY started_at DESC LIMIT 1 OFFSET ?), -1e308) "
            "ORDER BY c.key, r.started_at"
        )
        async with self.db.execute(query, (json.dumps(dict(after)), limit - 1)) as cursor:
            return list(await cursor.fetchall())  # type: ignore[arg-type]


async def _migrate(db: aiosqlite.Connection) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    async with db.execute("SELECT MAX(version) FROM schema_version") as cursor:
        row = await cursor.fetchone()
    current = row[0] if row and row[0] is not None else 0
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        await db.executescript(
            f"BEGIN;\n{script}\nINSERT INTO schema_version VALUES ({version});\nCOMMIT;"
        )
        log.info("store_migrated", version=version)


DayRow = tuple[str, int, int, int]  # check, UTC day (epoch seconds), runs, good runs
RecentRow = tuple[str, float, float]  # check, started_at, duration


def _first_day(days: int, now: float) -> int:
    return int(math.floor(now / 86400) * 86400 - (days - 1) * 86400)


def daily_uptime(
    rows: Iterable[DayRow], checks: Iterable[str], days: int, now: float
) -> dict[str, list[DailyUptime]]:
    """Per check, one entry per UTC day of the last `days`, oldest first, from
    `Store.daily_runs` (read with the same `days` and `now`)."""
    found: dict[str, dict[int, tuple[int, int]]] = {name: {} for name in checks}
    for name, day, runs, good in rows:
        if name in found:
            found[name][int(day)] = (runs, good)
    first = _first_day(days, now)
    span = range(first, first + days * 86400, 86400)
    return {
        name: [DailyUptime(day, *by_day.get(day, (0, 0))) for day in span]
        for name, by_day in found.items()
    }
