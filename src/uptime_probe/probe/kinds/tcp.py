"""The `tcp` kind: connect (optionally TLS), then send and read, exchange by exchange.

Each `receive` regex (RE2, config/types.py: linear in the text it reads) is searched
in each line the server sends (without its line ending), as blackbox_exporter's
`query_response` does, so `^220 ` anchors at a line's start and the cost stays linear
in what arrives. The read waits for a matching line until the connection closes or the
journey's deadline; every byte read, all exchanges together, counts against `max_body`.
Then `expect.json` and `extract` judge the document `{"lines", "groups"}` through the
step's StepJudge (probe/judging.py), as every kind's are.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps.tcp import TcpStep
from uptime_probe.config.types import LinearPattern
from uptime_probe.probe.assertions import NO_HEADERS, document_body
from uptime_probe.probe.classify import classify_exception
from uptime_probe.probe.kinds.base import Attempt, RunContext, cut_with
from uptime_probe.probe.kinds.sockets import (
    CONNECTING,
    EXCHANGING,
    HANDSHAKING,
    RESOLVING,
    Connection,
    Progress,
    classify_socket_error,
    close,
    open_connection,
    reading_context,
)
from uptime_probe.probe.model import FailureReason, Status
from uptime_probe.probe.plan import StepPlan
from uptime_probe.probe.secret_origins import SecretWithheld

_CHUNK = 64 * 1024


class _TooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TcpFigures:
    """A tcp step's own measurements (seconds; None where the step did not get that far)."""

    key: ClassVar[str] = "tcp"
    histograms: ClassVar[tuple[str, ...]] = ("connect_seconds", "tls_seconds", "first_byte_seconds")
    gauges: ClassVar[tuple[str, ...]] = ("bytes_received",)
    descriptions: ClassVar[Mapping[str, str]] = {
        "connect_seconds": "Time to establish the TCP connection of a tcp step.",
        "tls_seconds": "Time of the TLS handshake of a tcp step with tcp.tls.",
        "first_byte_seconds": "Time from connected (and the first send) to the first byte read.",
        "bytes_received": "Bytes a tcp step read in its last run.",
    }

    connect_seconds: float | None = None
    tls_seconds: float | None = None
    first_byte_seconds: float | None = None
    exchanges: int = 0
    bytes_received: int = 0
    address: str | None = None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "connect_seconds": self.connect_seconds,
            "tls_seconds": self.tls_seconds,
            "first_byte_seconds": self.first_byte_seconds,
            "exchanges": self.exchanges,
            "bytes_received": self.bytes_received,
            "address": self.address,
        }


