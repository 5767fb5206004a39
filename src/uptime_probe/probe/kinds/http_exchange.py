"""What every HTTP-based kind (`request`, `stream`) does the same way around its exchange.

Building the request from the step and the run's values, opening it on the run's shared
session, judging the status line, and turning a transport exception into an attempt.
Each kind then reads and judges the body its own way.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography import x509
from yarl import URL

from uptime_probe.config.steps import MAX_REDIRECTS, Expect, HttpStepBase
from uptime_probe.config.template import render_json
from uptime_probe.probe.classify import classify_exception, classify_status
from uptime_probe.probe.kinds.base import Attempt, RunContext
from uptime_probe.probe.model import FailureReason, Status
from uptime_probe.probe.plan import StepPlan
from uptime_probe.probe.tracing import TimedConnector


def certificate_not_after(der: bytes | None) -> float | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except ValueError:
        return None


async def fetch_certificate_not_after(url: URL, timeout: float) -> float | None:
    """The expiry of the certificate a host presents, without verifying it.

    Used after verification failed, so an expired or wrong-host certificate still
    reports when it expires.
    """
    if url.scheme != "https" or url.host is None or timeout <= 0:
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to read the certificate, never to trust it
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                url.host, url.port or 443, ssl=context, server_hostname=url.host
            )
            try:
                ssl_object = writer.get_extra_info("ssl_object")
                der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            finally:
                writer.close()
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    return certificate_not_after(der)


# What aiohttp refuses in a header value (it raises ValueError while sending).
_FORBIDDEN_HEADER_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_value(name: str, value: str) -> str:
    if _FORBIDDEN_HEADER_CHARS.search(value):
        raise ValueError(f"request header {name} would contain a control character")
    return value


def request_arguments(plan: StepPlan, values: Mapping[str, str]) -> dict[str, Any]:
    """The request's arguments; ValueError when values (extracted ones) make it unsendable."""
    config = plan.config
    assert isinstance(config, HttpStepBase)
    request = config.http_request
    arguments: dict[str, Any] = {
        "headers": {
            name: _header_value(name, template.render(values)) for name, template in plan.headers
        },
        "allow_redirects": config.follow_redirects,
        # aiohttp raises on the max_redirects-th redirect response, so it follows one fewer.
        "max_redirects": MAX_REDIRECTS + 1,
        "ssl": plan.ssl,
    }
    if request.body is not None:
        arguments["data"] = request.body.render(values).encode()
    elif request.json_body is not None:
        arguments["json"] = render_json(request.json_body, values)
    return arguments


@dataclass(slots=True)
class Exchange:
    """One HTTP exchange made ready: the run's session, the rendered URL and arguments."""

    session: aiohttp.ClientSession
    connector: TimedConnector
    method: str
    url: str
    arguments: dict[str, Any]


def prepare_exchange(
    plan: StepPlan, values: Mapping[str, str], run: RunContext, started: float
) -> Exchange | Attempt:
    """The exchange to send, or the down attempt saying why it cannot be sent."""
    config = plan.config
    assert isinstance(config, HttpStepBase)
    try:
        session, connector = run.http()
    except Exception as exc:  # building a session cannot fail on the target's account
        reason, message = classify_exception(exc)
        return Attempt(Status.DOWN, reason, message, duration=time.perf_counter() - started)
    connector.recorder = run.recorder
    connector.peer_certificate = None
    request = config.http_request
    url = request.url.render(values)
    try:
        arguments = request_arguments(plan, values)
    except (ValueError, UnicodeError) as exc:
        # Values a target sent back (a line break, a lone surrogate) cannot be sent on.
        return Attempt(
            Status.DOWN,
            FailureReason.EXTRACTION_FAILED,
            f"cannot build the request: {str(exc)[:200]}",
            duration=time.perf_counter() - started,
        )
    arguments["trace_request_ctx"] = run.recorder
    return Exchange(session, connector, request.method, url, arguments)


async def transport_failure(
    exc: BaseException, run: RunContext, url: str, started: float
) -> Attempt:
    """The down attempt for an exception raised by the exchange (never CancelledError)."""
    reason, message = classify_exception(exc, run.recorder.state)
    not_after = None
    if reason is FailureReason.TLS:
        not_after = await fetch_certificate_not_after(URL(url), timeout=2.0)
    return Attempt(
        Status.DOWN,
        reason,
        message,
        tls_not_after=not_after,
        duration=time.perf_counter() - started,
    )


def status_failure(
    expect: Expect, status: int, headers: Mapping[str, str]
) -> tuple[FailureReason, str] | None:
    """The reason and message when the status is not one the step expects, else None."""
    if status in expect.status:
        return None
    reason = classify_status(status)
    retry = headers.get("Retry-After")
    hint = f" (Retry-After: {retry[:20]})" if reason is FailureReason.RATE_LIMITED and retry else ""
    return reason, f"HTTP {status}, expected {expect.status}{hint}"
