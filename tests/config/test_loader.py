"""Valid configs: defaults laid over checks, environment expansion, the repo's own files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from uptime_probe.cli import main
from uptime_probe.config import ConfigError, load_config, parse_config
from uptime_probe.config.steps import DEFAULT_MAX_BODY

REPO = Path(__file__).resolve().parents[2]
PROBES_YAML = REPO / "probes.yaml"

STEP = {"name": "page", "request": {"url": "http://127.0.0.1:8765/"}}


def load(document: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return parse_config(yaml.safe_dump(document), env=env or {})


# --- defaults ------------------------------------------------------------------------------


def test_defaults_are_laid_over_checks_that_do_not_set_their_own() -> None:
    config = load(
        {
            "defaults": {
                "interval": "1m",
                "timeout": "20s",
                "headers": {"User-Agent": "probe", "X-Team": "chat"},
                "slo": 0.99,
                "failure_threshold": 3,
                "success_threshold": 2,
                "notifiers": ["oncall"],
            },
            "notifiers": {
                "oncall": {"kind": "webhook", "url": "http://127.0.0.1:9000/"},
                "chat": {"kind": "slack", "url": "http://127.0.0.1:9001/"},
            },
            "checks": [
                {"name": "inherits", "steps": [STEP]},
                {
                    "name": "overrides",
                    "interval": "2m",
                    "timeout": "5s",
                    "headers": {"X-Team": "web"},
                    "slo": 0.9,
                    "failure_threshold": 1,
                    "success_threshold": 5,
                    "notifiers": ["chat"],
                    "steps": [STEP],
                },
                {"name": "silenced", "notifiers": [], "steps": [STEP]},
            ],
        }
    )
    inherits, overrides, silenced = config.checks
    assert (inherits.interval_seconds, inherits.timeout_seconds) == (60.0, 20.0)
    assert {k: str(v) for k, v in inherits.headers.items()} == {
        "User-Agent": "probe",
        "X-Team": "chat",
    }
    assert (inherits.slo_objective, inherits.failure_threshold_runs) == (0.99, 3)
    assert (inherits.success_threshold_runs, inherits.notifiers) == (2, ["oncall"])

    assert (overrides.interval_seconds, overrides.timeout_seconds) == (120.0, 5.0)
    assert {k: str(v) for k, v in overrides.headers.items()} == {
        "User-Agent": "probe",
        "X-Team": "web",
    }
    assert (overrides.slo_objective, overrides.failure_threshold_runs) == (0.9, 1)
    assert (overrides.success_threshold_runs, overrides.notifiers) == (5, ["chat"])
    assert silenced.notifiers == []


def test_built_in_defaults() -> None:
    config = load({"checks": [{"name": "bare", "steps": [STEP]}]})
    (check,) = config.checks
    (step,) = check.steps
    assert (config.location, config.max_concurrency) == ("local", 512)
    assert (check.interval_seconds, check.timeout_seconds) == (30.0, 10.0)
    assert (check.slo_objective, check.failure_threshold_runs, check.success_threshold_runs) == (
        0.999,
        2,
        1,
    )
    assert step.request.method == "GET"
    assert str(step.expect.status) == "2xx"
    assert 204 in step.expect.status
    assert 301 not in step.expect.status
    assert (step.follow_redirects, step.max_body, step.tls.verify) == (True, DEFAULT_MAX_BODY, True)
    assert step.poll is None
    assert config.server.listen == "0.0.0.0:9713"


def test_method_is_case_insensitive() -> None:
    step = {**STEP, "request": {"method": "post", "url": "http://x/"}}
    config = load({"checks": [{"name": "c", "steps": [step]}]})
    assert config.checks[0].steps[0].request.method == "POST"


# --- environment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expanded"),
    [
        ("${X}", {"X": "from-env"}, "from-env"),
        ("${X:-fallback}", {}, "fallback"),
        ("${X:-fallback}", {"X": ""}, "fallback"),
        ("${X:-fallback}", {"X": "set"}, "set"),
        ("${X}", {"X": ""}, ""),
        ("${X:-}", {}, ""),
        ("${URL:-http://127.0.0.1:8765}/path", {}, "http://127.0.0.1:8765/path"),
        ("$$", {}, "$"),
        ("price: $$5", {}, "price: $5"),
        ("$${X}", {"X": "no"}, "${X}"),
        ("$$$${X}", {}, "$${X}"),
        ("$X and $", {"X": "no"}, "$X and $"),
        ("${X}${Y}", {"X": "a", "Y": "b"}, "ab"),
        ("${X}", {"X": "a: b\n- c {{ y }}"}, "a: b\n- c {{ y }}"),
    ],
)
def test_environment_expansion(value: str, env: dict[str, str], expanded: str) -> None:
    config = load({"variables": {"v": value}, "checks": [{"name": "c", "steps": [STEP]}]}, env)
    assert config.variables["v"] == expanded


def test_environment_is_expanded_in_nested_values_not_keys() -> None:
    step = {
        "name": "page",
        "request": {
            "method": "POST",
            "url": "${BASE}/tasks",
            "json": {"${KEY}": ["${VALUE}", {"deep": "${VALUE}"}]},
        },
    }
    config = load(
        {"checks": [{"name": "c", "steps": [step]}]},
        {"BASE": "http://127.0.0.1:1", "KEY": "k", "VALUE": "v"},
    )
    request = config.checks[0].steps[0].request
    assert str(request.url) == "http://127.0.0.1:1/tasks"
    assert request.json_body == {"${KEY}": ["v", {"deep": "v"}]}


def test_every_unset_variable_is_reported() -> None:
    text = (
        "variables:\n"
        "  a: ${UNSET_A}\n"
        "  b: ${UNSET_B:-ok}\n"
        "secrets:\n"
        "  c: ${UNSET_C}\n"
        "checks: [{name: c, steps: [{name: s, request: {url: 'http://x/'}}]}]\n"
    )
    with pytest.raises(ConfigError) as raised:
        parse_config(text, env={})
    assert str(raised.value).splitlines() == [
        "probes.yaml:2 variables.a: environment variable UNSET_A is not set",
        "probes.yaml:5 secrets.c: environment variable UNSET_C is not set",
    ]


def test_process_environment_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPTIME_PROBE_TEST_BASE", "http://127.0.0.1:1")
    text = yaml.safe_dump(
        {
            "variables": {"b": "${UPTIME_PROBE_TEST_BASE}"},
            "checks": [{"name": "c", "steps": [STEP]}],
        }
    )
    assert parse_config(text).variables["b"] == "http://127.0.0.1:1"


# --- the repository's own files --------------------------------------------------------------


def test_repo_probes_yaml_loads_with_its_defaults() -> None:
    config = load_config(PROBES_YAML, env={})
    assert [check.name for check in config.checks] == [
        "chat_load",
        "history_sidebar",
        "task_creation",
        "chat_answer",
        "sidebar_renders",
    ]
    assert config.variables == {"base_url": "http://127.0.0.1:8765"}
    assert config.secrets == {"token": "demo-token"}
    history = config.check("history_sidebar")
    assert history.steps[0].reasons() == {"empty_history"}
    assert config.check("task_creation").reasons() == {"task_stuck"}
    assert config.check("sidebar_renders").reasons() == {"empty_history"}
    assert config.browser.when_missing == "skip"  # the demo runs where Chromium is absent
    assert str(history.headers["User-Agent"]) == "uptime-probe"
    (answer,) = config.check("chat_answer").steps
    assert answer.kind == "stream"


def test_repo_probes_yaml_takes_the_environment() -> None:
    env = {"CHAT_BASE_URL": "https://chat.example.test", "CHAT_API_TOKEN": "t0k"}
    config = load_config(PROBES_YAML, env=env)
    assert config.variables["base_url"] == "https://chat.example.test"
    assert config.secrets["token"] == "t0k"


@pytest.fixture(scope="module")
def printed_schema() -> dict[str, Any]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["schema"]) == 0
    return dict(json.loads(out.getvalue()))


def test_schema_is_a_valid_draft_2020_12_schema(printed_schema: dict[str, Any]) -> None:
    assert printed_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(printed_schema)


def test_repo_probes_yaml_validates_against_the_schema(printed_schema: dict[str, Any]) -> None:
    document = yaml.safe_load(PROBES_YAML.read_text())
    errors = list(Draft202012Validator(printed_schema).iter_errors(document))
    assert errors == []


@pytest.mark.parametrize(
    "broken",
    [
        {"checks": [{"name": "c", "steps": [STEP], "intervall": "1s"}]},
        {"checks": [{"name": "Bad Name", "steps": [STEP]}]},
        {"checks": [{"name": "c", "steps": [{**STEP, "expect": {"json": [{"query": "a"}]}}]}]},
        {
            "checks": [
                {
                    "name": "c",
                    "steps": [{**STEP, "expect": {"json": [{"query": "a", "gt": 1, "x": 1}]}}],
                }
            ]
        },
        {"checks": [{"name": "c", "steps": [{**STEP, "expect": {"status": 700}}]}]},
        {"checks": [{"name": "c", "steps": [{**STEP, "poll": {"every": "soon", "within": "1s"}}]}]},
        {"checks": []},
    ],
)
def test_schema_rejects_what_the_loader_rejects(
    printed_schema: dict[str, Any], broken: dict[str, Any]
) -> None:
    assert list(Draft202012Validator(printed_schema).iter_errors(broken))
    with pytest.raises(ConfigError):
        load(broken)


def test_schema_accepts_every_operator(printed_schema: dict[str, Any]) -> None:
    from uptime_probe.config.steps import JSON_OPERATORS

    values = {"gt": 1, "gte": 1, "lt": 1, "lte": 1, "exists": True, "empty": False}
    json_assertions = [{"query": "a", op: values.get(op, "x")} for op in JSON_OPERATORS]
    document = {"checks": [{"name": "c", "steps": [{**STEP, "expect": {"json": json_assertions}}]}]}
    assert list(Draft202012Validator(printed_schema).iter_errors(document)) == []
    load(document)


# --- browser steps need Playwright and Chromium, checked at load -----------------------------

BROWSER_CHECK = """\
checks:
  - name: api
    steps:
      - name: list
        request: {url: "http://127.0.0.1:9/"}
  - name: sidebar_renders
    steps:
      - name: sidebar
        browser: {url: "http://127.0.0.1:9/"}
