"""TimedConnector and PhaseRecorder against real servers.

The connector wraps aiohttp's private `TCPConnector._factory`, relying on asyncio
calling the protocol factory once TCP is connected and before the TLS handshake.
These tests fail if an aiohttp or asyncio release moves that point.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import pytest
import trustme
import uvloop
from aiohttp import web

from uptime_probe.probe import judging
from uptime_probe.probe.tracing import PhaseRecorder, TimedConnector

from .conftest import Target
from .journeys import hold_the_loop_after_connecting, plan_of, run, step

ServeApp = Callable[..., Awaitable[str]]


class EventRecorder(PhaseRecorder):
    """A PhaseRecorder that also notes when each hook ran."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, float]] = []

    def connection_start(self) -> None:
        self.events.append(("connection_start", time.perf_counter()))
        super().connection_start()

    def tcp_connected(self, tls: bool = False) -> None:
        self.events.append(("tcp_connected", time.perf_counter()))
        super().tcp_connected(tls)

    def connection_end(self, is_tls: bool) -> None:
        self.events.append(("connection_end", time.perf_counter()))
        super().connection_end(is_tls)


def _app() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    return app


async def _get(url: str, ssl_context: ssl.SSLContext | bool, recorder: PhaseRecorder) -> int:
    connector = TimedConnector(use_dns_cache=False)
    connector.recorder = recorder
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, ssl=ssl_context) as response,
    ):
        await response.read()
        recorder.body_done()
        return response.status


