"""The benchmark harness (bench/) still imports, parses and measures: a smoke test, < 20 s.

The benchmark itself is not part of the suite (scripts/bench.sh runs it); these tests catch
the harness breaking against the product: a renamed scheduler function it computes lag
with, a metrics renderer whose output stops matching prometheus-client's, a report that no
longer renders, a soak that would overwrite another section of docs/reliability.md.
"""

from __future__ import annotations

import importlib
import math
import sqlite3
import time
from pathlib import Path

import pytest

from bench import common, figures, micro, reload_pause, report, soak, status_page, targets

MODULES = [
    "bench.common",
    "bench.contenders",
    "bench.figures",
    "bench.launch",
    "bench.loadgen",
    "bench.micro",
    "bench.reload_pause",
    "bench.report",
    "bench.run",
    "bench.slow_server",
    "bench.soak",
    "bench.status_page",
    "bench.targets",
]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports(module: str) -> None:
    importlib.import_module(module)


TEXT = """\
# HELP uptime_probe_schedule_lag_seconds Delay.
# TYPE uptime_probe_schedule_lag_seconds histogram
uptime_probe_schedule_lag_seconds_bucket{le="0.001"} 90.0
uptime_probe_schedule_lag_seconds_bucket{le="0.01"} 99.0
uptime_probe_schedule_lag_seconds_bucket{le="+Inf"} 100.0
uptime_probe_schedule_lag_seconds_count 100.0
uptime_probe_check_runs_total{check="a",location="x"} 3.0
uptime_probe_check_runs_total{check="b",location="x"} 4.0
uptime_probe_check_runs_totalx{check="b"} 100.0
"""


@pytest.mark.parametrize(
    ("q", "bound"), [(0.5, 0.001), (0.9, 0.001), (0.95, 0.01), (0.99, 0.01), (1.0, math.inf)]
)
def test_histogram_quantile_is_the_bucket_bound(q: float, bound: float) -> None:
    buckets = common.histogram_buckets(TEXT, "uptime_probe_schedule_lag_seconds")
    assert common.histogram_quantile(buckets, q) == bound


def test_metric_sum_ignores_longer_names() -> None:
    assert common.metric_sum(TEXT, "uptime_probe_check_runs_total") == 7.0


@pytest.mark.parametrize(
    ("values", "expected"),
    [([3.0, 1.0, 2.0], (2.0, 1.0, 3.0, 3)), ([math.nan, 5.0], (5.0, 5.0, 5.0, 1))],
)
def test_spread(values: list[float], expected: tuple[float, float, float, int]) -> None:
    s = common.Spread.of(values)
    assert (s.median, s.low, s.high, s.n) == expected


def test_fast_renderer_matches_prometheus_client_byte_for_byte() -> None:
    result = micro.render_comparison(50, repeats=1)
    assert result["ours_bytes"] == result["library_bytes"]
    assert result["series"] > 50


def test_schedule_lag_uses_the_schedulers_grid(tmp_path: Path) -> None:
    from uptime_probe.scheduler import planned_start, start_offset

    interval = 10.0
    db_path = tmp_path / "runs.sqlite3"
    now = time.time()
    tick = planned_start(now, interval, start_offset("c00001", interval))
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE runs (check_name TEXT, started_at REAL)")
        db.execute("INSERT INTO runs VALUES ('c00001', ?)", (tick + 0.004,))
    [lags] = figures.schedule_lags(db_path, [(tick - 1, tick + 1)], interval)
    assert lags == [pytest.approx(0.004, abs=1e-6)]


def test_floor_measurement_end_to_end(tmp_path: Path) -> None:
    """The slow server and the load tool, as the latency figure uses them, at 40 requests/s."""
    cores = common.Cores(None, None)
    with common.Stack(tmp_path / "targets") as stack:
        slow = targets.start_slow(stack, None, delay=0.05)
        result = figures.floor_at_rate(tmp_path / "floor", cores, slow, rate=40, window=1.5)
    assert result["errors"] == 0
    assert result["completed_per_second"] > 20
    assert min(result["latencies"]) >= 0.05


