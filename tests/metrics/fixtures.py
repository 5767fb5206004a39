"""Configs and results for the metrics tests: three checks, built through the real loader."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from uptime_probe.config import parse_config
from uptime_probe.config.model import Config
from uptime_probe.probe import CheckResult, PhaseTimings, Status, StepResult
from uptime_probe.sinks import RunOutcome

URL = "https://chat.example/"


def _step(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "request": {"url": URL}, **extra}


CHECKS: list[dict[str, Any]] = [
    {"name": "chat_load", "slo": 0.99, "steps": [_step("page")]},
    {
        "name": "history",
        "steps": [
            _step(
                "conversations",
                expect={"json": [{"query": "length(items)", "gt": 0, "reason": "empty_history"}]},
            )
        ],
    },
    {
        "name": "tasks",
        "interval": "1m",
        "timeout": "20s",
        "steps": [
            _step("create"),
            _step(
                "status",
                poll={"every": "1s", "within": "10s", "reason": "task_stuck"},
                expect={"json": [{"query": "status", "equals": "completed"}]},
            ),
        ],
    },
]


def load(checks: list[dict[str, Any]] = CHECKS, location: str = "eu-west") -> Config:
    document = {"location": location, "defaults": {"interval": "30s"}, "checks": checks}
    return parse_config(yaml.safe_dump(document), env={})


def step_result(
    name: str,
    status: Status = Status.UP,
    *,
    reason: str | None = None,
    duration: float = 0.05,
    http_status: int | None = 200,
    tls_not_after: float | None = None,
    timings: PhaseTimings | None = None,
) -> StepResult:
    return StepResult(
        name=name,
        status=status,
        reason=reason,
        message="" if status is not Status.DOWN else f"{reason}",
        duration_seconds=duration,
        http_status=http_status,
        timings=timings or PhaseTimings(0.001, 0.002, 0.003, duration * 0.6, duration * 0.1),
        tls_not_after=tls_not_after,
    )


def outcome(
    check: str,
    steps: Iterable[StepResult],
    *,
    state: Status | None,
    started_at: float = 1_700_000_000.0,
    location: str = "eu-west",
) -> RunOutcome:
    steps = tuple(steps)
    down = next((s for s in steps if s.status is Status.DOWN), None)
    degraded = any(s.status is Status.DEGRADED for s in steps)
    status = Status.DOWN if down else Status.DEGRADED if degraded else Status.UP
    result = CheckResult(
        check=check,
        status=status,
        reason=down.reason if down else None,
        failed_step=down.name if down else None,
        message=down.message if down else "ok",
        started_at=started_at,
        duration_seconds=sum(s.duration_seconds for s in steps),
        steps=steps,
    )
    return RunOutcome(result=result, state=state, previous_state=None, location=location)


@dataclass(frozen=True)
class Parsed:
    """Samples of one exposition, keyed for comparison: (name, sorted labels) -> value."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    types: dict[str, str]

    @classmethod
    def of_text(cls, text: str) -> Parsed:
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        types = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                assert key not in samples, f"duplicate sample {key}"
                samples[key] = sample.value
        return cls(samples, types)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, tuple(sorted(labels.items())))]

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [
            Sample(n, dict(lbls), v, None, None)
            for (n, lbls), v in self.samples.items()
            if n == name and labels.items() <= dict(lbls).items()
        ]

    def checks(self) -> set[str]:
        return {
            dict(lbls)["check"] for (_n, lbls), _v in self.samples.items() if "check" in dict(lbls)
        }
