"""Exception or response -> FailureReason, most specific first.

Every `aiohttp.ClientError` subclass has its own row in `_CLIENT_ERRORS`; lookup
walks the exception's MRO, so an unknown future subclass still lands on its
nearest mapped ancestor, and tests/probe/test_classify.py fails until it gets a row.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable

import aiohttp
import aiohttp.client_exceptions
from aiohttp import http_exceptions

from uptime_probe.probe.model import FailureReason
from uptime_probe.probe.tracing import CONNECTING, RESOLVING

Classified = tuple[FailureReason, str]

_REFUSED_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}
# The probe host's own limits, whichever call met them (socket(), a resolver's socket, a
# buffer): the run could not be made, and the target must not be blamed for it.
_LOCAL_ERRNOS = {
    errno.EMFILE: "this process is out of file descriptors (RLIMIT_NOFILE)",
    errno.ENFILE: "the system is out of file descriptors (fs.file-max)",
    errno.ENOBUFS: "the probe host is out of memory for socket buffers",
    errno.ENOMEM: "the probe host is out of memory",
}


def classify_status(status: int) -> FailureReason:
    if status == 429:
        return FailureReason.RATE_LIMITED
    if 400 <= status < 500:
        return FailureReason.HTTP_4XX
    if 500 <= status < 600:
        return FailureReason.HTTP_5XX
    return FailureReason.UNEXPECTED_STATUS


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _local_resources(exc: OSError) -> Classified | None:
    words = _LOCAL_ERRNOS.get(exc.errno) if exc.errno is not None else None
    if words is None:
        return None
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FailureReason.LOCAL_RESOURCES, f"cannot resolve {exc.host}: {words}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        where = f"{exc.host}:{exc.port}"
        return FailureReason.LOCAL_RESOURCES, f"cannot open a connection to {where}: {words}"
    return FailureReason.LOCAL_RESOURCES, f"cannot open a connection: {words}"


def _certificate(exc: aiohttp.ClientError) -> Classified:
    assert isinstance(exc, aiohttp.ClientConnectorCertificateError)
    detail = getattr(exc.certificate_error, "verify_message", None) or _first_line(
        exc.certificate_error
    )
    return FailureReason.TLS, f"TLS certificate rejected: {detail}"


def _ssl(exc: aiohttp.ClientError) -> Classified:
    return FailureReason.TLS, f"TLS handshake failed: {_first_line(exc)}"


def _dns(exc: aiohttp.ClientError) -> Classified:
    host = getattr(exc, "host", "")
    return FailureReason.DNS, f"cannot resolve host {host!r}"


def _connector(exc: aiohttp.ClientError) -> Classified:
    assert isinstance(exc, aiohttp.ClientConnectorError)
    where = f"{exc.host}:{exc.port}"
    code = exc.os_error.errno
    if code == errno.ETIMEDOUT:
        return FailureReason.CONNECT_TIMEOUT, f"connect to {where} timed out"
    if code in _RESET_ERRNOS:
        return FailureReason.CONNECTION_RESET, f"connection to {where} reset while connecting"
    if code == errno.ECONNREFUSED:
        return FailureReason.CONNECT_REFUSED, f"connection to {where} refused"
    reason = exc.os_error.strerror or _first_line(exc.os_error)
    return FailureReason.CONNECT_REFUSED, f"cannot connect to {where}: {reason}"


def _os_error(exc: aiohttp.ClientError) -> Classified:
    assert isinstance(exc, OSError)
    if exc.errno in _REFUSED_ERRNOS:
        return FailureReason.CONNECT_REFUSED, f"connection failed: {exc.strerror}"
    return FailureReason.CONNECTION_RESET, f"connection broken: {exc.strerror or _first_line(exc)}"


def _fixed(reason: FailureReason, text: str) -> Callable[[aiohttp.ClientError], Classified]:
    def classify(exc: aiohttp.ClientError) -> Classified:
        detail = _first_line(exc)
        return reason, f"{text}: {detail}" if detail and detail != type(exc).__name__ else text

    return classify


def _response_error(exc: aiohttp.ClientError) -> Classified:
    # We never call raise_for_status, so a bare ClientResponseError comes from the
    # HTTP parser: the target answered something that is not valid HTTP.
    assert isinstance(exc, aiohttp.ClientResponseError)
    return FailureReason.UNEXPECTED_STATUS, f"invalid HTTP response: {exc.message}"[:300]


def _proxy_status(exc: aiohttp.ClientError) -> Classified:
    assert isinstance(exc, aiohttp.ClientResponseError)
    return classify_status(exc.status), f"proxy answered HTTP {exc.status}"


def _redirects(exc: aiohttp.ClientError) -> Classified:
    assert isinstance(exc, aiohttp.TooManyRedirects)
    hops = len(exc.history)
    return FailureReason.TOO_MANY_REDIRECTS, f"more than {hops - 1} redirects"


_CLIENT_ERRORS: dict[object, Callable[[aiohttp.ClientError], Classified]] = {
    aiohttp.ClientError: _fixed(FailureReason.CONNECTION_RESET, "client error"),
    aiohttp.ClientResponseError: _response_error,
    aiohttp.ContentTypeError: _fixed(FailureReason.INVALID_JSON, "unexpected content type"),
    aiohttp.WSServerHandshakeError: _fixed(FailureReason.UNEXPECTED_STATUS, "websocket handshake"),
    aiohttp.ClientHttpProxyError: _proxy_status,
    aiohttp.TooManyRedirects: _redirects,
    aiohttp.ClientConnectionError: _fixed(FailureReason.CONNECTION_RESET, "connection failed"),
    aiohttp.ClientConnectionResetError: _fixed(FailureReason.CONNECTION_RESET, "connection reset"),
    aiohttp.ClientOSError: _os_error,
    aiohttp.ClientConnectorError: _connector,
    aiohttp.ClientConnectorDNSError: _dns,
    aiohttp.ClientProxyConnectionError: _fixed(
        FailureReason.CONNECT_REFUSED, "cannot connect to proxy"
    ),
    aiohttp.client_exceptions.UnixClientConnectorError: _fixed(
        FailureReason.CONNECT_REFUSED, "cannot connect to unix socket"
    ),
    aiohttp.ClientSSLError: _ssl,
    aiohttp.ClientConnectorSSLError: _ssl,
    aiohttp.ClientConnectorCertificateError: _certificate,
    aiohttp.ServerConnectionError: _fixed(
        FailureReason.CONNECTION_RESET, "server connection error"
    ),
    aiohttp.ServerDisconnectedError: _fixed(
        FailureReason.CONNECTION_RESET, "server closed the connection"
    ),
    aiohttp.ServerTimeoutError: _fixed(FailureReason.TIMEOUT, "server timed out"),
    aiohttp.ConnectionTimeoutError: _fixed(FailureReason.CONNECT_TIMEOUT, "connect timed out"),
    aiohttp.SocketTimeoutError: _fixed(FailureReason.TIMEOUT, "read timed out"),
    aiohttp.ServerFingerprintMismatch: _fixed(
        FailureReason.TLS, "certificate fingerprint mismatch"
    ),
    aiohttp.ClientPayloadError: _fixed(FailureReason.CONNECTION_RESET, "response body incomplete"),
    aiohttp.UploadAbortedError: _fixed(FailureReason.CONNECTION_RESET, "upload aborted"),
    # Configured URLs are checked at load, so an invalid one was built from an extracted value.
    aiohttp.InvalidURL: _fixed(FailureReason.EXTRACTION_FAILED, "request URL is invalid"),
    aiohttp.InvalidUrlClientError: _fixed(
        FailureReason.EXTRACTION_FAILED, "request URL is invalid"
    ),
    aiohttp.NonHttpUrlClientError: _fixed(
        FailureReason.EXTRACTION_FAILED, "request URL is not HTTP"
    ),
    aiohttp.RedirectClientError: _fixed(FailureReason.UNEXPECTED_STATUS, "bad redirect"),
    aiohttp.InvalidUrlRedirectClientError: _fixed(
        FailureReason.UNEXPECTED_STATUS, "redirect to an invalid URL"
    ),
    aiohttp.NonHttpUrlRedirectClientError: _fixed(
        FailureReason.UNEXPECTED_STATUS, "redirect to a non-HTTP URL"
    ),
}

MAPPED_CLIENT_ERRORS = frozenset(_CLIENT_ERRORS)


def classify_exception(exc: BaseException, phase: str = "") -> Classified:
    """The reason and a one-line message for an exception raised while running a step.

    `phase` is the recorder's state when the exception hit, so a deadline that expires
    while connecting reads as `connect_timeout`, not `timeout`.
    """
    if isinstance(exc, OSError):
        # First: an aiohttp error that wraps EMFILE is a connector or DNS error by type,
        # and its row would blame the target.
        local = _local_resources(exc)
        if local is not None:
            return local
    if isinstance(exc, aiohttp.ClientError):
        for cls in type(exc).__mro__:
            handler = _CLIENT_ERRORS.get(cls)
            if handler is not None:
                return handler(exc)
    if isinstance(exc, TimeoutError):
        if phase == CONNECTING:
            return FailureReason.CONNECT_TIMEOUT, "no connection before the deadline"
        if phase == RESOLVING:
            return FailureReason.DNS, "name resolution did not finish before the deadline"
        return FailureReason.TIMEOUT, "no complete response before the deadline"
    if isinstance(exc, http_exceptions.HttpProcessingError):
        # aiohttp's pure-Python parser raises its own errors (not ClientErrors) for a body
        # it cannot parse after the head, e.g. a bad chunk size: as invalid as a bad head.
        detail = " ".join(str(exc.message).split())[:300]
        return FailureReason.UNEXPECTED_STATUS, f"invalid HTTP response: {detail}"
    if isinstance(exc, ssl.SSLError):
        return FailureReason.TLS, f"TLS error: {_first_line(exc)}"
    if isinstance(exc, socket.gaierror):
        return FailureReason.DNS, f"cannot resolve host: {_first_line(exc)}"
    if isinstance(exc, ConnectionRefusedError):
        return FailureReason.CONNECT_REFUSED, f"connection refused: {_first_line(exc)}"
    if isinstance(exc, ConnectionError | EOFError):
        return FailureReason.CONNECTION_RESET, f"connection broken: {_first_line(exc)}"
    if isinstance(exc, OSError):
        return FailureReason.CONNECTION_RESET, f"network error: {_first_line(exc)}"
    return FailureReason.INTERNAL, f"internal error ({type(exc).__name__}): {_first_line(exc)}"
