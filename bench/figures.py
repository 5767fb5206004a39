"""One function per measurement. Each starts what it needs in its own Stack and stops it.

Every measurement reads CPU time from /proc (the contender's, and the target's, to show the
target was not the bottleneck) and the wall clock, so that on a shared machine the figures
can be given both as achieved per second and per CPU-second of the contender.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    LOOPBACK,
    PYTHON,
    REPO,
    BenchError,
    Cores,
    ScheduleGrid,
    Stack,
    cpu_seconds,
    free_port,
    histogram_buckets,
    histogram_quantile,
    http_get,
    http_send,
    loadavg,
    percentile,
    pinned,
    process_tree,
    reachable,
    rss_bytes,
    wait_for,
)
from bench.contenders import (
    Blackbox,
    Daemon,
    checks_that_ran,
    probes_config,
    runs_total,
    start_blackbox,
    start_daemon,
    wait_all_ran,
)
from bench.targets import Target, start_simulator


@dataclass(frozen=True)
class Scale:
    """How big and how long. `full` is the documented run; `reduced` proves the harness."""

    name: str
    repeats: int = 3
    window: float = 20.0  # seconds of steady state measured per figure and repeat
    sustained_checks: int = 3000  # offered runs/s for figure 1 (interval 1 s)
    rates: tuple[int, ...] = (100, 1000, 2000)
    blackbox_concurrency: tuple[int, ...] = (4, 16, 64, 256)
    lag_checks: tuple[int, ...] = (1000, 10_000)
    lag_interval: float = 30.0
    lag_window: float = 30.0  # each scrape / no-scrape window
    detection_trials: int = 3
    detection_interval: float = 10.0
    profile_seconds: float = 30.0
    profile_checks: int = 1000
    quiet_window: float = 120.0  # the quiet daemon's measured window
    page_checks: tuple[int, ...] = (500, 1000)  # the status page (bench/status_page.py)
    reload_checks: tuple[int, ...] = (1000, 10_000)  # reloads (bench/reload_pause.py)


FULL = Scale("full")
REDUCED = Scale(
    "reduced",
    window=6.0,
    sustained_checks=3000,
    blackbox_concurrency=(8, 64, 256),
    lag_window=10.0,
    detection_interval=5.0,
    profile_seconds=15.0,
    quiet_window=30.0,
    reload_checks=(1000,),
)


# The alerts the detection figure times, and whose they are.
DETECTION_ALERTS = {
    "UptimeProbeCheckDown": "ours_prometheus",
    "UptimeProbeSemanticFailure": "ours_prometheus",
    "UptimeProbeIncident": "ours_notifier",
    "BlackboxProbeFailed": "blackbox_prometheus",
}


def _sample_load() -> list[float]:
    return list(loadavg())


# -- uptime-probe at a rate ----------------------------------------------------------------


def ours_at_rate(
    workdir: Path,
    cores: Cores,
    target: Target,
    *,
    checks: int,
    interval: float,
    window: float,
    loop: str = "uvloop",
    kind: str = "json",
    durations: bool = False,
    saturated: bool = False,
) -> dict[str, Any]:
    """The daemon with `checks` checks at `interval` against `target`: achieved runs/s, CPU.

    Runs counted from `uptime_probe_check_runs_total` deltas between two scrapes; with
    `durations`, each run's duration in the window is read from the SQLite `runs` table.

    `saturated`: offered more runs than it can do. The cap's queue serves checks known to be
    quick first and assumes a check that never ran takes its whole timeout, so a saturated
    daemon gets to some checks only through the fair share (every 16th slot); the window
    then starts once 80% have run, and how many ever ran is part of the result.
    """
    config = probes_config(
        checks=checks, interval=interval, url=target.url, kind=kind, max_concurrency=1024
    )
    with Stack(workdir) as stack:
        daemon = start_daemon(stack, config, core=cores.contender, loop=loop)
        wait_all_ran(
            daemon, checks, timeout=max(60.0, 4 * interval), enough=0.8 if saturated else 0.99
        )
        time.sleep(min(3.0, interval))  # past the first, bunched-up round
        load = _sample_load()
        # The window runs from the start of one scrape to the start of the next: runs are
        # counted between the two snapshots, and the CPU includes one render, as a scraper
        # visiting once a window would cost.
        t0, wall0 = time.time(), time.monotonic()
        cpu0, target0 = cpu_seconds(daemon.pid), cpu_seconds(target.pid, tree=True)
        runs0, skipped0 = runs_total(daemon)
        time.sleep(max(0.0, wall0 + window - time.monotonic()))
        cpu1, target1 = cpu_seconds(daemon.pid), cpu_seconds(target.pid, tree=True)
        t1, wall1 = time.time(), time.monotonic()
        runs1, skipped1 = runs_total(daemon)
        rss = rss_bytes(daemon.pid)
        ever_ran = checks_that_ran(daemon)
        stack.stop()
        elapsed = wall1 - wall0
        runs = runs1 - runs0
        cpu = cpu1 - cpu0
        result: dict[str, Any] = {
            "checks": checks,
            "interval": interval,
            "offered_per_second": checks / interval,
            "runs_per_second": runs / elapsed,
            "skipped_per_second": (skipped1 - skipped0) / elapsed,
            "cpu_utilisation": cpu / elapsed,
            "cpu_ms_per_run": 1000 * cpu / runs if runs else float("nan"),
            "runs_per_cpu_second": runs / cpu if cpu else float("nan"),
            "target_utilisation": (target1 - target0) / elapsed,
            "rss_bytes": rss,
            "loadavg": load,
            "loop": loop,
            "store_lost": _store_lost(daemon),
            "checks_that_ran": ever_ran,
        }
        if durations:
            result["durations"] = _run_durations(daemon.db_path, t0, t1)
        return result


def _store_lost(daemon: Daemon) -> int:
    stopped = daemon.log_events("daemon_stopped")
    return int(stopped[-1].get("store_lost_rows", 0)) if stopped else -1


def _run_durations(db_path: Path, t0: float, t1: float) -> list[float]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT duration FROM runs WHERE started_at >= ? AND started_at < ? AND status = 'up'",
            (t0, t1),
        ).fetchall()
    return [row[0] for row in rows]


# -- blackbox_exporter under a load generator ------------------------------------------------


def run_loadgen(
    workdir: Path,
    core: int | None,
    args: list[str],
    *,
    seconds: float,
    name: str,
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{name}.json"
    command = pinned(
        core,
        [PYTHON, "-m", "bench.loadgen", *args, "--seconds", str(seconds), "--out", str(out)],
    )
    completed = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        timeout=seconds + 60,
        check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    if completed.returncode != 0 or not out.exists():
        raise BenchError(
            f"loadgen failed ({completed.returncode}): {completed.stderr.decode()[-2000:]}"
        )
    return dict(json.loads(out.read_text()))


def blackbox_under_load(
    workdir: Path,
    cores: Cores,
    blackbox: Blackbox,
    target: Target,
    loadgen_args: list[str],
    *,
    window: float,
    name: str,
    module: str = "http_json",
) -> dict[str, Any]:
    """Drive blackbox's /probe with the load tool; CPU of blackbox and the target over the run."""
    url = blackbox.probe_url(module, target.url)
    run_loadgen(
        workdir,
        cores.target,
        [*loadgen_args, "--url", url, "--warmup", "0"],
        seconds=1.0,
        name=f"{name}-warm",
    )
    load = _sample_load()
    wall0 = time.monotonic()
    cpu0, target0 = cpu_seconds(blackbox.pid), cpu_seconds(target.pid, tree=True)
    result = run_loadgen(
        workdir,
        cores.target,
        [*loadgen_args, "--url", url, "--warmup", "0"],
        seconds=window,
        name=name,
    )
    cpu1, target1 = cpu_seconds(blackbox.pid), cpu_seconds(target.pid, tree=True)
    elapsed = time.monotonic() - wall0
    cpu = cpu1 - cpu0
    ok = result["ok"]
    return {
        "completed_per_second": result["completed"] / window,
        "runs_per_second": ok / window,
        "errors": result["errors"],
        "error_kinds": result["error_kinds"],
        "probe_failures": result["probe_failures"],
        "dropped": result["dropped"],
        "cpu_utilisation": cpu / elapsed,
        "cpu_ms_per_run": 1000 * cpu / result["completed"] if result["completed"] else float("nan"),
        "runs_per_cpu_second": result["completed"] / cpu if cpu else float("nan"),
        "target_utilisation": (target1 - target0) / elapsed,
        "loadgen_cpu_utilisation": result["cpu_seconds"] / elapsed,
        "rss_bytes": rss_bytes(blackbox.pid),
        "probe_durations": result["probe_durations"],
        "loadavg": load,
    }


