"""The `stream` kind: one HTTP request answered with server-sent events, read as they come.

What a chat user waits for: the first event, the first token of the answer, no long
silence in between, an end (`done`) and an answer that is not empty. Every time is taken
when the bytes arrived (the connection's `data_received`, as the request kind does), from
the moment the step starts its request, and the two limits that end a stream early
(`first_event_within`, `max_gap`) are enforced while reading, not after: a stalled
stream fails at the limit, not at the journey's deadline.

Bounded: `max_body` caps the bytes read (comments included), on the wire and decoded, so
a 1 GB event or a flood of tiny ones stops there; the answer is kept only when an
expectation reads it, and is judged as a request's body is (probe/judging.py: off the loop
when it is large); the sample holds the last events, about SAMPLE_BYTES of them; after
each slice of bytes parsed the loop gets a turn, so a flood cannot starve the other checks.
Every piece of the target's text in a message is redacted before it is cut.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from multidict import CIMultiDictProxy

from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps import StreamStep
from uptime_probe.probe.assertions import judge_head
from uptime_probe.probe.certificates import certificate_problem
from uptime_probe.probe.classify import classify_deadline, classify_exception
from uptime_probe.probe.decoding import BodyDecoder, ContentDecodingError
from uptime_probe.probe.kinds.base import SAMPLE_BYTES, Attempt, RunContext
from uptime_probe.probe.kinds.event_stream import EventStreamParser, ServerSentEvent
from uptime_probe.probe.kinds.http_exchange import (
    Exchange,
    certificate_not_after,
    prepare_exchange,
    transport_failure,
)
from uptime_probe.probe.model import AssertionOutcome, FailureReason, Status
from uptime_probe.probe.plan import StepPlan
from uptime_probe.probe.tracing import (
    CONNECTING,
    HANDSHAKING,
    RESOLVING,
    PhaseRecorder,
)

EVENT_STREAM = "text/event-stream"
# Bytes parsed between two turns of the event loop: ~2,000 tiny events at most.
_READ_SLICE = 16 * 1024
# Events kept for the failure sample (the newest that fit in SAMPLE_BYTES).
_RECENT_EVENTS = 64
# How long a failed answer's body is read for its sample, at most.
_SAMPLE_WAIT = 1.0
_TIMER_SLACK = 0.002
_MESSAGE_TEXT = 200
# The recorder's states before a connection is up: a cut there is the transport's reason.
_CONNECTING = (RESOLVING, CONNECTING, HANDSHAKING)


@dataclass(frozen=True, slots=True)
class StreamFigures:
    """What a stream step measured. Seconds from the start of the step's request."""

    key: ClassVar[str] = "stream"
    histograms: ClassVar[tuple[str, ...]] = (
        "first_event_seconds",
        "first_token_seconds",
        "longest_gap_seconds",
    )
    gauges: ClassVar[tuple[str, ...]] = ("events", "answer_chars")
    descriptions: ClassVar[Mapping[str, str]] = {
        "first_event_seconds": "Time from the request to the stream's first event.",
        "first_token_seconds": "Time from the request to the first non-empty piece of the answer.",
        "longest_gap_seconds": "Longest silence between two events of the stream.",
        "events": "Events the stream's last run received.",
        "answer_chars": "Characters of the answer the stream's last run collected.",
    }

    head_seconds: float | None = None
    first_event_seconds: float | None = None
    first_token_seconds: float | None = None
    longest_gap_seconds: float | None = None
    events: int = 0
    answer_chars: int | None = None
    total_seconds: float | None = None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "head_seconds": _rounded(self.head_seconds),
            "first_event_seconds": _rounded(self.first_event_seconds),
            "first_token_seconds": _rounded(self.first_token_seconds),
            "longest_gap_seconds": _rounded(self.longest_gap_seconds),
            "events": self.events,
            "answer_chars": self.answer_chars,
            "total_seconds": _rounded(self.total_seconds),
        }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


class _Done:
    """What `take` returns for the event that ends the stream."""


DONE = _Done()
_NOT_JSON = object()  # what _json returns for data that is not JSON


