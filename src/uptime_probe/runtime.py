"""The event loop the commands run on: uvloop where it is installed, else asyncio's own.

In docs/benchmarks.md the daemon did 6% more runs per CPU-second on uvloop, with a
lower p99 latency error at 1,000 runs/s. Its loop clock is coarse (1 ms), which is
why the engine times with `time.perf_counter()`. `UPTIME_PROBE_EVENT_LOOP=asyncio`
chooses asyncio's loop, for debugging or to compare.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def event_loop_name() -> str:
    if os.environ.get("UPTIME_PROBE_EVENT_LOOP", "uvloop") == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    if event_loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
