"""The simulator's chat front end, rendered by real Chromium through the browser kind: the
sidebar shows the conversations the API lists, "No conversations yet" when it lists none,
and says so when the API fails; a message's streamed answer is rendered as it comes.

The answer endpoint (POST /backend-api/conversation) is served here by a stand-in speaking
the OpenAI-style stream the front end is written against, so the front end is tested
whether or not the simulator it runs on has the endpoint.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from uptime_probe.config.chromium import find_chromium
from uptime_probe.probe import CheckResult, Status, run_check
from uptime_probe.probe.browser_pool import BROWSER, BrowserPool
from uptime_probe.simulator import RunningSimulator, start_simulator
from uptime_probe.simulator.app import CHAT_PAGE, CHAT_SCRIPT, DEFAULT_TOKEN

from ..probe.journeys import plan_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAULTS = "/_sim/faults"
SIDEBAR = {"selector": "#history li", "reason": "empty_history"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pool() -> AsyncIterator[BrowserPool]:
    executable = find_chromium(None)
    assert executable, "no Chromium on PATH: scripts/test.sh installs Debian's chromium"
    browsers = BrowserPool(executable)
    yield browsers
    await browsers.close()


@pytest_asyncio.fixture(loop_scope="module")
async def sim() -> AsyncIterator[RunningSimulator]:
    async with await start_simulator() as running:
        yield running


async def set_fault(sim: RunningSimulator, faults: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as client, client.post(sim.url + FAULTS, json=faults) as r:
        assert r.status == 200, await r.text()


def sidebar_plan(url: str, *, token: str | None = DEFAULT_TOKEN, **fields: Any) -> Any:
    page: dict[str, Any] = {"url": url}
    if token is not None:
        page["headers"] = {"Authorization": f"Bearer {token}"}
    page.update(fields.pop("page", {}))
    step = {"name": "sidebar", "browser": page, **fields}
    return plan_of(step, timeout="8s")


async def run(plan: Any, pool: BrowserPool) -> CheckResult:
    async with pool.slot_for(plan):
        return await run_check(plan, resources={BROWSER: pool})


async def test_the_sidebar_lists_the_conversations(
    sim: RunningSimulator, pool: BrowserPool
) -> None:
    plan = sidebar_plan(
        sim.url + "/",
        expect={
            "elements": [
                {**SIDEBAR, "min_count": 3},
                {"selector": "#sidebar", "text_contains": "Conversations"},
                {"selector": "#history-status", "visible": False},
            ],
            "no_console_errors": True,
        },
    )
    result = await run(plan, pool)
    assert result.status is Status.UP, result


async def test_an_empty_history_renders_an_empty_sidebar_that_says_so(
    sim: RunningSimulator, pool: BrowserPool
) -> None:
    await set_fault(sim, {"conversations": "empty"})
    plan = sidebar_plan(sim.url + "/", expect={"elements": [SIDEBAR]})
    result = await run(plan, pool)
    assert (result.reason, result.message) == (
        "empty_history", "sidebar: count('#history li') = 0, expected >= 1"
    )  # fmt: skip
    assert "No conversations yet" in (result.steps[0].response_sample or "")


@pytest.mark.parametrize(
    ("faults", "token", "says"),
    [
        ({"conversations": {"mode": "error", "status": 503}}, DEFAULT_TOKEN,
         "Could not load your chats (HTTP 503)."),
        ({}, None, "Could not load your chats (sign in needed)."),
    ],
)  # fmt: skip
async def test_an_api_failure_renders_an_empty_sidebar_that_says_why(
    sim: RunningSimulator,
    pool: BrowserPool,
    faults: dict[str, Any],
    token: str | None,
    says: str,
) -> None:
    if faults:
        await set_fault(sim, faults)
    plan = sidebar_plan(
        sim.url + "/",
        token=token,
        expect={"elements": [SIDEBAR, {"selector": "#history-status", "text_contains": says}]},
    )
    result = await run(plan, pool)
    assert result.reason == "empty_history"
    assert says in (result.steps[0].response_sample or "")


async def stream_stand_in(answer: list[str]) -> AsyncIterator[str]:
    """The simulator's page and script, and an answer endpoint streaming `answer`."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=CHAT_PAGE, content_type="text/html")

    async def script(_request: web.Request) -> web.Response:
        return web.Response(text=CHAT_SCRIPT, content_type="application/javascript")

    async def conversations(_request: web.Request) -> web.Response:
        return web.json_response({"items": [{"id": "c1", "title": "First chat"}]})

    async def conversation(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        assert body["messages"][-1] == {"role": "user", "content": "hello"}
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in answer:
            chunk = {"choices": [{"delta": {"content": piece}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/static/chat.js", script)
    app.router.add_get("/backend-api/conversations", conversations)
    app.router.add_post("/backend-api/conversation", conversation)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


SEND = [{"fill": {"selector": "#prompt", "text": "hello"}}, {"click": "#send"}]


async def test_a_message_is_answered_as_the_stream_comes(pool: BrowserPool) -> None:
    async for url in stream_stand_in(["Hel", "lo ", "there"]):
        plan = sidebar_plan(
            url + "/",
            page={"actions": [*SEND, {"wait_for": "#messages li.assistant.done"}]},
            expect={
                "elements": [
                    {"selector": "#messages li.user", "text_contains": "hello"},
                    {"selector": "#messages li.assistant", "text_contains": "Hello there"},
                ]
            },
        )
        result = await run(plan, pool)
        assert result.status is Status.UP, result


async def test_the_send_on_the_simulator_renders_the_answer_or_says_why_not(
    sim: RunningSimulator, pool: BrowserPool
) -> None:
    """On a simulator without the answer endpoint the page says the message could not be
    sent; with it, the answer is rendered to its end. Either way the sidebar stands."""
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            sim.url + "/backend-api/conversation",
            json={"messages": [{"role": "user", "content": "hello"}], "stream": True},
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        ) as response,
    ):
        status = response.status
    if status in (404, 405):
        wanted = {"selector": "#messages li.error", "text_contains": f"(HTTP {status})"}
    else:
        wanted = {"selector": "#messages li.assistant.done"}
    plan = sidebar_plan(
        sim.url + "/",
        page={"actions": [*SEND, {"wait_for": "#messages li.error, #messages li.done"}]},
        expect={"elements": [wanted, SIDEBAR]},
    )
    result = await run(plan, pool)
    assert result.status is Status.UP, result
