"""Real servers on 127.0.0.1 for the non-HTTP kinds: TCP (plain or TLS) with a script."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class TcpServer:
    port: int
    connections: int = 0
    received: list[bytes] = field(default_factory=list)


async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An SMTP-like server: a banner, then one reply per command line, QUIT closes."""
    writer.write(b"220 mail.test ESMTP ready\r\n")
    await writer.drain()
    for _ in range(20):
        line = await reader.readline()
        if not line:
            return
        if line.startswith(b"EHLO"):
            writer.write(b"250-mail.test greets you\r\n250 SIZE 1000\r\n")
        elif line.startswith(b"PING"):
            writer.write(b"+PONG\r\n")
        elif line.startswith(b"QUIT"):
            writer.write(b"221 bye\r\n")
            await writer.drain()
            return
        else:
            writer.write(b"500 what\r\n")
        await writer.drain()


def silent_after(*lines: bytes) -> Handler:
    """Send these lines, then keep the connection open and say nothing more."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for line in lines:
            writer.write(line)
        await writer.drain()
        await reader.read()  # until the client closes: never on our own account

    return handle


def answers_then_silent(*replies: bytes) -> Handler:
    """A banner, then one reply per line received, then silence for the rest."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(replies[0])
        await writer.drain()
        for reply in replies[1:]:
            if not await reader.readline():
                return
            writer.write(reply)
            await writer.drain()
        await reader.read()

    return handle


def closes_after(*lines: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for line in lines:
            writer.write(line)
        await writer.drain()

    return handle


async def resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then a TCP RST instead of a word."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def floods(total: int) -> Handler:
    """Bytes without a line break, up to `total` or until the client hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            for _ in range(total // len(chunk)):
                writer.write(chunk)
                await writer.drain()

    return handle


ServeTcp = Callable[..., Awaitable[TcpServer]]


@pytest.fixture
async def serve_tcp() -> AsyncIterator[ServeTcp]:
    """`await serve_tcp(handler, ssl=context)` -> a TcpServer on 127.0.0.1; stopped at the end."""
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def serve(handler: Handler, *, ssl: ssl.SSLContext | None = None) -> TcpServer:
        found = TcpServer(port=0)

        async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            found.connections += 1
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await handler(reader, writer)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                pass
            finally:
                tasks.discard(task)
                writer.close()

        server = await asyncio.start_server(counted, "127.0.0.1", 0, ssl=ssl)
        servers.append(server)
        found.port = server.sockets[0].getsockname()[1]
        return found

    yield serve
    for server in servers:
        server.close()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        await server.wait_closed()
