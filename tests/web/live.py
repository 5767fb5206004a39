"""Real programs for the browser tests: the simulator and the daemon as subprocesses, and
Debian's Chromium driven by playwright (never a downloaded browser).

Each program logs to a file under the test's tmp_path (never a pipe that could fill up);
every wait is a bounded poll that fails at once, with the log tails, if a program exits;
every program is stopped by its own handle at teardown (SIGTERM, bounded wait, SIGKILL).
Waits are async so the test's own aiohttp servers keep answering while we wait.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
POLL_SECONDS = 0.1
STOP_SECONDS = 10.0


def require_chromium() -> str:
    """Debian's chromium; a missing binary FAILS the test (scripts/test.sh installs it)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} is missing: install the Debian package 'chromium' "
            "(scripts/test.sh does it in CI)",
            pytrace=False,
        )
    return CHROMIUM


@dataclass
class Program:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def tail(self, lines: int = 25) -> str:
        status = "running" if not self.exited() else f"exited with {self.popen.returncode}"
        text = "\n".join(f"    {line}" for line in self.log().splitlines()[-lines:])
        return f"--- {self.name} ({status}), {self.log_path}:\n{text or '    (no output)'}"

    async def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        while self.popen.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(STOP_SECONDS)


@dataclass
class Programs:
    directory: Path
    started: list[Program] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Program:
        log_path = self.directory / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "uptime_probe.cli", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        program = Program(name, popen, log_path)
        self.started.append(program)
        return program

    def tails(self) -> str:
        return "\n".join(program.tail() for program in self.started)

    async def poll(
        self,
        condition: Callable[[], Awaitable[T | None]],
        *,
        what: str,
        timeout: float = 15.0,
    ) -> T:
        """Await `condition` until it returns something truthy; fail with the logs otherwise."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            try:
                result = await condition()
            except (aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
                result, last_error = None, exc
            if result:
                return result
            dead = [program for program in self.started if program.exited()]
            if dead or time.monotonic() >= deadline:
                why = f"{dead[0].name} exited" if dead else f"waited {timeout:g}s"
                error = f"\nlast error: {last_error!r}" if last_error else ""
                raise AssertionError(f"{why} for {what}{error}\n{self.tails()}")
            await asyncio.sleep(POLL_SECONDS)

    async def simulator(self) -> str:
        program = self.start("simulator", "simulator", "--listen", "127.0.0.1:0")

        async def started() -> str | None:
            found = re.search(r"simulator_started url=(http://\S+)", program.log())
            return found.group(1) if found else None

        return await self.poll(started, what="the simulator to start")

    async def daemon(self, config: Path, data_dir: Path) -> str:
        program = self.start(
            "daemon",
            "run",
            "-c",
            str(config),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
            "--grace",
            "1",
        )

        async def started() -> str | None:
            for line in program.log().splitlines():
                try:
                    event: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "daemon_started":
                    return f"http://{event['listen']}"
            return None

        return await self.poll(started, what="the daemon to log daemon_started")

    async def stop_all(self) -> None:
        for program in reversed(self.started):
            await program.stop()
