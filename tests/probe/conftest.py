"""A real target on 127.0.0.1 with one route per way a service can answer."""

from __future__ import annotations

import asyncio
import functools
import gzip
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

DOCUMENTS: dict[str, Any] = {
    "full": {"items": [{"id": 1}, {"id": 2}], "total": 2, "status": "completed", "id": "t1"},
    "empty": {"items": [], "total": 0},
    "none": {},
    "wrong_type": {"items": "nope"},
    # Values a hostile target hands back for later steps to send on.
    "hostile": {"crlf": "a\r\nX-Injected: 1", "surrogate": "\ud800", "spaced": "a b/ü?#"},
}
BOMB_DECODED = 16 * 1024 * 1024


@dataclass
class Target:
    """The running target: its base URL and what it saw."""

    url: str
    transports: list[Any] = field(default_factory=list)
    hanging: asyncio.Event = field(default_factory=asyncio.Event)
    polled: asyncio.Event = field(default_factory=asyncio.Event)
    polls: int = 0

    @property
    def connections(self) -> int:
        """Distinct TCP connections that carried a request (the list keeps them alive)."""
        return len(self.transports)


@functools.cache
def gzip_bomb_body() -> bytes:
    """~16 KiB on the wire that inflates to 16 MiB."""
    return gzip.compress(b"\0" * BOMB_DECODED, compresslevel=9)


def build_target_app(target: Target) -> web.Application:
    forever = asyncio.Event()

    @web.middleware
    async def count_connections(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        if all(transport is not seen for seen in target.transports):
            target.transports.append(transport)
        return await handler(request)

    async def document(request: web.Request) -> web.Response:
        return web.json_response(DOCUMENTS[request.match_info["name"]])

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {"Retry-After": "30"} if code == 429 else {}
        return web.json_response({"status": code}, status=code, headers=headers)

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def deep(request: web.Request) -> web.Response:
        depth = int(request.query.get("depth", "100000"))
        return web.Response(body=b"[" * depth + b"]" * depth, content_type="application/json")

    async def chain(request: web.Request) -> web.Response:
        hops = int(request.match_info["hops"])
        if hops == 0:
            return web.json_response(DOCUMENTS["full"])
        raise web.HTTPFound(f"/chain/{hops - 1}")

    async def bad_json(request: web.Request) -> web.Response:
        return web.Response(body=b'{"items": [1, 2', content_type="application/json")

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if "declared" in request.query:
            response.content_length = 4 * 1024 * 1024
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 65536)
        return response

    async def gzip_bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip_bomb_body(),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def reset(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 100_000
        await response.prepare(request)
        await response.write(b"{" * 1000)
        assert request.transport is not None
        if request.query.get("rst"):
            sock = request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()
        return response

    async def hang(request: web.Request) -> web.Response:
        target.hanging.set()
        await forever.wait()
        raise AssertionError("unreachable")

    async def slow(request: web.Request) -> web.Response:
        # The target being slow is the behaviour under test, not synchronisation.
        await asyncio.sleep(float(request.query.get("s", "0.05")))
        return web.json_response(DOCUMENTS["full"])

    async def echo(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        code = int(request.query.get("status", "500"))
        return web.json_response({"auth": auth, "you_sent": auth}, status=code)

    async def redirect_echo(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        scheme = request.query.get("scheme", "")
        if scheme:
            raise web.HTTPFound(f"{scheme}://127.0.0.1/landing?token={quote(auth, safe='')}")
        raise web.HTTPFound(f"/landing?token={quote(auth, safe='')}")

    async def landing(request: web.Request) -> web.Response:
        return web.Response(status=404, text=f"no page at {request.path_qs}")

    async def task(request: web.Request) -> web.Response:
        """`?pending=N` answers pending N times, then completed; `?then=500` fails instead."""
        target.polls += 1
        target.polled.set()
        pending = int(request.query.get("pending", "1000000"))
        if target.polls <= pending:
            return web.json_response({"id": "t1", "status": "pending"})
        if request.query.get("then") == "500":
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"id": "t1", "status": "completed"})

    async def login(request: web.Request) -> web.Response:
        response = web.json_response({"id": "t1"}, status=201)
        response.set_cookie("session", "cookie-value")
        return response

    async def needs_cookie(request: web.Request) -> web.Response:
        if request.cookies.get("session") != "cookie-value":
            return web.json_response({"error": "no session"}, status=401)
        return web.json_response(
            {"id": request.match_info["id"], "header": request.headers.get("X-Task")}
        )

    app = web.Application(middlewares=[count_connections])
    app.router.add_get("/json/{name}", document)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/loop", loop)
    app.router.add_get("/chain/{hops}", chain)
    app.router.add_get("/deep", deep)
    app.router.add_get("/bad-json", bad_json)
    app.router.add_get("/huge", huge)
    app.router.add_get("/gzip-bomb", gzip_bomb)
    app.router.add_get("/reset", reset)
    app.router.add_get("/hang", hang)
    app.router.add_get("/slow", slow)
    app.router.add_get("/echo", echo)
    app.router.add_get("/redirect-echo", redirect_echo)
    app.router.add_get("/landing", landing)
    app.router.add_get("/task", task)
    app.router.add_post("/login", login)
    app.router.add_get("/session/{id}", needs_cookie)
    return app


@pytest.fixture
async def target(serve_app: Callable[..., Awaitable[str]]) -> Target:
    found = Target(url="")
    found.url = await serve_app(build_target_app(found))
    return found