def blackbox_sustained(workdir: Path, cores: Cores, target: Target, scale: Scale) -> dict[str, Any]:
    """Closed loop at increasing concurrency; the best completed probes/s is its capacity."""
    with Stack(workdir) as stack:
        blackbox = start_blackbox(stack, core=cores.contender)
        levels = []
        for concurrency in scale.blackbox_concurrency:
            level = blackbox_under_load(
                workdir,
                cores,
                blackbox,
                target,
                ["closed", "--concurrency", str(concurrency), "--parse-probe"],
                window=scale.window,
                name=f"blackbox-c{concurrency}",
            )
            level.pop("probe_durations")
            level["concurrency"] = concurrency
            levels.append(level)
        best = max(levels, key=lambda lvl: lvl["runs_per_second"])
        return {**best, "levels": levels}


def blackbox_at_rate(
    workdir: Path, cores: Cores, target: Target, rate: int, window: float
) -> dict[str, Any]:
    with Stack(workdir) as stack:
        blackbox = start_blackbox(stack, core=cores.contender)
        result = blackbox_under_load(
            workdir,
            cores,
            blackbox,
            target,
            ["open", "--rate", str(rate), "--parse-probe", "--max-in-flight", "1024"],
            window=window,
            name=f"blackbox-r{rate}",
        )
        result["offered_per_second"] = rate
        return result