@dataclass(slots=True)
class _Reading:
    """One attempt's progress: what arrived when, the answer, what a failure will show."""

    config: StreamStep
    recorder: PhaseRecorder
    started: float
    redact: Redactor  # the check's: the target's text is redacted before any cut
    parser: EventStreamParser = field(default_factory=EventStreamParser)
    decoder: BodyDecoder | None = None  # the head's Content-Encoding, undone as bytes come
    http_status: int | None = None
    headers: CIMultiDictProxy[str] | None = None
    tls_not_after: float | None = None
    head_at: float | None = None
    first_event_at: float | None = None
    first_token_at: float | None = None
    last_event_at: float | None = None
    ended_at: float | None = None
    longest_gap: float | None = None
    events: int = 0
    bytes_read: int = 0  # decoded: what the parser was given
    wire_bytes: int = 0
    answer_chars: int = 0
    # The answer (or every event's data, without collect), kept only for body_* checks.
    texts: list[str] | None = None
    extracted: dict[str, str] = field(default_factory=dict)
    recent: deque[ServerSentEvent] = field(default_factory=lambda: deque(maxlen=_RECENT_EVENTS))
    first_bytes: bytearray = field(default_factory=bytearray)
    done_seen: bool = False
    # A failure already decided, while its sample is read: what a deadline cut reports.
    decided: Attempt | None = None

    @property
    def sample_room(self) -> int:
        """Bytes kept for the sample: SAMPLE_BYTES, and room for the engine to redact a
        secret that straddles its cut whole (Redactor.cut_bytes reads that far)."""
        return SAMPLE_BYTES + 4 * self.redact.reach

    # --- the clock ------------------------------------------------------------------------

    @property
    def origin(self) -> float:
        """What the stream's figures and limits count from: when the request started out,
        less what the target waited on us before it was sent (a ready connection not yet
        written to), as an http step's latency does (`Attempt.timed`). Building the
        request and a busy loop are not the target's time."""
        return self.recorder.began(self.started) + self.recorder.held

    def arrival(self) -> float:
        """When the bytes just read arrived: the connection's time, never before the last."""
        at = self.recorder.last_data_at or time.perf_counter()
        floor = self.last_event_at or self.head_at or self.origin
        return max(at, floor)

    def watchdog(self) -> tuple[float, str] | None:
        """The moment the stream fails if no event comes, and which limit that is."""
        expect = self.config.expect
        if self.first_event_at is None:
            if expect.first_event_within is not None:
                return self.origin + expect.first_event_within, "first_event_within"
            return None
        if expect.max_gap is not None and self.last_event_at is not None:
            return self.last_event_at + expect.max_gap, "max_gap"
        return None

    # --- events ---------------------------------------------------------------------------

    def take(self, event: ServerSentEvent, at: float) -> _Done | Attempt | None:
        """One event, in order: None to read on, DONE, or the failed attempt it causes.

        Called for every event of a flood (~100,000 per MiB of tiny ones): the usual path,
        an event with nothing to judge, touches as little as it can.
        """
        spec = self.config.stream
        self.events += 1
        self.recent.append(event)
        last = self.last_event_at
        if last is None:
            self.first_event_at = at
            within = self.config.expect.first_event_within
            if within is not None and at - self.origin > within:
                return self.fail(
                    FailureReason.FIRST_EVENT_TIMEOUT,
                    f"first event after {at - self.origin:.2f}s, "
                    f"expected within {within:g}s (first_event_within)",
                )
        elif at > last:  # events read together arrived together: no gap to weigh
            gap = at - last
            if self.longest_gap is None or gap > self.longest_gap:
                self.longest_gap = gap
            max_gap = self.config.expect.max_gap
            if max_gap is not None and gap > max_gap:
                return self.stalled(gap)
        elif self.longest_gap is None:
            self.longest_gap = 0.0
        self.last_event_at = at
        data = event.data
        if data == spec.done or event.type == spec.done_event:
            self.done_seen = True
            return DONE
        document: Any = _json(data) if data[:1] == "{" or data.lstrip()[:1] == "{" else _NOT_JSON
        if event.type == "error" or (isinstance(document, dict) and document.get("error")):
            return self.fail(
                FailureReason.STREAM_ERROR,
                f"the service sent an error in the stream (event {self.events}): "
                f"{self.quote(_service_error(event, document), _MESSAGE_TEXT) or '(no message)'}",
            )
        if spec.collect is not None:
            if data.strip():
                if document is _NOT_JSON:
                    document = _json(data)
                if document is _NOT_JSON:
                    return self.fail(
                        FailureReason.INVALID_EVENT,
                        f"event {self.events} is not JSON, which collect needs: "
                        f"data {self.quote(data, 80)!r}",
                    )
                self.collect(_strings(spec.collect, document), at)
        elif self.texts is not None:
            self.texts.append(data)
        if len(self.extracted) < len(self.config.extract) and data.strip():
            if document is _NOT_JSON and data.lstrip()[:1] == "[":
                document = _json(data)
            if document is not _NOT_JSON:
                self.extract(document)
        return None

    def collect(self, pieces: list[str], at: float) -> None:
        for piece in pieces:
            if not piece:
                continue
            if self.first_token_at is None:
                self.first_token_at = at
            self.answer_chars += len(piece)
            if self.texts is not None:
                self.texts.append(piece)

    def extract(self, document: Any) -> None:
        """The first value each `extract` query finds in the stream's JSON events is kept."""
        for name, query in self.config.extract.items():
            if name in self.extracted:
                continue
            value = _search(query, document)
            if value is not None:
                self.extracted[name] = value if isinstance(value, str) else json.dumps(value)

    def quote(self, text: str, limit: int) -> str:
        """The target's text for a message: redacted, cut, on one line."""
        return _one_line(self.redact.cut(text, limit))

    # --- outcomes -------------------------------------------------------------------------

    def figures(self, cut_at: float | None = None) -> StreamFigures:
        """The figures so far; `cut_at` counts the silence still running when it was cut."""
        longest = self.longest_gap
        if cut_at is not None and self.last_event_at is not None:
            longest = max(longest or 0.0, cut_at - self.last_event_at)
        origin = self.origin
        return StreamFigures(
            head_seconds=_since(self.head_at, origin),
            first_event_seconds=_since(self.first_event_at, origin),
            first_token_seconds=_since(self.first_token_at, origin),
            longest_gap_seconds=longest,
            events=self.events,
            answer_chars=self.answer_chars if self.config.stream.collect is not None else None,
            total_seconds=_since(self.ended_at, origin),
        )

    def sample(self) -> bytes:
        """The newest events as the stream wrote them, whole, about SAMPLE_BYTES of them;
        before any event, the stream's first bytes (comments, or an unfinished event).

        Never cut at SAMPLE_BYTES here: the engine redacts, then cuts (`sample_room`)."""
        room = self.sample_room
        if not self.recent:
            return bytes(self.first_bytes[:room])
        kept: list[bytes] = []
        size = 0
        for event in reversed(self.recent):
            text = _as_written(event)
            if size + len(text) > SAMPLE_BYTES:
                if not kept:  # the newest alone is too long: its beginning
                    kept.append(text[:room])
                break
            kept.append(text)
            size += len(text)
        return b"".join(reversed(kept))

    def attempt(
        self,
        status: Status,
        reason: str | None,
        message: str,
        *,
        cut_at: float | None = None,
        assertions: tuple[AssertionOutcome, ...] = (),
    ) -> Attempt:
        ended = self.ended_at or cut_at or time.perf_counter()
        attempt = Attempt(
            status,
            reason,
            message,
            http_status=self.http_status,
            body=self.sample() if status is Status.DOWN else b"",
            body_bytes=self.bytes_read,
            assertions=assertions,
            extracted=dict(self.extracted) if status is not Status.DOWN else {},
            tls_not_after=self.tls_not_after,
            figures=self.figures(cut_at),
            ended=ended,
        )
        attempt.duration = attempt.timed(self.recorder, self.started, ended)
        return attempt

    def fail(self, reason: str, message: str, cut_at: float | None = None) -> Attempt:
        return self.attempt(Status.DOWN, reason, message, cut_at=cut_at)

    def stalled(self, gap: float, cut_at: float | None = None) -> Attempt:
        max_gap = self.config.expect.max_gap
        pending = self.parser.pending_bytes
        unfinished = f"; {pending} bytes of an unfinished event" if pending else ""
        return self.fail(
            FailureReason.STREAM_STALLED,
            f"no event for {gap:.2f}s after event {self.events} (max_gap {max_gap:g}s){unfinished}",
            cut_at,
        )

    def waited_too_long(self, limit: str, now: float) -> Attempt:
        """The watchdog's limit passed with no event."""
        if limit == "max_gap":
            assert self.last_event_at is not None
            return self.stalled(now - self.last_event_at, cut_at=now)
        within = self.config.expect.first_event_within
        if self.head_at is None:
            if self.recorder.state in _CONNECTING:
                # Not even connected: the transport's reason, as a deadline would say.
                reason, detail = classify_deadline(self.recorder)
                return self.fail(reason, f"{detail} (first_event_within {within:g}s)", now)
            return self.fail(
                FailureReason.FIRST_EVENT_TIMEOUT,
                f"no event within {within:g}s of the request: no response head yet",
                now,
            )
        return self.fail(
            FailureReason.FIRST_EVENT_TIMEOUT,
            f"no event within {within:g}s of the request: the head came after "
            f"{self.head_at - self.origin:.2f}s, then {self.progress_without_events()}",
            now,
        )

    def progress_without_events(self) -> str:
        parts = []
        if self.parser.comments:
            parts.append(f"{self.parser.comments} comments")
        if self.parser.pending_bytes:
            parts.append(f"{self.parser.pending_bytes} bytes of an unfinished event")
        return ", ".join(parts) or "nothing"

    def deadline_note(self) -> Attempt:
        """What the journey's deadline cut: the head, or an open stream and how it was going.

        (A cut while its answer is judged off the loop the engine tells as for any kind.)"""
        if self.decided is not None:
            return self.decided
        now = time.perf_counter()
        if self.head_at is None and self.recorder.state in _CONNECTING:
            return self.fail(*classify_deadline(self.recorder), now)
        if self.head_at is None:
            return self.fail(FailureReason.TIMEOUT, "no response head before the deadline", now)
        if self.last_event_at is None:
            return self.fail(
                FailureReason.TIMEOUT,
                f"the stream was still open without an event: {self.progress_without_events()}",
                now,
            )
        return self.fail(
            FailureReason.TIMEOUT,
            f"the stream was still open after {_events(self.events)}, the last "
            f"{now - self.last_event_at:.2f}s before (longest gap "
            f"{max(self.longest_gap or 0.0, now - self.last_event_at):.2f}s)",
            now,
        )


