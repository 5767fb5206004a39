"""The connection guard in front of the daemon's server, on real sockets on 127.0.0.1.

A small aiohttp app behind `ConnectionGuard.start_server`, a cap of 3 and a header
deadline of 0.5 s; the clients are raw sockets (asyncio streams), so what they send and
when is exactly what each case says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from uptime_probe.config.model import ServerConfig
from uptime_probe.web.connections import EVICTED, HEADER_TIMEOUT, REFUSED, ConnectionGuard

HEADER_DEADLINE = 0.5
REQUEST = b"GET /ok HTTP/1.1\r\nHost: daemon\r\n\r\n"


@dataclass
class Served:
    port: int
    guard: ConnectionGuard
    closed: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0


Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    closed: list[str] = []
    guard = ConnectionGuard(
        max_connections=3, header_timeout=HEADER_DEADLINE, on_close=closed.append
    )
    state = Served(0, guard, closed)

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def hold(_request: web.Request) -> web.Response:
        state.held += 1
        await state.release.wait()
        return web.Response(text="released")

    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/ok", ok)
    app.router.add_get("/hold", hold)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    server = await guard.start_server(runner, "127.0.0.1", 0, backlog=16)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        state.release.set()
        server.close()
        await runner.cleanup()


@pytest.fixture
def connect(served: Served) -> Connect:
    async def open_one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", served.port)

    return open_one


async def answer(reader: asyncio.StreamReader) -> bytes:
    """One response's head and body (the app's bodies are short and sized)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def hung_up(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection."""
    return await asyncio.wait_for(reader.read(), 5)


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):  # 10 s at most
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def test_headers_must_be_complete_within_the_deadline_however_steadily_they_come(
    connect: Connect, served: Served
) -> None:
    reader, writer = await connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(b"GET /ok HTTP/1.1\r\n")
    said = b""
    for _ in range(20):  # a line every 0.1 s: 2 s of lines, four times the deadline
        try:
            data = await asyncio.wait_for(reader.read(4096), 0.1)
        except TimeoutError:
            writer.write(b"X-Slow: 1\r\n")
            continue
        said += data
        if not data:
            break
    assert said.startswith(b"HTTP/1.1 408 "), said
    # Counted from the accept, a moment before `started`.
    assert HEADER_DEADLINE - 0.05 <= loop.time() - started < HEADER_DEADLINE + 1.0
    assert served.closed == [HEADER_TIMEOUT]
    writer.close()


async def test_an_idle_kept_alive_connection_is_not_held_to_the_header_deadline(
    connect: Connect, served: Served
) -> None:
    reader, writer = await connect()
    writer.write(REQUEST)
    assert (await answer(reader)).endswith(b"ok")
    # Idle for longer than the header deadline, as Prometheus is between scrapes.
    await asyncio.sleep(HEADER_DEADLINE * 2)
    writer.write(REQUEST)
    assert (await answer(reader)).endswith(b"ok")
    assert served.closed == []
    writer.close()


async def test_at_the_cap_a_newcomer_displaces_the_oldest_waiting_connection(
    connect: Connect, served: Served
) -> None:
    # One kept-alive connection between requests, then two still sending headers.
    idle_reader, idle_writer = await connect()
    idle_writer.write(REQUEST)
    await answer(idle_reader)
    slow = [await connect() for _ in range(2)]
    for _reader, writer in slow:
        writer.write(b"GET /ok HTTP/1.1\r\n")
    await until(lambda: served.guard.open == 3, "three connections")

    # A scraper arrives: the oldest of the header-waiting ones gives way, not the idle one.
    reader, writer = await connect()
    writer.write(REQUEST)
    assert (await answer(reader)).endswith(b"ok")
    assert await hung_up(slow[0][0]) == b""
    assert served.closed == [EVICTED]
    assert served.guard.open <= 3

    # The next newcomer displaces the other header-waiting one; then, with none left
    # waiting for headers, the oldest idle one gives way.
    reader2, writer2 = await connect()
    writer2.write(REQUEST)
    assert (await answer(reader2)).endswith(b"ok")
    assert await hung_up(slow[1][0]) == b""
    reader3, writer3 = await connect()
    writer3.write(REQUEST)
    assert (await answer(reader3)).endswith(b"ok")
    assert await hung_up(idle_reader) == b""
    assert served.closed == [EVICTED] * 3
    # The scrapers' own kept-alive connections were left alone.
    writer.write(REQUEST)
    assert (await answer(reader)).endswith(b"ok")
    for each in (idle_writer, writer, writer2, writer3, *(w for _r, w in slow)):
        each.close()


async def test_when_every_connection_is_busy_a_newcomer_gets_503(
    connect: Connect, served: Served
) -> None:
    busy = [await connect() for _ in range(3)]
    for _reader, writer in busy:
        writer.write(b"GET /hold HTTP/1.1\r\nHost: daemon\r\n\r\n")
    await until(lambda: served.held == 3, "three requests in hand")
    reader, writer = await connect()
    said = await hung_up(reader)
    assert said.startswith(b"HTTP/1.1 503 "), said
    assert served.closed == [REFUSED]
    # The busy ones were not cut: they get their answers.
    served.release.set()
    for busy_reader, _writer in busy:
        assert (await answer(busy_reader)).endswith(b"released")
    for each in (writer, *(w for _r, w in busy)):
        each.close()


async def test_a_reload_lowers_the_cap_and_newcomers_displace_the_excess(
    connect: Connect, served: Served
) -> None:
    waiting = [await connect() for _ in range(3)]
    for _reader, writer in waiting:
        writer.write(b"GET /ok HTTP/1.1\r\n")
    await until(lambda: served.guard.open == 3, "three connections")
    served.guard.configure(ServerConfig(header_timeout=HEADER_DEADLINE), 2)
    reader, writer = await connect()
    writer.write(REQUEST)
    assert (await answer(reader)).endswith(b"ok")
    assert served.guard.open <= 2 + 1  # the newcomer, and at most the cap besides
    assert served.closed.count(EVICTED) >= 1
    for each in (writer, *(w for _r, w in waiting)):
        each.close()
