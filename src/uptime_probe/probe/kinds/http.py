"""The `request` kind: one HTTP exchange. Render, send, read a bounded body, judge, extract."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence

import aiohttp

from uptime_probe.config.steps import HttpStepBase, RequestStep
from uptime_probe.probe.assertions import InvalidJson, ResponseView
from uptime_probe.probe.kinds.base import Attempt, RunContext
from uptime_probe.probe.kinds.http_exchange import (
    certificate_not_after,
    prepare_exchange,
    status_failure,
    transport_failure,
)
from uptime_probe.probe.model import AssertionOutcome, FailureReason, Status
from uptime_probe.probe.plan import StepPlan

_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    pass


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


class RequestKind:
    figures = None

    async def attempt(self, plan: StepPlan, values: Mapping[str, str], run: RunContext) -> Attempt:
        return await perform_attempt(plan, values, run)


KIND = RequestKind()


async def perform_attempt(plan: StepPlan, values: Mapping[str, str], run: RunContext) -> Attempt:
    """Send the step's request once and judge the answer. Never raises but on cancel."""
    config = plan.config
    assert isinstance(config, RequestStep)
    started = time.perf_counter()
    recorder = run.recorder
    exchange = prepare_exchange(plan, values, run, started)
    if isinstance(exchange, Attempt):
        return exchange
    connector = exchange.connector
    try:
        async with exchange.session.request(
            exchange.method, exchange.url, **exchange.arguments
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
        return await transport_failure(exc, run, exchange.url, started)
    # The answer's last bytes arrived at `last_data_at`; judging it is not the target's time.
    attempt.ended = recorder.last_data_at or time.perf_counter()
    attempt.duration = attempt.ended - started
    return attempt


def judge(plan: StepPlan, status: int, headers: Mapping[str, str], body: bytes) -> Attempt:
    """Status, then assertions in order, then extraction; the first critical failure decides."""
    config = plan.config
    assert isinstance(config, HttpStepBase)
    expect = config.expect

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

    wrong_status = status_failure(expect, status, headers)
    if wrong_status is not None:
        return attempt(Status.DOWN, *wrong_status)
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
            return f"extract {name}: query {query} failed ({str(exc)[:100]})"
        if value is None:
            return f"extract {name}: query {query} found nothing"
        values[name] = value if isinstance(value, str) else json.dumps(value)
    return values