class StreamKind:
    figures = StreamFigures

    async def attempt(self, plan: StepPlan, values: Mapping[str, str], run: RunContext) -> Attempt:
        """Send the request once and read its events until the end. Never raises but on cancel."""
        config = plan.config
        assert isinstance(config, StreamStep)
        started = time.perf_counter()
        reading = _Reading(config, run.recorder, started, plan.redact)
        exchange = prepare_exchange(plan, values, run, started)
        if isinstance(exchange, Attempt):
            return exchange
        run.deadline_note = reading.deadline_note
        try:
            attempt = await _exchange(plan, exchange, reading)
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            attempt = await _broken(exc, plan, reading, run, exchange)
        if attempt is None:  # the stream ended as it should: judge what it delivered
            attempt = await _judge_end(plan, reading)
        return exchange.outgoing.noted(attempt)


KIND = StreamKind()


async def _exchange(plan: StepPlan, exchange: Exchange, reading: _Reading) -> Attempt | None:
    """Open the stream and read it: the failed attempt, or None when it ended as it should."""
    config = reading.config
    watchdog = reading.watchdog()
    timer = asyncio.timeout(_delay(watchdog))
    try:
        async with timer:
            response = await exchange.session.request(
                exchange.method, exchange.url, **exchange.arguments
            )
    except TimeoutError:
        if not timer.expired() or watchdog is None:
            raise
        return reading.waited_too_long(watchdog[1], time.perf_counter())
    try:
        reading.head_at = reading.arrival()
        reading.http_status = response.status
        reading.headers = response.headers
        reading.tls_not_after = certificate_not_after(exchange.connector.peer_certificate)
        failed = _judge_head(plan, response, reading)
        if failed is not None:
            reading.decided = failed
            failed.body = await _read_sample(response, min(reading.sample_room, config.max_body))
            return failed
        return await _read_events(response, reading)
    finally:
        reading.recorder.body_done()  # the transfer phase ends with the last bytes read
        # An unfinished stream's connection is closed, a finished one goes back to the pool.
        response.release()


