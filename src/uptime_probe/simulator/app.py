"""The simulated chat product: page, history list, tasks and the streamed answer to a
message, each behind a switchable fault.

Every product request first passes the *front door* of its endpoint, where the fault in force
is applied before authentication or validation: `slow` waits then lets the request through;
`hang`, `error`, `rate_limited`, `truncated`, `reset` and `html_page` answer (or don't)
without looking at the request. `empty`, `stuck` and the other stream faults change the
normal answer, so auth and validation still apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from aiohttp import web

from uptime_probe.simulator import answers
from uptime_probe.simulator.control import add_control_routes
from uptime_probe.simulator.conversations import Conversation, seeded_conversations
from uptime_probe.simulator.faults import Endpoint, FaultMode, FaultSpec
from uptime_probe.simulator.player import Clock, ScenarioPlayer, loop_clock
from uptime_probe.simulator.scenario import Scenario, load_scenario
from uptime_probe.simulator.state import SIM_STATE, SimulatorState
from uptime_probe.simulator.tasks import DEFAULT_MAX_TASKS, TaskStatus, TaskTable

DEFAULT_TOKEN = "demo-token"  # noqa: S105 - a demo credential, documented as such
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_PROMPT_CHARS = 20_000
_TICK_MAX = 1.0  # the phase-change logger re-reads at least this often (seconds)
_DRAIN_POLLS = 100  # reset: at most this many 5 ms waits for the partial body to leave
TOKEN_INTERVAL = 0.05  # seconds between two tokens of a streamed answer
STALL_AFTER = 3  # tokens a `stall` sends before it goes silent
ERROR_AFTER = 2  # tokens an `error_event` sends before the error

# The chat front end: plain HTML and JavaScript, no build step (simulator/static/). Its
# script fetches the history and renders the sidebar, and sends a message whose answer it
# renders as the stream comes (docs/simulator.md).
_STATIC = resources.files("uptime_probe.simulator").joinpath("static")
CHAT_PAGE = _STATIC.joinpath("chat.html").read_text("utf-8")
CHAT_SCRIPT = _STATIC.joinpath("chat.js").read_text("utf-8")
# `truncated` on the page stops before the <title>, so a title check fails as it would on a
# real cut-off page.
_CHAT_PAGE_CUT = CHAT_PAGE[: CHAT_PAGE.index("<title>") + 3]
# `html_page`: what a proxy or CDN serves, with a 200, where the answer should stream.
ERROR_PAGE_200 = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Just a moment...</title></head>
<body><h1>Something went wrong</h1><p>Please try again in a few minutes.</p></body>
</html>
"""


