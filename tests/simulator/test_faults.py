"""FaultSpec validation and fault maps, as used by scenarios and the control API."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from uptime_probe.simulator.faults import (
    Endpoint,
    FaultMode,
    FaultSpec,
    FaultSpecError,
    all_ok,
    parse_fault_map,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ok", {"mode": "ok"}),
        ({"mode": "hang"}, {"mode": "hang"}),
        ("slow", {"mode": "slow", "latency": 3.0}),
        ({"mode": "slow", "latency": 0.25}, {"mode": "slow", "latency": 0.25}),
        ("error", {"mode": "error", "status": 500}),
        ({"mode": "error", "status": 503}, {"mode": "error", "status": 503}),
        ("rate_limited", {"mode": "rate_limited", "retry_after": 5}),
        ({"mode": "rate_limited", "retry_after": 0}, {"mode": "rate_limited", "retry_after": 0}),
        ("empty", {"mode": "empty"}),
        ("stuck", {"mode": "stuck"}),
        ("reset", {"mode": "reset"}),
        ("truncated", {"mode": "truncated"}),
    ],
)
def test_valid_specs_fill_their_defaults(raw: object, expected: dict[str, object]) -> None:
    assert FaultSpec.model_validate(raw).to_json() == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("explode", "Input should be 'ok', 'slow'"),
        ({}, "mode"),
        ({"mode": "slow", "latency": 0}, "greater than 0"),
        ({"mode": "slow", "latency": -1}, "greater than 0"),
        ({"mode": "slow", "latency": "fast"}, "valid number"),
        ({"mode": "error", "status": 200}, "greater than or equal to 400"),
        ({"mode": "error", "status": 600}, "less than or equal to 599"),
        ({"mode": "rate_limited", "retry_after": -1}, "greater than or equal to 0"),
        ({"mode": "error", "latency": 1}, "'latency' does not apply to mode 'error'"),
        ({"mode": "hang", "status": 500}, "'status' does not apply to mode 'hang'"),
        ({"mode": "slow", "retry_after": 3}, "'retry_after' does not apply to mode 'slow'"),
        ({"mode": "ok", "colour": "red"}, "Extra inputs are not permitted"),
        (42, "valid dictionary"),
    ],
)
def test_invalid_specs_are_rejected_with_the_reason(raw: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FaultSpec.model_validate(raw)


def test_a_spec_is_frozen() -> None:
    spec = FaultSpec.model_validate("hang")
    with pytest.raises(ValidationError):
        spec.mode = FaultMode.OK  # type: ignore[misc]


def test_fault_map_returns_only_the_named_endpoints() -> None:
    parsed = parse_fault_map({"task_create": "hang", "chat": {"mode": "slow", "latency": 1}})
    assert parsed == {
        Endpoint.TASK_CREATE: FaultSpec(mode=FaultMode.HANG),
        Endpoint.CHAT: FaultSpec(mode=FaultMode.SLOW, latency=1.0),
    }


@pytest.mark.parametrize(
    ("raw", "messages"),
    [
        (
            {"database": "hang"},
            [
                "faults: unknown endpoint 'database' (expected one of chat, conversations, "
                "task_create, task_status, answer)"
            ],
        ),
        ({"chat": "explode"}, ["faults.chat.mode: Input should be"]),
        ({"chat": "stuck"}, ["faults.chat: mode 'stuck' applies only to task_create, task_status"]),
        (
            {"conversations": "stuck"},
            ["faults.conversations: mode 'stuck' applies only to task_create"],
        ),
        (
            {"chat": {"mode": "error", "latency": 2}, "nope": "ok"},
            ["faults.chat: 'latency' does not apply", "unknown endpoint 'nope'"],
        ),
        (["chat"], ["faults: expected a mapping of endpoint to fault spec, got list"]),
        ({"chat": "stall"}, ["faults.chat: mode 'stall' applies only to answer"]),
        ({"task_create": "html_page"}, ["faults.task_create: mode 'html_page' applies only"]),
        ({"answer": "stuck"}, ["faults.answer: mode 'stuck' applies only to task_create"]),
        ({"answer": {"mode": "no_done", "latency": 1}}, ["'latency' does not apply"]),
    ],
)
def test_fault_map_errors_name_every_problem_with_its_path(
    raw: object, messages: list[str]
) -> None:
    with pytest.raises(FaultSpecError) as caught:
        parse_fault_map(raw)
    for message in messages:
        assert message in str(caught.value)


@pytest.mark.parametrize("endpoint", ["task_create", "task_status"])
def test_stuck_is_accepted_on_task_endpoints(endpoint: str) -> None:
    assert parse_fault_map({endpoint: "stuck"})[Endpoint(endpoint)].mode is FaultMode.STUCK


def test_all_ok_covers_every_endpoint() -> None:
    assert set(all_ok()) == set(Endpoint)
    assert {spec.mode for spec in all_ok().values()} == {FaultMode.OK}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("slow_first_token", {"mode": "slow_first_token", "latency": 3.0}),
        ({"mode": "stall", "latency": 8}, {"mode": "stall", "latency": 8.0}),
        ("stall", {"mode": "stall", "latency": 10.0}),
        ("no_done", {"mode": "no_done"}),
        ("error_event", {"mode": "error_event"}),
        ("html_page", {"mode": "html_page"}),
        ("empty", {"mode": "empty"}),
    ],
)
def test_the_stream_faults_apply_to_the_answer(raw: object, expected: dict[str, object]) -> None:
    assert parse_fault_map({"answer": raw})[Endpoint.ANSWER].to_json() == expected
