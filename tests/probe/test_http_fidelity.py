"""HTTP answers real servers give and other clients read: every Content-Encoding, cut or
corrupt compressed bodies, long header lines (hardening issue, items 14, 16, 18)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import brotli
import pytest
import yaml
from aiohttp import web

from uptime_probe.config import parse_config
from uptime_probe.probe import CheckResult, Status, compile_checks, run_check

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd

DOCUMENT = b'{"status": "ok", "items": [1, 2, 3], "padding": "' + b"x" * 3000 + b'"}'


def _gzip_members(data: bytes) -> bytes:
    half = len(data) // 2
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


# encoding header -> body on the wire; each decodes to DOCUMENT.
GOOD = {
    "gzip": ("gzip", gzip.compress(DOCUMENT)),
    "x-gzip": ("x-gzip", gzip.compress(DOCUMENT)),
    "gzip-members": ("gzip", _gzip_members(DOCUMENT)),
    "deflate-zlib": ("deflate", zlib.compress(DOCUMENT)),
    "deflate-raw": ("deflate", _raw_deflate(DOCUMENT)),
    "br": ("br", brotli.compress(DOCUMENT)),
    "zstd": ("zstd", zstd.compress(DOCUMENT)),
    "zstd-frames": ("zstd", zstd.compress(DOCUMENT[:100]) + zstd.compress(DOCUMENT[100:])),
    "gzip-then-br": ("gzip, br", brotli.compress(gzip.compress(DOCUMENT))),
    "identity": ("identity", DOCUMENT),
    "trailing-garbage": ("gzip", gzip.compress(DOCUMENT) + b"\0\0garbage"),
}


def _cut(body: bytes) -> bytes:
    return body[: len(body) // 2]


def _corrupt(body: bytes) -> bytes:
    middle = len(body) // 2
    return body[:middle] + bytes(b ^ 0xFF for b in body[middle : middle + 16]) + body[middle + 16 :]


# encoding header -> body on the wire; each must fail as invalid_encoding.
BROKEN = {
    "gzip-cut": ("gzip", _cut(gzip.compress(DOCUMENT))),
    "gzip-corrupt": ("gzip", _corrupt(gzip.compress(DOCUMENT))),
    "gzip-not-gzip": ("gzip", DOCUMENT),
    "deflate-cut": ("deflate", _cut(zlib.compress(DOCUMENT))),
    "br-cut": ("br", _cut(brotli.compress(DOCUMENT))),
    "br-corrupt": ("br", _corrupt(brotli.compress(DOCUMENT))),
    "zstd-cut": ("zstd", _cut(zstd.compress(DOCUMENT))),
    # zstd frames carry no checksum by default: a wrong frame header is what it detects.
    "zstd-corrupt": ("zstd", b"\xff\xff\xff\xff" + zstd.compress(DOCUMENT)[4:]),
    "unoffered": ("compress", DOCUMENT),
}


def build_app(seen: list[dict[str, str]]) -> web.Application:
    async def encoded(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        name = request.match_info["name"]
        encoding, body = {**GOOD, **BROKEN}[name]
        # Content-Length is the length of what is sent, cut or not: only the coding can tell.
        return web.Response(
            body=body,
            headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
        )

    async def long_header(request: web.Request) -> web.Response:
        size = int(request.match_info["size"])
        return web.Response(
            text='{"status": "ok"}',
            content_type="application/json",
            headers={"Content-Security-Policy": "default-src " + "a" * size},
        )

    async def empty_gzip(_request: web.Request) -> web.Response:
        return web.Response(status=204, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/encoded/{name}", encoded)
    app.router.add_get("/header/{size}", long_header)
    app.router.add_get("/empty-gzip", empty_gzip)
    return app


ServeApp = Callable[..., Awaitable[str]]


@pytest.fixture
async def base(serve_app: ServeApp) -> tuple[str, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []
    return await serve_app(build_app(seen)), seen


async def run_one(url: str, **step: Any) -> CheckResult:
    document = {
        "checks": [
            {
                "name": "fidelity",
                "interval": "60s",
                "timeout": "5s",
                "steps": [{"name": "fetch", "request": {"url": url}, **step}],
            }
        ]
    }
    config = parse_config(yaml.safe_dump(document), base_dir=Path("/"))
    return await run_check(compile_checks(config)["fidelity"])


@pytest.mark.parametrize("name", sorted(GOOD))
async def test_every_offered_encoding_decodes(
    base: tuple[str, list[dict[str, str]]], name: str
) -> None:
    url, _ = base
    result = await run_one(
        f"{url}/encoded/{name}",
        expect={"json": [{"query": "length(items)", "equals": 3}], "body_contains": ["xxxx"]},
    )
    assert result.status is Status.UP, result.message
    assert result.steps[0].body_bytes == len(DOCUMENT)


@pytest.mark.parametrize("name", sorted(BROKEN))
async def test_a_cut_or_corrupt_encoding_is_invalid_encoding(
    base: tuple[str, list[dict[str, str]]], name: str
) -> None:
    url, _ = base
    result = await run_one(f"{url}/encoded/{name}")
    assert (result.status, result.reason) == (Status.DOWN, "invalid_encoding"), result.message
    encoding = BROKEN[name][0]
    assert encoding in result.message


async def test_we_say_what_we_decode(base: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = base
    await run_one(f"{url}/encoded/br")
    assert seen[-1]["Accept-Encoding"] == "gzip, deflate, br, zstd"


async def test_a_step_may_ask_for_no_compression(base: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = base
    result = await run_one(
        f"{url}/encoded/identity", request={"url": f"{url}/encoded/identity",
                                            "headers": {"Accept-Encoding": "identity"}},
    )  # fmt: skip
    assert result.status is Status.UP
    assert seen[-1]["Accept-Encoding"] == "identity"


async def test_an_empty_body_with_a_coding_is_empty(base: tuple[str, list[dict[str, str]]]) -> None:
    url, _ = base
    result = await run_one(f"{url}/empty-gzip", expect={"status": 204})
    assert result.status is Status.UP, result.message


@pytest.mark.parametrize("size", [9_000, 12_000, 60_000])
async def test_header_lines_longer_than_8k_are_read(
    base: tuple[str, list[dict[str, str]]], size: int
) -> None:
    url, _ = base
    result = await run_one(
        f"{url}/header/{size}", expect={"headers": {"Content-Security-Policy": "^default-src a+$"}}
    )
    assert result.status is Status.UP, result.message


async def test_the_header_limit_is_the_steps(base: tuple[str, list[dict[str, str]]]) -> None:
    url, _ = base
    result = await run_one(f"{url}/header/20000", max_header_size="16KiB")
    assert (result.status, result.reason) == (Status.DOWN, "unexpected_status")
    assert "invalid HTTP response" in result.message
