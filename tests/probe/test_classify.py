"""Exception or status -> FailureReason: every aiohttp client exception has a row."""

from __future__ import annotations

import asyncio
import errno
import importlib
import pkgutil
import socket
import ssl
from typing import Any

import aiohttp
import aiohttp.client_exceptions
import pytest
from aiohttp import http_exceptions
from aiohttp.client_reqrep import ConnectionKey, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from uptime_probe.config.redaction import Redactor
from uptime_probe.probe import run_check
from uptime_probe.probe.classify import (
    MAPPED_CLIENT_ERRORS,
    MESSAGE_LIMIT,
    classify_exception,
    classify_status,
)
from uptime_probe.probe.model import BUILTIN_REASONS
from uptime_probe.probe.resolve import LookupTimedOut
from uptime_probe.probe.tracing import CONNECTING, IDLE, RESOLVING, TRANSFERRING, WAITING

from .conftest import Target
from .journeys import plan_of, step


def _import_all_aiohttp_modules() -> None:
    """Subclasses defined in modules nobody imported yet would escape the walk."""
    for module in pkgutil.walk_packages(aiohttp.__path__, "aiohttp."):
        try:
            importlib.import_module(module.name)
        except ImportError:  # optional extras (gunicorn worker, ...)
            continue


def _subclasses(root: type) -> set[type]:
    found: set[type] = set()
    pending = [root]
    while pending:
        for cls in pending.pop().__subclasses__():
            if cls not in found:
                found.add(cls)
                pending.append(cls)
    return found


def test_every_aiohttp_client_error_is_mapped() -> None:
    _import_all_aiohttp_modules()
    classes = {aiohttp.ClientError} | {
        cls for cls in _subclasses(aiohttp.ClientError) if cls.__module__.split(".")[0] == "aiohttp"
    }
    unmapped = sorted(
        f"{cls.__module__}.{cls.__qualname__}" for cls in classes - MAPPED_CLIENT_ERRORS
    )
    assert not unmapped, f"add a row to classify._CLIENT_ERRORS for: {', '.join(unmapped)}"
    assert len(classes) >= 30


KEY = ConnectionKey("example.test", 443, True, True, None, None, None, None)
INFO = RequestInfo(
    URL("https://example.test/"),
    "GET",
    CIMultiDictProxy(CIMultiDict()),
    URL("https://example.test/"),
)


def _os_error(code: int) -> OSError:
    return OSError(code, errno.errorcode[code])


def _verify_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    return error


