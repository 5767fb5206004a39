"""The websocket kind against a real aiohttp WebSocket server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from tests.conftest import ServeApp
from tests.hostile.tls import WRONG_HOST, valid_cert, wrong_host_cert
from uptime_probe.probe.kinds.websocket import _ON_MESSAGE, WebsocketFigures

from ..journeys import plan_of, run
from .conftest import ServeTcp

HUGE_FRAME = 100 * 1024 * 1024
SLOW_ANSWER = 0.2


def build_ws_app() -> web.Application:
    forever = asyncio.Event()

    async def echo(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            if message.type is WSMsgType.TEXT:
                await socket.send_str(message.data)
        return socket

    async def chat(request: web.Request) -> web.WebSocketResponse:
        """Typing notices first, then the answer: what a chat's push channel sends."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.receive()  # the question
        await socket.send_json({"type": "typing"})
        await socket.send_json({"type": "typing"})
        await socket.send_json({"type": "answer", "text": "hello there", "id": "m1"})
        await socket.receive()
        return socket

    async def close_early(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.close(code=aiohttp.WSCloseCode.TRY_AGAIN_LATER, message=b"overloaded")
        return socket

    async def silent(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for _message in socket:  # answers pings and the close, never speaks
            pass
        return socket

    async def invalid_json(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str('{"type": "answer", "text": ')
        await socket.receive()
        return socket

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "no"}, status=int(request.match_info["status"]))

    async def login(request: web.Request) -> web.Response:
        response = web.json_response({"ok": True})
        response.set_cookie("session", "s3")
        return response

    async def needs_session(request: web.Request) -> web.StreamResponse:
        if request.cookies.get("session") != "s3" or request.headers.get("X-Probe") != "p1":
            return web.json_response({"error": "no session"}, status=401)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json({"type": "welcome"})
        await socket.receive()
        return socket

    async def hang(request: web.Request) -> web.Response:
        await forever.wait()
        raise AssertionError("unreachable")

    async def room_name(request: web.Request) -> web.Response:
        return web.json_response({"room": "../admin?all=1#"})

    async def room(request: web.Request) -> web.WebSocketResponse:
        """Says the request target it was reached by, as the server read it."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str(request.raw_path)
        await socket.receive()
        return socket

    async def slow_echo(request: web.Request) -> web.WebSocketResponse:
        """Thinks for SLOW_ANSWER seconds before it echoes."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            if message.type is WSMsgType.TEXT:
                await asyncio.sleep(SLOW_ANSWER)  # the target's own time, what is measured
                await socket.send_str(message.data)
        return socket

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/slow-echo", slow_echo)
    app.router.add_get("/chat", chat)
    app.router.add_get("/close", close_early)
    app.router.add_get("/silent", silent)
    app.router.add_get("/invalid-json", invalid_json)
    app.router.add_get("/refuse/{status}", refuse)
    app.router.add_post("/login", login)
    app.router.add_get("/session", needs_session)
    app.router.add_get("/hang", hang)
    app.router.add_get("/room-name", room_name)
    app.router.add_get("/rooms/{name}/live", room)
    return app


@pytest.fixture
async def ws_url(serve_app: ServeApp) -> str:
    url = await serve_app(build_ws_app())
    return url.replace("http://", "ws://")


def ws_step(url: str, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": url}
    for key in ("send", "headers"):
        if key in fields:
            spec[key] = fields.pop(key)
    return {"name": "push", "websocket": spec, **fields}


def figures(result: Any, index: int = 0) -> WebsocketFigures:
    found = result.steps[index].figures
    assert isinstance(found, WebsocketFigures)
    return found


async def test_an_echo_is_judged_with_the_text_assertions(ws_url: str) -> None:
    step = ws_step(
        f"{ws_url}/echo", send=["ping {{ who }}"], expect={"body_contains": "ping probe"}
    )
    result = await run(plan_of(step, variables={"who": "probe"}))

    assert result.status == "up", result
    step_result = result.steps[0]
    assert step_result.kind == "websocket"
    assert step_result.http_status == 101  # the upgrade's Switching Protocols
    seen = figures(result)
    assert (seen.sent, seen.messages) == (1, 1)
    assert seen.handshake_seconds is not None
    assert seen.first_message_seconds is not None
    assert step_result.message.startswith("message after ")


async def test_the_wait_for_the_message_is_processing_and_the_phases_add_up(
    ws_url: str,
) -> None:
    # The phases left out the wait for the message: a socket whose target thought for
    # seconds showed only its connection time on the phase dashboard.
    step = ws_step(f"{ws_url}/slow-echo", send="hi", expect={"body_contains": "hi"})
    result = await run(plan_of(step))

    assert result.status == "up", result
    (push,) = result.steps
    timings = push.timings.as_dict()
    assert timings["processing"] >= SLOW_ANSWER
    assert timings["connect"] > 0
    assert sum(timings.values()) == pytest.approx(push.duration_seconds, abs=1e-6)
    seen = figures(result)
    assert seen.handshake_seconds is not None
    assert seen.handshake_seconds < push.duration_seconds - SLOW_ANSWER + 1e-6


async def test_the_first_message_is_judged_and_a_wrong_one_fails(ws_url: str) -> None:
    step = ws_step(
        f"{ws_url}/chat", send="hi", expect={"json": [{"query": "type", "equals": "answer"}]}
    )
    result = await run(plan_of(step))

    assert result.reason == "assertion_failed"
    assert result.message == "push: type = \"typing\", expected == 'answer'"
    assert result.steps[0].response_sample == '{"type": "typing"}'


async def test_wait_for_match_judges_the_first_message_that_passes(ws_url: str) -> None:
    step = ws_step(
        f"{ws_url}/chat",
        send="hi",
        expect={"json": [{"query": "type", "equals": "answer"}], "wait_for_match": True},
        extract={"message_id": "id"},
    )
    result = await run(plan_of(step))

    assert result.status == "up", result
    assert figures(result).messages == 3


async def test_closed_before_the_message_is_ws_closed(ws_url: str) -> None:
    result = await run(plan_of(ws_step(f"{ws_url}/close", send="hi")))

    assert result.reason == "ws_closed"
    assert result.message == (
        "push: the server closed the WebSocket (code 1013 'overloaded') after 0 messages"
    )
    assert figures(result).close_code == 1013


async def test_nothing_within_message_within_is_no_message(ws_url: str) -> None:
    step = ws_step(f"{ws_url}/silent", send="hi", expect={"message_within": "300ms"})
    result = await run(plan_of(step))

    assert result.reason == "no_message"
    assert result.message.startswith("push: no message in 0.3s (1 frame sent)")


async def test_the_journey_deadline_on_a_silent_socket_is_no_message(ws_url: str) -> None:
    result = await run(plan_of(ws_step(f"{ws_url}/silent"), timeout="0.5s"))

    assert result.reason == "no_message"
    assert result.message.startswith("push: no message in 0.")
    assert result.message.endswith("s (0 frames sent) (journey deadline 0.5s)")


async def test_invalid_json_is_invalid_json(ws_url: str) -> None:
    step = ws_step(f"{ws_url}/invalid-json", expect={"json": [{"query": "type", "exists": True}]})
    result = await run(plan_of(step))
    assert result.reason == "invalid_json"


@pytest.mark.parametrize(("status", "reason"), [(401, "http_4xx"), (503, "http_5xx")])
async def test_a_refused_upgrade_keeps_the_http_reasons(
    ws_url: str, status: int, reason: str
) -> None:
    result = await run(plan_of(ws_step(f"{ws_url}/refuse/{status}")))

    assert result.reason == reason
    assert result.message == f"push: WebSocket upgrade refused: HTTP {status}, expected 101"
    assert result.http_status == status


async def test_cookies_and_headers_of_the_run_reach_the_upgrade(ws_url: str) -> None:
    login = {
        "name": "login",
        "request": {"method": "POST", "url": ws_url.replace("ws://", "http://") + "/login"},
    }
    push = ws_step(f"{ws_url}/session", headers={"X-Probe": "{{ probe_id }}"})
    result = await run(plan_of(login, push, variables={"probe_id": "p1"}))
    assert result.status == "up", result


async def test_an_extracted_value_is_one_segment_of_the_websocket_url(ws_url: str) -> None:
    """As for a request's URL (tests/probe/test_request_url.py): it cannot climb or query."""
    lookup = {
        "name": "lookup",
        "request": {"url": ws_url.replace("ws://", "http://") + "/room-name"},
        "extract": {"room": "room"},
    }
    push = ws_step(f"{ws_url}/rooms/{{{{ room }}}}/live?v=%7E1")
    result = await run(plan_of(lookup, push))

    assert result.status == "up", result
    assert result.steps[1].message.startswith("message after"), result
    sample = await run(plan_of(lookup, {**push, "expect": {"body_contains": "no such text"}}))
    assert sample.steps[1].response_sample == "/rooms/..%2Fadmin%3Fall%3D1%23/live?v=%7E1"


async def test_an_upgrade_that_never_comes_is_timeout(ws_url: str) -> None:
    result = await run(plan_of(ws_step(f"{ws_url}/hang"), timeout="0.5s"))
    assert result.reason == "timeout"
    assert (
        result.message == f"push: no WebSocket upgrade from {ws_url}/hang (journey deadline 0.5s)"
    )


async def test_wss_records_the_certificate(serve_app: ServeApp, tmp_path: Path) -> None:
    case = valid_cert(tmp_path)
    url = await serve_app(build_ws_app(), ssl_context=case.server_context)
    step = {
        **ws_step(url.replace("https://", "wss://") + "/echo", send="x"),
        "tls": {"ca_file": str(case.ca_path)},
    }
    result = await run(plan_of(step))

    assert result.status == "up", result
    assert result.steps[0].tls_not_after == case.not_after.timestamp()


async def test_wss_sends_and_verifies_tls_server_name(serve_app: ServeApp, tmp_path: Path) -> None:
    case = wrong_host_cert(tmp_path)  # for other.example only
    url = await serve_app(build_ws_app(), ssl_context=case.server_context)
    step = ws_step(url.replace("https://", "wss://") + "/echo", send="x")
    tls = {"ca_file": str(case.ca_path)}

    named = await run(plan_of({**step, "tls": {**tls, "server_name": WRONG_HOST}}))
    unnamed = await run(plan_of({**step, "tls": tls}))

    assert named.status == "up", named
    assert unnamed.reason == "tls"


# --- a 100 MB frame, bounded by max_body ----------------------------------------------------


@dataclass
class HugeFrameServer:
    url: str
    sent: int = 0


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture
async def huge_frame(serve_tcp: ServeTcp) -> HugeFrameServer:
    """Upgrades by hand, then announces one 100 MB binary frame and streams it with
    backpressure until the client hangs up (aiohttp's server would build it in memory)."""
    found = HugeFrameServer(url="")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        writer.write(b"\x82\x7f" + struct.pack("!Q", HUGE_FRAME))
        chunk = b"\0" * 65536
        with contextlib.suppress(ConnectionError):
            for _ in range(HUGE_FRAME // len(chunk)):
                writer.write(chunk)
                await writer.drain()
                found.sent += len(chunk)

    server = await serve_tcp(handle)
    found.url = f"ws://127.0.0.1:{server.port}/huge"
    return found


async def test_a_100_mb_frame_is_refused_from_its_header(huge_frame: HugeFrameServer) -> None:
    result = await run(plan_of(ws_step(huge_frame.url, max_body="1MiB")))

    assert result.reason == "body_too_large"
    assert result.message == (f"push: Message size {HUGE_FRAME} exceeds limit {1024 * 1024}")
    assert huge_frame.sent < 16 * 1024 * 1024  # it hung up long before the end


def test_every_kind_of_websocket_event_has_a_row() -> None:
    assert set(_ON_MESSAGE) == set(WSMsgType)
