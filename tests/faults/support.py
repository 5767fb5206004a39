"""Helpers for the fault tests: a watched daemon, a counting target, cheap scrapes.

The daemon runs as a real subprocess (tests/daemon/support.py's `DaemonProcess`), started
through loopwatch.py so that every test here also checks that nothing in uptime_probe
held its event loop for more than 50 ms (see loopwatch.py for how that is measured).
Targets live in the test's own loop: tests never block it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.daemon.support import DaemonProcess, LogRecord
from uptime_probe.scheduler import start_offset
from uptime_probe.state.store import DB_FILE

LOOPWATCH = Path(__file__).with_name("loopwatch.py")
FDLIMIT = Path(__file__).with_name("fdlimit.py")
POLL = 0.05


def watched_daemon(
    config_path: Path,
    *,
    grace: float = 5.0,
    log_level: str = "info",
    extra_args: Iterable[str] = (),
    nofile: tuple[int, int] | None = None,
) -> DaemonProcess:
    """`uptime-probe run` as DaemonProcess runs it, but through loopwatch.py; with
    `nofile` (soft, hard), under that RLIMIT_NOFILE from its first instruction."""
    daemon = DaemonProcess(
        config_path, grace=grace, log_level=log_level, extra_args=list(extra_args)
    )
    assert daemon.args[1:3] == ["-m", "uptime_probe.cli"], daemon.args
    if nofile is None:
        daemon.args[1:3] = [str(LOOPWATCH)]
    else:
        daemon.args[1:3] = [str(FDLIMIT), str(nofile[0]), str(nofile[1])]
    return daemon


def give_log_pipe_room(daemon: DaemonProcess) -> None:
    """A 1 MiB pipe for the daemon's log lines (64 KiB by default).

    The daemon's log thread drops lines (and counts them) when the pipe stays full: the
    test's reader thread, sharing a loaded machine, must not cost the test the lines it
    asserts on. (test_stalled_log_reader.py is the test of a reader that stops.)
    """
    stream = daemon.process.stdout
    assert stream is not None
    with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep the default
        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)


LOOP_LIMIT = 0.05


def loop_blocks(daemon: DaemonProcess, *, ours: bool = True) -> list[LogRecord]:
    """`loop_blocked` records (loopwatch.py) after the daemon started serving; start-up is
    left out, as it loads the config before anything runs.

    With `ours`, only callbacks in which uptime_probe code itself computed for more than
    LOOP_LIMIT: Python and C time in the loop's thread, less the garbage collector's.
    That is what "our code blocked the loop" means, and what a fix in our code can change.
    Left out, and reported in docs/reliability.md from these same records: collector
    pauses (where they land is chance), kernel time (on loopback it includes the target's
    TCP work), and time off the CPU waiting for the GIL held by another thread."""
    records = daemon.logs()
    started = next(
        (i for i, r in enumerate(records) if r.get("event") == "daemon_started"), len(records)
    )
    return [
        r for r in records[started:]
        if r.get("event") == "loop_blocked"
        and (not ours or (r["ours"] and r["user_seconds"] - r["gc_seconds"] > LOOP_LIMIT))
    ]  # fmt: skip


def assert_loop_never_blocked(daemon: DaemonProcess) -> None:
    every = loop_blocks(daemon, ours=False)
    # The figures docs/reliability.md quotes (shown with pytest -s).
    print(
        f"loopwatch: {len(every)} callbacks held the loop > {LOOP_LIMIT * 1000:.0f} ms; worst "
        f"held {max((r['held_seconds'] for r in every), default=0):.3f}s, "
        f"gc {max((r['gc_seconds'] for r in every), default=0):.3f}s, our code's CPU "
        f"{max((r['user_seconds'] - r['gc_seconds'] for r in every if r['ours']), default=0):.3f}s"
    )
    blocked = loop_blocks(daemon)
    assert blocked == [], "uptime_probe held the event loop > 50 ms:\n" + "\n".join(
        f"  {r['held_seconds']}s at {r['where']} (innermost {r['innermost']}; "
        f"user {r['user_seconds']}s, gc {r['gc_seconds']}s gen {r['gc_generation']}, "
        f"kernel {r['kernel_seconds']}s, "
        f"wall {r['wall_seconds']}s, {r['samples']} samples)"
        for r in blocked
    )


# --- a target that counts ------------------------------------------------------------------


@dataclass
class CountingTarget:
    """An HTTP target: `GET /<check>` answers `{"ok": true}` after `delay` seconds.

    It records when each request arrived, by the path's first segment (the checks here
    name themselves in their URL), and how many are open at once.
    """

    delay: float = 0.0
    status_for: Callable[[str, int], int] = lambda _check, _count: 200
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    answered: int = 0
    open_now: int = 0
    max_open: int = 0
    open_by_check: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    max_open_per_check: int = 0
    all_open: asyncio.Event = field(default_factory=asyncio.Event)
    expect_open: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{check}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        check = request.match_info["check"]
        self.arrivals[check].append(time.time())
        self.open_now += 1
        self.open_by_check[check] += 1
        self.max_open = max(self.max_open, self.open_now)
        self.max_open_per_check = max(self.max_open_per_check, self.open_by_check[check])
        if self.expect_open and self.open_now >= self.expect_open:
            self.all_open.set()
        try:
            if self.delay:
                await asyncio.sleep(self.delay)  # the target's behaviour: a slow answer
            status = self.status_for(check, len(self.arrivals[check]))
            self.answered += 1
            return web.json_response({"ok": status == 200}, status=status)
        finally:
            self.open_now -= 1
            self.open_by_check[check] -= 1

    def count(self, check: str) -> int:
        return len(self.arrivals[check])


# --- cheap scrapes ---------------------------------------------------------------------------


def sample(text: str, name: str, labels: str = "") -> float | None:
    """One sample of the text exposition, by exact name and label text (as the daemon
    renders it, e.g. `check="a",location="local"`), without parsing the whole scrape:
    with thousands of checks a full parse costs the test's loop seconds."""
    head = f"\n{name}{{{labels}}} " if labels else f"\n{name} "
    start = text.find(head)
    if start < 0:
        return None
    start += len(head)
    return float(text[start : text.index("\n", start)])


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def run_rows(data_dir: Path) -> int:
    with sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM runs").fetchone()
    return int(count)


def names_firing_together(
    prefix: str, count: int, interval: float, window: float, search: int = 100_000
) -> list[str]:
    """`count` check names whose start offsets (a hash of the name) fall in the first
    `window` seconds of the interval, so all of them fire within `window` of each other."""
    names: list[str] = []
    for index in range(search):
        name = f"{prefix}_{index:05d}"
        if start_offset(name, interval) < window:
            names.append(name)
            if len(names) == count:
                return names
    raise AssertionError(f"only {len(names)} of {count} names in {search} tries")


async def poll_until(
    condition: Callable[[], Any], what: str, timeout: float, interval: float = POLL
) -> Any:
    """Poll a cheap condition (no I/O) until truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
