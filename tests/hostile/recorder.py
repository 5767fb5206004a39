"""A loopback HTTP/1.1 server that keeps every request byte for byte.

aiohttp's own server parses the request line and headers before a handler sees them;
a test about what the probe *sent* (the exact request target, every header, the body)
needs the bytes themselves, so this one reads them off the socket::

    async with RecordingServer() as server:
        server.route("/start", 302, headers=[("Location", f"{other.url}/landing")])
        ...
        assert server.received[0].request_line == "GET /start HTTP/1.1"

Each connection serves one request and closes (`Connection: close`). A path with no
route gets `200 ok`. Requests carry a Content-Length body at most (what aiohttp sends
for bytes and JSON bodies). Pass ``ssl_context`` for HTTPS (see tests/hostile/tls.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any

__all__ = ["Received", "RecordingServer", "Reply"]

HEAD_LIMIT = 64 * 1024
BODY_LIMIT = 1 << 20
READ_TIMEOUT = 10.0
_CLIENT_GONE = (
    ConnectionError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    TimeoutError,
    ssl.SSLError,
)


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived."""

    head: bytes  # the request line and the header lines, CRLFs included
    body: bytes

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def method(self) -> str:
        return self.request_line.split(" ")[0]

    @property
    def target(self) -> str:
        """The request target exactly as sent: `/a%2Fb?x=1`."""
        return self.request_line.split(" ")[1]

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def headers(self) -> list[tuple[str, str]]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        pairs = (line.partition(":") for line in lines if line)
        return [(name, value.strip()) for name, _, value in pairs]

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    @property
    def raw(self) -> bytes:
        return self.head + self.body


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b"ok"
    content_type: str = "text/plain"

    def encode(self) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
            *(f"{name}: {value}" for name, value in self.headers),
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class RecordingServer:
    ssl_context: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)
    routes: dict[str, Reply] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def route(
        self,
        path: str,
        status: int = 200,
        *,
        headers: list[tuple[str, str]] | None = None,
        json_body: Any = None,
    ) -> None:
        """What `path` (the target without its query) answers."""
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        else:
            body, content_type = b"ok", "text/plain"
        self.routes[path] = Reply(status, tuple(headers or ()), body, content_type)

    @property
    def port(self) -> int:
        assert self._server is not None, "use the server as an async context manager"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def __aenter__(self) -> RecordingServer:
        self._server = await asyncio.start_server(
            self._on_connection, "127.0.0.1", 0, ssl=self.ssl_context, limit=HEAD_LIMIT
        )
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                body = await reader.readexactly(min(length, BODY_LIMIT))
            received = Received(head[:-2], body)
            self.received.append(received)
            reply = self.routes.get(received.path, Reply())
            writer.write(reply.encode())
            await writer.drain()
        except _CLIENT_GONE:
            pass  # a client that went away or never sent a whole request: nothing to record
        finally:
            writer.close()
            self._tasks.discard(task)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0
