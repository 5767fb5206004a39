"""TLS as a virtual host and a stalled handshake see it (hardening issue, items 12, 19, 21)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.hostile.tls import WRONG_HOST, wrong_host_cert
from uptime_probe.config import ConfigError, parse_config
from uptime_probe.probe import CheckResult, Status, compile_checks, run_check

ServeApp = Callable[..., Awaitable[str]]


async def run_one(step: dict[str, Any], timeout: str = "5s") -> CheckResult:
    document = {
        "checks": [
            {
                "name": "tls",
                "interval": "60s",
                "timeout": timeout,
                "steps": [{"name": "get", **step}],
            }
        ]
    }
    config = parse_config(yaml.safe_dump(document), base_dir=Path("/"))
    return await run_check(compile_checks(config)["tls"])


@pytest.fixture
async def virtual_host(serve_app: ServeApp, tmp_path: Path) -> tuple[str, str]:
    """An https server on 127.0.0.1 whose certificate names only `other.example`."""
    case = wrong_host_cert(tmp_path)
    seen_hosts: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        seen_hosts.append(request.host)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/", ok)
    url = await serve_app(app, ssl_context=case.server_context)
    return url, str(case.ca_path)


async def test_the_host_header_names_the_tls_server(virtual_host: tuple[str, str]) -> None:
    url, ca = virtual_host
    result = await run_one(
        {"request": {"url": f"{url}/", "headers": {"Host": WRONG_HOST}}, "tls": {"ca_file": ca}}
    )
    assert result.status is Status.UP, result.message


async def test_a_host_header_with_a_port_names_the_host(virtual_host: tuple[str, str]) -> None:
    url, ca = virtual_host
    result = await run_one(
        {
            "request": {"url": f"{url}/", "headers": {"Host": f"{WRONG_HOST}:8443"}},
            "tls": {"ca_file": ca},
        }
    )
    assert result.status is Status.UP, result.message


async def test_tls_server_name_wins_over_the_url(virtual_host: tuple[str, str]) -> None:
    url, ca = virtual_host
    result = await run_one(
        {"request": {"url": f"{url}/"}, "tls": {"ca_file": ca, "server_name": WRONG_HOST}}
    )
    assert result.status is Status.UP, result.message


async def test_without_a_name_the_url_host_is_verified(virtual_host: tuple[str, str]) -> None:
    url, ca = virtual_host
    result = await run_one({"request": {"url": f"{url}/"}, "tls": {"ca_file": ca}})
    assert (result.status, result.reason) == (Status.DOWN, "tls")
    assert "127.0.0.1" in result.message


def test_a_server_name_must_be_a_host_name() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(
            yaml.safe_dump(
                {
                    "checks": [
                        {
                            "name": "c",
                            "steps": [
                                {
                                    "name": "s",
                                    "request": {"url": "https://127.0.0.1/"},
                                    "tls": {"server_name": "a..b"},
                                }
                            ],
                        }
                    ]
                }
            )
        )
    assert "checks[0].steps[0].tls.server_name" in str(raised.value)


@pytest.fixture
async def silent_tcp() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """Accepts TCP connections and never says a word: a TLS handshake stalls there."""
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port, connected
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_stalled_handshake_is_tls_not_connect_timeout(
    silent_tcp: tuple[int, asyncio.Event],
) -> None:
    port, connected = silent_tcp
    result = await run_one({"request": {"url": f"https://127.0.0.1:{port}/"}}, timeout="500ms")
    assert connected.is_set()
    assert (result.status, result.reason) == (Status.DOWN, "tls"), result.message
    assert "handshake stalled" in result.message


async def test_a_silent_plain_http_server_is_still_a_timeout(
    silent_tcp: tuple[int, asyncio.Event],
) -> None:
    port, _ = silent_tcp
    result = await run_one({"request": {"url": f"http://127.0.0.1:{port}/"}}, timeout="500ms")
    assert (result.status, result.reason) == (Status.DOWN, "timeout"), result.message


async def test_messages_name_no_python_objects(serve_app: ServeApp) -> None:
    async def plain(_request: web.Request) -> web.Response:
        return web.Response(text="plain")

    app = web.Application()
    app.router.add_get("/", plain)
    url = await serve_app(app)
    result = await run_one({"request": {"url": url.replace("http://", "https://") + "/"}})
    assert (result.status, result.reason) == (Status.DOWN, "tls")
    assert "object at 0x" not in result.message
    assert "SSLContext" not in result.message
    assert "127.0.0.1" in result.message