"""


class _NoPlaywright:
    """An import finder under which Playwright is not installed."""

    @staticmethod
    def find_spec(name: str, *_args: object) -> None:
        if name == "playwright" or name.startswith("playwright."):
            raise ModuleNotFoundError(f"No module named {name!r}")


@pytest.fixture
def no_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as if Playwright were not installed (nor imported by an earlier test)."""
    monkeypatch.setattr(sys, "meta_path", [_NoPlaywright(), *sys.meta_path])
    for name in [n for n in sys.modules if n == "playwright" or n.startswith("playwright.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.usefixtures("no_playwright")
def test_without_playwright_browser_steps_fail_to_load_saying_how_to_install() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(BROWSER_CHECK)
    (issue,) = raised.value.issues
    assert issue.path == ("checks", 1, "steps", 0, "browser")
    assert issue.message.startswith("browser steps cannot run here: Playwright is not installed;")
    assert "pip install 'uptime-probe[browser]'" in issue.message
    assert "apt-get install chromium" in issue.message
    # Skipping instead: the other checks load, and the config says which it dropped and why.
    config = parse_config("browser: {when_missing: skip}\n" + BROWSER_CHECK)
    assert [check.name for check in config.checks] == ["api"]
    assert config.skipped_checks == ("sidebar_renders",)
    assert config.skipped_because.startswith("Playwright is not installed;")


@pytest.mark.usefixtures("no_playwright")
def test_a_config_without_browser_steps_never_looks_for_a_browser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    config = parse_config(BROWSER_CHECK.split("  - name: sidebar_renders")[0])
    assert [check.name for check in config.checks] == ["api"]
    assert config.skipped_checks == ()


def test_chromium_found_at_load_is_resolved_to_its_path() -> None:
    config = parse_config(BROWSER_CHECK)
    executable = config.browser.executable
    assert executable is not None
    assert os.path.isabs(executable)
    assert os.access(executable, os.X_OK)


def test_resolving_chromium_leaves_other_configs_browser_settings_alone() -> None:
    """The path found is this config's: a config without a `browser:` section read later
    (a reload, or the daemon's child parse compared with its own) still says None."""
    resolved = parse_config(BROWSER_CHECK)
    assert resolved.browser.executable is not None
    later = parse_config(BROWSER_CHECK.split("  - name: sidebar_renders")[0])
    assert later.browser.executable is None
