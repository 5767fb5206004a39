"""A misbehaving HTTP/1.1 server for tests, built on raw asyncio streams.

aiohttp's own server is too well behaved to lie about Content-Length, reset
mid-body or send a broken status line, so this one writes bytes by hand.  It
listens on 127.0.0.1 with an ephemeral port and picks its misbehaviour from
the request path::

    async with HostileServer() as server:
        await session.get(f"{server.url}/reset-body")

Modes (the server reads the request line and headers first unless noted):

    /hang               read the request line only, then stop reading and never answer
    /stall-body         headers with Content-Length: 100, then silence
    /drip               a valid 120-byte response, one byte per second, headers included
                        (?interval_ms=N changes the pace, for tests that read it all)
    /close              close cleanly (FIN) without a response
    /reset-headers      half the status line and headers, then a TCP RST
    /reset-body         headers with Content-Length: 1000, 100 body bytes, then a TCP RST
    /bad-status-line    ``HTTP/1.1 abc``
    /bad-chunked        Transfer-Encoding: chunked with a chunk size that is not hex, all in
                        one write; ?split_ms=N sends the head and a good chunk first and
                        the bad chunk N ms later, so the client sees it while reading the body
    /short-body         Content-Length: 1000, 10 body bytes, then a clean close (FIN)
    /huge               Content-Length: 1 GiB of zeros, streamed with backpressure
    /gzip-bomb          Content-Encoding: gzip, ~100 KiB that inflates to 100 MiB
    /many-headers       20,000 response headers
    /huge-header        one response header line of 1 MiB
    /redirect-loop      302 to itself
    /redirect-refused   302 to a loopback port where nothing listens
    /deep-json          200 application/json, 100,000 nested arrays
    /non-utf8           200 application/json that is not valid UTF-8
    /empty-json         200 application/json with Content-Length: 0
    /echo-auth          200 text/plain echoing the request's Authorization header
    /redirect-echo-auth 302 to /landing?token=<the Authorization header>
    /landing            200 text/plain ``ok``
    /script             200 text/html ``<script>alert(1)</script>``
    /ok                 200 application/json ``{"ok": true}``
    /slow?ms=N          200 application/json ``{"ok": true}`` after N ms (at most 60 s)

Server-sent event streams (200 text/event-stream, the body delimited by the close):

    /sse-endless        a valid event every 20 ms (?interval_ms=N), never a done event
    /sse-huge-event     ``data: `` and then 1 GiB of ``x``: one event that never ends
    /sse-flood          tiny events (``data: x``), as fast as the client reads, up to 1 GiB
    /sse-comments       a keep-alive comment every 10 ms (?interval_ms=N), never an event
    /sse-drip           valid events, one byte every 50 ms (?interval_ms=N), for a minute

Anything else gets a 404.  Every response carries ``Connection: close`` and
each connection serves one request, so ``connections_accepted`` is also the
number of requests a client attempted, retries and redirects included.

Routing needs the request line, so ``/hang`` and ``/close`` act just after it
rather than literally at accept.  ``/close`` does read the rest of the request
head first: a socket closed with unread bytes in its receive queue makes the
kernel send RST instead of FIN, which would turn it into a reset mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import struct
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = ["MODES", "HostileServer", "gzip_bomb_payload", "refused_port"]

_log = logging.getLogger(__name__)

# Bounds on what the server reads from a client.
READ_LIMIT = 64 * 1024
MAX_REQUEST_HEAD_LINES = 200
MAX_REQUEST_BODY = 1 << 20
REQUEST_HEAD_TIMEOUT = 10.0
# The longest any silent mode keeps a connection open before giving up.
STALL_CAP_SECONDS = 300.0
MAX_DISCARD_READS = 1024
MAX_IDLE_WAITS = 1024
# A graceful close waits this long for the peer (TLS close_notify) before aborting.
CLOSE_TIMEOUT = 5.0

# Sizes of the misbehaviours.
DRIP_RESPONSE_SIZE = 120
DRIP_DEFAULT_INTERVAL_MS = 1000
DRIP_MAX_INTERVAL_MS = 5000
STALL_BODY_DECLARED = 100
RESET_BODY_DECLARED = 1000
RESET_BODY_SENT = 100
SHORT_BODY_DECLARED = 1000
SHORT_BODY_SENT = 10
HUGE_CONTENT_LENGTH = 1 << 30
HUGE_CHUNK_SIZE = 64 * 1024
GZIP_BOMB_INFLATED_SIZE = 100 << 20
GZIP_BOMB_CHUNK_SIZE = 64 * 1024
MANY_HEADERS_COUNT = 20_000
HUGE_HEADER_SIZE = 1 << 20
DEEP_JSON_DEPTH = 100_000
SLOW_MAX_MS = 60_000
SSE_ENDLESS_INTERVAL_MS = 20
SSE_COMMENT_INTERVAL_MS = 10
SSE_DRIP_INTERVAL_MS = 50
SSE_MAX_INTERVAL_MS = 5000
SSE_HUGE_SIZE = 1 << 30
SSE_FLOOD_EVENT = b"data: x\n\n"
# Bounds on the paced modes, so a client that never leaves cannot keep a handler forever.
SSE_MAX_EVENTS = 1_000_000
SSE_DRIP_BYTES = 1200

SCRIPT_BODY = b"<script>alert(1)</script>"
OK_BODY = b'{"ok": true}'
NON_UTF8_BODY = b'{"text": "\xff\xfe caf\xe9 \xc3\x28"}'

_ZERO_CHUNK = bytes(HUGE_CHUNK_SIZE)
_LINGER_ZERO = struct.pack("ii", 1, 0)
# What a client vanishing looks like from the server's side of the socket.
_CLIENT_GONE = (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError)


async def refused_port() -> int:
    """Return a loopback port with nothing listening on it.

    Binds an ephemeral port and releases it.  Another process could take the
    port in between; on a test machine that is rare enough to accept.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@functools.cache
