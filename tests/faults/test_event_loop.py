"""The event loop is never held for more than 50 ms by uptime_probe, under mixed load.

Every fault test here runs its daemon through loopwatch.py and ends with
`assert_loop_never_blocked`, so each load (the reload storm, 500 runs in flight at
SIGTERM, 2,000 hanging checks, broken notifiers and store) is covered where it happens.
This one adds the readers: 500 checks (300 against a target that never answers, 200
healthy) under a cap of 100, overloaded by half, while the test reads /metrics, the status
page and the JSON API side by side, over and over (READS rounds).

Reloads are measured apart, in the benchmark (docs/benchmarks.md, "Reloads"): a large
file is parsed in a child process and every config applied in 5 ms slices, and the
figure is the longest pause of the loop at 10,000 checks, not a timed assertion here.

How the loop is watched, and why not with asyncio's debug mode: see loopwatch.py.
"""

from __future__ import annotations

import asyncio
import signal

from tests.conftest import ServeApp
from tests.daemon.support import http_check
from tests.hostile.server import HostileServer

from .conftest import StartDaemon
from .support import CountingTarget, assert_loop_never_blocked

HANGING = 300
HEALTHY = 200
CAP = 100
READS = 5
PAGES = ("/metrics", "/", "/api/v1/checks", "/api/v1/incidents", "/api/v1/checks/ok_0000/runs")


def checks(hang_url: str, ok_url: str) -> list[dict[str, object]]:
    hanging = [
        http_check(f"hang_{i:04d}", f"{hang_url}/hang", interval="2s", timeout="1s")
        for i in range(HANGING)
    ]
    healthy = [
        http_check(f"ok_{i:04d}", f"{ok_url}/ok_{i:04d}", interval="2s", timeout="1s")
        for i in range(HEALTHY)
    ]
    return hanging + healthy


async def test_loop_is_never_held_under_overload_and_reads(
    start_daemon: StartDaemon, serve_app: ServeApp
) -> None:
    target = CountingTarget()
    ok_url = await serve_app(target.app())
    async with HostileServer() as hanging:
        daemon = start_daemon(
            checks(hanging.url, ok_url),
            grace=1.0,
            max_concurrency=CAP,
            server={"watch_interval": "1h"},
        )
        await daemon.started(timeout=60)
        for _ in range(READS):
            answers = await asyncio.gather(*(daemon.request("GET", page) for page in PAGES))
            assert [status for status, _, _ in answers] == [200] * len(PAGES)
        await daemon.wait_for_scrape(
            lambda s: s.get("uptime_probe_check_runs_total", check="ok_0000") >= 2,
            "healthy runs",
        )
        assert hanging.connections_accepted > CAP  # overloaded: the cap was reached
        assert sum(len(v) for v in target.arrivals.values()) >= HEALTHY
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(timeout=20) == 0
    assert_loop_never_blocked(daemon)
