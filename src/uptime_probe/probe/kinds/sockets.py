"""A TCP connection (optionally TLS) of our own, for the kinds that do not speak HTTP.

The `tcp` and `certificate` kinds open their connections with asyncio streams: resolve
(through the run's resolver, as HTTP steps do), connect to each address in turn, then
the TLS handshake, each timed into the step's phases. Their errors are the standard
library's (socket, ssl, asyncio), mapped here to our reasons, most specific first;
tests/probe/kinds/test_sockets.py fails when one of those classes has no row.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from uptime_probe.config.redaction import Redactor
from uptime_probe.probe.classify import MESSAGE_LIMIT
from uptime_probe.probe.kinds.base import RunContext
from uptime_probe.probe.model import FailureReason
from uptime_probe.probe.tracing import CONNECTING as CONNECTING
from uptime_probe.probe.tracing import HANDSHAKING as HANDSHAKING
from uptime_probe.probe.tracing import RESOLVING as RESOLVING

Classified = tuple[str, str]

# What a connection is doing when an error (or the journey's deadline) meets it: the
# recorder's words for the first three (probe/tracing.py), then the kind's exchange.
EXCHANGING = "exchanging"

# A polite close waits this long for the peer (a TLS close_notify) before aborting.
CLOSE_WAIT_SECONDS = 1.0

_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


@dataclass(slots=True)
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    address: str  # "ip:port" of the peer it reached
    connect_seconds: float
    tls_seconds: float | None  # None: no TLS

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        found = self.writer.get_extra_info("ssl_object")
        return found if isinstance(found, ssl.SSLObject) else None


class Progress:
    """Where a connection is, for a deadline note and for classifying an error."""

    __slots__ = ("peer", "stage")

    def __init__(self, peer: str) -> None:
        self.stage = RESOLVING
        self.peer = peer  # "host:port" until an address is being tried, then "ip:port"


def reading_context(setting: ssl.SSLContext | bool) -> ssl.SSLContext:
    """The step's verifying context, or (verify: false) one that reads any certificate."""
    if isinstance(setting, ssl.SSLContext):
        return setting
    return unverified_context()


def unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # to read a certificate, never to trust it
    return context


async def resolve(run: RunContext, host: str, port: int) -> list[str]:
    """The addresses of `host`, through the run's resolver when it has one (as HTTP steps
    resolve), else the system's; an IP literal is its own address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    if run.resolver is not None:
        found = await run.resolver.resolve(host, port, family=socket.AF_UNSPEC)
        addresses = [entry["host"] for entry in found]
    else:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"no address for {host}")
    return list(dict.fromkeys(addresses))


async def open_connection(
    run: RunContext,
    host: str,
    port: int,
    progress: Progress,
    *,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> Connection:
    """Resolve, connect (each address in turn, the last error raised), then TLS.

    Phases go to `run.recorder` (resolve, connect, tls) as the HTTP kinds record them.
    """
    recorder = run.recorder
    progress.stage = RESOLVING
    started = time.perf_counter()
    addresses = await resolve(run, host, port)
    connected = time.perf_counter()
    recorder.resolve += connected - started
    progress.stage = CONNECTING
    last: OSError | None = None
    for address in addresses:
        progress.peer = _join(address, port)
        try:
            reader, writer = await asyncio.open_connection(address, port)
        except OSError as exc:
            last = exc
            continue
        break
    else:
        assert last is not None, "resolve returns at least one address"
        raise last
    tcp_done = time.perf_counter()
    recorder.connect += tcp_done - connected
    tls_seconds: float | None = None
    if tls is not None:
        progress.stage = HANDSHAKING
        try:
            await writer.start_tls(tls, server_hostname=server_name or host)
        except BaseException:
            writer.transport.abort()
            raise
        tls_seconds = time.perf_counter() - tcp_done
        recorder.tls += tls_seconds
    progress.stage = EXCHANGING
    return Connection(reader, writer, progress.peer, tcp_done - connected, tls_seconds)


async def close(writer: asyncio.StreamWriter) -> None:
    """Close politely (FIN, TLS close_notify), waiting a moment for the peer, then abort."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_WAIT_SECONDS):
            await writer.wait_closed()
    except (OSError, TimeoutError, ssl.SSLError):
        writer.transport.abort()


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__  # cut by the caller, redacted first


def _verification(exc: BaseException, where: str, _stage: str) -> Classified:
    assert isinstance(exc, ssl.SSLCertVerificationError)
    detail = exc.verify_message or _first_line(exc)
    return FailureReason.TLS, f"TLS certificate of {where} rejected: {detail}"


