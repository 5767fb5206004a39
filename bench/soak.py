"""The soak: 1,000 checks against the simulator, faults switching every minute, for N minutes.

    python -m bench.soak [--minutes 10] [--checks 1000] [--interval 10] [--doc docs/reliability.md]
    bash scripts/bench.sh --soak --minutes 10

Samples the daemon's RSS, open file descriptors and CPU every `--sample-every` seconds, and
computes schedule lag per minute from the SQLite history (each run's `started_at` against
the tick the scheduler planned for it). Faults alternate with healthy minutes
(ok, fault 1, ok, fault 2, ...), so leaks show as growth between healthy minutes, whatever
a given fault holds open while it lasts. Growth after warm-up = last healthy minute against
the first healthy minute after warm-up, medians of their samples; the target is < 5%.

Writes its figures into the `## Soak` section of docs/reliability.md (the rest of the file
is left as it is) and everything it measured to `soak.json` in the work directory.
Bounded: at most 30 minutes; every process it starts is stopped by its own handle.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    LOOPBACK,
    REPO,
    BenchError,
    Cores,
    ScheduleGrid,
    Stack,
    cpu_seconds,
    http_send,
    loadavg,
    open_fds,
    percentile,
    pin_self,
    rss_bytes,
)
from bench.contenders import CHECK_NAME, start_daemon, wait_all_ran
from bench.targets import start_simulator

MAX_MINUTES = 30.0
SECTION = "## Soak"

# One entry per fault minute; a healthy minute comes between each. Every simulator endpoint
# a check uses is hit by something that hangs, resets, errors, empties or slows it, and the
# heaviest fault (every check's connection held to its timeout) comes round again within a
# 10-minute soak: a leak steps up each time, a high-water mark only the first.
FAULTS: tuple[dict[str, Any], ...] = (
    {"chat": "hang", "conversations": "hang"},
    {"conversations": "empty"},
    {"conversations": "reset", "chat": "truncated"},
    {"chat": "hang", "conversations": "hang"},
    {"chat": {"mode": "error", "status": 503}, "conversations": {"mode": "rate_limited"}},
    {"chat": {"mode": "slow", "latency": 2.0}, "task_create": "hang"},
)


def soak_config(checks: int, interval: float, sim: str) -> dict[str, Any]:
    """Half chat-page checks, half history checks (bearer token, JSON assertion)."""
    out = []
    for i in range(checks):
        name = CHECK_NAME.format(i)
        if i % 2 == 0:
            step = {
                "name": "page",
                "request": {"url": f"{sim}/"},
                "expect": {"status": 200, "body_contains": "<title>SimChat</title>"},
            }
        else:
            step = {
                "name": "history",
                "request": {
                    "url": f"{sim}/backend-api/conversations?offset=0&limit=20",
                    "headers": {"Authorization": "Bearer demo-token"},
                },
                "expect": {
                    "status": 200,
                    "json": [{"query": "length(items)", "gt": 0, "reason": "empty_history"}],
                },
            }
        out.append({"name": name, "steps": [step]})
    return {
        "location": "soak",
        "max_concurrency": 512,
        "defaults": {"interval": f"{interval:g}s", "timeout": f"{min(5.0, interval):g}s"},
        "server": {"listen": f"{LOOPBACK}:0", "watch_interval": "1h"},
        "checks": out,
    }


def minute_lags(db_path: Path, t0: float, minutes: int, interval: float) -> list[dict[str, float]]:
    grid = ScheduleGrid(interval)
    out = []
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        for minute in range(minutes):
            lo, hi = t0 + 60 * minute, t0 + 60 * (minute + 1)
            lags, down = [], 0
            for name, started, status in db.execute(
                "SELECT check_name, started_at, status FROM runs "
                "WHERE started_at >= ? AND started_at < ?",
                (lo, hi),
            ):
                lags.append(grid.lag(name, started))
                down += status == "down"
            out.append(
                {
                    "minute": minute,
                    "runs": len(lags),
                    "down": down,
                    "lag_p50_ms": 1000 * percentile(lags, 0.5),
                    "lag_p99_ms": 1000 * percentile(lags, 0.99),
                }
            )
    return out


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    cores = Cores.detect()
    pin_self(cores.target)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="uptime-probe-soak-"))
    minutes = min(args.minutes, MAX_MINUTES)
    samples: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    with Stack(workdir) as stack:
        sim = start_simulator(stack, cores.target).url
        daemon = start_daemon(
            stack, soak_config(args.checks, args.interval, sim), core=cores.contender
        )
        wait_all_ran(daemon, args.checks, timeout=3 * args.interval + 60)
        t0 = time.time()
        started = time.monotonic()
        end = started + 60 * minutes
        phase_index = -1
        cpu_prev, wall_prev = cpu_seconds(daemon.pid), time.monotonic()
        for _ in range(int(60 * MAX_MINUTES / args.sample_every) + 2):  # bounded
            now = time.monotonic()
            if now >= end:
                break
            minute = int((now - started) // args.fault_every)
            if minute != phase_index:
                phase_index = minute
                fault = {} if minute % 2 == 0 else FAULTS[(minute // 2) % len(FAULTS)]
                http_send("DELETE", f"{sim}/_sim/faults")
                if fault:
                    http_send("POST", f"{sim}/_sim/faults", json.dumps(fault).encode())
                phases.append({"index": minute, "at": time.time() - t0, "fault": fault or "ok"})
            if daemon.program.exited():
                raise BenchError(f"the daemon exited during the soak\n{daemon.program.tail()}")
            cpu_now, wall_now = cpu_seconds(daemon.pid), time.monotonic()
            samples.append(
                {
                    "t": time.time() - t0,
                    "phase": phase_index,
                    "healthy": phase_index % 2 == 0,
                    "rss_bytes": rss_bytes(daemon.pid),
                    "fds": open_fds(daemon.pid),
                    "cpu_utilisation": (cpu_now - cpu_prev) / max(1e-9, wall_now - wall_prev),
                    "load1": loadavg()[0],
                }
            )
            cpu_prev, wall_prev = cpu_now, wall_now
            time.sleep(min(args.sample_every, max(0.0, end - time.monotonic())))
        http_send("DELETE", f"{sim}/_sim/faults")
        stack.stop()
        lost = daemon.log_events("daemon_stopped")
        lags = minute_lags(daemon.db_path, t0, int(minutes), args.interval)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": minutes,
        "checks": args.checks,
        "interval": args.interval,
        "fault_every": args.fault_every,
        "warmup_minutes": args.warmup,
        "cores": cores.describe(),
        "workdir": str(workdir),
        "phases": phases,
        "samples": samples,
        "minute_lags": lags,
        "store_lost_rows": lost[-1].get("store_lost_rows") if lost else None,
        "exit_clean": bool(lost),
    }


def growth(result: dict[str, Any], key: str) -> dict[str, Any]:
    """Last healthy phase vs the first healthy phase after warm-up (medians of samples)."""
    warm = 60 * result["warmup_minutes"]
    healthy = sorted({s["phase"] for s in result["samples"] if s["healthy"] and s["t"] >= warm})
    if len(healthy) < 2:
        return {"first": None, "last": None, "percent": None, "phases": healthy}

    def median_of(phase: int) -> float:
        values = [s[key] for s in result["samples"] if s["phase"] == phase]
        # the second half of the phase: what the previous fault held has been released
        values = values[len(values) // 2 :] or values
        return percentile(values, 0.5)

    first, last = median_of(healthy[0]), median_of(healthy[-1])
    return {
        "first": first,
        "last": last,
        "percent": 100 * (last - first) / first,
        "phases": healthy,
    }


def _growth_row(label: str, g: dict[str, Any], unit: Callable[[float], str]) -> str:
    if g["first"] is None:
        too_short = "n/a (fewer than two healthy minutes after warm-up)"
        return f"| {label} | n/a | n/a | {too_short} | not measured |"
    verdict = "**met**" if g["percent"] < 5.0 else "**missed**"
    return (
        f"| {label} | {unit(g['first'])} | {unit(g['last'])} | {g['percent']:+.1f}% | {verdict} |"
    )


def rss_step(result: dict[str, Any]) -> str:
    """Where RSS grew most (which minute, which fault), and whether it kept growing after."""
    ends: list[tuple[int, float]] = []
    for phase in sorted({s["phase"] for s in result["samples"]}):
        values = [s["rss_bytes"] for s in result["samples"] if s["phase"] == phase]
        ends.append((phase, values[-1]))
    if len(ends) < 3:
        return ""
    rises = [(ends[i][1] - ends[i - 1][1], ends[i][0]) for i in range(1, len(ends))]
    rise, phase = max(rises)
    if rise <= 0.01 * ends[0][1]:
        return "RSS grew by less than 1% from minute to minute throughout."
    fault = next((p["fault"] for p in result["phases"] if p["index"] == phase), "?")
    after = [value for index, value in ends if index >= phase]
    drift = (after[-1] - after[0]) / after[0] if len(after) > 1 else math.nan
    what = "ok" if fault == "ok" else f"`{json.dumps(fault)}`"
    text = f"Most of the growth came in minute {phase + 1} ({what}): +{rise / 2**20:.1f} MiB. "
    again = [
        p["index"]
        for p in result["phases"]
        if p["index"] > phase and p["fault"] == fault and fault != "ok"
    ]
    if len(after) > 2 and abs(drift) < 0.01:
        text += (
            f"From then to the end RSS moved {100 * drift:+.1f}%: a step up to a new high-water "
            "mark (memory the allocator keeps after that fault's load), not a steady leak"
        )
        text += (
            f"; the same fault came round again in minute {again[0] + 1} and RSS did not step "
            "up again."
            if again
            else ". A longer soak, in which that fault comes round again, would confirm it: a "
            "leak steps up each time."
        )
    else:
        text += f"From then to the end RSS moved {100 * drift:+.1f}%."
    return text


def render_section(result: dict[str, Any]) -> str:
    samples = result["samples"]
    loads = [s["load1"] for s in samples]
    faults = "; ".join(
        f"`{json.dumps(p['fault'])}`" for p in result["phases"] if p["fault"] != "ok"
    )
    reduced = result["minutes"] < 10
    lines = [
        SECTION,
        "",
        "Generated by `bash scripts/bench.sh --soak` (`bench/soak.py`): do not edit by hand.",
        "",
        f"- Date: {result['date']}. Length: {result['minutes']:g} minutes"
        + (" (a **reduced** run; the documented soak is 10 minutes, at most 30)" if reduced else "")
        + ".",
        f"- Load: {result['checks']:,} checks every {result['interval']:g} s against the simulator "
        "(half its chat page, half its history with a JSON assertion); "
        f"pinning: {result['cores']}.",
        f"- Faults, switched every {result['fault_every']:g} s through the simulator's control API "
        f"with a healthy minute between each: {faults or 'none (too short)'}.",
        (
            f"- Machine load: the 1-minute load average was {min(loads):.1f} to {max(loads):.1f} "
            "on a 2-core machine shared with other work."
        )
        if loads
        else "",
        f"- Warm-up: the first {result['warmup_minutes']:g} minute(s) are left out. "
        "Growth compares "
        "the last healthy minute with the first healthy minute after warm-up (the median of the "
        "second half of each, once what the previous fault held has been released).",
        f"- The daemon stopped cleanly: {'yes' if result['exit_clean'] else 'no'}; "
        f"store rows lost: {result['store_lost_rows']}.",
        "",
        "| figure | first healthy minute after warm-up | last healthy minute | growth "
        "| target < 5% |",
        "|---|---|---|---|---|",
        _growth_row("RSS", growth(result, "rss_bytes"), lambda v: f"{v / 2**20:.1f} MiB"),
        _growth_row("open fds", growth(result, "fds"), lambda v: f"{v:.0f}"),
        "",
        "Over time, a row a minute: its fault, RSS and open fds at its end, schedule lag "
        "(each run's "
        "`started_at` against its planned tick) from the SQLite history:",
        "",
        "| minute | fault | runs | down | lag p50 ms | lag p99 ms | RSS MiB | open fds | CPU % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lag in result["minute_lags"]:
        minute = lag["minute"]
        in_minute = [s for s in samples if s["phase"] == minute] or [{}]
        last = in_minute[-1]
        phase = next((p for p in result["phases"] if p["index"] == minute), {"fault": "?"})
        fault = "ok" if phase["fault"] == "ok" else f"`{json.dumps(phase['fault'])}`"
        cpu = percentile([s["cpu_utilisation"] for s in in_minute if "cpu_utilisation" in s], 0.5)
        cells = [
            str(minute + 1),
            fault,
            f"{lag['runs']:,}",
            f"{lag['down']:,}",
            f"{lag['lag_p50_ms']:.1f}",
            f"{lag['lag_p99_ms']:.1f}",
            f"{last.get('rss_bytes', 0) / 2**20:.1f}",
            str(last.get("fds", 0)),
            f"{100 * cpu:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    step = rss_step(result)
    if step:
        lines += ["", step]
    if samples:
        peak_rss = max(s["rss_bytes"] for s in samples) / 2**20
        peak_fds = max(s["fds"] for s in samples)
        lines += [
            "",
            f"Peak RSS {peak_rss:.1f} MiB, peak open fds {peak_fds} (a `hang` fault holds one "
            "connection per running check until its timeout).",
        ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def write_section(doc: Path, section: str) -> None:
    """Replace the `## Soak` section of `doc` (to the next `## ` heading), or add it."""
    if not doc.exists():
        doc.write_text(
            "# Reliability\n\nHow uptime-probe keeps working under faults and load, and the "
            "figures that show it.\n\n" + section
        )
        return
    text = doc.read_text()
    start = text.find(SECTION + "\n")
    if start < 0:
        doc.write_text(text.rstrip() + "\n\n" + section)
        return
    after = text.find("\n## ", start + len(SECTION))
    rest = text[after + 1 :] if after >= 0 else ""
    doc.write_text(text[:start] + section + ("\n" + rest if rest else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10.0, help="at most 30 (%(default)s)")
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="check interval, seconds")
    parser.add_argument("--fault-every", type=float, default=60.0)
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0, help="minutes left out of growth")
    parser.add_argument("--workdir")
    parser.add_argument("--doc", default=str(REPO / "docs" / "reliability.md"))
    parser.add_argument("--report-only", metavar="SOAK_JSON")
    args = parser.parse_args(argv)
    if args.minutes > MAX_MINUTES:
        parser.error(f"--minutes is bounded at {MAX_MINUTES:g}")
    if args.report_only:
        result = json.loads(Path(args.report_only).read_text())
    else:
        result = run_soak(args)
        out = Path(result["workdir"]) / "soak.json"
        out.write_text(json.dumps(result, indent=1))
        print(f"[soak] figures in {out}", flush=True)
    write_section(Path(args.doc), render_section(result))
    print(f"[soak] wrote the {SECTION!r} section of {args.doc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
