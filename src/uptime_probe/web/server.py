"""The aiohttp application: /metrics, /healthz, /readyz, the lifecycle API, and (given a
`StatusSource`) the status page and JSON API, behind optional auth."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from uptime_probe.config.model import AuthConfig
from uptime_probe.metrics import TEXT_CONTENT_TYPE, MetricsExposition, wants_openmetrics
from uptime_probe.probe.artifacts import TRACE_SUFFIX, ArtifactStore
from uptime_probe.web.api import StatusApi
from uptime_probe.web.auth import auth_middleware
from uptime_probe.web.connections import ConnectionGuard
from uptime_probe.web.offload import in_web_thread
from uptime_probe.web.status import ARTIFACTS_PATH, StatusPage, StatusSource

# OpenMetrics bodies smaller than this are sent as they are: compressing them costs more
# than it saves. (The streamed text format cannot know its size up front; it is always
# compressed when the scraper accepts gzip.)
_GZIP_MIN_BYTES = 4096


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    ok: bool
    message: str


@dataclass(slots=True)
class DaemonControl:
    """What the web layer may see and do of the daemon."""

    exposition: MetricsExposition
    readiness: Callable[[], tuple[bool, str]]
    reload: Callable[[], Awaitable[ReloadOutcome]]
    # Read on each request, so a reload can turn the lifecycle API on or off.
    enable_lifecycle: Callable[[], bool] = lambda: False
    # The status page, the JSON API and `server.auth` are read through it; None serves
    # only the endpoints above.
    status: StatusSource | None = None
    # Runs' files (failed browser steps' screenshots), served under /artifacts/ with the
    # status page; None serves none.
    artifacts: ArtifactStore | None = None

    def auth(self) -> AuthConfig | None:
        return self.status.config.server.auth if self.status is not None else None


CONTROL_KEY = web.AppKey("control", DaemonControl)


def _render_openmetrics(
    exposition: MetricsExposition, accept: str, gzip_ok: bool
) -> tuple[bytes, str, bool]:
    body, content_type = exposition.render(accept)
    if gzip_ok and len(body) >= _GZIP_MIN_BYTES:
        return gzip.compress(body, compresslevel=1), content_type, True
    return body, content_type, False


async def metrics(request: web.Request) -> web.StreamResponse:
    control = request.app[CONTROL_KEY]
    accept = request.headers.get("Accept", "")
    gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "")
    if not wants_openmetrics(accept):
        return await _stream_text(request, control.exposition, gzip_ok)
    # Through prometheus-client's generic exposition, in a web worker thread.
    body, content_type, compressed = await in_web_thread(
        _render_openmetrics, control.exposition, accept, gzip_ok
    )
    response = web.Response(body=body, headers={"Content-Type": content_type})
    if compressed:
        response.headers["Content-Encoding"] = "gzip"
    return response


async def _stream_text(
    request: web.Request, exposition: MetricsExposition, gzip_ok: bool
) -> web.StreamResponse:
    """The text format, streamed chunk by chunk as the exposition produces it.

    Not built whole in a worker thread: at 10,000 checks the body is ~60 MB, and joining
    and encoding it whole are single C calls that hold the GIL for tens of milliseconds,
    so the thread stalled the loop anyway (schedule lag p99 75 ms -> 171 ms when scraped
    every second), and the whole-body copies cost ~55 MiB RSS per scrape. Here each step
    of the exposition is bounded (~1-2 ms), the loop gets a turn after each, and only one
    ~256 KiB chunk is in hand at a time.
    """
    response = web.StreamResponse(headers={"Content-Type": TEXT_CONTENT_TYPE})
    if gzip_ok:
        response.headers["Content-Encoding"] = "gzip"
    # level 1: most of the saving at a fraction of the CPU; wbits=31: gzip framing.
    compressor = zlib.compressobj(level=1, wbits=31) if gzip_ok else None
    try:
        await response.prepare(request)
        if request.method == "HEAD":
            return response  # headers only: nothing to render
        for chunk in exposition.text_chunks():
            if chunk and compressor is not None:
                # zlib releases the GIL while it compresses, so in a thread the loop runs
                # on; each call is for one chunk, in order, never two at once.
                chunk = await in_web_thread(compressor.compress, chunk)
            if chunk:
                await response.write(chunk)  # waits while the scraper's socket is full
            await asyncio.sleep(0)  # a turn for the loop between steps
        if compressor is not None:
            await response.write(await in_web_thread(compressor.flush))
        await response.write_eof()
    except ConnectionResetError:
        # The scraper hung up (a scrape timeout, say): nothing to send, nothing wrong here.
        pass
    return response


async def artifact(request: web.Request) -> web.StreamResponse:
    """One run's file, by the name the step's result gave it: never a path of the caller's
    making (probe/artifacts.py accepts only its own names)."""
    store = request.app[CONTROL_KEY].artifacts
    relative = f"{request.match_info['check']}/{request.match_info['name']}"
    path = store.path_of(relative) if store is not None else None
    if path is None:
        return web.Response(text="No such artifact (only the newest are kept).\n", status=404)
    # A name is never reused, so the file behind it never changes. The type by the store's
    # own suffixes, never guessed: a trace is a download for Playwright's trace viewer.
    headers = {"Cache-Control": "private, max-age=86400"}
    if path.suffix == f".{TRACE_SUFFIX}":
        headers["Content-Type"] = "application/zip"
        headers["Content-Disposition"] = f'attachment; filename="{path.name}"'
    else:
        headers["Content-Type"] = "image/png"
    return web.FileResponse(path, headers=headers)


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    ready, why = request.app[CONTROL_KEY].readiness()
    return web.Response(text=f"{why}\n", status=200 if ready else 503)


async def reload(request: web.Request) -> web.Response:
    control = request.app[CONTROL_KEY]
    if not control.enable_lifecycle():
        return web.Response(text="Lifecycle API is not enabled.\n", status=403)
    outcome = await control.reload()
    return web.Response(text=f"{outcome.message}\n", status=200 if outcome.ok else 500)


# Every response; the status page sets its own Content-Security-Policy (with its nonce).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def build_web_app(
    control: DaemonControl, connections: ConnectionGuard | None = None
) -> web.Application:
    """The application; with `connections`, its middleware marks each request's
    connection busy (web/connections.py), outermost so that it sees every request."""
    middlewares = [auth_middleware(control.auth)]
    if connections is not None:
        middlewares.insert(0, connections.middleware)
    app = web.Application(middlewares=middlewares)
    app.on_response_prepare.append(_security_headers)
    app[CONTROL_KEY] = control
    if control.status is not None:
        page = StatusPage(control.status, files=control.artifacts)
        app.router.add_get("/", page.handle)
        StatusApi(
            control.status, writes_enabled=control.enable_lifecycle, files=control.artifacts
        ).add_routes(app)
        if control.artifacts is not None:
            app.router.add_get(ARTIFACTS_PATH + "/{check}/{name}", artifact)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/-/reload", reload)
    app.router.add_put("/-/reload", reload)
    return app
