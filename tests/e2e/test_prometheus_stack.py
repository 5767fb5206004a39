"""End-to-end: simulator -> daemon -> real Prometheus (shipped rules) -> real Alertmanager.

What issue 5 asks, proved against the real programs rather than our assumptions:

1. the simulator (healthy), the daemon on the three journeys of probes.yaml with short timings,
   Alertmanager and Prometheus (1s scrape and evaluation) start on 127.0.0.1, and every check
   is seen up through Prometheus;
2. faults are injected through the simulator's control API: history answers 200 with nothing in
   it (`conversations: empty`) and task creation hangs (`task_create: hang`);
3. UptimeProbeSemanticFailure (history_sidebar, reason empty_history) and UptimeProbeCheckDown
   (task_creation, reason timeout) fire in Prometheus, with the check, reason and step in their
   annotations, and arrive in Alertmanager;
4. every metric docs/metrics.md lists is in Prometheus with its documented labels, every PromQL
   expression of every dashboard panel evaluates without error, and the core panels have data;
5. once the faults are cleared both alerts leave Prometheus's firing set and Alertmanager's
   active alerts.

Takes about 20 s on an idle 2-core machine, 40 s with both cores saturated. Needs `prometheus`, `promtool` and Alertmanager (Debian packages
`prometheus` and `prometheus-alertmanager`); a missing one FAILS the test.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from .stack import (
    LOOPBACK,
    ManagedProcess,
    ProcessStack,
    PrometheusAPI,
    format_alerts,
    http_json,
    http_status,
    process_stack,
    require_binary,
    wait_for,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PROBES_FILE = REPO / "probes.yaml"
RULES_FILE = REPO / "prometheus" / "rules" / "uptime-probe.rules.yml"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "prometheus" / "alertmanager.yml"
METRICS_DOC = REPO / "docs" / "metrics.md"
DASHBOARD_QUERIES = REPO / "tests" / "grafana" / "dashboard_queries.py"

CHECKS = ("chat_load", "history_sidebar", "task_creation", "chat_answer")
BROWSER_JOURNEY = "sidebar_renders"
LOCATION = "e2e"
JOB = "uptime-probe"  # the shipped scrape job, which the rules and the self dashboard select

# Prometheus scrapes and evaluates every second.
EVALUATION_INTERVAL = "1s"
# What every `for:` of the shipped rules becomes: short enough for a test that runs in seconds,
# not zero, so each alert still goes through pending before firing as it does in production.
SHORT_FOR = "2s"

FAULTS = {"conversations": {"mode": "empty"}, "task_create": {"mode": "hang"}}

# (alertname, check) -> (reason, failing step) the annotations must name.
EXPECTED_PAGES = {
    ("UptimeProbeSemanticFailure", "history_sidebar"): ("empty_history", "conversations"),
    ("UptimeProbeCheckDown", "task_creation"): ("timeout", "create"),
}
# Fires too (history_sidebar is down), but the shipped inhibition mutes it in Alertmanager.
INHIBITED_PAGE = ("UptimeProbeCheckDown", "history_sidebar")

# docs/metrics.md lists these, but the daemon cannot export them in this setup, by design:
CONDITIONAL_METRICS = {
    # "present only once there is something to say ... after the step first used TLS" (the
    # doc's "When series exist"); the simulator serves plain HTTP, so no step has a certificate.
    "uptime_probe_step_tls_cert_expiry_timestamp_seconds": "no TLS target in this test",
    # Labelled by (notifier, result), where notifier is a key of the config's `notifiers:`;
    # this config has none, so there is no series to export.
    "uptime_probe_notifications_total": "no notifier configured",
    # One series per name in a check's `depends_on`; no check of this config has one.
    "uptime_probe_check_suppressed": "no depends_on configured",
}
# uptime_probe_check_last_failure_info is conditional too (after the first down run), but is
# checked: the metrics are asserted after the faults have made two checks fail.
# uptime_probe_store_errors_total is not: an unlabelled counter is exported from the start.

# Deadlines, generous for a loaded 2-core machine; the whole run normally takes a fraction.
START_TIMEOUT = 45.0
BASELINE_TIMEOUT = 45.0
FIRE_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 30.0
RESOLVE_TIMEOUT = 45.0

# The simulator's task completion delay (2 s) is divided by --speed; under the `healthy`
# scenario nothing else scales (one endless phase, fault latencies are never scaled). 0.2 s
# leaves the 1.5 s poll window of task_creation ample room on a busy machine.
SIMULATOR_SPEED = "10"


# --------------------------------------------------------------------------------------------
# Configuration derived from what we ship
# --------------------------------------------------------------------------------------------


def daemon_config(simulator_url: str) -> dict[str, Any]:
    """probes.yaml's four journeys, unchanged but for their timings and target.

    The daemon rejects a timeout longer than the interval, so the 1 s checks get a 1 s timeout;
    task_creation needs room for create + polling (every 250ms within 1.5s): 2 s timeout, 3 s
    interval, so a hanging run ends before the next one is due (no skipped runs). chat_answer's
    answer streams for about half a second: 2 s, with its stream limits within that.
    """
    config: dict[str, Any] = yaml.safe_load(PROBES_FILE.read_text(encoding="utf-8"))
    names = tuple(check["name"] for check in config["checks"])
    assert names == (*CHECKS, BROWSER_JOURNEY), (
        f"probes.yaml journeys changed: {names}; update this test"
    )
    # The browser journey has its own end-to-end test (tests/scenarios/test_sidebar_renders.py):
    # a page in Chromium needs more than the 1 s timings used here.
    config["checks"] = [check for check in config["checks"] if check["name"] in CHECKS]
    config["location"] = LOCATION
    config["variables"]["base_url"] = simulator_url
    config["secrets"]["token"] = "demo-token"  # the simulator's; never from the environment
    # Nothing leaves the test: no notifier (one could point at a real endpoint), and the server
    # section at its defaults (no auth on /metrics, which this Prometheus scrapes without
    # credentials; the address comes from --listen).
    config.pop("notifiers", None)
    config.pop("server", None)
    config["defaults"].pop("notifiers", None)
    config["defaults"].update(interval="1s", timeout="1s", failure_threshold=2)
    for check in config["checks"]:
        check.pop("notifiers", None)
        check.update(interval="1s", timeout="1s")
        if check["name"] == "task_creation":
            check.update(interval="3s", timeout="2s")
            polls = [step for step in check["steps"] if "poll" in step]
            assert len(polls) == 1, f"task_creation should poll in one step: {check['steps']}"
            polls[0]["poll"].update(every="250ms", within="1.5s")
        if check["name"] == "chat_answer":
            check.update(interval="2s", timeout="2s")
            (answer,) = check["steps"]
            answer["expect"].update(first_event_within="1500ms", max_first_event="1s", max_gap="1s")
    return config


def derive_rules() -> dict[str, Any]:
    """The shipped rules with only their timings shortened, loaded and dumped as YAML.

    - Every `for:` becomes SHORT_FOR.
    - The SLO recording group pins `interval: 1m`, and check:uptime_probe_check_failures:delta1m
      compares the counter with itself `offset 1m`: the offset must equal the group interval
      so the deltas tile time (the rules file says so). Left at 1m, the group's first
      evaluation would come up to a minute after Prometheus starts (Prometheus spreads groups
      over their interval), so the recording rules and everything built on them (burn-rate
      alerts, burn-rate and budget panels) would have no data within this test. The group
      interval and its matching offset therefore move together to EVALUATION_INTERVAL; any
      other offset in such a group fails here, since it would break that invariant.
    """
    rules: dict[str, Any] = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        pinned = group.get("interval")
        if pinned is not None:
            group["interval"] = EVALUATION_INTERVAL
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SHORT_FOR
            if pinned is None:
                continue
            offsets = set(re.findall(r"\boffset\s+(\w+)", rule["expr"]))
            assert offsets <= {pinned}, (
                f"group {group['name']!r} pins interval {pinned} but rule "
                f"{rule.get('record') or rule.get('alert')!r} uses offsets {offsets}"
            )
            rule["expr"] = re.sub(
                rf"\boffset\s+{re.escape(pinned)}\b", f"offset {EVALUATION_INTERVAL}", rule["expr"]
            )
    return rules


def prometheus_config(daemon: str, alertmanager: str, rules_file: Path) -> dict[str, Any]:
    """The shipped prometheus.yml, pointed at this test's daemon, rules and Alertmanager.

    Its scrape job is kept as shipped (name, metrics path), so a rename there that the rules
    and dashboards do not follow fails here.
    """
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    assert len(jobs) == 1, f"prometheus.yml has no single {JOB!r} job: {config['scrape_configs']}"
    job = jobs[0]
    job["static_configs"] = [{"targets": [daemon]}]
    return {
        "global": {
            "scrape_interval": EVALUATION_INTERVAL,
            "scrape_timeout": EVALUATION_INTERVAL,  # may not exceed the interval
            "evaluation_interval": EVALUATION_INTERVAL,
        },
        "rule_files": [str(rules_file)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [job],
    }


def alertmanager_config() -> dict[str, Any]:
    """Everything to one null receiver, quickly, with the SHIPPED inhibition rules.

    The shipped routes deliver to placeholder webhooks on 127.0.0.1:5001, where anything (or
    another engineer's test) may listen, so they are replaced. The inhibition rules are kept as
    they are, because they decide which pages a human gets and the test asserts what they
    intend: while UptimeProbeSemanticFailure fires for a check, its UptimeProbeCheckDown still
    reaches Alertmanager but is suppressed; a CheckDown with no SemanticFailure (task_creation,
    a timeout) stays active.
    """
    shipped: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    return {
        "route": {
            "receiver": "null",
            "group_by": shipped["route"]["group_by"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "null"}],
        "inhibit_rules": copy.deepcopy(shipped.get("inhibit_rules", [])),
    }


def write_yaml(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# The metric contract and the dashboards
# --------------------------------------------------------------------------------------------

# docs/metrics.md: one "## " section per kind of series, whose first paragraph may say
# "Labels `check` and `location`, plus those named."; in it one "### `name` (type; labels `x`)"
# heading per metric. Process metrics are listed by name in their own "### " section.
DOC_SECTION = re.compile(r"^## (.+)$")
DOC_SECTION_LABELS = re.compile(r"^Labels (.+)$")
DOC_METRIC = re.compile(r"^### `(uptime_probe_\w+)` \((.+)\)$")
DOC_PROCESS_SECTION = "### Process metrics"
BACKTICKED = re.compile(r"`(\w+)`")


def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """docs/metrics.md's metrics: name -> (type, label names every series of it carries).

    A metric carries its section's labels ("Labels `check`, `location` and `step`, ...") and
    those its heading names ("(gauge; label `phase`)"); Prometheus adds job and instance.
    """
    metrics: dict[str, tuple[str, frozenset[str]]] = {}
    section_labels: frozenset[str] = frozenset()
    in_process_section = False
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        if DOC_SECTION.match(line):
            section_labels, in_process_section = frozenset(), False
        elif match := DOC_SECTION_LABELS.match(line):
            section_labels = frozenset(BACKTICKED.findall(match.group(1)))
        elif match := DOC_METRIC.match(line):
            name, description = match.groups()
            kind = description.split(",")[0].split(";")[0].strip()
            own = frozenset(BACKTICKED.findall(description))
            metrics[name] = (kind, section_labels | own)
        elif line.startswith("### "):
            in_process_section = line.strip() == DOC_PROCESS_SECTION
        elif in_process_section:
            if line.startswith("```"):
                in_process_section = False  # the example query, not the list
            for name in BACKTICKED.findall(line):
                if name.startswith("process_"):
                    metrics[name] = ("process", frozenset())
    per_check = [m for m in metrics if m.startswith("uptime_probe_check_")]
    assert len(metrics) >= 20, f"could not read the metrics of {METRICS_DOC}: {metrics}"
    assert all({"check", "location"} <= metrics[m][1] for m in per_check), (
        f"could not read the per-check labels of {METRICS_DOC}: {metrics}"
    )
    return metrics


def exposed_names(name: str, kind: str) -> dict[str, frozenset[str]]:
    """The series names a documented metric becomes in Prometheus, with their own labels."""
    if "histogram" in kind:
        return {
            f"{name}_bucket": frozenset({"le"}),
            f"{name}_count": frozenset(),
            f"{name}_sum": frozenset(),
        }
    return {name: frozenset()}


def load_dashboard_queries_module() -> ModuleType:
    """tests/grafana/dashboard_queries.py, shared with the static dashboard tests.

    Imported by path: tests/grafana is not a package and is on sys.path only when its own tests
    are collected first.
    """
    existing = sys.modules.get("dashboard_queries")
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location("dashboard_queries", DASHBOARD_QUERIES)
    assert spec is not None, DASHBOARD_QUERIES
    assert spec.loader is not None, DASHBOARD_QUERIES
    module = importlib.util.module_from_spec(spec)
    sys.modules["dashboard_queries"] = module
    spec.loader.exec_module(module)
    return module


def template_values(check: str) -> dict[str, str]:
    return {
        "datasource": "",
        "location": ".*",
        "check": check,
        "step": ".*",
        "job": JOB,
        "instance": ".*",
    }


def panel_queries(dashboard: str, title: str) -> list[str]:
    """The exprs of one panel, by dashboard file name and panel title, or fail naming them."""
    queries = load_dashboard_queries_module()
    path = queries.DASHBOARD_DIR / dashboard
    found = [expr for _uid, panel, expr in queries.iter_dashboard_queries(path) if panel == title]
    if not found:
        titles = sorted({panel for _uid, panel, _expr in queries.iter_dashboard_queries(path)})
        pytest.fail(f"{dashboard} has no panel {title!r}; panels: {titles}")
    return found


# --------------------------------------------------------------------------------------------
# Programs
# --------------------------------------------------------------------------------------------


def uptime_probe_command() -> str:
    script = Path(sys.executable).parent / "uptime-probe"
    if not script.exists():
        pytest.fail(f"{script} is missing: install the package (pip install -e .)", pytrace=False)
    return str(script)


def log_match(process: ManagedProcess, pattern: re.Pattern[str]) -> re.Match[str] | None:
    return pattern.search(process.log())


def start_simulator(stack: ProcessStack) -> str:
    process = stack.start(
        "simulator",
        [
            uptime_probe_command(), "simulator", "--listen", f"{LOOPBACK}:0",
            "--scenario", "healthy", "--speed", SIMULATOR_SPEED,
        ],
    )  # fmt: skip
    started = re.compile(r"simulator_started url=(http://\S+)")
    url = wait_for(
        lambda: (m := log_match(process, started)) and m.group(1),
        timeout=START_TIMEOUT,
        what="the simulator's simulator_started line",
        stack=stack,
    )
    wait_for(
        lambda: http_status(f"{url}/_sim/faults") == 200,
        timeout=START_TIMEOUT,
        what="the simulator's control API",
        stack=stack,
    )
    return url


def start_daemon(stack: ProcessStack, config_file: Path) -> str:
    process = stack.start(
        "daemon",
        [
            uptime_probe_command(), "run", "-c", str(config_file),
            "--listen", f"{LOOPBACK}:0", "--log-level", "info",
        ],
    )  # fmt: skip

    def listen_address() -> str | None:
        for line in process.log().splitlines():
            if '"daemon_started"' in line:
                address: str = json.loads(line)["listen"]
                return address
        return None

    address = wait_for(
        listen_address, timeout=START_TIMEOUT, what="the daemon's daemon_started line", stack=stack
    )
    wait_for(
        lambda: http_status(f"http://{address}/readyz") == 200,
        timeout=START_TIMEOUT,
        what="the daemon's /readyz",
        stack=stack,
    )
    return address


def start_alertmanager(stack: ProcessStack, binary: str, directory: Path) -> str:
    config = write_yaml(directory / "alertmanager.yml", alertmanager_config())
    _process, port = stack.start_listening(
        "alertmanager",
        lambda port: [
            binary,
            f"--config.file={config}",
            f"--storage.path={directory / 'alertmanager-data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--cluster.listen-address=",  # empty: no gossip port, no peers
            "--log.level=info",
        ],
        lambda port: f"http://{LOOPBACK}:{port}/-/ready",
        timeout=START_TIMEOUT,
    )
    return f"{LOOPBACK}:{port}"


def start_prometheus(
    stack: ProcessStack, binary: str, promtool: str, directory: Path, daemon: str, am: str
) -> PrometheusAPI:
    rules = write_yaml(directory / "uptime-probe.rules.yml", derive_rules())
    config = write_yaml(directory / "prometheus.yml", prometheus_config(daemon, am, rules))
    # promtool first: a rule the rewrite broke is reported as such, not as a Prometheus crash.
    checked = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, f"promtool check config:\n{checked.stdout}\n{checked.stderr}"
    _process, port = stack.start_listening(
        "prometheus",
        lambda port: [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'prometheus-data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=info",
        ],
        lambda port: f"http://{LOOPBACK}:{port}/-/ready",
        timeout=START_TIMEOUT,
    )
    prometheus = PrometheusAPI(f"http://{LOOPBACK}:{port}")
    # Alerts are sent when they start firing, then once a minute: an Alertmanager discovered
    # late would see them a minute late. Static discovery is immediate; make sure of it.
    wait_for(
        lambda: http_json("GET", f"{prometheus.url}/api/v1/alertmanagers")["data"][
            "activeAlertmanagers"
        ],
        timeout=START_TIMEOUT,
        what="Prometheus to discover the Alertmanager",
        stack=stack,
    )
    return prometheus


# --------------------------------------------------------------------------------------------
# Observations
# --------------------------------------------------------------------------------------------


def alert_key(alert: Mapping[str, Any]) -> tuple[str, str]:
    labels = alert.get("labels", {})
    return labels.get("alertname", ""), labels.get("check", "")


def firing(prometheus: PrometheusAPI) -> dict[tuple[str, str], dict[str, Any]]:
    return {alert_key(a): a for a in prometheus.alerts() if a.get("state") == "firing"}


def alertmanager_alerts(am: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = http_json("GET", f"http://{am}/api/v2/alerts")
    return alerts


def still_active_in_alertmanager(alert: Mapping[str, Any]) -> bool:
    """Not resolved: Alertmanager lists an alert until its endsAt, which a resolve sets."""
    ends_at = alert.get("endsAt") or ""
    if not ends_at or ends_at.startswith("0001-"):
        return True
    return datetime.fromisoformat(ends_at.replace("Z", "+00:00")).timestamp() > time.time()


def check_states(prometheus: PrometheusAPI) -> str:
    samples = prometheus.vector("uptime_probe_check_state == 1")
    return (
        "\n".join(
            sorted(f"    {s['metric'].get('check')}: {s['metric'].get('state')}" for s in samples)
        )
        or "    (no uptime_probe_check_state series)"
    )


def describe(prometheus: PrometheusAPI, am: str | None = None) -> Callable[[], str]:
    """What a failed wait prints: check states and alerts in Prometheus (and Alertmanager)."""

    def state() -> str:
        parts = [
            f"check states in Prometheus:\n{check_states(prometheus)}",
            f"Prometheus alerts:\n{format_alerts(prometheus.alerts())}",
        ]
        if am is not None:
            parts.append(f"Alertmanager alerts:\n{format_alerts(alertmanager_alerts(am))}")
        return "\n".join(parts)

    return state


def assert_annotations_name_the_failure(alert: Mapping[str, Any], reason: str, step: str) -> None:
    """The issue: summary and description name the check, the reason and the failing step."""
    check = alert["labels"]["check"]
    for key in ("summary", "description"):
        text = alert.get("annotations", {}).get(key, "")
        for word in (check, f"reason {reason}", f"step {step}"):
            assert word in text, f"{alert['labels']['alertname']} {key} lacks {word!r}: {text!r}"


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------


def test_faults_page_through_prometheus_and_alertmanager_then_resolve(tmp_path: Path) -> None:
    prometheus_binary = require_binary("prometheus", package="prometheus")
    promtool = require_binary("promtool", package="prometheus")
    # Debian installs Alertmanager as prometheus-alertmanager; upstream tarballs as alertmanager.
    alertmanager_binary = require_binary(
        "alertmanager", "prometheus-alertmanager", package="prometheus-alertmanager"
    )

    with process_stack(tmp_path) as stack:
        # 1. The stack, and a healthy baseline.
        simulator = start_simulator(stack)
        daemon_file = write_yaml(tmp_path / "probes.yaml", daemon_config(simulator))
        daemon = start_daemon(stack, daemon_file)
        am = start_alertmanager(stack, alertmanager_binary, tmp_path)
        prometheus = start_prometheus(stack, prometheus_binary, promtool, tmp_path, daemon, am)
        state = describe(prometheus, am)

        def all_up() -> bool:
            up = prometheus.vector('uptime_probe_check_state{state="up"} == 1')
            return {s["metric"]["check"] for s in up} == set(CHECKS)

        wait_for(
            all_up,
            timeout=BASELINE_TIMEOUT,
            what="every check up in Prometheus before any fault",
            stack=stack,
            state=state,
        )

        # 2. Faults.
        answer = http_json("POST", f"{simulator}/_sim/faults", body=FAULTS)
        for endpoint, spec in FAULTS.items():
            assert answer["faults"][endpoint]["mode"] == spec["mode"], answer

        # 3. The pages fire in Prometheus, naming check, reason and step ...
        def pages_firing() -> dict[tuple[str, str], dict[str, Any]] | None:
            now = firing(prometheus)
            return now if all(key in now for key in EXPECTED_PAGES) else None

        fired = wait_for(
            pages_firing,
            timeout=FIRE_TIMEOUT,
            what=f"{sorted(EXPECTED_PAGES)} firing in Prometheus",
            stack=stack,
            state=state,
        )
        for key, (reason, step) in EXPECTED_PAGES.items():
            assert_annotations_name_the_failure(fired[key], reason, step)

        # ... and arrive in Alertmanager, where the shipped inhibition mutes the CheckDown
        # that a SemanticFailure for the same check explains.
        def delivered() -> dict[tuple[str, str], dict[str, Any]] | None:
            alerts = {alert_key(a): a for a in alertmanager_alerts(am)}
            active = all(
                key in alerts and alerts[key]["status"]["state"] == "active"
                for key in EXPECTED_PAGES
            )
            muted = alerts.get(INHIBITED_PAGE, {}).get("status", {})
            if active and muted.get("state") == "suppressed" and muted.get("inhibitedBy"):
                return alerts
            return None

        received = wait_for(
            delivered,
            timeout=DELIVERY_TIMEOUT,
            what=f"{sorted(EXPECTED_PAGES)} active and {INHIBITED_PAGE} inhibited in Alertmanager",
            stack=stack,
            state=state,
        )
        for key, (reason, step) in EXPECTED_PAGES.items():
            assert_annotations_name_the_failure(received[key], reason, step)

        # 4. The metric contract and the dashboards, against data with both health and faults.
        assert_documented_metrics_present(prometheus)
        assert_every_dashboard_query_evaluates(prometheus)
        wait_for_core_panels(prometheus, stack)

        # 5. Clear the faults: the pages resolve in Prometheus, then in Alertmanager.
        answer = http_json("DELETE", f"{simulator}/_sim/faults")
        assert all(spec["mode"] == "ok" for spec in answer["faults"].values()), answer
        watched = {*EXPECTED_PAGES, INHIBITED_PAGE}
        wait_for(
            lambda: not watched & firing(prometheus).keys(),
            timeout=RESOLVE_TIMEOUT,
            what=f"{sorted(watched)} to stop firing in Prometheus after the faults were cleared",
            stack=stack,
            state=state,
        )
        wait_for(
            lambda: (
                not any(
                    alert_key(a) in watched and still_active_in_alertmanager(a)
                    for a in alertmanager_alerts(am)
                )
            ),
            timeout=RESOLVE_TIMEOUT,
            what=f"{sorted(watched)} resolved in Alertmanager",
            stack=stack,
            state=state,
        )


def assert_documented_metrics_present(prometheus: PrometheusAPI) -> None:
    documented = documented_metrics()
    stale = CONDITIONAL_METRICS.keys() - documented.keys()
    assert not stale, f"CONDITIONAL_METRICS names metrics docs/metrics.md no longer lists: {stale}"
    names = prometheus.metric_names()
    missing, wrong_labels = [], []
    for metric, (kind, labels) in sorted(documented.items()):
        if metric in CONDITIONAL_METRICS:
            continue
        for series_name, own_labels in exposed_names(metric, kind).items():
            if series_name not in names:
                missing.append(series_name)
                continue
            allowed = labels | own_labels | {"__name__", "job", "instance"}
            required = allowed - {"__name__"}
            for series in prometheus.series(series_name):
                keys = set(series)
                if keys != allowed:
                    wrong_labels.append(
                        f"{series_name}: missing {sorted(required - keys)}, "
                        f"undocumented {sorted(keys - allowed)} in {series}"
                    )
                    break
    assert not missing, f"documented metrics absent from Prometheus: {missing}"
    assert not wrong_labels, "labels differ from docs/metrics.md:\n" + "\n".join(wrong_labels)

    # And the other way round: the daemon exports nothing the contract does not list, but the
    # `<name>_created` samples prometheus-client adds to the daemon's own counters and
    # histograms (documented under "_created samples").
    known = {
        series for metric, (kind, _) in documented.items() for series in exposed_names(metric, kind)
    }
    known |= {f"{metric.removesuffix('_total')}_created" for metric in documented}
    undocumented = sorted(n for n in names if n.startswith("uptime_probe_") and n not in known)
    assert not undocumented, f"exported but not in docs/metrics.md: {undocumented}"


def assert_every_dashboard_query_evaluates(prometheus: PrometheusAPI) -> None:
    queries = load_dashboard_queries_module()
    failures, evaluated = [], 0
    for path in queries.dashboard_paths():
        for uid, title, expr in queries.iter_dashboard_queries(path):
            # Every check on the check dashboard; the others do not use $check.
            for check in CHECKS if "check" in queries.referenced_variables(expr) else CHECKS[:1]:
                query = queries.fill_template(expr, template_values(check))
                answer = prometheus.query(query)
                evaluated += 1
                if answer.get("status") != "success":
                    failures.append(
                        f"{uid} / {title!r} (check={check}): {answer.get('errorType')}: "
                        f"{answer.get('error')}\n    {query}"
                    )
    assert evaluated > 50, f"only {evaluated} dashboard queries found"
    assert not failures, f"{len(failures)} of {evaluated} dashboard queries fail:\n" + "\n".join(
        failures
    )


def values_by(samples: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in samples}


def core_panel_problems(prometheus: PrometheusAPI) -> list[str]:
    """What is wrong with the panels a person opens first, with the faults in force; [] if none.

    Each panel is looked up by dashboard and title, its queries filled in and evaluated; a
    problem quotes what the panel returned.
    """
    queries = load_dashboard_queries_module()
    problems: list[str] = []

    def evaluate(dashboard: str, title: str, check: str = CHECKS[0]) -> list[list[dict[str, Any]]]:
        return [
            prometheus.vector(queries.fill_template(expr, template_values(check)))
            for expr in panel_queries(dashboard, title)
        ]

    def expect(ok: bool, panel: str, got: object) -> None:
        if not ok:
            problems.append(f"{panel}: {got}")

    # State of every check (0 up, 1 degraded, 2 down): both faulty journeys down. chat_load is
    # only required to be there: on a starved machine its 1 s timeout may trip.
    for result in evaluate("uptime-probe-overview.json", "State by check and location"):
        state = values_by(result, "check")
        expect(state.keys() == set(CHECKS), "state by check: every check", state)
        expect(
            state.get("history_sidebar") == 2 and state.get("task_creation") == 2,
            "state by check: history_sidebar and task_creation down",
            state,
        )

    # Failures by reason: the outage and the wrong answer read as different reasons.
    for result in evaluate("uptime-probe-overview.json", "Failures by reason"):
        by_reason = values_by(result, "reason")
        expect(
            by_reason.get("empty_history", 0) > 0 and by_reason.get("timeout", 0) > 0,
            "failures by reason: empty_history and timeout",
            by_reason,
        )

    # p50/p95/p99 journey latency: a number for every check.
    for result in evaluate(
        "uptime-probe-overview.json", "Journey latency by check (p50, p95, p99)"
    ):
        latency = values_by(result, "check")
        expect(
            latency.keys() == set(CHECKS) and all(math.isfinite(v) for v in latency.values()),
            "journey latency: a finite quantile for every check",
            latency,
        )

    # Burn rate reads the recording rules; a check failing every run burns far above 1x.
    # (Without the recording rule the panel falls back to 0, which this catches.)
    for result in evaluate("uptime-probe-overview.json", "Burn rate now (1h and 6h)"):
        burn = values_by(result, "check")
        expect(
            burn.keys() == set(CHECKS)
            and burn["history_sidebar"] > 1
            and burn["task_creation"] > 1,
            "burn rate: every check, above 1x for the failing ones",
            burn,
        )

    # The check dashboard tells the wrong answer from the outage, and names the step.
    for check, reason, step in (
        ("history_sidebar", "empty_history", "conversations"),
        ("task_creation", "timeout", "create"),
    ):
        for result in evaluate("uptime-probe-check.json", "Last failure (reason and step)", check):
            last = [(s["metric"].get("reason"), s["metric"].get("step")) for s in result]
            expect(last == [(reason, step)], f"last failure of {check}", last)

    # The daemon's own dashboard sees it scraped.
    for result in evaluate("uptime-probe-self.json", "Scraped"):
        expect([float(s["value"][1]) for s in result] == [1.0], "self: scraped", result)
    return problems


def wait_for_core_panels(prometheus: PrometheusAPI, stack: ProcessStack) -> None:
    """Polled, not asserted once: a scrape or evaluation may be a second behind the alerts."""
    last: list[str] = []

    def healthy_panels() -> bool:
        last[:] = core_panel_problems(prometheus)
        return not last

    wait_for(
        healthy_panels,
        timeout=DELIVERY_TIMEOUT,
        what="the core dashboard panels to show the faults",
        stack=stack,
        state=lambda: "\n".join(f"    {problem}" for problem in last),
    )