def floor_at_rate(
    workdir: Path, cores: Cores, target: Target, rate: int, window: float
) -> dict[str, Any]:
    """What a plain client on the contender's core measures: fresh connection per request."""
    target0 = cpu_seconds(target.pid, tree=True)
    wall0 = time.monotonic()
    result = run_loadgen(
        workdir,
        cores.contender,
        ["open", "--url", target.url, "--rate", str(rate), "--fresh", "--warmup", "1"],
        seconds=window,
        name=f"floor-r{rate}",
    )
    return {
        "offered_per_second": rate,
        "completed_per_second": result["completed"] / window,
        "errors": result["errors"],
        "latencies": result["latencies"],
        "cpu_utilisation": result["cpu_seconds"] / (time.monotonic() - wall0),
        "target_utilisation": (cpu_seconds(target.pid, tree=True) - target0)
        / (time.monotonic() - wall0),
    }


def latency_errors(
    measured: list[float], floor: list[float], true_seconds: float
) -> dict[str, float]:
    """p50/p99 of what a tool measured, of the floor, and the tool's error over the floor (ms)."""
    p50, p99 = percentile(measured, 0.5), percentile(measured, 0.99)
    f50, f99 = percentile(floor, 0.5), percentile(floor, 0.99)
    whole_ms = sum(1 for d in measured if abs(d * 1000 - round(d * 1000)) < 1e-6)
    return {
        "samples": len(measured),
        # Durations that are an exact number of milliseconds: a clock with 1 ms resolution.
        "whole_ms_fraction": whole_ms / len(measured) if measured else float("nan"),
        "p50_ms": 1000 * p50,
        "p99_ms": 1000 * p99,
        "floor_p50_ms": 1000 * f50,
        "floor_p99_ms": 1000 * f99,
        "error_p50_ms": 1000 * (p50 - f50),
        "error_p99_ms": 1000 * (p99 - f99),
        "over_true_p50_ms": 1000 * (p50 - true_seconds),
    }


