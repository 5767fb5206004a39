"""One HTTP attempt of a step: render, send, read a bounded body, judge, extract."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography import x509
from yarl import URL

from uptime_probe.config.model import MAX_REDIRECTS
from uptime_probe.config.template import render_json
from uptime_probe.probe.assertions import Verdict
from uptime_probe.probe.classify import classify_exception
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
            f"cannot build the request: {str(exc)[:200]}",
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
            judged = await plan.judge.judge(response.status, response.headers, body, recorder)
            attempt = _attempt_of(judged.verdict, response.status, body, not_after)
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError):
            raise
        reason, message = classify_exception(exc, recorder.state)
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
    # The answer's last bytes arrived at `last_data_at`: waiting for the loop to come back
    # to it is not the target's time. Judging it in a worker is the run's: it ends after.
    answered = recorder.last_data_at or time.perf_counter()
    attempt.duration = answered - started
    attempt.ended = answered + judged.off_loop_seconds
    return attempt


def _attempt_of(verdict: Verdict, status: int, body: bytes, not_after: float | None) -> Attempt:
    return Attempt(
        verdict.status,
        verdict.reason,
        verdict.message,
        http_status=status,
        body=body,
        body_bytes=len(body),
        assertions=verdict.assertions,
        extracted=dict(verdict.extracted),
        tls_not_after=not_after,
    )
