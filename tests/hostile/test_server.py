"""The hostile server misbehaves exactly as documented, and aiohttp reports each way.

The raw-socket tests pin down the bytes on the wire.  ``AIOHTTP_OUTCOMES`` then
records which exception aiohttp raises for each mode: it is the reference the
failure classifier is written against, and it fails loudly if an aiohttp
upgrade changes how a misbehaviour surfaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from logging import WARNING
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import http_exceptions, http_parser

from .dns import StaticResolver
from .server import (
    DRIP_RESPONSE_SIZE,
    GZIP_BOMB_INFLATED_SIZE,
    HUGE_CONTENT_LENGTH,
    HUGE_HEADER_SIZE,
    MANY_HEADERS_COUNT,
    MODES,
    NON_UTF8_BODY,
    OK_BODY,
    SCRIPT_BODY,
    HostileServer,
    refused_port,
)
from .tls import (
    TlsCase,
    expired_cert,
    self_signed_cert,
    untrusted_ca_cert,
    valid_cert,
    wrong_host_cert,
)

QUIET = 0.3
"""Seconds without a byte that count as "the server sends nothing"."""
PROMPTLY = 2.0
"""Upper bound for things that should happen at once (a handler ending, a response)."""
RAW_LIMIT = 2 << 20
AUTHORIZATION = "Bearer s3cr3t"


def assert_left_clean(server: HostileServer, caplog: pytest.LogCaptureFixture) -> None:
    assert server.unexpected_errors == []
    assert server.open_connections == 0
    # e.g. asyncio's "socket.send() raised exception." from writing to a dead socket
    assert [record.getMessage() for record in caplog.records if record.levelno >= WARNING] == []


@pytest.fixture
async def server(caplog: pytest.LogCaptureFixture) -> AsyncIterator[HostileServer]:
    async with HostileServer() as hostile:
        yield hostile
    assert_left_clean(hostile, caplog)


@pytest.fixture(scope="session")
def shared_tls_case(tmp_path_factory: pytest.TempPathFactory) -> TlsCase:
    return valid_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=["plain", "tls"])
async def any_server(
    request: pytest.FixtureRequest, shared_tls_case: TlsCase, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[HostileServer]:
    """Like ``server``, once over plain TCP and once over TLS (``shared_tls_case``)."""
    ssl_context = shared_tls_case.server_context if request.param == "tls" else None
    async with HostileServer(ssl_context=ssl_context) as hostile:
        yield hostile
    assert_left_clean(hostile, caplog)


# --- raw client ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def raw_exchange(
    server: HostileServer,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Connect, send ``GET target``, hand over the streams; abort on the way out."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, limit=RAW_LIMIT, ssl=ssl_context
    )
    try:
        lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        yield reader, writer
    finally:
        writer.transport.abort()


def reset_connection(writer: asyncio.StreamWriter) -> None:
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    writer.transport.abort()


async def read_to_eof(reader: asyncio.StreamReader, limit: int = 4 << 20) -> bytes:
    """Everything until a clean EOF; fails on more than ``limit`` bytes or a slow server."""
    received = bytearray()
    async with asyncio.timeout(PROMPTLY):
        while len(received) <= limit:
            chunk = await reader.read(64 * 1024)
            if not chunk:
                return bytes(received)
            received += chunk
    raise AssertionError(f"more than {limit} bytes")


async def read_until_reset(reader: asyncio.StreamReader) -> bytes:
    """Everything until the connection is reset; fails on a clean EOF."""
    received = bytearray()
    async with asyncio.timeout(PROMPTLY):
        for _ in range(1000):
            try:
                chunk = await reader.read(64 * 1024)
            except ConnectionResetError:
                return bytes(received)
            if not chunk:
                raise AssertionError(f"clean EOF instead of a reset after {received!r}")
            received += chunk
    raise AssertionError("too many reads")


async def received_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """What arrives within ``seconds`` (b"" is EOF), or None if nothing does."""
    try:
        async with asyncio.timeout(seconds):
            return await reader.read(64 * 1024)
    except TimeoutError:
        return None


@dataclass
class RawResponse:
    status_line: bytes
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) == 1, (name, values)
        return values[0]


def parse_response(raw: bytes) -> RawResponse:
    head, separator, body = raw.partition(b"\r\n\r\n")
    assert separator, f"no end of head in {raw[:200]!r}"
    status_line, *lines = head.split(b"\r\n")
    headers = []
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name, value.strip()))
    return RawResponse(status_line, headers, body)


async def fetch_raw(
    server: HostileServer, target: str, headers: Sequence[tuple[str, str]] = ()
) -> RawResponse:
    async with raw_exchange(server, target, headers) as (reader, _):
        return parse_response(await read_to_eof(reader))


# --- complete responses ---------------------------------------------------------


def _is_deep_json(body: bytes) -> bool:
    with pytest.raises(RecursionError):
        json.loads(body)
    return body == b"[" * 100_000 + b"]" * 100_000


def _is_not_utf8(body: bytes) -> bool:
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    return body == NON_UTF8_BODY


@pytest.mark.parametrize(
    ("target", "status", "content_type", "body_is"),
    [
        ("/ok", 200, "application/json", lambda body: json.loads(body) == {"ok": True}),
        ("/landing", 200, "text/plain", lambda body: body == b"ok"),
        ("/script", 200, "text/html", lambda body: body == SCRIPT_BODY),
        ("/empty-json", 200, "application/json", lambda body: body == b""),
        ("/deep-json", 200, "application/json", _is_deep_json),
        ("/non-utf8", 200, "application/json", _is_not_utf8),
        ("/slow?ms=1", 200, "application/json", lambda body: body == OK_BODY),
        ("/no-such-mode", 404, "text/plain", lambda body: body == b""),
        ("/slow?ms=soon", 400, "text/plain", lambda body: body == b""),
    ],
)
async def test_complete_response_has_declared_length_and_ends_cleanly(
    server: HostileServer,
    target: str,
    status: int,
    content_type: str,
    body_is: Callable[[bytes], bool],
) -> None:
    response = await fetch_raw(server, target)

    assert response.status_line.startswith(f"HTTP/1.1 {status} ".encode())
    assert response.header("Content-Type") == content_type
    assert int(response.header("Content-Length")) == len(response.body)
    assert response.header("Connection") == "close"
    assert body_is(response.body)


async def test_hang_sends_nothing(server: HostileServer) -> None:
    async with raw_exchange(server, "/hang") as (reader, _):
        assert await received_within(reader, QUIET) is None
    assert server.connections_accepted == 1


async def test_stall_body_sends_head_then_nothing(server: HostileServer) -> None:
    async with raw_exchange(server, "/stall-body") as (reader, _):
        head = parse_response(await reader.readuntil(b"\r\n\r\n"))
        assert head.header("Content-Length") == "100"
        assert await received_within(reader, QUIET) is None


async def test_drip_sends_one_byte_then_waits_about_a_second(server: HostileServer) -> None:
    async with raw_exchange(server, "/drip") as (reader, _):
        assert await received_within(reader, PROMPTLY) == b"H"
        assert await received_within(reader, QUIET) is None


async def test_drip_delivers_a_valid_response_byte_by_byte(server: HostileServer) -> None:
    async with raw_exchange(server, "/drip?interval_ms=2") as (reader, _):
        chunks = []
        async with asyncio.timeout(PROMPTLY):
            while chunk := await reader.read(64 * 1024):
                chunks.append(chunk)

    assert {len(chunk) for chunk in chunks} == {1}
    response = parse_response(b"".join(chunks))
    assert len(chunks) == DRIP_RESPONSE_SIZE
    assert response.status_line == b"HTTP/1.1 200 OK"
    assert int(response.header("Content-Length")) == len(response.body)


async def test_close_ends_with_eof_and_no_bytes(server: HostileServer) -> None:
    async with raw_exchange(server, "/close") as (reader, _):
        assert await read_to_eof(reader) == b""


async def test_reset_headers_sends_part_of_a_head_then_resets(server: HostileServer) -> None:
    async with raw_exchange(server, "/reset-headers") as (reader, _):
        received = await read_until_reset(reader)

    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\n\r\n" not in received


async def test_reset_body_sends_100_of_1000_bytes_then_resets(server: HostileServer) -> None:
    async with raw_exchange(server, "/reset-body") as (reader, _):
        response = parse_response(await read_until_reset(reader))

    assert response.header("Content-Length") == "1000"
    assert len(response.body) == 100


async def test_short_body_sends_10_of_1000_bytes_then_closes_cleanly(
    server: HostileServer,
) -> None:
    response = await fetch_raw(server, "/short-body")

    assert response.header("Content-Length") == "1000"
    assert len(response.body) == 10


async def test_bad_status_line(server: HostileServer) -> None:
    response = await fetch_raw(server, "/bad-status-line")

    assert response.status_line == b"HTTP/1.1 abc"


@pytest.mark.parametrize(
    ("target", "body_start"),
    [("/bad-chunked", b"zz\r\n"), ("/bad-chunked?split_ms=1", b"5\r\nhello\r\nzz\r\n")],
)
async def test_bad_chunked_has_a_chunk_size_that_is_not_hex(
    server: HostileServer, target: str, body_start: bytes
) -> None:
    response = await fetch_raw(server, target)

    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body.startswith(body_start)


async def test_huge_streams_with_backpressure_and_stops_when_the_client_leaves(
    server: HostileServer,
) -> None:
    async with raw_exchange(server, "/huge") as (reader, _):
        head = parse_response(await reader.readuntil(b"\r\n\r\n"))
        assert int(head.header("Content-Length")) == HUGE_CONTENT_LENGTH
        assert await reader.readexactly(1 << 20) == bytes(1 << 20)

    async with asyncio.timeout(PROMPTLY):
        await server.wait_idle()
    # What the kernel buffers on loopback (auto-tuned, a few MiB) is all it may
    # have written ahead of the reader; far below the 1 GiB it declared.
    assert server.bytes_sent < 64 << 20


async def test_huge_stops_when_an_aiohttp_client_leaves(
    any_server: HostileServer, shared_tls_case: TlsCase
) -> None:
    # Over TLS this once spun through the whole 1 GiB after the client left.
    connector = aiohttp.TCPConnector(ssl=shared_tls_case.client_context())
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{any_server.url}/huge") as response,
    ):
        await response.content.readexactly(1 << 20)

    async with asyncio.timeout(PROMPTLY):
        await any_server.wait_idle()
    assert any_server.bytes_sent < 64 << 20


async def test_gzip_bomb_is_small_on_the_wire_and_inflates_past_50_mib(
    server: HostileServer,
) -> None:
    response = await fetch_raw(server, "/gzip-bomb")

    assert response.header("Content-Encoding") == "gzip"
    assert int(response.header("Content-Length")) == len(response.body) < 1 << 20
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    inflated, pending = 0, response.body
    for _ in range(10_000):  # never more than 1 MiB inflated in memory at once
        inflated += len(inflater.decompress(pending, 1 << 20))
        pending = inflater.unconsumed_tail
        if not pending:
            break
    assert inflater.eof
    assert inflated == GZIP_BOMB_INFLATED_SIZE > 50 << 20


async def test_many_headers_sends_20000_headers(server: HostileServer) -> None:
    response = await fetch_raw(server, "/many-headers")

    hostile = [name for name, _ in response.headers if name.startswith("X-Hostile-")]
    assert len(hostile) == MANY_HEADERS_COUNT


async def test_huge_header_sends_a_1_mib_header_line(server: HostileServer) -> None:
    response = await fetch_raw(server, "/huge-header")

    assert len(response.header("X-Huge")) == HUGE_HEADER_SIZE


async def test_redirect_loop_points_at_itself(server: HostileServer) -> None:
    response = await fetch_raw(server, "/redirect-loop")

    assert response.status_line.startswith(b"HTTP/1.1 302 ")
    assert response.header("Location") == "/redirect-loop"


async def test_redirect_refused_points_at_a_port_that_refuses(server: HostileServer) -> None:
    response = await fetch_raw(server, "/redirect-refused")

    assert response.header("Location") == f"http://127.0.0.1:{server.refused_port}/"
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", server.refused_port)


async def test_echo_auth_returns_the_authorization_header(server: HostileServer) -> None:
    response = await fetch_raw(server, "/echo-auth", [("Authorization", AUTHORIZATION)])

    assert response.body == AUTHORIZATION.encode()


async def test_redirect_echo_auth_puts_the_credential_in_the_location(
    server: HostileServer,
) -> None:
    response = await fetch_raw(server, "/redirect-echo-auth", [("Authorization", AUTHORIZATION)])

    assert response.header("Location") == f"/landing?token={quote(AUTHORIZATION, safe='')}"


async def test_slow_answers_after_the_requested_delay(server: HostileServer) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await fetch_raw(server, "/slow?ms=200")

    assert loop.time() - started >= 0.2
    assert response.body == OK_BODY


async def test_refused_port_refuses() -> None:
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", await refused_port())


# --- robustness -------------------------------------------------------------------

# /hang never reads, so it cannot notice a client leaving; __aexit__ ends it.
_NOTICES_CLIENT_LEAVING = sorted(MODES - {"/hang"})
_FAST_TARGETS = {"/drip": "/drip?interval_ms=5", "/slow": "/slow?ms=5"}


@pytest.mark.parametrize("leave", [reset_connection, asyncio.StreamWriter.close])
@pytest.mark.parametrize("after_first_byte", [False, True])
@pytest.mark.parametrize("mode", _NOTICES_CLIENT_LEAVING)
async def test_client_leaving_at_any_point_ends_the_handler_quietly(
    any_server: HostileServer,
    shared_tls_case: TlsCase,
    mode: str,
    after_first_byte: bool,
    leave: Callable[[asyncio.StreamWriter], None],
) -> None:
    is_tls = any_server.url.startswith("https:")
    ssl_context = shared_tls_case.client_context() if is_tls else None
    target = _FAST_TARGETS.get(mode, mode)
    async with raw_exchange(any_server, target, ssl_context=ssl_context) as (reader, writer):
        if after_first_byte:
            with contextlib.suppress(ConnectionResetError):
                await received_within(reader, QUIET)
        leave(writer)

    async with asyncio.timeout(PROMPTLY):
        await any_server.wait_idle()
    # The fixture asserts nothing escaped and asyncio logged no warning.


async def test_exit_closes_connections_and_leaves_no_task_behind() -> None:
    async with contextlib.AsyncExitStack() as clients:
        async with HostileServer() as server:
            hang_reader, _ = await clients.enter_async_context(raw_exchange(server, "/hang"))
            readers = []
            for target in ["/stall-body", "/huge", "/drip"]:
                reader, _ = await clients.enter_async_context(raw_exchange(server, target))
                assert await received_within(reader, PROMPTLY)
                readers.append(reader)
            assert server.open_connections == 4

        assert server.open_connections == 0
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert server.unexpected_errors == []
        with contextlib.suppress(ConnectionResetError):  # the unread request makes it a RST
            assert await received_within(hang_reader, PROMPTLY) == b""


# --- TLS and name resolution ------------------------------------------------------


@pytest.mark.parametrize(
    ("make_case", "verify_code"),
    [
        (self_signed_cert, 18),  # self-signed certificate
        (untrusted_ca_cert, 20),  # unable to get local issuer certificate
        (expired_cert, 10),  # certificate has expired
        (wrong_host_cert, 64),  # IP address mismatch
    ],
)
async def test_bad_certificate_fails_verification_in_aiohttp(
    tmp_path: Path, make_case: Callable[[Path], TlsCase], verify_code: int
) -> None:
    case = make_case(tmp_path)
    async with (
        HostileServer(ssl_context=case.server_context) as server,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
            await session.get(f"{server.url}/ok", ssl=case.client_context())

    assert server.url.startswith("https://")
    certificate_error = caught.value.certificate_error
    assert isinstance(certificate_error, ssl.SSLCertVerificationError)
    assert certificate_error.verify_code == verify_code
    # The TCP connection counts though the handshake failed, and nothing leaked.
    assert server.connections_accepted == 1
    assert server.unexpected_errors == []


async def test_valid_certificate_verifies_for_ip_and_name(tmp_path: Path) -> None:
    case = valid_cert(tmp_path)
    async with (
        HostileServer(ssl_context=case.server_context) as server,
        aiohttp.ClientSession() as session,
    ):
        for host in ["127.0.0.1", "localhost"]:
            url = f"https://{host}:{server.port}/ok"
            async with session.get(url, ssl=case.client_context()) as response:
                assert await response.json() == {"ok": True}


@pytest.mark.parametrize(
    ("make_case", "expired"),
    [(valid_cert, False), (self_signed_cert, False), (expired_cert, True)],
)
def test_not_after_is_the_served_certificates_expiry(
    tmp_path: Path, make_case: Callable[[Path], TlsCase], expired: bool
) -> None:
    case = make_case(tmp_path)

    assert case.ca_path.is_file()
    assert (case.not_after < datetime.now(UTC)) is expired


async def test_https_client_against_plain_server_is_an_ssl_error(server: HostileServer) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorSSLError):
            await session.get(f"https://127.0.0.1:{server.port}/ok")


async def test_static_resolver_maps_known_names_and_fails_unknown_ones(
    server: HostileServer,
) -> None:
    resolver = StaticResolver({"API.test.": "127.0.0.1"})
    connector = aiohttp.TCPConnector(resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://api.test:{server.port}/ok") as response:
            assert await response.json() == {"ok": True}
        with pytest.raises(aiohttp.ClientConnectorDNSError) as caught:
            await session.get(f"http://missing.test:{server.port}/ok")

    assert isinstance(caught.value.os_error, socket.gaierror)
    assert caught.value.os_error.errno == socket.EAI_NONAME
    assert resolver.lookups == ["api.test", "missing.test"]
    assert server.connections_accepted == 1


# --- how aiohttp reports each mode --------------------------------------------------


def _always(_: Any) -> bool:
    return True


@dataclass(frozen=True)
class Fetched:
    status: int
    url: str
    redirects: int
    body: Any  # parsed JSON for application/json, else the first bytes


@dataclass(frozen=True)
class Outcome:
    raises: type[BaseException] | None
    holds: Callable[[Any], bool] = field(default=_always)
    """Checked against the exception, or against ``Fetched`` when nothing is raised."""


def _parser_error(cause: type[Exception]) -> Callable[[Any], bool]:
    """A malformed response surfaces as ClientResponseError *with status 400*,
    as if the server had answered 400; only ``__cause__`` tells them apart."""

    def holds(exc: aiohttp.ClientResponseError) -> bool:
        underlying = exc.__cause__
        assert isinstance(underlying, http_exceptions.HttpProcessingError)
        return exc.status == 400 and isinstance(underlying.__cause__, cause)

    return holds


def _payload_incomplete(*, reset: bool) -> Callable[[Any], bool]:
    """Short body and reset mid-body are the same class with the same cause;
    the reset shows only as text appended to the message."""

    def holds(exc: aiohttp.ClientPayloadError) -> bool:
        return (
            isinstance(exc.__cause__, http_exceptions.ContentLengthError)
            and ("ConnectionResetError" in str(exc)) is reset
        )

    return holds


def _ok(fetched: Fetched) -> bool:
    return fetched.status == 200 and fetched.body == {"ok": True}


AIOHTTP_OUTCOMES: dict[str, Outcome] = {
    # sock_read catches silence before the head and mid-body alike.
    "/hang": Outcome(aiohttp.SocketTimeoutError),
    "/stall-body": Outcome(aiohttp.SocketTimeoutError),
    "/drip": Outcome(aiohttp.SocketTimeoutError),
    "/close": Outcome(aiohttp.ServerDisconnectedError),
    # A reset before the head is complete is ClientOSError (errno ECONNRESET),
    # not ClientConnectionResetError.
    "/reset-headers": Outcome(aiohttp.ClientOSError, lambda exc: exc.errno == errno.ECONNRESET),
    "/reset-body": Outcome(aiohttp.ClientPayloadError, _payload_incomplete(reset=True)),
    "/short-body": Outcome(aiohttp.ClientPayloadError, _payload_incomplete(reset=False)),
    "/bad-status-line": Outcome(
        aiohttp.ClientResponseError, _parser_error(http_exceptions.BadStatusLine)
    ),
    # Sent with the head in one write, a body error is found while parsing the
    # head's segment, so it is raised by get() like a header error.
    "/bad-chunked": Outcome(
        aiohttp.ClientResponseError, _parser_error(http_exceptions.BadHttpMessage)
    ),
    "/many-headers": Outcome(
        aiohttp.ClientResponseError, _parser_error(http_exceptions.BadHttpMessage)
    ),
    "/huge-header": Outcome(
        aiohttp.ClientResponseError, _parser_error(http_exceptions.LineTooLong)
    ),
    # Neither raises: bounding what is read (and inflated) is the caller's job.
    # aiohttp inflates lazily, as the body is read; resp.read() would hold 100 MiB.
    "/huge": Outcome(None, lambda fetched: len(fetched.body) == 1 << 20),
    "/gzip-bomb": Outcome(None, lambda fetched: fetched.body == bytes(1 << 20)),
    # status is 0, history holds the 10 redirects followed.
    "/redirect-loop": Outcome(
        aiohttp.TooManyRedirects, lambda exc: exc.status == 0 and len(exc.history) == 10
    ),
    "/redirect-refused": Outcome(
        aiohttp.ClientConnectorError,
        lambda exc: isinstance(exc.os_error, ConnectionRefusedError),
    ),
    # JSON failures are not ClientErrors at all.
    "/deep-json": Outcome(RecursionError),
    "/non-utf8": Outcome(UnicodeDecodeError),
    # An empty body parses as None rather than failing.
    "/empty-json": Outcome(None, lambda fetched: fetched.status == 200 and fetched.body is None),
    "/echo-auth": Outcome(None, lambda fetched: fetched.body == AUTHORIZATION.encode()),
    # Same-origin redirects keep Authorization, and this one copies it into the URL.
    "/redirect-echo-auth": Outcome(
        None,
        lambda fetched: (
            fetched.redirects == 1
            and fetched.url.endswith(f"/landing?token={quote(AUTHORIZATION, safe='')}")
        ),
    ),
    "/landing": Outcome(None, lambda fetched: fetched.body == b"ok"),
    "/script": Outcome(None, lambda fetched: fetched.body == SCRIPT_BODY),
    "/ok": Outcome(None, _ok),
    "/slow": Outcome(None, _ok),
    # Event streams are bodies like any other to aiohttp: nothing bounds them but what the
    # caller reads (1 MiB here) and its timeouts. Paced slower than sock_read (see
    # _AIOHTTP_TARGETS), a silence between two writes trips it, as it would for any body.
    "/sse-endless": Outcome(aiohttp.SocketTimeoutError),
    "/sse-comments": Outcome(aiohttp.SocketTimeoutError),
    "/sse-drip": Outcome(aiohttp.SocketTimeoutError),
    "/sse-huge-event": Outcome(
        None, lambda fetched: fetched.body == b"data: " + b"x" * ((1 << 20) - len(b"data: "))
    ),
    "/sse-flood": Outcome(
        None,
        lambda fetched: (
            fetched.body[:18] == b"data: x\n\ndata: x\n\n" and len(fetched.body) == 1 << 20
        ),
    ),
}
# The paced modes, slower than the client's sock_read (QUIET), so each test takes a moment.
_AIOHTTP_TARGETS = {
    "/sse-endless": "/sse-endless?interval_ms=400",
    "/sse-comments": "/sse-comments?interval_ms=400",
    "/sse-drip": "/sse-drip?interval_ms=400",
}


async def fetch_with_aiohttp(session: aiohttp.ClientSession, url: str) -> Fetched:
    headers = {"Authorization": AUTHORIZATION}
    async with session.get(url, headers=headers) as response:
        if response.content_type == "application/json":
            body: Any = await response.json()
        else:
            body = await response.content.read(1 << 20)
            for _ in range(100):
                if len(body) >= 1 << 20:
                    break
                chunk = await response.content.read((1 << 20) - len(body))
                if not chunk:
                    break
                body += chunk
        return Fetched(response.status, str(response.url), len(response.history), body)


def test_every_mode_has_a_recorded_aiohttp_outcome() -> None:
    assert set(AIOHTTP_OUTCOMES) == MODES


@pytest.mark.parametrize("mode", sorted(AIOHTTP_OUTCOMES))
async def test_aiohttp_reports_mode_as_recorded(server: HostileServer, mode: str) -> None:
    outcome = AIOHTTP_OUTCOMES[mode]
    timeout = aiohttp.ClientTimeout(total=PROMPTLY * 2, sock_read=QUIET)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            target = _AIOHTTP_TARGETS.get(mode, mode)
            result: Any = await fetch_with_aiohttp(session, server.url + target)
        except Exception as exc:  # the exact class is what is checked
            result = exc

    if outcome.raises is None:
        assert isinstance(result, Fetched), repr(result)
    else:
        assert type(result) is outcome.raises, repr(result)
    assert outcome.holds(result), repr(result)


async def test_aiohttp_counts_each_redirect_as_a_connection(server: HostileServer) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.TooManyRedirects) as caught:
            await session.get(f"{server.url}/redirect-loop")

    # max_redirects=10 means 10 requests in all, each 302 kept in history.
    assert server.connections_accepted == len(caught.value.history) == 10


async def test_aiohttp_total_deadline_is_a_bare_timeout_error(server: HostileServer) -> None:
    # Each byte arrives well within sock_read, so only the total deadline fires,
    # and it is the builtin TimeoutError, not an aiohttp.ClientError.
    timeout = aiohttp.ClientTimeout(total=QUIET, sock_read=PROMPTLY)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError) as caught:
            await fetch_with_aiohttp(session, f"{server.url}/drip?interval_ms=20")

    assert type(caught.value) is TimeoutError


_C_PARSER = http_parser.HttpResponseParser is not http_parser.HttpResponseParserPy


async def test_aiohttp_on_bad_chunk_after_the_head(server: HostileServer) -> None:
    """A chunk error in a later segment than the head.

    With aiohttp's C parser (3.14) the body read never ends: the protocol
    records the error but the response's stream is never told, and sock_read
    is switched off, so only a total deadline stops it.  The pure-Python parser
    raises its internal TransferEncodingError, which is not a ClientError.
    """
    timeout = aiohttp.ClientTimeout(total=QUIET * 2, sock_read=QUIET)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            await fetch_with_aiohttp(session, f"{server.url}/bad-chunked?split_ms=50")
        except Exception as exc:  # the exact class is what is checked
            result: Any = exc
        else:
            pytest.fail("a bad chunk was accepted")

    expected = TimeoutError if _C_PARSER else http_exceptions.TransferEncodingError
    assert type(result) is expected, repr(result)
