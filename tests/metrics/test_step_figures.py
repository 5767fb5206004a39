"""A kind's figures as metrics, with no code of the kind's own in metrics.py: the stream
step's histograms and gauges, HTTP-only series only for HTTP-based steps, and the stream
reasons only for checks that have a stream step."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

import pytest
from prometheus_client.exposition import generate_latest

from uptime_probe.config.steps import STEP_KINDS, StepBase
from uptime_probe.metrics import (
    DURATION_BUCKETS,
    CheckMetrics,
    CheckSeries,
    HistogramData,
    StepSeries,
    figure_families,
    render_check,
)
from uptime_probe.probe import Status, StepResult
from uptime_probe.probe.kinds.stream import StreamFigures
from uptime_probe.probe.model import COMMON_REASONS, KIND_REASONS

from .fixtures import Parsed, load, outcome, step_result

CHECKS: list[dict[str, Any]] = [
    {"name": "chat_load", "steps": [{"name": "page", "request": {"url": "https://chat.example/"}}]},
    {
        "name": "chat_answer",
        "steps": [
            {"name": "create", "request": {"url": "https://chat.example/c", "method": "POST"}},
            {
                "name": "answer",
                "stream": {
                    "url": "https://chat.example/a",
                    "collect": "choices[0].delta.content",
                    "done": "[DONE]",
                },
            },
        ],
    },
]
ANSWER = {"check": "chat_answer", "location": "eu-west", "step": "answer"}
HISTOGRAMS = (
    "uptime_probe_step_stream_first_event_seconds",
    "uptime_probe_step_stream_first_token_seconds",
    "uptime_probe_step_stream_longest_gap_seconds",
)
GAUGES = ("uptime_probe_step_stream_events", "uptime_probe_step_stream_answer_chars")


def metrics() -> CheckMetrics:
    m = CheckMetrics("eu-west")
    m.sync_checks(load(CHECKS).checks)
    return m


def stream_result(status: Status = Status.UP, **figures: Any) -> StepResult:
    values = {
        "head_seconds": 0.05,
        "first_event_seconds": 0.4,
        "first_token_seconds": 0.6,
        "longest_gap_seconds": 1.5,
        "events": 42,
        "answer_chars": 180,
        "total_seconds": 3.2,
        **figures,
    }
    return dataclasses.replace(
        step_result("answer", status, reason=None if status is not Status.DOWN else "x"),
        kind="stream",
        figures=StreamFigures(**values),
    )


def run(m: CheckMetrics, answer: StepResult) -> None:
    m.accept(outcome("chat_answer", [step_result("create"), answer], state=None))


def text_of(m: CheckMetrics) -> Parsed:
    return Parsed.of_text(m.render_text())


def test_stream_figures_exist_from_the_first_scrape_as_histograms() -> None:
    parsed = text_of(metrics())

    for name in HISTOGRAMS:
        assert parsed.types[name] == "histogram"
        assert parsed.value(f"{name}_count", **ANSWER) == 0
        assert len(parsed.find(f"{name}_bucket", **ANSWER)) == len(DURATION_BUCKETS) + 1
        # Only the stream step has them: not the request step, not another check.
        assert parsed.find(f"{name}_count", check="chat_answer", step="create") == []
        assert parsed.find(f"{name}_count", check="chat_load") == []
    for name in GAUGES:
        assert parsed.types[name] == "gauge"
        assert parsed.find(name, **ANSWER) == []  # nothing measured yet


def test_a_stream_run_is_observed_and_its_counts_are_the_last_runs() -> None:
    m = metrics()
    run(m, stream_result(first_event_seconds=0.4, events=42, answer_chars=180))
    run(m, stream_result(first_event_seconds=7.0, events=3, answer_chars=0))

    parsed = text_of(m)

    first_event = "uptime_probe_step_stream_first_event_seconds"
    assert parsed.value(f"{first_event}_count", **ANSWER) == 2
    assert parsed.value(f"{first_event}_sum", **ANSWER) == pytest.approx(7.4)
    assert parsed.value(f"{first_event}_bucket", **ANSWER, le="0.5") == 1
    assert parsed.value(f"{first_event}_bucket", **ANSWER, le="10.0") == 2
    assert parsed.value("uptime_probe_step_stream_longest_gap_seconds_sum", **ANSWER) == 3.0
    assert parsed.value("uptime_probe_step_stream_events", **ANSWER) == 3
    assert parsed.value("uptime_probe_step_stream_answer_chars", **ANSWER) == 0


def test_a_figure_the_run_did_not_reach_is_not_observed_and_its_gauge_goes() -> None:
    m = metrics()
    run(m, stream_result())
    run(m, stream_result(Status.DOWN, first_token_seconds=None, answer_chars=None, events=2))

    parsed = text_of(m)

    assert parsed.value("uptime_probe_step_stream_first_token_seconds_count", **ANSWER) == 1
    assert parsed.value("uptime_probe_step_stream_first_event_seconds_count", **ANSWER) == 2
    assert parsed.value("uptime_probe_step_stream_events", **ANSWER) == 2
    assert parsed.find("uptime_probe_step_stream_answer_chars", **ANSWER) == []
    # A run with no figures at all (the request could not even be built): no gauge either.
    run(m, dataclasses.replace(stream_result(Status.DOWN), figures=None))
    assert text_of(m).find("uptime_probe_step_stream_events", **ANSWER) == []


def test_the_text_renderer_equals_the_library_with_figures() -> None:
    m = metrics()
    run(m, stream_result())
    run(m, stream_result(Status.DOWN, first_token_seconds=None, answer_chars=None))

    fast = text_of(m)
    library = Parsed.of_text(generate_latest(m).decode())

    assert fast.samples == library.samples
    assert fast.types == library.types


def test_stream_reasons_are_declared_only_for_checks_with_a_stream_step() -> None:
    parsed = text_of(metrics())

    def reasons(check: str) -> set[str]:
        found = parsed.find("uptime_probe_check_failures_total", check=check)
        return {sample.labels["reason"] for sample in found}

    assert reasons("chat_load") == set(COMMON_REASONS)
    assert reasons("chat_answer") == set(COMMON_REASONS) | set(KIND_REASONS["stream"])


def test_a_step_whose_kind_changes_on_reload_gets_series_of_its_new_shape() -> None:
    m = metrics()
    run(m, stream_result())
    answer_as_request = {"name": "answer", "request": {"url": "https://chat.example/a"}}
    as_request = [CHECKS[0], {**CHECKS[1], "steps": [CHECKS[1]["steps"][0], answer_as_request]}]
    m.sync_checks(load(as_request).checks)

    parsed = text_of(m)

    assert parsed.find("uptime_probe_step_stream_events", **ANSWER) == []
    assert parsed.find("uptime_probe_step_stream_first_event_seconds_count", **ANSWER) == []
    assert "uptime_probe_step_stream_first_event_seconds" not in parsed.types
    assert parsed.value("uptime_probe_step_duration_seconds_count", **ANSWER) == 0
    # And back: the stream series start again from nothing.
    m.sync_checks(load(CHECKS).checks)
    assert text_of(m).value("uptime_probe_step_stream_first_event_seconds_count", **ANSWER) == 0


class _PauseStep(StepBase):
    """A kind that does not speak HTTP (run by the request module only to have a KIND)."""

    handler: ClassVar[str] = "pause"
    runner: ClassVar[str] = "http"


def test_a_step_that_is_not_http_has_no_status_code_or_phase_series() -> None:
    step = StepSeries.of(_PauseStep(name="wait"))
    assert step.http is False
    series = CheckSeries(
        check="c", location="eu-west", reasons=("timeout",), failures=(0,), steps=(step,),
        slo=0.999, interval=30.0,
    )  # fmt: skip

    text = "".join(render_check(series))

    assert 'uptime_probe_step_duration_seconds_count{check="c",location="eu-west",step="wait"}' in (
        text
    )
    assert "uptime_probe_step_http_status_code" not in text
    assert "uptime_probe_step_phase_seconds" not in text
    # The same step as HTTP-based has both.
    http_step = StepSeries("wait", HistogramData.empty())
    http = "".join(render_check(dataclasses.replace(series, steps=(http_step,))))
    assert "uptime_probe_step_http_status_code" in http


def test_the_kinds_that_exchange_http_are_request_stream_and_websocket() -> None:
    # A websocket's upgrade is an HTTP exchange: its status code (101) and phases are
    # exported as a request's are; a DNS query, a TCP exchange, a browser's page are not.
    assert {h for h, kind in STEP_KINDS.items() if kind.exchanges_http} == {
        "request",
        "stream",
        "websocket",
    }


def test_figure_families_are_named_from_the_figures_class_and_documented() -> None:
    families = figure_families([StreamFigures])

    assert [(f.name, f.kind) for f in families] == [
        *((name, "histogram") for name in HISTOGRAMS),
        *((name, "gauge") for name in GAUGES),
    ]
    fields = {f.name for f in dataclasses.fields(StreamFigures)}
    for declared in (*StreamFigures.histograms, *StreamFigures.gauges):
        assert declared in fields
        assert StreamFigures.descriptions[declared]
    assert all(re.fullmatch(r"uptime_probe_step_[a-z_]+", f.name) for f in families)
    assert all(f.name.endswith("_seconds") for f in families if f.kind == "histogram")