def build_app(
    *,
    token: str = DEFAULT_TOKEN,
    task_complete_after: float = 2.0,
    scenario: Scenario | None = None,
    speed: float = 1.0,
    loop: bool = False,
    clock: Clock = loop_clock,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> web.Application:
    """The simulator as an aiohttp application.

    `scenario` defaults to the bundled `healthy` one. `speed` divides the scenario's phase
    durations and `task_complete_after`; fault latencies are not scaled. `clock` (seconds,
    monotonic) drives phases and tasks; tests pass a fake one.
    """
    if not token:
        raise ValueError("token must not be empty")
    if not (math.isfinite(task_complete_after) and task_complete_after >= 0):
        raise ValueError(f"task_complete_after must be >= 0, got {task_complete_after!r}")
    player = ScenarioPlayer(
        scenario if scenario is not None else load_scenario("healthy"),
        speed=speed,
        loop=loop,
        clock=clock,
    )
    app = web.Application()
    app[SIM_STATE] = SimulatorState(
        token=token,
        task_complete_after=task_complete_after / speed,
        player=player,
        tasks=TaskTable(max_tasks),
        conversations=seeded_conversations(),
        clock=clock,
    )
    app.router.add_get("/", _chat)
    app.router.add_get("/static/chat.js", _chat_script)
    app.router.add_get("/backend-api/conversations", _conversations)
    app.router.add_post("/backend-api/tasks", _task_create)
    app.router.add_get("/backend-api/tasks/{task_id}", _task_status)
    app.router.add_post("/backend-api/conversation", _answer)
    add_control_routes(app)
    app.cleanup_ctx.append(_play_scenario)
    app.on_shutdown.append(_release_hanging)
    return app


async def _play_scenario(app: web.Application) -> AsyncIterator[None]:
    """Start the timeline with the server, and re-read it at each due phase change so that
    the change is logged even when no request comes."""
    player = app[SIM_STATE].player
    player.start()

    async def tick() -> None:
        while True:
            remaining = player.seconds_to_next_change()
            delay = _TICK_MAX if remaining is None else min(remaining + 0.001, _TICK_MAX)
            await asyncio.sleep(delay)

    task = asyncio.create_task(tick(), name="simulator-phase-ticker")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _release_hanging(app: web.Application) -> None:
    """Cancel requests held by `hang` (or a stream's silence), so that the server stops
    without waiting on them."""
    for task in list(app[SIM_STATE].hanging):
        task.cancel()


# --- front door -----------------------------------------------------------------------------


def _error_body(code: str, message: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


def _sample_success(state: SimulatorState, endpoint: Endpoint) -> tuple[int, str, bytes]:
    """What a healthy answer would look like: status, content type, body. `truncated` and
    `reset` send part of it."""
    if endpoint is Endpoint.CHAT:
        return 200, "text/html", CHAT_PAGE.encode()
    if endpoint is Endpoint.CONVERSATIONS:
        page = _conversation_page(state.conversations, 0, DEFAULT_LIMIT)
        return 200, "application/json", json.dumps(page).encode()
    if endpoint is Endpoint.ANSWER:
        return 200, answers.EVENT_STREAM, answers.whole_answer()
    status = TaskStatus.QUEUED if endpoint is Endpoint.TASK_CREATE else TaskStatus.RUNNING
    body = json.dumps({"id": f"task_{'0' * 16}", "status": status.value}).encode()
    return (202 if endpoint is Endpoint.TASK_CREATE else 200), "application/json", body


async def _front_door(
    request: web.Request, endpoint: Endpoint
) -> tuple[web.StreamResponse | None, FaultSpec]:
    """Apply the endpoint's fault. Returns a response to send instead of the normal one, or
    None to go on; and the spec read (once, so one request sees one fault)."""
    state = request.app[SIM_STATE]
    spec = state.player.faults()[endpoint]
    mode = spec.mode
    if mode is FaultMode.SLOW:
        await asyncio.sleep(spec.latency or 0.0)
    elif mode is FaultMode.HANG:
        await _hang(state)
    elif mode is FaultMode.ERROR:
        status = spec.status or 500
        if endpoint is Endpoint.CHAT:
            page = f"<!doctype html><title>Error {status}</title><p>Something went wrong.</p>"
            return web.Response(status=status, text=page, content_type="text/html"), spec
        body = _error_body("simulated_error", f"simulated fault: status {status}")
        return web.json_response(body, status=status), spec
    elif mode is FaultMode.RATE_LIMITED:
        retry_after = spec.retry_after if spec.retry_after is not None else 5
        body = _error_body("rate_limited", "Too many requests, slow down.")
        headers = {"Retry-After": str(retry_after)}
        return web.json_response(body, status=429, headers=headers), spec
    elif mode is FaultMode.TRUNCATED:
        status, content_type, full = _sample_success(state, endpoint)
        cut = _CHAT_PAGE_CUT.encode() if endpoint is Endpoint.CHAT else full[: len(full) // 2]
        return web.Response(status=status, body=cut, content_type=content_type), spec
    elif mode is FaultMode.RESET:
        return await _reset(request, *_sample_success(state, endpoint)), spec
    elif mode is FaultMode.HTML_PAGE:
        return web.Response(text=ERROR_PAGE_200, content_type="text/html"), spec
    return None, spec


async def _hang(state: SimulatorState) -> None:
    """Never answer. Cancelled when the client goes away (the runner is built with
    `handler_cancellation=True`) or the app shuts down."""
    await _hold(state, None)


async def _hold(state: SimulatorState, seconds: float | None) -> None:
    """Say nothing for `seconds` (None: for ever), released like `hang` when the client
    goes away or the app shuts down."""
    task = asyncio.current_task()
    assert task is not None
    state.hanging.add(task)
    try:
        if seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(seconds)  # the fault's silence, not synchronisation
    finally:
        state.hanging.discard(task)


async def _reset(
    request: web.Request, status: int, content_type: str, full: bytes
) -> web.StreamResponse:
    """Send the headers and half the body, then drop the connection."""
    response = web.StreamResponse(status=status)
    response.content_type = content_type
    response.content_length = len(full)
    await response.prepare(request)
    await response.write(full[: len(full) // 2])
    transport = request.transport
    if transport is not None:
        # abort() discards what is still buffered: let the partial body leave first, so the
        # client sees a cut body rather than no answer at all.
        for _ in range(_DRAIN_POLLS):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.005)
        transport.abort()
    # Nothing more can be sent; ending the handler by cancellation tells aiohttp not to try.
    raise asyncio.CancelledError


# --- product endpoints ----------------------------------------------------------------------


def _bad_request(message: str) -> web.Response:
    return web.json_response(_error_body("invalid_request", message), status=400)


def _authorised(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return secrets.compare_digest(given.strip().encode(), token.encode())


def _unauthorised() -> web.Response:
    body = _error_body("unauthorized", "Missing or invalid bearer token.")
    return web.json_response(
        body, status=401, headers={"WWW-Authenticate": 'Bearer realm="simchat"'}
    )


def _query_int(request: web.Request, name: str, default: int, minimum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or int(raw) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {raw!r}")
    return int(raw)


def _conversation_page(
    conversations: tuple[Conversation, ...], offset: int, limit: int
) -> dict[str, object]:
    return {
        "items": [c.to_json() for c in conversations[offset : offset + limit]],
        "total": len(conversations),
        "offset": offset,
        "limit": limit,
    }


async def _chat(request: web.Request) -> web.StreamResponse:
    faulted, spec = await _front_door(request, Endpoint.CHAT)
    if faulted is not None:
        return faulted
    if spec.mode is FaultMode.EMPTY:
        return web.Response(status=200, body=b"", content_type="text/html")
    return web.Response(text=CHAT_PAGE, content_type="text/html")


async def _chat_script(_request: web.Request) -> web.StreamResponse:
    # Served as it is, whatever the scenario: faults are the backend's, not the bundle's.
    return web.Response(text=CHAT_SCRIPT, content_type="application/javascript")


async def _conversations(request: web.Request) -> web.StreamResponse:
    faulted, spec = await _front_door(request, Endpoint.CONVERSATIONS)
    if faulted is not None:
        return faulted
    state = request.app[SIM_STATE]
    if not _authorised(request, state.token):
        return _unauthorised()
    try:
        offset = _query_int(request, "offset", 0, 0)
        limit = min(_query_int(request, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    except ValueError as exc:
        return _bad_request(str(exc))
    if spec.mode is FaultMode.EMPTY:  # the missing-history bug: a "successful" empty list
        return web.json_response({"items": [], "total": 0, "offset": offset, "limit": limit})
    return web.json_response(_conversation_page(state.conversations, offset, limit))


async def _task_create(request: web.Request) -> web.StreamResponse:
    faulted, spec = await _front_door(request, Endpoint.TASK_CREATE)
    if faulted is not None:
        return faulted
    state = request.app[SIM_STATE]
    try:
        body: Any = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return _bad_request('body must be a JSON object such as {"prompt": "..."}')
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        return _bad_request("'prompt' must be a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        return _bad_request(f"'prompt' must be at most {MAX_PROMPT_CHARS} characters")
    if spec.mode is FaultMode.EMPTY:  # accepted, but nothing comes back and nothing is made
        return web.json_response({}, status=202)
    task = state.tasks.create(state.clock(), stuck=spec.mode is FaultMode.STUCK)
    return web.json_response(
        {"id": task.id, "status": TaskStatus.QUEUED.value},
        status=202,
        headers={"Location": f"/backend-api/tasks/{task.id}"},
    )


async def _task_status(request: web.Request) -> web.StreamResponse:
    faulted, spec = await _front_door(request, Endpoint.TASK_STATUS)
    if faulted is not None:
        return faulted
    state = request.app[SIM_STATE]
    task = state.tasks.get(request.match_info["task_id"])
    if task is None:
        return web.json_response(_error_body("not_found", "No such task."), status=404)
    if spec.mode is FaultMode.EMPTY:
        return web.json_response({})
    if spec.mode is FaultMode.STUCK:
        return web.json_response({"id": task.id, "status": TaskStatus.RUNNING.value})
    status = task.status_at(state.clock(), state.task_complete_after)
    body: dict[str, object] = {"id": task.id, "status": status.value}
    if status is TaskStatus.COMPLETED:
        body["result"] = {"text": "Simulated task finished."}
    return web.json_response(body)


async def _answer(request: web.Request) -> web.StreamResponse:
    """The answer to a message, streamed token by token (simulator/answers.py)."""
    faulted, spec = await _front_door(request, Endpoint.ANSWER)
    if faulted is not None:
        return faulted
    state = request.app[SIM_STATE]
    if not _authorised(request, state.token):
        return _unauthorised()
    try:
        body: Any = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        body = None
    problem = answers.message_problem(body, MAX_PROMPT_CHARS)
    if problem is not None:
        return _bad_request(problem)
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{answers.EVENT_STREAM}; charset=utf-8",
            "Cache-Control": "no-cache",
        }
    )
    await response.prepare(request)
    mode = spec.mode
    if mode is FaultMode.SLOW_FIRST_TOKEN:
        await _hold(state, spec.latency)
    await response.write(answers.role_event())
    tokens = () if mode is FaultMode.EMPTY else answers.TOKENS
    for index, token in enumerate(tokens):
        if mode is FaultMode.ERROR_EVENT and index == ERROR_AFTER:
            await response.write(answers.error_event())
            await response.write_eof()
            return response
        if mode is FaultMode.STALL and index == STALL_AFTER:
            await _hold(state, spec.latency)
        await asyncio.sleep(TOKEN_INTERVAL)  # the model's pace, not synchronisation
        await response.write(answers.token_event(token))
    await response.write(answers.stop_event())
    if mode is not FaultMode.NO_DONE:
        await response.write(answers.DONE)
    await response.write_eof()
    return response
