from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from .fakes import FakeRun, Harness, build_harness


@pytest.fixture
async def harness() -> AsyncIterator[Callable[..., Harness]]:
    """`harness(max_concurrency=...)` -> a Scheduler over a FakeRun; all stopped at the end."""
    made: list[Harness] = []

    def make(max_concurrency: int = 512) -> Harness:
        built = build_harness(FakeRun(), max_concurrency)
        made.append(built)
        return built

    yield make
    for built in made:
        for gate in built.run.gates.values():
            gate.set()
        await built.scheduler.stop(0)
