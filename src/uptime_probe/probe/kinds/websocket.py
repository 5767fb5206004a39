"""The `websocket` kind: upgrade over the run's HTTP session, send frames, judge a message.

The upgrade goes through the run's shared aiohttp session, so cookies a login step
set are sent, and the check's headers with it. When the upgrade carries a secret (a
header, a frame, the URL), its every hop passes the step's OriginGuard, as a request's
does (probe/secret_origins.py): aiohttp's `ws_connect` takes no per-request middleware
but applies a session's, so such an upgrade goes through a session of its own that
shares the run's connector, cookie jar, tracing and timeout. A refused upgrade keeps
the HTTP reasons (`http_4xx`, `http_5xx`, `unexpected_status`, with the status). Then the
text frames are sent, and the first message (or, with `wait_for_match`, the first
that passes) is judged with the body and JSON assertions of `request`, by the step's
StepJudge (probe/judging.py) as an HTTP body is, without a status. `max_body`
is aiohttp's `max_msg_size`: a longer frame is refused from its header, before its
payload is read.

Every way a socket can answer is one `WSMsgType`; `_ON_MESSAGE` has a row for each
(tests/probe/kinds/test_websocket.py holds it complete).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import ClassVar

import aiohttp
from aiohttp import WSCloseCode, WSMsgType

from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps.websocket import WebsocketStep
from uptime_probe.probe.assertions import NO_HEADERS
from uptime_probe.probe.certificates import CertificateDetails
from uptime_probe.probe.classify import MESSAGE_LIMIT, classify_exception, classify_status
from uptime_probe.probe.kinds.base import Attempt, RunContext, cut_with
from uptime_probe.probe.kinds.http_exchange import render_headers, server_name
from uptime_probe.probe.model import FailureReason, Status
from uptime_probe.probe.plan import StepPlan
from uptime_probe.probe.secret_origins import OriginGuard, SecretWithheld
from uptime_probe.probe.tracing import PhaseRecorder

# Closing waits this long for the server's close frame before dropping the connection.
CLOSE_WAIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class WebsocketFigures:
    """The upgrade's time, and the time to the first message after the frames were sent."""

    key: ClassVar[str] = "websocket"
    histograms: ClassVar[tuple[str, ...]] = ("handshake_seconds", "first_message_seconds")
    gauges: ClassVar[tuple[str, ...]] = ("messages",)
    descriptions: ClassVar[Mapping[str, str]] = {
        "handshake_seconds": "Time of a websocket step's upgrade: connect, TLS, HTTP 101.",
        "first_message_seconds": "Time from a websocket step's frames sent to a message.",
        "messages": "Messages a websocket step received in its last run.",
    }

    handshake_seconds: float | None = None
    first_message_seconds: float | None = None
    messages: int = 0
    sent: int = 0
    close_code: int | None = None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "handshake_seconds": self.handshake_seconds,
            "first_message_seconds": self.first_message_seconds,
            "messages": self.messages,
            "sent": self.sent,
            "close_code": self.close_code,
        }


class _Socket:
    """One attempt's progress: for its figures and a deadline note."""

    def __init__(self, url: str, within: float | None) -> None:
        self.url = url
        self.within = within
        self.started = time.perf_counter()
        self.open_at: float | None = None
        self.sent = 0
        self.sent_at = 0.0
        self.messages = 0
        self.first_at: float | None = None
        self.unmatched: Attempt | None = None  # the last message that did not pass
        self.close_code: int | None = None
        self.off_loop = 0.0  # seconds spent judging messages off the loop

    def note(self) -> tuple[str, str]:
        if self.open_at is None:
            return FailureReason.TIMEOUT, f"no WebSocket upgrade from {self.url}"
        return self.silence()

    def silence(self) -> tuple[str, str]:
        """Nothing (that passes) came: `no_message`, or the last message's own failure."""
        waited = time.perf_counter() - self.sent_at
        if self.unmatched is not None and self.unmatched.reason:
            return (
                self.unmatched.reason,
                f"none of {self.messages} messages passed in {waited:.1f}s; last: "
                f"{self.unmatched.message}",
            )
        frames = f"{self.sent} frame{'s' if self.sent != 1 else ''} sent"
        return FailureReason.NO_MESSAGE, f"no message in {waited:.1f}s ({frames})"

    def figures(self, origin: float) -> WebsocketFigures:
        """The figures; the handshake counted from `origin`, when the request went out."""
        return WebsocketFigures(
            handshake_seconds=None if self.open_at is None else self.open_at - origin,
            first_message_seconds=None if self.first_at is None else self.first_at - self.sent_at,
            messages=self.messages,
            sent=self.sent,
            close_code=self.close_code,
        )