def _judge_head(
    plan: StepPlan, response: aiohttp.ClientResponse, reading: _Reading
) -> Attempt | None:
    """Status, then Content-Type, then the `headers` expectations: judged on the head."""
    config = reading.config
    status, headers = response.status, response.headers
    assert plan.judge is not None, "a stream step always has its expect"
    verdict = judge_head(plan.judge.rules, status, headers)
    if verdict.status is Status.DOWN and status not in config.expect.status:
        return reading.fail(verdict.reason or FailureReason.UNEXPECTED_STATUS, verdict.message)
    if response.content_type != EVENT_STREAM:
        shown = reading.quote(headers.get("Content-Type", "(none)"), 100)
        return reading.fail(
            FailureReason.NOT_A_STREAM,
            f"HTTP {status} with Content-Type {shown!r}, not {EVENT_STREAM}",
        )
    declared = response.content_length
    if declared is not None and declared > config.max_body:
        return reading.fail(
            FailureReason.BODY_TOO_LARGE,
            f"response declares {declared} bytes, above max_body {config.max_body}",
        )
    try:
        reading.decoder = BodyDecoder(headers.get("Content-Encoding"))
    except ContentDecodingError as exc:
        return reading.fail(FailureReason.INVALID_ENCODING, str(exc))
    if verdict.status is Status.DOWN:
        return reading.attempt(
            Status.DOWN, verdict.reason, verdict.message, assertions=verdict.assertions
        )
    if plan.judge.rules.judges_body:
        reading.texts = []
    return None


