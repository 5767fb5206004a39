"""Static checks of the Grafana dashboards and provisioning files.

Real PromQL evaluation happens in the end-to-end test; here every query is checked against the
metric contract (docs/metrics.md): metric names, label names, closed label values, template
variables, and bracket balance, so a renamed metric or a typo in a label fails in milliseconds.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from dashboard_queries import (
    BUILTIN_DEFAULTS,
    DASHBOARD_DIR,
    REPO_ROOT,
    dashboard_paths,
    fill_template,
    iter_dashboard_queries,
    iter_panels,
    load_dashboard,
    referenced_variables,
    template_variables,
)

GRAFANA_DIR = REPO_ROOT / "grafana"
PROVISIONING_DIR = GRAFANA_DIR / "provisioning"
DOCS = REPO_ROOT / "docs" / "dashboards.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DASHBOARD_MOUNT = "/var/lib/grafana/dashboards/uptime-probe"

EXPECTED_FILES = {
    "uptime-probe-overview.json": "uptime-probe-overview",
    "uptime-probe-check.json": "uptime-probe-check",
    "uptime-probe-self.json": "uptime-probe-self",
}

# ---------------------------------------------------------------------------------------------
# The metric contract: metric -> labels beyond job/instance.

CHECK = ("check", "location")
STEP = ("check", "location", "step")
SCRAPE = ("job", "instance")
CONTRACT: dict[str, tuple[str, ...]] = {
    "uptime_probe_check_success": CHECK,
    "uptime_probe_check_state": (*CHECK, "state"),
    "uptime_probe_check_runs_total": CHECK,
    "uptime_probe_check_failures_total": (*CHECK, "reason"),
    "uptime_probe_check_degraded_total": CHECK,
    "uptime_probe_check_duration_seconds": CHECK,
    "uptime_probe_check_last_run_timestamp_seconds": CHECK,
    "uptime_probe_check_last_success_timestamp_seconds": CHECK,
    "uptime_probe_check_slo_objective": CHECK,
    "uptime_probe_check_interval_seconds": CHECK,
    "uptime_probe_check_last_failure_info": (*CHECK, "reason", "step"),
    "uptime_probe_step_duration_seconds": STEP,
    "uptime_probe_step_phase_seconds": (*STEP, "phase"),
    "uptime_probe_step_http_status_code": STEP,
    "uptime_probe_step_tls_cert_expiry_timestamp_seconds": STEP,
    # A stream step's figures (docs/metrics.md, "Stream steps").
    "uptime_probe_step_stream_first_event_seconds": STEP,
    "uptime_probe_step_stream_first_token_seconds": STEP,
    "uptime_probe_step_stream_longest_gap_seconds": STEP,
    "uptime_probe_step_stream_events": STEP,
    "uptime_probe_step_stream_answer_chars": STEP,
    "uptime_probe_schedule_lag_seconds": (),
    "uptime_probe_runs_skipped_total": CHECK,
    "uptime_probe_runs_in_flight": (),
    "uptime_probe_runs_waiting": (),
    "uptime_probe_config_last_reload_successful": (),
    "uptime_probe_config_last_reload_success_timestamp_seconds": (),
    "uptime_probe_build_info": ("version", "shard"),
    "uptime_probe_store_errors_total": (),
    "uptime_probe_notifications_total": ("notifier", "result"),
    "process_resident_memory_bytes": (),
    "process_cpu_seconds_total": (),
    "process_open_fds": (),
    "up": (),
}
HISTOGRAMS = {
    "uptime_probe_check_duration_seconds",
    "uptime_probe_step_duration_seconds",
    "uptime_probe_schedule_lag_seconds",
    "uptime_probe_step_stream_first_event_seconds",
    "uptime_probe_step_stream_first_token_seconds",
    "uptime_probe_step_stream_longest_gap_seconds",
}
RECORDING_RULE_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
RECORDING_RULES = {
    f"check:uptime_probe_check_errors:ratio_rate{window}": CHECK
    for window in RECORDING_RULE_WINDOWS
}
ALERT_NAMES = {
    "UptimeProbeErrorBudgetBurn",
    "UptimeProbeCheckDown",
    "UptimeProbeSemanticFailure",
    "UptimeProbeCheckDegraded",
    "UptimeProbeCertificateExpiringSoon",
    "UptimeProbeNotRunning",
    "UptimeProbeConfigReloadFailed",
    "UptimeProbeScheduleLagHigh",
    "UptimeProbeAnswersStalling",
}
# Labels whose values come from a closed set: an equality matcher must use one of them.
CLOSED_VALUES = {
    "state": {"up", "degraded", "down"},
    "phase": {"resolve", "connect", "tls", "processing", "transfer"},
    "alertstate": {"firing", "pending"},
}


def series_labels() -> dict[str, set[str]]:
    """Every series name a query may select, with the labels it carries."""
    names: dict[str, set[str]] = {}
    for metric, labels in CONTRACT.items():
        full = {*labels, *SCRAPE}
        if metric in HISTOGRAMS:
            names[f"{metric}_bucket"] = {*full, "le"}
            names[f"{metric}_count"] = full
            names[f"{metric}_sum"] = full
        else:
            names[metric] = full
    for rule, labels in RECORDING_RULES.items():
        names[rule] = set(labels)
    return names


SERIES = series_labels()

# ---------------------------------------------------------------------------------------------
# A small PromQL scanner: enough to find metric names, matchers and grouping labels.

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
SELECTOR = re.compile(r"(?<![\w:])([A-Za-z_:][\w:]*)?\s*\{([^{}]*)\}")
MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\"|'[^']*')")
GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", re.IGNORECASE
)
RANGE = re.compile(r"\[[^\[\]]*\]")
IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2", "start", "end",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Names of every series selected by ``expr`` (functions and keywords excluded)."""
    text = STRING.sub('""', expr)
    names = {match.group(1) for match in SELECTOR.finditer(text) if match.group(1)}
    text = SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    text = GROUPING.sub(" ", RANGE.sub(" ", text))
    for match in IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if not call and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def label_matchers(expr: str) -> Iterator[tuple[str, str, str, str]]:
    """(metric or "", label, operator, value) for every matcher in ``expr``."""
    for selector in SELECTOR.finditer(expr):
        for matcher in MATCHER.finditer(selector.group(2)):
            yield (
                selector.group(1) or "",
                matcher.group(1),
                matcher.group(2),
                matcher.group(3)[1:-1],
            )


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_left/group_right clauses."""
    text = STRING.sub('""', expr)
    return {
        label.strip()
        for match in GROUPING.finditer(text)
        for label in match.group(2).split(",")
        if label.strip()
    }


def unbalanced(expr: str) -> str | None:
    """Why ``expr``'s brackets are unbalanced or a string is unterminated, or None."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    text = STRING.sub('""', expr)
    if any(quote in text.replace('""', "") for quote in "\"'`"):
        return "unterminated string"
    for char in text:
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return f"unexpected {char!r}"
    return f"unclosed {stack[-1]!r}" if stack else None


