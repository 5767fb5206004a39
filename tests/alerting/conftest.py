"""Dispatchers built per test, closed at teardown before the receivers they talk to."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import ServeApp
from uptime_probe.alerting import NotificationDispatcher, RetryPolicy
from uptime_probe.config.model import Config

FAST_RETRY = RetryPolicy(attempts=3, first_delay=0.01, max_delay=0.05)


class Results:
    """`on_result` for a test: counts per (notifier, result)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def __call__(self, notifier: str, result: str) -> None:
        self.counts[(notifier, result)] += 1

    def of(self, notifier: str) -> dict[str, int]:
        return {result: n for (name, result), n in self.counts.items() if name == notifier}


MakeDispatcher = Callable[..., tuple[NotificationDispatcher, Results]]


@pytest.fixture
async def make_dispatcher(serve_app: ServeApp) -> AsyncIterator[MakeDispatcher]:
    """`make_dispatcher(config, **kwargs)` -> (dispatcher, results); fast retries by default."""
    made: list[NotificationDispatcher] = []

    def make(config: Config, **kwargs: Any) -> tuple[NotificationDispatcher, Results]:
        results = Results()
        kwargs.setdefault("retry", FAST_RETRY)
        dispatcher = NotificationDispatcher(config, on_result=results, **kwargs)
        made.append(dispatcher)
        return dispatcher, results

    yield make
    for dispatcher in made:
        await dispatcher.close(0)
