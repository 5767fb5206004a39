"""Fixtures shared across the test tree: a real aiohttp server on 127.0.0.1, and a default
executor that refuses work."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from aiohttp import web

ServeApp = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Start `web.Application`s on 127.0.0.1, port 0; each call returns the base URL.

    `await serve_app(app)` -> "http://127.0.0.1:PORT"; pass `ssl_context=` for https.
    Every server is stopped when the test ends.
    """
    runners: list[web.AppRunner] = []

    async def serve(app: web.Application, *, ssl_context: ssl.SSLContext | None = None) -> str:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{port}"

    yield serve
    for runner in reversed(runners):
        await runner.cleanup()


class RefusingExecutor(ThreadPoolExecutor):
    """A default executor that, once `refuse()` is called, records every job it is handed
    and refuses it (before that it works, for the test's own setup)."""

    def __init__(self) -> None:
        super().__init__(1)
        self.refusing = False
        self.refused: list[str] = []

    def refuse(self) -> None:
        self.refusing = True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if not self.refusing:
            return super().submit(fn, *args, **kwargs)
        self.refused.append(repr(getattr(fn, "func", fn)))
        raise RuntimeError("nothing here may use the event loop's default executor")


@pytest.fixture
async def default_executor() -> AsyncIterator[RefusingExecutor]:
    """The test loop's default executor (`asyncio.to_thread`, `run_in_executor(None, ...)`,
    asyncio's `getaddrinfo`), which refuses work from `refuse()` on; replaced after."""
    loop = asyncio.get_running_loop()
    executor = RefusingExecutor()
    loop.set_default_executor(executor)
    try:
        yield executor
    finally:
        loop.set_default_executor(ThreadPoolExecutor())
        executor.shutdown()
