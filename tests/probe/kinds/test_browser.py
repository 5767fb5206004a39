"""The browser kind in real Chromium (Debian's, installed by scripts/test.sh) against real
pages on 127.0.0.1: every reason it can end with, its figures, its screenshot.

Chromium must be there: a missing one fails these tests (the config does not load), never
skips them. One Chromium serves the module, as one serves a daemon; every run still gets
its own browser context.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme
from aiohttp import web

from uptime_probe.config.chromium import find_chromium
from uptime_probe.probe import CheckPlan, CheckResult, Status, run_check
from uptime_probe.probe.artifacts import ARTIFACTS, ArtifactStore
from uptime_probe.probe.browser_pool import AS_ROOT, BROWSER, BrowserPool
from uptime_probe.probe.kinds.browser import BrowserFigures

from ...conftest import RefusingExecutor
from ..journeys import plan_of
from .browser_target import (
    SIDEBAR,
    BrowserTarget,
    browser_process,
    build_app,
    free_port,
    renderer_processes,
    start_resetting_server,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Chromium resolves this name to "not found" without asking any DNS server.
MISSING_HOST = "no-such-host.test"
HOST_RULES = f"--host-resolver-rules=MAP {MISSING_HOST} ~NOTFOUND"
# How far past its deadline a run may end: the event loop's turns, nothing more.
MARGIN = 1.0
PNG = b"\x89PNG\r\n\x1a\n"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def target() -> AsyncIterator[BrowserTarget]:
    state = BrowserTarget()
    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False,
                           shutdown_timeout=0.1)  # fmt: skip
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pool() -> AsyncIterator[BrowserPool]:
    executable = find_chromium(None)
    assert executable, "no Chromium on PATH: scripts/test.sh installs Debian's chromium"
    browsers = BrowserPool(executable, max_concurrent=2, extra_args=[HOST_RULES])
    yield browsers
    await browsers.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArtifactStore]:
    artifacts = ArtifactStore(tmp_path / "artifacts", keep=5)
    yield artifacts
    artifacts.close()


def browser_step(url: str, name: str = "page", **fields: Any) -> dict[str, Any]:
    page = {"url": url}
    for key in ("headers", "actions"):
        if key in fields:
            page[key] = fields.pop(key)
    return {"name": name, "browser": page, **fields}


async def run(
    plan: CheckPlan, pool: BrowserPool, store: ArtifactStore | None = None
) -> CheckResult:
    """A run as the daemon makes it (a browser slot, then run_check), checking the
    invariants every result keeps: one reason exactly when down, within the deadline."""
    resources: dict[str, object] = {BROWSER: pool}
    if store is not None:
        resources[ARTIFACTS] = store
    async with pool.slot_for(plan):
        started = time.perf_counter()
        result = await run_check(plan, resources=resources)
        took = time.perf_counter() - started
    assert (result.reason is None) is (result.status is not Status.DOWN), result
    assert took <= plan.timeout + MARGIN, (took, result)
    step = result.steps[-1]
    assert step.kind == "browser"
    assert isinstance(step.figures, BrowserFigures), step
    return result


def screenshot(result: CheckResult, store: ArtifactStore) -> bytes:
    step = result.steps[-1]
    assert step.artifact is not None, result
    path = store.path_of(step.artifact)
    assert path is not None, step.artifact
    assert step.artifact.startswith(f"{result.check}/")
    assert step.artifact.endswith("-page.png")
    return path.read_bytes()


# --- what a good page measures --------------------------------------------------------------


async def test_a_rendered_sidebar_passes_with_its_page_timings(
    target: BrowserTarget, pool: BrowserPool, store: ArtifactStore
) -> None:
    plan = plan_of(
        browser_step(
            target.url + "/sidebar",
            expect={
                "status": 200,
                "elements": [
                    {"selector": "#history li", "min_count": 2, "reason": "empty_history"},
                    {"selector": "#sidebar", "text_contains": "Conversations"},
                ],
                "no_console_errors": True,
            },
        )
    )
    result = await run(plan, pool, store)
    step = result.steps[0]
    assert (result.status, step.message, step.http_status) == (Status.UP, "HTTP 200", 200)
    figures = step.figures
    assert isinstance(figures, BrowserFigures)
    assert figures.ttfb_seconds is not None
    assert figures.ttfb_seconds > 0
    assert figures.dom_content_loaded_seconds is not None
    assert figures.load_seconds is not None
    assert figures.ttfb_seconds <= figures.dom_content_loaded_seconds <= figures.load_seconds
    assert figures.lcp_seconds is not None
    assert figures.lcp_seconds > 0
    assert figures.requests >= 2  # the document and the fetch of the list
    assert figures.failed_requests == 0
    assert figures.transferred_bytes >= len(SIDEBAR)
    assert step.artifact is None  # only a failed step leaves a screenshot
    assert set(figures.as_dict()) == {
        "ttfb_seconds", "dom_content_loaded_seconds", "load_seconds", "lcp_seconds",
        "requests", "failed_requests", "transferred_bytes",
    }  # fmt: skip


async def test_an_empty_sidebar_fails_with_its_reason_a_screenshot_and_the_rendered_text(
    target: BrowserTarget, pool: BrowserPool, store: ArtifactStore
) -> None:
    plan = plan_of(
        browser_step(
            target.url + "/sidebar?empty=1",
            expect={"elements": [{"selector": "#history li", "reason": "empty_history"}]},
        )
    )
    result = await run(plan, pool, store)
    assert (result.status, result.reason) == (Status.DOWN, "empty_history")
    assert result.message == "page: count('#history li') = 0, expected >= 1"
    assert result.http_status == 200
    assert screenshot(result, store).startswith(PNG)
    assert "Conversations" in (result.steps[0].response_sample or "")


@pytest.mark.parametrize(
    ("item", "passes", "message"),
    [
        ({"selector": "#items li", "min_count": 3}, True, ""),
        ({"selector": "#items li", "min_count": 4}, False, "count('#items li') = 3, expected >= 4"),
        ({"selector": "#items li", "max_count": 2}, False, "count('#items li') = 3, expected <= 2"),
        ({"selector": "#items li", "max_count": 3}, True, ""),
        ({"selector": "#items", "text_contains": "two"}, True, ""),
        ({"selector": "#items", "text_contains": "four"}, False,
         "text('#items') = 'one two three', expected to contain 'four'"),
        ({"selector": "#items li", "text_matches": "^one\\ntwo"}, True, ""),
        ({"selector": "#nope", "text_contains": "x"}, False,
         "text('#nope') = no element, expected to contain 'x'"),
        ({"selector": "#title", "visible": True}, True, ""),
        ({"selector": "#hidden", "visible": True}, False,
         "visible('#hidden') = false, expected visible"),
        ({"selector": "#hidden", "visible": False}, True, ""),
        ({"selector": "#nope", "visible": False}, True, ""),
        ({"selector": "#nope"}, False, "count('#nope') = 0, expected >= 1"),
    ],
)  # fmt: skip
async def test_each_element_operator(
    target: BrowserTarget, pool: BrowserPool, item: dict[str, Any], passes: bool, message: str
) -> None:
    plan = plan_of(browser_step(target.url + "/plain", expect={"elements": [item]}))
    result = await run(plan, pool)
    if passes:
        assert result.status is Status.UP, result
    else:
        assert (result.reason, result.message) == ("assertion_failed", f"page: {message}")


async def test_a_warning_item_and_a_slow_page_are_degraded_not_down(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    warning = plan_of(
        browser_step(
            target.url + "/plain",
            expect={"elements": [{"selector": "#nope", "severity": "warning"}]},
        )
    )
    result = await run(warning, pool)
    assert (result.status, result.message) == (
        Status.DEGRADED, "page: count('#nope') = 0, expected >= 1"
    )  # fmt: skip
    slow = plan_of(browser_step(target.url + "/sidebar?delay=0.3", expect={"max_latency": "100ms"}))
    result = await run(slow, pool)
    assert result.status is Status.DEGRADED
    assert "above max_latency 0.1s" in result.message


async def test_actions_fill_click_and_wait_for_the_answer(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    plan = plan_of(
        browser_step(
            target.url + "/sidebar",
            actions=[
                {"fill": {"selector": "#prompt", "text": "{{ greeting }}"}},
                {"click": "#send"},
                {"wait_for": "#answer.done"},
            ],
            expect={"elements": [{"selector": "#answer", "text_contains": "you said hello"}]},
        ),
        variables={"greeting": "hello"},
    )
    result = await run(plan, pool)
    assert result.status is Status.UP, result


async def test_a_wait_for_that_runs_out_is_element_missing(
    target: BrowserTarget, pool: BrowserPool, store: ArtifactStore
) -> None:
    plan = plan_of(
        browser_step(
            target.url + "/sidebar",
            actions=[{"wait_for": {"selector": "#answer.done", "within": "500ms"}}],
        )
    )
    result = await run(plan, pool, store)
    assert (result.reason, result.message) == (
        "element_missing", "page: wait_for '#answer.done': not visible within 0.5s"
    )  # fmt: skip
    assert screenshot(result, store).startswith(PNG)
    # Without its own `within`, it waits for the journey's deadline, and says so.
    plan = plan_of(
        browser_step(target.url + "/plain", actions=[{"wait_for": "#never"}]), timeout="2s"
    )
    result = await run(plan, pool)
    assert result.reason == "element_missing"
    assert result.message == "page: wait_for '#never': not visible before the journey deadline"


async def test_a_header_from_an_extracted_value_that_would_inject_is_extraction_failed(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    target.reset()
    plan = plan_of(
        {"name": "login", "request": {"url": target.url + "/api/hostile"},
         "extract": {"token": "token"}},
        browser_step(target.url + "/plain", headers={"Authorization": "Bearer {{ token }}"}),
    )  # fmt: skip
    async with pool.slot_for(plan):
        result = await run_check(plan, resources={BROWSER: pool})
    assert (result.reason, result.failed_step) == ("extraction_failed", "page")
    assert "request header Authorization" in result.message
    assert "/plain" not in target.headers  # nothing was sent


async def test_a_click_on_nothing_is_cut_by_the_deadline_as_timeout(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    plan = plan_of(browser_step(target.url + "/plain", actions=[{"click": "#nope"}]), timeout="2s")
    result = await run(plan, pool)
    assert result.reason == "timeout"
    assert result.message.startswith("page: click '#nope': cut by the journey deadline")


# --- the main document's status ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected", "reason", "status"),
    [
        ("/status/404", "2xx", "http_4xx", 404),
        ("/status/503", "2xx", "http_5xx", 503),
        ("/status/429", "2xx", "rate_limited", 429),
        ("/plain", 201, "unexpected_status", 200),
        # Chromium renders nothing for a 204: its navigation is aborted (net::ERR_ABORTED).
        ("/status/204", 200, "unexpected_status", 204),
    ],
)
async def test_the_documents_status_keeps_the_http_reasons(
    target: BrowserTarget,
    pool: BrowserPool,
    store: ArtifactStore,
    path: str,
    expected: object,
    reason: str,
    status: int,
) -> None:
    plan = plan_of(browser_step(target.url + path, expect={"status": expected}))
    result = await run(plan, pool, store)
    assert (result.reason, result.http_status) == (reason, status)
    assert result.message.startswith(f"page: HTTP {status}, expected {expected}")
    if status != 204:
        assert screenshot(result, store).startswith(PNG)  # the error page as users saw it


# --- the network: Chromium's net::ERR_* codes, for real ----------------------------------


async def test_a_refused_connection_is_connect_refused(pool: BrowserPool) -> None:
    plan = plan_of(browser_step(f"http://127.0.0.1:{free_port()}/"))
    result = await run(plan, pool)
    assert (result.reason, result.message) == (
        "connect_refused", "page: loading the document: net::ERR_CONNECTION_REFUSED"
    )  # fmt: skip


async def test_a_name_that_does_not_resolve_is_dns(pool: BrowserPool) -> None:
    plan = plan_of(browser_step(f"http://{MISSING_HOST}/"))
    result = await run(plan, pool)
    assert (result.reason, result.message) == (
        "dns", "page: loading the document: net::ERR_NAME_NOT_RESOLVED"
    )  # fmt: skip


async def test_an_untrusted_certificate_is_tls(pool: BrowserPool, tmp_path: Path) -> None:
    ca = trustme.CA()  # not in the system's store Chromium trusts
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    app = web.Application()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text="<h1>tls</h1>", content_type="text/html")

    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        plan = plan_of(browser_step(f"https://127.0.0.1:{runner.addresses[0][1]}/"))
        result = await run(plan, pool)
    finally:
        await runner.cleanup()
    assert (result.reason, result.message) == (
        "tls", "page: loading the document: net::ERR_CERT_AUTHORITY_INVALID"
    )  # fmt: skip


async def test_a_connection_closed_without_an_answer_is_connection_reset(pool: BrowserPool) -> None:
    server, port = await start_resetting_server()
    try:
        result = await run(plan_of(browser_step(f"http://127.0.0.1:{port}/")), pool)
    finally:
        server.close()
        await server.wait_closed()
    assert result.reason == "connection_reset"
    assert result.message.startswith("page: loading the document: net::ERR_")


async def test_a_redirect_loop_is_too_many_redirects(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    result = await run(plan_of(browser_step(target.url + "/loop")), pool)
    assert (result.reason, result.message) == (
        "too_many_redirects", "page: loading the document: net::ERR_TOO_MANY_REDIRECTS"
    )  # fmt: skip


async def test_a_body_that_does_not_decode_is_invalid_encoding(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    result = await run(plan_of(browser_step(target.url + "/broken-gzip")), pool)
    assert result.reason == "invalid_encoding"
    assert "net::ERR_CONTENT_DECODING_FAILED" in result.message


# --- the deadline ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/hang", "page: loading the document: cut by the journey deadline with 1 request in "
                  "flight, the oldest http://127.0.0.1:{port}/hang"),
        ("/hang-subresource", "page: waiting for the load event: cut by the journey deadline "
                              "with 1 request in flight, the oldest http://127.0.0.1:{port}/hang"),
        ("/poll-forever", "page: waiting for the network to go idle: cut by the journey "
                          "deadline"),
    ],
)  # fmt: skip
async def test_the_deadline_cutting_the_load_is_timeout_saying_what_it_waited_for(
    target: BrowserTarget, pool: BrowserPool, store: ArtifactStore, path: str, says: str
) -> None:
    plan = plan_of(browser_step(target.url + path), timeout="3s")
    started = time.perf_counter()
    result = await run(plan, pool, store)
    # It waited for the deadline (less the reserve for the screenshot), not less.
    assert time.perf_counter() - started >= 3 * 0.8 - 0.1
    assert result.reason == "timeout"
    port = target.url.rsplit(":", 1)[1]
    assert result.message.startswith(says.format(port=port)), result.message
    # The page is stopped first, so even a document that never came leaves its screenshot.
    assert screenshot(result, store).startswith(PNG)


# --- what the page itself does -------------------------------------------------------------


async def test_an_uncaught_exception_is_page_error_when_asked(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    plan = plan_of(browser_step(target.url + "/throws", expect={"no_console_errors": True}))
    result = await run(plan, pool)
    assert result.reason == "page_error"
    assert result.message.startswith("page: uncaught TypeError: Cannot read properties of null")
    # Not asked: the page's errors are its own business.
    assert (await run(plan_of(browser_step(target.url + "/throws")), pool)).status is Status.UP


async def test_a_console_error_is_page_error_quoted_with_secrets_redacted(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    plan = plan_of(
        browser_step(target.url + "/console-error", expect={"no_console_errors": True}),
        secrets={"token": "tok-SECRET-123"},
    )
    result = await run(plan, pool)
    assert result.reason == "page_error"
    assert result.message == ("page: console error: cannot load history: token [REDACTED] rejected")


async def test_a_secret_where_the_page_text_is_cut_is_redacted_whole(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    plan = plan_of(
        browser_step(target.url + "/console-error-long", expect={"no_console_errors": True}),
        secrets={"token": "tok-SECRET-123"},
    )
    result = await run(plan, pool)
    assert result.reason == "page_error"
    # Cut first, the secret's head ("tok-SE...") would have escaped the redactor.
    assert "tok-" not in result.message
    assert "[REDACTED]" in result.message


async def test_a_resource_the_page_fails_to_load_is_a_console_error_but_the_favicon_is_not(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    plan = plan_of(browser_step(target.url + "/with-assets", expect={"no_console_errors": True}))
    result = await run(plan, pool)
    assert result.reason == "page_error"
    assert "Failed to load resource" in result.message
    # A page without <link rel=icon>: Chromium asks for /favicon.ico itself, gets a 404.
    plan = plan_of(browser_step(target.url + "/status/200", expect={"no_console_errors": True}))
    result = await run(plan, pool)
    assert result.status is Status.UP, result
    assert "/favicon.ico" in target.headers


async def test_a_page_eating_memory_crashes_alone_as_page_error(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    plan = plan_of(
        browser_step(target.url + "/memory", actions=[{"wait_for": "#never"}]), timeout="20s"
    )
    result = await run(plan, pool)
    assert result.reason == "page_error"
    assert "the page crashed" in result.message
    # The browser lives on: the next page renders.
    assert (await run(plan_of(browser_step(target.url + "/plain")), pool)).status is Status.UP


# --- what the browser sends, and forgets -------------------------------------------------


async def test_headers_go_with_every_request_of_the_page_credentials_to_its_origin_only(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    target.reset()
    plan = plan_of(
        browser_step(
            target.url + "/cross-origin",
            headers={
                "Authorization": "Bearer {{ token }}",
                "X-Api-Key": "{{ token }}-key",
                "X-Probe": "{{ region }}",
                "User-Agent": "probe-browser/1",
            },
        ),
        secrets={"token": "tok-abcdef"},
        variables={"region": "eu-west"},
    )
    result = await run(plan, pool)
    assert result.status is Status.UP, result
    # The page's own origin: every header, on the document and on what the page fetches.
    for path in ("/cross-origin", "/tiny"):
        (seen,) = target.headers[path]
        assert seen["Authorization"] == "Bearer tok-abcdef", path
        assert seen["X-Api-Key"] == "tok-abcdef-key", path
        assert seen["X-Probe"] == "eu-west", path
        assert seen["User-Agent"] == "probe-browser/1", path
    # Another origin (a CDN, an analytics script): never a credential nor a secret.
    (script,) = target.headers["/asset.js"]
    assert script["Host"].startswith("localhost:")
    assert "Authorization" not in script
    assert "X-Api-Key" not in script
    assert (script["X-Probe"], script["User-Agent"]) == ("eu-west", "probe-browser/1")


async def test_a_page_whose_origin_the_target_named_gets_no_credential_nor_secret(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    # As for a request step (probe/secret_origins.py): the origin must be the config's.
    target.reset()
    plan = plan_of(
        {"name": "where", "request": {"url": target.url + "/api/where"},
         "extract": {"page": "page"}},
        browser_step(
            "{{ page }}",
            headers={"Authorization": "Bearer {{ token }}", "X-Probe": "{{ region }}"},
        ),
        secrets={"token": "tok-abcdef"},
        variables={"region": "eu-west"},
    )  # fmt: skip
    result = await run(plan, pool)
    assert result.status is Status.UP, result
    (seen,) = target.headers["/cross-origin"]
    assert "Authorization" not in seen
    assert seen["X-Probe"] == "eu-west"


async def test_every_run_is_a_new_user_without_cookies(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    target.reset()
    # With a credential header, so the page's requests to its origin are routed (to add
    # it): the page's own cookies still go with them.
    plan = plan_of(browser_step(target.url + "/cookie", headers={"Authorization": "Bearer x"}))
    for _ in range(2):
        assert (await run(plan, pool)).status is Status.UP
    # Within a run the page's cookie is sent; the next run starts without it.
    assert target.cookies["/cookie"] == ["", ""]
    assert target.cookies["/tiny"] == ["seen=1", "seen=1"]


async def test_failed_requests_are_counted(target: BrowserTarget, pool: BrowserPool) -> None:
    port = free_port()
    plan = plan_of(browser_step(f"{target.url}/many?n=3&to=http://127.0.0.1:{port}/x"))
    result = await run(plan, pool)
    figures = result.steps[0].figures
    assert isinstance(figures, BrowserFigures)
    assert (figures.requests, figures.failed_requests) == (4, 3)


# --- the pool: a cap on runs at once, one process, started again when it died ------------


async def test_at_most_max_concurrent_browser_runs_at_once(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    target.reset()
    # A lone run waits 2 s on the page for a partner: room for that on a loaded machine.
    plans = [plan_of(browser_step(target.url + "/held"), timeout="10s") for _ in range(5)]
    results = await asyncio.gather(*(run(plan, pool) for plan in plans))
    assert all(result.status is Status.UP for result in results), results
    assert target.most_in_flight == 2  # they overlapped, two at a time, never three


async def test_chromium_killed_mid_run_is_the_probers_failure_and_the_next_run_starts_a_new_one(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    await run(plan_of(browser_step(target.url + "/plain")), pool)  # Chromium is up
    launches = pool.launches
    hanging = target.hanging
    task = asyncio.create_task(run(plan_of(browser_step(target.url + "/hang")), pool))
    for _ in range(200):  # until the page's request is in, at most 10 s
        if target.hanging > hanging:
            break
        await asyncio.sleep(0.05)
    os.kill(browser_process(), signal.SIGKILL)
    result = await task
    assert result.reason == "local_resources"  # the prober's failure, not the target's
    assert "Chromium exited while" in result.message
    again = await run(plan_of(browser_step(target.url + "/plain")), pool)
    assert again.status is Status.UP, again
    assert pool.launches == launches + 1


async def test_chromium_is_sandboxed_where_it_can_be_and_says_why_not_where_it_cannot(
    target: BrowserTarget,
) -> None:
    """Playwright turns Chromium's own sandbox off unless asked; the pool asks, unless it
    runs as root (as these tests do), where Chromium refuses it: then it does not ask, and
    says so. A pool that asks and is refused starts Chromium without the sandbox, in the same
    launch, with Chromium's own words for why. (Sandboxed: tests/deploy/test_image.py, as
    the image's user where user namespaces are allowed.)"""
    assert os.geteuid() == 0, "these tests run as root, as CI does"
    executable = find_chromium(None)
    page = plan_of(browser_step(target.url + "/plain"))
    told: list[tuple[bool, str]] = []
    as_root = BrowserPool(executable, on_launch=lambda *launch: told.append(launch))
    try:
        assert (await run(page, as_root)).status is Status.UP
    finally:
        await as_root.close()
    assert told == [(False, AS_ROOT)]
    told.clear()
    asking = BrowserPool(executable, on_launch=lambda *launch: told.append(launch))
    asking.unsandboxed_because = ""  # as a non-root user's pool starts: it asks
    try:
        assert (await run(page, asking)).status is Status.UP
        assert asking.sandboxed is False
        assert told == [(False, "Running as root without --no-sandbox is not supported.")]
    finally:
        await asking.close()


