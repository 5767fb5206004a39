"""What every measurement shares: processes pinned to cores, /proc readings, HTTP, statistics.

Rules every helper follows (the same as tests/e2e/stack.py):
- a program writes stdout and stderr to one log file (never a pipe that could fill up);
- every wait is a bounded poll that fails at once, quoting the log, if the program exited;
- every process started is stopped by its own Popen handle: SIGTERM, a bounded wait, SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
STOP_GRACE_SECONDS = 15.0


class BenchError(RuntimeError):
    """A measurement could not be taken; the message says why, with the log tail."""


# -- cores ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cores:
    """Contender (the tool being measured) on one core, target and load tools on another."""

    contender: int | None
    target: int | None

    @classmethod
    def detect(cls) -> Cores:
        available = sorted(os.sched_getaffinity(0))
        if len(available) >= 2:
            return cls(available[0], available[1])
        return cls(None, None)  # one core: nothing to pin apart

    def describe(self) -> str:
        if self.contender is None:
            return "not pinned (one core available)"
        return f"contender on core {self.contender}, targets and load tools on core {self.target}"


def pinned(core: int | None, args: Sequence[str]) -> list[str]:
    if core is None or shutil.which("taskset") is None:
        return list(args)
    return ["taskset", "-c", str(core), *args]


def pin_self(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


# -- processes --------------------------------------------------------------------------


@dataclass
class Program:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 20) -> str:
        text = self.log().splitlines()[-lines:]
        state = "running" if not self.exited() else f"exited with {self.popen.returncode}"
        body = "\n".join(f"    {line[:400]}" for line in text) or "    (no output)"
        return f"--- {self.name} ({state}), {self.log_path}:\n{body}"

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=grace)
        return self.popen.returncode


@dataclass
class Stack:
    """The programs of one measurement, stopped in reverse order of start."""

    directory: Path
    programs: list[Program] = field(default_factory=list)

    def start(
        self,
        name: str,
        args: Sequence[str],
        *,
        core: int | None = None,
        env: dict[str, str] | None = None,
    ) -> Program:
        self.directory.mkdir(parents=True, exist_ok=True)
        log_path = self.directory / f"{name}.log"
        with log_path.open("wb") as log:  # a fresh log: a rerun must not read the last one
            popen = subprocess.Popen(
                pinned(core, args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env={**os.environ, **(env or {})},
            )
        program = Program(name, popen, log_path)
        self.programs.append(program)
        return program

    def stop(self) -> None:
        while self.programs:
            self.programs.pop().stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def wait_for(
    what: str,
    predicate: Callable[[], Any],
    *,
    timeout: float,
    programs: Iterable[Program] = (),
    every: float = 0.1,
) -> Any:
    """Poll `predicate` until it returns something truthy; fail at once if a program died."""
    watched = list(programs)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for program in watched:
            if program.exited():
                raise BenchError(
                    f"{program.name} exited while waiting for {what}\n{program.tail()}"
                )
        try:
            value = predicate()
        except Exception as exc:  # connection refused while starting, and the like
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(every)
    tails = "\n".join(p.tail() for p in watched)
    raise BenchError(f"timed out after {timeout:g}s waiting for {what} ({last_error})\n{tails}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


# -- /proc ------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (nginx's workers), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int, *, tree: bool = False) -> float:
    """User + system CPU time of a process (all its threads), and of its children if asked."""
    total = 0.0
    for one in process_tree(pid) if tree else [pid]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return total


def rss_bytes(pid: int) -> int:
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * PAGE_SIZE


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def machine_busy_fraction(seconds: float) -> float:
    """How busy all cores were over `seconds` (from /proc/stat): 1.0 is every core flat out."""

    def read() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values[:8]), idle

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    spent = max(1, total1 - total0)
    return 1.0 - (idle1 - idle0) / spent


# -- HTTP (blocking; the harness's own control traffic, never the measured load) ---------


def http_get(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # loopback only
        return bytes(response.read())


def http_send(method: str, url: str, body: bytes = b"", timeout: float = 10.0) -> bytes:
    request = urllib.request.Request(
        url, data=body or None, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


def reachable(url: str) -> bool:
    try:
        http_get(url, timeout=2.0)
    except (urllib.error.URLError, OSError):
        return False
    return True


# -- Prometheus text ----------------------------------------------------------------------


def samples(text: str, name: str) -> Iterator[tuple[str, float]]:
    """(label block, value) of every sample of metric `name` in a text exposition."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        rest = line[len(name) :]
        if rest.startswith("{"):
            labels, _, value = rest[1:].rpartition("} ")
        elif rest.startswith(" "):
            labels, value = "", rest[1:]
        else:
            continue  # a longer name with this prefix
        yield labels, float(value.split()[0])