async def _read_events(response: aiohttp.ClientResponse, reading: _Reading) -> Attempt | None:
    """Read, decode and parse until the stream ends: a failed attempt, or None when it
    ended (its done event, or the body) with `ended_at` set."""
    config = reading.config
    decoder = reading.decoder
    assert decoder is not None
    content = response.content
    while True:
        watchdog = reading.watchdog()
        timer = asyncio.timeout(_delay(watchdog))
        expired: str | None = None
        try:
            async with timer:
                chunk = await content.read(_READ_SLICE)
        except TimeoutError:
            if not timer.expired() or watchdog is None:
                raise
            # The limit passed. Bytes already here (a busy loop resumes us late) may still
            # complete an event in time: `take` judges each by when its bytes arrived.
            expired = watchdog[1]
            chunk = content.read_nowait(_READ_SLICE)
            if not chunk:
                return reading.waited_too_long(expired, time.perf_counter())
        if not chunk:  # the body ended
            reading.ended_at = max(reading.arrival(), reading.last_event_at or 0.0)
            if reading.wire_bytes and not decoder.identity:
                try:
                    decoder.finish()
                except ContentDecodingError as exc:
                    return reading.fail(FailureReason.INVALID_ENCODING, str(exc))
            return None
        at = reading.arrival()
        reading.wire_bytes += len(chunk)
        # Bytes past max_body are never parsed: a stream that ends within it is whole.
        allowed = config.max_body - reading.bytes_read
        try:
            data = decoder.feed(chunk, allowed)
        except ContentDecodingError as exc:
            return reading.fail(FailureReason.INVALID_ENCODING, str(exc))
        over = "(decoded)" if len(data) > allowed else ""
        if not over and reading.wire_bytes > config.max_body:
            over = "on the wire"
        data = data[:allowed]
        reading.bytes_read += len(data)
        if len(reading.first_bytes) < reading.sample_room:
            reading.first_bytes += data[: reading.sample_room - len(reading.first_bytes)]
        seen = reading.events
        # A compressed slice may decode to much more: parsed a slice at a time, as read.
        for start in range(0, len(data), _READ_SLICE):
            if start:
                await asyncio.sleep(0)
            for event in reading.parser.feed(data[start : start + _READ_SLICE]):
                outcome = reading.take(event, at)
                if outcome is None:
                    continue
                if isinstance(outcome, Attempt):
                    return outcome
                reading.ended_at = at
                return None
        if expired is not None and reading.events == seen:
            return reading.waited_too_long(expired, time.perf_counter())
        if over:
            return reading.fail(
                FailureReason.BODY_TOO_LARGE,
                f"stream exceeds max_body {config.max_body} bytes {over} "
                f"after {_events(reading.events)}",
                time.perf_counter(),
            )
        # A flood must not hold the loop: other checks (and this one's deadline) get a turn
        # after each slice. aiohttp's flow control already caps what one read returns
        # without waiting (its buffer, ~256 KiB: ~60 ms of tiny events); this caps it at
        # one slice, a few milliseconds.
        await asyncio.sleep(0)


