"""Hostile pages against the real daemon (`uptime-probe run`, a subprocess, with Debian's
Chromium): a page that hangs, one allocating memory without end, one opening 1,000
requests, and Chromium killed mid-run. Each ends with a reason within its deadline, and
the daemon and its other checks stay healthy: an HTTP check keeps passing on schedule,
/healthz answers at once, and a plain browser check renders again after the crash.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp import web

from tests.daemon.support import DaemonProcess
from tests.probe.kinds.browser_target import (
    BrowserTarget,
    browser_process,
    build_app,
    chromium_processes,
    resident_bytes,
)

# The browser checks share the default two browser slots (browser.max_concurrent): the
# hostile pages take turns with the plain one, which waits for a slot, never fails for it.
CONFIG = """
defaults: {{failure_threshold: 1, success_threshold: 1}}
checks:
  - name: steady
    interval: 1s
    timeout: 1s
    steps:
      - name: fetch
        request: {{url: "{url}/tiny"}}
  - name: plain
    interval: 10s
    timeout: 10s
    steps:
      - name: page
        browser: {{url: "{url}/plain"}}
        expect: {{elements: [{{selector: "#items li", min_count: 3}}]}}
  - name: hanging
    interval: 6s
    timeout: 2s
    steps:
      - name: page
        browser: {{url: "{url}/hang"}}
  - name: memory
    interval: 10s
    timeout: 10s
    steps:
      - name: page
        browser:
          url: "{url}/memory"
          actions: [{{wait_for: "#never"}}]
  - name: thousand
    interval: 10s
    timeout: 8s
    steps:
      - name: page
        browser: {{url: "{url}/many?n=1000"}}
  - name: thousand_hanging
    interval: 8s
    timeout: 3s
    steps:
      - name: page
        browser: {{url: "{url}/many?n=1000&to=/hang"}}
"""
TIMEOUTS = {"plain": 10, "hanging": 2, "memory": 10, "thousand": 8, "thousand_hanging": 3}
MARGIN = 1.0


@pytest.fixture
async def target() -> AsyncIterator[BrowserTarget]:
    state = BrowserTarget()
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


async def sample_peak(pid: int, peaks: list[int]) -> None:
    """The most memory Chromium's processes under `pid` held at once, sampled until
    cancelled (what the kernel would have to find, renderers and all)."""
    while True:
        # Reading /proc of every process: in a thread, so the target server keeps answering.
        peaks.append(await asyncio.to_thread(lambda: resident_bytes(list(chromium_processes(pid)))))
        await asyncio.sleep(0.25)  # a sampling period, not synchronisation


def chromium_state(pid: int) -> str:
    """The process's state letter (R, S, Z, ...), or "" when it no longer exists."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def running(pid: int) -> bool:
    return chromium_state(pid) not in ("", "Z", "X")


async def healthz_within(daemon: DaemonProcess, seconds: float) -> None:
    started = time.perf_counter()
    status, _, _ = await daemon.request("GET", "/healthz")
    assert status == 200
    assert time.perf_counter() - started < seconds


async def test_hostile_pages_and_a_chromium_crash_leave_the_daemon_healthy(
    target: BrowserTarget, tmp_path: Path
) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(CONFIG.format(url=target.url))
    daemon = DaemonProcess(config, log_level="debug")
    peaks: list[int] = [0]
    sampler: asyncio.Task[None] | None = None
    try:
        daemon.start()
        await daemon.started()
        sampler = asyncio.create_task(sample_peak(daemon.process.pid, peaks))
        expected = {
            "hanging": "timeout",
            "memory": "page_error",
            "thousand_hanging": "timeout",
            # 1,000 requests: done in a few seconds, or, on a loaded machine, cut by the
            # deadline with the count still in flight.
            "thousand": "timeout",
        }
        for check, reason in expected.items():
            if check != "thousand":
                await daemon.wait_for_log("check_failed", check=check, reason=reason, timeout=40)
        deadline = time.monotonic() + 40
        while not (
            daemon.logs("check_passed", check="thousand")
            or daemon.logs("check_failed", check="thousand", reason="timeout")
        ):
            assert time.monotonic() < deadline, daemon.log_text()
            await asyncio.sleep(0.1)  # polling the daemon's log, as wait_for_log does
        await healthz_within(daemon, 1.0)

        # Chromium killed mid-run: the runs in flight fail as local_resources, the next start it again.
        mark = daemon.log_count
        await daemon.wait_for_log("check_passed", check="plain", after=mark, timeout=20)
        os.kill(browser_process(daemon.process.pid), signal.SIGKILL)
        killed = daemon.log_count
        await daemon.wait_for_log("check_passed", check="plain", after=killed, timeout=30)
        await healthz_within(daemon, 1.0)

        # Every browser run ended with a reason, within its deadline; never stuck.
        for record in daemon.logs("check_failed") + daemon.logs("check_passed"):
            if record["check"] in TIMEOUTS:
                assert record["duration_seconds"] <= TIMEOUTS[record["check"]] + MARGIN, record
        reasons = {(r["check"], r["reason"]) for r in daemon.logs("check_failed")}
        allowed = {(check, reason) for check, reason in expected.items()}
        # Runs in flight when Chromium was killed, and only those, may fail as the prober's.
        after_kill = {(r["check"], r["reason"]) for r in daemon.logs("check_failed", after=killed)}
        killed_runs = {(check, "local_resources") for check in TIMEOUTS}
        allowed |= killed_runs & after_kill
        assert reasons <= allowed, [
            (r["check"], r["message"])
            for r in daemon.logs("check_failed")
            if (r["check"], r["reason"]) not in allowed
        ]
        plain = daemon.logs("check_failed", check="plain")
        assert not [r for r in plain if r["reason"] != "local_resources"], (
            killed,
            daemon.log_text(),
        )

        # The HTTP check never failed and kept its schedule through all of it.
        assert not daemon.logs("check_failed", check="steady")
        passed = daemon.logs("check_passed", check="steady")
        times = [datetime.fromisoformat(r["timestamp"]).timestamp() for r in passed]
        assert len(passed) >= 20, len(passed)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert max(gaps) < 2.5, gaps  # a run every second, never a stall

        browsers = list(chromium_processes(daemon.process.pid))
        assert browsers
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
        # Chromium went with the daemon: none of its processes is left running (a zombie
        # is gone but for its parent's wait, which here may be a container's init).
        deadline = time.monotonic() + 10
        while left := [pid for pid in browsers if running(pid)]:
            assert time.monotonic() < deadline, {pid: chromium_state(pid) for pid in left}
            await asyncio.sleep(0.1)  # polling /proc for the exits
    finally:
        if sampler is not None:
            sampler.cancel()
        daemon.kill()
    # Each page's JavaScript heap is capped (PAGE_HEAP_MIB): the browser never took the
    # machine's memory, even with the memory page and 1,000 requests at once.
    assert max(peaks) < 2 * 1024**3, max(peaks)
