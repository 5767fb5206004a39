"""Fixtures for the web tests: a harness over a real Store and the web app served for it;
the real simulator and daemon as subprocesses; Debian's Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import BrowserContext, async_playwright

from uptime_probe.config.model import Config
from uptime_probe.state.store import Store
from uptime_probe.web.server import build_web_app

from .harness import Harness, control_for
from .live import CHROMIUM_ARGS, Programs, require_chromium

MakeHarness = Callable[[Config], Awaitable[Harness]]
MakeClient = Callable[[Any], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[MakeHarness]:
    stores: list[Store] = []

    async def make(config: Config) -> Harness:
        store = Store(tmp_path / f"data-{len(stores)}")
        await store.open()
        stores.append(store)
        return Harness(config, store)

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """`await make_client(source)`: the daemon's web app for that source, on 127.0.0.1."""
    clients: list[TestClient[Any, Any]] = []

    async def make(source: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(
            TestServer(build_web_app(control_for(source)), host="127.0.0.1")
        )
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def programs(tmp_path: Path) -> AsyncIterator[Programs]:
    """The simulator and the daemon as subprocesses, stopped at teardown."""
    started = Programs(tmp_path)
    try:
        yield started
    finally:
        await started.stop_all()


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile; missing binary fails the test."""
    executable = require_chromium()
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1024, "height": 900},
        )
        try:
            yield context
        finally:
            await context.close()