def test_report_renders_every_section_from_results() -> None:
    runs = [
        {
            "runs_per_second": 900.0,
            "runs_per_cpu_second": 1000.0,
            "cpu_ms_per_run": 1.0,
            "cpu_utilisation": 0.9,
            "skipped_per_second": 5.0,
            "target_utilisation": 0.1,
        }
    ] * 3
    results = {
        "meta": {
            "date": "2026-01-01 00:00 UTC",
            "command": "bash scripts/bench.sh",
            "scale": figures.REDUCED.__dict__,
            "cores": "contender on core 0",
            "machine": {
                "nproc": 2,
                "cpu_model": "x",
                "memory_gib": 1,
                "kernel": "k",
                "python": "3.11",
                "aiohttp": "3",
                "uvloop": "0",
                "blackbox_exporter": "b",
                "nginx": "n",
                "prometheus": "p",
                "alertmanager": "a",
                "git_commit": "abc",
                "git_dirty": False,
            },
            "busy_fraction_at_start": 0.5,
            "busy_fraction_at_end": 0.5,
            "loadavg_at_start": [1.0, 1.0, 1.0],
            "workdir": "/tmp/x",
        },
        "throughput": {"ours": runs, "ours_asyncio": runs, "blackbox": runs},
        "cpu": {"error": "RuntimeError: boom"},
    }
    text = report.render(results)
    assert "## 1. Sustained runs per second on one core" in text
    assert "| uptime-probe (uvloop) | 900 (900..900)" in text
    assert "failed: `RuntimeError: boom`" in text
    assert "**missed**" in text  # 1.0x blackbox against the 2x target


