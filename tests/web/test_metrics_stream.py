"""GET /metrics in the text format, streamed from the event loop: the body is exactly
`render_text()` plus the daemon's own metrics, with and without gzip, follows runs and
reloads between scrapes, gives the loop turns while it renders, and survives a scraper
hanging up halfway. Served by a real aiohttp server; scraped by a real client."""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from uptime_probe.metrics import _RENDER_SLICE as RENDER_SLICE
from uptime_probe.metrics import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    CheckMetrics,
    DaemonMetrics,
    MetricsExposition,
    wants_openmetrics,
)
from uptime_probe.probe.model import Status
from uptime_probe.web.server import (
    DaemonControl,
    ReloadOutcome,
    build_web_app,
)

from ..conftest import ServeApp
from ..metrics.fixtures import Parsed, outcome, step_result
from .harness import make_config

# Enough checks for a ~11 MB body: many refresh slices and chunks, more than socket buffers.
MANY = 2000


@dataclass
class Served:
    url: str
    checks: CheckMetrics
    daemon: DaemonMetrics


def names(count: int) -> list[str]:
    return [f"c{i:04d}" for i in range(count)]


def checks_for(*names: str) -> CheckMetrics:
    checks = CheckMetrics("test")
    checks.sync_checks(make_config(*({"name": name} for name in names)).checks)
    return checks


def run(checks: CheckMetrics, name: str, status: Status = Status.UP, at: float = 1.7e9) -> None:
    reason = "http_5xx" if status is Status.DOWN else None
    step = step_result("fetch", status, reason=reason, http_status=503 if reason else 200)
    checks.accept(outcome(name, [step], state=status, started_at=at, location="test"))


def control(checks: CheckMetrics, daemon: DaemonMetrics) -> DaemonControl:
    async def reload() -> ReloadOutcome:
        return ReloadOutcome(True, "config reloaded")

    return DaemonControl(
        exposition=MetricsExposition(checks, daemon),
        readiness=lambda: (True, "ready"),
        reload=reload,
    )


async def serve(
    serve_app: ServeApp, checks: CheckMetrics, *, middleware: web.Middleware | None = None
) -> Served:
    daemon = DaemonMetrics(CollectorRegistry(auto_describe=True))
    daemon.schedule_lag.observe(0.004)
    app = build_web_app(control(checks, daemon))
    if middleware is not None:
        app.middlewares.append(middleware)
    return Served(await serve_app(app), checks, daemon)


async def scrape(
    url: str, *, accept_gzip: bool, method: str = "GET", accept: str = ""
) -> tuple[bytes, aiohttp.ClientResponse]:
    """The body as sent (gzip undone here, by hand) and the response."""
    headers = {"Accept-Encoding": "gzip" if accept_gzip else "identity"}
    if accept:
        headers["Accept"] = accept
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.request(method, f"{url}/metrics", headers=headers) as response,
    ):
        assert response.status == 200
        raw = await response.read()
    if response.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    return raw, response


def assert_body_is_exposition(body: bytes, served: Served) -> None:
    """render_text() byte for byte, then the daemon registry's part (whose process_*
    samples move between two reads, so that part is compared by its stable samples)."""
    text = served.checks.render_text().encode()
    assert body[: len(text)] == text
    daemon_part = body[len(text) :]

    def stable(exposition: bytes) -> Parsed:
        lines = [
            line for line in exposition.decode().splitlines(keepends=True) if "process_" not in line
        ]
        return Parsed.of_text("".join(lines))

    expected = generate_latest(served.daemon.registry)
    assert stable(daemon_part) == stable(expected)
    assert [f.name for f in text_string_to_metric_families(daemon_part.decode())] == [
        f.name for f in text_string_to_metric_families(expected.decode())
    ]