# -- schedule lag, /metrics and RSS at 1,000 and 10,000 checks -------------------------------


class Scraper:
    """GET /metrics every `every` seconds on its own thread; records time and size of each."""

    def __init__(self, url: str, every: float = 1.0) -> None:
        self.url = url
        self.every = every
        self.records: list[tuple[float, float, int]] = []  # (epoch, seconds, bytes)
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        for _ in range(100_000):
            if self._stop.is_set():
                return
            started = time.perf_counter()
            try:
                size = len(http_get(self.url, timeout=30.0))
                self.records.append((time.time(), time.perf_counter() - started, size))
            except OSError:
                self.failures += 1
            next_at += self.every
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def schedule_lags(
    db_path: Path, windows: list[tuple[float, float]], interval: float
) -> list[list[float]]:
    """Per window, each run's lag (`ScheduleGrid`)."""
    grid = ScheduleGrid(interval)
    out: list[list[float]] = []
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        for t0, t1 in windows:
            lags = []
            for name, started in db.execute(
                "SELECT check_name, started_at FROM runs WHERE started_at >= ? AND started_at < ?",
                (t0, t1),
            ):
                lags.append(grid.lag(name, started))
            out.append(lags)
    return out


def scale_point(
    workdir: Path, cores: Cores, target: Target, *, checks: int, scale: Scale, loop: str = "uvloop"
) -> dict[str, Any]:
    """One daemon with `checks` checks: alternating windows without and with a 1 s scrape.

    Windows alternate (quiet, scraped, quiet, scraped, ...) `scale.repeats` times each, so
    the two conditions see the same machine load. Per window: lag p50/p99 from SQLite,
    the lag histogram's p99 bucket, RSS, and in scraped windows each scrape's time and size.
    """
    interval = scale.lag_interval
    config = probes_config(checks=checks, interval=interval, url=target.url, max_concurrency=1024)
    with Stack(workdir) as stack:
        started = time.monotonic()
        daemon = start_daemon(
            stack, config, core=cores.contender, loop="uvloop" if loop == "uvloop" else loop
        )
        start_seconds = time.monotonic() - started
        wait_all_ran(daemon, checks, timeout=3 * interval + 60)
        metrics_url = f"{daemon.base_url}/metrics"
        # The first scrape after every check ran: nothing cached yet for most checks.
        first = time.perf_counter()
        first_body = http_get(metrics_url, timeout=60)
        first_seconds = time.perf_counter() - first
        windows: list[dict[str, Any]] = []
        for index in range(2 * scale.repeats):
            scraped = index % 2 == 1
            text0 = daemon.metrics(timeout=60) if not scraped else None
            t0 = time.time()
            cpu0 = cpu_seconds(daemon.pid)
            load = _sample_load()
            if scraped:
                with Scraper(metrics_url) as scraper:
                    time.sleep(scale.lag_window)
                scrapes = scraper.records
            else:
                time.sleep(scale.lag_window)
                scrapes = []
            t1 = time.time()
            cpu1 = cpu_seconds(daemon.pid)
            window: dict[str, Any] = {
                "scraped": scraped,
                "t0": t0,
                "t1": t1,
                "rss_bytes": rss_bytes(daemon.pid),
                "cpu_utilisation": (cpu1 - cpu0) / (t1 - t0),
                "loadavg": load,
                "scrape_seconds": [s for _at, s, _size in scrapes],
                "scrape_bytes": [size for _at, _s, size in scrapes],
            }
            if text0 is not None:
                text1 = daemon.metrics(timeout=60)
                b0 = histogram_buckets(text0, "uptime_probe_schedule_lag_seconds")
                b1 = histogram_buckets(text1, "uptime_probe_schedule_lag_seconds")
                delta = [(bound, c1 - c0) for (bound, c1), (_b, c0) in zip(b1, b0, strict=True)]
                window["histogram_p99_bucket"] = histogram_quantile(delta, 0.99)
            windows.append(window)
        stack.stop()
        lags = schedule_lags(daemon.db_path, [(w["t0"], w["t1"]) for w in windows], interval)
    for window, window_lags in zip(windows, lags, strict=True):
        window["runs"] = len(window_lags)
        window["lag_p50_ms"] = 1000 * percentile(window_lags, 0.5)
        window["lag_p99_ms"] = 1000 * percentile(window_lags, 0.99)
        window["lag_max_ms"] = 1000 * max(window_lags, default=float("nan"))
    return {
        "checks": checks,
        "interval": interval,
        "start_seconds": start_seconds,
        "first_scrape_seconds": first_seconds,
        "metrics_bytes": len(first_body),
        "metrics_series": sum(
            1 for line in first_body.splitlines() if line and not line.startswith(b"#")
        ),
        "windows": windows,
    }