async def test_a_renderer_killed_mid_run_is_page_error(
    target: BrowserTarget, pool: BrowserPool
) -> None:
    hanging = target.hanging
    task = asyncio.create_task(
        run(plan_of(browser_step(target.url + "/hang-subresource"), timeout="8s"), pool)
    )
    for _ in range(200):
        if target.hanging > hanging:
            break
        await asyncio.sleep(0.05)
    renderers = renderer_processes()
    assert renderers
    for pid in renderers:
        os.kill(pid, signal.SIGKILL)
    result = await task
    assert result.reason == "page_error"
    assert "the page crashed while waiting for the load event" in result.message


# --- screenshots and traces -------------------------------------------------------------------


def trace_entries(result: CheckResult, store: ArtifactStore) -> dict[str, bytes]:
    """The trace the failed step left beside its screenshot, as {entry name: bytes}."""
    step = result.steps[-1]
    assert step.trace is not None, result
    assert step.artifact is not None
    assert step.trace == step.artifact.removesuffix(".png") + ".zip"
    path = store.path_of(step.trace)
    assert path is not None, step.trace
    with zipfile.ZipFile(path) as trace:
        assert trace.testzip() is None
        return {name: trace.read(name) for name in trace.namelist()}


async def test_only_the_newest_failures_of_a_check_are_kept_screenshot_and_trace(
    target: BrowserTarget, pool: BrowserPool, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path / "kept", keep=2)
    plan = plan_of(browser_step(target.url + "/status/500"))
    steps = [(await run(plan, pool, store)).steps[0] for _ in range(3)]
    assert all(step.artifact and step.trace for step in steps)
    kept = sorted(path.name for path in (tmp_path / "kept" / "journey").iterdir())
    newest = [name for step in steps[1:] for name in (step.artifact, step.trace)]
    assert [f"journey/{name}" for name in kept] == sorted(newest)  # type: ignore[type-var]
    none = ArtifactStore(tmp_path / "none", keep=0)
    assert (await run(plan, pool, none)).steps[0].artifact is None
    assert not (tmp_path / "none").exists()


