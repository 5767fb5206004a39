"""The daemon's own dependencies fail: notifier endpoints and the data directory.

A check that fails every other run (failure and success thresholds of 1) opens and
resolves an incident on every run, so notifications never stop. Its two notifiers are
broken: `hangs` posts to tests/hostile's `/hang` (accepts, never answers) and `refuses`
to a loopback port where nothing listens.

The data directory then becomes unwritable. As root, permission bits do not stop writes
and SQLite keeps its files open, so neither chmod nor removing the directory makes a
write fail; a read-only or full filesystem needs mount privileges. What does work, for
any user, is the kernel's file size limit: `prlimit(RLIMIT_FSIZE)` on the running
daemon, set to 1 byte, makes every write past the first byte of any file fail with
EFBIG (Python ignores SIGXFSZ), which SQLite reports as it would a full disk. Lifting the
limit is the disk freeing up.

What must hold: probing goes on at its pace throughout; each failure is counted
(`uptime_probe_notifications_total{result="failed"}` per notifier,
`uptime_probe_store_errors_total`); the store writes again once it can; and the event
loop is never held for more than 50 ms by uptime_probe (loopwatch.py).
"""

from __future__ import annotations

import resource
import signal
from pathlib import Path
from typing import Any

from tests.conftest import ServeApp
from tests.daemon.support import Scrape, http_check
from tests.hostile.server import HostileServer, refused_port

from .conftest import StartDaemon
from .support import CountingTarget, assert_loop_never_blocked, run_rows

RUNS = "uptime_probe_check_runs_total"
NOTIFICATIONS = "uptime_probe_notifications_total"
STORE_ERRORS = "uptime_probe_store_errors_total"
CHECKS = ("flapping", "steady")


def failed(scrape: Scrape, notifier: str) -> float:
    return scrape.get(NOTIFICATIONS, notifier=notifier, result="failed")


def runs(scrape: Scrape) -> dict[str, float]:
    return {name: scrape.value(RUNS, check=name) for name in CHECKS}


async def test_hanging_and_refusing_notifiers_and_an_unwritable_store(
    start_daemon: StartDaemon, serve_app: ServeApp, tmp_path: Path
) -> None:
    # 500 on odd requests, 200 on even: down, up, down, ...
    target = CountingTarget(status_for=lambda _check, count: 500 if count % 2 else 200)
    url = await serve_app(target.app())
    async with HostileServer() as hanging:
        flapping: dict[str, Any] = http_check("flapping", f"{url}/flapping", timeout="250ms")
        flapping |= {"failure_threshold": 1, "success_threshold": 1}
        flapping["notifiers"] = ["hangs", "refuses"]
        steady = http_check("steady", f"{url}/steady", timeout="250ms")
        steady["notifiers"] = []
        notifiers = {
            "hangs": {"kind": "webhook", "url": f"{hanging.url}/hang", "timeout": "300ms"},
            "refuses": {
                "kind": "webhook",
                "url": f"http://127.0.0.1:{await refused_port()}/",
                "timeout": "300ms",
            },
        }
        daemon = start_daemon(
            [flapping, steady], notifiers=notifiers, server={"watch_interval": "1h"}
        )
        await daemon.started()
        pid = daemon.process.pid

        # 1. Notifiers failing: every delivery ends `failed`, and probing goes on.
        first = await daemon.wait_for_scrape(
            lambda s: failed(s, "hangs") >= 1 and failed(s, "refuses") >= 1,
            "a failed delivery to each notifier",
        )
        assert first.get(NOTIFICATIONS, notifier="hangs", result="sent") == 0
        assert first.get(NOTIFICATIONS, notifier="refuses", result="sent") == 0
        assert hanging.connections_accepted >= 1  # it was really tried, and hung

        # 2. The data directory becomes unwritable (see the module docstring).
        data = tmp_path / "data"
        assert run_rows(data) > 0
        soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))
        try:
            broken = await daemon.scrape()
            during = await daemon.wait_for_scrape(
                lambda s: (
                    s.value(STORE_ERRORS) >= broken.value(STORE_ERRORS) + 3
                    and all(runs(s)[n] >= runs(broken)[n] + 3 for n in CHECKS)
                ),
                "store errors counted while probing goes on",
            )
            assert daemon.logs("store_write_lost"), daemon.log_text()
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))

        # 3. Writable again: rows are written again, and the errors stop.
        rows_before = run_rows(data)
        recovered = await daemon.wait_for_scrape(
            lambda s: all(runs(s)[n] >= runs(during)[n] + 3 for n in CHECKS),
            "runs after the disk freed up",
        )
        await daemon.wait_for_scrape(lambda s: run_rows(data) > rows_before, "rows written again")
        errors_after = (await daemon.scrape()).value(STORE_ERRORS)
        await daemon.wait_for_scrape(
            lambda s: all(runs(s)[n] >= runs(recovered)[n] + 2 for n in CHECKS),
            "more runs with a writable store",
        )
        final = await daemon.scrape()
        assert final.value(STORE_ERRORS) == errors_after  # no new losses
        assert failed(final, "hangs") >= 1
        assert failed(final, "refuses") >= 1
        assert daemon.process.poll() is None

        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    assert_loop_never_blocked(daemon)