@pytest.mark.parametrize("accept_gzip", [False, True])
async def test_a_few_checks_stream_with_and_without_gzip(
    serve_app: ServeApp, accept_gzip: bool
) -> None:
    checks = checks_for("alpha", "beta")
    run(checks, "alpha")
    run(checks, "beta", Status.DOWN)
    served = await serve(serve_app, checks)
    body, response = await scrape(served.url, accept_gzip=accept_gzip)
    assert response.headers["Content-Type"] == TEXT_CONTENT_TYPE
    assert response.headers.get("Content-Encoding") == ("gzip" if accept_gzip else None)
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # middleware still applies
    assert_body_is_exposition(body, served)
    parsed = Parsed.of_text(body.decode())
    beta = {"check": "beta", "location": "test"}
    assert parsed.value("uptime_probe_check_failures_total", **beta, reason="http_5xx") == 1


@pytest.mark.parametrize("accept_gzip", [False, True])
async def test_many_checks_stream_equals_render_text(
    serve_app: ServeApp, accept_gzip: bool
) -> None:
    checks = checks_for(*names(MANY))
    for name in names(MANY)[::7]:
        run(checks, name)
    served = await serve(serve_app, checks)
    body, response = await scrape(served.url, accept_gzip=accept_gzip)
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert len(body) > 10_000_000
    assert_body_is_exposition(body, served)


async def test_concurrent_cold_scrapes_are_each_complete(serve_app: ServeApp) -> None:
    """Two scrapes interleaved on the loop, both rendering the same cold checks."""
    served = await serve(serve_app, checks_for(*names(MANY)))
    (plain, _), (compressed, _) = await asyncio.gather(
        scrape(served.url, accept_gzip=False), scrape(served.url, accept_gzip=True)
    )
    assert_body_is_exposition(plain, served)
    assert_body_is_exposition(compressed, served)


async def test_runs_and_reloads_between_scrapes_show_in_the_next(serve_app: ServeApp) -> None:
    checks = checks_for(*names(300))
    served = await serve(serve_app, checks)
    first, _ = await scrape(served.url, accept_gzip=True)
    assert_body_is_exposition(first, served)

    run(checks, "c0007", Status.DOWN, at=1.8e9)
    checks.sync_checks(make_config(*({"name": n} for n in names(300) if n != "c0100")).checks)
    second, _ = await scrape(served.url, accept_gzip=True)
    assert_body_is_exposition(second, served)
    before, after = Parsed.of_text(first.decode()), Parsed.of_text(second.decode())
    key = {"check": "c0007", "location": "test"}
    assert before.value("uptime_probe_check_runs_total", **key) == 0
    assert after.value("uptime_probe_check_runs_total", **key) == 1
    assert after.value("uptime_probe_check_last_run_timestamp_seconds", **key) == 1.8e9
    assert after.value("uptime_probe_check_state", **key, state="down") == 1
    assert "c0100" in before.checks()
    assert "c0100" not in after.checks()
    assert len(after.checks()) == 299


async def test_head_and_openmetrics_keep_working(serve_app: ServeApp) -> None:
    served = await serve(serve_app, checks_for(*names(50)))
    body, response = await scrape(served.url, accept_gzip=True, method="HEAD")
    assert body == b""
    assert response.headers["Content-Type"] == TEXT_CONTENT_TYPE
    body, response = await scrape(
        served.url, accept_gzip=True, accept="application/openmetrics-text;version=1.0.0"
    )
    assert response.headers["Content-Type"] == OPENMETRICS_CONTENT_TYPE
    assert response.headers["Content-Encoding"] == "gzip"
    assert body.endswith(b"# EOF\n")


# What Prometheus 2.42 sends (scrape_protocols by default).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