EXCEPTIONS = [
    pytest.param(
        aiohttp.ClientConnectorError(KEY, _os_error(errno.ECONNREFUSED)),
        "connect_refused",
        "connection to example.test:443 refused",
        id="refused",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(KEY, _os_error(errno.EHOSTUNREACH)),
        "connect_refused",
        "cannot connect to example.test:443: EHOSTUNREACH",
        id="unreachable",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(KEY, _os_error(errno.ETIMEDOUT)),
        "connect_timeout",
        "connect to example.test:443 timed out",
        id="syn-timeout",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(KEY, _os_error(errno.ECONNRESET)),
        "connection_reset",
        "connection to example.test:443 reset while connecting",
        id="reset-while-connecting",
    ),
    pytest.param(
        aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(socket.EAI_NONAME, "unknown")),
        "dns",
        "cannot resolve host 'example.test'",
        id="dns",
    ),
    pytest.param(
        aiohttp.ClientConnectorDNSError(KEY, LookupTimedOut("example.test", 2.0)),
        "dns",
        "DNS lookup of 'example.test' timed out (no answer in 2.0s)",
        id="dns-lookup-timed-out",
    ),
    pytest.param(
        aiohttp.ClientConnectorCertificateError(KEY, _verify_error()),
        "tls",
        "TLS certificate rejected: self-signed certificate",
        id="certificate",
    ),
    pytest.param(
        aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError(1, "wrong version number")),
        "tls",
        "TLS handshake failed",
        id="handshake",
    ),
    pytest.param(
        aiohttp.ServerFingerprintMismatch(b"a", b"b", "example.test", 443),
        "tls",
        "certificate fingerprint mismatch",
        id="fingerprint",
    ),
    pytest.param(
        aiohttp.ServerDisconnectedError(),
        "connection_reset",
        "server closed the connection",
        id="disconnected",
    ),
    pytest.param(
        aiohttp.ClientPayloadError("Response payload is not completed"),
        "connection_reset",
        "response body incomplete: Response payload is not completed",
        id="payload",
    ),
    pytest.param(
        aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
        "connection_reset",
        "connection broken: Connection reset by peer",
        id="os-reset",
    ),
    pytest.param(
        aiohttp.ClientOSError(errno.ENETUNREACH, "Network is unreachable"),
        "connect_refused",
        "connection failed: Network is unreachable",
        id="os-unreachable",
    ),
    pytest.param(aiohttp.SocketTimeoutError(), "timeout", "read timed out", id="read-timeout"),
    pytest.param(aiohttp.ServerTimeoutError(), "timeout", "server timed out", id="server-timeout"),
    pytest.param(
        aiohttp.ConnectionTimeoutError(),
        "connect_timeout",
        "connect timed out",
        id="connect-timeout",
    ),
    pytest.param(
        aiohttp.TooManyRedirects(INFO, (None,) * 11),  # type: ignore[arg-type]
        "too_many_redirects",
        "more than 10 redirects",
        id="redirects",
    ),
    pytest.param(
        aiohttp.ClientResponseError(INFO, (), status=400, message="Invalid status line"),
        "unexpected_status",
        "invalid HTTP response: Invalid status line",
        id="parser",
    ),
    pytest.param(
        aiohttp.ClientHttpProxyError(INFO, (), status=407),
        "http_4xx",
        "proxy answered HTTP 407",
        id="proxy-407",
    ),
    pytest.param(
        aiohttp.ClientHttpProxyError(INFO, (), status=502),
        "http_5xx",
        "proxy answered HTTP 502",
        id="proxy-502",
    ),
    pytest.param(
        aiohttp.InvalidUrlClientError("http://exa mple/"),
        "extraction_failed",
        "request URL is invalid",
        id="invalid-url",
    ),
    pytest.param(
        aiohttp.NonHttpUrlRedirectClientError("ftp://example.test/"),
        "unexpected_status",
        "redirect to a non-HTTP URL: ftp://example.test/",
        id="redirect-ftp",
    ),
    # The probe's own host out of descriptors, buffers or memory: never the target's fault,
    # and checked before any other reading of the errno (most specific first).
    pytest.param(
        aiohttp.ClientConnectorError(KEY, _os_error(errno.EMFILE)),
        "local_resources",
        "cannot open a connection to example.test:443: this process is out of file descriptors",
        id="emfile-connecting",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(KEY, _os_error(errno.ENFILE)),
        "local_resources",
        "the system is out of file descriptors",
        id="enfile-connecting",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(KEY, _os_error(errno.ENOBUFS)),
        "local_resources",
        "the probe host is out of memory",
        id="enobufs-connecting",
    ),
    pytest.param(
        aiohttp.ClientOSError(errno.EMFILE, "Too many open files"),
        "local_resources",
        "this process is out of file descriptors",
        id="emfile-os",
    ),
    pytest.param(
        OSError(errno.EMFILE, "Too many open files"),
        "local_resources",
        "this process is out of file descriptors",
        id="emfile-raw",
    ),
    pytest.param(
        aiohttp.ClientConnectorDNSError(KEY, _os_error(errno.EMFILE)),
        "local_resources",
        "cannot resolve example.test: this process is out of file descriptors",
        id="emfile-resolving",
    ),
    pytest.param(aiohttp.ClientError("odd"), "connection_reset", "client error: odd", id="base"),
    pytest.param(ssl.SSLError(1, "decryption failed"), "tls", "TLS error", id="bare-ssl-error"),
    pytest.param(
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        "dns",
        "cannot resolve host",
        id="bare-gaierror",
    ),
    pytest.param(
        ConnectionRefusedError(), "connect_refused", "connection refused", id="refused-raw"
    ),
    pytest.param(ConnectionResetError(), "connection_reset", "connection broken", id="reset-raw"),
    pytest.param(EOFError(), "connection_reset", "connection broken", id="eof"),
    pytest.param(OSError(errno.EIO, "I/O"), "connection_reset", "network error", id="oserror"),
    pytest.param(ValueError("bug"), "internal", "internal error (ValueError): bug", id="bug"),
]