def gzip_bomb_payload() -> bytes:
    """Gzip bytes (about 100 KiB) that inflate to ``GZIP_BOMB_INFLATED_SIZE`` zeros.

    Built once per process, from 1 MiB blocks so the 100 MiB never exist at once.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(GZIP_BOMB_INFLATED_SIZE // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


def _response_head(status: int, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _response(status: int, body: bytes = b"", content_type: str = "text/plain") -> bytes:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    return _response_head(status, headers) + body


@functools.cache
def _drip_response() -> bytes:
    head = _response_head(200, [("Content-Type", "text/plain"), ("Content-Length", "00")])
    body = b"d" * (DRIP_RESPONSE_SIZE - len(head))
    response = head.replace(b"Content-Length: 00", b"Content-Length: %02d" % len(body)) + body
    assert len(response) == DRIP_RESPONSE_SIZE
    return response


@functools.cache
def _many_headers_response() -> bytes:
    headers = [(f"X-Hostile-{index:05d}", "x") for index in range(MANY_HEADERS_COUNT)]
    return _response_head(200, [*headers, ("Content-Length", "0")])


@functools.cache
def _huge_header_response() -> bytes:
    return _response_head(200, [("X-Huge", "a" * HUGE_HEADER_SIZE), ("Content-Length", "0")])


@functools.cache
def _deep_json_body() -> bytes:
    return b"[" * DEEP_JSON_DEPTH + b"]" * DEEP_JSON_DEPTH


class _BadRequest(Exception):
    """The client sent something this server will not parse."""


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased; empty when the mode skips the head


class _Exchange:
    """One connection: the streams, the parsed request, and how to end it."""

    def __init__(
        self,
        server: HostileServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: _Request,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.request = request

    async def send(self, data: bytes | memoryview) -> None:
        """Write and wait for the transport's buffer to drain (backpressure).

        Raises ConnectionResetError once the connection is gone.  drain() alone
        is not enough over TLS: when the socket under an SSL transport dies,
        writes are dropped instead of buffered, so drain() never waits, and a
        loop of sends never yields to the callbacks that would report the loss.
        It would spin through a whole /huge body, with asyncio warning on each
        write.  Hence the yield after every write and the check before it.
        """
        if self.writer.transport.is_closing():
            raise ConnectionResetError("connection closed while sending")
        self.writer.write(data)
        self.server.bytes_sent += len(data)
        await self.writer.drain()
        await asyncio.sleep(0)

    async def finish(self) -> None:
        """Close cleanly: TLS close_notify if any, then FIN."""
        self.writer.close()
        with contextlib.suppress(*_CLIENT_GONE):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.writer.wait_closed()

    def flush_every_write(self) -> None:
        """Make ``send`` return only once the bytes are in the kernel.

        A reset must not discard what was meant to reach the client first.
        """
        self.writer.transport.set_write_buffer_limits(high=0)

    def reset(self) -> None:
        """Close with a TCP RST: SO_LINGER of zero, then close."""
        sock = self.writer.get_extra_info("socket")
        # No socket (TLS) or a closed one (EBADF) means the client left first.
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        self.writer.transport.abort()

    async def wait_for_client_close(self) -> None:
        """Read and discard until the client goes away, bounded in time and reads."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STALL_CAP_SECONDS):
                for _ in range(MAX_DISCARD_READS):
                    if not await self.reader.read(READ_LIMIT):
                        return


