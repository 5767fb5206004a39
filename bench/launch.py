"""Run uptime-probe's own CLI under a chosen event loop, optionally under pyinstrument.

    python -m bench.launch --loop uvloop [--profile out.json] -- run -c probes.yaml ...

The product's CLI runs on uvloop through `uvloop.run` unless `UPTIME_PROBE_EVENT_LOOP=asyncio`
makes it call `asyncio.run`, which builds its loop from the current event loop policy. The
launcher sets that variable and installs the chosen loop's policy (uvloop's or asyncio's), so
the unchanged daemon runs on the loop measured, with the hooks below on that loop.

With `--profile`, pyinstrument samples the main thread (1 ms) from start to exit and the
top functions by own time go to a JSON file, plus pyinstrument's text tree next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _use_loop(name: str) -> None:
    # The product picks its loop in `runtime.run`; with "asyncio" it calls `asyncio.run`,
    # which builds its loop from the event loop policy set here. So the launcher's hooks
    # below (profiler, GC experiments), all installed as policies, reach the daemon's loop
    # whichever loop is measured.
    os.environ["UPTIME_PROBE_EVENT_LOOP"] = "asyncio"
    if name == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif name != "asyncio":
        raise SystemExit(f"unknown loop {name!r}")


def _package(path: str | None) -> str:
    """`aiohttp`, `uptime_probe`, `asyncio`, ...: the top-level package a file belongs to."""
    if not path:
        return "(built-in)"
    parts = path.replace("\\", "/").split("/")
    for marker in ("site-packages", "src"):
        if marker in parts:
            index = parts.index(marker)
            if index + 1 < len(parts):
                return parts[index + 1].removesuffix(".py")
    if len(parts) >= 2 and not parts[-2].startswith("python3"):
        return parts[-2]  # a stdlib package: asyncio, json, sqlite3
    return parts[-1].removesuffix(".py")  # a stdlib module: selectors, ssl


def _self_times(
    frame: Any, by_function: dict[tuple[str, str], float], by_package: dict[str, float]
) -> None:
    """Own time per function; pyinstrument's synthetic `[self]` frames count for their parent."""
    stack: list[tuple[Any, tuple[str, str] | None, str | None]] = [(frame, None, None)]
    while stack:
        current, parent_key, parent_package = stack.pop()
        if current is None:
            continue
        if current.is_synthetic and parent_key is not None and parent_package is not None:
            key, package = parent_key, parent_package
        else:
            key = (current.function or "?", f"{current.file_path_short}:{current.line_no}")
            package = _package(current.file_path)
        if not current.children or current.is_synthetic:
            by_function[key] += current.total_self_time
            by_package[package] += current.total_self_time
        stack.extend((child, key, package) for child in current.children)


def _write_profile(profiler: Any, path: Path) -> None:
    session = profiler.last_session
    root = session.root_frame()
    totals: dict[tuple[str, str], float] = defaultdict(float)
    packages: dict[str, float] = defaultdict(float)
    _self_times(root, totals, packages)
    duration = session.duration
    top = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:40]
    path.write_text(
        json.dumps(
            {
                "duration_seconds": duration,
                "sample_count": session.sample_count,
                "by_package": {
                    name: secs / duration
                    for name, secs in sorted(packages.items(), key=lambda i: i[1], reverse=True)
                },
                "top_self_time": [
                    {"function": fn, "where": where, "seconds": secs, "share": secs / duration}
                    for (fn, where), secs in top
                ],
            },
            indent=2,
        )
    )
    path.with_suffix(".txt").write_text(
        profiler.output_text(unicode=False, color=False, show_all=False)
    )


class GcRecorder:
    """Times every cyclic garbage collection (gc.callbacks) and writes a summary at exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started: float | None = None
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.full: list[tuple[float, float]] = []  # (epoch at end, seconds) of each gen-2 pass

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            took = time.perf_counter() - self.started
            self.pauses[info["generation"]].append(took)
            if info["generation"] == 2:
                self.full.append((time.time(), took))
            self.started = None

    def write(self) -> None:
        summary = {
            str(gen): {
                "count": len(p),
                "total_seconds": sum(p),
                "max_ms": 1000 * max(p, default=0.0),
                "p99_ms": 1000 * sorted(p)[int(0.99 * (len(p) - 1))] if p else 0.0,
            }
            for gen, p in self.pauses.items()
        }
        self.path.write_text(json.dumps({**summary, "gen2_pauses": self.full}, indent=1))


def _on_new_loop(hook: Callable[[asyncio.AbstractEventLoop], object]) -> None:
    """Call `hook` on each loop the current event loop policy makes (the daemon's, through
    `asyncio.run`: see `_use_loop`)."""
    base = type(asyncio.get_event_loop_policy())

    class HookedPolicy(base):  # type: ignore[misc, valid-type]
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            loop: asyncio.AbstractEventLoop = super().new_event_loop()
            hook(loop)
            return loop

    asyncio.set_event_loop_policy(HookedPolicy())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--profile", type=Path)
    parser.add_argument(
        "--profile-after", type=float, default=0.0, help="seconds after start (skip start-up)"
    )
    parser.add_argument("--gc-stats", type=Path, help="write GC pause times here at exit")
    parser.add_argument(
        "--gc-threshold",
        help="experiment: gc.set_threshold(a, b, c) once the loop runs, e.g. 700,10,10",
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    _use_loop(args.loop)
    if args.gc_stats is not None:
        recorder = GcRecorder(args.gc_stats)
        gc.callbacks.append(recorder)
        atexit.register(recorder.write)
    if args.gc_threshold is not None:
        thresholds = tuple(int(part) for part in args.gc_threshold.split(","))
        # Two seconds in: after the product has set its own.
        _on_new_loop(lambda loop: loop.call_later(2.0, gc.set_threshold, *thresholds))
    from uptime_probe.cli import main as cli_main

    if args.profile is None:
        return cli_main(argv)
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    # On the loop's own thread, `--profile-after` into the run.
    _on_new_loop(lambda loop: loop.call_later(args.profile_after, profiler.start))
    try:
        return cli_main(argv)
    finally:
        if profiler.is_running:
            profiler.stop()
            _write_profile(profiler, args.profile)


if __name__ == "__main__":
    sys.exit(main())
