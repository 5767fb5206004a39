"""A reader of the daemon's stderr that stops reading never stops the daemon (issue 17).

The daemon runs as a real subprocess whose stderr is a pipe this test reads only until
`daemon_started` (for the port), then never again: a stuck log shipper. Logging at debug
level (a line per run), it fills the pipe within seconds. Before, its event loop then
stopped in write(): no run, no /healthz, no /metrics. Now only its log thread waits:
lines past `--log-queue` are dropped and counted, and everything else goes on.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import IO

import aiohttp

from tests.conftest import ServeApp
from tests.daemon.support import Scrape, http_check, write_config

from .support import CountingTarget, poll_until

CHECKS = 20
PIPE_BYTES = 16384  # filled in about a second at 20 runs of a line each, every 200 ms
DEADLINE = 30.0
DROPPED = "uptime_probe_log_records_dropped_total"


async def _started(stderr: IO[bytes]) -> str:
    """Read stderr up to `daemon_started`; the daemon's base URL."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        line = await asyncio.to_thread(stderr.readline)
        if not line:
            break
        record = json.loads(line)
        if record.get("event") == "daemon_started":
            return f"http://{record['listen']}"
    raise AssertionError("the daemon did not start")


def _unread_bytes(fd: int) -> int:
    buffer = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buffer)
    return int.from_bytes(buffer, sys.byteorder)


async def test_a_stalled_log_reader_costs_log_lines_never_probing_or_health(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    target = CountingTarget()
    url = await serve_app(target.app())
    config_path = tmp_path / "probes.yaml"
    checks = [
        http_check(f"c{i:02d}", f"{url}/c{i:02d}", interval="200ms", timeout="150ms")
        for i in range(CHECKS)
    ]
    write_config(config_path, checks, server={"watch_interval": "1h"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPTIME_PROBE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "uptime_probe.cli", "run", "-c", str(config_path),
         "--listen", "127.0.0.1:0", "--log-level", "debug", "--log-queue", "50",
         "--grace", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        fcntl.fcntl(process.stderr.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        base = await _started(process.stderr)
        # From here on nobody reads the pipe.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def scrape() -> Scrape:
                async with http.get(f"{base}/metrics") as response:
                    assert response.status == 200
                    return Scrape(await response.text())

            deadline = time.monotonic() + DEADLINE
            while (first := await scrape()).value(DROPPED) == 0:
                assert time.monotonic() < deadline, "no log line was ever dropped"
                await asyncio.sleep(0.2)
            # Lines dropped: the queue is full because the writer is stuck in write() on a
            # pipe nobody reads. A full pipe may hold well under its capacity: each write
            # that cannot join the last page takes a page of its own (4 pages here).
            capacity = fcntl.fcntl(process.stderr.fileno(), fcntl.F_GETPIPE_SZ)
            assert 0 < _unread_bytes(process.stderr.fileno()) <= capacity

            # With the pipe full and lines dropping: health, scrapes and runs go on.
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            runs_then = first.value("uptime_probe_check_runs_total", check="c00")
            seen_then = target.count("c00")
            await poll_until(
                lambda: target.count("c00") >= seen_then + 3, "three more runs", DEADLINE
            )
            later = await scrape()
            assert later.value("uptime_probe_check_runs_total", check="c00") >= runs_then + 3
            assert later.value(DROPPED) > first.value(DROPPED)  # and still counted

        # Stopping does not wait for the reader: what fits is flushed within a bound.
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, DEADLINE)
        assert code == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stderr.close()