# --- modes ------------------------------------------------------------------


def _int_param(ex: _Exchange, name: str, default: int, *, maximum: int) -> int:
    """A query parameter as an int clamped to [0, maximum]."""
    try:
        value = int(ex.request.query.get(name, default))
    except ValueError as exc:
        raise _BadRequest(f"{name} is not an integer") from exc
    return min(max(value, 0), maximum)


async def _hang(ex: _Exchange) -> None:
    ex.writer.transport.pause_reading()
    await asyncio.sleep(STALL_CAP_SECONDS)


async def _stall_body(ex: _Exchange) -> None:
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(STALL_BODY_DECLARED))]
    await ex.send(_response_head(200, headers))
    await ex.wait_for_client_close()


async def _drip(ex: _Exchange) -> None:
    interval_ms = _int_param(
        ex, "interval_ms", DRIP_DEFAULT_INTERVAL_MS, maximum=DRIP_MAX_INTERVAL_MS
    )
    interval = max(interval_ms, 1) / 1000
    for byte in _drip_response():
        await ex.send(bytes((byte,)))
        await asyncio.sleep(interval)
    await ex.finish()


async def _close(ex: _Exchange) -> None:
    await ex.finish()


async def _reset_headers(ex: _Exchange) -> None:
    head = _response_head(200, [("Content-Type", "text/plain"), ("Content-Length", "2")])
    ex.flush_every_write()
    await ex.send(head[: len(head) // 2])
    ex.reset()


async def _reset_body(ex: _Exchange) -> None:
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(RESET_BODY_DECLARED))]
    ex.flush_every_write()
    await ex.send(_response_head(200, headers) + b"r" * RESET_BODY_SENT)
    ex.reset()