async def test_with_traces_off_a_failure_leaves_its_screenshot_alone(
    target: BrowserTarget, pool: BrowserPool, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path / "shots", keep=5, traces=False)  # keep_traces: false
    result = await run(plan_of(browser_step(target.url + "/status/500")), pool, store)
    step = result.steps[0]
    assert step.trace is None
    assert screenshot(result, store).startswith(PNG)
    assert [path.suffix for path in (tmp_path / "shots" / "journey").iterdir()] == [".png"]


async def test_a_failed_step_leaves_its_trace_with_the_checks_secrets_redacted(
    target: BrowserTarget, pool: BrowserPool, store: ArtifactStore
) -> None:
    secret = "tok-Trace-SECRET-93"
    plan = plan_of(
        browser_step(
            target.url + "/sidebar",
            headers={"Authorization": "Bearer {{ token }}"},
            actions=[
                {"fill": {"selector": "#prompt", "text": "{{ token }}"}},
                {"click": "#send"},
                {"wait_for": "#answer.done"},
            ],
            expect={"elements": [{"selector": "#history li", "max_count": 0}]},
        ),
        secrets={"token": secret},
    )
    result = await run(plan, pool, store)
    assert (result.status, result.reason) == (Status.DOWN, "assertion_failed"), result
    assert "trace" not in result.message  # saved: no word about it
    entries = trace_entries(result, store)
    assert {"trace.trace", "trace.network"} <= set(entries)
    events = [json.loads(line) for line in entries["trace.trace"].splitlines() if line]
    kinds = {event["type"] for event in events}
    assert {"context-options", "before", "after", "frame-snapshot"} <= kinds, kinds
    calls = {event.get("method") for event in events if event["type"] == "before"}
    assert {"goto", "fill", "click"} <= calls, calls
    # What the page sent and showed is in it, the secret nowhere: not in the Authorization
    # header, nor the text typed, nor the answer the page rendered from it.
    network = entries["trace.network"].decode()
    assert "/api/conversations" in network
    assert "Bearer [REDACTED]" in network
    everything = b"".join(entries.values()).lower()
    assert secret.lower().encode() not in everything
    assert b"you said [redacted]" in everything