async def _judge_end(plan: StepPlan, reading: _Reading) -> Attempt:
    """The stream ended (its done event, or the body): what it delivered, in order."""
    config = reading.config
    spec, expect = config.stream, config.expect
    end = spec.done if spec.done is not None else spec.done_event
    if end is not None and not reading.done_seen:
        what = f"data {spec.done!r}" if spec.done is not None else f"event {spec.done_event!r}"
        return reading.fail(
            FailureReason.STREAM_INCOMPLETE,
            f"the stream ended after {_events(reading.events)} without its done {what}",
        )
    if reading.events == 0 and expect.first_event_within is not None:
        return reading.fail(
            FailureReason.FIRST_EVENT_TIMEOUT,
            f"the stream ended after {reading.ended_at - reading.origin:.2f}s without an event"
            if reading.ended_at is not None
            else "the stream ended without an event",
        )
    minimum = config.min_answer_chars
    if spec.collect is not None and reading.answer_chars < minimum:
        return reading.fail(
            FailureReason.EMPTY_ANSWER,
            f"the answer has {reading.answer_chars} characters, expected at least {minimum} "
            f"({_events(reading.events)})",
        )
    for name, query in config.extract.items():
        if name not in reading.extracted:
            return reading.fail(
                FailureReason.EXTRACTION_FAILED,
                f"extract {name}: query {query} found nothing in {_events(reading.events)}",
            )
    # The whole response judged as a request's is (probe/judging.py): the head again, and
    # body_* on the answer, or without collect on every event's data, one per line.
    text = ("" if spec.collect is not None else "\n").join(reading.texts or ())
    assert plan.judge is not None, "a stream step always has its expect"
    assert reading.http_status is not None
    assert reading.headers is not None
    judged = await plan.judge.judge(
        reading.http_status, reading.headers, text.encode(), reading.recorder
    )
    verdict = judged.verdict
    if verdict.status is Status.DOWN:
        attempt = reading.attempt(
            Status.DOWN, verdict.reason, verdict.message, assertions=verdict.assertions
        )
    elif verdict.status is Status.DEGRADED:
        attempt = reading.attempt(
            Status.DEGRADED, None, verdict.message, assertions=verdict.assertions
        )
    else:
        attempt = _on_time(reading, verdict.assertions)
    if attempt.status is not Status.DOWN:  # as a request's: a wrong answer is more urgent
        attempt.fail(certificate_problem(reading.tls_not_after, config.expect.cert_min_days))
    # Judging in a worker is the run's time, not the stream's: the step ends after it.
    attempt.ended += judged.off_loop_seconds
    return attempt