async def _bad_status_line(ex: _Exchange) -> None:
    await ex.send(b"HTTP/1.1 abc\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await ex.finish()


async def _bad_chunked(ex: _Exchange) -> None:
    head = _response_head(200, [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
    split_ms = _int_param(ex, "split_ms", 0, maximum=SLOW_MAX_MS)
    if split_ms:
        ex.flush_every_write()
        await ex.send(head + b"5\r\nhello\r\n")
        await asyncio.sleep(split_ms / 1000)
        await ex.send(b"zz\r\nhello\r\n0\r\n\r\n")
    else:
        await ex.send(head + b"zz\r\nhello\r\n0\r\n\r\n")
    await ex.finish()


async def _short_body(ex: _Exchange) -> None:
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(SHORT_BODY_DECLARED))]
    await ex.send(_response_head(200, headers) + b"s" * SHORT_BODY_SENT)
    await ex.finish()


async def _huge(ex: _Exchange) -> None:
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(HUGE_CONTENT_LENGTH)),
    ]
    await ex.send(_response_head(200, headers))
    for _ in range(HUGE_CONTENT_LENGTH // HUGE_CHUNK_SIZE):
        # drain() raises once the client has gone, which ends the loop.
        await ex.send(_ZERO_CHUNK)
    await ex.finish()


async def _gzip_bomb(ex: _Exchange) -> None:
    payload = await asyncio.to_thread(gzip_bomb_payload)
    headers = [
        ("Content-Type", "text/plain"),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(payload))),
    ]
    await ex.send(_response_head(200, headers))
    view = memoryview(payload)
    for start in range(0, len(view), GZIP_BOMB_CHUNK_SIZE):
        await ex.send(view[start : start + GZIP_BOMB_CHUNK_SIZE])
    await ex.finish()


async def _many_headers(ex: _Exchange) -> None:
    await ex.send(_many_headers_response())
    await ex.finish()


async def _huge_header(ex: _Exchange) -> None:
    await ex.send(_huge_header_response())
    await ex.finish()


async def _redirect(ex: _Exchange, location: str) -> None:
    await ex.send(_response_head(302, [("Location", location), ("Content-Length", "0")]))
    await ex.finish()


async def _redirect_loop(ex: _Exchange) -> None:
    await _redirect(ex, "/redirect-loop")


async def _redirect_refused(ex: _Exchange) -> None:
    await _redirect(ex, f"http://127.0.0.1:{ex.server.refused_port}/")


async def _send_and_finish(ex: _Exchange, response: bytes) -> None:
    await ex.send(response)
    await ex.finish()


async def _deep_json(ex: _Exchange) -> None:
    await _send_and_finish(ex, _response(200, _deep_json_body(), "application/json"))


async def _non_utf8(ex: _Exchange) -> None:
    await _send_and_finish(ex, _response(200, NON_UTF8_BODY, "application/json"))


async def _empty_json(ex: _Exchange) -> None:
    await _send_and_finish(ex, _response(200, b"", "application/json"))


async def _echo_auth(ex: _Exchange) -> None:
    authorization = ex.request.headers.get("authorization", "")
    await _send_and_finish(ex, _response(200, authorization.encode("latin-1")))


async def _redirect_echo_auth(ex: _Exchange) -> None:
    authorization = ex.request.headers.get("authorization", "")
    await _redirect(ex, f"/landing?token={quote(authorization, safe='')}")


async def _landing(ex: _Exchange) -> None:
    await _send_and_finish(ex, _response(200, b"ok"))


async def _script(ex: _Exchange) -> None:
    await _send_and_finish(ex, _response(200, SCRIPT_BODY, "text/html"))


async def _ok(ex: _Exchange) -> None:
    await _send_and_finish(ex, _response(200, OK_BODY, "application/json"))


async def _slow(ex: _Exchange) -> None:
    await asyncio.sleep(_int_param(ex, "ms", 0, maximum=SLOW_MAX_MS) / 1000)
    await _ok(ex)


