"""What every step kind shares: the attempt it returns, the run it runs in, its signature.

A kind is one module under `uptime_probe.probe.kinds` exposing `KIND`, an object with
`async attempt(plan, values, run) -> Attempt`. The engine knows kinds only through this
signature (docs/architecture.md): deadlines, polling, extraction into variables,
redaction and the summary are the engine's, the transport and its judging the kind's.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import aiohttp

from uptime_probe.probe.model import AssertionOutcome, Status, StepFigures
from uptime_probe.probe.sessions import SessionPool, new_session
from uptime_probe.probe.tracing import PhaseRecorder, TimedConnector

if TYPE_CHECKING:
    from uptime_probe.probe.assertions import Verdict
    from uptime_probe.probe.plan import StepPlan


# A failed step keeps at most this much of the response, as a sample for a person to read.
SAMPLE_BYTES = 2048


@dataclass(slots=True)
class Attempt:
    """The outcome of one try of a step (a polled step makes several)."""

    status: Status
    reason: str | None = None
    message: str = ""
    http_status: int | None = None
    body: bytes = b""  # what a failure's response sample is cut from
    body_bytes: int = 0
    assertions: tuple[AssertionOutcome, ...] = ()
    extracted: dict[str, str] = field(default_factory=dict)
    tls_not_after: float | None = None
    figures: StepFigures | None = None
    # A file the try left for a person (a failed browser step's screenshot): its path
    # under the run's artifact store (probe/artifacts.py).
    artifact: str | None = None
    # The Playwright trace of a failed browser step, beside its screenshot.
    trace: str | None = None
    duration: float = 0.0
    ended: float = 0.0  # perf_counter() when the answer was in (or the attempt gave up)
    # perf_counter() when its request started out (0.0: the attempt's own start), and the
    # seconds the target then waited on us (probe/tracing.py): a kind that measures these
    # makes its latency `ended - began - held`, so a busy loop does not lengthen it.
    began: float = 0.0
    held: float = 0.0

    def timed(self, recorder: PhaseRecorder, started: float, end: float) -> float:
        """Notes when the attempt's request started out and what the target waited on us
        meanwhile (`recorder`; `started` if the request never went out), and returns its
        latency up to `end`: the one way every kind that sends a request measures it."""
        self.began = recorder.began(started)
        self.held = recorder.held
        return end - self.began - self.held

    @classmethod
    def of_verdict(
        cls,
        verdict: Verdict,
        body: bytes,
        *,
        passed: str | None = None,
        http_status: int | None = None,
    ) -> Attempt:
        """The attempt a verdict (probe/judging.py) makes of what was received, `body`
        its failure sample; `passed`, when given, says what a pass means for the kind."""
        return cls(
            verdict.status,
            verdict.reason,
            passed if passed is not None and verdict.status is Status.UP else verdict.message,
            http_status=http_status,
            body=body,
            body_bytes=len(body),
            assertions=verdict.assertions,
            extracted=dict(verdict.extracted),
        )

    def fail(self, problem: tuple[str, str] | None) -> None:
        """Down for `problem` (a reason and a message), when there is one."""
        if problem is not None:
            self.status = Status.DOWN
            self.reason, self.message = problem


NO_RESOURCES: Mapping[str, object] = types.MappingProxyType({})

# What a kind says when the journey's deadline cuts it: the attempt so far, whose reason
# and message explain the cut (a stream's "after 12 events, the last 3.1s before") and
# whose figures and body (the sample) are what it had measured and received by then.
DeadlineNote = Callable[[], Attempt]


def cut_with(problem: Callable[[], tuple[str, str]]) -> DeadlineNote:
    """The deadline note of a kind whose cut is said by a reason and a message alone, with
    nothing measured or received worth keeping (a DNS query, a TCP exchange)."""
    return lambda: Attempt(Status.DOWN, *problem())


class RunContext:
    """One run's shared transport and progress, handed to every step's attempt.

    The HTTP session is made on first use, once per run, and shared by the run's
    HTTP-based steps, so cookies and keep-alive carry from step to step; a run of
    steps that never speak HTTP never builds one. A fresh connection and an empty cookie
    jar per run: every run meets the target as a new user would. With `sessions`, the
    session is borrowed from that pool and handed back clean (probe/sessions.py).
    """

    __slots__ = (
        "_connector",
        "_session",
        "_sessions",
        "check",
        "deadline",
        "deadline_note",
        "recorder",
        "resolver",
        "resources",
    )

    def __init__(
        self,
        resolver: aiohttp.abc.AbstractResolver | None = None,
        *,
        check: str = "",
        deadline: float | None = None,
        resources: Mapping[str, object] = NO_RESOURCES,
        sessions: SessionPool | None = None,
    ) -> None:
        self.resolver = sessions.resolver if sessions is not None else resolver
        self.check = check
        # perf_counter() at which the journey's deadline falls, for a kind that must leave
        # itself time before it (a browser step's screenshot); None: no deadline.
        self.deadline = deadline
        # Long-lived objects a kind needs beyond one run (a browser process, where files
        # go), built by the composition root; a kind takes its own by key and type.
        self.resources = resources
        self.recorder = PhaseRecorder()
        # Set by an attempt that can say better than the HTTP phases what a deadline cut.
        self.deadline_note: DeadlineNote | None = None
        self._sessions = sessions
        self._session: aiohttp.ClientSession | None = None
        self._connector: TimedConnector | None = None

    def http(self) -> tuple[aiohttp.ClientSession, TimedConnector]:
        if self._session is None or self._connector is None:
            if self._sessions is not None:
                self._session, self._connector = self._sessions.borrow()
            else:
                self._session, self._connector = new_session(self.resolver)
        return self._session, self._connector

    async def aclose(self) -> None:
        session, connector = self._session, self._connector
        if session is None or connector is None:
            return
        self._session = self._connector = None
        if self._sessions is not None:
            await self._sessions.give_back(session, connector)
        else:
            await session.close()

    async def __aenter__(self) -> RunContext:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: types.TracebackType | None,
    ) -> None:
        await self.aclose()


class StepKind(Protocol):
    """One kind of step: how it tries once. Never raises but on cancel.

    `figures` is the class of the measurements its attempts carry (None: none of their
    own), so the metrics can declare the kind's series before its first run.
    """

    figures: type[StepFigures] | None

    async def attempt(
        self, plan: StepPlan, values: Mapping[str, str], run: RunContext
    ) -> Attempt: ...
