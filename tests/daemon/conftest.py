"""Fixtures: a real simulator on 127.0.0.1 and real daemon subprocesses, always cleaned up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from uptime_probe.simulator import RunningSimulator, start_simulator

from .support import DaemonProcess, write_config

StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    """The chat simulator (scenario `healthy`) in this test's event loop, on a free port.

    It shares the loop with the test: tests here never block it (no time.sleep, no blocking
    I/O), or the daemon's checks would see a stalled target.
    """
    sim = await start_simulator()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "probes.yaml"


@pytest.fixture
def start_daemon(config_path: Path) -> Iterator[StartDaemon]:
    """`start_daemon(checks, grace=..., log_level=..., **top_level_config)` writes probes.yaml
    (unless `checks` is None: the file is already there) and starts the daemon on it.
    Every daemon started is killed when the test ends, however it ends."""
    started: list[DaemonProcess] = []

    def start(
        checks: list[dict[str, Any]] | None,
        *,
        grace: float = 5.0,
        log_level: str = "info",
        **top: Any,
    ) -> DaemonProcess:
        if checks is not None:
            write_config(config_path, checks, **top)
        daemon = DaemonProcess(config_path, grace=grace, log_level=log_level)
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        daemon.kill()