def metric_sum(text: str, name: str) -> float:
    return sum(value for _labels, value in samples(text, name))


def histogram_buckets(text: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of an unlabelled histogram, sorted by bound."""
    out = []
    for labels, value in samples(text, f"{name}_bucket"):
        bound = labels.split('le="', 1)[1].split('"', 1)[0]
        out.append((math.inf if bound == "+Inf" else float(bound), value))
    return sorted(out)


def histogram_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float:
    """The upper bound of the bucket holding quantile `q` (what the histogram can promise)."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    for bound, count in buckets:
        if count >= rank:
            return bound
    return math.inf


# -- statistics ---------------------------------------------------------------------------


class ScheduleGrid:
    """Each run's lag: its `started_at` minus the tick the scheduler planned for it, computed
    exactly as the scheduler plans (`start_offset` from the check's name, then the grid), so
    nothing is added to the product to measure it."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._offsets: dict[str, float] = {}

    def lag(self, check: str, started: float) -> float:
        from uptime_probe.scheduler import planned_start, start_offset

        offset = self._offsets.get(check)
        if offset is None:
            offset = self._offsets[check] = start_offset(check, self.interval)
        return started - planned_start(started, self.interval, offset)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over repeated measurements: the median and the range."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        kept = [v for v in values if v is not None and not math.isnan(v)]
        if not kept:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(statistics.median(kept), min(kept), max(kept), len(kept))

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.perf_counter()
    finished: list[float] = []
    yield lambda: (finished[0] if finished else time.perf_counter()) - started
    finished.append(time.perf_counter())


class LoopTicker:
    """Wakes every millisecond on the running loop and records how late each wake-up was:
    the longest lateness is the longest the loop was held while it ran.

    `late` is wall time; `held` leaves out the time the loop's thread was ready to run
    but had no CPU (the kernel's schedstat, as tests/faults/loopwatch.py reads it): on a
    shared machine that is other processes' doing, not the daemon's.
    """

    TICK_SECONDS = 0.001

    def __init__(self) -> None:
        self.late: list[float] = []
        self.held: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._schedstat = os.open(
            f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY
        )

    def _waited(self) -> float:
        return int(os.pread(self._schedstat, 128, 0).split()[1]) / 1e9

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while not self._stop.is_set():
            waited = self._waited()
            started = time.perf_counter()
            await asyncio.sleep(self.TICK_SECONDS)
            late = max(0.0, time.perf_counter() - started - self.TICK_SECONDS)
            self.late.append(late)
            self.held.append(max(0.0, late - (self._waited() - waited)))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        os.close(self._schedstat)


T = TypeVar("T")


def run_daemon_measure(measure: Coroutine[Any, Any, T], *, tuned_gc: bool = False) -> T:
    """Run an in-process daemon measure on uvloop, as `uptime-probe run` runs the daemon
    (its garbage collector tuned, with `tuned_gc`), its logs written nowhere."""
    import uvloop

    from uptime_probe.app import tune_garbage_collector
    from uptime_probe.logs import configure_logging

    if tuned_gc:
        tune_garbage_collector()
    logs = configure_logging("info", stream=open(os.devnull, "w"), force_json=True)  # noqa: SIM115
    try:
        return uvloop.run(measure)
    finally:
        logs.writer.close()
