"""The `request` kind: one HTTP exchange. Render, send, read a bounded body, judge, extract."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp

from uptime_probe.config.steps import RequestStep
from uptime_probe.probe.certificates import certificate_problem
from uptime_probe.probe.decoding import BodyDecoder, ContentDecodingError
from uptime_probe.probe.kinds.base import Attempt, RunContext
from uptime_probe.probe.kinds.http_exchange import (
    certificate_not_after,
    prepare_exchange,
    transport_failure,
)
from uptime_probe.probe.model import FailureReason, Status
from uptime_probe.probe.plan import StepPlan

_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    pass


async def _read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The decoded body, at most `limit` bytes of it; ContentDecodingError when it is broken.

    Compressed or not, no body is larger on the wire than decoded (bytes after a
    compressed stream's end aside), so `limit` bounds both.
    """
    declared = response.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"response declares {declared} bytes, above max_body {limit}")
    decoder = BodyDecoder(response.headers.get("Content-Encoding"))
    chunks: list[bytes] = []
    raw = total = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        raw += len(chunk)
        # Decoded as it arrives, so a compressed bomb is stopped on its decoded size.
        decoded = decoder.feed(chunk, limit - total)
        total += len(decoded)
        if total > limit:
            raise BodyTooLarge(f"body exceeds max_body {limit} bytes (decoded)")
        if raw > limit:
            raise BodyTooLarge(f"body exceeds max_body {limit} bytes on the wire")
        chunks.append(decoded)
    if raw:
        decoder.finish()
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
    outgoing = exchange.outgoing
    try:
        async with exchange.session.request(
            exchange.method, exchange.url, **exchange.arguments
        ) as response:
            not_after = certificate_not_after(exchange.connector.peer_certificate)
            try:
                body = (
                    b""
                    if config.request.method == "HEAD"
                    else await _read_body(response, config.max_body)
                )
            except (BodyTooLarge, ContentDecodingError) as exc:
                recorder.body_done()
                return outgoing.noted(
                    Attempt(
                        Status.DOWN,
                        FailureReason.BODY_TOO_LARGE
                        if isinstance(exc, BodyTooLarge)
                        else FailureReason.INVALID_ENCODING,
                        str(exc),
                        http_status=response.status,
                        tls_not_after=not_after,
                        duration=time.perf_counter() - started,
                    )
                )
            recorder.body_done()
            assert plan.judge is not None, "a request step always has its expect"
            judged = await plan.judge.judge(response.status, response.headers, body, recorder)
            attempt = Attempt.of_verdict(judged.verdict, body, http_status=response.status)
            attempt.tls_not_after = not_after
            # Judged last: a wrong answer is the more urgent news.
            if attempt.status is not Status.DOWN:
                attempt.fail(certificate_problem(not_after, config.expect.cert_min_days))
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError):
            raise
        return await transport_failure(exc, plan, run, exchange, started)
    # The answer's last bytes arrived at `last_data_at`: waiting for the loop to come back
    # to it is not the target's time, nor is building the request before it went out or
    # a ready connection waiting to be sent on (probe/tracing.py). Judging it in a worker
    # is the run's: it ends after.
    answered = recorder.last_data_at or time.perf_counter()
    attempt.duration = attempt.timed(recorder, started, answered)
    attempt.ended = answered + judged.off_loop_seconds
    return outgoing.noted(attempt)