def _on_time(reading: _Reading, outcomes: tuple[AssertionOutcome, ...]) -> Attempt:
    """A stream that delivered: degraded when its first event came after max_first_event."""
    late = reading.config.expect.max_first_event
    first = reading.first_event_at
    if late is not None and first is not None and first - reading.origin > late:
        return reading.attempt(
            Status.DEGRADED,
            None,
            f"first event after {first - reading.origin:.2f}s, above max_first_event {late:g}s",
            assertions=outcomes,
        )
    summary = f"HTTP {reading.http_status}, {_events(reading.events)}"
    if reading.config.stream.collect is not None:
        summary += f", {reading.answer_chars} characters"
    return reading.attempt(Status.UP, None, summary, assertions=outcomes)


async def _broken(
    exc: Exception, plan: StepPlan, reading: _Reading, run: RunContext, exchange: Exchange
) -> Attempt:
    """The exchange raised: before the head a transport failure; after it, with a done
    event expected, the stream ended before it."""
    if reading.head_at is None:
        attempt = await transport_failure(exc, plan, run, exchange, reading.started)
        attempt.figures = reading.figures()
        return attempt
    reason, message = classify_exception(exc, reading.recorder.state, redact=plan.redact)
    spec = reading.config.stream
    if reason is FailureReason.CONNECTION_RESET and (spec.done or spec.done_event):
        return reading.fail(
            FailureReason.STREAM_INCOMPLETE,
            f"the stream broke after {_events(reading.events)}, before its done event: {message}",
            time.perf_counter(),
        )
    return reading.fail(reason, message, time.perf_counter())


async def _read_sample(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The start of a failed answer's body, for its sample: what is there within a moment."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(_SAMPLE_WAIT):
            while size < limit:
                chunk = await response.content.read(limit - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass  # a sample is a courtesy: what came is enough
    return b"".join(chunks)


def _delay(watchdog: tuple[float, str] | None) -> float | None:
    """How long to wait for bytes before the watchdog's limit, by the loop's timer.

    The loop's clock is coarser than perf_counter (uvloop's ticks are 1 ms, and a timer
    due within one tick fires early), so it waits a tick longer: a limit never fires
    before the silence it measures has really lasted that long."""
    if watchdog is None:
        return None
    return max(0.0, watchdog[0] - time.perf_counter()) + _TIMER_SLACK


def _since(moment: float | None, started: float) -> float | None:
    return None if moment is None else moment - started


def _search(query: Any, document: Any) -> Any:
    """A query's value in one event, None when the event has another shape."""
    try:
        return query.search(document)
    except Exception:  # JMESPath raises several types for a runtime type mismatch
        return None


def _strings(query: Any, document: Any) -> list[str]:
    """The strings a `collect` query finds: one, or those of a list; nothing else counts."""
    found = _search(query, document)
    if isinstance(found, str):
        return [found]
    if isinstance(found, list):
        return [item for item in found if isinstance(item, str)]
    return []


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _service_error(event: ServerSentEvent, document: Any) -> str:
    """The service's own words in an event that reports an error.

    An event of type `error`, or a JSON object with a non-empty top-level `error` (OpenAI
    and Anthropic both put {"message", "type"} there); `"error": null` is not one.
    """
    error: Any
    if isinstance(document, dict) and document.get("error"):
        error = document["error"]
    else:
        error = document if document is not _NOT_JSON else event.data
    if isinstance(error, dict):
        text = error.get("message") or error.get("detail") or error.get("error")
        kind = error.get("type") or error.get("code")
        words = text if isinstance(text, str) else json.dumps(error, ensure_ascii=False)
        if isinstance(kind, str | int) and not isinstance(kind, bool) and str(kind) not in words:
            words = f"{words} [{kind}]"
    elif isinstance(error, str):
        words = error
    else:
        words = json.dumps(error, ensure_ascii=False)
    return words


def _as_written(event: ServerSentEvent) -> bytes:
    lines = [] if event.type == "message" else [f"event: {event.type}"]
    lines.extend(f"data: {line}" for line in event.data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8", errors="replace")


def _events(count: int) -> str:
    return "1 event" if count == 1 else f"{count} events"


def _one_line(text: str) -> str:
    """Messages are one line (docs/configuration.md): a target's line breaks become spaces."""
    return " ".join(text.split())
