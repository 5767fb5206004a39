"""Exception or response -> FailureReason, most specific first.

Every `aiohttp.ClientError` subclass has its own row in `_CLIENT_ERRORS`; lookup
walks the exception's MRO, so an unknown future subclass still lands on its
nearest mapped ancestor, and tests/probe/test_classify.py fails until it gets a row.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Callable

import aiohttp
import aiohttp.client_exceptions
from aiohttp import http_exceptions

from uptime_probe.config.redaction import Redactor
from uptime_probe.probe.model import FailureReason
from uptime_probe.probe.tracing import CONNECTING, HANDSHAKING, JUDGING, RESOLVING, PhaseRecorder

Classified = tuple[FailureReason, str]

# A message is cut here, after redaction: an exception can quote the target (a header line
# the parser rejected, a URL built from extracted values), so its text is never cut first.
MESSAGE_LIMIT = 360
_NO_SECRETS = Redactor(())

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


# aiohttp names the SSL context it used by its repr (`ssl:<ssl.SSLContext object at 0x7f..>`),
# which tells a person nothing; every such repr is dropped from our messages.
_OBJECT_REPR = re.compile(r"\s*(?:ssl:)?<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _first_line(exc: BaseException) -> str:
    text = _OBJECT_REPR.sub("", str(exc)).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _connector_detail(exc: aiohttp.ClientError) -> str:
    """What went wrong connecting, in the OS's or OpenSSL's words, without aiohttp's wrapper."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        reason = getattr(os_error, "reason", None)  # ssl.SSLError's short name
        detail = reason or os_error.strerror or _first_line(os_error)
        return f"{exc.host}:{exc.port}: {detail}"
    return _first_line(exc)


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
    return FailureReason.TLS, f"TLS handshake failed with {_connector_detail(exc)}"


def _dns(exc: aiohttp.ClientError) -> Classified:
    host = getattr(exc, "host", "")
    cause = getattr(exc, "os_error", None)
    if isinstance(cause, OSError) and cause.errno == errno.ETIMEDOUT:
        # The resolver's own bound (probe/resolve.py), shorter than the journey's deadline.
        return FailureReason.DNS, f"DNS lookup of {host!r} timed out ({cause.strerror})"
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
    return FailureReason.UNEXPECTED_STATUS, f"invalid HTTP response: {exc.message}"


def _proxy_status(exc: aiohttp.ClientError) -> Classified:
    assert isinstance(exc, aiohttp.ClientResponseError)
    return classify_status(exc.status), f"proxy answered HTTP {exc.status}"


def _redirects(exc: aiohttp.ClientError) -> Classified:
    assert isinstance(exc, aiohttp.TooManyRedirects)
    hops = len(exc.history)
    return FailureReason.TOO_MANY_REDIRECTS, f"more than {hops - 1} redirects"


def _payload(exc: aiohttp.ClientError) -> Classified:
    # aiohttp wraps a body it could not decode (a corrupt gzip) in the same error as a body
    # the network cut short: the cause tells them apart.
    if isinstance(exc.__cause__, http_exceptions.ContentEncodingError):
        return FailureReason.INVALID_ENCODING, f"the body does not decode: {_first_line(exc)}"
    return FailureReason.CONNECTION_RESET, f"response body incomplete: {_first_line(exc)}"


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
    aiohttp.ClientPayloadError: _payload,
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


def _host_name_error(exc: BaseException) -> str | None:
    """What is wrong with a host name no resolver can look up (`a..b`, a 64-byte label).

    Configured hosts are checked at load, so this one came from a target: an extracted
    value or a redirect. The IDNA codec refuses it wherever it is encoded, before any
    packet: in getaddrinfo (the threaded resolver), in `ssl` (the TLS server name), or in
    yarl (a non-ASCII host), which aiohttp wraps into InvalidURL. None for anything else.
    """
    seen: BaseException | None = exc
    for _ in range(3):  # the error, the cause aiohttp wrapped, and that one's
        if seen is None:
            return None
        if isinstance(seen, UnicodeError) and (
            "idna" in str(seen).lower() or type(seen).__module__.startswith("idna")
        ):
            text = _first_line(seen)
            # "encoding with 'idna' codec failed (UnicodeError: label empty or too long)"
            inner = text[text.find("(") + 1 : text.rfind(")")] if "(" in text else text
            return inner.removeprefix("UnicodeError: ") or "label empty or too long"
        seen = seen.__cause__
    return None


def classify_exception(
    exc: BaseException, phase: str = "", host: str = "", redact: Redactor | None = None
) -> Classified:
    """The reason and a one-line message for an exception raised while running a step.

    `phase` is the recorder's state when the exception hit, so a deadline that expires
    while connecting reads as `connect_timeout`, not `timeout`; `host` is the name being
    resolved then, if any. The message is redacted with `redact` (the check's secrets),
    then cut to MESSAGE_LIMIT.
    """
    reason, message = _classify(exc, phase, host)
    return reason, (redact or _NO_SECRETS).cut(message, MESSAGE_LIMIT)


def _classify(exc: BaseException, phase: str, host: str) -> Classified:
    if isinstance(exc, OSError):
        # First: an aiohttp error that wraps EMFILE is a connector or DNS error by type,
        # and its row would blame the target.
        local = _local_resources(exc)
        if local is not None:
            return local
    bad_name = _host_name_error(exc)
    if bad_name is not None:
        return FailureReason.DNS, f"host name is not a valid DNS name ({bad_name})"
    if isinstance(exc, aiohttp.ClientError):
        for cls in type(exc).__mro__:
            handler = _CLIENT_ERRORS.get(cls)
            if handler is not None:
                return handler(exc)
    if isinstance(exc, TimeoutError):
        if phase == HANDSHAKING:
            return (
                FailureReason.TLS,
                "TLS handshake stalled: TCP connected, no TLS before the deadline",
            )
        if phase == CONNECTING:
            return FailureReason.CONNECT_TIMEOUT, "no connection before the deadline"
        if phase == RESOLVING and host:
            return FailureReason.DNS, f"DNS lookup of {host!r} timed out at the deadline"
        if phase == RESOLVING:
            return FailureReason.DNS, "name resolution did not finish before the deadline"
        return FailureReason.TIMEOUT, "no complete response before the deadline"
    if isinstance(exc, http_exceptions.HttpProcessingError):
        # aiohttp's pure-Python parser raises its own errors (not ClientErrors) for a body
        # it cannot parse after the head, e.g. a bad chunk size: as invalid as a bad head.
        detail = " ".join(str(exc.message).split())
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


def classify_deadline(recorder: PhaseRecorder) -> Classified:
    """A journey deadline that cut a step, told by what the step was doing at that moment."""
    if recorder.state == JUDGING:
        # The answer was in: what ran out of time was judging it (probe/judging.py).
        return FailureReason.TIMEOUT, f"{recorder.judging} did not finish before the deadline"
    return classify_exception(TimeoutError(), recorder.state, recorder.resolving_host)
