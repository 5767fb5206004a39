"""One HTTP attempt of a step: render, send, read a bounded body, judge, extract."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography import x509
from yarl import URL

from uptime_probe.config.model import MAX_REDIRECTS
from uptime_probe.config.template import render_json
from uptime_probe.probe.assertions import InvalidJson, ResponseView
from uptime_probe.probe.classify import classify_exception, classify_status
from uptime_probe.probe.model import AssertionOutcome, FailureReason, Status
from uptime_probe.probe.plan import StepPlan
from uptime_probe.probe.tracing import PhaseRecorder, TimedConnector

SAMPLE_BYTES = 2048
_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    pass


@dataclass(slots=True)
class Attempt:
    """The outcome of one request of a step (a polled step makes several)."""

    status: Status
    reason: str | None = None
    message: str = ""
    http_status: int | None = None
    body: bytes = b""
    body_bytes: int = 0
    assertions: tuple[AssertionOutcome, ...] = ()
    extracted: dict[str, str] = field(default_factory=dict)
    tls_not_after: float | None = None
    duration: float = 0.0
    ended: float = 0.0  # perf_counter() when the answer was in (or the attempt gave up)


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


async def _read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit and not response.headers.get("Content-Encoding"):
        raise BodyTooLarge(f"response declares {declared} bytes, above max_body {limit}")
    chunks: list[bytes] = []
    total = 0
    # content yields decoded bytes, so a compressed bomb is stopped on its decoded size.
    async for chunk in response.content.iter_chunked(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(f"body exceeds max_body {limit} bytes (decoded)")
        chunks.append(chunk)
    return b"".join(chunks)


# What aiohttp refuses in a header value (it raises ValueError while sending).
_FORBIDDEN_HEADER_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_value(name: str, value: str) -> str:
    if _FORBIDDEN_HEADER_CHARS.search(value):
        raise ValueError(f"request header {name} would contain a control character")
    return value


def _request_arguments(plan: StepPlan, values: Mapping[str, str]) -> dict[str, Any]:
    """The request's arguments; ValueError when values (extracted ones) make it unsendable."""
    request = plan.config.request
    arguments: dict[str, Any] = {
        "headers": {
            name: _header_value(name, template.render(values)) for name, template in plan.headers
        },
        "allow_redirects": plan.config.follow_redirects,
        # aiohttp raises on the max_redirects-th redirect response, so it follows one fewer.
        "max_redirects": MAX_REDIRECTS + 1,
        "ssl": plan.ssl,
    }
    if request.body is not None:
        arguments["data"] = request.body.render(values).encode()
    elif request.json_body is not None:
        arguments["json"] = render_json(request.json_body, values)
    return arguments


async def perform_attempt(
    session: aiohttp.ClientSession,
    connector: TimedConnector,
    plan: StepPlan,
    values: Mapping[str, str],
    recorder: PhaseRecorder,
) -> Attempt:
    """Send the step's request once and judge the answer. Never raises but on cancel."""
    config = plan.config
    started = time.perf_counter()
    connector.recorder = recorder
    connector.peer_certificate = None
    url = config.request.url.render(values)
    try:
        arguments = _request_arguments(plan, values)
    except (ValueError, UnicodeError) as exc:
        # Values a target sent back (a line break, a lone surrogate) cannot be sent on.
        return Attempt(
            Status.DOWN,
            FailureReason.EXTRACTION_FAILED,
            f"cannot build the request: {plan.redact.cut(str(exc), 200)}",
            duration=time.perf_counter() - started,
        )
    try:
        async with session.request(
            config.request.method, url, trace_request_ctx=recorder, **arguments
        ) as response:
            not_after = certificate_not_after(connector.peer_certificate)
            try:
                body = (
                    b""
                    if config.request.method == "HEAD"
                    else await _read_body(response, config.max_body)
                )
            except BodyTooLarge as exc:
                recorder.body_done()
                return Attempt(
                    Status.DOWN,
                    FailureReason.BODY_TOO_LARGE,
                    str(exc),
                    http_status=response.status,
                    tls_not_after=not_after,
                    duration=time.perf_counter() - started,
                )
            recorder.body_done()
            attempt = judge(plan, response.status, response.headers, body)
            attempt.tls_not_after = not_after
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError):
            raise
        reason, message = classify_exception(exc, recorder.state, plan.redact)
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
    # The answer's last bytes arrived at `last_data_at`; judging it is not the target's time.
    attempt.ended = recorder.last_data_at or time.perf_counter()
    attempt.duration = attempt.ended - started
    return attempt


def judge(plan: StepPlan, status: int, headers: Mapping[str, str], body: bytes) -> Attempt:
    """Status, then assertions in order, then extraction; the first critical failure decides."""
    expect = plan.config.expect

    def attempt(
        outcome: Status,
        reason: str | None,
        message: str,
        outcomes: Sequence[AssertionOutcome] = (),
        extracted: dict[str, str] | None = None,
    ) -> Attempt:
        return Attempt(
            outcome,
            reason,
            message,
            http_status=status,
            body=body,
            body_bytes=len(body),
            assertions=tuple(outcomes),
            extracted=extracted or {},
        )

    if status not in expect.status:
        reason = classify_status(status)
        retry = headers.get("Retry-After")
        hint = (
            f" (Retry-After: {plan.redact.cut(retry, 20)})"
            if reason is FailureReason.RATE_LIMITED and retry
            else ""
        )
        return attempt(Status.DOWN, reason, f"HTTP {status}, expected {expect.status}{hint}")
    view = ResponseView(status, headers, body)
    outcomes: list[AssertionOutcome] = []
    try:
        for assertion in plan.assertions:
            outcomes.append(assertion(view))
        extracted = _extract(plan, view)
    except InvalidJson as exc:
        return attempt(Status.DOWN, FailureReason.INVALID_JSON, str(exc), outcomes)
    failed = [o for o in outcomes if not o.passed]
    critical = next((o for o in failed if o.severity == "critical"), None)
    if critical is not None:
        return attempt(Status.DOWN, critical.reason, critical.message, outcomes)
    if isinstance(extracted, str):
        return attempt(Status.DOWN, FailureReason.EXTRACTION_FAILED, extracted, outcomes)
    if failed:
        message = "; ".join(o.message for o in failed)
        return attempt(Status.DEGRADED, None, message, outcomes, extracted)
    return attempt(Status.UP, None, f"HTTP {status}", outcomes, extracted)


def _extract(plan: StepPlan, view: ResponseView) -> dict[str, str] | str:
    """Extracted values, or a message saying which one could not be found."""
    values: dict[str, str] = {}
    for name, query in plan.config.extract.items():
        document = view.json()
        try:
            value = query.search(document)
        except Exception as exc:  # JMESPath raises several types for runtime type errors
            return f"extract {name}: query {query} failed ({plan.redact.cut(str(exc), 100)})"
        if value is None:
            return f"extract {name}: query {query} found nothing"
        values[name] = value if isinstance(value, str) else json.dumps(value)
    return values