async def test_prometheus_is_answered_with_the_streamed_text_format(serve_app: ServeApp) -> None:
    served = await serve(serve_app, checks_for(*names(50)))
    body, response = await scrape(served.url, accept_gzip=True, accept=PROMETHEUS_ACCEPT)
    assert response.headers["Content-Type"] == TEXT_CONTENT_TYPE
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert_body_is_exposition(body, served)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("", False),
        ("text/plain", False),
        (PROMETHEUS_ACCEPT, False),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text; version=1.0.0, */*;q=0.1", False),
        ("application/openmetrics-text, text/plain;q=0", True),
        ("application/openmetrics-text, text/plain;q=oops", True),
        ("application/openmetrics-text, TEXT/*", False),
    ],
)
def test_openmetrics_only_for_a_scraper_that_takes_nothing_else(
    accept: str, openmetrics: bool
) -> None:
    assert wants_openmetrics(accept) is openmetrics


async def test_the_loop_runs_while_a_cold_scrape_renders(serve_app: ServeApp) -> None:
    """Another coroutine gets a turn after every slice of checks the server
    renders for a scrape; and runs landing meanwhile, as the scheduler's do, leave the
    scrape consistent: it is of one snapshot."""
    all_names = names(MANY)
    checks = checks_for(*all_names)  # never scraped: every check is rendered cold
    served = await serve(serve_app, checks)
    ticks = 0
    seen_while_rendering: set[int] = set()
    stop = False

    async def scheduler_like() -> None:
        nonlocal ticks
        while not stop:
            # How far the scrape's rendering has got (checks with cached blocks).
            rendered = len(checks._cache)
            if 0 < rendered < MANY:
                seen_while_rendering.add(rendered)
            run(checks, all_names[ticks % MANY], at=1.7e9 + ticks)
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(scheduler_like())
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{served.url}/metrics") as response,
        ):
            body = await response.read()
    finally:
        stop = True
        await ticking
    # Rendering is in slices of RENDER_SLICE (32) checks with a turn for the loop after
    # each: this coroutine saw every step, 32, 64, ... checks rendered, not none then all.
    assert sorted(seen_while_rendering) == list(range(RENDER_SLICE, MANY, RENDER_SLICE))
    parsed = Parsed.of_text(body.decode())
    for name in all_names:
        key = {"check": name, "location": "test"}
        runs = parsed.value("uptime_probe_check_runs_total", **key)
        assert parsed.value("uptime_probe_check_duration_seconds_count", **key) == runs
        assert parsed.value("uptime_probe_step_duration_seconds_count", **key, step="fetch") == runs
    assert ticks > len(seen_while_rendering)


@pytest.mark.parametrize("accept_gzip", [False, True])
async def test_a_scraper_hanging_up_mid_stream_is_not_an_error(
    serve_app: ServeApp, caplog: pytest.LogCaptureFixture, accept_gzip: bool
) -> None:
    handled: asyncio.Queue[tuple[BaseException | None, web.StreamResponse | None]]
    handled = asyncio.Queue()

    @web.middleware
    async def watch(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except BaseException as exc:
            handled.put_nowait((exc, None))
            raise
        handled.put_nowait((None, response))
        return response

    served = await serve(serve_app, checks_for(*names(MANY)), middleware=watch)
    host, port = served.url.removeprefix("http://").split(":")
    caplog.set_level(logging.DEBUG)

    # A small receive buffer, so the ~11 MB body cannot all be in flight when we hang up.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    encoding = "gzip" if accept_gzip else "identity"
    writer.write(
        f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: {encoding}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    await reader.readexactly(1024)  # part of the body: the server is mid-stream
    writer.transport.abort()  # hang up without reading the rest

    error, response = await asyncio.wait_for(handled.get(), timeout=30)
    assert error is None  # the handler returned: no exception for aiohttp to log
    assert response is not None
    if not accept_gzip:  # (compressed, the whole body may fit in the socket buffers)
        assert response.body_length == 0, "the body was sent whole: the hang-up came too late"
    # The server carries on: a whole scrape afterwards is complete and correct.
    body, _ = await scrape(served.url, accept_gzip=accept_gzip)
    assert_body_is_exposition(body, served)
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [], [r.getMessage() for r in problems]
