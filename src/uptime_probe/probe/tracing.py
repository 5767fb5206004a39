"""Per-phase timings of a step's requests, from aiohttp's TraceConfig signals.

aiohttp reports DNS and "connection created" but not the point where TCP is up and
TLS starts. `TimedConnector` marks that point by wrapping the protocol factory,
which asyncio calls exactly once the socket is connected and before the TLS
handshake begins (tests/probe/test_tracing.py pins this down).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
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
    """Accumulates phase durations for one step (every redirect hop and poll attempt)."""

    __slots__ = (
        "_conn_start",
        "_dns_start",
        "_request_sent",
        "_tcp_connected",
        "_transfer_start",
        "connect",
        "judging",
        "last_data_at",
        "processing",
        "resolve",
        "resolving_host",
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
        self._transfer_start = 0.0
        # When the transport last handed the step's connection bytes: the end of the
        # response as the network delivered it, before our coroutine got the loop back.
        self.last_data_at = 0.0
        # What is being judged while state is JUDGING, for a deadline's message.
        self.judging = ""

    def judging_now(self, what: str) -> None:
        """The answer is in and is being judged off the loop: `what` says which part."""
        self.state = JUDGING
        self.judging = what

    def judging_done(self) -> None:
        self.state = IDLE

    def data_received(self) -> None:
        self.last_data_at = time.perf_counter()

    def dns_start(self, host: str = "") -> None:
        self.state = RESOLVING
        self.resolving_host = host
        self._dns_start = time.perf_counter()

    def dns_end(self) -> None:
        now = time.perf_counter()
        self.resolve += now - self._dns_start
        self._conn_start = now
        self.state = CONNECTING

    def connection_start(self) -> None:
        self.state = CONNECTING
        self._conn_start = time.perf_counter()
        self._tcp_connected = None

    def tcp_connected(self, tls: bool = False) -> None:
        self._tcp_connected = time.perf_counter()
        if tls:
            self.state = HANDSHAKING

    def connection_end(self, is_tls: bool) -> None:
        now = time.perf_counter()
        # Connection creation includes DNS; count only what came after it.
        start = max(self._conn_start, self._dns_start)
        tcp_done = self._tcp_connected if self._tcp_connected is not None else now
        if is_tls:
            self.connect += max(0.0, tcp_done - start)
            self.tls += max(0.0, now - tcp_done)
        else:
            self.connect += max(0.0, now - start)
        self.state = WAITING

    def request_sent(self) -> None:
        self._request_sent = time.perf_counter()
        self.state = WAITING

    def headers_received(self) -> None:
        now = time.perf_counter()
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

    def timings(self) -> PhaseTimings:
        return PhaseTimings(self.resolve, self.connect, self.tls, self.processing, self.transfer)


def _recorder(context: SimpleNamespace) -> PhaseRecorder | None:
    recorder = getattr(context, "trace_request_ctx", None)
    return recorder if isinstance(recorder, PhaseRecorder) else None


async def _on_dns_start(
    _s: Any, ctx: SimpleNamespace, params: aiohttp.TraceDnsResolveHostStartParams
) -> None:
    if (r := _recorder(ctx)) is not None:
        r.dns_start(params.host)


async def _on_dns_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (r := _recorder(ctx)) is not None:
        r.dns_end()


async def _on_conn_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (r := _recorder(ctx)) is not None:
        r.connection_start()


async def _on_conn_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (r := _recorder(ctx)) is not None:
        r.connection_end(getattr(ctx, "is_tls", False))


async def _on_request_start(
    _s: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
) -> None:
    ctx.is_tls = params.url.scheme == "https"


async def _on_headers_sent(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (r := _recorder(ctx)) is not None:
        r.request_sent()


async def _on_request_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (r := _recorder(ctx)) is not None:
        r.headers_received()


async def _on_redirect(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (r := _recorder(ctx)) is not None:
        r.headers_received()
        r.body_done()


@functools.cache
def build_trace_config() -> aiohttp.TraceConfig:
    """One TraceConfig for every session: its callbacks keep no state (the recorder travels
    in `trace_request_ctx`), and building one per run cost 16 signal lists a run."""
    config = aiohttp.TraceConfig(trace_config_ctx_factory=SimpleNamespace)
    config.on_request_start.append(_on_request_start)
    config.on_dns_resolvehost_start.append(_on_dns_start)
    config.on_dns_resolvehost_end.append(_on_dns_end)
    config.on_connection_create_start.append(_on_conn_start)
    config.on_connection_create_end.append(_on_conn_end)
    config.on_request_headers_sent.append(_on_headers_sent)
    config.on_request_end.append(_on_request_end)
    config.on_request_redirect.append(_on_redirect)
    return config


class _TimedResponseHandler(ResponseHandler):
    """aiohttp's response protocol, telling the current step's recorder when bytes arrive.

    A busy loop resumes a run's coroutine some milliseconds after its response arrived
    (docs/benchmarks.md, figure 3); the transport calls `data_received` at once, so the
    end of a response is timed here rather than when the coroutine next runs.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, connector: TimedConnector) -> None:
        super().__init__(loop)
        self._timed_by = connector

    def data_received(self, data: bytes) -> None:
        recorder = self._timed_by.recorder
        if recorder is not None:
            recorder.data_received()
        super().data_received(data)


class TimedConnector(aiohttp.TCPConnector):
    """A TCPConnector that tells the current step's recorder when TCP is connected.

    It also keeps the DER certificate the peer presented on the last connection it
    handed out (new or pooled): by the time a small response is returned, aiohttp
    has already released its connection, so the response cannot tell.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder: PhaseRecorder | None = None
        self.peer_certificate: bytes | None = None
        # Whether the connection being made is TLS: a stall after TCP is then the handshake's.
        self._connecting_tls = False

        def timed_factory() -> ResponseHandler:
            if self.recorder is not None:
                self.recorder.tcp_connected(self._connecting_tls)
            return _TimedResponseHandler(self._loop, self)

        self._factory = timed_factory  # type: ignore[assignment]

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,
    ) -> Connection:
        self._connecting_tls = req.is_ssl()
        connection = await super().connect(req, traces, timeout)
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            self.peer_certificate = ssl_object.getpeercert(binary_form=True)
        return connection