async def test_https_marks_tcp_connected_before_the_tls_handshake(
    serve_app: ServeApp,
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_hello_at: list[float] = []

    def on_client_hello(*_args: Any) -> None:
        client_hello_at.append(time.perf_counter())

    server_context.sni_callback = on_client_hello
    url = await serve_app(_app(), ssl_context=server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    recorder = EventRecorder()

    assert await _get(url + "/", client_context, recorder) == 200

    names = [name for name, _ in recorder.events]
    assert names == ["connection_start", "tcp_connected", "connection_end"]
    at = dict(recorder.events)
    assert len(client_hello_at) == 1
    assert at["connection_start"] < at["tcp_connected"] < client_hello_at[0] < at["connection_end"]
    timings = recorder.timings()
    assert timings.connect > 0
    assert timings.tls > 0
    assert timings.processing > 0


async def test_http_has_no_tls_phase(serve_app: ServeApp) -> None:
    url = await serve_app(_app())
    recorder = EventRecorder()

    assert await _get(url + "/", False, recorder) == 200

    assert [name for name, _ in recorder.events] == [
        "connection_start",
        "tcp_connected",
        "connection_end",
    ]
    timings = recorder.timings()
    assert timings.connect > 0
    assert timings.tls == 0
    assert timings.resolve == 0  # an IP literal is never resolved
    assert timings.processing > 0


@pytest.mark.parametrize(
    ("is_tls", "tcp_at", "tls_at", "connect", "tls", "held"),
    [
        # The coroutine gets the connection at 11.0 and sends on it at 11.5; the phases end
        # where the transport said the connection was ready, the rest is the loop's hold.
        (True, 10.25, 10.75, 0.25, 0.5, 0.75),
        (False, 10.25, None, 0.25, 0.0, 1.25),
        (True, None, None, 1.0, 0.0, 0.5),  # never marked: all of it counts as connect
    ],
)
def test_phases_end_where_the_transport_said_and_the_wait_after_is_held(
    monkeypatch: pytest.MonkeyPatch,
    is_tls: bool,
    tcp_at: float | None,
    tls_at: float | None,
    connect: float,
    tls: float,
    held: float,
) -> None:
    marks = [at for at in (tcp_at, tls_at) if at is not None]
    clock = iter([10.0, *marks, 11.0, 11.5])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    recorder = PhaseRecorder()
    recorder.connection_start()
    if tcp_at is not None:
        recorder.tcp_connected(is_tls)
    if tls_at is not None:
        recorder.tls_done()
    recorder.connection_end(is_tls)
    recorder.request_sent()
    timings = recorder.timings()
    assert (timings.connect, timings.tls) == pytest.approx((connect, tls))
    assert recorder.held == pytest.approx(held)
    assert recorder.sent_at == 10.0


async def test_a_run_ends_when_its_answer_arrived_not_when_the_loop_got_to_it(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy loop (here: a judgement that holds it for 300 ms) comes back to a run late;
    the run's and the step's durations stop at the answer's last bytes all the same."""
    real_judge = judging.judge_response

    def busy_judge(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # stands for a loop busy with other runs' work
        return real_judge(*args, **kwargs)

    monkeypatch.setattr(judging, "judge_response", busy_judge)
    plan = plan_of(step(target.url + "/status/200"))

    started = time.perf_counter()
    result = await run(plan)
    wall = time.perf_counter() - started

    assert result.status == "up", result
    assert wall >= 0.3
    assert result.duration_seconds < wall - 0.25
    assert result.steps[0].duration_seconds < wall - 0.25
    assert result.steps[0].timings.transfer < 0.25


def test_the_recorder_notes_each_arrival() -> None:
    recorder = PhaseRecorder()
    assert recorder.last_data_at == 0.0
    before = time.perf_counter()
    recorder.data_received()
    assert recorder.last_data_at >= before


LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


class _Answer(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:  # uvloop's is no asyncio.Transport
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_slow_connect_counts_as_connect_not_as_the_loops_hold(loop: str) -> None:
    """The listener's accept queue is full, so the kernel drops the probe's SYN and sends it
    again a second later; the queue is emptied meanwhile. Whichever way the connection is
    made (uvloop makes its protocol before connecting), that second is the connect phase of
    the latency, never time the loop held a ready connection."""

    async def scenario() -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            address = listener.getsockname()
            fillers = []
            for _ in range(2):
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(address)
                fillers.append(filler)
            plan = plan_of(step(f"http://{address[0]}:{address[1]}/"))
            probing = asyncio.create_task(run(plan))
            # Holding the queue full while the first SYN is dropped is the behaviour under
            # test, not synchronisation.
            await asyncio.sleep(0.3)
            listener.setblocking(False)
            for _ in range(2):
                with contextlib.suppress(BlockingIOError):
                    listener.accept()[0].close()
            for filler in fillers:
                filler.close()
            server = await asyncio.get_running_loop().create_server(_Answer, sock=listener)
            try:
                result = await asyncio.wait_for(probing, timeout=4)
            finally:
                server.close()
        assert result.status == "up", result
        timings = result.steps[0].timings
        assert timings.connect > 0.5, timings
        assert timings.processing < 0.5, timings
        assert result.duration_seconds >= timings.connect

    LOOPS[loop](scenario())


@pytest.mark.parametrize("loop", LOOPS)
def test_a_refused_connection_is_connect_refused_on_either_loop(loop: str) -> None:
    async def scenario() -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        result = await run(plan_of(step(f"http://127.0.0.1:{port}/")))
        assert (result.reason, result.message) == (
            "connect_refused",
            f"fetch: connection to 127.0.0.1:{port} refused",
        )

    LOOPS[loop](scenario())


async def test_a_busy_loop_between_connecting_and_sending_is_not_the_targets_time(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop is held for 300 ms (other runs' work) right after the connection came up
    and before the run's request is written: the run's and the step's durations leave that
    wait out, and the phases still add up to the step's duration."""
    hold_the_loop_after_connecting(monkeypatch, 0.3)
    plan = plan_of(step(target.url + "/status/200"))

    started = time.perf_counter()
    result = await run(plan)
    wall = time.perf_counter() - started

    assert result.status == "up", result
    assert wall >= 0.3
    assert result.duration_seconds < wall - 0.25
    (fetch,) = result.steps
    assert fetch.duration_seconds < wall - 0.25
    assert sum(fetch.timings.as_dict().values()) == pytest.approx(fetch.duration_seconds, abs=1e-6)
