"""The two contenders, started the way a user would: the uptime-probe daemon and blackbox_exporter.

uptime-probe runs its own schedule: N checks at interval I offer N/I runs per second, and
the achieved rate is read from `uptime_probe_check_runs_total`. blackbox_exporter has no
schedule of its own (Prometheus drives it), so bench.loadgen drives its `/probe` endpoint
at a chosen concurrency or rate, as many Prometheus scrapes would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    LOOPBACK,
    PYTHON,
    REPO,
    BenchError,
    Program,
    Stack,
    free_port,
    http_get,
    metric_sum,
    reachable,
    wait_for,
)

BLACKBOX_BINARIES = ("prometheus-blackbox-exporter", "blackbox_exporter")
# Checks are named c00000, c00001, ... (slugs; sorted the same as numerically).
CHECK_NAME = "c{:05d}"


def check_config(name: str, url: str, *, kind: str) -> dict[str, Any]:
    """One single-step check: GET, 200, and for `json` a JSON assertion on the body."""
    expect: dict[str, Any] = {"status": 200}
    if kind == "json":
        expect["json"] = [{"query": "status", "equals": "ok"}]
    elif kind == "history":  # the simulator's conversations endpoint
        expect["json"] = [{"query": "length(items)", "gt": 0, "reason": "empty_history"}]
    return {"name": name, "steps": [{"name": "get", "request": {"url": url}, "expect": expect}]}


def probes_config(
    *,
    checks: int,
    interval: float,
    url: str,
    kind: str = "json",
    timeout: float = 5.0,
    max_concurrency: int = 512,
    failure_threshold: int = 2,
    headers: dict[str, str] | None = None,
    notifiers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "location": "bench",
        "max_concurrency": max_concurrency,
        "defaults": {
            "interval": f"{interval:g}s",
            "timeout": f"{min(timeout, interval):g}s",  # the loader refuses timeout > interval
            "failure_threshold": failure_threshold,
            "success_threshold": 1,
        },
        "server": {"listen": f"{LOOPBACK}:0", "watch_interval": "1h"},
        "checks": [check_config(CHECK_NAME.format(i), url, kind=kind) for i in range(checks)],
    }
    if headers:
        config["defaults"]["headers"] = headers
    if notifiers:
        config["notifiers"] = notifiers
        config["defaults"]["notifiers"] = list(notifiers)
    return config


@dataclass
class Daemon:
    program: Program
    base_url: str
    data_dir: Path
    config: dict[str, Any]

    @property
    def pid(self) -> int:
        return self.program.pid

    @property
    def db_path(self) -> Path:
        return self.data_dir / "uptime-probe.sqlite3"

    def metrics(self, timeout: float = 30.0) -> str:
        return http_get(f"{self.base_url}/metrics", timeout=timeout).decode()

    def log_events(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.program.log().splitlines():
            if f'"{event}"' not in line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("event") == event:
                found.append(record)
        return found


def start_daemon(
    stack: Stack,
    config: dict[str, Any],
    *,
    core: int | None,
    loop: str = "uvloop",
    name: str = "uptime-probe",
    profile: Path | None = None,
    profile_after: float = 0.0,
    launcher_args: Sequence[str] = (),
    start_timeout: float = 240.0,
) -> Daemon:
    """Start `uptime-probe run` (through bench.launch, for the loop) and wait until it serves."""
    directory = stack.directory / name
    shutil.rmtree(directory, ignore_errors=True)  # no state restored from an earlier run
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "probes.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    data_dir = directory / "data"
    launcher = [PYTHON, "-m", "bench.launch", "--loop", loop]
    if profile is not None:
        launcher += ["--profile", str(profile), "--profile-after", str(profile_after)]
    launcher += list(launcher_args)
    program = stack.start(
        name,
        [
            *launcher,
            "--",
            "run",
            "-c",
            str(config_path),
            "--listen",
            f"{LOOPBACK}:0",
            "--data-dir",
            str(data_dir),
            "--log-level",
            "info",
            "--grace",
            "5",
        ],
        core=core,
        # This tree's code, not an installed copy; BENCH_SRC names another (a before/after).
        env={"PYTHONPATH": f"{REPO}:{os.environ.get('BENCH_SRC', REPO / 'src')}"},
    )

    def started() -> str | None:
        for line in program.log().splitlines():
            if '"daemon_started"' in line:
                return str(json.loads(line)["listen"])
        return None

    listen = wait_for(
        "daemon_started", started, timeout=start_timeout, programs=[program], every=0.5
    )
    daemon = Daemon(program, f"http://{listen}", data_dir, config)
    wait_for(
        "/healthz", lambda: reachable(f"{daemon.base_url}/healthz"), timeout=30, programs=[program]
    )
    return daemon


BLACKBOX_CONFIG = {
    "modules": {
        # The one-step JSON check: status 200 and a body regexp standing for the assertion.
        "http_json": {
            "prober": "http",
            "timeout": "5s",
            "http": {
                "valid_status_codes": [200],
                "preferred_ip_protocol": "ip4",
                "fail_if_body_not_matches_regexp": ['"status":\\s*"ok"'],
            },
        },
        # The simulator's history: non-empty items (the empty-history fault fails it).
        "http_history": {
            "prober": "http",
            "timeout": "5s",
            "http": {
                "valid_status_codes": [200],
                "preferred_ip_protocol": "ip4",
                "headers": {"Authorization": "Bearer demo-token"},
                "fail_if_body_not_matches_regexp": ['"items":\\s*\\[\\s*\\{'],
            },
        },
    }
}


@dataclass
class Blackbox:
    program: Program
    base_url: str

    @property
    def pid(self) -> int:
        return self.program.pid

    def probe_url(self, module: str, target: str) -> str:
        return f"{self.base_url}/probe?module={module}&target={target}"


def blackbox_binary() -> str:
    for name in BLACKBOX_BINARIES:
        path = shutil.which(name)
        if path is not None:
            return path
    raise BenchError(
        "blackbox_exporter is not installed: scripts/bench.sh installs the Debian package "
        "prometheus-blackbox-exporter"
    )


def start_blackbox(stack: Stack, *, core: int | None, gomaxprocs: int = 1) -> Blackbox:
    directory = stack.directory / "blackbox"
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "blackbox.yml"
    config_path.write_text(yaml.safe_dump(BLACKBOX_CONFIG, sort_keys=False))
    port = free_port()
    program = stack.start(
        "blackbox",
        [
            blackbox_binary(),
            f"--config.file={config_path}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=warn",
        ],
        core=core,
        # One core: the Go runtime's threads follow the process's CPU set, and GOMAXPROCS
        # keeps it from planning for more than it has.
        env={"GOMAXPROCS": str(gomaxprocs)},
    )
    base = f"http://{LOOPBACK}:{port}"
    wait_for(
        "blackbox_exporter", lambda: reachable(f"{base}/metrics"), timeout=30, programs=[program]
    )
    return Blackbox(program, base)


def runs_total(daemon: Daemon) -> tuple[float, float]:
    """(sum of runs_total, sum of runs_skipped_total) over every check, from one scrape."""
    text = daemon.metrics()
    return (
        metric_sum(text, "uptime_probe_check_runs_total"),
        metric_sum(text, "uptime_probe_runs_skipped_total"),
    )


def checks_that_ran(daemon: Daemon) -> int:
    """How many checks have a stored state, i.e. ran at least once (a cheap read of SQLite;
    polling /metrics instead would make a 10,000-check daemon render 60 MB a second)."""
    with sqlite3.connect(f"file:{daemon.db_path}?mode=ro", uri=True, timeout=5) as db:
        return int(db.execute("SELECT COUNT(*) FROM check_states").fetchone()[0])


def wait_all_ran(daemon: Daemon, checks: int, timeout: float, enough: float = 0.99) -> int:
    """Until every check has run once; at the deadline `enough` of them will do (an
    overloaded daemon's store may drop a few rows, and a saturated one never gets to some
    checks: see `ours_at_rate`). Returns how many had run."""
    deadline = time.monotonic() + timeout
    ran = 0
    while time.monotonic() < deadline:
        if daemon.program.exited():
            raise BenchError(f"daemon exited\n{daemon.program.tail()}")
        with contextlib.suppress(sqlite3.Error):
            ran = checks_that_ran(daemon)
        if ran >= checks:
            return ran
        time.sleep(2.0)
    if ran >= enough * checks:
        return ran
    raise BenchError(
        f"only {ran} of {checks} checks ran within {timeout:g}s\n{daemon.program.tail()}"
    )
