"""Judging a response within its journey's deadline (probe/judging.py), against a real server.

What would be slow to judge (a big body, a slow JMESPath query, a JSON schema) is judged
in a worker process. When the journey's deadline passes first, the run is `timeout` with
a message naming what was being judged, the worker is killed and reaped, and the event
loop kept running meanwhile. Regexes run on RE2, so no pattern backtracks on any body.
The daemon-level version, watched by loopwatch, is tests/faults/test_hostile_judging.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.conftest import ServeApp
from uptime_probe.config import parse_config
from uptime_probe.config.redaction import Redactor
from uptime_probe.config.types import CpuBudget, Query, QueryTooSlow
from uptime_probe.probe import judging as judging_module
from uptime_probe.probe import run_check
from uptime_probe.probe.assertions import judge_response
from uptime_probe.probe.judging import INLINE_JSON_BYTES, JudgingPool, StepJudge
from uptime_probe.probe.model import Status
from uptime_probe.probe.tracing import PhaseRecorder

from .journeys import plan_of, run, step

EVIL = "a" * 26 + "!"  # held Python's `re` 5-7 s against ^(a+)+$
BACKTRACKING = "^(a+)+$"
ONES = 524_278
BIG = b'{"items":[' + b",".join([b"1"] * ONES) + b"]}"  # 1 MiB
SLOW_QUERY = "length(items[?@ > `0`])"  # ~1 s of pure Python over BIG
MARGIN = 0.3  # past the deadline: the loop's wake-up and the step's bookkeeping


def hostile_app() -> web.Application:
    async def evil_text(request: web.Request) -> web.Response:
        return web.Response(text=EVIL, headers={"X-Evil": EVIL})

    async def evil_json(request: web.Request) -> web.Response:
        return web.json_response({"s": EVIL})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=BIG, content_type="application/json")

    async def ones(request: web.Request) -> web.Response:
        return web.json_response({"items": [1] * int(request.query["n"])})

    async def page(request: web.Request) -> web.Response:
        # Text over the inline limit for text checks (256 KiB): judged in a worker.
        return web.Response(text="<p>ok</p>" + " " * 300_000 + "<footer>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/evil-text", evil_text)
    app.router.add_get("/evil-json", evil_json)
    app.router.add_get("/big", big)
    app.router.add_get("/ones", ones)
    app.router.add_get("/page", page)
    return app


@pytest.fixture
async def hostile(serve_app: ServeApp) -> str:
    return await serve_app(hostile_app())


@pytest.fixture
async def pool() -> AsyncIterator[JudgingPool]:
    async with JudgingPool() as judging:
        await judging.start()
        yield judging


class LoopGaps:
    """The longest time the test's own event loop went without running a 1 ms ticker."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> LoopGaps:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def gone(pid: int, timeout: float = 5.0) -> None:
    """Wait until process `pid` has ended and been reaped (its pidfd polls readable)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(pidfd, lambda: ended.done() or ended.set_result(None))
    try:
        async with asyncio.timeout(timeout):
            await ended
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    assert not Path(f"/proc/{pid}").exists(), f"process {pid} ended but was not reaped"


async def warm_worker(pool: JudgingPool, hostile: str) -> int:
    """One judged-in-a-worker run, so the pool holds exactly one idle worker: its pid."""
    plan = plan_of(
        step(hostile + "/big", expect={"json": [{"query": "length(items)", "gt": 0}]}),
        judging=pool,
    )
    result = await run(plan)
    assert result.status == "up", result
    (pid,) = pool.pids()
    return pid


# --- regexes: linear time, on the loop ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        pytest.param("/evil-text", {"body_matches": BACKTRACKING}, id="body_matches"),
        pytest.param("/evil-text", {"headers": {"X-Evil": BACKTRACKING}}, id="headers"),
        pytest.param(
            "/evil-json", {"json": [{"query": "s", "matches": BACKTRACKING}]}, id="json-matches"
        ),
    ],
)
async def test_a_backtracking_pattern_is_judged_at_once(
    hostile: str,
    pool: JudgingPool,
    path: str,
    expect: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On the loop by its size, not by luck: a descheduled process could overrun the 2 ms
    # query budget and send even a 27-byte answer to a worker.
    monkeypatch.setattr(judging_module, "INLINE_SECONDS", 60.0)
    plan = plan_of(step(hostile + path, expect=expect), timeout="2s", judging=pool)
    started = time.perf_counter()
    async with LoopGaps() as gaps:
        result = await run(plan)
    wall = time.perf_counter() - started

    assert (result.status, result.reason) == ("down", "assertion_failed"), result
    assert f"expected to match '{BACKTRACKING}'" in result.message
    assert wall < 1.0, f"judging took {wall:.2f}s (Python's re: 5-7 s)"
    # The defect held the loop for seconds; half a second leaves room for a loaded machine.
    assert gaps.longest < 0.5, f"the loop stalled {gaps.longest:.3f}s"
    assert pool.workers == 0, "a 27-byte answer is judged on the loop"


# --- a slow query: cut at the deadline, named, its worker killed ----------------------------


async def test_a_slow_query_is_cut_at_the_deadline_and_its_worker_killed(
    hostile: str, pool: JudgingPool
) -> None:
    pid = await warm_worker(pool, hostile)
    plan = plan_of(
        step(hostile + "/big", expect={"json": [{"query": SLOW_QUERY, "gt": 0}]}),
        timeout="1s",
        judging=pool,
    )
    started = time.perf_counter()
    async with LoopGaps() as gaps:
        result = await run(plan)
    wall = time.perf_counter() - started

    assert (result.status, result.reason) == ("down", "timeout"), result
    assert result.message == (
        f"fetch: judging the body against json `{SLOW_QUERY}` did not finish before the "
        "deadline (journey deadline 1s)"
    )
    # The run's duration includes the judging: it lasted until the deadline.
    assert 1.0 <= result.duration_seconds < 1.0 + MARGIN, result.duration_seconds
    assert wall < 1.0 + MARGIN, wall
    # The defect held the loop for seconds; half a second leaves room for a loaded machine.
    assert gaps.longest < 0.5, f"the loop stalled {gaps.longest:.3f}s"
    assert pool.killed == 1
    await gone(pid)  # killed and reaped: no CPU spent on a run that has ended


async def test_a_fresh_worker_replaces_a_killed_one(hostile: str, pool: JudgingPool) -> None:
    killed = await warm_worker(pool, hostile)
    slow = step(hostile + "/big", expect={"json": [{"query": SLOW_QUERY, "gt": 0}]})
    assert (await run(plan_of(slow, timeout="0.5s", judging=pool))).reason == "timeout"
    await gone(killed)

    replacement = await warm_worker(pool, hostile)
    assert replacement != killed
    assert pool.started == 2


async def test_a_heavy_answer_within_its_deadline_is_judged_and_timed(
    hostile: str, pool: JudgingPool
) -> None:
    await warm_worker(pool, hostile)
    plan = plan_of(
        step(hostile + "/big", expect={"json": [{"query": SLOW_QUERY, "equals": ONES}]}),
        timeout="20s",
        judging=pool,
    )
    async with LoopGaps() as gaps:
        result = await run(plan)

    assert result.status == "up", result
    assert result.steps[0].assertions[0].actual == str(ONES)
    # The worker's seconds are the run's: the duration includes the judging.
    assert result.duration_seconds > 0.3, result.duration_seconds
    # The defect held the loop for seconds; half a second leaves room for a loaded machine.
    assert gaps.longest < 0.5, f"the loop stalled {gaps.longest:.3f}s"


async def test_a_full_pool_makes_a_run_wait_within_its_deadline(hostile: str) -> None:
    async with JudgingPool(max_workers=1) as pool:
        await warm_worker(pool, hostile)
        slow = step(hostile + "/big", expect={"json": [{"query": SLOW_QUERY, "gt": 0}]})
        healthy = step(
            hostile + "/ones?n=3", expect={"json": [{"query": "length(items)", "gt": 0}]}
        )
        first, second, small = await asyncio.gather(
            run(plan_of(slow, timeout="1s", judging=pool)),
            run(plan_of(slow, timeout="1s", judging=pool)),
            run(plan_of(healthy, timeout="1s", judging=pool)),
        )

    assert small.status == "up", small  # a small answer never waits for a worker
    messages = sorted([first.message, second.message])
    assert [r.reason for r in (first, second)] == ["timeout", "timeout"]
    assert messages == sorted(
        [
            f"fetch: judging the body against json `{SLOW_QUERY}` did not finish before the "
            "deadline (journey deadline 1s)",
            "fetch: judging the response (waiting for a free judging worker) did not finish "
            "before the deadline (journey deadline 1s)",
        ]
    )


async def test_a_worker_killed_from_outside_is_an_internal_error(
    hostile: str, pool: JudgingPool
) -> None:
    pid = await warm_worker(pool, hostile)
    slow = step(hostile + "/big", expect={"json": [{"query": SLOW_QUERY, "gt": 0}]})
    running = asyncio.create_task(run_check(plan_of(slow, timeout="20s", judging=pool)))
    for _ in range(2000):  # until the job has taken the worker (bounded)
        if pool.idle_workers == 0:
            break
        await asyncio.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    result = await running

    assert (result.status, result.reason) == ("down", "internal"), result
    assert "the judging worker exited" in result.message
    await gone(pid)


async def test_closing_the_pool_ends_every_process(hostile: str) -> None:
    pool = JudgingPool()
    pid = await warm_worker(pool, hostile)
    zygote = pool.zygote_pid
    assert zygote is not None

    await pool.close()

    await gone(pid)
    await gone(zygote)
    assert pool.workers == 0


# --- where a response is judged -------------------------------------------------------------

SCHEMA = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}}

PARITY = [
    pytest.param("/big", {"json": [{"query": "length(items)", "gt": 0}]}, {}, id="json-pass"),
    pytest.param(
        "/big",
        {"json": [{"query": "items[0]", "equals": 2, "reason": "wrong_first"}]},
        {},
        id="json-fail-own-reason",
    ),
    pytest.param(
        "/big",
        {"json": [{"query": "items[0]", "equals": 2, "severity": "warning"}]},
        {},
        id="json-warning-degraded",
    ),
    pytest.param("/big", {}, {"first": "items[0]", "count": "length(items)"}, id="extract"),
    pytest.param("/big", {}, {"missing": "nope"}, id="extract-nothing"),
    pytest.param("/big", {"json_schema": "schema.json"}, {}, id="schema-pass"),
    pytest.param(
        "/ones?n=2", {"json_schema": "schema.json", "body_contains": "1"}, {}, id="schema-small"
    ),
    pytest.param("/page", {"body_contains": "<footer>", "body_matches": "^<p>ok"}, {}, id="text"),
    pytest.param("/page", {"body_not_contains": "<footer>"}, {}, id="text-fail"),
    pytest.param("/page", {"json": [{"query": "a", "exists": True}]}, {}, id="invalid-json"),
]


@pytest.mark.parametrize(("path", "expect", "extract"), PARITY)
async def test_a_worker_gives_the_verdict_the_loop_would(
    hostile: str,
    pool: JudgingPool,
    tmp_path: Path,
    path: str,
    expect: dict[str, Any],
    extract: dict[str, str],
) -> None:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    document = {
        "checks": [
            {
                "name": "c",
                "steps": [
                    {"name": "s", "request": {"url": hostile + path}, "expect": expect}
                    | ({"extract": extract} if extract else {})
                ],
            }
        ]
    }
    step_config = parse_config(json.dumps(document), env={}, base_dir=tmp_path).checks[0].steps[0]
    judge = StepJudge(step_config.expect, step_config.extract, pool, Redactor([]))
    status, headers, body = await fetch(hostile + path)

    judged = await judge.judge(status, headers, body, PhaseRecorder())

    assert judged.off_loop_seconds > 0, "judged in a worker"
    assert judged.verdict == judge_response(judge.rules, status, headers, body)


async def fetch(url: str) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers, await response.read()


async def test_a_small_answer_is_judged_on_the_loop(
    hostile: str, pool: JudgingPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # By its size, not by luck (the 2 ms query budget on a descheduled process).
    monkeypatch.setattr(judging_module, "INLINE_SECONDS", 60.0)
    plan = plan_of(
        step(
            hostile + "/ones?n=100",
            expect={"json": [{"query": "length(items)", "equals": 100}], "body_contains": "1"},
            extract={"first": "items[0]"},
        ),
        judging=pool,
    )
    status, headers, body = await fetch(hostile + "/ones?n=100")
    judged = await plan.steps[0].judge.judge(status, headers, body, PhaseRecorder())

    assert judged.verdict.status is Status.UP
    assert judged.off_loop_seconds == 0.0
    assert pool.workers == 0, "no worker was needed"


async def test_a_small_body_with_a_slow_query_goes_to_a_worker(
    hostile: str, pool: JudgingPool
) -> None:
    """Under the size limit, a query still gets only 2 ms of the loop: a filter over
    5,000 items takes longer, so the whole response is judged again in a worker."""
    path = "/ones?n=5000"
    status, headers, body = await fetch(hostile + path)
    assert len(body) < INLINE_JSON_BYTES
    plan = plan_of(
        step(hostile + path, expect={"json": [{"query": SLOW_QUERY, "equals": 5000}]}),
        judging=pool,
    )

    judged = await plan.steps[0].judge.judge(status, headers, body, PhaseRecorder())

    assert judged.verdict.status is Status.UP, judged.verdict
    assert judged.off_loop_seconds > 0
    assert pool.started == 1


# --- the zygote starts when first needed -----------------------------------------------------


async def test_the_zygote_starts_at_the_first_answer_over_the_budget(hostile: str) -> None:
    """A pool nobody started runs no process while answers are small; the first answer
    over the inline budget starts the zygote, and its worker judges a regex as the loop
    would, passing and failing."""
    async with JudgingPool() as pool:
        small = plan_of(
            step(hostile + "/ones?n=10", expect={"json": [{"query": "length(items)", "gt": 0}]}),
            judging=pool,
        )
        assert (await run(small)).status == "up"
        assert pool.zygote_pid is None, "small answers need no judging process"

        matching = plan_of(
            step(hostile + "/page", expect={"body_matches": "^<p>ok</p> +<footer>$"}),
            judging=pool,
        )
        result = await run(matching)
        assert result.status == "up", result
        zygote = pool.zygote_pid
        assert zygote is not None, "the heavy answer started the zygote"
        assert pool.started == 1

        failing = plan_of(
            step(hostile + "/page", expect={"body_matches": "<header>"}), judging=pool
        )
        result = await run(failing)
        assert (result.status, result.reason) == ("down", "assertion_failed"), result
        assert "expected to match '<header>'" in result.message, result
        assert pool.zygote_pid == zygote, "one zygote serves every later job"
    await gone(zygote)


def test_time_the_machine_gave_to_others_does_not_spend_the_inline_budget() -> None:
    """The inline budget is the loop thread's CPU: on a loaded machine the daemon waits for
    a core, and that wait must not send a small answer to a worker (starting the zygote)."""
    budget = CpuBudget(0.005)
    time.sleep(0.05)  # wall time passes, this thread's CPU does not: as when descheduled
    assert not budget.check(), "a wait for the CPU spent the budget"
    query = Query("length(items[?@ > `0`])")
    assert query.search({"items": [1, 2, 3]}, budget=budget) == 3

    spent = CpuBudget(0.005)
    deadline = time.monotonic() + 10
    while not spent.check():  # bounded: 5 ms of CPU comes long before 10 s
        assert time.monotonic() < deadline
        sum(range(1000))
    with pytest.raises(QueryTooSlow):
        query.search({"items": [1] * 100}, budget=spent)


def _children() -> set[int]:
    """This process's child processes, living or not yet reaped (from /proc: their ppid)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            if int(stat.rpartition(")")[2].split()[1]) == os.getpid():
                found.add(int(entry.name))
    return found


async def test_a_pool_closed_while_its_zygote_starts_leaves_no_process_behind() -> None:
    """A daemon stopping right after it started: the zygote starting in the background
    must not outlive the pool that was closed under it."""
    before = _children()
    pool = JudgingPool()
    starting = asyncio.create_task(pool.start())
    await asyncio.sleep(0)  # let it begin: the zygote is being started, not yet ready
    await pool.close()
    await starting  # ends quietly: the pool is closed
    assert pool.zygote_pid is None
    assert _children() <= before
