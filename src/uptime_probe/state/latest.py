"""The latest outcome of each check, for the status page and the JSON API."""

from __future__ import annotations

from collections.abc import Iterable

from uptime_probe.sinks import RunOutcome


class LatestOutcomes:
    def __init__(self) -> None:
        self._latest: dict[str, RunOutcome] = {}

    def accept(self, outcome: RunOutcome) -> None:
        self._latest[outcome.result.check] = outcome

    def get(self, check: str) -> RunOutcome | None:
        return self._latest.get(check)

    def retain(self, checks: Iterable[str]) -> None:
        keep = set(checks)
        for name in [n for n in self._latest if n not in keep]:
            del self._latest[name]