@functools.cache
def load_generator() -> ModuleType:
    """grafana/generate.py is a script, not a package module: load it by path."""
    path = GRAFANA_DIR / "generate.py"
    spec = importlib.util.spec_from_file_location("uptime_probe_grafana_generate", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Test cases, collected once.

PATHS = dashboard_paths()
DASHBOARDS = {path.name: load_dashboard(path) for path in PATHS}
QUERIES = [query for path in PATHS for query in iter_dashboard_queries(path)]
QUERY_IDS = [f"{uid}:{title}:{index}" for index, (uid, title, _) in enumerate(QUERIES)]
PANELS = [
    (dashboard["uid"], panel)
    for dashboard in DASHBOARDS.values()
    for panel in iter_panels(dashboard["panels"])
]
PANEL_IDS = [f"{uid}:{panel['id']}:{panel.get('title', '')}" for uid, panel in PANELS]
VISUAL_PANELS = [(uid, panel) for uid, panel in PANELS if panel["type"] != "row"]
VISUAL_IDS = [f"{uid}:{panel['id']}:{panel['title']}" for uid, panel in VISUAL_PANELS]
VARIABLES = {
    dashboard["uid"]: template_variables(DASHBOARD_DIR / name)
    for name, dashboard in DASHBOARDS.items()
}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (json path, value) pair under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield f"{path}[{index}]", value
            yield from walk(value, f"{path}[{index}]")


# ---------------------------------------------------------------------------------------------
# Files and generator.


def test_expected_dashboards_exist() -> None:
    assert {path.name for path in PATHS} == set(EXPECTED_FILES)


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_json_is_valid_and_matches_generator(name: str) -> None:
    text = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
    committed = json.loads(text)
    generator = load_generator()
    generated = generator.build_dashboards()[name]
    assert committed == generated, f"{name} is stale: run python grafana/generate.py"
    assert text == generator.render(generated)


def test_generator_check_mode_passes_on_committed_files() -> None:
    assert load_generator().main(["--check"]) == 0


def test_generator_check_mode_fails_on_stale_files(tmp_path: Path) -> None:
    generator = load_generator()
    assert generator.main(["--out", str(tmp_path)]) == 0
    stale = tmp_path / "uptime-probe-self.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("Daemon", "Demon"), "utf-8")
    assert generator.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize(("name", "uid"), sorted(EXPECTED_FILES.items()))
def test_dashboard_metadata(name: str, uid: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["uid"] == uid
    assert dashboard["tags"] == ["uptime-probe"]
    assert 39 <= dashboard["schemaVersion"] < 42
    assert dashboard["id"] is None, "a fixed id breaks import into another Grafana"
    assert dashboard["title"].startswith("uptime-probe / ")
    assert dashboard["description"]


# ---------------------------------------------------------------------------------------------
# Data source: always the ${datasource} variable.


@pytest.mark.parametrize("uid", sorted(VARIABLES))
def test_datasource_variable_is_defined(uid: str) -> None:
    variable = VARIABLES[uid]["datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    first = next(iter(VARIABLES[uid]))
    assert first == "datasource", "other variables' queries depend on it: it must come first"


@pytest.mark.parametrize(("uid", "panel"), VISUAL_PANELS, ids=VISUAL_IDS)
def test_panel_and_targets_use_datasource_variable(uid: str, panel: dict[str, Any]) -> None:
    assert panel["datasource"] == DATASOURCE
    assert panel["targets"], "a panel without queries shows nothing"
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_no_hard_coded_datasource_uid_anywhere(name: str) -> None:
    dashboard = DASHBOARDS[name]
    for path, value in walk(dashboard):
        if path.endswith(".datasource") and isinstance(value, dict):
            assert value == DATASOURCE, path
        if path.endswith(".datasource") and isinstance(value, str):
            pytest.fail(f"{path}: data source by name {value!r}")
        if path.endswith(".uid") and path != ".uid":
            assert value == "${datasource}", path


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_query_variables_use_datasource_variable(name: str) -> None:
    for variable in DASHBOARDS[name]["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


# ---------------------------------------------------------------------------------------------
# Queries against the metric contract.


@pytest.mark.parametrize(("uid", "title", "expr"), QUERIES, ids=QUERY_IDS)
def test_expr_brackets_balanced(uid: str, title: str, expr: str) -> None:
    assert unbalanced(expr) is None, f"{unbalanced(expr)} in {expr!r}"


@pytest.mark.parametrize(("uid", "title", "expr"), QUERIES, ids=QUERY_IDS)
def test_expr_metrics_exist_in_contract(uid: str, title: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"no metric found in {expr!r}"
    unknown = {name for name in names if name not in SERIES and name != "ALERTS"}
    assert not unknown, f"not in the metric contract: {sorted(unknown)}"


@pytest.mark.parametrize(("uid", "title", "expr"), QUERIES, ids=QUERY_IDS)
def test_expr_label_matchers_exist_and_use_closed_values(uid: str, title: str, expr: str) -> None:
    for metric, label, operator, value in label_matchers(expr):
        if metric == "ALERTS":
            continue
        assert metric in SERIES, f"matcher {label} without a metric name in {expr!r}"
        assert label in SERIES[metric], f"{metric} has no label {label!r}"
        if label in CLOSED_VALUES and operator in ("=", "!="):
            assert value in CLOSED_VALUES[label], f"{label}={value!r} is not a known value"


@pytest.mark.parametrize(("uid", "title", "expr"), QUERIES, ids=QUERY_IDS)
def test_expr_grouping_labels_exist(uid: str, title: str, expr: str) -> None:
    available = {"le"}.union(*(SERIES.get(name, set()) for name in metric_names(expr)))
    if "ALERTS" in metric_names(expr):
        return
    missing = grouping_labels(expr) - available
    assert not missing, f"grouping by labels no selected series has: {sorted(missing)}"


@pytest.mark.parametrize(("uid", "title", "expr"), QUERIES, ids=QUERY_IDS)
def test_expr_alert_names_exist(uid: str, title: str, expr: str) -> None:
    for metric, label, operator, value in label_matchers(expr):
        if metric == "ALERTS" and label == "alertname":
            pattern = re.compile(value if operator == "=~" else re.escape(value))
            assert any(pattern.fullmatch(name) for name in ALERT_NAMES), value


@pytest.mark.parametrize(("uid", "title", "expr"), QUERIES, ids=QUERY_IDS)
def test_expr_variables_are_defined(uid: str, title: str, expr: str) -> None:
    used = referenced_variables(expr) - set(BUILTIN_DEFAULTS)
    assert used <= set(VARIABLES[uid]), f"undefined: {sorted(used - set(VARIABLES[uid]))}"


@pytest.mark.parametrize(("uid", "title", "expr"), QUERIES, ids=QUERY_IDS)
def test_expr_fills_to_plain_promql(uid: str, title: str, expr: str) -> None:
    values = {name: "x" for name in VARIABLES[uid]}
    filled = fill_template(expr, values)
    assert "$" not in filled
    assert "[[" not in filled


@pytest.mark.parametrize("uid", sorted(VARIABLES))
def test_variable_queries_only_use_earlier_variables(uid: str) -> None:
    seen: set[str] = set()
    for name, variable in VARIABLES[uid].items():
        if variable["type"] == "query":
            query = variable["query"]
            assert isinstance(query, str), name
            assert referenced_variables(query) <= seen, f"{name} depends on a later variable"
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert match, f"{name}: expected label_values(selector, label)"
            [metric] = metric_names(match.group(1))
            assert match.group(2) in SERIES[metric], f"{metric} has no label {match.group(2)}"
        seen.add(name)


@pytest.mark.parametrize("metric", sorted(CONTRACT))
def test_every_contract_metric_is_shown(metric: str) -> None:
    names = set().union(*(metric_names(expr) for _, _, expr in QUERIES))
    shown = {metric} if metric not in HISTOGRAMS else {f"{metric}_bucket"}
    assert shown & names, f"{metric} appears on no dashboard"


@pytest.mark.parametrize("window", ["1h", "6h", "30d"])
def test_slo_windows_use_recording_rules(window: str) -> None:
    rule = f"check:uptime_probe_check_errors:ratio_rate{window}"
    assert any(rule in expr for _, _, expr in QUERIES)


# ---------------------------------------------------------------------------------------------
# Panels.


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_panel_ids_unique(name: str) -> None:
    ids = [panel["id"] for panel in iter_panels(DASHBOARDS[name]["panels"])]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_panels_fit_the_grid_without_overlap(name: str) -> None:
    occupied: dict[tuple[int, int], int] = {}
    rows = DASHBOARDS[name]["panels"]
    for panel in iter_panels(rows):
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert 0 < pos["w"] <= 24 - pos["x"], panel["title"]
    for panel in rows:  # top level: what is on screen with collapsed rows folded
        pos = panel["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = occupied.setdefault((x, y), panel["id"])
                assert other == panel["id"], f"panels {other} and {panel['id']} overlap"


@pytest.mark.parametrize(("uid", "panel"), VISUAL_PANELS, ids=VISUAL_IDS)
def test_panel_has_description_and_unit(uid: str, panel: dict[str, Any]) -> None:
    assert len(panel.get("description", "")) >= 30, "describe the panel for a non-expert"
    assert panel["fieldConfig"]["defaults"].get("unit"), "set a unit"


@pytest.mark.parametrize(("uid", "panel"), VISUAL_PANELS, ids=VISUAL_IDS)
def test_targets_have_unique_ref_ids(uid: str, panel: dict[str, Any]) -> None:
    ref_ids = [target["refId"] for target in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))


@pytest.mark.parametrize(("uid", "panel"), VISUAL_PANELS, ids=VISUAL_IDS)
def test_repeat_and_title_variables_are_defined(uid: str, panel: dict[str, Any]) -> None:
    if "repeat" in panel:
        assert panel["repeat"] in VARIABLES[uid]
        assert VARIABLES[uid][panel["repeat"]]["multi"], "repeat needs a multi-value variable"
    assert referenced_variables(panel["title"]) <= set(VARIABLES[uid])


@pytest.mark.parametrize(("uid", "panel"), VISUAL_PANELS, ids=VISUAL_IDS)
def test_links_point_at_existing_dashboards(uid: str, panel: dict[str, Any]) -> None:
    known = set(VARIABLES)
    for path, value in walk(panel):
        if path.endswith(".url"):
            match = re.match(r"/d/([\w-]+)/", value)
            assert match, value
            assert match.group(1) in known, value


@pytest.mark.parametrize(
    ("uid", "title_part"),
    [
        ("uptime-probe-overview", "State by check and location"),
        ("uptime-probe-overview", "Failures by reason"),
        ("uptime-probe-overview", "Error budget left"),
        ("uptime-probe-overview", "Burn rate now"),
        ("uptime-probe-overview", "Firing alerts"),
        ("uptime-probe-overview", "p50, p95, p99"),
        ("uptime-probe-check", "Phases of step"),
        ("uptime-probe-check", "HTTP status code"),
        ("uptime-probe-check", "Last failure"),
        ("uptime-probe-check", "Certificate"),
        ("uptime-probe-overview", "Time to first token by check"),
        ("uptime-probe-overview", "Longest silence mid-answer"),
        ("uptime-probe-overview", "stalled or ended empty"),
        ("uptime-probe-check", "First event and first token"),
        ("uptime-probe-check", "Longest silence between events"),
        ("uptime-probe-check", "Events and answer length"),
        ("uptime-probe-self", "Schedule lag"),
        ("uptime-probe-self", "Notifications by result"),
    ],
)
def test_key_panels_present(uid: str, title_part: str) -> None:
    titles = [panel.get("title", "") for panel_uid, panel in PANELS if panel_uid == uid]
    assert any(title_part in title for title in titles), titles


def test_failures_by_reason_is_stacked_by_reason() -> None:
    panel = next(
        p
        for uid, p in VISUAL_PANELS
        if uid == "uptime-probe-overview" and p["title"] == "Failures by reason"
    )
    assert panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert panel["targets"][0]["expr"] == (
        'sum by (reason) (increase(uptime_probe_check_failures_total{location=~"$location"}'
        "[$__rate_interval]))"
    )


@pytest.mark.parametrize(
    ("uid", "name", "multi", "query"),
    [
        ("uptime-probe-overview", "location", True,
         "label_values(uptime_probe_check_success, location)"),
        ("uptime-probe-check", "location", True,
         "label_values(uptime_probe_check_success, location)"),
        ("uptime-probe-check", "check", False,
         'label_values(uptime_probe_check_success{location=~"$location"}, check)'),
    ],
)  # fmt: skip
def test_template_variables(uid: str, name: str, multi: bool, query: str) -> None:
    variable = VARIABLES[uid][name]
    assert variable["query"] == query
    assert variable["multi"] is multi
    assert variable["includeAll"] is multi
    if multi:
        assert variable["allValue"] == ".*"


# ---------------------------------------------------------------------------------------------
# Provisioning.


def test_datasource_provisioning() -> None:
    config = yaml.safe_load((PROVISIONING_DIR / "datasources" / "prometheus.yml").read_text())
    assert config["apiVersion"] == 1
    [datasource] = config["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["access"] == "proxy"
    assert datasource["url"] == "${PROMETHEUS_URL}"


def test_dashboard_provisioning_points_at_folder_and_mount() -> None:
    config = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "uptime-probe.yml").read_text())
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "uptime-probe"
    assert provider["options"]["path"] == DASHBOARD_MOUNT


@pytest.mark.parametrize(
    "needle",
    [
        DASHBOARD_MOUNT,
        "PROMETHEUS_URL",
        "http://prometheus:9090",
        "/etc/grafana/provisioning",
        *EXPECTED_FILES.values(),
    ],
)
def test_docs_describe_provisioning(needle: str) -> None:
    assert needle in DOCS.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The helpers themselves: a checker that accepts everything proves nothing.


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", {"up"}),
        ('sum by (le) (rate(a_bucket{x="1"}[5m]))', {"a_bucket"}),
        ("histogram_quantile(0.95, sum by (check, le) (rate(b_bucket[$__rate_interval])))",
         {"b_bucket"}),
        ('1 - max by (check) (c:d:ratio_rate30d{location=~"$location"}) / on (check) e',
         {"c:d:ratio_rate30d", "e"}),
        ('count(ALERTS{alertname=~"x"}) or vector(0)', {"ALERTS"}),
        ("f offset 5m and bool g", {"f", "g"}),
        ("(time() - h) / 86400 * 1e3", {"h"}),
        ('{__name__="i"}', set()),
    ],
)  # fmt: skip
def test_metric_names_parser(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum(rate(a[5m]))", None),
        ('a{b="(}"}', None),
        ("sum(rate(a[5m])", "unclosed '('"),
        ('a{b="c"', "unclosed '{'"),
        ("a[5m)", "unexpected ')'"),
        ('a{b="c}', "unterminated string"),
    ],
)
def test_unbalanced_detector(expr: str, problem: str | None) -> None:
    assert unbalanced(expr) == problem


@pytest.mark.parametrize(
    ("expr", "values", "expected"),
    [
        ('a{l=~"$location"}', {"location": ".*"}, 'a{l=~".*"}'),
        ('a{l=~"${location}"}', {"location": "x|y"}, 'a{l=~"x|y"}'),
        ('a{l=~"${location:regex}"}', {"location": "x"}, 'a{l=~"x"}'),
        ('a{l=~"[[location]]"}', {"location": "x"}, 'a{l=~"x"}'),
        ('a{c="$check", s="$check_step"}', {"check": "c", "check_step": "s"},
         'a{c="c", s="s"}'),
        ("rate(a[$__rate_interval])", {}, "rate(a[1m])"),
        ("increase(a[$__range]) / $__range_s", {}, "increase(a[1h]) / 3600"),
        ("rate(a[$__interval])", {"__interval": "30s"}, "rate(a[30s])"),
        ("a", {}, "a"),
    ],
)  # fmt: skip
def test_fill_template(expr: str, values: dict[str, str], expected: str) -> None:
    assert fill_template(expr, values) == expected


def test_fill_template_refuses_unknown_variables() -> None:
    with pytest.raises(KeyError, match=r"\$location"):
        fill_template('a{l=~"$location"}', {})


def test_iter_dashboard_queries_walks_nested_rows_and_annotations(tmp_path: Path) -> None:
    dashboard = {
        "uid": "u",
        "panels": [
            {"type": "timeseries", "title": "top", "targets": [{"expr": "a"}, {"refId": "B"}]},
            {"type": "row", "title": "r", "collapsed": True, "panels": [
                {"type": "stat", "title": "nested", "targets": [{"expr": "b"}]},
            ]},
        ],
        "annotations": {"list": [{"name": "alerts", "expr": "ALERTS"}, {"name": "builtin"}]},
    }  # fmt: skip
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard), encoding="utf-8")
    assert list(iter_dashboard_queries(path)) == [
        ("u", "top", "a"),
        ("u", "nested", "b"),
        ("u", "annotation: alerts", "ALERTS"),
    ]
    assert list(iter_dashboard_queries(path, include_annotations=False)) == [
        ("u", "top", "a"),
        ("u", "nested", "b"),
    ]


def test_queries_cover_nested_row_panels() -> None:
    nested = {
        panel["title"]
        for dashboard in DASHBOARDS.values()
        for row in dashboard["panels"]
        for panel in row.get("panels", [])
    }
    assert nested, "the overview keeps its per-location panels in a collapsed row"
    assert nested <= {title for _, title, _ in QUERIES}
