"""Sending one notification: bounded attempts, exponential backoff with jitter.

What is retried, and what is not::

    retried     connection errors (refused, reset, DNS), timeouts, HTTP 5xx, HTTP 429
    not         other 4xx (the request is wrong: retrying sends the same wrong request),
                3xx (redirects are not followed: a POST must not turn into a GET),
                an invalid URL, a TLS certificate the receiver's host does not match

Each attempt is bounded by the notifier's `timeout` as a whole (connect, send, read), so
a receiver that accepts the connection and never answers holds a worker for at most
`timeout` per attempt, `attempts * timeout + sum(delays)` in all.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from uptime_probe.alerting.notice import HttpRequest

RESPONSE_READ_LIMIT = 64 * 1024  # a receiver's answer is read (to reuse the connection), not kept


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` in all; the wait before retry n is `first_delay * 2**(n-1)`, capped, jittered.

    Defaults: 3 attempts, waits of about 0.5 s then 1 s, never more than `max_delay`.
    A 429's `Retry-After` lengthens the wait up to `max_delay`, never beyond.
    """

    attempts: int = 3
    first_delay: float = 0.5
    max_delay: float = 2.0
    jitter: float = 0.2  # the wait is scaled by a random factor in [1 - jitter, 1 + jitter]

    def delay(
        self, retry: int, retry_after: float | None = None, rand: float | None = None
    ) -> float:
        base: float = self.first_delay * 2.0 ** (retry - 1)
        if retry_after is not None:
            base = max(base, retry_after)
        spread = random.random() if rand is None else rand
        return min(self.max_delay, base * (1 - self.jitter + 2 * self.jitter * spread))


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    ok: bool
    retryable: bool
    error: str = ""  # a category and a short detail; never a URL, a header or a body
    http_status: int | None = None
    retry_after: float | None = None


# Most specific first; the first class the exception is an instance of decides.
# tests/alerting/test_delivery.py fails when an aiohttp.ClientError subclass falls
# through to the bare ClientError line.
CLIENT_ERRORS: tuple[tuple[type[aiohttp.ClientError], str, bool], ...] = (
    (aiohttp.InvalidURL, "invalid_url", False),
    (aiohttp.NonHttpUrlClientError, "invalid_url", False),
    (aiohttp.RedirectClientError, "invalid_url", False),
    (aiohttp.ClientConnectorCertificateError, "tls_certificate", False),
    (aiohttp.ServerFingerprintMismatch, "tls_certificate", False),
    (aiohttp.ClientSSLError, "tls", True),
    (aiohttp.ClientConnectorDNSError, "dns", True),
    (aiohttp.ClientProxyConnectionError, "proxy", True),
    (aiohttp.ClientHttpProxyError, "proxy", True),
    (aiohttp.ClientConnectorError, "connect_failed", True),
    (aiohttp.ServerTimeoutError, "timeout", True),
    (aiohttp.ServerDisconnectedError, "disconnected", True),
    (aiohttp.ClientConnectionResetError, "connection_reset", True),
    (aiohttp.ClientOSError, "connection_error", True),
    (aiohttp.ClientConnectionError, "connection_error", True),
    (aiohttp.ClientPayloadError, "connection_error", True),
    (aiohttp.UploadAbortedError, "connection_error", True),
    (aiohttp.TooManyRedirects, "redirect", False),
    (aiohttp.ContentTypeError, "bad_response", False),
    (aiohttp.WSServerHandshakeError, "bad_response", False),
    (aiohttp.ClientResponseError, "bad_response", False),
    (aiohttp.ClientError, "client_error", True),
)


def classify_error(exc: aiohttp.ClientError) -> tuple[str, bool]:
    """(category, retryable) for an aiohttp error."""
    for kind, category, retryable in CLIENT_ERRORS:
        if isinstance(exc, kind):
            return category, retryable
    raise AssertionError("unreachable: aiohttp.ClientError is the last entry")


def _error_detail(exc: aiohttp.ClientError) -> str:
    """`connect_failed: Connection refused`: the OS's words, never the URL str(exc) may hold."""
    category, _ = classify_error(exc)
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and (os_error.errno or os_error.strerror):
        return f"{category}: {_os_words(os_error)}"
    return f"{category}: {type(exc).__name__}"


def _os_words(error: OSError) -> str:
    """`Connection refused`: the errno's words (asyncio's strerror may name the address)."""
    if error.errno:
        return os.strerror(error.errno)
    return error.strerror or type(error).__name__


def classify_status(status: int) -> tuple[bool, bool]:
    """(ok, retryable) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    return False, status == 429 or status >= 500


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: the cap applies anyway
    return seconds if seconds >= 0 else None


async def attempt(
    session: aiohttp.ClientSession, request: HttpRequest, timeout: float
) -> AttemptOutcome:
    """One try; never raises but on cancellation."""
    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=dict(request.headers),
                allow_redirects=False,
            ) as response:
                await response.content.read(RESPONSE_READ_LIMIT)
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
    except TimeoutError:
        return AttemptOutcome(False, True, f"timeout: no answer within {timeout:g}s")
    except aiohttp.ClientError as exc:
        _category, retryable = classify_error(exc)
        return AttemptOutcome(False, retryable, _error_detail(exc))
    except OSError as exc:
        return AttemptOutcome(False, True, f"connection_error: {_os_words(exc)}")
    except ValueError as exc:  # a URL or header value rejected before anything was sent
        return AttemptOutcome(False, False, f"invalid_request: {type(exc).__name__}")
    ok, retryable = classify_status(status)
    if ok:
        return AttemptOutcome(True, False, http_status=status)
    return AttemptOutcome(False, retryable, f"http_status: {status}", status, retry_after)


OnRetry = Callable[[int, AttemptOutcome, float], None]


async def deliver(
    session: aiohttp.ClientSession,
    request: HttpRequest,
    *,
    timeout: float,
    policy: RetryPolicy,
    on_retry: OnRetry | None = None,
) -> tuple[AttemptOutcome, int]:
    """An HTTP notification: `attempt` under `deliver_with`'s rules."""
    return await deliver_with(
        lambda: attempt(session, request, timeout), policy=policy, on_retry=on_retry
    )


async def deliver_with(
    try_once: Callable[[], Awaitable[AttemptOutcome]],
    *,
    policy: RetryPolicy,
    on_retry: OnRetry | None = None,
) -> tuple[AttemptOutcome, int]:
    """Attempt until sent, a non-retryable failure, or `policy.attempts` tries.

    Returns the last outcome and the number of attempts made; `on_retry(attempt, outcome,
    delay)` is called before each wait. `try_once` never raises but on cancellation.
    """
    number = 1
    while True:
        outcome = await try_once()
        if outcome.ok or not outcome.retryable or number >= policy.attempts:
            return outcome, number
        delay = policy.delay(number, outcome.retry_after)
        if on_retry is not None:
            on_retry(number, outcome, delay)
        await asyncio.sleep(delay)
        number += 1
