"""Run `uptime-probe` with a watch on its event loop; report every callback that held it.

Usage, exactly like the CLI (the fault tests start the daemon this way)::

    python tests/faults/loopwatch.py run -c probes.yaml --listen 127.0.0.1:0

Each loop callback (a task step, a timer, an I/O callback) is timed in the loop's thread.
One that held the loop for more than LIMIT (50 ms, or $LOOPWATCH_LIMIT) is printed as a
JSON line on stderr, beside the daemon's own log lines::

    {"event": "loop_blocked", "held_seconds": 0.21, "user_seconds": 0.2, "gc_seconds": 0,
     "ours": true, "where": "uptime_probe/app.py:168 reload", ...}

What is measured, per callback, and why not asyncio's debug mode:

``held_seconds``
    Wall time minus the time the thread was runnable but waiting for a CPU, read from the
    kernel (``/proc/self/task/<tid>/schedstat``, field 2, in ns) before and after. Debug
    mode's ``slow_callback_duration`` uses wall time alone: on a shared 2-core machine a
    5 ms callback can read as 80 ms because the kernel ran another process meanwhile.
    (Debug mode also slows every coroutine with origin tracking, changing the load.)
``user_seconds``, ``kernel_seconds``
    The thread's CPU time in the callback (``getrusage(RUSAGE_THREAD)``). Kernel time
    includes, on loopback, the peer's half of TCP, run on the sending thread.
``gc_seconds``
    Time inside the cyclic garbage collector, which runs when an allocation crosses a
    threshold, whoever allocates: its pause lands on an arbitrary callback.
The rest of ``held_seconds`` was spent off the CPU: a blocking call, or waiting for the
GIL while another thread (a render offloaded with ``to_thread``, aiosqlite's) computes.

Attribution: while a callback runs past half the limit, a sampler thread records the
loop thread's Python stack every 5 ms (``sys._current_frames``), from the callback up.
``ours`` is true when a sample, or the task's coroutine chain, has a frame from the
uptime_probe package; ``where`` names the innermost such frame. A callback with no
uptime_probe frame (a library's own housekeeping) is still reported, ``ours`` false.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import contextlib
import gc
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import uptime_probe
from uptime_probe.cli import main as cli_main

LIMIT = float(os.environ.get("LOOPWATCH_LIMIT", "0.05"))
SAMPLE_EVERY = 0.005
MAX_SAMPLES = 40  # per callback
MAX_FRAMES = 80  # per sample
PACKAGE = str(Path(uptime_probe.__file__).resolve().parent) + os.sep

Frame = tuple[str, int, str]


def _stack(frame: FrameType | None) -> list[Frame]:
    """Innermost first, down to the callback: the event loop and what started it (the CLI,
    itself in uptime_probe) are below every callback and say nothing about this one."""
    frames: list[Frame] = []
    while frame is not None and len(frames) < MAX_FRAMES:
        code = frame.f_code
        if code.co_filename == __file__ and code.co_name == "_run":
            break
        frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return frames


def _coroutine_chain(handle: asyncio.Handle) -> list[Frame]:
    """The frames a task's coroutine is suspended in, outermost first (empty if not a task)."""
    task = getattr(getattr(handle, "_callback", None), "__self__", None)
    if not isinstance(task, asyncio.Task):
        return []
    frames: list[Frame] = []
    awaitable: Any = task.get_coro()
    for _ in range(MAX_FRAMES):
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            break
        frames.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return frames


def _short(frame: Frame) -> str:
    filename, line, name = frame
    if filename.startswith(PACKAGE):
        filename = "uptime_probe/" + filename[len(PACKAGE) :]
    return f"{filename}:{line} {name}"


