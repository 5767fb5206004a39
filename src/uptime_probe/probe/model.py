"""What a run of a check produces: plain, immutable data for every consumer downstream.

The failure taxonomy (a down run carries exactly one reason):

    transport   dns, connect_refused, connect_timeout, tls, timeout, connection_reset,
                too_many_redirects
    http        http_4xx, http_5xx, rate_limited (429), unexpected_status
    content     invalid_json, invalid_encoding, body_too_large, schema_mismatch, assertion_failed,
                extraction_failed, poll_timeout, and every reason the config names
                (empty_history, task_stuck, ...): "200 OK but wrong"
      stream    first_event_timeout, stream_stalled, empty_answer, stream_incomplete,
                stream_error, invalid_event, not_a_stream: a `stream` step's own
      kinds     cert_expiring (request, certificate), dns_rcode, dns_no_answer (dns),
                ws_closed, no_message (websocket), element_missing (a `wait_for` ran
                out), page_error (the page threw, logged a console error, or crashed)
                (browser): what only those steps can say
    the prober itself, never a property of the target:
                local_resources (its host ran out of file descriptors, socket buffers or
                memory: the run could not be made), internal (a bug in uptime-probe, or
                its own browser dying mid-run)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol


class Status(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class FailureReason(StrEnum):
    DNS = "dns"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    TLS = "tls"
    TIMEOUT = "timeout"
    CONNECTION_RESET = "connection_reset"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    RATE_LIMITED = "rate_limited"
    UNEXPECTED_STATUS = "unexpected_status"
    INVALID_JSON = "invalid_json"
    INVALID_ENCODING = "invalid_encoding"
    BODY_TOO_LARGE = "body_too_large"
    SCHEMA_MISMATCH = "schema_mismatch"
    ASSERTION_FAILED = "assertion_failed"
    EXTRACTION_FAILED = "extraction_failed"
    POLL_TIMEOUT = "poll_timeout"
    FIRST_EVENT_TIMEOUT = "first_event_timeout"
    STREAM_STALLED = "stream_stalled"
    EMPTY_ANSWER = "empty_answer"
    STREAM_INCOMPLETE = "stream_incomplete"
    STREAM_ERROR = "stream_error"
    INVALID_EVENT = "invalid_event"
    NOT_A_STREAM = "not_a_stream"
    CERT_EXPIRING = "cert_expiring"
    DNS_RCODE = "dns_rcode"
    DNS_NO_ANSWER = "dns_no_answer"
    WS_CLOSED = "ws_closed"
    NO_MESSAGE = "no_message"
    ELEMENT_MISSING = "element_missing"
    PAGE_ERROR = "page_error"
    LOCAL_RESOURCES = "local_resources"
    INTERNAL = "internal"


BUILTIN_REASONS: tuple[str, ...] = tuple(reason.value for reason in FailureReason)
# Reasons only one kind of step reports, by its handler key: metrics pre-create them only
# for the checks that have such a step, so an HTTP-only check carries no stream or DNS
# series. `cert_expiring` is also a reason a request step names when it sets cert_min_days.
KIND_REASONS: dict[str, tuple[str, ...]] = {
    "stream": (
        FailureReason.FIRST_EVENT_TIMEOUT,
        FailureReason.STREAM_STALLED,
        FailureReason.EMPTY_ANSWER,
        FailureReason.STREAM_INCOMPLETE,
        FailureReason.STREAM_ERROR,
        FailureReason.INVALID_EVENT,
        FailureReason.NOT_A_STREAM,
    ),
    "dns": (FailureReason.DNS_RCODE, FailureReason.DNS_NO_ANSWER),
    "certificate": (FailureReason.CERT_EXPIRING,),
    "websocket": (FailureReason.WS_CLOSED, FailureReason.NO_MESSAGE),
    "browser": (FailureReason.ELEMENT_MISSING, FailureReason.PAGE_ERROR),
}
# The reasons any kind of step may report.
COMMON_REASONS: tuple[str, ...] = tuple(
    reason
    for reason in BUILTIN_REASONS
    if not any(reason in reasons for reasons in KIND_REASONS.values())
)
TRANSPORT_REASONS = frozenset(
    {
        FailureReason.DNS,
        FailureReason.CONNECT_REFUSED,
        FailureReason.CONNECT_TIMEOUT,
        FailureReason.TLS,
        FailureReason.TIMEOUT,
        FailureReason.CONNECTION_RESET,
        FailureReason.TOO_MANY_REDIRECTS,
    }
)
HTTP_REASONS = frozenset(
    {
        FailureReason.HTTP_4XX,
        FailureReason.HTTP_5XX,
        FailureReason.RATE_LIMITED,
        FailureReason.UNEXPECTED_STATUS,
    }
)


# Failures of the prober, not of the target: alerts and docs keep them apart.
PROBER_REASONS = frozenset({FailureReason.LOCAL_RESOURCES, FailureReason.INTERNAL})


def is_content_reason(reason: str) -> bool:
    """True for "the server answered, but wrongly": not transport, HTTP or the prober's."""
    return (
        reason not in TRANSPORT_REASONS
        and reason not in HTTP_REASONS
        and reason not in PROBER_REASONS
    )


