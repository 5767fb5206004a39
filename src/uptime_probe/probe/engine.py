"""run_check: a check's steps in order, under one deadline, into a CheckResult.

Durations come from `time.perf_counter()`, never `loop.time()`: uvloop's loop clock
has 1 ms resolution and is read once per iteration (docs/benchmarks.md).

The engine is pure: it takes a plan and returns data. It knows nothing of
scheduling, metrics, storage or notifications.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

import aiohttp

from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps import ExpectBase
from uptime_probe.probe.classify import classify_deadline, classify_exception
from uptime_probe.probe.kinds import Attempt, RunContext
from uptime_probe.probe.kinds.base import NO_RESOURCES, SAMPLE_BYTES
from uptime_probe.probe.model import (
    DEGRADED_REASON,
    AssertionOutcome,
    CheckResult,
    FailureReason,
    PhaseTimings,
    Status,
    StepResult,
    is_content_reason,
)
from uptime_probe.probe.plan import CheckPlan, StepPlan
from uptime_probe.probe.sessions import SessionPool
from uptime_probe.probe.tracing import JUDGING, PhaseRecorder


@dataclass(slots=True)
class _InFlight:
    """Where the journey is, so a deadline can say which step it cut and how."""

    step: StepPlan | None = None
    started: float = 0.0
    # When the step's first request started out, and what its attempts held (Attempt).
    began: float = 0.0
    held: float = 0.0
    attempts: int = 0
    last: Attempt | None = None
    between_polls: bool = False


async def run_check(
    plan: CheckPlan,
    *,
    resolver: aiohttp.abc.AbstractResolver | None = None,
    resources: Mapping[str, object] = NO_RESOURCES,
    sessions: SessionPool | None = None,
) -> CheckResult:
    """Run the journey, and again up to `retries.count` times while it ends down.

    The run that counts is the last one tried; `retries` says how many came before it.
    Each try has the whole timeout (the loader checks that every try fits the interval).
    Never raises, except CancelledError.

    `resources` are the long-lived objects kinds need beyond one run (the daemon's
    browser, where screenshots go), by key; the engine only hands them on. `sessions`: the
    HTTP sessions runs borrow and give back clean (probe/sessions.py), with the resolver
    they use; without it, each run builds its own on `resolver`.
    """
    policy = plan.check.retries
    result = await _run_journey(plan, resolver, resources, sessions)
    tries_left = policy.count if policy is not None else 0
    retries = 0
    while result.status is Status.DOWN and tries_left > 0:
        assert policy is not None
        # Waiting between tries is the behaviour asked for, not synchronisation.
        await asyncio.sleep(policy.delay)
        tries_left -= 1
        retries += 1
        result = await _run_journey(plan, resolver, resources, sessions)
    return replace(result, retries=retries) if retries else result


async def _run_journey(
    plan: CheckPlan,
    resolver: aiohttp.abc.AbstractResolver | None,
    resources: Mapping[str, object],
    sessions: SessionPool | None,
) -> CheckResult:
    """Run every step once (polls repeat theirs). Never raises, except CancelledError."""
    started_at = time.time()
    started = time.perf_counter()
    results: list[StepResult] = []
    progress = _InFlight()
    # The journey ends with its last answer, not with the transports' teardown after it,
    # and starts when its first request started out, not with the run's setup; what the
    # target spent waiting on us in between (held) is not its latency (probe/tracing.py).
    ended: float | None = None
    began, held = started, 0.0
    try:
        deadline = started + plan.timeout
        async with RunContext(
            resolver, check=plan.name, deadline=deadline, resources=resources, sessions=sessions
        ) as run:
            values = dict(plan.values)
            try:
                async with asyncio.timeout(plan.timeout):
                    for step in plan.steps:
                        result = await _run_step(run, step, values, progress, plan)
                        if not results:
                            began = progress.began
                        held += progress.held
                        results.append(result)
                        ended = progress.last.ended if progress.last is not None else None
                        if result.status is Status.DOWN:
                            break
            except TimeoutError:
                ended = None
                results.append(_deadline_result(run, progress, plan, time.perf_counter()))
    except Exception as exc:
        ended = None
        reason, message = classify_exception(exc, redact=plan.redact)
        results.append(
            StepResult(
                name=progress.step.name if progress.step else "(setup)",
                status=Status.DOWN,
                reason=reason,
                message=plan.redact(message),
                duration_seconds=time.perf_counter() - started,
                kind=progress.step.config.kind if progress.step else "request",
            )
        )
    if ended is None:  # cut or broken: the run's whole time, from its setup
        return _summarise(plan, results, started_at, time.perf_counter() - started)
    return _summarise(plan, results, started_at + (began - started), ended - began - held)


async def _run_step(
    run: RunContext,
    step: StepPlan,
    values: dict[str, str],
    progress: _InFlight,
    plan: CheckPlan,
) -> StepResult:
    progress.step, progress.started, progress.attempts, progress.last = (
        step,
        time.perf_counter(),
        0,
        None,
    )
    progress.began, progress.held = progress.started, 0.0
    poll = step.config.poll
    poll_ends = progress.started + poll.within if poll is not None else 0.0
    while True:
        run.recorder = PhaseRecorder()
        run.deadline_note = None
        progress.attempts += 1
        attempt = await step.kind.attempt(step, values, run)
        progress.last = attempt
        if progress.attempts == 1 and attempt.began:
            progress.began = attempt.began
        progress.held += attempt.held
        if attempt.status is not Status.DOWN or poll is None:
            break
        next_try = time.perf_counter() + max(0.0, poll.every - attempt.duration)
        if next_try > poll_ends:
            break
        # Waiting between polls is the behaviour asked for, not synchronisation.
        progress.between_polls = True
        await asyncio.sleep(next_try - time.perf_counter())
        progress.between_polls = False
    values.update(attempt.extracted)
    return _step_result(
        step, attempt, run, progress, plan.redact, attempt.ended or time.perf_counter()
    )


def _step_result(
    step: StepPlan,
    attempt: Attempt,
    run: RunContext,
    progress: _InFlight,
    redact: Redactor,
    now: float,
) -> StepResult:
    status, reason, message = attempt.status, attempt.reason, attempt.message
    poll = step.config.poll
    if status is Status.DOWN and poll is not None and reason and is_content_reason(reason):
        reason = poll.reason
        message = f"{message} after {progress.attempts} attempts in {now - progress.started:.1f}s"
    expect = getattr(step.config, "expect", None)
    max_latency = expect.max_latency if isinstance(expect, ExpectBase) else None
    if status is Status.UP and max_latency is not None and attempt.duration > max_latency:
        status, reason = Status.DEGRADED, DEGRADED_REASON
        message = f"took {attempt.duration:.3f}s, above max_latency {max_latency:g}s"
    sample = None
    if status is Status.DOWN and attempt.body:
        sample = redact.cut_bytes(attempt.body, SAMPLE_BYTES)  # redacted, then cut
    return StepResult(
        name=step.name,
        status=status,
        reason=reason,
        message=redact(message),
        duration_seconds=now - progress.began - progress.held,
        kind=step.config.kind,
        http_status=attempt.http_status,
        timings=run.recorder.timings(),
        body_bytes=attempt.body_bytes,
        attempts=progress.attempts,
        assertions=_redact_outcomes(attempt.assertions, redact),
        tls_not_after=attempt.tls_not_after,
        response_sample=sample,
        figures=attempt.figures,
        artifact=attempt.artifact,
        trace=attempt.trace,
    )


def _redact_outcomes(
    outcomes: tuple[AssertionOutcome, ...], redact: Redactor
) -> tuple[AssertionOutcome, ...]:
    """An outcome's real value is the target's text, which may echo a secret."""
    if not redact.active:
        return outcomes
    return tuple(replace(o, actual=redact(o.actual)) for o in outcomes)


def _deadline_result(
    run: RunContext, progress: _InFlight, plan: CheckPlan, now: float
) -> StepResult:
    step = progress.step
    assert step is not None, "the deadline can only cut a step that started"
    last = progress.last
    poll = step.config.poll
    sample: str | None = None
    if poll is not None and last is not None and last.reason and is_content_reason(last.reason):
        # The journey ran out while still waiting for the expectation: the task is stuck.
        attempt = last
        message = f"{last.message}; journey deadline {plan.timeout:g}s reached while polling"
        reason: str = poll.reason
    elif poll is not None and last is not None and last.reason and progress.between_polls:
        # Cut while waiting to try again: the last attempt's transport or HTTP reason stands.
        attempt = last
        message = f"{last.message}; journey deadline {plan.timeout:g}s reached while polling"
        reason = last.reason
    else:
        # The kind knows better than the HTTP phases what was cut, and what it had so far
        # (a stream's events, its figures, its last events for the sample). Judging off the
        # loop (any kind's, probe/judging.py) is told the same way for every kind.
        noted = run.deadline_note() if run.deadline_note is not None else None
        if noted is not None and run.recorder.state != JUDGING:
            reason, detail = noted.reason or FailureReason.TIMEOUT, noted.message
        else:
            reason, detail = classify_deadline(run.recorder)
        message = f"{detail} (journey deadline {plan.timeout:g}s)"
        attempt = noted or last or Attempt(Status.DOWN)
        if noted is not None and noted.body:
            sample = plan.redact.cut_bytes(noted.body, SAMPLE_BYTES)  # redacted, then cut
    return StepResult(
        name=step.name,
        status=Status.DOWN,
        reason=reason,
        message=plan.redact(message),
        duration_seconds=now - progress.started,
        kind=step.config.kind,
        http_status=attempt.http_status,
        timings=run.recorder.timings() if last is None else PhaseTimings(),
        attempts=progress.attempts,
        assertions=_redact_outcomes(attempt.assertions, plan.redact),
        response_sample=sample,
        figures=attempt.figures,
    )


def _summarise(
    plan: CheckPlan, steps: list[StepResult], started_at: float, duration: float
) -> CheckResult:
    failed = next((s for s in steps if s.status is Status.DOWN), None)
    if failed is not None:
        return CheckResult(
            check=plan.name,
            status=Status.DOWN,
            reason=failed.reason or FailureReason.INTERNAL,
            failed_step=failed.name,
            message=f"{failed.name}: {failed.message}",
            started_at=started_at,
            duration_seconds=duration,
            steps=tuple(steps),
        )
    degraded = [s for s in steps if s.status is Status.DEGRADED]
    if degraded:
        return CheckResult(
            check=plan.name,
            status=Status.DEGRADED,
            reason=None,
            failed_step=degraded[0].name,
            message="; ".join(f"{s.name}: {s.message}" for s in degraded),
            started_at=started_at,
            duration_seconds=duration,
            steps=tuple(steps),
        )
    return CheckResult(
        check=plan.name,
        status=Status.UP,
        reason=None,
        failed_step=None,
        message=f"{len(steps)} step{'s' if len(steps) != 1 else ''} ok",
        started_at=started_at,
        duration_seconds=duration,
        steps=tuple(steps),
    )
