"""Test doubles and waiting helpers for the simulator tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

AUTH = {"Authorization": "Bearer demo-token"}


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait for a condition to become true, failing after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
