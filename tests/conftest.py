"""Fixtures shared across the test tree: a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

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
