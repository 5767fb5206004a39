"""Judge a response within its journey's deadline: on the event loop when that is cheap,
in a worker process when it could be slow.

Why a process, and when (measured figures in docs/benchmarks.md, "Judging off the loop"):

- Judging is CPU work on what a target sent. JSON parsing and RE2 searches are linear in
  the body; JMESPath and jsonschema are pure Python and can be far worse (a filter over a
  1 MiB `[1,1,...]` took 1 s; jsonschema's `pattern` is Python's backtracking `re`).
  Run on the loop, that froze every check, `/metrics` and `/healthz`.
- A thread does not help: a pure-Python query in a thread still takes the GIL from the
  loop in 5 ms slices (the loop's 1 ms ticks fell from about 900 to 150 a second, p50
  lag 0.1 -> 5.3 ms), and a thread cannot be stopped when the deadline passes.
- A process can be killed. So a response is first judged on the loop under an
  InlineBudget (a body of at most 256 KiB for text checks and 16 KiB for JSON, and 2 ms
  of the loop thread's CPU for JMESPath, config/types.py `CpuBudget`): small answers,
  the common case, cost no round trip. Anything over the budget, and every JSON schema,
  is judged again from the start in a worker process: the verdict is a pure function
  of the response, so it is the same either way.
- When the journey's deadline cancels a run waiting on a worker, the worker is killed
  (SIGKILL, then reaped) and its slot freed: nothing keeps burning CPU for a run that has
  ended. The engine reports the run as `timeout`, naming what was being judged (the
  worker tells the parent before each assertion), from the PhaseRecorder's JUDGING state.

The zygote itself is started when first needed, not with the daemon: a daemon whose
answers all fit the inline budget (most: a status and a small JSON document) never runs
it, and it is a second Python process of about 58 MB (docs/benchmarks.md, the quiet
daemon). The first answer over the budget waits for its imports (about a second, within
that run's deadline); a config with a step always judged here (a JSON schema), or
`judging.start: at_start`, has the daemon start it before that config's first run.

Workers are forked, on demand and up to `max_workers` at once, by a zygote process that
imported everything once: a fork takes milliseconds (a process started from scratch took
0.5-1.5 s to import), shares the zygote's memory, and needs no fork of the daemon itself
(a big, threaded process). A job waits for a free worker within its own deadline. A worker
killed mid-job is replaced at once; one idle for `idle_seconds` is retired. The zygote and
the workers run at nice 10, below the daemon, and ask Linux to kill them when their
parent ends. Workers receive the step's `expect` and `extract` as config models
(picklable, unlike compiled rules) with each response, and keep the rules they compiled
from them in a small cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import pickle
import signal
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multidict import CIMultiDict, MultiMapping

import uptime_probe
from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps import ExpectBase
from uptime_probe.config.types import CpuBudget, Query
from uptime_probe.probe.assertions import (
    InlineBudget,
    OverBudget,
    Progress,
    ResponseRules,
    Verdict,
    compile_rules,
    judge_response,
)
from uptime_probe.probe.model import FailureReason, Status
from uptime_probe.probe.tracing import PhaseRecorder

INLINE_TEXT_BYTES = 256 * 1024
INLINE_JSON_BYTES = 16 * 1024
INLINE_SECONDS = 0.002
DEFAULT_MAX_WORKERS = 2
DEFAULT_IDLE_SECONDS = 300.0
WORKER_NICENESS = 10
_CACHED_RULES = 256

_FRAME = struct.Struct(">I")
_PID = struct.Struct(">i")
_PR_SET_PDEATHSIG = 1
_PACKAGE_PARENT = str(Path(uptime_probe.__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class Judged:
    """A verdict, and how long the run waited for it off the loop (part of its duration)."""

    verdict: Verdict
    off_loop_seconds: float = 0.0


class StepJudge:
    """A step's rules, and where its responses are judged: the one way every kind judges
    what it received against `expect` and `extract` (an HTTP response; a body without a
    status for the kinds that speak no HTTP, see probe/assertions.py)."""

    __slots__ = ("_pool", "_spec", "_spec_of", "rules")

    def __init__(
        self,
        expect: ExpectBase,
        extract: Mapping[str, Query],
        pool: JudgingPool | None,
        redact: Redactor,
    ) -> None:
        self.rules = compile_rules(expect, extract, redact)
        self._pool = pool
        # The redactor travels as its secrets (Redactor.__reduce__): a worker's messages
        # are redacted before they are cut, as the loop's are.
        self._spec_of = (expect, dict(extract), redact)
        self._spec: bytes | None = None

    def spec(self) -> bytes:
        """The step's rules as a worker receives them (pickled once, on first use)."""
        if self._spec is None:
            self._spec = pickle.dumps(self._spec_of, protocol=pickle.HIGHEST_PROTOCOL)
        return self._spec

    async def judge(
        self,
        status: int | None,
        headers: MultiMapping[str],
        body: bytes,
        recorder: PhaseRecorder,
    ) -> Judged:
        """The verdict on one response (`status` None: not HTTP, judged from the
        assertions on). Without a pool (tests, embedding), on the loop."""
        if self._pool is None:
            return Judged(judge_response(self.rules, status, headers, body))
        budget = InlineBudget(INLINE_TEXT_BYTES, INLINE_JSON_BYTES, CpuBudget(INLINE_SECONDS))
        try:
            return Judged(judge_response(self.rules, status, headers, body, budget=budget))
        except OverBudget:
            pass
        started = time.perf_counter()
        recorder.judging_now("judging the response")
        # Cancelled (the journey's deadline), the recorder keeps saying what was judged.
        verdict = await self._pool.judge(self.spec(), status, headers, body, recorder.judging_now)
        recorder.judging_done()
        return Judged(verdict, time.perf_counter() - started)


