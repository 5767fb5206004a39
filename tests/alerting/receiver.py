"""A webhook receiver on 127.0.0.1 that records what it gets and answers as told."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

POLL_SECONDS = 0.01


@dataclass(frozen=True)
class Received:
    at: float  # monotonic
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return str(self.json()["event"])


@dataclass
class Receiver:
    """Answers `status` (or hangs until the test ends when `hang`); records every request."""

    status: int = 200
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            Received(time.monotonic(), request.method, request.path, dict(request.headers), body)
        )
        if self.hang:
            await self._released.wait()
        return web.Response(status=self.status, headers=self.headers)

    def events(self) -> list[str]:
        return [r.event for r in self.requests]


async def wait_until(
    condition: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll `condition` on the event loop until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        await asyncio.sleep(POLL_SECONDS)


def refused_url() -> str:
    """A URL on a port nothing listens on (bound a moment ago, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
