"""The web layer's own worker threads, for the CPU work of what it serves.

Rendering the status page, building the JSON API's answer and compressing `/metrics`
run off the event loop, here: never in the loop's default executor
(`asyncio.to_thread`, `run_in_executor(None, ...)`). That pool is the process's, shared
with whatever else uses it; when probes resolved names through it (asyncio's
`getaddrinfo`), four lookups that never got an answer made `/metrics` with gzip wait
20 s and the status page 10-20 s (docs/reliability.md, "One slow DNS name"). Probes no
longer use it, and whatever comes to use it later cannot delay a scrape either.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["WEB_THREADS", "in_web_thread"]

P = ParamSpec("P")
T = TypeVar("T")

# Scrapes and page views are few and short; more threads would only contend for the GIL.
WEB_THREADS = 4

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _web_executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            # One for the process, made on first use: threads start only when work comes,
            # and the interpreter joins them at exit, as it does the default executor's.
            _executor = ThreadPoolExecutor(WEB_THREADS, thread_name_prefix="uptime-probe-web")
        return _executor


async def in_web_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`asyncio.to_thread`, on the web layer's threads (context variables carried along)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(_web_executor(), call)
