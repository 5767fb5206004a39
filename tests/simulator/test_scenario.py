"""Scenario files: durations, loading bundled and user files, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from uptime_probe.simulator import (
    ScenarioError,
    bundled_scenario_names,
    load_scenario,
    parse_duration,
)
from uptime_probe.simulator.faults import Endpoint, FaultMode
from uptime_probe.simulator.scenario import parse_scenario


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        (" 10s ", 10.0),
        (2, 2.0),
        (0.5, 0.5),
    ],
)
def test_durations_parse_to_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "5", "5 m", "five minutes", "-5s", "0s", "0", -1, True, [], "5d", "10s5"]
)
def test_bad_durations_are_rejected(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_bundled_scenarios_are_listed_and_load() -> None:
    assert bundled_scenario_names() == ("dec-3-2025", "healthy")
    for name in bundled_scenario_names():
        assert load_scenario(name).name == name


def test_healthy_is_one_endless_phase_with_every_endpoint_ok() -> None:
    healthy = load_scenario("healthy")
    assert len(healthy.phases) == 1
    assert healthy.total_duration is None
    assert {spec.mode for spec in healthy.phases[0].faults.values()} == {FaultMode.OK}


def test_dec_3_2025_has_a_45_minute_incident_between_lead_in_and_resolution() -> None:
    scenario = load_scenario("dec-3-2025")
    names = [p.name for p in scenario.phases]
    assert names[0] == "lead-in"
    assert names[-1] == "resolved"
    starts = scenario.phase_starts()
    assert starts[1] == 5 * 60  # the incident starts after the 5 min lead-in
    assert starts[-1] - starts[1] == 45 * 60
    assert scenario.total_duration == 55 * 60
    for phase in scenario.phases:
        assert phase.note, f"phase {phase.name} has no status-page note"
    # the first and last phases are healthy; every phase in between has a fault
    for phase in (scenario.phases[0], scenario.phases[-1]):
        assert {s.mode for s in phase.faults.values()} == {FaultMode.OK}
    for phase in scenario.phases[1:-1]:
        assert {s.mode for s in phase.faults.values()} != {FaultMode.OK}


def test_a_file_path_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\n"
        "phases:\n"
        "  - {name: one, duration: 250ms, faults: {chat: hang}}\n"
        "  - {name: two, faults: {conversations: {mode: error, status: 502}}}\n"
    )
    scenario = load_scenario(str(path))
    assert scenario.name == "mine"
    assert scenario.phases[0].duration == 0.25
    assert scenario.phases[0].faults[Endpoint.CHAT].mode is FaultMode.HANG
    assert scenario.phases[0].faults[Endpoint.CONVERSATIONS].mode is FaultMode.OK  # completed
    assert scenario.phases[1].faults[Endpoint.CONVERSATIONS].status == 502
    assert scenario.total_duration is None


_PHASE = "  - {name: a, duration: 1s}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nphases: [\n", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping with 'name' and 'phases', got list"),
        ("", "expected a mapping with 'name' and 'phases', got NoneType"),
        ("phases:\n" + _PHASE, "name: Field required"),
        ("name: x\n", "phases: Field required"),
        ("name: x\nphases: []\n", "phases: a scenario needs at least one phase"),
        ("name: x\nphases:\n  - {name: a, duration: 5 minutes}\n", "phases.0.duration: invalid"),
        (
            "name: x\nphases:\n  - {name: a, faults: {db: hang}}\n",
            "phases.0.faults: unknown endpoint 'db'",
        ),
        (
            "name: x\nphases:\n  - {name: a, faults: {chat: explode}}\n",
            "phases.0.faults: chat.mode: Input should be",
        ),
        (
            "name: x\nphases:\n  - {name: a, faults: {conversations: stuck}}\n",
            "conversations: mode 'stuck' applies only to task_create, task_status",
        ),
        (
            "name: x\nphases:\n  - {name: a, faults: {chat: {mode: slow, status: 500}}}\n",
            "chat: 'status' does not apply to mode 'slow'",
        ),
        (
            "name: x\nphases:\n  - {name: a}\n" + _PHASE.replace("a,", "b,"),
            "phases.0 ('a'): only the last phase may omit 'duration'",
        ),
        ("name: x\nphases:\n" + _PHASE + _PHASE, "phase name 'a' is used twice"),
        ("name: x\nphases:\n  - {name: a, colour: red}\n", "phases.0.colour: Extra inputs"),
        ("name: x\nspeed: 2\nphases:\n" + _PHASE, "speed: Extra inputs are not permitted"),
    ],
)
def test_a_bad_file_gives_a_clear_error_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path))
    assert str(caught.value).startswith(f"scenario file '{path}': ")
    assert message in str(caught.value)


@pytest.mark.parametrize("name", ["nope", "nope.yaml", "/no/such/dir/x.yaml"])
def test_an_unknown_name_lists_the_bundled_scenarios(name: str) -> None:
    with pytest.raises(
        ScenarioError, match=r"not a bundled scenario \(dec-3-2025, healthy\) and no such file"
    ):
        load_scenario(name)


def test_a_directory_is_not_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(str(tmp_path))


def test_parse_scenario_prefixes_errors_with_the_source() -> None:
    with pytest.raises(ScenarioError, match=r"^inline: name: Field required"):
        parse_scenario("phases: [{name: a}]", source="inline")
