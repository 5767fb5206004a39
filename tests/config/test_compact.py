"""Equal values of a loaded config share one object (config/compact.py): what 10,000
checks cost in memory. Sharing must change nothing a reader of the config can see."""

from __future__ import annotations

from pathlib import Path

from uptime_probe.app import DaemonOptions, load_deployment_config
from uptime_probe.config import load_config, parse_config
from uptime_probe.config.compact import share_equal_values
from uptime_probe.probe import compile_checks

REPO = Path(__file__).resolve().parents[2]


def two_checks() -> str:
    return "\n".join(
        [
            "checks:",
            *(
                f"- name: c{i}\n"
                "  steps:\n"
                "  - name: get\n"
                "    request: {url: 'http://127.0.0.1:9/json', headers: {X-Team: core}}\n"
                "    expect: {status: 200, json: [{query: status, equals: ok}]}"
                for i in range(2)
            ),
        ]
    )


def test_equal_strings_and_field_sets_become_one_object() -> None:
    config = parse_config(two_checks(), env={})
    first, second = (check.steps[0] for check in config.checks)
    assert first.request.headers == second.request.headers
    assert first.__pydantic_fields_set__ is not second.__pydantic_fields_set__

    share_equal_values(config)

    name_1, name_2 = (next(iter(step.request.headers)) for step in (first, second))
    assert name_1 is name_2
    assert first.name is second.name
    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    assert first.expect.__pydantic_fields_set__ is second.expect.__pydantic_fields_set__
    assert config == parse_config(two_checks(), env={}), "nothing a reader sees has changed"


def test_a_copy_with_changes_leaves_the_shared_field_set_alone() -> None:
    config = parse_config(two_checks(), env={})
    share_equal_values(config)
    first, second = config.checks
    shared = set(second.__pydantic_fields_set__)

    changed = first.model_copy(update={"description": "changed"})

    assert "description" in changed.model_fields_set
    assert second.__pydantic_fields_set__ == shared
    assert first.__pydantic_fields_set__ == shared


def test_the_shipped_example_loads_shared_and_compiles_the_same() -> None:
    """The example with every feature: the daemon's load (shared, then rebuilt from a
    pickle, which keeps what is shared shared) equals the loader's."""
    deployed = load_deployment_config(DaemonOptions(config_path=REPO / "probes.yaml"))
    parsed = load_config(REPO / "probes.yaml")
    assert deployed == parsed
    assert compile_checks(deployed).keys() == compile_checks(parsed).keys()
    names = [step.name for check in deployed.checks for step in check.steps]
    by_value: dict[str, int] = {}
    for name in names:
        by_value.setdefault(name, id(name))
    assert all(id(name) == by_value[name] for name in names), "a step name was not shared"
