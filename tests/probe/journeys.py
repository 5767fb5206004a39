"""Build a CheckPlan from plain step dicts, through the real loader, and run it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from uptime_probe.config import parse_config
from uptime_probe.probe import CheckPlan, CheckResult, compile_checks, run_check
from uptime_probe.probe.judging import JudgingPool
from uptime_probe.probe.tracing import PhaseRecorder

CHECK = "journey"


def plan_of(
    *steps: dict[str, Any],
    timeout: str = "5s",
    secrets: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
    base_dir: Path | None = None,
    judging: JudgingPool | None = None,
    defaults: dict[str, Any] | None = None,
    check: dict[str, Any] | None = None,
) -> CheckPlan:
    """One check named `journey` with these steps, loaded as probes.yaml would be.

    `judging` judges heavy responses off the loop, as the daemon does; `defaults` is the
    file's `defaults:` section, `check` more keys of the check itself.
    """
    fields = {"name": CHECK, "interval": "60s", "timeout": timeout, **(check or {})}
    document = {
        "variables": variables or {},
        "secrets": secrets or {},
        "defaults": defaults or {},
        "checks": [{**fields, "steps": list(steps)}],
    }
    config = parse_config(yaml.safe_dump(document), env={}, base_dir=base_dir)
    return compile_checks(config, judging=judging)[CHECK]


def step(url: str, name: str = "fetch", **fields: Any) -> dict[str, Any]:
    """`step(url, expect={...})` -> a step dict; `method`/`json`/`body`/`headers` go to request."""
    request = {"url": url}
    for key in ("method", "json", "body", "headers"):
        if key in fields:
            request[key] = fields.pop(key)
    return {"name": name, "request": request, **fields}


async def run(
    plan: CheckPlan, *, resolver: aiohttp.abc.AbstractResolver | None = None
) -> CheckResult:
    """run_check, asserting the invariants every result must keep."""
    result = await run_check(plan, resolver=resolver)
    reasons = {result.reason, *(s.reason for s in result.steps)}
    assert "internal" not in reasons, result
    assert (result.reason is None) is (result.status != "down"), result
    if result.status == "down":
        assert result.failed_step is not None
        assert "\n" not in result.message
    return result


def hold_the_loop_after_connecting(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """From now on, each connection that comes up is followed by `seconds` of a held event
    loop, before the run's request is written: what a daemon busy with other runs' work
    does to a run. What a step measures must leave that wait out."""
    loop = asyncio.get_running_loop()
    real_tcp_connected = PhaseRecorder.tcp_connected

    def then_busy(self: PhaseRecorder, tls: bool = False) -> None:
        real_tcp_connected(self, tls)
        loop.call_soon(time.sleep, seconds)  # stands for a loop busy with other runs' work

    monkeypatch.setattr(PhaseRecorder, "tcp_connected", then_busy)