def test_soak_replaces_only_its_own_section(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text(
        "# Reliability\n\n## Hostile targets\n\nkept\n\n## Soak\n\nold\n\n## After\n\nkept too\n"
    )
    soak.write_section(doc, "## Soak\n\nnew\n")
    text = doc.read_text()
    assert "old" not in text
    assert "## Soak\n\nnew\n" in text
    assert "## Hostile targets\n\nkept" in text
    assert "## After\n\nkept too" in text


def _soak_result(rss_by_phase: list[float]) -> dict:
    samples = [
        {
            "t": 60.0 * phase + 30.0 + i,
            "phase": phase,
            "healthy": phase % 2 == 0,
            "rss_bytes": rss,
            "fds": 20,
        }
        for phase, rss in enumerate(rss_by_phase)
        for i in range(2)
    ]
    phases = [
        {"index": p, "fault": "ok" if p % 2 == 0 else {"chat": "hang"}}
        for p in range(len(rss_by_phase))
    ]
    return {"warmup_minutes": 0.5, "samples": samples, "phases": phases}


@pytest.mark.parametrize(
    ("rss_by_phase", "percent"),
    [([100.0, 110.0, 100.0, 110.0, 100.0], 0.0), ([100.0, 110.0, 110.0, 120.0, 120.0], 20.0)],
)
def test_soak_growth_compares_healthy_minutes_after_warm_up(
    rss_by_phase: list[float], percent: float
) -> None:
    growth = soak.growth(_soak_result(rss_by_phase), "rss_bytes")
    assert growth["percent"] == pytest.approx(percent)


def test_soak_names_the_minute_rss_stepped_up_in() -> None:
    text = soak.rss_step(_soak_result([100.0, 100.0, 100.0, 130.0, 130.0, 130.0, 130.0]))
    assert "minute 4" in text
    assert "high-water" in text


def test_report_renders_the_judging_section_when_measured() -> None:
    run = {
        "body_bytes": 192,
        "inline_us": 12.0,
        "worker_round_trip_ms": {"median": 0.2},
        "worker_1mib_ms": 30.0,
        "thread_gil": {
            "idle": {"ticks_per_second": 900.0, "lag_p50_ms": 0.1, "lag_max_ms": 1.0},
            "query_in_a_thread": {"ticks_per_second": 150.0, "lag_p50_ms": 5.2, "lag_max_ms": 11.0},
        },
    }
    text = report.judging_section({"micro": {"judging": [run, run, run]}})
    assert text.startswith("## Judging off the loop")
    assert "| the benchmark's answer (192 bytes, one JSON assertion) judged on the loop" in text
    assert "12.0 (12.0..12.0) µs of CPU" in text
    assert report.judging_section({"micro": {"render": []}}) == ""


def test_report_renders_the_quiet_daemon_with_the_zygote_apart_and_together() -> None:
    quiet = {
        "checks": 100,
        "interval": 30.0,
        "window": 120.0,
        "runs_per_second": 3.3,
        "cpu_utilisation": 0.0025,
        "children_cpu_utilisation": 0.0,
        "rss_bytes": 58_000_000,
        "children_rss_bytes": 40_000_000,
    }
    text = report.quiet_section({"quiet": {"ours": [quiet] * 3}})
    assert "## A quiet daemon" in text
    assert (
        "| CPU, % of one core | 0.25 (0.25..0.25) | 0.00 (0.00..0.00) | 0.25 (0.25..0.25) "
        "| <= 0.3% |" in text
    )
    assert (
        "| RSS, MB | 58.0 (58.0..58.0) | 40.0 (40.0..40.0) | 98.0 (98.0..98.0) | <= 60 MB |" in text
    )
    assert report.quiet_section({}) == ""


def test_report_gives_issue_19s_verdicts_and_how_far_a_missed_target_is() -> None:
    def run(**figures: float) -> dict[str, float]:
        return {"runs_per_second": 100.0, **figures}

    quiet = {
        "runs_per_second": 2.5,
        "cpu_utilisation": 0.0020,
        "children_cpu_utilisation": 0.0005,
        "rss_bytes": 70_000_000,
        "children_rss_bytes": 0,
    }
    results = {
        "throughput": {
            "ours": [run(runs_per_cpu_second=1000.0)] * 3,
            "blackbox": [run(runs_per_cpu_second=1000.0)] * 3,
        },
        "cpu": {
            "100": {
                "ours": [run(cpu_ms_per_run=0.6)] * 3,
                "blackbox": [run(cpu_ms_per_run=1.0)] * 3,
            }
        },
        "quiet": {"ours": [quiet] * 3},
    }
    text = report.issue19_summary(results)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    assert "0.60x | **met** |" in rows["CPU per run at 100 runs/s <= 0.7x blackbox"]
    assert (
        "1.00x | **missed** | short by 20% |"
        in rows["runs per CPU-second, one core, >= 1.25x blackbox"]
    )
    quiet_cpu = rows["a quiet daemon (100 checks every 30 s): <= 0.3% of one core"]
    assert "| 0.25% |" in quiet_cpu  # the zygote counted in
    assert "| **met** |" in quiet_cpu
    assert "**missed** | 17% over |" in rows["a quiet daemon: <= 60 MB RSS"]
    # Why: only for what was missed.
    assert "**A quiet daemon.**" in text
    assert "Each run costs 1.00 ms of CPU here" in text  # 0.25% of a core at 2.5 runs/s
    assert "**Latency.**" not in text
    assert report.issue19_summary({}) == ""


def test_status_page_figure_runs_and_renders() -> None:
    """The status page figure at a handful of checks: every measure present, the section
    rendered with its target's verdict."""
    result = status_page.status_page_cost(20, repeats=1)
    for key in ("model_seconds", "render_seconds", "request_seconds", "request_cpu_seconds"):
        assert result[key]["n"] == 1, key
    assert result["page_bytes"] > result["page_bytes_gzip"] > 0
    text = report.status_page_section({"statuspage": [result]})
    assert text.startswith("## The status page")
    assert "| 20 |" in text
    assert "Target (issue 17): under 100 ms at 1,000 checks: **missed**" in text  # not measured


def test_reload_figure_runs_and_renders() -> None:
    """The reload figure at a few checks: each kind of reload measured and rendered."""
    result = reload_pause.reload_pause(30, repeats=1)
    for kind in reload_pause.KINDS:
        assert result[kind]["pause_ms"]["n"] == 2, kind  # there and back
    text = report.reload_section({"reload": [result]})
    assert text.startswith("## Reloads")
    assert "| 30 | every check renamed (all removed, as many added) |" in text