# -- garbage collection at scale ---------------------------------------------------------------


def gc_experiment(
    workdir: Path,
    cores: Cores,
    target: Target,
    *,
    checks: int,
    scale: Scale,
    thresholds: str | None,
) -> dict[str, Any]:
    """Schedule lag and the collector's pauses at `checks` checks, as shipped or with other
    GC thresholds.

    The daemon's cyclic GC walks every tracked object not frozen in a full (generation 2)
    collection, and the loop stops meanwhile. The product freezes what a config builds and
    considers a full pass only every 100 young collections (`app.FULL_COLLECTION_EVERY`);
    `thresholds` ("700,10,10", CPython's default) is set by bench/launch.py two seconds after
    the loop starts, overriding the product's, to show what that choice buys.
    """
    interval = scale.lag_interval
    config = probes_config(checks=checks, interval=interval, url=target.url, max_concurrency=1024)
    stats = workdir / "gc.json"
    args = ["--gc-stats", str(stats)]
    if thresholds is not None:
        args += ["--gc-threshold", thresholds]
    with Stack(workdir) as stack:
        launched = time.monotonic()
        daemon = start_daemon(stack, config, core=cores.contender, launcher_args=args)
        wait_all_ran(daemon, checks, timeout=3 * interval + 60)
        time.sleep(max(5.0, launched + interval + 15.0 - time.monotonic()))  # past start-up
        t0 = time.time()
        time.sleep(scale.lag_window * scale.repeats)
        t1 = time.time()
        rss = rss_bytes(daemon.pid)
        stack.stop()
        [lags] = schedule_lags(daemon.db_path, [(t0, t1)], interval)
    pauses = json.loads(stats.read_text()) if stats.exists() else {}
    in_window = [took for at, took in pauses.get("gen2_pauses", []) if t0 <= at <= t1]
    return {
        "gen2_in_window": len(in_window),
        "gen2_in_window_max_ms": 1000 * max(in_window, default=0.0),
        "gen2_in_window_total_ms": 1000 * sum(in_window),
        "checks": checks,
        "thresholds": thresholds,
        "seconds": t1 - t0,
        "runs": len(lags),
        "lag_p50_ms": 1000 * percentile(lags, 0.5),
        "lag_p99_ms": 1000 * percentile(lags, 0.99),
        "lag_max_ms": 1000 * max(lags, default=float("nan")),
        "rss_bytes": rss,
        "gc": pauses,  # over the whole life of the daemon, start-up included
    }


# -- profile ----------------------------------------------------------------------------------


