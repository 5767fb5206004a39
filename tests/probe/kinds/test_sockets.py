"""The standard library's network errors -> our reasons, for the kinds with own sockets."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

import pytest

from uptime_probe.config.redaction import Redactor
from uptime_probe.probe.classify import MESSAGE_LIMIT
from uptime_probe.probe.kinds.sockets import (
    CONNECTING,
    EXCHANGING,
    HANDSHAKING,
    RESOLVING,
    SOCKET_ERRORS,
    Progress,
    classify_socket_error,
)

NO_SECRETS = Redactor(())


def _subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    pending = [root]
    while pending:
        for cls in pending.pop().__subclasses__():
            if cls not in found:
                found.add(cls)
                pending.append(cls)
    return found


def test_every_error_of_sockets_tls_and_streams_has_a_row() -> None:
    """What a socket, the ssl module and asyncio's streams raise; each with its own row,
    so a new one fails here instead of landing on a generic ancestor unseen."""
    raised = (
        {ConnectionError, TimeoutError, OSError, EOFError, socket.gaierror, socket.herror}
        | _subclasses(ConnectionError)
        | {cls for cls in vars(ssl).values() if isinstance(cls, type) and issubclass(cls, OSError)}
        | {asyncio.IncompleteReadError, asyncio.LimitOverrunError}
    )
    stdlib = ("builtins", "ssl", "_ssl", "socket", "_socket", "asyncio.exceptions")
    raised = {cls for cls in raised if cls.__module__ in stdlib}
    mapped = {cls for cls, _handler in SOCKET_ERRORS}
    assert not sorted(cls.__qualname__ for cls in raised - mapped)
    assert len(raised) >= 17


def test_rows_run_most_specific_first() -> None:
    """A row never follows one of its ancestors, where it could never be reached."""
    classes = [cls for cls, _handler in SOCKET_ERRORS]
    for position, cls in enumerate(classes):
        ancestors = [earlier for earlier in classes[:position] if issubclass(cls, earlier)]
        assert not ancestors, f"{cls.__name__} is shadowed by {ancestors[0].__name__}"


def _verify_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "certificate has expired"
    return error


@pytest.mark.parametrize(
    ("exc", "stage", "reason", "message"),
    [
        (_verify_error(), HANDSHAKING, "tls", "TLS certificate of h:1 rejected: certificate has expired"),
        (ssl.SSLError(1, "wrong version number"), HANDSHAKING, "tls",
         "TLS handshake with h:1 failed: wrong version number"),
        (ssl.SSLEOFError(8, "EOF"), EXCHANGING, "connection_reset",
         "TLS connection to h:1 broke: the peer closed the connection"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), RESOLVING, "dns",
         "cannot resolve h:1: [Errno -2] Name or service not known"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), CONNECTING, "connect_refused",
         "connection refused by h:1: [Errno 111] refused"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), EXCHANGING, "connection_reset",
         "connection to h:1 reset"),
        (TimeoutError(errno.ETIMEDOUT, "timed out"), CONNECTING, "connect_timeout",
         "connect to h:1 timed out"),
        (TimeoutError(errno.ETIMEDOUT, "timed out"), HANDSHAKING, "tls",
         "TLS handshake with h:1 timed out"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), CONNECTING, "connect_refused",
         "cannot connect to h:1: [Errno 113] No route to host"),
        (OSError(errno.EIO, "I/O error"), EXCHANGING, "connection_reset",
         "connection to h:1 broken: [Errno 5] I/O error"),
        (asyncio.IncompleteReadError(b"", 10), EXCHANGING, "connection_reset",
         "h:1 closed the connection"),
        (asyncio.IncompleteReadError(b"", 10), HANDSHAKING, "tls",
         "h:1 closed the connection during the TLS handshake"),
    ],
)  # fmt: skip
def test_error_reason(exc: BaseException, stage: str, reason: str, message: str) -> None:
    progress = Progress("h:1")
    progress.stage = stage
    assert classify_socket_error(exc, progress, NO_SECRETS) == (reason, message)


def test_anything_else_is_not_ours_to_classify() -> None:
    assert classify_socket_error(ValueError("bug"), Progress("h:1"), NO_SECRETS) is None


def test_a_message_is_redacted_before_it_is_cut() -> None:
    """An error can quote what the target sent; a secret straddling the cut goes whole."""
    secret = "s3cr3t-t0ken-value"
    detail = "x" * (MESSAGE_LIMIT - 40) + secret + "y" * 100  # the secret straddles the cut
    progress = Progress("h:1")
    progress.stage = HANDSHAKING
    reason, message = classify_socket_error(
        ssl.SSLError(1, detail), progress, Redactor([secret])
    ) or ("", "")
    assert reason == "tls"
    assert "s3cr3t" not in message
    assert "[REDACTED]" in message
    assert len(message) <= MESSAGE_LIMIT + len("[REDACTED]")
