"""`uptime-probe check`: run selected checks once, concurrently, and report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence

from uptime_probe.config.model import Config
from uptime_probe.probe import CheckResult, Status, compile_checks, run_check
from uptime_probe.probe.judging import JudgingPool
from uptime_probe.probe.resolve import ProbeResolver


class UnknownCheck(ValueError):
    pass


async def run_checks_once(config: Config, names: Sequence[str] = ()) -> list[CheckResult]:
    unknown = [name for name in names if name not in {check.name for check in config.checks}]
    if unknown:
        known = ", ".join(check.name for check in config.checks)
        raise UnknownCheck(f"unknown check {', '.join(map(repr, unknown))}; known: {known}")
    resolver = ProbeResolver(config.dns)
    try:
        async with JudgingPool() as judging:
            plans = compile_checks(config, judging=judging)
            selected = [plans[name] for name in names] if names else list(plans.values())
            return list(
                await asyncio.gather(*(run_check(plan, resolver=resolver) for plan in selected))
            )
    finally:
        await resolver.close()


def exit_code(results: Iterable[CheckResult]) -> int:
    return 1 if any(result.status is Status.DOWN for result in results) else 0


def as_json_lines(results: Iterable[CheckResult]) -> str:
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
            }
        )
        + "\n"
        for r in results
    )


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
