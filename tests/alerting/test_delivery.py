"""One notification's attempts: what is retried, how long it waits, how long it may take."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.conftest import ServeApp
from uptime_probe.alerting.delivery import (
    CLIENT_ERRORS,
    AttemptOutcome,
    RetryPolicy,
    classify_error,
    classify_status,
    deliver,
)
from uptime_probe.alerting.notice import HttpRequest

from .receiver import Receiver, refused_url

FAST = RetryPolicy(attempts=3, first_delay=0.01, max_delay=0.05)


def all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(all_subclasses(sub))
    return found


def test_every_aiohttp_client_error_is_classified_on_purpose() -> None:
    listed = {kind for kind, _category, _retry in CLIENT_ERRORS}
    unmapped = []
    for error in all_subclasses(aiohttp.ClientError):
        if not error.__module__.startswith("aiohttp"):
            continue
        first = next(kind for kind, _c, _r in CLIENT_ERRORS if issubclass(error, kind))
        if first is aiohttp.ClientError and error not in listed:
            unmapped.append(error.__name__)
    assert not unmapped, f"aiohttp errors falling through to the catch-all: {unmapped}"


@pytest.mark.parametrize(
    ("error", "category", "retryable"),
    [
        (
            aiohttp.ClientConnectorError(None, OSError(111, "Connection refused")),
            "connect_failed",
            True,
        ),  # type: ignore[arg-type]
        (aiohttp.ServerDisconnectedError(), "disconnected", True),
        (aiohttp.ConnectionTimeoutError(), "timeout", True),
        (aiohttp.InvalidURL("not a url"), "invalid_url", False),
        (aiohttp.ClientPayloadError(), "connection_error", True),
    ],
)
def test_classify_error(error: aiohttp.ClientError, category: str, retryable: bool) -> None:
    assert classify_error(error) == (category, retryable)


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [
        (200, True, False),
        (202, True, False),
        (204, True, False),
        (301, False, False),
        (400, False, False),
        (401, False, False),
        (404, False, False),
        (429, False, True),
        (500, False, True),
        (503, False, True),
    ],
)
def test_classify_status(status: int, ok: bool, retryable: bool) -> None:
    assert classify_status(status) == (ok, retryable)


@pytest.mark.parametrize(
    ("retry", "retry_after", "rand", "delay"),
    [
        (1, None, 0.5, 0.5),
        (2, None, 0.5, 1.0),
        (3, None, 0.5, 2.0),
        (6, None, 0.5, 2.0),  # capped
        (1, None, 0.0, 0.4),  # jitter: -20%
        (1, None, 1.0, 0.6),  # jitter: +20%
        (3, None, 1.0, 2.0),  # jitter never lifts it past the cap
        (1, 1.5, 0.5, 1.5),  # Retry-After lengthens the wait...
        (1, 3600, 0.5, 2.0),  # ...never past the cap
    ],
)
def test_backoff_doubles_with_jitter_and_is_bounded(
    retry: int, retry_after: float | None, rand: float, delay: float
) -> None:
    assert RetryPolicy().delay(retry, retry_after, rand) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("status", "attempts", "ok"),
    [
        (200, 1, True),
        (400, 1, False),
        (404, 1, False),
        (302, 1, False),
        (429, 3, False),
        (500, 3, False),
        (503, 3, False),
    ],
)
async def test_attempts_by_answer(
    serve_app: ServeApp, status: int, attempts: int, ok: bool
) -> None:
    receiver = Receiver(status=status, headers={"Location": "/elsewhere"} if status == 302 else {})
    url = await serve_app(receiver.app())
    retries: list[tuple[int, AttemptOutcome]] = []
    async with aiohttp.ClientSession() as session:
        outcome, made = await deliver(
            session,
            HttpRequest("POST", f"{url}/hook", {"Content-Type": "application/json"}, b"{}"),
            timeout=2,
            policy=FAST,
            on_retry=lambda n, o, _d: retries.append((n, o)),
        )
    assert (outcome.ok, made, len(receiver.requests)) == (ok, attempts, attempts)
    assert [n for n, _ in retries] == list(range(1, attempts))
    if not ok:
        assert outcome.error == f"http_status: {status}"
    assert {r.path for r in receiver.requests} == {"/hook"}, "redirects are not followed"


async def test_refused_connection_is_retried_then_given_up() -> None:
    async with aiohttp.ClientSession() as session:
        outcome, made = await deliver(
            session, HttpRequest("POST", refused_url(), {}, b"{}"), timeout=2, policy=FAST
        )
    assert (outcome.ok, outcome.retryable, made) == (False, True, 3)
    assert outcome.error.startswith("connect_failed"), outcome.error


async def test_hanging_receiver_holds_an_attempt_no_longer_than_the_timeout(
    serve_app: ServeApp,
) -> None:
    receiver = Receiver(hang=True)
    url = await serve_app(receiver.app())
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        outcome, made = await deliver(
            session,
            HttpRequest("POST", url, {}, b"{}"),
            timeout=0.2,
            policy=RetryPolicy(attempts=2, first_delay=0.01, max_delay=0.01),
        )
    elapsed = time.monotonic() - started
    assert (outcome.ok, made, len(receiver.requests)) == (False, 2, 2)
    assert outcome.error == "timeout: no answer within 0.2s"
    assert 0.4 <= elapsed < 1.5, elapsed


async def test_retry_after_is_honoured_within_the_cap(serve_app: ServeApp) -> None:
    receiver = Receiver(status=429, headers={"Retry-After": "0.3"})
    url = await serve_app(receiver.app())
    async with aiohttp.ClientSession() as session:
        await deliver(
            session,
            HttpRequest("POST", url, {}, b"{}"),
            timeout=2,
            policy=RetryPolicy(attempts=2, first_delay=0.01, max_delay=1.0, jitter=0.0),
        )
    first, second = receiver.requests
    assert second.at - first.at >= 0.3
