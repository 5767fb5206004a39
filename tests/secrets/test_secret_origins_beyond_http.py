"""A secret goes only to its origin on `websocket` and `tcp` steps too.

The rule of tests/secrets/test_secret_origins.py, on the kinds that are not plain HTTP:

- a `websocket` upgrade is an HTTP request that aiohttp sends and redirects itself; a
  redirect or an extracted value that changes its origin gets none of the headers that
  carry a secret, and the frames that carry one (like a request body) never go there;
- a `tcp` step's send that carries a secret goes only to a host the config wrote.

Two real aiohttp servers on 127.0.0.1 (`A`, the configured origin, and `OTHER`, another
port) record every request's headers and every frame they receive; a line server on
127.0.0.1 records every byte a `tcp` step sends.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from yarl import URL

from tests.conftest import ServeApp
from tests.hostile.tls import valid_cert
from tests.probe.journeys import plan_of, run, step
from tests.secrets.test_secret_origins import HEADERS, SECRET, secret_forms, withheld
from uptime_probe.config.origin import origin_of, parse_origin
from uptime_probe.probe import CheckPlan, CheckResult, Status
from uptime_probe.probe.kinds.websocket import WebsocketFigures

SECRETS = {"token": SECRET}


@dataclass
class Seen:
    """One request as a target's handler saw it: its path, headers and (an upgrade) frames."""

    path: str
    headers: list[tuple[str, str]]
    frames: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def carries_secret(self) -> list[str]:
        text = repr((self.path, self.headers, self.frames)).encode()
        return [name for name, form in secret_forms().items() if form in text]