_SSE_HEAD = _response_head(
    200, [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
)
_SSE_FLOOD_CHUNK = SSE_FLOOD_EVENT * (HUGE_CHUNK_SIZE // len(SSE_FLOOD_EVENT))
_SSE_HUGE_CHUNK = b"x" * HUGE_CHUNK_SIZE


def _interval(ex: _Exchange, default_ms: int) -> float:
    return max(_int_param(ex, "interval_ms", default_ms, maximum=SSE_MAX_INTERVAL_MS), 1) / 1000


async def _sse_endless(ex: _Exchange) -> None:
    interval = _interval(ex, SSE_ENDLESS_INTERVAL_MS)
    await ex.send(_SSE_HEAD)
    for number in range(SSE_MAX_EVENTS):
        await ex.send(b'data: {"n": %d}\n\n' % number)
        await asyncio.sleep(interval)


async def _sse_huge_event(ex: _Exchange) -> None:
    await ex.send(_SSE_HEAD + b"data: ")
    for _ in range(SSE_HUGE_SIZE // len(_SSE_HUGE_CHUNK)):
        await ex.send(_SSE_HUGE_CHUNK)  # never a line end: one event of 1 GiB
    await ex.finish()


async def _sse_flood(ex: _Exchange) -> None:
    await ex.send(_SSE_HEAD)
    for _ in range(SSE_HUGE_SIZE // len(_SSE_FLOOD_CHUNK)):
        await ex.send(_SSE_FLOOD_CHUNK)
    await ex.finish()


async def _sse_comments(ex: _Exchange) -> None:
    interval = _interval(ex, SSE_COMMENT_INTERVAL_MS)
    await ex.send(_SSE_HEAD)
    for _ in range(SSE_MAX_EVENTS):
        await ex.send(b": keep-alive\n")
        await asyncio.sleep(interval)


async def _sse_drip(ex: _Exchange) -> None:
    interval = _interval(ex, SSE_DRIP_INTERVAL_MS)
    await ex.send(_SSE_HEAD)
    body = b"".join(b"data: %d\n\n" % (n % 10) for n in range(SSE_DRIP_BYTES // 9))
    for byte in body:
        await ex.send(bytes((byte,)))
        await asyncio.sleep(interval)
    await ex.finish()


@dataclass(frozen=True, slots=True)
class _Mode:
    handler: Callable[[_Exchange], Awaitable[None]]
    reads_head: bool = True


_MODES: dict[str, _Mode] = {
    "/hang": _Mode(_hang, reads_head=False),
    "/stall-body": _Mode(_stall_body),
    "/drip": _Mode(_drip),
    "/close": _Mode(_close),
    "/reset-headers": _Mode(_reset_headers),
    "/reset-body": _Mode(_reset_body),
    "/bad-status-line": _Mode(_bad_status_line),
    "/bad-chunked": _Mode(_bad_chunked),
    "/short-body": _Mode(_short_body),
    "/huge": _Mode(_huge),
    "/gzip-bomb": _Mode(_gzip_bomb),
    "/many-headers": _Mode(_many_headers),
    "/huge-header": _Mode(_huge_header),
    "/redirect-loop": _Mode(_redirect_loop),
    "/redirect-refused": _Mode(_redirect_refused),
    "/deep-json": _Mode(_deep_json),
    "/non-utf8": _Mode(_non_utf8),
    "/empty-json": _Mode(_empty_json),
    "/echo-auth": _Mode(_echo_auth),
    "/redirect-echo-auth": _Mode(_redirect_echo_auth),
    "/landing": _Mode(_landing),
    "/script": _Mode(_script),
    "/ok": _Mode(_ok),
    "/slow": _Mode(_slow),
    "/sse-endless": _Mode(_sse_endless),
    "/sse-huge-event": _Mode(_sse_huge_event),
    "/sse-flood": _Mode(_sse_flood),
    "/sse-comments": _Mode(_sse_comments),
    "/sse-drip": _Mode(_sse_drip),
}

MODES: frozenset[str] = frozenset(_MODES)
"""Every path the server treats specially."""


# --- request parsing --------------------------------------------------------


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError as exc:  # StreamReader's limit overrun
        raise _BadRequest("request line or header too long") from exc


async def _read_request_line(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    line = await _read_line(reader)
    if not line.endswith(b"\n"):
        raise asyncio.IncompleteReadError(line, None)
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _BadRequest("malformed request line")
    target = urlsplit(parts[1])
    return parts[0], target.path, dict(parse_qsl(target.query))


async def _read_rest_of_head(reader: asyncio.StreamReader) -> dict[str, str]:
    """Read header lines, then discard a Content-Length body, so a close sends FIN."""
    headers: dict[str, str] = {}
    for _ in range(MAX_REQUEST_HEAD_LINES):
        line = await _read_line(reader)
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        if line in (b"\r\n", b"\n"):
            break
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise _BadRequest("malformed header line")
        headers[name.strip().lower()] = value.strip()
    else:
        raise _BadRequest("too many header lines")
    try:
        body_size = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise _BadRequest("malformed Content-Length") from exc
    if not 0 <= body_size <= MAX_REQUEST_BODY:
        raise _BadRequest("request body too large")
    await reader.readexactly(body_size)
    return headers


# --- the server -------------------------------------------------------------


class HostileServer:
    """A loopback HTTP/1.1 server that misbehaves according to the request path.

    Use as an async context manager.  On exit it stops listening, aborts every
    open connection and cancels and awaits every handler task, so no task
    outlives the ``async with`` block.

    A client that disconnects at any point is logged at debug and never raises
    out of the server.  Anything else a handler raises is a bug in this module:
    it is logged and kept in ``unexpected_errors`` for tests to assert on.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._server: asyncio.Server | None = None
        self._port = 0
        self._refused_port = 0
        self._closing = False
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.connections_accepted = 0
        """TCP connections accepted, counted before any TLS handshake."""
        self.bytes_sent = 0
        """Bytes handed to transports, over all connections."""
        self.unexpected_errors: list[BaseException] = []

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("HostileServer is not running")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def refused_port(self) -> int:
        """The port ``/redirect-refused`` points at."""
        return self._refused_port

    @property
    def open_connections(self) -> int:
        """Connections whose handler has not finished yet."""
        return len(self._connections)

    async def wait_idle(self) -> None:
        """Wait until every handler has finished.  Callers bound this with a timeout."""
        for _ in range(MAX_IDLE_WAITS):
            if not self._connections:
                return
            await asyncio.wait(list(self._connections))

    async def __aenter__(self) -> HostileServer:
        loop = asyncio.get_running_loop()
        self._refused_port = await refused_port()
        # loop.create_server rather than asyncio.start_server, which it
        # otherwise mirrors: the protocol factory runs at TCP accept, before any
        # TLS handshake, so a client that rejects our certificate still counts.
        self._server = await loop.create_server(
            self._make_protocol, "127.0.0.1", 0, ssl=self._ssl_context
        )
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        if hasattr(self._server, "abort_clients"):  # 3.13+: TLS handshakes still in flight
            self._server.abort_clients()
        connections = list(self._connections.items())
        for task, writer in connections:
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*(task for task, _ in connections), return_exceptions=True)
        await self._server.wait_closed()

    def _make_protocol(self) -> asyncio.StreamReaderProtocol:
        self.connections_accepted += 1
        reader = asyncio.StreamReader(limit=READ_LIMIT)
        return asyncio.StreamReaderProtocol(reader, self._on_connection)

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain function, so the task is registered before anything else runs
        # and __aexit__ can never miss one.
        if self._closing:
            writer.transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._connections[task] = writer
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._connections.pop(task, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = ""
        try:
            try:
                async with asyncio.timeout(REQUEST_HEAD_TIMEOUT):
                    method, path, query = await _read_request_line(reader)
                    mode = _MODES.get(path)
                    reads_head = mode is None or mode.reads_head
                    headers = await _read_rest_of_head(reader) if reads_head else {}
                exchange = _Exchange(self, reader, writer, _Request(method, path, query, headers))
                if mode is None:
                    await _send_and_finish(exchange, _response(404))
                else:
                    await mode.handler(exchange)
            except _BadRequest as exc:
                _log.debug("hostile_request_rejected", extra={"path": path, "error": str(exc)})
                await _send_and_finish(_Exchange(self, reader, writer, _EMPTY), _response(400))
        except _CLIENT_GONE as exc:
            _log.debug("hostile_client_went_away", extra={"path": path, "error": repr(exc)})
        except Exception as exc:
            self.unexpected_errors.append(exc)
            _log.exception("hostile_handler_failed", extra={"path": path})
        finally:
            writer.transport.abort()


_EMPTY = _Request(method="", path="", query={}, headers={})
