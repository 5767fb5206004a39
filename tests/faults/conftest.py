"""Fixtures: watched daemon subprocesses, always killed at the end of the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.support import DaemonProcess, write_config

from .support import give_log_pipe_room, watched_daemon

StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "probes.yaml"


@pytest.fixture
def start_daemon(config_path: Path) -> Iterator[StartDaemon]:
    """`start_daemon(checks, grace=..., log_level=..., extra_args=..., nofile=(soft, hard),
    **top_level_config)` writes probes.yaml and starts a watched daemon on it (data in
    tmp_path/data)."""
    started: list[DaemonProcess] = []

    def start(
        checks: list[dict[str, Any]],
        *,
        grace: float = 5.0,
        log_level: str = "info",
        extra_args: tuple[str, ...] = (),
        nofile: tuple[int, int] | None = None,
        **top: Any,
    ) -> DaemonProcess:
        write_config(config_path, checks, **top)
        daemon = watched_daemon(
            config_path, grace=grace, log_level=log_level, extra_args=extra_args, nofile=nofile
        )
        started.append(daemon)
        daemon.start()
        give_log_pipe_room(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()