class JudgingPool:
    """Worker processes that judge responses off the loop; a cancelled job kills its worker.

    Built once by the daemon (or `uptime-probe check`), shared by every plan across
    reloads, closed at stop. Workers are forked by a zygote process that imported
    everything once, so a worker starts in milliseconds and shares the zygote's memory.
    The zygote is launched by the first job (its imports take about a second, in its own
    process), or ahead of it by `start()`.
    """

    def __init__(
        self,
        max_workers: int = DEFAULT_MAX_WORKERS,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
    ) -> None:
        if max_workers < 1:
            raise ValueError("a judging pool needs at least one worker")
        self.max_workers = max_workers
        self.idle_seconds = idle_seconds
        self._zygote: _Zygote | None = None
        self._zygote_lock = asyncio.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._count = 0  # workers idle, busy or being forked
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._retire: asyncio.TimerHandle | None = None
        self._closed = False
        self.started = 0  # workers forked over the pool's life
        self.killed = 0  # workers killed because their job was abandoned

    @property
    def workers(self) -> int:
        return self._count

    @property
    def idle_workers(self) -> int:
        return len(self._idle)

    def pids(self) -> list[int]:
        """Process ids of the workers alive now, idle or busy."""
        return [worker.pid for worker in [*self._idle, *self._busy]]

    @property
    def zygote_pid(self) -> int | None:
        return self._zygote.process.pid if self._zygote is not None else None

    async def start(self) -> None:
        """Launch the zygote now, so the first heavy response finds it ready."""
        with contextlib.suppress(_WorkerGone):  # the pool closed meanwhile: nothing to start
            await self._ready_zygote()

    async def judge(
        self,
        spec: bytes,
        status: int | None,
        headers: MultiMapping[str],
        body: bytes,
        progress: Progress,
    ) -> Verdict:
        """Judge in a worker. A cancel (the journey's deadline) kills that worker."""
        try:
            worker = await self._acquire(progress)
        except _WorkerGone as exc:
            return Verdict(Status.DOWN, FailureReason.INTERNAL, str(exc))
        self._busy.add(worker)
        outcome = "abandoned"
        try:
            verdict = await worker.judge(spec, status, headers, body, progress)
            outcome = "judged"
            return verdict
        except _WorkerGone as exc:
            outcome = "gone"
            return Verdict(Status.DOWN, FailureReason.INTERNAL, str(exc))
        finally:
            self._busy.discard(worker)
            if outcome == "judged":
                self._release(worker)
            else:
                # Cancelled mid-job (the deadline), or broken: the process goes, killed and
                # reaped, and a fresh one is forked in its place.
                self.killed += outcome == "abandoned"
                self._discard(worker, kill=True)
                self._grow()

    async def close(self) -> None:
        """Stop every worker and the zygote, and wait until all have exited."""
        self._closed = True
        if self._retire is not None:
            self._retire.cancel()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_WorkerGone("the judging pool is closed"))
        idle, self._idle = self._idle, []
        for worker in idle:
            self._discard(worker, kill=False)
        for worker in list(self._busy):
            worker.kill()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._zygote is not None:
            await self._zygote.stop()
            self._zygote = None

    async def __aenter__(self) -> JudgingPool:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _acquire(self, progress: Progress) -> _Worker:
        while True:
            if self._closed:
                raise _WorkerGone("the judging pool is closed")
            if self._idle:
                return self._idle.pop()
            if self._count < self.max_workers:
                progress("judging the response (starting a judging worker)")
                self._grow()
            else:
                progress("judging the response (waiting for a free judging worker)")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._wake_one()  # woken, then cancelled: the turn passes on
                raise

    def _grow(self) -> None:
        """Fork one more worker in the background, if there is room; it joins the idle."""
        if self._closed or self._count >= self.max_workers:
            return
        self._count += 1
        self._track(self._fork())

    async def _fork(self) -> None:
        try:
            zygote = await self._ready_zygote()
            worker = await zygote.fork()
        except (OSError, _WorkerGone) as exc:
            self._count -= 1
            if self._zygote is not None:
                self._zygote.broken = True  # replaced on the next try
            self._fail_one(_WorkerGone(f"internal error: cannot start a judging worker ({exc})"))
            return
        self.started += 1
        self._release(worker)

    async def _ready_zygote(self) -> _Zygote:
        async with self._zygote_lock:
            if self._closed:
                raise _WorkerGone("the judging pool is closed")
            if self._zygote is None or not self._zygote.usable:
                if self._zygote is not None:
                    self._track(self._zygote.stop())
                zygote = await _Zygote.start()
                if self._closed:  # closed while it started (a daemon stopping at once)
                    await zygote.stop()
                    raise _WorkerGone("the judging pool is closed")
                self._zygote = zygote
            return self._zygote

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _fail_one(self, error: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
                return

    def _release(self, worker: _Worker) -> None:
        if self._closed:
            self._discard(worker, kill=False)
            return
        worker.idle_since = time.monotonic()
        self._idle.append(worker)
        self._wake_one()
        if self._retire is None:
            self._retire = asyncio.get_running_loop().call_later(
                self.idle_seconds, self._retire_idle
            )

    def _retire_idle(self) -> None:
        self._retire = None
        now = time.monotonic()
        keep = []
        for worker in self._idle:
            if now - worker.idle_since >= self.idle_seconds:
                self._discard(worker, kill=False)
            else:
                keep.append(worker)
        self._idle = keep
        if keep:
            oldest = min(worker.idle_since for worker in keep)
            self._retire = asyncio.get_running_loop().call_later(
                max(0.0, oldest + self.idle_seconds - now), self._retire_idle
            )

    def _discard(self, worker: _Worker, *, kill: bool) -> None:
        """Free the worker's slot now; end the process in the background, and see it gone."""
        self._count -= 1
        self._track(worker.end(kill=kill))


class _WorkerGone(Exception):
    """No worker could judge: it ended without answering, or none could be started."""


class _Zygote:
    """The process that imported everything once and forks workers on request.

    Asked over a Unix socket: we send one end of a fresh socket pair, it forks a worker
    serving that end and answers with the worker's pid and a pidfd (a handle that signals
    the right process even after its pid is reused, and that polls readable when it ends).
    """

    def __init__(self, process: asyncio.subprocess.Process, control: socket.socket) -> None:
        self.process = process
        self.control = control
        self._lock = asyncio.Lock()  # one request, one answer, in order
        # A request cut midway leaves its answer unread: it would be the next one's.
        self.broken = False

    @property
    def usable(self) -> bool:
        return not self.broken and self.process.returncode is None

    @classmethod
    async def start(cls) -> _Zygote:
        ours, theirs = socket.socketpair()
        # The worker imports this very copy of uptime_probe, installed or not.
        path = os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",  # the working directory is not on the import path
                "-c",
                f"from uptime_probe.probe.judging import serve_zygote; "
                f"serve_zygote({theirs.fileno()})",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env={**os.environ, "PYTHONPATH": path},
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return cls(process, ours)

    async def fork(self) -> _Worker:
        """A new worker (the pool asks from its own tasks, which nothing cancels but a
        closing loop; then this zygote is not used again)."""
        async with self._lock:
            try:
                return await self._fork()
            except BaseException:
                self.broken = True
                raise

    async def _fork(self) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self.control, [b"w"], [theirs.fileno()])
        finally:
            theirs.close()
        loop = asyncio.get_running_loop()
        while True:
            try:
                message, fds, _flags, _address = socket.recv_fds(self.control, 16, 1)
                break
            except BlockingIOError:
                readable = loop.create_future()
                loop.add_reader(self.control.fileno(), _set_once, readable)
                try:
                    await readable
                finally:
                    loop.remove_reader(self.control.fileno())
        if len(message) != _PID.size or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            ours.close()
            raise _WorkerGone("the judging zygote exited")
        ours.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        return _Worker(_PID.unpack(message)[0], fds[0], reader, writer)

    async def stop(self) -> None:
        self.control.close()  # end of requests: the zygote exits
        try:
            async with asyncio.timeout(5.0):
                await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Worker:
    """One forked worker, one job at a time, spoken to through its end of a socket pair."""

    __slots__ = ("_pidfd", "idle_since", "pid", "reader", "writer")

    def __init__(
        self, pid: int, pidfd: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    async def judge(
        self,
        spec: bytes,
        status: int | None,
        headers: MultiMapping[str],
        body: bytes,
        progress: Progress,
    ) -> Verdict:
        job = pickle.dumps(
            (spec, status, list(headers.items()), body), protocol=pickle.HIGHEST_PROTOCOL
        )
        try:
            self.writer.write(_FRAME.pack(len(job)))
            self.writer.write(job)
            await self.writer.drain()
            while True:
                size = _FRAME.unpack(await self.reader.readexactly(_FRAME.size))[0]
                # Our own worker's answer: plain data it pickled itself.
                kind, value = pickle.loads(await self.reader.readexactly(size))  # noqa: S301
                if kind == "judging":
                    progress(value)
                elif kind == "verdict":
                    verdict: Verdict = value
                    return verdict
                else:
                    raise _WorkerGone(f"internal error while judging: {value}")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise _WorkerGone("internal error: the judging worker exited") from exc

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # it has exited already
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    async def end(self, *, kill: bool) -> None:
        """Kill it (an abandoned job) or close its input (idle), and wait until it is gone
        (the zygote reaps it: no zombie is left)."""
        if kill:
            self.kill()
        self.writer.close()
        loop = asyncio.get_running_loop()
        gone = loop.create_future()
        loop.add_reader(self._pidfd, _set_once, gone)
        try:
            async with asyncio.timeout(5.0):
                await gone
        except TimeoutError:
            self.kill()
        finally:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)