def profile_daemon(workdir: Path, cores: Cores, target: Target, scale: Scale) -> dict[str, Any]:
    """pyinstrument on the daemon's loop thread at `profile_checks` checks, 1 s interval.

    On asyncio's own loop, not uvloop: uvloop's C internals show up to a Python profiler as
    one opaque `run`, while asyncio's loop shows its idle time (`select`) apart from its work.
    Sampling starts once the daemon serves (start-up and config parsing are left out).
    """
    out = workdir / "profile.json"
    config = probes_config(
        checks=scale.profile_checks, interval=1.0, url=target.url, max_concurrency=1024
    )
    with Stack(workdir) as stack:
        launched = time.monotonic()
        daemon = start_daemon(
            stack, config, core=cores.contender, profile=out, loop="asyncio", profile_after=8.0
        )
        wait_all_ran(daemon, scale.profile_checks, timeout=60)
        time.sleep(max(0.0, launched + 10.0 - time.monotonic()))  # the profiler is sampling
        runs0, _ = runs_total(daemon)
        wall0 = time.monotonic()
        cpu0 = cpu_seconds(daemon.pid)
        time.sleep(scale.profile_seconds)
        runs1, _ = runs_total(daemon)
        cpu1 = cpu_seconds(daemon.pid)
        elapsed = time.monotonic() - wall0
        stack.stop()
    wait_for("profile written", out.exists, timeout=30)
    profile = json.loads(out.read_text())
    profile["runs_per_second"] = (runs1 - runs0) / elapsed
    profile["cpu_utilisation"] = (cpu1 - cpu0) / elapsed
    profile["text_path"] = str(out.with_suffix(".txt"))
    return profile


# -- detection ----------------------------------------------------------------------------------

BLACKBOX_RULES = """\
groups:
  - name: bench.blackbox
    rules:
      # The usual blackbox_exporter alert, with the same `for` as UptimeProbeCheckDown.
      - alert: BlackboxProbeFailed
        expr: probe_success{job="blackbox"} == 0
        for: 1m
        labels:
          severity: page
"""


def _prometheus_binary() -> str:
    import shutil

    for name in ("prometheus",):
        path = shutil.which(name)
        if path:
            return path
    raise BenchError("prometheus is not installed (Debian package prometheus)")


def _alertmanager_binary() -> str:
    import shutil

    for name in ("prometheus-alertmanager", "alertmanager"):
        path = shutil.which(name)
        if path:
            return path
    raise BenchError("Alertmanager is not installed (Debian package prometheus-alertmanager)")