_REASON_WORDS = {
    "dns": "the host name did not resolve",
    "connect_refused": "the connection was refused",
    "connect_timeout": "the connection timed out",
    "tls": "TLS failed (certificate or handshake)",
    "timeout": "no response before the deadline",
    "connection_reset": "the connection broke mid-response",
    "too_many_redirects": "too many redirects",
    "http_4xx": "a client error status (4xx)",
    "http_5xx": "a server error status (5xx)",
    "rate_limited": "rate limited (429)",
    "unexpected_status": "an unexpected status",
    "invalid_json": "the response was not valid JSON",
    "invalid_encoding": "the body did not decode with its Content-Encoding",
    "body_too_large": "the response was too large",
    "schema_mismatch": "the response did not match its schema",
    "assertion_failed": "the response did not meet an expectation",
    "extraction_failed": "a value could not be extracted",
    "poll_timeout": "the expected state never came",
    "first_event_timeout": "the stream's first event came too late",
    "stream_stalled": "the stream went silent mid-answer",
    "empty_answer": "the streamed answer was empty or too short",
    "stream_incomplete": "the stream ended before its done event",
    "stream_error": "the service sent an error in the stream",
    "invalid_event": "a streamed event was not valid JSON",
    "not_a_stream": "the response was not an event stream",
    "cert_expiring": "the certificate expires too soon",
    "dns_rcode": "the DNS server answered with an unexpected code",
    "dns_no_answer": "the DNS name has no record of that type",
    "ws_closed": "the WebSocket closed before the expected message",
    "no_message": "no WebSocket message arrived in time",
    "element_missing": "an element the page should show never appeared",
    "page_error": "the page raised an error",
    "local_resources": "the prober ran out of file descriptors or memory",
    "internal": "an internal error in uptime-probe",
}


# A degraded run is not down, so it has no FailureReason (`CheckResult.reason` is None:
# metrics, incidents and alerts count down runs only), but it has a cause, on its degraded
# step: this word when the step was slower than its `max_latency`, else the reason of the
# `severity: warning` assertion that failed. `run_reason` is how every view shows it.
DEGRADED_REASON = "slow"
_DEGRADED_WORDS = "slower than expected"


def describe_reason(reason: str, http_status: int | None = None) -> str:
    """A reason in plain words: `empty_history` -> "empty history (HTTP 200)"."""
    if reason == DEGRADED_REASON:
        return _DEGRADED_WORDS
    words = _REASON_WORDS.get(reason) or reason.replace("_", " ")
    if http_status and reason not in ("http_4xx", "http_5xx", "rate_limited"):
        return f"{words} (HTTP {http_status})"
    if http_status:
        return f"{words.split(' (')[0]} (HTTP {http_status})"
    return words


PHASES = ("resolve", "connect", "tls", "processing", "transfer")


@dataclass(frozen=True, slots=True)
class PhaseTimings:
    """Seconds spent in each phase of a step's requests (summed over redirects and polls)."""

    resolve: float = 0.0
    connect: float = 0.0
    tls: float = 0.0
    processing: float = 0.0
    transfer: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {phase: getattr(self, phase) for phase in PHASES}


@dataclass(frozen=True, slots=True)
class AssertionOutcome:
    """One expectation and what was really there: `length(items) = 0, expected > 0`."""

    subject: str
    expectation: str
    passed: bool
    actual: str
    reason: str
    severity: str = "critical"

    @property
    def message(self) -> str:
        return f"{self.subject} = {self.actual}, expected {self.expectation}"


class StepFigures(Protocol):
    """A kind's own measurements of a step (a stream's first event, a DNS query's time).

    `key` names them in `check --json` (`"stream": {...}`); `as_dict` gives plain JSON
    values in base units (seconds, bytes, counts). A field is None when the run did not
    get that far.

    The metrics export them without code of their own per kind (docs/metrics.md):
    `histograms` names the fields observed, per run, into a histogram in seconds,
    `gauges` those whose last value is a gauge; `descriptions` gives each its help text.
    Each becomes `uptime_probe_step_<key>_<field>`, labelled check, location and step.
    """

    key: ClassVar[str]
    histograms: ClassVar[tuple[str, ...]]
    gauges: ClassVar[tuple[str, ...]]
    descriptions: ClassVar[Mapping[str, str]]

    def as_dict(self) -> dict[str, float | int | str | None]: ...


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    status: Status
    reason: str | None
    message: str
    duration_seconds: float
    kind: str = "request"
    http_status: int | None = None
    timings: PhaseTimings = PhaseTimings()
    body_bytes: int = 0
    attempts: int = 1
    assertions: tuple[AssertionOutcome, ...] = ()
    tls_not_after: float | None = None
    response_sample: str | None = None
    figures: StepFigures | None = None
    # A file the step left (a failed browser step's screenshot), relative to the artifact
    # store's folder (probe/artifacts.py): `check/20251203T101502.123Z-step.png`.
    artifact: str | None = None
    # The Playwright trace the step left beside its screenshot (`...-step.zip`), if any.
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    status: Status
    reason: str | None
    failed_step: str | None
    message: str
    started_at: float
    duration_seconds: float
    steps: tuple[StepResult, ...] = field(default_factory=tuple)
    # Down tries made again within this run before this one (`retries:`); this is the last.
    retries: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not Status.DOWN

    @property
    def shown_reason(self) -> str | None:
        """Why the run is not up, as every view shows it: the failure reason of a down run,
        the cause on the first degraded step of a degraded one (`slow` unless a warning
        assertion failed); None for an up run."""
        if self.status is Status.DEGRADED:
            degraded = (s.reason for s in self.steps if s.status is Status.DEGRADED)
            return next(degraded, None) or DEGRADED_REASON
        return self.reason

    @property
    def http_status(self) -> int | None:
        """The status of the failing step, else of the last step that got one."""
        for step in reversed(self.steps):
            if (self.failed_step is None or step.name == self.failed_step) and step.http_status:
                return step.http_status
        return None
