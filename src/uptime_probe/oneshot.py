"""`uptime-probe check`: run selected checks once, concurrently, and report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from uptime_probe.config.model import Config
from uptime_probe.config.steps import STEP_KINDS
from uptime_probe.probe import (
    CheckPlan,
    CheckResult,
    Status,
    StepResult,
    compile_checks,
    run_check,
)
from uptime_probe.probe.artifacts import ARTIFACTS, ArtifactStore
from uptime_probe.probe.browser_pool import BROWSER, BrowserPool
from uptime_probe.probe.judging import JudgingPool
from uptime_probe.probe.resolve import ProbeResolver


class UnknownCheck(ValueError):
    pass


async def run_checks_once(
    config: Config, names: Sequence[str] = (), artifacts: Path | None = None
) -> list[CheckResult]:
    """Run the checks named (all when none) once, concurrently. A failed browser step's
    screenshot goes under `artifacts` (none are written without it)."""
    unknown = [name for name in names if name not in {check.name for check in config.checks}]
    if unknown:
        known = ", ".join(check.name for check in config.checks)
        raise UnknownCheck(f"unknown check {', '.join(map(repr, unknown))}; known: {known}")
    resolver = ProbeResolver(config.dns)
    # Chromium starts only if a selected check has a browser step, on its first use.
    browsers = BrowserPool(config.browser.executable, max_concurrent=config.browser.max_concurrent)
    resources: dict[str, object] = {BROWSER: browsers}
    store = None
    if artifacts is not None:
        store = ArtifactStore(
            artifacts, config.browser.keep_screenshots, traces=config.browser.keep_traces
        )
        resources[ARTIFACTS] = store

    async def run(plan: CheckPlan) -> CheckResult:
        async with browsers.slot_for(plan):
            return await run_check(plan, resolver=resolver, resources=resources)

    try:
        async with JudgingPool() as judging:
            plans = compile_checks(config, judging=judging)
            selected = [plans[name] for name in names] if names else list(plans.values())
            return list(await asyncio.gather(*(run(plan) for plan in selected)))
    finally:
        await browsers.close()
        if store is not None:
            store.close()
        await resolver.close()


def exit_code(results: Iterable[CheckResult]) -> int:
    return 1 if any(result.status is Status.DOWN for result in results) else 0


def as_json_lines(results: Iterable[CheckResult], artifacts: Path | None = None) -> str:
    """One JSON object per check: a public contract (docs/configuration.md, check --json).
    A step's `artifact` (a screenshot) and `trace` are the files' paths under `artifacts`."""
    return "".join(
        json.dumps(
            {
                "check": r.check,
                "status": r.status.value,
                "reason": r.reason,
                "step": r.failed_step,
                "duration_seconds": round(r.duration_seconds, 6),
                "message": r.message,
                "http_status": r.http_status,
                "steps": [step_as_json(step, artifacts) for step in r.steps],
            }
        )
        + "\n"
        for r in results
    )


def step_as_json(step: StepResult, artifacts: Path | None = None) -> dict[str, Any]:
    """A step that ran: what every kind has, the HTTP part for HTTP-based kinds, the
    kind's own figures under its key (`"browser": {...}`), and the file it left."""
    out: dict[str, Any] = {
        "name": step.name,
        "kind": step.kind,
        "status": step.status.value,
        "reason": step.reason,
        "message": step.message,
        "duration_seconds": round(step.duration_seconds, 6),
    }
    kind = STEP_KINDS.get(step.kind)
    if kind is not None and kind.exchanges_http:
        out["http_status"] = step.http_status
        out["phases"] = {name: round(value, 6) for name, value in step.timings.as_dict().items()}
    elif step.http_status is not None:
        out["http_status"] = step.http_status  # a browser's document, a refused upgrade
    if step.figures is not None:
        out[step.figures.key] = step.figures.as_dict()
    if step.artifact is not None:
        out["artifact"] = str((artifacts or Path()) / step.artifact)
    if step.trace is not None:
        out["trace"] = str((artifacts or Path()) / step.trace)
    return out


def as_table(results: Sequence[CheckResult]) -> str:
    rows = [("CHECK", "STATUS", "REASON", "STEP", "DURATION", "MESSAGE")]
    rows += [
        (
            r.check,
            r.status.value,
            r.reason or "-",
            r.failed_step or "-",
            f"{r.duration_seconds:.3f}s",
            _one_line(r.message),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5] + "\n"
        for row in rows
    )


def _one_line(text: str, limit: int = 160) -> str:
    """A target's text on one line, with control characters (terminal escapes) made harmless."""
    flat = "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