class WsTarget:
    """An aiohttp server answering WebSocket upgrades on `/ws` (a `welcome` message, then
    every frame recorded), with scripted redirects and JSON answers on other paths."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.redirects: dict[str, tuple[int, str]] = {}
        self.answers: dict[str, Any] = {}
        self.url = ""  # http://127.0.0.1:PORT, once served

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://").replace("https://", "wss://")

    @property
    def port(self) -> int:
        port = URL(self.url).port
        assert port is not None
        return port

    def to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            self.seen.append(Seen(request.path, list(request.headers.items())))
            response: web.StreamResponse = await handler(request)
            return response

        async def upgrade(request: web.Request) -> web.WebSocketResponse:
            seen = self.seen[-1]
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            await socket.send_str("welcome")
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    seen.frames.append(message.data)
            return socket

        async def scripted(request: web.Request) -> web.StreamResponse:
            if request.path in self.redirects:
                status, location = self.redirects[request.path]
                return web.Response(status=status, headers={"Location": location})
            return web.json_response(self.answers.get(request.path, {}))

        async def login(request: web.Request) -> web.Response:
            response = web.json_response({"ok": True})
            response.set_cookie("session", "s3")
            return response

        app = web.Application(middlewares=[record])
        app.router.add_get("/ws", upgrade)
        app.router.add_post("/login", login)
        app.router.add_get("/{tail:.*}", scripted)
        return app


async def serve(serve_app: ServeApp, **kwargs: Any) -> WsTarget:
    target = WsTarget()
    target.url = await serve_app(target.app(), **kwargs)
    return target


@pytest.fixture
async def a(serve_app: ServeApp) -> WsTarget:
    return await serve(serve_app)


@pytest.fixture
async def other(serve_app: ServeApp) -> WsTarget:
    return await serve(serve_app)


def ws_step(url: str, name: str = "push", **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": url}
    for key in ("send", "headers"):
        if key in fields:
            spec[key] = fields.pop(key)
    return {"name": name, "websocket": spec, **fields}


def assert_never_received(target: WsTarget) -> None:
    for seen in target.seen:
        found = seen.carries_secret()
        assert not found, f"{seen.path} received the secret ({', '.join(found)})"


def message_of(result: CheckResult, name: str) -> str:
    return next(s.message for s in result.steps if s.name == name)


# --- the origin of a WebSocket URL ---------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "two", "same"),
    [
        ("ws://h.example:8080", "http://h.example:8080", True),
        ("wss://h.example", "https://h.example:443", True),
        ("WS://H.example", "http://h.example:80", True),
        ("ws://h.example", "https://h.example", False),
        ("wss://h.example:8443", "http://h.example:8443", False),
        ("ws://h.example:8080", "ws://h.example:8081", False),
    ],
)
def test_a_websocket_url_has_the_origin_of_its_http_request(one: str, two: str, same: bool) -> None:
    """RFC 6455 opens a WebSocket with an HTTP request (the WHATWG standard fetches `ws:`
    as `http:`), and a redirect of the upgrade names an `http(s)` URL."""
    assert (origin_of(URL(one)) == origin_of(URL(two))) is same
    assert (parse_origin(one) == parse_origin(two)) is same


# --- redirects of the upgrade --------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_an_upgrade_redirected_to_another_origin_gets_no_secret_header(
    a: WsTarget, other: WsTarget, status: int
) -> None:
    a.redirects["/start"] = (status, f"{other.url}/ws")
    plan = plan_of(ws_step(f"{a.ws}/start", headers=HEADERS), secrets=SECRETS)

    # Before: OTHER got X-Api-Key (aiohttp drops only Authorization and Cookie).
    result = await run(plan)

    assert result.status is Status.UP, result
    assert a.to("/start")[0].carries_secret(), "the configured origin gets the secret"
    assert len(other.to("/ws")) == 1, "the redirect was followed and the socket opened there"
    assert_never_received(other)
    message = message_of(result, "push")
    assert withheld(message) == {"X-Api-Key", "Authorization"}, message
    assert f"127.0.0.1:{other.port}" in message
    assert SECRET not in repr(result)


async def test_back_at_the_configured_origin_the_secret_is_put_back(
    a: WsTarget, other: WsTarget
) -> None:
    a.redirects["/start"] = (302, f"{other.url}/bounce")
    other.redirects["/bounce"] = (302, f"{a.url}/ws")
    plan = plan_of(ws_step(f"{a.ws}/start", headers=HEADERS), secrets=SECRETS)

    result = await run(plan)

    assert result.status is Status.UP, result
    assert_never_received(other)
    upgraded = a.to("/ws")[0]
    assert upgraded.header("X-Api-Key") == SECRET
    assert upgraded.header("Authorization") == f"Bearer {SECRET}", "aiohttp dropped it"


async def test_an_http_location_on_the_upgrade_s_own_origin_keeps_the_secret(
    a: WsTarget,
) -> None:
    """`ws://A/start` -> `http://A/ws` is one origin: aiohttp alone dropped Authorization."""
    a.redirects["/start"] = (307, f"{a.url}/ws")
    plan = plan_of(ws_step(f"{a.ws}/start", headers=HEADERS), secrets=SECRETS)

    result = await run(plan)

    assert result.status is Status.UP, result
    upgraded = a.to("/ws")[0]
    assert upgraded.header("X-Api-Key") == SECRET
    assert upgraded.header("Authorization") == f"Bearer {SECRET}"
    assert "withheld" not in message_of(result, "push")


@pytest.mark.parametrize("status", [302, 307])
async def test_frames_carrying_a_secret_never_open_on_another_origin(
    a: WsTarget, other: WsTarget, status: int
) -> None:
    a.redirects["/start"] = (status, f"{other.url}/ws")
    plan = plan_of(ws_step(f"{a.ws}/start", send=["auth {{ token }}"]), secrets=SECRETS)

    result = await run(plan)

    assert other.seen == [], "the upgrade to OTHER is refused before it is sent"
    assert result.reason == "unexpected_status", result
    failed = result.steps[0]
    assert failed.http_status == status
    assert failed.message.startswith(f"HTTP {status} redirect not followed: "), failed.message
    assert "frames" in failed.message
    assert "send_secrets_to" in failed.message
    assert SECRET not in repr(result)


# --- extracted values that set the upgrade's origin ----------------------------------------


def journey(a: WsTarget, url: str, **fields: Any) -> CheckPlan:
    """A first step that extracts `next` from A, then a websocket step to `url`."""
    first = step(a.url + "/next", name="first", extract={"next": "next"})
    return plan_of(
        first,
        ws_step(url, **fields),
        secrets=SECRETS,
        variables={"base_ws": a.ws},
    )


@pytest.mark.parametrize("written", ["whole", "after-the-host"])
async def test_an_extracted_value_naming_another_origin_gets_no_secret_header(
    a: WsTarget, other: WsTarget, written: str
) -> None:
    if written == "whole":
        a.answers["/next"] = {"next": f"{other.ws}/ws"}
        url = "{{ next }}"
    else:
        a.answers["/next"] = {"next": f"@127.0.0.1:{other.port}/ws"}
        url = "{{ base_ws }}{{ next }}"

    # Before: OTHER got X-Api-Key (whole URL); the user-info form failed as `internal`.
    result = await run(journey(a, url, headers=HEADERS, send=["hello"]))

    assert result.status is Status.UP, result
    assert len(other.to("/ws")) == 1
    assert other.to("/ws")[0].frames == ["hello"], "frames without a secret are sent"
    assert_never_received(other)
    message = message_of(result, "push")
    assert withheld(message) == {"X-Api-Key", "Authorization"}, message


async def test_frames_carrying_a_secret_are_not_sent_to_an_extracted_origin(
    a: WsTarget, other: WsTarget
) -> None:
    a.answers["/next"] = {"next": f"{other.ws}/ws"}

    result = await run(journey(a, "{{ next }}", send=["auth {{ token }}"]))

    assert other.seen == []
    assert result.reason == "extraction_failed", result
    message = message_of(result, "push")
    assert message.startswith("not sent: the URL built from extracted values goes to"), message
    assert "frames carry a secret" in message
    assert SECRET not in repr(result)


@pytest.mark.parametrize("how", ["redirect", "extracted"])
@pytest.mark.parametrize("listed", ["http", "ws"])
async def test_send_secrets_to_lets_a_listed_origin_have_headers_and_frames(
    a: WsTarget, other: WsTarget, how: str, listed: str
) -> None:
    allowed = other.url if listed == "http" else other.ws
    fields = {"headers": HEADERS, "send": ["auth {{ token }}"], "send_secrets_to": [allowed]}
    if how == "redirect":
        a.redirects["/start"] = (307, f"{other.url}/ws")
        plan = plan_of(ws_step(f"{a.ws}/start", **fields), secrets=SECRETS)
    else:
        a.answers["/next"] = {"next": f"{other.ws}/ws"}
        plan = journey(a, "{{ next }}", **fields)

    result = await run(plan)

    assert result.status is Status.UP, result
    upgraded = other.to("/ws")[0]
    assert upgraded.header("X-Api-Key") == SECRET
    assert upgraded.header("Authorization") == f"Bearer {SECRET}"
    assert upgraded.frames == [f"auth {SECRET}"]
    assert "withheld" not in message_of(result, "push")


# --- the guarded upgrade still shares the run ----------------------------------------------


async def test_cookies_from_a_login_step_reach_the_guarded_upgrade(a: WsTarget) -> None:
    a.redirects["/start"] = (302, f"{a.url}/ws")
    login = step(a.url + "/login", name="login", method="POST")
    push = ws_step(f"{a.ws}/start", headers=HEADERS, send=["auth {{ token }}"])

    result = await run(plan_of(login, push, secrets=SECRETS))

    assert result.status is Status.UP, result
    for seen in (a.to("/start")[0], a.to("/ws")[0]):
        assert seen.header("Cookie") == "session=s3", seen.path
        assert seen.header("X-Api-Key") == SECRET, seen.path
    assert a.to("/ws")[0].frames == [f"auth {SECRET}"]


@pytest.mark.filterwarnings("error::ResourceWarning")
async def test_the_guarded_upgrade_leaves_the_run_s_connections_open_and_closes_its_own(
    a: WsTarget,
) -> None:
    """The upgrade's own session is closed (an unclosed one warns when collected), and
    closing it does not close the run's connector: a later step still connects."""
    push = ws_step(f"{a.ws}/ws", headers=HEADERS)
    after = step(a.url + "/after", name="after")

    result = await run(plan_of(push, after, push | {"name": "again"}, secrets=SECRETS))
    gc.collect()

    assert result.status is Status.UP, result
    assert [s.path for s in a.seen] == ["/ws", "/after", "/ws"]


