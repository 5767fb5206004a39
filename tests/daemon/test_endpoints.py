"""The real daemon against the real simulator: /metrics parsed, counters moving, the
other endpoints, and the lifecycle API."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from uptime_probe import __version__
from uptime_probe.probe.model import COMMON_REASONS, PHASES
from uptime_probe.simulator import RunningSimulator

from .conftest import StartDaemon
from .support import history_check, http_check, write_config, write_text

RUNS = "uptime_probe_check_runs_total"
FAILURES = "uptime_probe_check_failures_total"


def chat_check(sim: RunningSimulator, name: str = "chat_load") -> dict[str, object]:
    return http_check(
        name, f"{sim.url}/", step="page", expect={"body_contains": "<title>SimChat</title>"}
    )


async def test_metrics_parse_and_counters_move(
    simulator: RunningSimulator, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([chat_check(simulator), history_check(simulator.url)])
    await daemon.started()

    first = await daemon.scrape()
    for check, steps in (("chat_load", ["page"]), ("history", ["conversations"])):
        base = {"check": check, "location": "local"}
        # Every series of the check, from the first scrape (runs may or may not have happened).
        assert first.find(RUNS, **base)
        assert {labels["reason"] for labels, _ in first.find(FAILURES, **base)} >= set(
            COMMON_REASONS
        )
        states = first.find("uptime_probe_check_state", **base)
        assert {labels["state"] for labels, _ in states} == {"up", "degraded", "down"}
        assert first.find("uptime_probe_check_duration_seconds_count", **base)
        assert first.value("uptime_probe_check_slo_objective", **base) == 0.999
        assert first.value("uptime_probe_check_interval_seconds", **base) == 0.5
        for step in steps:
            phases = first.find("uptime_probe_step_phase_seconds", **base, step=step)
            assert {labels["phase"] for labels, _ in phases} == set(PHASES)
    # The config-named reason, pre-created at 0, only on the check that names it.
    assert first.value(FAILURES, check="history", reason="empty_history") == 0
    assert first.find(FAILURES, check="chat_load", reason="empty_history") == []
    assert first.types["uptime_probe_check_runs"] == "counter"
    assert first.types["uptime_probe_check_duration_seconds"] == "histogram"

    before = first.value(RUNS, check="history")
    healthy = await daemon.wait_for_scrape(
        lambda s: (
            s.value(RUNS, check="history") >= before + 3 and s.value(RUNS, check="chat_load") >= 3
        ),
        "three more runs of each check",
    )
    for check in ("chat_load", "history"):
        runs = healthy.value(RUNS, check=check)
        assert healthy.value("uptime_probe_check_success", check=check) == 1
        assert healthy.value("uptime_probe_check_state", check=check, state="up") == 1
        assert sum(v for _, v in healthy.find(FAILURES, check=check)) == 0
        # The histogram saw every run (a run may land between reading the two: off by one).
        count = healthy.value("uptime_probe_check_duration_seconds_count", check=check)
        assert runs - 1 <= count <= runs + 1
        assert healthy.value("uptime_probe_check_last_success_timestamp_seconds", check=check) > 1e9
    assert (
        healthy.value("uptime_probe_step_http_status_code", check="chat_load", step="page") == 200
    )
    assert healthy.value("uptime_probe_schedule_lag_seconds_count") >= 6
    assert healthy.value("uptime_probe_config_last_reload_successful") == 1
    assert healthy.value("uptime_probe_build_info", version=__version__) == 1
    assert healthy.find("process_resident_memory_bytes")

    # A failure moves exactly its reason's counter; two in a row turn the check down.
    simulator.set_faults({"conversations": "empty"})
    failing = await daemon.wait_for_scrape(
        lambda s: s.value("uptime_probe_check_state", check="history", state="down") == 1,
        "history down after failure_threshold (2) empty answers",
    )
    empty = failing.value(FAILURES, check="history", reason="empty_history")
    assert empty >= 2
    assert sum(v for _, v in failing.find(FAILURES, check="history")) == empty
    assert failing.value("uptime_probe_check_success", check="history") == 0
    assert failing.value(
        "uptime_probe_check_last_failure_info", check="history", reason="empty_history",
        step="conversations",
    ) == 1  # fmt: skip
    assert failing.value("uptime_probe_check_state", check="chat_load", state="up") == 1
    await daemon.wait_for_log(
        "check_failed", check="history", reason="empty_history", step="conversations"
    )
    await daemon.wait_for_log("check_state_changed", check="history", state="down", previous="up")


async def test_health_readiness_and_formats(
    simulator: RunningSimulator, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([chat_check(simulator)])
    await daemon.started()
    assert (await daemon.request("GET", "/healthz"))[:2] == (200, "ok\n")
    status, text, _ = await daemon.request("GET", "/readyz")
    assert status == 200
    assert text.startswith("ready"), text
    # The lifecycle API is off unless the config turns it on, as in Prometheus.
    for method in ("POST", "PUT"):
        status, text, _ = await daemon.request(method, "/-/reload")
        assert status == 403, text
    assert daemon.logs("config_reloaded") == []

    status, text, headers = await daemon.request(
        "GET", "/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["uptime_probe_check_runs"].type == "counter"
    assert families["uptime_probe_check_state"].type == "gauge"
    assert families["uptime_probe_schedule_lag_seconds"].type == "histogram"

    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit() == 0


async def test_lifecycle_reload_when_enabled(
    simulator: RunningSimulator, start_daemon: StartDaemon, config_path: Path
) -> None:
    # A long watch interval, so only the HTTP call can be what reloads.
    server = {"enable_lifecycle": True, "watch_interval": "1h"}
    daemon = start_daemon([chat_check(simulator)], server=server)
    await daemon.started()

    write_config(config_path, [chat_check(simulator), history_check(simulator.url)], server=server)
    status, text, _ = await daemon.request("POST", "/-/reload")
    assert (status, text) == (200, "config reloaded\n")
    await daemon.wait_for_log("config_reloaded", trigger="http")
    scrape = await daemon.scrape()
    assert scrape.checks() == {"chat_load", "history"}
    assert scrape.value(FAILURES, check="history", reason="empty_history") == 0

    write_text(config_path, config_path.read_text().replace("interval: 500ms", "interval: soon", 1))
    status, text, _ = await daemon.request("PUT", "/-/reload")
    assert status == 500
    assert re.search(r"probes\.yaml:\d+ checks\[0\]\.interval: invalid duration 'soon'", text), text
    scrape = await daemon.scrape()
    assert scrape.value("uptime_probe_config_last_reload_successful") == 0
    assert scrape.checks() == {"chat_load", "history"}
