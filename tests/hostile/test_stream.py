"""Hostile event streams through the real engine and a `stream` step: each ends with its
reason, within the journey's deadline (or sooner, at the limit the step sets), in bounded
memory, and without holding the event loop from the other checks.

    /sse-endless       events forever, never the done event: `timeout` at the deadline,
                       the message saying how many events came and how long the last gap was
    /sse-huge-event    one event of 1 GiB: `body_too_large` at max_body, the rest unread
    /sse-flood         tiny events as fast as the client reads: `body_too_large` at max_body,
                       every event up to it parsed, the loop free for others meanwhile
    /sse-comments      keep-alives forever: never an event, so `first_event_timeout` at
                       first_event_within, or `timeout` at the deadline
    /sse-drip          one byte at a time: events complete too slowly, so `stream_stalled`
                       at max_gap (or `first_event_timeout`, or `timeout`)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from uptime_probe.config import parse_config
from uptime_probe.probe import CheckPlan, Status, compile_checks, run_check
from uptime_probe.probe.kinds.stream import StreamFigures

from .server import HostileServer
from .test_classification import (
    FAST_DEADLINE,
    FAST_LIMIT,
    IDLE_TIMEOUT,
    MARGIN,
    MAX_BODY,
    MIB,
    PEAK_OVER_CAP,
    SERVER_AHEAD,
    SILENT_DEADLINE,
    assert_never_internal,
    measured_run,
    parser,  # noqa: F401  (a fixture: every case under both of aiohttp's parsers)
    server,  # noqa: F401  (a fixture)
)

DONE = {"done": "[DONE]"}


def stream_plan(
    url: str,
    *,
    deadline: float = SILENT_DEADLINE,
    expect: dict[str, Any] | None = None,
    stream: dict[str, Any] | None = None,
    max_body: int = MAX_BODY,
    name: str = "hostile",
) -> CheckPlan:
    step: dict[str, Any] = {
        "name": "answer",
        "stream": {"url": url, **(stream or DONE)},
        "max_body": max_body,
    }
    if expect:
        step["expect"] = expect
    check = {"name": name, "interval": "60s", "timeout": f"{int(deadline * 1000)}ms"}
    document = {"checks": [{**check, "steps": [step]}]}
    config = parse_config(yaml.safe_dump(document), base_dir=Path("/"))
    return compile_checks(config)[name]


@dataclass(frozen=True)
class Case:
    path: str
    reason: str
    says: str  # a fragment of the message
    expect: dict[str, Any] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=lambda: DONE)
    deadline: float = FAST_DEADLINE
    # How the run ends: "deadline" (it takes all of it), "fast" (at once, or at the step's
    # own limit), "bytes" (when max_body is read: as fast as the parser goes, which under
    # tracemalloc and the pure-Python HTTP parser is a few seconds for 116,508 events).
    ends: str = "fast"


CASES: dict[str, Case] = {
    "endless": Case("/sse-endless", "timeout", "the stream was still open after",
                    deadline=SILENT_DEADLINE, ends="deadline"),
    "endless-with-limits": Case("/sse-endless", "timeout", "the stream was still open after",
                                {"first_event_within": "1s", "max_gap": "1s"},
                                deadline=SILENT_DEADLINE, ends="deadline"),
    "huge-event": Case("/sse-huge-event", "body_too_large",
                       f"stream exceeds max_body {MAX_BODY} bytes (decoded) after 0 events"),
    "flood": Case("/sse-flood", "body_too_large",
                  f"stream exceeds max_body {MAX_BODY} bytes (decoded) after 116508 events",
                  stream={}, ends="bytes"),
    "flood-collecting": Case("/sse-flood", "invalid_event", "event 1 is not JSON",
                             stream={"collect": "x"}),
    "comments": Case("/sse-comments", "timeout", "the stream was still open without an event:",
                     deadline=SILENT_DEADLINE, ends="deadline"),
    "comments-first-event": Case("/sse-comments", "first_event_timeout",
                                 "no event within 0.3s of the request",
                                 {"first_event_within": "300ms"}),
    "drip": Case("/sse-drip", "timeout", "the stream was still open after 1 event",
                 deadline=SILENT_DEADLINE, ends="deadline"),
    "drip-max-gap": Case("/sse-drip?interval_ms=40", "stream_stalled", "(max_gap 0.2s); ",
                         {"max_gap": "200ms"}),
    "drip-first-event": Case("/sse-drip?interval_ms=100", "first_event_timeout",
                             "bytes of an unfinished event", {"first_event_within": "300ms"}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
async def test_hostile_stream_ends_with_its_reason_in_bounded_time_and_memory(
    server: HostileServer,  # noqa: F811
    parser: str,  # noqa: F811
    case: str,
) -> None:
    spec = CASES[case]
    plan = stream_plan(
        server.url + spec.path, deadline=spec.deadline, expect=spec.expect, stream=spec.stream
    )

    run = await measured_run(plan)

    result = run.result
    assert_never_internal(result)
    assert result.reason == spec.reason, result
    assert spec.says in result.message, result
    assert run.elapsed <= spec.deadline + MARGIN, run
    if spec.ends == "deadline":
        assert run.elapsed >= spec.deadline - 0.05, run
        assert f"(journey deadline {spec.deadline:g}s)" in result.message
    elif spec.ends == "fast":
        assert run.elapsed < FAST_LIMIT, run
    # max_body (1 MiB) plus the parser's pieces, one chunk and the result.
    assert run.peak < MAX_BODY + PEAK_OVER_CAP, f"{run.peak / MIB:.1f} MiB"
    (answer,) = result.steps
    assert isinstance(answer.figures, StreamFigures), answer
    assert answer.response_sample is not None
    assert len(answer.response_sample.encode()) <= 2048
    async with asyncio.timeout(IDLE_TIMEOUT):
        await server.wait_idle()  # the run closed its connection: the server saw it leave


async def test_a_deadline_cut_says_how_many_events_and_the_last_gap(
    server: HostileServer,  # noqa: F811
) -> None:
    plan = stream_plan(server.url + "/sse-endless?interval_ms=50", deadline=0.6)

    run = await measured_run(plan)

    (answer,) = run.result.steps
    figures = answer.figures
    assert isinstance(figures, StreamFigures)
    assert 5 <= figures.events <= 13, figures
    assert f"after {figures.events} events, the last 0." in answer.message
    assert figures.longest_gap_seconds is not None
    assert 0.04 < figures.longest_gap_seconds < 0.5
    assert answer.response_sample is not None
    last = figures.events - 1
    assert answer.response_sample.endswith(f'data: {{"n": {last}}}\n\n')


@pytest.mark.parametrize("path", ["/sse-huge-event", "/sse-flood"])
async def test_the_run_stops_reading_at_max_body(
    server: HostileServer,  # noqa: F811
    path: str,
) -> None:
    """1 GiB offered: the client stops reading and closes, the server cannot push more
    than the kernel's socket buffers ahead of it."""
    run = await measured_run(stream_plan(server.url + path, deadline=5.0))

    assert run.result.reason == "body_too_large", run.result
    async with asyncio.timeout(IDLE_TIMEOUT):
        await server.wait_idle()
    assert server.bytes_sent < SERVER_AHEAD, server.bytes_sent


@pytest.mark.parametrize("path", ["/sse-flood", "/sse-huge-event", "/sse-comments"])
async def test_a_hostile_stream_does_not_hold_the_loop_from_other_checks(
    server: HostileServer,  # noqa: F811
    path: str,
) -> None:
    """While a stream is flooded, the loop keeps turning: a healthy check runs beside it
    as fast as alone, and no turn of the loop waits long."""
    hostile = stream_plan(server.url + path, deadline=1.5, max_body=4 * MIB)
    healthy = stream_plan(server.url + "/ok", name="healthy")  # not a stream: quick to judge
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)  # the probe of the loop's responsiveness, not a wait
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    flood = asyncio.create_task(run_check(hostile))
    healthy_runs = []
    for _ in range(10):
        started = time.perf_counter()
        result = await run_check(healthy)
        healthy_runs.append((time.perf_counter() - started, result))
    hostile_result = await flood
    done.set()
    await tick

    assert hostile_result.status is Status.DOWN
    assert all(result.reason == "not_a_stream" for _, result in healthy_runs), healthy_runs
    assert max(elapsed for elapsed, _ in healthy_runs) < 0.5, healthy_runs
    assert max(gaps) < 0.5, f"the loop was held for {max(gaps):.3f}s"