class WebsocketKind:
    # The class of the figures its attempts carry: metrics declare its series from it.
    figures = WebsocketFigures

    async def attempt(self, plan: StepPlan, values: Mapping[str, str], run: RunContext) -> Attempt:
        config = plan.config
        assert isinstance(config, WebsocketStep)
        try:
            # As a request's URL (probe/request_url.py): sent as written, and an extracted
            # value is one path segment or one query value.
            assert plan.url is not None, "a websocket step compiles its URL"
            url = plan.url.render(values)
            headers = render_headers(plan, values)
            frames = [frame.render(values) for frame in config.websocket.send]
            guard, url, headers = OriginGuard.for_request(
                plan.secret_policy, url, headers, plan.url.origin_varies
            )
        except SecretWithheld as exc:
            return _done(
                run.recorder,
                _Socket(config.websocket.url.source, None),
                Attempt(Status.DOWN, exc.reason, exc.message),
            )
        except (ValueError, UnicodeError) as exc:
            return _done(
                run.recorder,
                _Socket(config.websocket.url.source, None),
                Attempt(
                    Status.DOWN,
                    FailureReason.EXTRACTION_FAILED,
                    f"cannot build the upgrade request: {plan.redact.cut(str(exc), 200)}",
                ),
            )
        state = _Socket(str(url), config.expect.message_within)
        run.deadline_note = cut_with(state.note)
        async with AsyncExitStack() as upgrade:
            try:
                session, connector = run.http()
                connector.recorder = run.recorder
                connector.peer_certificate = None
                if guard is not None:
                    session = await upgrade.enter_async_context(_guarded(session, guard))
                secure = url.scheme == "wss"
                socket = await session.ws_connect(
                    url,
                    headers=headers,
                    ssl=plan.ssl,
                    server_hostname=server_name(config.tls, headers) if secure else None,
                    max_msg_size=config.max_body,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_WAIT_SECONDS),
                )
            except (Exception, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return _done(run.recorder, state, _refused(exc, run, plan.redact), guard)
            state.open_at = time.perf_counter()
            der = connector.peer_certificate
            details = CertificateDetails.from_der(der) if der else None
            try:
                for frame in frames:
                    await socket.send_str(frame)
                    state.sent += 1
                state.sent_at = time.perf_counter()
                attempt = await _judge_messages(plan, socket, state, run)
            except (Exception, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                reason, message = classify_exception(exc, run.recorder.state, redact=plan.redact)
                attempt = Attempt(Status.DOWN, reason, message, ended=time.perf_counter())
            finally:
                await socket.close()
        attempt.tls_not_after = None if details is None else details.not_after
        return _done(run.recorder, state, attempt, guard)


def _guarded(session: aiohttp.ClientSession, guard: OriginGuard) -> aiohttp.ClientSession:
    """A session for one upgrade, whose every hop passes `guard`, that is the run's in all
    else: its connector (so its timings and TLS certificate, and left open when this one
    closes), cookie jar, tracing, timeout and settings."""
    return aiohttp.ClientSession(
        connector=session.connector,
        connector_owner=False,
        cookie_jar=session.cookie_jar,
        trace_configs=session.trace_configs,
        timeout=session.timeout,
        headers=session.headers,
        skip_auto_headers=session.skip_auto_headers,
        raise_for_status=session.raise_for_status,
        auto_decompress=session.auto_decompress,
        trust_env=session.trust_env,
        requote_redirect_url=session.requote_redirect_url,
        middlewares=(guard,),
    )


def _done(
    recorder: PhaseRecorder, state: _Socket, attempt: Attempt, guard: OriginGuard | None = None
) -> Attempt:
    if guard is not None:  # say which headers another origin did not get
        attempt.message = guard.noted(attempt.message)
    attempt.ended = attempt.ended or time.perf_counter()
    # As an http step's latency: from the upgrade request going out (its lookup,
    # connection or send), less what the target waited on us (probe/tracing.py).
    took = attempt.timed(recorder, state.started, attempt.ended)
    if state.open_at is not None:
        attempt.http_status = attempt.http_status or 101  # Switching Protocols
        # After the upgrade, the target's time is the wait for its message: processing,
        # as the wait for an http answer is, so the phases add up to the step's duration.
        phases = recorder.resolve + recorder.connect + recorder.tls + recorder.transfer
        recorder.processing = max(recorder.processing, took - phases)
    # The target's time ends with the message judged; judging it off the loop is the run's.
    attempt.duration = took - state.off_loop
    attempt.figures = state.figures(attempt.began + attempt.held)
    return attempt


def _refused(exc: Exception, run: RunContext, redact: Redactor) -> Attempt:
    """The upgrade failed: an HTTP answer other than 101 keeps the HTTP reasons."""
    if isinstance(exc, SecretWithheld):  # a redirect that would take a secret elsewhere
        return Attempt(Status.DOWN, exc.reason, exc.message, http_status=exc.status)
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        if exc.status == 101:  # a 101 with a wrong Upgrade, Connection or Accept header
            return Attempt(
                Status.DOWN,
                FailureReason.UNEXPECTED_STATUS,
                redact.cut(f"invalid WebSocket upgrade: {exc.message}", MESSAGE_LIMIT),
                http_status=exc.status,
            )
        return Attempt(
            Status.DOWN,
            classify_status(exc.status),
            f"WebSocket upgrade refused: HTTP {exc.status}, expected 101",
            http_status=exc.status,
        )
    reason, message = classify_exception(exc, run.recorder.state, redact=redact)
    return Attempt(Status.DOWN, reason, message)


async def _judge_messages(
    plan: StepPlan, socket: aiohttp.ClientWebSocketResponse, state: _Socket, run: RunContext
) -> Attempt:
    """Messages in turn until one decides the step, the socket closes, or time runs out."""
    while True:
        remaining = None
        if state.within is not None:
            remaining = state.within - (time.perf_counter() - state.sent_at)
            if remaining <= 0:
                return _silent(state)
        try:
            message = await socket.receive(timeout=remaining)
        except TimeoutError:
            return _silent(state)
        decided = await _ON_MESSAGE[message.type](plan, message, state, socket, run)
        if decided is not None:
            return decided


def _silent(state: _Socket) -> Attempt:
    reason, message = state.silence()
    return Attempt(Status.DOWN, reason, message)


_OnMessage = Callable[
    [StepPlan, aiohttp.WSMessage, _Socket, aiohttp.ClientWebSocketResponse, RunContext],
    Awaitable[Attempt | None],
]


async def _data(
    plan: StepPlan,
    message: aiohttp.WSMessage,
    state: _Socket,
    _socket: aiohttp.ClientWebSocketResponse,
    run: RunContext,
) -> Attempt | None:
    arrived = time.perf_counter()
    state.messages += 1
    if state.first_at is None:
        state.first_at = arrived
    body = message.data.encode() if isinstance(message.data, str) else bytes(message.data)
    assert plan.judge is not None, "a websocket step always has its expect"
    judged = await plan.judge.judge(None, NO_HEADERS, body, run.recorder)
    state.off_loop += judged.off_loop_seconds
    attempt = Attempt.of_verdict(
        judged.verdict, body, passed=f"message after {arrived - state.sent_at:.3f}s"
    )
    attempt.ended = arrived + judged.off_loop_seconds
    config = plan.config
    assert isinstance(config, WebsocketStep)
    if attempt.status is Status.DOWN and config.expect.wait_for_match:
        state.unmatched = attempt
        return None
    return attempt


async def _closed(
    plan: StepPlan,
    message: aiohttp.WSMessage,
    state: _Socket,
    socket: aiohttp.ClientWebSocketResponse,
    _run: RunContext,
) -> Attempt:
    code = socket.close_code if message.type is not WSMsgType.CLOSE else message.data
    state.close_code = code
    # The close frame's reason is the server's text: redacted, then cut.
    why = f" {plan.redact.cut(repr(message.extra), 120)}" if _has_reason(message) else ""
    got = f"after {state.messages} message{'s' if state.messages != 1 else ''}"
    last = f"; last: {state.unmatched.message}" if state.unmatched is not None else ""
    attempt = Attempt(
        Status.DOWN,
        FailureReason.WS_CLOSED,
        f"the server closed the WebSocket (code {code}{why}) {got}{last}",
    )
    if state.unmatched is not None:
        attempt.body = state.unmatched.body
    return attempt


def _has_reason(message: aiohttp.WSMessage) -> bool:
    return message.type is WSMsgType.CLOSE and bool(message.extra)


async def _error(
    plan: StepPlan,
    message: aiohttp.WSMessage,
    state: _Socket,
    socket: aiohttp.ClientWebSocketResponse,
    run: RunContext,
) -> Attempt:
    error = message.data
    if isinstance(error, aiohttp.WebSocketError):
        if error.code == WSCloseCode.MESSAGE_TOO_BIG:
            return Attempt(
                Status.DOWN, FailureReason.BODY_TOO_LARGE, plan.redact.cut(f"{error}", 300)
            )
        return Attempt(
            Status.DOWN,
            FailureReason.UNEXPECTED_STATUS,
            plan.redact.cut(f"invalid WebSocket frame: {error}", 300),
        )
    if isinstance(error, BaseException):
        reason, text = classify_exception(error, redact=plan.redact)
        return Attempt(Status.DOWN, reason, text)
    return await _closed(plan, message, state, socket, run)


async def _control(
    _plan: StepPlan,
    _message: aiohttp.WSMessage,
    _state: _Socket,
    _socket: aiohttp.ClientWebSocketResponse,
    _run: RunContext,
) -> None:
    """Pings and pongs (answered by aiohttp itself) are not messages to judge."""
    return None


# What each kind of WebSocket event means to the step.
_ON_MESSAGE: dict[WSMsgType, _OnMessage] = {
    WSMsgType.TEXT: _data,
    WSMsgType.BINARY: _data,
    WSMsgType.CONTINUATION: _data,
    WSMsgType.PING: _control,
    WSMsgType.PONG: _control,
    WSMsgType.CLOSE: _closed,
    WSMsgType.CLOSING: _closed,
    WSMsgType.CLOSED: _closed,
    WSMsgType.ERROR: _error,
}

KIND = WebsocketKind()
