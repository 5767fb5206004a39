"""A real Alertmanager on 127.0.0.1 for one test: started, waited for, stopped.

Debian installs it as `prometheus-alertmanager`, upstream tarballs as `alertmanager`; a
missing binary FAILS the test (a skipped test never runs in CI). Its output goes to a file
under the test's tmp_path, quoted in every failure.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.stack import free_port, require_binary

BINARIES = ("alertmanager", "prometheus-alertmanager")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
POLL_SECONDS = 0.05
# The smallest config it accepts: every alert to a receiver that sends nothing.
CONFIG = """\
route:
  receiver: discard
  group_wait: 0s
receivers:
  - name: discard
"""


def alertmanager_binary() -> str:
    return require_binary(*BINARIES, package="prometheus-alertmanager")


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in text) or "    (no output)"

    async def alerts(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        """Active alerts (GET /api/v2/alerts leaves out those whose endsAt has passed)."""
        async with session.get(f"{self.url}/api/v2/alerts") as response:
            assert response.status == 200, await response.text()
            alerts: list[dict[str, Any]] = await response.json()
            return alerts


async def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                async with session.get(f"{url}/-/ready") as response:
                    if response.status == 200:
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(POLL_SECONDS)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


@asynccontextmanager
async def running_alertmanager(directory: Path, attempts: int = 3) -> AsyncIterator[Alertmanager]:
    binary = alertmanager_binary()
    config = directory / "alertmanager.yml"
    config.write_text(CONFIG)
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = directory / f"alertmanager.{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        manager = Alertmanager(f"http://127.0.0.1:{port}", process, log_path)
        try:
            if await _ready(manager.url, process):
                yield manager
                return
            clash = "address already in use" in log_path.read_text(errors="replace")
            if not clash or attempt == attempts:
                pytest.fail(f"Alertmanager did not become ready\n{manager.tail()}", pytrace=False)
        finally:
            _stop(process)
