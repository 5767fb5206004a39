"""The Prometheus rules, the Prometheus and Alertmanager example configs, and
their contract with the daemon (failure reasons) and the runbooks.

promtool and amtool come from the Debian packages `prometheus` and
`prometheus-alertmanager`. A missing tool fails these tests: alerting that was
never checked must not pass as green.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules" / "uptime-probe.rules.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = PROMETHEUS_DIR / "alertmanager.yml"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE_URL = "https://github.com/uptime-probe/uptime-probe/blob/main/docs/runbooks.md"

# The daemon's closed set of transport/HTTP failure reasons. Everything else a
# check can fail with is a content reason (open: configs name their own) or one
# of the prober's own (`local_resources`, `internal`). UptimeProbeSemanticFailure
# must exclude exactly these and the prober's; if the daemon's set changes, this
# constant and the rule change together.
TRANSPORT_HTTP_REASONS = frozenset(
    {
        "dns",
        "connect_refused",
        "connect_timeout",
        "tls",
        "timeout",
        "connection_reset",
        "too_many_redirects",
        "http_4xx",
        "http_5xx",
        "rate_limited",
        "unexpected_status",
    }
)
PROBER_REASONS = frozenset({"local_resources", "internal"})
BUILT_IN_CONTENT_REASONS = frozenset(
    {
        "invalid_json",
        "body_too_large",
        "schema_mismatch",
        "assertion_failed",
        "extraction_failed",
        "poll_timeout",
    }
)

ERROR_RATIO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
EXPECTED_RECORDING_RULES = frozenset(
    {f"check:uptime_probe_check_errors:ratio_rate{w}" for w in ERROR_RATIO_WINDOWS}
    | {
        "check:uptime_probe_check_slo_objective:max",
        "check:uptime_probe_check_failures:delta1m",
        "check:uptime_probe_check_errors:burn_rate_fast",
        "check:uptime_probe_check_alerts_held:max",
    }
)
EXPECTED_ALERTS = frozenset(
    {
        "UptimeProbeErrorBudgetBurn",
        "UptimeProbeCheckDown",
        "UptimeProbeCheckDownFromOneLocation",
        "UptimeProbeCheckDownMultiLocation",
        "UptimeProbeSemanticFailure",
        "UptimeProbeSemanticFailureMultiLocation",
        "UptimeProbeCheckDegraded",
        "UptimeProbeCertificateExpiringSoon",
        "UptimeProbeNotRunning",
        "UptimeProbeConfigReloadFailed",
        "UptimeProbeScheduleLagHigh",
    }
)
SEVERITIES = frozenset({"page", "ticket", "warning"})


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load_yaml(RULES_FILE)["groups"] for rule in group["rules"]]


ALERT_RULES = [rule for rule in _rules() if "alert" in rule]


def _alert_id(rule: dict[str, Any]) -> str:
    return f"{rule['alert']}-{rule.get('labels', {}).get('severity', 'none')}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH. Install it (Debian packages `prometheus` for "
            "promtool, `prometheus-alertmanager` for amtool); these checks never skip.",
            pytrace=False,
        )
    return path


def _run(*args: str) -> str:
    result = subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{output}"
    return output


def _github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for the headings of a Markdown document."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_fence or match is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


# --- the real tools ----------------------------------------------------------


def test_promtool_check_rules() -> None:
    _run(_tool("promtool"), "check", "rules", str(RULES_FILE.relative_to(REPO)))


def test_promtool_rule_unit_tests_pass() -> None:
    test_files = sorted(RULE_TESTS_DIR.glob("*.test.yml"))
    assert test_files, f"no *.test.yml in {RULE_TESTS_DIR}"
    output = _run(
        _tool("promtool"), "test", "rules", *(str(p.relative_to(REPO)) for p in test_files)
    )
    assert "FAILED" not in output, output


def test_promtool_check_config() -> None:
    # rule_files in prometheus.yml are relative to that file's directory, so
    # the check finds the rules whatever the working directory.
    output = _run(_tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG.relative_to(REPO)))
    assert "uptime-probe.rules.yml" in output, "prometheus.yml does not load the rules file"


def test_amtool_check_config() -> None:
    _run(_tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG.relative_to(REPO)))


# --- the rules file's own contract -------------------------------------------


def test_rules_file_is_plain_yaml() -> None:
    # Tools (the end-to-end test) load, edit `for:` and dump this file: no
    # anchors or aliases that a dump would expand or lose.
    text = RULES_FILE.read_text(encoding="utf-8")
    for event in yaml.parse(text):
        assert not isinstance(event, yaml.AliasEvent), f"alias at {event.start_mark}"
        assert getattr(event, "anchor", None) is None, f"anchor at {event.start_mark}"


def test_recording_rule_names() -> None:
    names = [rule["record"] for rule in _rules() if "record" in rule]
    assert len(names) == len(set(names)), "duplicate recording rule"
    assert set(names) == EXPECTED_RECORDING_RULES
    for name in names:
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), (
            f"{name} does not follow level:metric:operations"
        )


def test_expected_alerts_exist() -> None:
    assert {rule["alert"] for rule in ALERT_RULES} == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", ALERT_RULES, ids=_alert_id)
def test_alert_has_severity_annotations_and_for(rule: dict[str, Any]) -> None:
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{rule['alert']}: missing {key}"
    assert "for" in rule, f"{rule['alert']}: no `for:`"


@pytest.mark.parametrize("rule", ALERT_RULES, ids=_alert_id)
def test_runbook_url_points_at_an_existing_section(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    base, _, anchor = url.partition("#")
    assert base == RUNBOOK_BASE_URL
    assert anchor == rule["alert"].lower(), f"{rule['alert']}: anchor should be its name"
    anchors = _github_anchors(RUNBOOKS.read_text(encoding="utf-8"))
    assert anchor in anchors, f"docs/runbooks.md has no section #{anchor}"


SEMANTIC_ALERTS = ("UptimeProbeSemanticFailure", "UptimeProbeSemanticFailureMultiLocation")


def test_semantic_failure_excludes_exactly_the_transport_reasons() -> None:
    # Both forms (one location, several) classify reasons with the same list.
    rules = [rule for rule in ALERT_RULES if rule["alert"] in SEMANTIC_ALERTS]
    assert {rule["alert"] for rule in rules} == set(SEMANTIC_ALERTS)
    for rule in rules:
        expr = rule["expr"]
        assert "reason=~" not in expr, "select by exclusion: content reasons are open-ended"
        lists = re.findall(r'reason\s*!~\s*"([^"]*)"', expr)
        assert lists, "UptimeProbeSemanticFailure no longer excludes reasons"
        for listed in lists:
            excluded = listed.split("|")
            assert len(excluded) == len(set(excluded)), f"duplicate in {listed}"
            assert set(excluded) == TRANSPORT_HTTP_REASONS | PROBER_REASONS
            assert not set(excluded) & BUILT_IN_CONTENT_REASONS


def test_runbook_reason_table_matches_the_transport_reasons() -> None:
    # The runbook's "transport / HTTP" row is what on-call reads at 3 a.m.
    text = RUNBOOKS.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| transport / HTTP"))
    assert set(re.findall(r"`([a-z0-9_]+)`", row)) == TRANSPORT_HTTP_REASONS


# Alerts about a check's availability wait while the daemon holds its alerting back
# (maintenance, a failing dependency). The certificate and not-running alerts do not: a
# certificate expires whatever the window, and a window never stops probing.
HELD_ALERTS = frozenset(
    {
        "UptimeProbeErrorBudgetBurn",
        "UptimeProbeCheckDown",
        "UptimeProbeCheckDownFromOneLocation",
        "UptimeProbeCheckDownMultiLocation",
        "UptimeProbeSemanticFailure",
        "UptimeProbeSemanticFailureMultiLocation",
        "UptimeProbeCheckDegraded",
    }
)
HELD = "unless on (check, location) check:uptime_probe_check_alerts_held:max"


@pytest.mark.parametrize("rule", ALERT_RULES, ids=_alert_id)
def test_availability_alerts_wait_for_maintenance_and_dependencies(rule: dict[str, Any]) -> None:
    expr = " ".join(rule["expr"].split())
    held = rule["alert"] in HELD_ALERTS and rule["labels"]["severity"] != "ticket"
    assert (HELD in expr) is held, rule["alert"]
    # Every read of a down state is held, not only the first.
    if held:
        assert expr.count('state{state="down"}) == 1') == expr.count(
            f'state{{state="down"}}) == 1 {HELD}'
        )


def test_error_ratios_leave_maintenance_runs_out() -> None:
    ratios = [
        r
        for r in _rules()
        if r.get("record", "").startswith("check:uptime_probe_check_errors:ratio_rate")
    ]
    assert len(ratios) == len(ERROR_RATIO_WINDOWS)
    for rule in ratios:
        assert "uptime_probe_check_maintenance_failures_total" in rule["expr"], rule["record"]
        assert "uptime_probe_check_maintenance_runs_total" in rule["expr"], rule["record"]


def test_failure_count_offset_matches_its_group_interval() -> None:
    # check:uptime_probe_check_failures:delta1m tiles time only if the offset
    # it compares against equals the interval the group is evaluated at.
    for group in _load_yaml(RULES_FILE)["groups"]:
        for rule in group["rules"]:
            if rule.get("record") != "check:uptime_probe_check_failures:delta1m":
                continue
            offsets = set(re.findall(r"offset\s+(\w+)", rule["expr"]))
            assert offsets == {group.get("interval")}, (group.get("interval"), offsets)
            return
    pytest.fail("check:uptime_probe_check_failures:delta1m not found")


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS_DIR.glob("*.test.yml"):
        for test_group in _load_yaml(path)["tests"]:
            for case in test_group.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert not EXPECTED_ALERTS - firing, f"never seen firing: {EXPECTED_ALERTS - firing}"
    assert not EXPECTED_ALERTS - quiet, f"never seen quiet: {EXPECTED_ALERTS - quiet}"


# --- Alertmanager: inhibitions and routes against the alerts' labels ---------


def _alert_identities() -> dict[str, set[frozenset[str]]]:
    """alertname -> the label sets (severity aside) it fires with in the unit tests."""
    identities: dict[str, set[frozenset[str]]] = {}
    for path in RULE_TESTS_DIR.glob("*.test.yml"):
        for test_group in _load_yaml(path)["tests"]:
            for case in test_group.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    labels = frozenset(alert["exp_labels"]) - {"severity"}
                    identities.setdefault(case["alertname"], set()).add(labels)
    return identities


def _alerts_matched_by(matchers: list[str]) -> set[str]:
    """Our alerts whose name satisfies the alertname matchers (others ignored)."""
    names = set(EXPECTED_ALERTS)
    for matcher in matchers:
        match = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*', matcher)
        assert match, f"cannot parse matcher {matcher!r}"
        label, op, value = match.groups()
        if label != "alertname":
            continue
        if op == "=":
            names = {n for n in names if n == value}
        elif op == "!=":
            names = {n for n in names if n != value}
        else:
            hit = {n for n in names if re.fullmatch(value, n)}
            names = hit if op == "=~" else names - hit
    return names


INHIBIT_RULES = _load_yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]


def _inhibit_id(rule: dict[str, Any]) -> str:
    sides = ("source_matchers", "target_matchers")
    return " -> ".join("|".join(sorted(_alerts_matched_by(rule[side]))) for side in sides)


@pytest.mark.parametrize("rule", INHIBIT_RULES, ids=_inhibit_id)
def test_inhibition_equal_labels_are_carried_by_both_sides(rule: dict[str, Any]) -> None:
    # Alertmanager compares `equal` labels with a missing label read as "". A
    # label one side lacks never matches (the inhibition is dead); `check`
    # missing on both sides would inhibit across checks. The *MultiLocation
    # alerts carry `check` only, so they need rules of their own.
    identities = _alert_identities()
    equal = set(rule["equal"])
    assert "check" in equal, "an inhibition across checks hides real pages"
    for side in ("source_matchers", "target_matchers"):
        alerts = _alerts_matched_by(rule[side])
        assert alerts, f"{side} {rule[side]} match none of our alerts"
        for alert in alerts:
            assert identities.get(alert), f"{alert} is never seen firing in the unit tests"
            for labels in identities[alert]:
                assert equal <= labels, (
                    f"{alert} fires with {sorted(labels)}, lacking {equal - labels}"
                )


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        # One bad vantage point: a warning, routed nowhere.
        (
            'alertname="UptimeProbeCheckDownFromOneLocation" severity="warning" check="c" location="l"',
            "null",
        ),
        ('alertname="UptimeProbeCheckDownMultiLocation" severity="page" check="c"', "page"),
        ('alertname="UptimeProbeSemanticFailureMultiLocation" severity="page" check="c"', "page"),
        ('alertname="UptimeProbeCheckDown" severity="page" check="c" location="l"', "page"),
        (
            'alertname="UptimeProbeErrorBudgetBurn" severity="ticket" check="c" location="l"',
            "ticket",
        ),
    ],
)
def test_alertmanager_routes(labels: str, receiver: str) -> None:
    args = [
        _tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG.relative_to(REPO)}",
        *labels.split(" "),
    ]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver], result.stdout
