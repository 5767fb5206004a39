"""Hostile answers to judge: the daemon's loop keeps running and every deadline holds.

The targets of issue 13, item 1, served on 127.0.0.1 by the test: a 27-byte body and a
header `aaaaaaaaaaaaaaaaaaaaaaaaaa!` against `^(a+)+$` (with Python's `re`, 5.5-7 s of a
frozen loop per run), the same string in a JSON value under `matches:`, and a 1 MiB
`[1,1,...]` filtered by `length(items[?@ > `0`])` (about 1 s of pure Python, which came
back `up` under a 1 s timeout). Beside them, a healthy check every second.

What must hold, in a real daemon run through loopwatch.py:
  * uptime_probe never holds its event loop for more than 50 ms;
  * `/healthz` answers at once throughout;
  * the healthy check keeps its ticks (no gap between its runs much over its interval);
  * the regex checks fail as `assertion_failed` in milliseconds (RE2: linear time);
  * the slow query fails as `timeout` at its 1 s deadline, the message naming what was
    being judged, and the recorded duration including the judging;
  * its worker processes are killed and reaped: never more than the pool's two alive at
    once, and none left after the daemon exits.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from pathlib import Path

from aiohttp import web

from tests.conftest import ServeApp
from tests.daemon.support import DaemonProcess, http_check
from uptime_probe.probe.judging import DEFAULT_MAX_WORKERS

from .conftest import StartDaemon
from .support import CountingTarget, assert_loop_never_blocked

EVIL = "a" * 26 + "!"
BACKTRACKING = "^(a+)+$"
BIG = b'{"items":[' + b",".join([b"1"] * 524_278) + b"]}"  # 1 MiB
SLOW_QUERY = "length(items[?@ > `0`])"
CUT_RUNS = 4  # of the slow query, before the daemon is stopped
MARGIN = 0.3  # past a deadline: the loop's wake-up and the step's bookkeeping
HEALTHZ_LIMIT = 0.5  # seconds; a frozen loop took 5-7 s
HEALTHY_GAP = 1.6  # seconds between two runs of the 1 s healthy check, at most


def hostile_app() -> web.Application:
    async def evil_text(request: web.Request) -> web.Response:
        return web.Response(text=EVIL, headers={"X-Evil": EVIL})

    async def evil_json(request: web.Request) -> web.Response:
        return web.json_response({"s": EVIL})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=BIG, content_type="application/json")

    app = web.Application()
    app.router.add_get("/evil-text", evil_text)
    app.router.add_get("/evil-json", evil_json)
    app.router.add_get("/big", big)
    return app


def descendants(root: int) -> set[int]:
    """Every live process under `root` (children, grandchildren), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":  # a zombie is dead, only not yet reaped
            parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


async def test_hostile_answers_never_freeze_the_daemon(
    start_daemon: StartDaemon, serve_app: ServeApp
) -> None:
    hostile = await serve_app(hostile_app())
    healthy = CountingTarget()
    healthy_url = await serve_app(healthy.app())
    daemon = start_daemon(
        [
            http_check(
                "regex_body",
                hostile + "/evil-text",
                interval="2s",
                timeout="2s",
                expect={"body_matches": BACKTRACKING},
            ),
            http_check(
                "regex_header",
                hostile + "/evil-text",
                interval="2s",
                timeout="2s",
                expect={"headers": {"X-Evil": BACKTRACKING}},
            ),
            http_check(
                "regex_json",
                hostile + "/evil-json",
                interval="2s",
                timeout="2s",
                expect={"json": [{"query": "s", "matches": BACKTRACKING}]},
            ),
            http_check(
                "slow_query",
                hostile + "/big",
                interval="1s",
                timeout="1s",
                expect={"json": [{"query": SLOW_QUERY, "gt": 0}]},
            ),
            http_check("healthy", healthy_url + "/healthy", interval="1s", timeout="1s"),
        ],
        server={"watch_interval": "1h"},
        # Ready before the first run: a 1s deadline leaves no room for the zygote's imports,
        # and every slow_query run must be cut while its query is judged.
        judging={"start": "at_start"},
    )
    await daemon.started(timeout=60)
    pid = daemon.process.pid

    healthz: list[float] = []
    alive_at_once = 0
    seen: set[int] = set()
    deadline = time.monotonic() + 40
    while len(daemon.logs("check_failed", check="slow_query")) < CUT_RUNS:
        assert time.monotonic() < deadline, daemon.log_text()
        started = time.perf_counter()
        status, body, _ = await daemon.request("GET", "/healthz")
        healthz.append(time.perf_counter() - started)
        assert (status, body) == (200, "ok\n")
        processes = descendants(pid)  # the zygote and its workers
        alive_at_once = max(alive_at_once, len(processes))
        seen |= processes
        await asyncio.sleep(0.1)  # the pace of the watch, not synchronisation

    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=20) == 0

    assert_loop_never_blocked(daemon)
    assert max(healthz) < HEALTHZ_LIMIT, f"/healthz took up to {max(healthz):.2f}s"
    assert_kept_its_ticks(healthy.arrivals["healthy"])
    assert_regexes_failed_at_once(daemon)
    assert_slow_query_cut_at_its_deadline(daemon)
    # One zygote, and at most the pool's workers beside it.
    assert 2 <= alive_at_once <= 1 + DEFAULT_MAX_WORKERS, alive_at_once
    assert len(seen) >= 3, "cut workers were replaced by fresh ones"
    leftovers = {p for p in seen if Path(f"/proc/{p}").exists()}
    assert not leftovers, f"judging processes left after the daemon exited: {leftovers}"


def assert_kept_its_ticks(arrivals: list[float]) -> None:
    assert len(arrivals) >= CUT_RUNS, arrivals
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps) < HEALTHY_GAP, f"the healthy check went {max(gaps):.2f}s without a run"


def assert_regexes_failed_at_once(daemon: DaemonProcess) -> None:
    for check in ("regex_body", "regex_header", "regex_json"):
        failures = daemon.logs("check_failed", check=check)
        assert failures, check
        for record in failures:
            assert record["reason"] == "assertion_failed", record
            assert f"expected to match '{BACKTRACKING}'" in record["message"], record
            assert record["duration_seconds"] < 0.5, record


def assert_slow_query_cut_at_its_deadline(daemon: DaemonProcess) -> None:
    failures = daemon.logs("check_failed", check="slow_query")
    assert len(failures) >= CUT_RUNS
    for record in failures:
        assert record["reason"] == "timeout", record
        assert record["message"] == (
            f"fetch: judging the body against json `{SLOW_QUERY}` did not finish before "
            "the deadline (journey deadline 1s)"
        ), record
        # The recorded duration runs to the deadline: the judging is in it.
        assert 1.0 <= record["duration_seconds"] < 1.0 + MARGIN, record
