"""The daemon's HTTP server, connection by connection: a header deadline and a cap.

aiohttp's server has neither. Its only timer is the keep-alive one (75 s from the accept),
so a client that sends one header line every 10 s holds a connection, and a descriptor,
for as long as it likes; 1,100 of them took every descriptor the process had, `/metrics`
and `/healthz` refused connections, and a healthy check failed with "Too many open files".

Each accepted connection is wrapped in a `GuardedConnection`, a protocol that hands every
event to aiohttp's own request handler and tracks which phase the connection is in:

    headers  just accepted, or new bytes after an idle keep-alive: the request's headers
             must be complete within `header_timeout` of then. Counted from then, not from
             the last byte, or a trickle of bytes would reset it forever. Cut with a 408.
    busy     a request is being handled (the guard's middleware saw it arrive)
    idle     between requests on a keep-alive connection: aiohttp's keep-alive timer ends it

At `max_connections`, a newcomer takes the place of the oldest connection still waiting
for its headers, else of the oldest idle one: held-open connections cannot lock a scraper
out, since a scraper sends its request at once and is busy before many newer connections
arrive. Only when every connection is busy is the newcomer turned away, with a 503.

Why a wrapper rather than a subclass of aiohttp's RequestHandler: the wrapper uses only
asyncio's protocol interface and a middleware; the handler's internals change between
aiohttp releases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import cast

from aiohttp import web

from uptime_probe.config.model import ServerConfig

# Why the guard closed a connection: the `why` label of
# uptime_probe_server_connections_closed_total.
HEADER_TIMEOUT = "header_timeout"
EVICTED = "evicted"
REFUSED = "refused"
CLOSE_REASONS = (HEADER_TIMEOUT, EVICTED, REFUSED)

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class Phase(StrEnum):
    HEADERS = "headers"
    BUSY = "busy"
    IDLE = "idle"


class ConnectionGuard:
    """The server's open connections by phase, oldest first, and the limits they keep."""

    def __init__(
        self,
        *,
        max_connections: int,
        header_timeout: float,
        on_close: Callable[[str], None] = lambda _why: None,
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._on_close = on_close
        # Insertion-ordered: the first key of each is the connection longest in that phase.
        self._phases: dict[Phase, dict[GuardedConnection, None]] = {phase: {} for phase in Phase}

    def configure(self, server: ServerConfig, max_connections: int) -> None:
        """A reload's settings; connections over a lowered cap give way to newcomers."""
        self.max_connections = max_connections
        self.header_timeout = server.header_timeout

    @property
    def open(self) -> int:
        return sum(len(connections) for connections in self._phases.values())

    def protocol_factory(
        self, handler: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """For `loop.create_server`: aiohttp's handler (`runner.server`) behind the guard."""
        return lambda: GuardedConnection(self, handler)

    async def start_server(
        self, runner: web.BaseRunner, host: str, port: int, *, backlog: int
    ) -> asyncio.Server:
        """Listen on host:port with `runner`'s aiohttp server behind the guard.

        Not a `web.TCPSite`: a site always hands accepted connections to aiohttp directly.
        Close the returned server before `runner.cleanup()`. The loop accepts up to
        `backlog` connections in one burst before the guard sees any of them: that many
        descriptors can be open beyond `max_connections` for a moment.
        """
        handler = runner.server
        if handler is None:
            raise RuntimeError("runner.setup() first")
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            self.protocol_factory(handler), host, port, reuse_address=True, backlog=backlog
        )

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Marks the request's connection busy while it is handled (headers complete)."""
        transport = request.transport
        connection = transport.get_protocol() if transport is not None else None
        if not isinstance(connection, GuardedConnection):
            return await handler(request)
        connection.enter(Phase.BUSY)
        try:
            return await handler(request)
        finally:
            connection.enter(Phase.IDLE)

    # -- called by GuardedConnection -------------------------------------------------------

    def _admit(self, connection: GuardedConnection) -> bool:
        if self.open >= self.max_connections:
            victim = self._oldest_waiting()
            if victim is None:
                self._on_close(REFUSED)
                return False
            self._drop(victim, EVICTED, None)
        self._phases[Phase.HEADERS][connection] = None
        return True

    def _oldest_waiting(self) -> GuardedConnection | None:
        for connection in self._phases[Phase.HEADERS]:
            return connection
        for connection in self._phases[Phase.IDLE]:
            # Not one whose last response is still being written: closing would cut it.
            if connection.flushed:
                return connection
        return None

    def _drop(self, connection: GuardedConnection, why: str, response: bytes | None) -> None:
        """Close it and stop counting it now: its descriptor is freed within a loop turn,
        and the next newcomer must not pick the same victim."""
        self._forget(connection)
        connection.close(response)
        self._on_close(why)

    def _move(self, connection: GuardedConnection, old: Phase, new: Phase) -> None:
        if connection in self._phases[old]:  # not dropped meanwhile
            del self._phases[old][connection]
            self._phases[new][connection] = None

    def _forget(self, connection: GuardedConnection) -> None:
        self._phases[connection.phase].pop(connection, None)


class GuardedConnection(asyncio.Protocol):
    """One accepted connection: aiohttp's handler inside, the guard's phase around it."""

    def __init__(self, guard: ConnectionGuard, handler: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._handler_factory = handler
        self._handler: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.phase = Phase.HEADERS

    @property
    def flushed(self) -> bool:
        return self._transport is not None and self._transport.get_write_buffer_size() == 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not derive from asyncio's.
        self._transport = cast(asyncio.Transport, transport)
        if not self._guard._admit(self):
            self.close(_BUSY)  # aiohttp never sees it
            return
        self._handler = self._handler_factory()
        self._handler.connection_made(self._transport)
        self._start_deadline()

    def data_received(self, data: bytes) -> None:
        if self._handler is None:
            return
        if self.phase is Phase.IDLE:
            self.enter(Phase.HEADERS)  # the next request's first bytes
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler is not None else None

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._handler is not None:
            self._guard._forget(self)
            self._handler.connection_lost(exc)
            self._handler = None
        self._transport = None

    def enter(self, phase: Phase) -> None:
        if self._handler is None or phase is self.phase:
            return
        self._guard._move(self, self.phase, phase)
        self.phase = phase
        self._cancel_deadline()
        if phase is Phase.HEADERS:
            self._start_deadline()

    def close(self, response: bytes | None) -> None:
        """Close now; `response` first if nothing else is waiting to be written."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport.abort()  # a close would wait for a reader that may never read
            return
        if response is not None:
            transport.write(response)
        transport.close()

    def _start_deadline(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout, self._headers_late)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.phase is Phase.HEADERS:
            self._guard._drop(self, HEADER_TIMEOUT, _REQUEST_TIMEOUT)