class LoopWatch:
    def __init__(self) -> None:
        self._ident = threading.get_ident()
        native = threading.get_native_id()
        self._schedstat = os.open(f"/proc/self/task/{native}/schedstat", os.O_RDONLY)
        self._running: tuple[int, float] | None = None
        self._serial = 0
        self._samples: dict[int, list[list[Frame]]] = {}
        self._lock = threading.Lock()
        self.blocked = 0
        self._gc_started = 0.0
        self._gc_seconds = 0.0  # in the callback now running
        self._gc_generation = -1

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != self._ident:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_seconds += time.perf_counter() - self._gc_started
            self._gc_generation = max(self._gc_generation, info["generation"])

    def _waited(self) -> float:
        """Seconds this thread has spent runnable but not running (kernel's schedstat)."""
        return int(os.pread(self._schedstat, 128, 0).split()[1]) / 1e9

    def install(self) -> None:
        original = asyncio.events.Handle._run
        watch = self

        def _run(handle: asyncio.Handle) -> None:
            if threading.get_ident() != watch._ident:
                return original(handle)
            watch._serial += 1
            serial = watch._serial
            watch._gc_seconds, watch._gc_generation = 0.0, -1
            usage = resource.getrusage(resource.RUSAGE_THREAD)
            waited = watch._waited()
            started = time.perf_counter()
            watch._running = (serial, started)
            try:
                return original(handle)
            finally:
                watch._running = None
                wall = time.perf_counter() - started
                with watch._lock:
                    samples = watch._samples.pop(serial, [])
                if wall > LIMIT:
                    held = wall - (watch._waited() - waited)
                    if held > LIMIT:
                        now = resource.getrusage(resource.RUSAGE_THREAD)
                        cpu = (now.ru_utime - usage.ru_utime, now.ru_stime - usage.ru_stime)
                        watch._report(handle, held, wall, samples, watch._gc_seconds, cpu)

        asyncio.events.Handle._run = _run  # type: ignore[method-assign,assignment]
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._sample, name="loopwatch-sampler", daemon=True).start()

    def _sample(self) -> None:
        while True:
            time.sleep(SAMPLE_EVERY)
            running = self._running
            if running is None or time.perf_counter() - running[1] < LIMIT / 2:
                continue
            frame = sys._current_frames().get(self._ident)
            stack = _stack(frame)
            with self._lock:
                if self._running is not running:
                    continue
                samples = self._samples.setdefault(running[0], [])
                if len(samples) < MAX_SAMPLES:
                    samples.append(stack)

    def _report(
        self,
        handle: asyncio.Handle,
        held: float,
        wall: float,
        samples: list[list[Frame]],
        gc_seconds: float,
        cpu: tuple[float, float],
    ) -> None:
        self.blocked += 1
        chain = _coroutine_chain(handle)
        ours = [f for stack in samples for f in stack if f[0].startswith(PACKAGE)]
        ours += [f for f in reversed(chain) if f[0].startswith(PACKAGE)]
        innermost = samples[0][0] if samples and samples[0] else None
        described = "?"
        with contextlib.suppress(Exception):  # a repr is only a hint; never fail the loop
            described = repr(handle)[:300]
        record = {
            "event": "loop_blocked",
            "held_seconds": round(held, 4),
            "wall_seconds": round(wall, 4),
            "ours": bool(ours),
            "where": _short(ours[0]) if ours else None,
            "innermost": _short(innermost) if innermost else None,
            "handle": described,
            "samples": len(samples),
            # The cyclic garbage collector ran this long inside the callback: its pause
            # lands on whatever code allocated when a threshold was crossed.
            "gc_seconds": round(gc_seconds, 4),
            "gc_generation": self._gc_generation,
            # CPU time of the loop's thread in the callback: in Python and C code (user),
            # and in the kernel (system calls; on loopback also the peer's half of TCP,
            # which the kernel runs on the sender's thread). What is left of held_seconds
            # was spent off the CPU: a blocking call, or waiting for the GIL.
            "user_seconds": round(cpu[0], 4),
            "kernel_seconds": round(cpu[1], 4),
            "at": time.time(),
        }
        sys.stderr.write(json.dumps(record) + "\n")
        sys.stderr.flush()


def main(argv: list[str]) -> int:
    # The watch wraps asyncio's Handle: uvloop's callbacks (the CLI's default loop) are
    # Cython handles it cannot see, and under uvloop it reported nothing at all. So the
    # daemon runs on asyncio's loop, unless a test asks for a loop by name.
    os.environ.setdefault("UPTIME_PROBE_EVENT_LOOP", "asyncio")
    LoopWatch().install()
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