class _Conversation:
    """What the exchange has done so far: for the figures, the document, a deadline note."""

    def __init__(self, progress: Progress, total: int, limit: int) -> None:
        self.progress = progress
        self.total = total
        self.limit = limit
        self.done = 0
        self.waiting_for: LinearPattern | None = None
        self.lines_this_exchange = 0
        self.lines: list[str] = []
        self.groups: dict[str, str] = {}
        self.received = 0
        self.raw = bytearray()  # what arrived, for the failure sample
        self.buffer = bytearray()
        self.ready_at = 0.0
        self.first_byte_at: float | None = None

    def note(self) -> tuple[str, str]:
        """What the journey's deadline cut, in the words of this step."""
        stage, peer = self.progress.stage, self.progress.peer
        if stage == RESOLVING:
            return FailureReason.DNS, f"resolving {peer}"
        if stage == CONNECTING:
            return FailureReason.CONNECT_TIMEOUT, f"connecting to {peer}"
        if stage == HANDSHAKING:
            # As an HTTP step's (probe/classify.py): TCP is up, the TLS layer stalled.
            return FailureReason.TLS, f"TLS handshake with {peer} stalled"
        after = f"after {self.done} of {self.total} exchanges"
        if self.waiting_for is None:
            return FailureReason.TIMEOUT, f"connected to {peer}, sending ({after})"
        wanted = f"/{self.waiting_for.pattern}/"
        if self.lines_this_exchange:
            # Lines came, none of them the one expected: the answer is wrong, not late.
            lines = f"{self.lines_this_exchange} line{'s' if self.lines_this_exchange > 1 else ''}"
            return (
                FailureReason.ASSERTION_FAILED,
                f"connected to {peer}, no line matching {wanted} in {lines} received ({after})",
            )
        return FailureReason.TIMEOUT, f"connected to {peer}, waiting for {wanted} {after}"

    async def read_line(self, reader: asyncio.StreamReader) -> str | None:
        """The next line (without its ending), the unterminated rest at EOF, or None."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return self._line(line)
            chunk = await reader.read(min(_CHUNK, self.limit - self.received + 1))
            if not chunk:
                if not self.buffer:
                    return None
                line = bytes(self.buffer)
                self.buffer.clear()
                return self._line(line)
            if self.first_byte_at is None:
                self.first_byte_at = time.perf_counter()
            self.received += len(chunk)
            if self.received > self.limit:
                raise _TooLarge(f"received more than max_body {self.limit} bytes")
            self.raw += chunk
            self.buffer += chunk

    def _line(self, raw: bytes) -> str:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        self.lines.append(text)
        self.lines_this_exchange += 1
        return text

    def document(self) -> dict[str, Any]:
        return {"lines": self.lines, "groups": self.groups}


class TcpKind:
    # The class of the figures its attempts carry: metrics declare its series from it.
    figures = TcpFigures

    async def attempt(self, plan: StepPlan, values: Mapping[str, str], run: RunContext) -> Attempt:
        config = plan.config
        assert isinstance(config, TcpStep)
        started = time.perf_counter()
        spec = config.tcp
        try:
            host = spec.host.render(values)
            sends = [
                None if exchange.send is None else exchange.send.render(values).encode()
                for exchange in config.conversation
            ]
        except UnicodeError as exc:
            return Attempt(
                Status.DOWN,
                FailureReason.EXTRACTION_FAILED,
                f"cannot build what to send: {plan.redact.cut(str(exc), 200)}",
                duration=time.perf_counter() - started,
            )
        if plan.secret_policy is not None:
            # A send carrying a secret goes only to the host the config writes: checked
            # before connecting, so a host from a target gets not even a connection.
            try:
                plan.secret_policy.check_connection(host, spec.port)
            except SecretWithheld as exc:
                return Attempt(
                    Status.DOWN, exc.reason, exc.message, duration=time.perf_counter() - started
                )
        progress = Progress(f"{host}:{spec.port}")
        conversation = _Conversation(progress, len(sends), config.max_body)
        run.deadline_note = cut_with(conversation.note)
        tls: ssl.SSLContext | None = reading_context(plan.ssl) if spec.tls else None
        figures = TcpFigures()
        ended: float | None = None
        try:
            connection = await open_connection(
                run, host, spec.port, progress, tls=tls, server_name=config.tls.server_name
            )
            figures = TcpFigures(connection.connect_seconds, connection.tls_seconds)
            try:
                failed = await _converse(config, connection, sends, conversation, plan.redact)
            finally:
                ended = time.perf_counter()
                await close(connection.writer)
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            ended = ended or time.perf_counter()
            reason, message = _classify(exc, progress, plan.redact)
            failed = Attempt(Status.DOWN, reason, message)
        figures = _figures(figures, conversation, progress)
        recorder = run.recorder
        if conversation.first_byte_at is not None:
            recorder.processing += conversation.first_byte_at - conversation.ready_at
            recorder.transfer += ended - conversation.first_byte_at
        off_loop = 0.0
        if failed is not None:
            attempt = failed
        else:
            passed = f"connected to {progress.peer}" + (
                f", {conversation.done} exchanges" if conversation.total else ""
            )
            judge = plan.judge
            assert judge is not None, "a tcp step always has its expect"
            if judge.rules.needs_body:
                document = document_body(conversation.document())
                judged = await judge.judge(None, NO_HEADERS, document, recorder)
                attempt = Attempt.of_verdict(judged.verdict, document, passed=passed)
                off_loop = judged.off_loop_seconds
            else:  # nothing to judge or extract: the lines matched, so it passed
                attempt = Attempt(Status.UP, None, passed)
        # What arrived is the sample (the document repeats it, less readably).
        attempt.body = bytes(conversation.raw) or attempt.body
        attempt.body_bytes = conversation.received
        attempt.figures = figures
        attempt.ended = ended + off_loop
        attempt.duration = ended - started
        return attempt


def _classify(exc: Exception, progress: Progress, redact: Redactor) -> tuple[str, str]:
    """This kind's errors first, then the network stack's, then anything else (a bug)."""
    if isinstance(exc, _TooLarge):
        return FailureReason.BODY_TOO_LARGE, str(exc)
    return classify_socket_error(exc, progress, redact) or classify_exception(exc, redact=redact)


async def _converse(
    config: TcpStep,
    connection: Connection,
    sends: list[bytes | None],
    conversation: _Conversation,
    redact: Redactor,
) -> Attempt | None:
    """Every exchange in turn; an Attempt when one failed, None when all held."""
    reader, writer = connection.reader, connection.writer
    conversation.ready_at = time.perf_counter()
    for exchange, data in zip(config.conversation, sends, strict=True):
        conversation.waiting_for = None
        conversation.lines_this_exchange = 0
        if data is not None:
            writer.write(data)
            await writer.drain()
            if conversation.first_byte_at is None:
                conversation.ready_at = time.perf_counter()
        pattern = exchange.receive
        if pattern is not None:
            conversation.waiting_for = pattern
            while True:
                line = await conversation.read_line(reader)
                if line is None:
                    return _closed_early(conversation, pattern, redact)
                groups = pattern.named_groups_in(line)
                if groups is not None:
                    conversation.groups.update(groups)
                    break
        conversation.done += 1
    conversation.waiting_for = None
    return None


def _closed_early(conversation: _Conversation, pattern: LinearPattern, redact: Redactor) -> Attempt:
    count = conversation.lines_this_exchange
    seen = f"{count} line{'s' if count != 1 else ''}" if count else "nothing"
    last = f"; last: {redact.cut(repr(conversation.lines[-1]), 100)}" if count else ""
    return Attempt(
        Status.DOWN,
        FailureReason.ASSERTION_FAILED,
        f"{conversation.progress.peer} closed the connection after {seen} without a line "
        f"matching /{pattern.pattern}/ (after {conversation.done} of {conversation.total} "
        f"exchanges){last}",
    )


def _figures(base: TcpFigures, conversation: _Conversation, progress: Progress) -> TcpFigures:
    first = (
        None
        if conversation.first_byte_at is None
        else conversation.first_byte_at - conversation.ready_at
    )
    return TcpFigures(
        connect_seconds=base.connect_seconds,
        tls_seconds=base.tls_seconds,
        first_byte_seconds=first,
        exchanges=conversation.done,
        bytes_received=conversation.received,
        address=progress.peer if progress.stage == EXCHANGING else None,
    )


KIND = TcpKind()