def _tls(text: str | None) -> Callable[[BaseException, str, str], Classified]:
    """An ssl error: `text` says what it means, else OpenSSL's own words do."""

    def classify(exc: BaseException, where: str, stage: str) -> Classified:
        detail = text or _first_line(exc)
        if stage == EXCHANGING:
            # The session was up: the TLS layer saw the connection break.
            return FailureReason.CONNECTION_RESET, f"TLS connection to {where} broke: {detail}"
        return FailureReason.TLS, f"TLS handshake with {where} failed: {detail}"

    return classify


def _fixed(reason: str, text: str) -> Callable[[BaseException, str, str], Classified]:
    def classify(exc: BaseException, where: str, _stage: str) -> Classified:
        return reason, f"{text} {where}: {_first_line(exc)}"

    return classify


def _timed_out(exc: BaseException, where: str, stage: str) -> Classified:
    if stage == RESOLVING:
        return FailureReason.DNS, f"resolving {where} timed out"
    if stage == HANDSHAKING:
        return FailureReason.TLS, f"TLS handshake with {where} timed out"
    if stage == CONNECTING:
        return FailureReason.CONNECT_TIMEOUT, f"connect to {where} timed out"
    return FailureReason.TIMEOUT, f"{where} timed out: {_first_line(exc)}"


def _os_error(exc: BaseException, where: str, stage: str) -> Classified:
    assert isinstance(exc, OSError)
    if stage == RESOLVING:
        return FailureReason.DNS, f"cannot resolve {where}: {exc.strerror or _first_line(exc)}"
    if exc.errno == errno.ETIMEDOUT:
        return _timed_out(exc, where, stage)
    if exc.errno in _UNREACHABLE_ERRNOS or stage == CONNECTING:
        return FailureReason.CONNECT_REFUSED, f"cannot connect to {where}: {_first_line(exc)}"
    return FailureReason.CONNECTION_RESET, f"connection to {where} broken: {_first_line(exc)}"


def _reset(exc: BaseException, where: str, stage: str) -> Classified:
    if stage in (CONNECTING, HANDSHAKING):
        return FailureReason.CONNECTION_RESET, f"connection to {where} reset while connecting"
    return FailureReason.CONNECTION_RESET, f"connection to {where} reset"


def _closed(exc: BaseException, where: str, stage: str) -> Classified:
    if stage == HANDSHAKING:
        return FailureReason.TLS, f"{where} closed the connection during the TLS handshake"
    return FailureReason.CONNECTION_RESET, f"{where} closed the connection"


_Handler = Callable[[BaseException, str, str], Classified]

# Most specific first: the first class the exception is an instance of decides.
SOCKET_ERRORS: tuple[tuple[type[BaseException], _Handler], ...] = (
    (ssl.SSLCertVerificationError, _verification),
    (ssl.SSLZeroReturnError, _tls("closed by the peer")),
    (ssl.SSLEOFError, _tls("the peer closed the connection")),
    (ssl.SSLSyscallError, _tls("system error")),
    (ssl.SSLWantReadError, _tls("stalled")),
    (ssl.SSLWantWriteError, _tls("stalled")),
    (ssl.SSLError, _tls(None)),
    (socket.gaierror, _fixed(FailureReason.DNS, "cannot resolve")),
    (socket.herror, _fixed(FailureReason.DNS, "cannot resolve")),
    (ConnectionRefusedError, _fixed(FailureReason.CONNECT_REFUSED, "connection refused by")),
    (ConnectionResetError, _reset),
    (ConnectionAbortedError, _reset),
    (BrokenPipeError, _reset),
    (ConnectionError, _reset),
    (asyncio.IncompleteReadError, _closed),
    (EOFError, _closed),
    (asyncio.LimitOverrunError, _fixed(FailureReason.BODY_TOO_LARGE, "line too long from")),
    (TimeoutError, _timed_out),
    (OSError, _os_error),
)


def classify_socket_error(
    exc: BaseException, progress: Progress, redact: Redactor
) -> Classified | None:
    """The reason for an error of the standard library's network stack, or None for
    anything else (the caller's own errors, or a bug). The message is redacted with the
    check's `redact`, then cut, as classify_exception's are."""
    for cls, handler in SOCKET_ERRORS:
        if isinstance(exc, cls):
            reason, message = handler(exc, progress.peer, progress.stage)
            return reason, redact.cut(message, MESSAGE_LIMIT)
    return None