def _iso_epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def detection(workdir: Path, cores: Cores, scale: Scale) -> dict[str, Any]:
    """Fault in the simulator -> check state down, and -> alert in a real Alertmanager.

    One simulator; uptime-probe checks its history endpoint (failure_threshold 2) and
    Prometheus scrapes blackbox_exporter probing the same endpoint, at the same interval.
    Prometheus evaluates the shipped rules (UptimeProbeCheckDown / SemanticFailure, `for: 1m`)
    and a BlackboxProbeFailed rule with the same `for`; both go to one Alertmanager. If the
    daemon's own `alertmanager` notifier is wired, its UptimeProbeIncident alert is timed too.
    Trials start at a random point of the check's interval.
    """
    import yaml

    interval = scale.detection_interval
    with Stack(workdir) as stack:
        sim = start_simulator(stack, cores.target).url
        history = f"{sim}/backend-api/conversations?offset=0&limit=20"

        am_port = free_port()
        am_dir = workdir / "alertmanager"
        am_dir.mkdir(parents=True, exist_ok=True)
        alertmanager = stack.start(
            "alertmanager",
            [
                _alertmanager_binary(),
                f"--config.file={REPO / 'prometheus' / 'alertmanager.yml'}",
                f"--storage.path={am_dir}",
                f"--web.listen-address={LOOPBACK}:{am_port}",
                "--cluster.listen-address=",
            ],
            core=cores.target,
        )
        am = f"http://{LOOPBACK}:{am_port}"
        wait_for(
            "alertmanager", lambda: reachable(f"{am}/-/ready"), timeout=60, programs=[alertmanager]
        )

        config = probes_config(
            checks=1,
            interval=interval,
            url=history,
            kind="history",
            failure_threshold=2,
            headers={"Authorization": "Bearer demo-token"},
            notifiers={"am": {"kind": "alertmanager", "url": am}},
        )
        daemon = start_daemon(stack, config, core=cores.contender)
        blackbox = start_blackbox(stack, core=cores.contender)

        prom_port = free_port()
        prom_dir = workdir / "prometheus"
        prom_dir.mkdir(parents=True, exist_ok=True)
        (prom_dir / "blackbox.rules.yml").write_text(BLACKBOX_RULES)
        daemon_hostport = daemon.base_url.removeprefix("http://")
        prom_config = {
            "global": {
                "scrape_interval": f"{interval:g}s",
                "evaluation_interval": f"{interval:g}s",
            },
            "rule_files": [
                str(REPO / "prometheus" / "rules" / "uptime-probe.rules.yml"),
                str(prom_dir / "blackbox.rules.yml"),
            ],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"{LOOPBACK}:{am_port}"]}]}]
            },
            "scrape_configs": [
                {"job_name": "uptime-probe", "static_configs": [{"targets": [daemon_hostport]}]},
                {
                    "job_name": "blackbox",
                    "metrics_path": "/probe",
                    "params": {"module": ["http_history"], "target": [history]},
                    "scrape_timeout": f"{min(5.0, interval):g}s",
                    "static_configs": [{"targets": [blackbox.base_url.removeprefix("http://")]}],
                },
            ],
        }
        (prom_dir / "prometheus.yml").write_text(yaml.safe_dump(prom_config, sort_keys=False))
        prometheus = stack.start(
            "prometheus",
            [
                _prometheus_binary(),
                f"--config.file={prom_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={prom_dir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{prom_port}",
            ],
            core=cores.target,
        )
        prom = f"http://{LOOPBACK}:{prom_port}"
        wait_for(
            "prometheus", lambda: reachable(f"{prom}/-/ready"), timeout=60, programs=[prometheus]
        )

        def prom_query(expr: str) -> list[Any]:
            from urllib.parse import quote

            body = json.loads(http_get(f"{prom}/api/v1/query?query={quote(expr)}"))
            return list(body["data"]["result"])

        def healthy() -> bool:
            # Only the alerts a trial times: the error-budget burn pages too, and rightly
            # stays firing while its 5-minute window still holds the last trial's failures.
            ours = prom_query('uptime_probe_check_state{state="up"} == 1')
            theirs = prom_query('probe_success{job="blackbox"} == 1')
            firing = [
                a
                for a in json.loads(http_get(f"{am}/api/v2/alerts?active=true"))
                if a["status"]["state"] == "active"
                and a["labels"].get("alertname") in DETECTION_ALERTS
            ]
            return bool(ours) and bool(theirs) and not firing

        trials = []
        for _trial in range(scale.detection_trials):
            http_send("DELETE", f"{sim}/_sim/faults")
            wait_for(
                "all healthy, no alert", healthy, timeout=240, programs=stack.programs, every=1.0
            )
            time.sleep(random.uniform(0, interval))
            t0 = time.time()
            http_send("POST", f"{sim}/_sim/faults", json.dumps({"conversations": "empty"}).encode())
            seen: dict[str, float] = {}
            deadline = time.monotonic() + 3 * interval + 60 + 90
            wanted = {"ours_prometheus", "blackbox_prometheus"}
            while time.monotonic() < deadline and not wanted <= seen.keys():
                now = time.time()
                for alert in json.loads(http_get(f"{am}/api/v2/alerts")):
                    name = alert["labels"].get("alertname", "")
                    if _iso_epoch(alert["startsAt"]) < t0 - 1:
                        continue
                    key = DETECTION_ALERTS.get(name)
                    if key and key not in seen:
                        seen[key] = now
                time.sleep(0.2)
            state_down = [
                e
                for e in daemon.log_events("check_state_changed")
                if e.get("state") == "down" and float(e.get("run_started_at", 0)) >= t0 - 0.001
            ]
            failed = [
                e for e in daemon.log_events("check_failed") if _iso_epoch(e["timestamp"]) >= t0
            ]
            # blackbox's first failing probe: the first 0 of probe_success in Prometheus after t0.
            from urllib.parse import quote

            window_query = quote('probe_success{job="blackbox"}[10m]')
            raw = json.loads(http_get(f"{prom}/api/v1/query?query={window_query}"))["data"][
                "result"
            ]
            blackbox_fail = min(
                (
                    float(ts)
                    for series in raw
                    for ts, value in series["values"]
                    if float(ts) >= t0 and value == "0"
                ),
                default=None,
            )
            trials.append(
                {
                    "fault_at": t0,
                    "ours_first_failed_run_s": _iso_epoch(failed[0]["timestamp"]) - t0
                    if failed
                    else None,
                    "ours_state_down_s": _iso_epoch(state_down[0]["timestamp"]) - t0
                    if state_down
                    else None,
                    "ours_state_down_run_started_s": float(state_down[0]["run_started_at"]) - t0
                    if state_down
                    else None,
                    "blackbox_first_failed_probe_s": blackbox_fail - t0 if blackbox_fail else None,
                    **{f"{key}_alert_s": at - t0 for key, at in seen.items()},
                }
            )
        http_send("DELETE", f"{sim}/_sim/faults")
    return {
        "interval": interval,
        "failure_threshold": 2,
        "prometheus_scrape_and_eval_interval": interval,
        "rule_for_seconds": 60,
        "trials": trials,
    }


