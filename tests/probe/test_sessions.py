"""Runs that borrow their HTTP session from a SessionPool still meet the target as a new user.

The target is a raw HTTP/1.1 server on 127.0.0.1 that keeps connections alive, sets a cookie
on every answer and notes, per connection, the cookies it was sent and when the client
closed it: what a pooled session must not carry from one run to the next is exactly what
it sees.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from uptime_probe.probe import run_check
from uptime_probe.probe.sessions import SessionPool

from .journeys import plan_of, step


@dataclass
class Seen:
    """One TCP connection as the server saw it."""

    cookies: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class KeepAliveServer(asyncio.Protocol):
    """Answers every request on the connection (keep-alive) with a cookie of its own."""

    def __init__(self, seen: list[Seen]) -> None:
        self.mine = Seen()
        seen.append(self.mine)
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            cookie = next(
                (
                    line.split(b":", 1)[1].strip().decode()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"cookie:")
                ),
                "",
            )
            self.mine.cookies.append(cookie)
            number = len(self.mine.cookies)
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                b"Set-Cookie: visit=" + str(number).encode() + b"\r\n\r\n{}"
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.mine.closed.set()


@dataclass
class Server:
    url: str
    seen: list[Seen]


async def _serve(tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    seen: list[Seen] = []
    server = await asyncio.get_running_loop().create_server(
        lambda: KeepAliveServer(seen), "127.0.0.1", 0, ssl=tls
    )
    port = server.sockets[0].getsockname()[1]
    yield Server(f"{'https' if tls else 'http'}://127.0.0.1:{port}", seen)
    server.close()
    await server.wait_closed()


@pytest.fixture
async def keep_alive() -> AsyncIterator[Server]:
    async for server in _serve():
        yield server


async def test_pooled_runs_share_a_session_but_never_a_connection_or_a_cookie(
    keep_alive: Server,
) -> None:
    plan = plan_of(*(step(keep_alive.url + f"/s{i}", name=f"s{i}") for i in range(3)))
    pool = SessionPool()
    try:
        for run_number in range(1, 4):
            result = await run_check(plan, sessions=pool)
            assert result.status == "up", result
            # One new connection per run, carrying the run's three steps.
            assert len(keep_alive.seen) == run_number
            latest = keep_alive.seen[-1]
            # Cookies carry from step to step within the run, never into the next run.
            assert latest.cookies == ["", "visit=1", "visit=2"]
            # The run's connection is closed when it ends, not left for a later run.
            await asyncio.wait_for(latest.closed.wait(), timeout=5)
        assert pool.built == 1  # the three runs borrowed the same session in turn
    finally:
        await pool.close()


async def test_two_runs_at_once_each_get_their_own_session(keep_alive: Server) -> None:
    plan = plan_of(step(keep_alive.url + "/a", name="a"), step(keep_alive.url + "/b", name="b"))
    pool = SessionPool()
    try:
        results = await asyncio.gather(*(run_check(plan, sessions=pool) for _ in range(2)))
        assert [r.status for r in results] == ["up", "up"]
        assert pool.built == 2
        assert sorted(s.cookies[1] for s in keep_alive.seen) == ["visit=1", "visit=1"]
        # Both are kept: the next two runs build nothing.
        await asyncio.gather(*(run_check(plan, sessions=pool) for _ in range(2)))
        assert pool.built == 2
        assert len(keep_alive.seen) == 4
    finally:
        await pool.close()


async def test_a_pooled_https_run_makes_its_own_handshake(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    handshakes: list[str] = []
    server_context.sni_callback = lambda *_args: handshakes.append("hello")  # type: ignore[assignment,return-value]
    async for server in _serve(server_context):
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        plan = plan_of(step(server.url + "/", tls={"ca_file": "ca.pem"}), base_dir=tmp_path)
        pool = SessionPool()
        try:
            for run_number in (1, 2):
                result = await run_check(plan, sessions=pool)
                assert result.status == "up", result
                assert result.steps[0].timings.tls > 0
                assert len(handshakes) == run_number
            assert pool.built == 1
        finally:
            await pool.close()


async def test_a_run_cut_by_its_deadline_leaves_nothing_for_the_next() -> None:
    """The deadline cuts a run waiting for an answer that never comes; the next run through
    the pool opens a new connection and gets its answer."""
    answer = asyncio.Event()
    seen: list[asyncio.Transport] = []

    class Silent(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            seen.append(transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            if answer.is_set():
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    server = await asyncio.get_running_loop().create_server(Silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    plan = plan_of(step(f"http://127.0.0.1:{port}/"), timeout="200ms")
    pool = SessionPool()
    try:
        cut = await run_check(plan, sessions=pool)
        assert (cut.status, cut.reason) == ("down", "timeout")
        answer.set()
        result = await run_check(plan, sessions=pool)
        assert result.status == "up", result
        assert len(seen) == 2
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


async def test_idle_sessions_follow_the_runs_in_flight_down(keep_alive: Server) -> None:
    """A burst of 60 runs at once leaves sessions for the next burst; as runs thin out to one
    at a time, the sessions given back beyond a few spare are closed."""
    plan = plan_of(step(keep_alive.url + "/a"))
    pool = SessionPool()
    try:
        results = await asyncio.gather(*(run_check(plan, sessions=pool) for _ in range(60)))
        assert {r.status for r in results} == {"up"}
        assert pool.built == 60
        assert pool.lent == 0
        kept = pool.idle
        assert 16 < kept <= 60  # given back while others were still out
        for _ in range(kept):  # one run at a time
            assert (await run_check(plan, sessions=pool)).status == "up"
        assert pool.idle <= 16
        assert pool.built == 60  # each of those borrowed a kept one
    finally:
        await pool.close()