@pytest.mark.parametrize(("exc", "reason", "message"), EXCEPTIONS)
def test_exception_reason(exc: BaseException, reason: str, message: str) -> None:
    found, text = classify_exception(exc)
    assert found == reason
    assert message in text
    assert "\n" not in text
    assert len(text) <= 300 + 60


@pytest.mark.parametrize(
    ("phase", "reason"),
    [
        (CONNECTING, "connect_timeout"),
        (RESOLVING, "dns"),
        (WAITING, "timeout"),
        (TRANSFERRING, "timeout"),
        (IDLE, "timeout"),
        ("", "timeout"),
    ],
)
def test_timeout_reason_depends_on_the_phase(phase: str, reason: str) -> None:
    assert classify_exception(TimeoutError(), phase)[0] == reason


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (429, "rate_limited"),
        (400, "http_4xx"),
        (404, "http_4xx"),
        (499, "http_4xx"),
        (500, "http_5xx"),
        (503, "http_5xx"),
        (599, "http_5xx"),
        (200, "unexpected_status"),
        (204, "unexpected_status"),
        (302, "unexpected_status"),
        (101, "unexpected_status"),
    ],
)
def test_status_reason(status: int, reason: str) -> None:
    assert classify_status(status) == reason


def test_the_builtin_reasons_are_exactly_the_issues_list() -> None:
    assert set(BUILTIN_REASONS) == {
        "dns", "connect_refused", "connect_timeout", "tls", "timeout", "connection_reset",
        "too_many_redirects", "http_4xx", "http_5xx", "rate_limited", "unexpected_status",
        "invalid_json", "invalid_encoding", "body_too_large", "schema_mismatch", "assertion_failed",
        "extraction_failed", "poll_timeout", "local_resources", "internal",
        # issue 14: the stream step's own
        "first_event_timeout", "stream_stalled", "empty_answer", "stream_incomplete",
        "stream_error", "invalid_event", "not_a_stream",
        # issue 15: the dns, certificate and websocket kinds' own
        "cert_expiring", "dns_rcode", "dns_no_answer", "ws_closed", "no_message",
        # issue 16: the browser kind's own
        "element_missing", "page_error",
    }  # fmt: skip


def test_kind_reasons_are_builtin_and_apart_from_the_common_ones() -> None:
    from uptime_probe.probe.model import COMMON_REASONS, KIND_REASONS

    kind_only = {reason for reasons in KIND_REASONS.values() for reason in reasons}
    assert kind_only <= set(BUILTIN_REASONS)
    assert set(COMMON_REASONS) == set(BUILTIN_REASONS) - kind_only
    assert set(KIND_REASONS["stream"]) == {
        "first_event_timeout", "stream_stalled", "empty_answer", "stream_incomplete",
        "stream_error", "invalid_event", "not_a_stream",
    }  # fmt: skip


# --- CancelledError is never classified, never swallowed -----------------------------------


async def test_run_cancelled_mid_step_propagates_cancelled_error(target: Target) -> None:
    task = asyncio.create_task(run_check(plan_of(step(target.url + "/hang"), timeout="30s")))
    await target.hanging.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_cancelled_while_polling_propagates_cancelled_error(target: Target) -> None:
    plan = plan_of(
        step(
            target.url + "/task",
            poll={"every": "5s", "within": "20s"},
            expect={"json": [{"query": "status", "equals": "completed"}]},
        ),
        timeout="30s",
    )
    task = asyncio.create_task(run_check(plan))
    await target.polled.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(ssl.SSLError, id="ssl"),
        pytest.param(lambda text: OSError(errno.EIO, text), id="oserror"),
        pytest.param(
            lambda text: http_exceptions.BadHttpMessage(text), id="invalid-http-after-the-head"
        ),
    ],
)
def test_an_exception_quoting_the_target_is_redacted_before_it_is_cut(make: Any) -> None:
    """An exception can quote the target (the line the parser rejected): the message is
    cut after redaction, so not even the start of a secret across the cut is kept."""
    secret = "tok-Zq9xVal42AbCdEf"
    redact = Redactor([secret])
    for padding in range(MESSAGE_LIMIT - 60, MESSAGE_LIMIT + 2):
        _, text = classify_exception(make("." * padding + secret + "," * 50), redact=redact)
        assert not any(secret[i : i + 5] in text for i in range(len(secret) - 4)), text
        assert len(text) <= MESSAGE_LIMIT + len("[REDACTED]")
