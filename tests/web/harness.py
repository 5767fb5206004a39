"""A `StatusSource` built from the real parts (CheckStates, Store, IncidentTracker,
LatestOutcomes), fed results the way the scheduler feeds them, and the web app served on
127.0.0.1."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from uptime_probe.config.model import Config
from uptime_probe.metrics import CheckMetrics, DaemonMetrics, MetricsExposition
from uptime_probe.probe.artifacts import ArtifactStore
from uptime_probe.probe.model import CheckResult, Status, StepResult
from uptime_probe.sinks import FanOut, RunOutcome
from uptime_probe.state.checks import CheckStates
from uptime_probe.state.incidents import IncidentTracker
from uptime_probe.state.latest import LatestOutcomes
from uptime_probe.state.maintenance import MaintenanceCalendar
from uptime_probe.state.store import Store
from uptime_probe.web.server import DaemonControl, ReloadOutcome

HOSTILE = "<script>window.__pwned=1</script>"


def make_config(*checks: dict[str, Any], **top: Any) -> Config:
    """A Config from plain dicts; each check gets one step unless it names its own."""
    resolved = []
    for check in checks:
        entry = {
            "steps": [{"name": "fetch", "request": {"url": "http://127.0.0.1:9/"}}],
            **check,
        }
        resolved.append(entry)
    return Config.model_validate({"checks": resolved, **top})


@dataclass
class Harness:
    """What `app.Daemon` exposes to the web layer, without a scheduler or HTTP probing."""

    config: Config
    store: Store
    latest: LatestOutcomes = field(default_factory=LatestOutcomes)
    incidents: IncidentTracker = field(init=False)
    check_states: CheckStates = field(init=False)
    maintenance: MaintenanceCalendar = field(default_factory=MaintenanceCalendar)

    def __post_init__(self) -> None:
        self.incidents = IncidentTracker([self.store.record_incident])
        self.check_states = CheckStates(
            FanOut([self.latest, self.store, self.incidents]),
            location=self.config.location,
            calendar=self.maintenance,
        )
        self.check_states.apply(self.config.checks)
        self.maintenance.apply(self.config)

    def run(
        self,
        check: str,
        status: Status,
        *,
        at: float,
        reason: str | None = None,
        step: str | None = "fetch",
        message: str | None = None,
        sample: str | None = None,
        duration: float = 0.05,
        http_status: int | None = 200,
        artifact: str | None = None,
    ) -> RunOutcome:
        """One run through CheckStates into every consumer, as the scheduler hands it on."""
        failed = step if status is not Status.UP else None
        steps = (
            StepResult(
                name=step or "fetch",
                status=status,
                reason=reason,
                message=message or "ok",
                duration_seconds=duration,
                http_status=http_status,
                response_sample=sample,
                artifact=artifact,
            ),
        )
        result = CheckResult(
            check=check,
            status=status,
            reason=reason if status is Status.DOWN else None,
            failed_step=failed,
            message=message or ("1 step ok" if status is Status.UP else "failed"),
            started_at=at,
            duration_seconds=duration,
            steps=steps,
        )
        self.check_states.accept(result)
        outcome = self.latest.get(check)
        assert outcome is not None, f"{check} is not a check of the harness's config"
        assert outcome.result is result
        return outcome

    async def flush(self) -> None:
        assert await self.store.flush(), "the store did not flush"


def control_for(source: Any, artifacts: ArtifactStore | None = None) -> DaemonControl:
    registry = CollectorRegistry(auto_describe=True)
    exposition = MetricsExposition(CheckMetrics("test"), DaemonMetrics(registry))

    async def reload() -> ReloadOutcome:
        return ReloadOutcome(True, "config reloaded")

    return DaemonControl(
        exposition=exposition,
        readiness=lambda: (True, "ready"),
        reload=reload,
        enable_lifecycle=lambda: True,
        status=source,
        artifacts=artifacts,
    )


def now() -> float:
    return time.time()


FLAPS = 10_000


async def flapping(make_harness: Any, at: float) -> Harness:
    """`flappy` down twice (opens), then up and down in turn for FLAPS more runs, 10 s apart,
    under success_threshold 2: one incident that never resolves, its status changing on
    every run."""
    config = make_config(
        {"name": "flappy"}, defaults={"failure_threshold": 2, "success_threshold": 2}
    )
    harness: Harness = await make_harness(config)
    for i in range(FLAPS + 2):
        status = Status.DOWN if i < 2 or i % 2 else Status.UP
        reason = "http_5xx" if status is Status.DOWN else None
        harness.run("flappy", status, at=at + 10 * i, reason=reason, http_status=503)
        if i % 1000 == 0:
            await harness.flush()  # the store's writer keeps up in the daemon
    await harness.flush()
    return harness
