"""docs/metrics.md against the real exposition: every metric documented, nothing documented
that does not exist, and every example query valid PromQL (checked by promtool)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from uptime_probe.metrics import CheckMetrics, DaemonMetrics, MetricsExposition
from uptime_probe.probe import Status

from .fixtures import CHECKS, load, outcome, step_result
from .test_step_figures import CHECKS as FIGURE_CHECKS
from .test_step_figures import stream_result

# A check with a stream step, so that the stream kind's families are exposed too.
STREAM_CHECKS = [check for check in FIGURE_CHECKS if check["name"] == "chat_answer"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def exposed_names() -> set[str]:
    """Metric names as written in queries (counters with `_total`), of a daemon whose
    checks have every optional family present."""
    checks = CheckMetrics("eu-west")
    checks.sync_checks(load([*CHECKS, *STREAM_CHECKS]).checks)
    checks.accept(
        outcome(
            "chat_load",
            [step_result("page", Status.DOWN, reason="tls", tls_not_after=1.9e9)],
            state=Status.DOWN,
        )
    )
    checks.accept(outcome("chat_answer", [step_result("create"), stream_result()], state=None))
    daemon = DaemonMetrics(CollectorRegistry(auto_describe=True))
    daemon.notifications.labels(notifier="oncall", result="sent").inc()
    body, _ = MetricsExposition(checks, daemon).render()
    names = set()
    for family in text_string_to_metric_families(body.decode()):
        if family.name.startswith("process_") or family.name.endswith("_created"):
            continue  # documented as groups: "Process metrics", "`_created` samples"
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def documented_names() -> set[str]:
    return set(re.findall(r"^### `(uptime_probe_\w+)`", DOC.read_text(), flags=re.MULTILINE))


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    exposed, documented = exposed_names(), documented_names()
    assert exposed - documented == set(), "exposed but not documented"
    assert documented - exposed == set(), "documented but not exposed"


def test_every_documented_metric_has_an_example_query() -> None:
    sections = re.split(r"^### ", DOC.read_text(), flags=re.MULTILINE)[1:]
    for section in sections:
        name = section.split("`")[1]
        if not name.startswith("uptime_probe_"):
            continue
        assert "```promql" in section, f"{name} has no example query"
        assert name in section.split("```promql", 1)[1], f"{name}'s example does not use it"


def test_example_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "`promtool` is not on PATH (Debian package `prometheus`); this check never skips.",
            pytrace=False,
        )
    queries = re.findall(r"```promql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    expressions = [
        expression.strip()
        for block in queries
        # A block may hold several queries, separated by a blank line, each after comments.
        for expression in re.split(r"\n\s*\n", block)
        if expression.strip()
    ]
    assert len(expressions) >= 25
    rules = {
        "groups": [
            {
                "name": "docs-metrics-examples",
                "rules": [
                    {"record": f"docs:example_{i}", "expr": expression}
                    for i, expression in enumerate(expressions)
                ],
            }
        ]
    }
    path = tmp_path / "examples.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
