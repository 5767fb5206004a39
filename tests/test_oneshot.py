"""`check --json`'s step objects: HTTP parts only for the kinds that exchange HTTP, figures by
their key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from uptime_probe.oneshot import as_json_lines, step_as_json
from uptime_probe.probe import CheckResult, PhaseTimings, Status, StepResult
from uptime_probe.probe.kinds.websocket import WebsocketFigures


@dataclass(frozen=True, slots=True)
class QueryFigures:
    """What a kind that is not HTTP might measure (a DNS query, say)."""

    key: ClassVar[str] = "dns"
    histograms: ClassVar[tuple[str, ...]] = ("query_seconds",)
    gauges: ClassVar[tuple[str, ...]] = ()
    descriptions: ClassVar[dict[str, str]] = {"query_seconds": "Time to the answer."}

    query_seconds: float | None = 0.0123456789

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {"query_seconds": self.query_seconds}


def test_a_step_that_is_not_http_has_no_http_status_or_phases() -> None:
    step = StepResult("lookup", Status.UP, None, "ok", 0.5, kind="dns", figures=QueryFigures())

    assert step_as_json(step) == {
        "name": "lookup",
        "kind": "dns",
        "status": "up",
        "reason": None,
        "message": "ok",
        "duration_seconds": 0.5,
        "dns": {"query_seconds": 0.0123456789},
    }


def test_a_request_step_has_its_status_and_phases_and_no_figures() -> None:
    step = StepResult(
        "page", Status.DOWN, "http_5xx", "HTTP 503, expected 2xx", 0.25,
        http_status=503, timings=PhaseTimings(connect=0.001, processing=0.2),
    )  # fmt: skip

    out = step_as_json(step)

    assert out["http_status"] == 503
    assert out["phases"] == {
        "resolve": 0.0, "connect": 0.001, "tls": 0.0, "processing": 0.2, "transfer": 0.0,
    }  # fmt: skip
    assert "stream" not in out


def test_a_websocket_step_has_its_upgrades_status_and_phases_beside_its_figures() -> None:
    # Its upgrade is an HTTP exchange; its processing is the wait for the message.
    figures = WebsocketFigures(handshake_seconds=0.004, first_message_seconds=0.02, messages=1)
    step = StepResult(
        "push", Status.UP, None, "message after 0.02s", 0.03, kind="websocket",
        http_status=101, timings=PhaseTimings(connect=0.001, processing=0.025), figures=figures,
    )  # fmt: skip

    out = step_as_json(step)

    assert out["http_status"] == 101
    assert out["phases"]["processing"] == 0.025
    assert out["websocket"]["handshake_seconds"] == 0.004


def test_the_check_line_keeps_its_keys_and_adds_the_steps_in_order() -> None:
    steps = (
        StepResult("one", Status.UP, None, "HTTP 200", 0.1, http_status=200),
        StepResult("two", Status.DOWN, "timeout", "cut", 0.2, kind="stream", http_status=200),
    )
    result = CheckResult("c", Status.DOWN, "timeout", "two", "two: cut", 0.0, 0.3, steps)

    (line,) = map(json.loads, as_json_lines([result]).splitlines())

    assert [step["name"] for step in line["steps"]] == ["one", "two"]
    assert {key: line[key] for key in ("check", "status", "reason", "step", "http_status")} == {
        "check": "c", "status": "down", "reason": "timeout", "step": "two", "http_status": 200,
    }  # fmt: skip