# --- the processes --------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent ends (a daemon killed with -9
    must not leave a worker computing)."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent ended before the request took effect
        os._exit(0)


def serve_zygote(fd: int) -> None:
    """The zygote's life: fork a worker for each socket end received, until input ends."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C is the daemon's to handle
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)  # the daemon's loop comes first when CPUs are short
    gc.freeze()  # what is imported stays shared with the workers, not copied by collections
    control = socket.socket(fileno=fd)
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(control, 16, 1)
        except OSError:
            return
        if not message:
            return
        for channel in fds[1:]:
            os.close(channel)
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            code = 0
            try:
                _die_with_parent()
                serve_worker(socket.socket(fileno=fds[0]))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(fds[0])
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            control.sendall(b"-")  # it ended already: an answer without a worker
            continue
        try:
            socket.send_fds(control, [_PID.pack(pid)], [pidfd])
        finally:
            os.close(pidfd)


def serve_worker(channel: socket.socket) -> None:
    """A worker's life: read a job, judge it, answer; until its input ends."""
    requests = channel.makefile("rb")
    answers = channel.makefile("wb")
    rules_by_spec: dict[bytes, ResponseRules] = {}

    def send(kind: str, value: Any) -> None:
        frame = pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(_FRAME.pack(len(frame)) + frame)
        answers.flush()

    while True:
        head = requests.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return
        size = _FRAME.unpack(head)[0]
        job = requests.read(size)
        if len(job) < size:
            return
        spec, status, pairs, body = pickle.loads(job)  # noqa: S301 - from our parent
        try:
            rules = rules_by_spec.get(spec)
            if rules is None:
                expect, extract, redact = pickle.loads(spec)  # noqa: S301 - from our parent
                rules = compile_rules(expect, extract, redact)
                if len(rules_by_spec) >= _CACHED_RULES:
                    rules_by_spec.pop(next(iter(rules_by_spec)))
                rules_by_spec[spec] = rules
            verdict = judge_response(
                rules,
                status,
                CIMultiDict(pairs),
                body,
                progress=lambda what: send("judging", what),
            )
        except Exception as exc:  # a bug of ours: said as such, never blamed on the target
            send("error", f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        send("verdict", verdict)