async def test_a_passing_step_leaves_no_trace_nor_files_in_the_traces_folder(
    target: BrowserTarget, pool: BrowserPool, store: ArtifactStore
) -> None:
    plan = plan_of(browser_step(target.url + "/sidebar", expect={"status": 200}))
    results = await asyncio.gather(run(plan, pool, store), run(plan, pool, store))
    assert all(result.status is Status.UP for result in results), results
    assert all(step.trace is None for result in results for step in result.steps)
    assert not store.root.exists()
    await pool.settled()
    folder = pool.traces_folder
    assert folder is not None
    assert folder.is_dir()
    left = [path for path in folder.rglob("*") if path.is_file()]
    assert left == []  # Playwright's driver would keep every run's until Chromium exits


async def test_without_a_browser_pool_the_run_says_so(target: BrowserTarget) -> None:
    result = await run_check(plan_of(browser_step(target.url + "/plain")))
    assert (result.reason, result.message) == (
        "internal", "page: no browser pool was handed to this run (run_check's resources)"
    )  # fmt: skip


async def test_a_failed_run_never_uses_the_loops_default_executor(
    target: BrowserTarget, pool: BrowserPool, store: ArtifactStore
) -> None:
    """Probes leave the default executor alone (docs/reliability.md): the screenshot is
    written on the store's own thread."""
    loop = asyncio.get_running_loop()
    refusing = RefusingExecutor()
    refusing.refuse()
    loop.set_default_executor(refusing)
    try:
        plan = plan_of(browser_step(target.url + "/status/500"))
        result = await run(plan, pool, store)
    finally:
        loop.set_default_executor(ThreadPoolExecutor(2))
        refusing.shutdown(wait=False)
    assert refusing.refused == []
    assert screenshot(result, store).startswith(PNG)