async def test_wss_with_a_secret_header_records_its_certificate_and_handshake(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    case = valid_cert(tmp_path)
    target = await serve(serve_app, ssl_context=case.server_context)
    push = ws_step(f"{target.ws}/ws", headers=HEADERS, tls={"ca_file": str(case.ca_path)})

    result = await run(plan_of(push, secrets=SECRETS))

    assert result.status is Status.UP, result
    pushed = result.steps[0]
    assert pushed.tls_not_after == case.not_after.timestamp()
    figures = pushed.figures
    assert isinstance(figures, WebsocketFigures)
    assert figures.handshake_seconds is not None
    assert figures.handshake_seconds > 0
    assert target.to("/ws")[0].header("X-Api-Key") == SECRET


# --- tcp: a send carrying a secret goes only to a host the config wrote ---------------------


@dataclass
class LineServer:
    """A server on 127.0.0.1 that greets with `+OK ready`, then answers `+OK` to each line
    and keeps every byte it receives."""

    port: int = 0
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            writer.write(b"+OK ready\r\n")
            await writer.drain()
            while line := await reader.readline():
                self.received += line
                writer.write(b"+OK\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def carries_secret(self) -> list[str]:
        return [name for name, form in secret_forms().items() if form in self.received]


@pytest.fixture
async def line_server() -> AsyncIterator[LineServer]:
    found = LineServer()
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found
        server.close()


AUTH = [{"receive": "^\\+OK ready"}, {"send": "AUTH {{ token }}\r\n", "receive": "^\\+OK$"}]


def tcp_step(host: str, port: int, **tcp: Any) -> dict[str, Any]:
    return {"name": "cache", "tcp": {"host": host, "port": port, **tcp}}


def tcp_journey(a: WsTarget, host: str, port: int, **tcp: Any) -> CheckPlan:
    """A first step that extracts `host` from A, then a tcp step to `host`."""
    first = step(a.url + "/next", name="first", extract={"host": "host"})
    return plan_of(
        first, tcp_step(host, port, **tcp), secrets=SECRETS, variables={"db_host": "127.0.0.1"}
    )


@pytest.mark.parametrize(
    "tcp",
    [
        {"send": "AUTH {{ token }}\r\n"},
        {"exchanges": AUTH},
    ],
    ids=["send", "exchanges"],
)
async def test_a_tcp_send_with_a_secret_to_an_extracted_host_is_not_sent(
    a: WsTarget, line_server: LineServer, tcp: dict[str, Any]
) -> None:
    a.answers["/next"] = {"host": "127.0.0.1"}

    # Before: the secret went to whatever host the target named.
    result = await run(tcp_journey(a, "{{ host }}", line_server.port, **tcp))

    assert line_server.connections == 0, "nothing is sent, not even a connection opened"
    assert result.reason == "extraction_failed", result
    message = message_of(result, "cache")
    assert message.startswith(
        f"not sent: the host built from extracted values is 127.0.0.1:{line_server.port}"
    ), message
    assert "send carries a secret" in message
    assert SECRET not in repr(result)


@pytest.mark.parametrize("host", ["127.0.0.1", "{{ db_host }}"], ids=["literal", "variable"])
async def test_a_tcp_send_with_a_secret_to_a_host_the_config_wrote_is_sent(
    a: WsTarget, line_server: LineServer, host: str
) -> None:
    a.answers["/next"] = {"host": "127.0.0.1"}

    result = await run(tcp_journey(a, host, line_server.port, exchanges=AUTH))

    assert result.status is Status.UP, result
    assert bytes(line_server.received) == f"AUTH {SECRET}\r\n".encode()


async def test_a_tcp_send_without_a_secret_may_go_to_an_extracted_host(
    a: WsTarget, line_server: LineServer
) -> None:
    a.answers["/next"] = {"host": "127.0.0.1"}
    exchanges = [{"receive": "^\\+OK ready"}, {"send": "PING\r\n", "receive": "^\\+OK$"}]

    result = await run(tcp_journey(a, "{{ host }}", line_server.port, exchanges=exchanges))

    assert result.status is Status.UP, result
    assert bytes(line_server.received) == b"PING\r\n"
    assert not line_server.carries_secret()