# -- a quiet daemon --------------------------------------------------------------------------


def quiet_daemon(
    workdir: Path,
    cores: Cores,
    target: Target,
    *,
    checks: int = 100,
    interval: float = 30.0,
    window: float = 120.0,
) -> dict[str, Any]:
    """The daemon most users run: `checks` healthy checks every `interval` (3.3 runs/s).

    After every check has run once and a settling interval, CPU and RSS over `window`
    seconds, for the daemon's process and, apart, for its children (the judging zygote
    and any worker it forked, if an answer needed them): what the daemon does between
    runs is most of what it costs.
    """
    config = probes_config(checks=checks, interval=interval, url=target.url)
    with Stack(workdir) as stack:
        daemon = start_daemon(stack, config, core=cores.contender)
        wait_all_ran(daemon, checks, timeout=2 * interval + 60)
        time.sleep(min(interval, 10.0))  # past start-up's imports and first writes
        children = [pid for pid in process_tree(daemon.pid) if pid != daemon.pid]
        t0, runs0 = time.time(), runs_total(daemon)[0]
        cpu0 = cpu_seconds(daemon.pid)
        child_cpu0 = sum(cpu_seconds(pid) for pid in children)
        load0 = _sample_load()
        time.sleep(window)
        t1 = time.time()
        cpu1 = cpu_seconds(daemon.pid)
        child_cpu1 = sum(cpu_seconds(pid) for pid in children)
        runs1 = runs_total(daemon)[0]
        out = {
            "checks": checks,
            "interval": interval,
            "window": t1 - t0,
            "runs_per_second": (runs1 - runs0) / (t1 - t0),
            "cpu_utilisation": (cpu1 - cpu0) / (t1 - t0),
            "children_cpu_utilisation": (child_cpu1 - child_cpu0) / (t1 - t0),
            "rss_bytes": rss_bytes(daemon.pid),
            "children_rss_bytes": sum(rss_bytes(pid) for pid in children),
            "children": len(children),
            "loadavg": [load0, _sample_load()],
        }
        stack.stop()
    return out
