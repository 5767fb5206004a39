"""Per-phase timings of a step's requests, stamped where the transport sees them.

The stamps come from our connector and response protocol, not from aiohttp's TraceConfig
signals: a signal is a coroutine call per event (5 a request) and an object per event,
and it fires when the request's coroutine next runs, which on a busy loop is late
(docs/benchmarks.md, "Issue 19: per-run work"). `TimedConnector` wraps the connector's
DNS lookup and connection creation; TCP is up when the protocol factory is called on a
connected socket (aiohttp's way) or, when the loop connects the socket itself, when the
transport calls `connection_made`; over TLS `connection_made` comes as the handshake
completes; the transport calls `data_received` as bytes arrive.

These are aiohttp's private hooks (`_factory`, `_create_connection`,
`_wrap_create_connection`, `_resolve_host`, and the pool `end_run` empties), as stable
from 3.12 to 3.14 as the public ones; tests/probe/test_tracing.py and test_sessions.py
fail if a release moves them.

What a step's latency is (docs/configuration.md, "What the timings mean"): from the
moment its request started out (the DNS lookup, else the connection, else the request
on a kept-alive connection) to the answer's last bytes, less the time the loop held a
ready connection before sending on it (`held`): a plain client sends at once, and that
wait says how busy the prober was, not how fast the target is.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import AddrInfoType, Connection
from aiohttp.helpers import ceil_timeout, is_ip_address
from aiohttp.tracing import Trace

from uptime_probe.probe.model import PhaseTimings

IDLE = "idle"
RESOLVING = "resolving"
CONNECTING = "connecting"
HANDSHAKING = "handshaking"  # TCP is up, the TLS handshake is not done
WAITING = "waiting"
TRANSFERRING = "transferring"
JUDGING = "judging"


class PhaseRecorder:
    """Accumulates phase durations for one step's attempt (every redirect hop)."""

    __slots__ = (
        "_conn_start",
        "_dns_start",
        "_idle_since",
        "_ready_at",
        "_request_sent",
        "_tcp_connected",
        "_transfer_start",
        "connect",
        "held",
        "judging",
        "last_data_at",
        "processing",
        "resolve",
        "resolving_host",
        "sent_at",
        "state",
        "tls",
        "transfer",
    )

    def __init__(self) -> None:
        self.resolve = self.connect = self.tls = self.processing = self.transfer = 0.0
        self.state = IDLE
        self.resolving_host = ""  # the name of the lookup in flight, for a deadline's message
        self._dns_start = self._conn_start = self._request_sent = 0.0
        self._tcp_connected: float | None = None
        self._ready_at: float | None = None  # the connection's TLS handshake done
        self._transfer_start = 0.0
        # When the transport last handed the step's connection bytes: the end of the
        # response as the network delivered it, before our coroutine got the loop back.
        self.last_data_at = 0.0
        # When the attempt's request started out (its first lookup, connection or send);
        # 0.0 until then.
        self.sent_at = 0.0
        # Seconds the target waited on us within the attempt: a ready connection not yet
        # sent on, a redirect answered and not yet followed. Left out of the latency.
        self.held = 0.0
        self._idle_since = 0.0
        # What is being judged while state is JUDGING, for a deadline's message.
        self.judging = ""

    def began(self, started: float) -> float:
        """When the attempt's request started out, or `started` (the attempt's own start)
        while it has not."""
        return self.sent_at or started

    def judging_now(self, what: str) -> None:
        """The answer is in and is being judged off the loop: `what` says which part."""
        self.state = JUDGING
        self.judging = what

    def judging_done(self) -> None:
        self.state = IDLE

    def _goes_out(self, now: float) -> None:
        """The request makes its next move towards the target at `now`."""
        if not self.sent_at:
            self.sent_at = now
        if self._idle_since:
            self.held += max(0.0, now - self._idle_since)
            self._idle_since = 0.0

    def data_received(self) -> None:
        now = self.last_data_at = time.perf_counter()
        if self.state == WAITING and self._request_sent:
            self.headers_received(now)  # the answer's first bytes

    def dns_start(self, host: str = "") -> None:
        self.state = RESOLVING
        self.resolving_host = host
        self._dns_start = time.perf_counter()
        self._goes_out(self._dns_start)

    def dns_end(self) -> None:
        now = time.perf_counter()
        self.resolve += now - self._dns_start
        self._conn_start = now
        self.state = CONNECTING

    def connection_start(self) -> None:
        self.state = CONNECTING
        self._conn_start = time.perf_counter()
        self._goes_out(self._conn_start)
        self._tcp_connected = self._ready_at = None

    def tcp_connected(self, tls: bool = False) -> None:
        self._tcp_connected = time.perf_counter()
        if tls:
            self.state = HANDSHAKING

    def tls_done(self) -> None:
        """The TLS handshake completed (the transport says so as it happens)."""
        self._ready_at = time.perf_counter()

    def connection_end(self, is_tls: bool) -> None:
        """The connection is handed to the request. Its phases end where the transport said
        TCP was up (and the handshake done), not when the request's coroutine got here:
        from then to the send, the connection waited on us."""
        now = time.perf_counter()
        # Connection creation includes DNS; count only what came after it.
        start = max(self._conn_start, self._dns_start)
        tcp_done = self._tcp_connected if self._tcp_connected is not None else now
        if is_tls:
            ready = self._ready_at if self._ready_at is not None else now
            self.connect += max(0.0, tcp_done - start)
            self.tls += max(0.0, ready - tcp_done)
        else:
            ready = tcp_done
            self.connect += max(0.0, ready - start)
        self._idle_since = ready
        self.state = WAITING

    def request_sent(self) -> None:
        now = self._request_sent = time.perf_counter()
        self._goes_out(now)
        self.state = WAITING

    def headers_received(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        if self._request_sent:
            self.processing += now - self._request_sent
        self._request_sent = 0.0
        self.state = TRANSFERRING
        self._transfer_start = now

    def body_done(self) -> None:
        if self.state == TRANSFERRING:
            end = self.last_data_at if self.last_data_at > self._transfer_start else None
            self.transfer += (end or time.perf_counter()) - self._transfer_start
        self.state = IDLE

    def next_hop(self) -> None:
        """A redirect is followed: the last answer's transfer ends with its last bytes, and
        until the next request goes out the target waits on us."""
        if self.state == TRANSFERRING:
            self.body_done()
            self._idle_since = self.last_data_at or time.perf_counter()

    def timings(self) -> PhaseTimings:
        return PhaseTimings(self.resolve, self.connect, self.tls, self.processing, self.transfer)


class _TimedResponseHandler(ResponseHandler):
    """aiohttp's response protocol, telling the current step's recorder when the TLS
    handshake is done and when bytes arrive.

    A busy loop resumes a run's coroutine some milliseconds after its response arrived
    (docs/benchmarks.md, figure 3); the transport calls `data_received` at once, so the
    answer's first and last bytes are timed here rather than when the coroutine next runs.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, connector: TimedConnector, *, made_first: bool
    ) -> None:
        super().__init__(loop)
        self._timed_by = connector
        # Made before its socket connected (the loop connects it): TCP is up when the
        # transport calls connection_made, not when the factory made this.
        self._made_first = made_first

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Over TLS the SSL transport calls this as the handshake completes.
        recorder = self._timed_by.recorder
        if recorder is not None:
            if self._made_first:
                recorder.tcp_connected()
            elif self._timed_by.connecting_tls:
                recorder.tls_done()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        recorder = self._timed_by.recorder
        if recorder is not None:
            recorder.data_received()
        super().data_received(data)


class TimedConnector(aiohttp.TCPConnector):
    """A TCPConnector that stamps the current step's phases on its recorder: the lookup,
    the connection (TCP up, TLS done), the request going out.

    It also keeps the DER certificate the peer presented on the last connection it
    handed out (new or pooled): by the time a small response is returned, aiohttp
    has already released its connection, so the response cannot tell.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder: PhaseRecorder | None = None
        self.peer_certificate: bytes | None = None
        # Whether the connection being made is TLS: a stall after TCP is then the handshake's.
        self.connecting_tls = False
        # Whether the loop itself connects it (`_wrap_create_connection`): it calls the
        # factory before connecting, where aiohttp's way hands it a connected socket.
        self._loop_connects = False

        def timed_factory() -> ResponseHandler:
            if self.recorder is not None and not self._loop_connects:
                self.recorder.tcp_connected(self.connecting_tls)
            return _TimedResponseHandler(self._loop, self, made_first=self._loop_connects)

        self._factory = timed_factory  # type: ignore[assignment]

    def end_run(self) -> bool:
        """Close every connection the run left in the pool, so the next run that uses this
        connector opens its own (probe/sessions.py). False, closing nothing, when a
        connection is still out (a run cut mid-exchange): the caller closes the connector.

        aiohttp has no public call to empty a pool and keep the connector: this does what
        its `close()` does to pooled connections (`_close`, aiohttp 3.12 to 3.14), SSL ones
        aborted as a session's close aborts them (`ssl_shutdown_timeout` 0, its default),
        without marking the connector closed. tests/probe/test_sessions.py proves a run
        after it opens a new connection and that nothing is left open.
        """
        if self._acquired or self._closed:
            return False
        abort_ssl = getattr(self, "_ssl_shutdown_timeout", 0) == 0
        for pooled in self._conns.values():
            for protocol, _since in pooled:
                transport = protocol.transport
                if abort_ssl and transport and transport.get_extra_info("sslcontext") is not None:
                    protocol.abort()
                else:
                    protocol.close()
        self._conns.clear()
        if self._cleanup_handle is not None:
            self._cleanup_handle.cancel()
            self._cleanup_handle = None
        self.recorder = None
        self.peer_certificate = None
        return True

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,
    ) -> Connection:
        """A connection for `req`, new or kept alive; the request is sent as this returns
        (aiohttp writes it without yielding to the loop in between)."""
        recorder = self.recorder
        if recorder is not None:
            recorder.next_hop()
        self.connecting_tls = req.is_ssl()
        connection = await super().connect(req, traces, timeout)
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            self.peer_certificate = ssl_object.getpeercert(binary_form=True)
        if recorder is not None:
            recorder.request_sent()
        return connection

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        """A new connection (none kept alive fits): its lookup, TCP and TLS phases."""
        recorder = self.recorder
        if recorder is not None:
            recorder.connection_start()
        protocol = await super()._create_connection(req, traces, timeout)
        if recorder is not None:
            recorder.connection_end(req.is_ssl())
        return protocol

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[AddrInfoType],
        req: aiohttp.ClientRequest,
        timeout: aiohttp.ClientTimeout,
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        """A plain TCP connection to one IPv4 address: made by the loop in one call.

        aiohttp makes every connection through aiohappyeyeballs, which builds a Python
        socket, connects it with `sock_connect` and hands it to `create_connection`: 118 µs
        of CPU on uvloop against 44 µs for `create_connection(host, port)`, which uvloop
        does in C (docs/benchmarks.md, "Issue 19: per-run work"). With one address there is
        no race between addresses to run, so the loop's own call does the same: the same
        socket options (aiohttp's protocol sets TCP_NODELAY either way), and the same
        errors, turned into aiohttp's exception as aiohttp does below. TLS, several
        addresses, IPv6 and a local address keep aiohttp's way.
        """
        if (
            len(args) != 1
            or kwargs.get("ssl")
            or kwargs.get("server_hostname")
            or not set(kwargs) <= {"ssl", "server_hostname"}
            or len(addr_infos) != 1
            or addr_infos[0][0] != socket.AF_INET
            or self._local_addr_infos
            or self._socket_factory is not None
        ):
            return await super()._wrap_create_connection(
                *args,
                addr_infos=addr_infos,
                req=req,
                timeout=timeout,
                client_error=client_error,
                **kwargs,
            )
        factory: Callable[[], ResponseHandler] = args[0]
        family, _type, proto, _name, address = addr_infos[0]
        self._loop_connects = True
        try:
            async with ceil_timeout(timeout.sock_connect, ceil_threshold=timeout.ceil_threshold):
                return await self._loop.create_connection(
                    factory,
                    str(address[0]),
                    int(address[1]),
                    family=family,
                    proto=proto,
                    flags=socket.AI_NUMERICHOST,  # an address: never a lookup
                )
        except OSError as exc:
            if exc.errno is None and isinstance(exc, asyncio.TimeoutError):
                raise
            raise client_error(req.connection_key, exc) from exc
        finally:
            self._loop_connects = False

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        recorder = self.recorder
        if recorder is None or is_ip_address(host):  # an IP literal is never looked up
            return await super()._resolve_host(host, port, traces)
        recorder.dns_start(host)
        found = await super()._resolve_host(host, port, traces)
        recorder.dns_end()
        return found
