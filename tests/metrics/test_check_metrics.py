"""CheckMetrics: every series from the first scrape, counters on accept, removal, and the
fast text renderer pinned to prometheus-client's own exposition of the same data."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from uptime_probe.metrics import (
    _RENDER_SLICE,
    CHUNK_BYTES,
    DURATION_BUCKETS,
    FAMILIES,
    LIVE_FAMILIES,
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    CheckMetrics,
    DaemonMetrics,
    HistogramData,
    MetricsExposition,
)
from uptime_probe.probe import Status
from uptime_probe.probe.model import COMMON_REASONS, PHASES, PhaseTimings

from .fixtures import CHECKS, Parsed, load, outcome, step_result

STATES = {"up", "degraded", "down"}
TLS_EXPIRY = 1_800_000_000.0


def fresh() -> CheckMetrics:
    metrics = CheckMetrics("eu-west")
    metrics.sync_checks(load().checks)
    return metrics


def rich() -> CheckMetrics:
    """Several checks with up, degraded and down runs, TLS expiry, last_failure_info, skips."""
    m = fresh()
    m.accept(outcome("chat_load", [step_result("page", tls_not_after=TLS_EXPIRY)], state=Status.UP))
    m.accept(
        outcome(
            "chat_load",
            [step_result("page", Status.DEGRADED, duration=2.5, http_status=200)],
            state=Status.DEGRADED,
            started_at=1_700_000_030.0,
        )
    )
    m.accept(
        outcome(
            "history",
            [step_result("conversations", Status.DOWN, reason="empty_history")],
            state=None,
        )
    )
    m.accept(
        outcome(
            "history",
            [step_result("conversations", Status.DOWN, reason="http_5xx", http_status=503)],
            state=Status.DOWN,
            started_at=1_700_000_030.0,
        )
    )
    m.accept(
        outcome(
            "tasks",
            [
                step_result("create", http_status=202, duration=0.1),
                step_result("status", Status.DOWN, reason="task_stuck", duration=10.0),
            ],
            state=None,
        )
    )
    m.record_skip("tasks")
    m.record_skip("tasks")
    return m


def text_of(metrics: CheckMetrics) -> Parsed:
    return Parsed.of_text(metrics.render_text())


# --- every series from the first scrape ---------------------------------------------------


def test_every_series_exists_before_any_run() -> None:
    parsed = text_of(fresh())
    config = load()
    for check in config.checks:
        base = {"check": check.name, "location": "eu-west"}
        assert parsed.value("uptime_probe_check_success", **base) == 0
        for state in STATES:
            assert parsed.value("uptime_probe_check_state", **base, state=state) == 0
        for counter in (
            "uptime_probe_check_runs_total",
            "uptime_probe_check_degraded_total",
            "uptime_probe_runs_skipped_total",
            "uptime_probe_check_duration_seconds_count",
        ):
            assert parsed.value(counter, **base) == 0, counter
        reasons = {s.labels["reason"]: s.value for s in parsed.find(
            "uptime_probe_check_failures_total", **base
        )}  # fmt: skip
        assert reasons == dict.fromkeys({*COMMON_REASONS, *check.reasons()}, 0.0)
        buckets = parsed.find("uptime_probe_check_duration_seconds_bucket", **base)
        assert len(buckets) == len(DURATION_BUCKETS) + 1
        assert parsed.value("uptime_probe_check_last_run_timestamp_seconds", **base) == 0
        assert parsed.value("uptime_probe_check_last_success_timestamp_seconds", **base) == 0
        assert parsed.value("uptime_probe_check_slo_objective", **base) == check.slo_objective
        assert parsed.value("uptime_probe_check_interval_seconds", **base) == check.interval_seconds
        assert parsed.find("uptime_probe_check_last_failure_info", **base) == []
        for step in check.steps:
            labels = {**base, "step": step.name}
            assert parsed.value("uptime_probe_step_duration_seconds_count", **labels) == 0
            assert parsed.value("uptime_probe_step_http_status_code", **labels) == 0
            phases = {
                s.labels["phase"] for s in parsed.find("uptime_probe_step_phase_seconds", **labels)
            }
            assert phases == set(PHASES)
            assert (
                parsed.find("uptime_probe_step_tls_cert_expiry_timestamp_seconds", **labels) == []
            )
    # The config's own reasons are there, by name, for the checks that name them.
    assert parsed.value(
        "uptime_probe_check_failures_total", check="history", location="eu-west",
        reason="empty_history",
    ) == 0  # fmt: skip
    assert (
        parsed.find("uptime_probe_check_failures_total", check="chat_load", reason="empty_history")
        == []
    )
    assert parsed.value(
        "uptime_probe_check_slo_objective", check="chat_load", location="eu-west"
    ) == pytest.approx(0.99)
    assert parsed.value(
        "uptime_probe_check_slo_objective", check="history", location="eu-west"
    ) == pytest.approx(0.999)


# --- counters move on accept --------------------------------------------------------------


def test_counters_move_on_accept() -> None:
    parsed = text_of(rich())
    chat = {"check": "chat_load", "location": "eu-west"}
    history = {"check": "history", "location": "eu-west"}
    tasks = {"check": "tasks", "location": "eu-west"}

    assert parsed.value("uptime_probe_check_runs_total", **chat) == 2
    assert parsed.value("uptime_probe_check_degraded_total", **chat) == 1
    assert sum(s.value for s in parsed.find("uptime_probe_check_failures_total", **chat)) == 0
    assert parsed.value("uptime_probe_check_success", **chat) == 1  # degraded counts as success
    assert parsed.value("uptime_probe_check_state", **chat, state="degraded") == 1
    assert parsed.value("uptime_probe_check_state", **chat, state="up") == 0
    assert parsed.value("uptime_probe_check_last_run_timestamp_seconds", **chat) == 1_700_000_030
    assert (
        parsed.value("uptime_probe_check_last_success_timestamp_seconds", **chat) == 1_700_000_030
    )
    # The whole journey's histogram: 0.05 s and 2.5 s (a bound: counted as le="2.5").
    assert parsed.value("uptime_probe_check_duration_seconds_count", **chat) == 2
    assert parsed.value("uptime_probe_check_duration_seconds_sum", **chat) == pytest.approx(2.55)
    assert parsed.value("uptime_probe_check_duration_seconds_bucket", **chat, le="0.05") == 1
    assert parsed.value("uptime_probe_check_duration_seconds_bucket", **chat, le="1.0") == 1
    assert parsed.value("uptime_probe_check_duration_seconds_bucket", **chat, le="2.5") == 2
    page = {**chat, "step": "page"}
    # TLS expiry is kept from the run that saw it, not wiped by one that did not report it.
    assert parsed.value("uptime_probe_step_tls_cert_expiry_timestamp_seconds", **page) == TLS_EXPIRY
    assert parsed.value(
        "uptime_probe_step_phase_seconds", **page, phase="processing"
    ) == pytest.approx(1.5)
    assert parsed.value("uptime_probe_step_http_status_code", **page) == 200

    for reason, count in {"empty_history": 1, "http_5xx": 1, "timeout": 0}.items():
        assert parsed.value("uptime_probe_check_failures_total", **history, reason=reason) == count
    assert parsed.value("uptime_probe_check_runs_total", **history) == 2
    assert parsed.value("uptime_probe_check_success", **history) == 0
    assert parsed.value("uptime_probe_check_state", **history, state="down") == 1
    assert parsed.value("uptime_probe_check_last_success_timestamp_seconds", **history) == 0
    info = parsed.find("uptime_probe_check_last_failure_info", **history)
    assert [(s.labels["reason"], s.labels["step"], s.value) for s in info] == [
        ("http_5xx", "conversations", 1.0)
    ]  # only the most recent: one series, its labels replaced
    assert (
        parsed.value("uptime_probe_step_http_status_code", **history, step="conversations") == 503
    )

    assert parsed.value("uptime_probe_runs_skipped_total", **tasks) == 2
    assert parsed.value("uptime_probe_check_failures_total", **tasks, reason="task_stuck") == 1
    # No state yet (one down run, below failure_threshold): every state at 0.
    assert {s.value for s in parsed.find("uptime_probe_check_state", **tasks)} == {0.0}
    assert parsed.value("uptime_probe_step_duration_seconds_count", **tasks, step="create") == 1
    assert (
        parsed.value("uptime_probe_step_duration_seconds_bucket", **tasks, step="status", le="5.0")
        == 0
    )
    assert (
        parsed.value("uptime_probe_step_duration_seconds_bucket", **tasks, step="status", le="10.0")
        == 1
    )


def test_a_step_not_reached_keeps_its_last_values() -> None:
    m = fresh()
    m.accept(outcome("tasks", [step_result("create"), step_result("status")], state=Status.UP))
    m.accept(
        outcome(
            "tasks",
            [step_result("create", Status.DOWN, reason="http_5xx", http_status=500)],
            state=None,
        )
    )
    parsed = text_of(m)
    status = {"check": "tasks", "location": "eu-west", "step": "status"}
    assert parsed.value("uptime_probe_step_duration_seconds_count", **status) == 1
    assert parsed.value("uptime_probe_step_http_status_code", **status) == 200


@pytest.mark.parametrize(
    ("value", "bucket"),
    [(0.0, "0.01"), (0.01, "0.01"), (0.0100001, "0.025"), (60.0, "60.0"), (61.0, "+Inf")],
)
def test_histogram_buckets_are_less_or_equal(value: float, bucket: str) -> None:
    data = HistogramData.empty().observe(value)
    bounds = [*map(str, DURATION_BUCKETS), "+Inf"]
    first = next(b for b, c in zip(bounds, data.cumulative(), strict=True) if c)
    assert first == bucket


# --- reload: series follow the config -------------------------------------------------------


def test_removed_checks_series_disappear_and_others_keep_counting() -> None:
    m = rich()
    config = load([c for c in CHECKS if c["name"] != "history"])
    m.sync_checks(config.checks)
    for text in (m.render_text(), generate_latest(m).decode()):
        parsed = Parsed.of_text(text)
        assert parsed.checks() == {"chat_load", "tasks"}
        assert (
            parsed.value("uptime_probe_check_runs_total", check="chat_load", location="eu-west")
            == 2
        )
    # A late result for the removed check is dropped, not resurrected.
    m.accept(outcome("history", [step_result("conversations")], state=Status.UP))
    m.record_skip("history")
    assert text_of(m).checks() == {"chat_load", "tasks"}


def test_a_changed_check_keeps_its_counts_and_gains_new_series() -> None:
    m = rich()
    changed = [dict(c) for c in CHECKS]
    changed[1] = {
        "name": "history",
        "slo": 0.95,
        "steps": [
            *CHECKS[1]["steps"],
            {
                "name": "search",
                "request": {"url": "https://chat.example/search"},
                "expect": {"json": [{"query": "hits", "exists": True, "reason": "no_hits"}]},
            },
        ],
    }
    m.sync_checks(load(changed).checks)
    parsed = text_of(m)
    history = {"check": "history", "location": "eu-west"}
    assert parsed.value("uptime_probe_check_failures_total", **history, reason="empty_history") == 1
    assert parsed.value("uptime_probe_check_failures_total", **history, reason="no_hits") == 0
    assert parsed.value("uptime_probe_check_runs_total", **history) == 2
    assert parsed.value("uptime_probe_check_slo_objective", **history) == pytest.approx(0.95)
    assert (
        parsed.value("uptime_probe_step_duration_seconds_count", **history, step="conversations")
        == 2
    )
    assert parsed.value("uptime_probe_step_duration_seconds_count", **history, step="search") == 0


# --- the fast renderer against the library ------------------------------------------------


@pytest.mark.parametrize("state", ["fresh", "rich"])
def test_fast_text_renderer_equals_library_exposition(state: str) -> None:
    m = fresh() if state == "fresh" else rich()
    fast = text_of(m)
    library = Parsed.of_text(generate_latest(m).decode())
    assert fast.samples == library.samples
    assert fast.types == library.types
    # Every family is announced, in order, with its type: the live ones last.
    announced = [
        line.split()[2:4] for line in m.render_text().splitlines() if line.startswith("# TYPE")
    ]
    assert announced == [[name, kind] for name, kind, _help in (*FAMILIES, *LIVE_FAMILIES)]


def test_fast_renderer_cache_follows_each_run() -> None:
    """Lines are cached per check until its snapshot changes: a run must show at once."""
    m = fresh()
    before = text_of(m)
    m.accept(outcome("chat_load", [step_result("page")], state=Status.UP))
    after = text_of(m)
    key = {"check": "chat_load", "location": "eu-west"}
    assert before.value("uptime_probe_check_runs_total", **key) == 0
    assert after.value("uptime_probe_check_runs_total", **key) == 1
    assert after.value("uptime_probe_check_runs_total", check="history", location="eu-west") == 0


# --- the text as a stream of chunks ----------------------------------------------------------


def numbered(count: int) -> list[dict[str, object]]:
    """`count` one-step checks, c0000, c0001, ..."""
    step = {"name": "get", "request": {"url": "https://x.example/"}}
    return [{"name": f"c{i:04d}", "steps": [step]} for i in range(count)]


def many(count: int) -> CheckMetrics:
    m = CheckMetrics("eu-west")
    m.sync_checks(load(numbered(count)).checks)
    return m


@pytest.mark.parametrize("chunk_bytes", [1, 200, 4096, CHUNK_BYTES])
def test_text_chunks_join_to_render_text(chunk_bytes: int) -> None:
    m = rich()
    chunks = list(m.text_chunks(chunk_bytes))
    assert b"".join(chunks).decode() == m.render_text()
    data = [chunk for chunk in chunks if chunk]
    assert all(len(chunk) >= chunk_bytes for chunk in data[:-1])


def test_a_cold_stream_renders_in_slices_and_a_warm_one_renders_nothing() -> None:
    m = many(500)
    cold = list(m.text_chunks(4096))
    first_data = next(i for i, chunk in enumerate(cold) if chunk)
    # A yield point after every _RENDER_SLICE checks rendered, and one before gathering.
    assert first_data == 500 // _RENDER_SLICE + 1
    assert all(len(chunk) < 4096 + 32 * 2048 for chunk in cold)  # bounded past chunk_bytes
    blocks = {name: cached[1] for name, cached in m._cache.items()}
    m.accept(outcome("c0042", [step_result("get")], state=Status.UP))
    warm = list(m.text_chunks(4096))
    assert next(i for i, chunk in enumerate(warm) if chunk) == 1  # just the one before gathering
    assert b"".join(warm) != b"".join(cold)
    for name, cached in m._cache.items():  # only the check that ran was rendered again
        assert (cached[1] is blocks[name]) is (name != "c0042"), name


def test_a_stream_is_of_its_first_snapshot_and_concurrent_streams_are_each_right() -> None:
    m = many(200)
    before = m.render_text()
    first = m.text_chunks(1024)
    first_parts = [next(first)]  # the snapshot is taken, the first slice rendered
    m.accept(outcome("c0000", [step_result("get")], state=Status.UP))
    m.accept(outcome("c0150", [step_result("get", Status.DOWN, reason="http_5xx")], state=None))
    m.sync_checks(load(numbered(199)).checks)  # c0199 removed
    second = m.text_chunks(1024)
    second_parts: list[bytes] = []
    for a, b in zip(first, second, strict=False):  # interleaved, as two scrapes on one loop
        first_parts.append(a)
        second_parts.append(b)
    first_parts.extend(first)
    second_parts.extend(second)
    assert b"".join(first_parts).decode() == before
    after = Parsed.of_text(b"".join(second_parts).decode())
    assert b"".join(second_parts).decode() == m.render_text()
    assert after.value("uptime_probe_check_runs_total", check="c0000", location="eu-west") == 1
    assert after.value(
        "uptime_probe_check_failures_total", check="c0150", location="eu-west", reason="http_5xx"
    ) == 1  # fmt: skip
    assert "c0199" not in after.checks()
    assert "c0199" in Parsed.of_text(before).checks()


def test_removed_checks_leave_the_cache() -> None:
    m = rich()
    m.render_text()
    assert set(m._cache) == {"chat_load", "history", "tasks"}
    m.sync_checks(load([c for c in CHECKS if c["name"] != "history"]).checks)
    m.render_text()
    assert set(m._cache) == {"chat_load", "tasks"}


def exposition(m: CheckMetrics) -> MetricsExposition:
    daemon = DaemonMetrics(CollectorRegistry(auto_describe=True))
    daemon.schedule_lag.observe(0.003)
    daemon.reload_successful.set(1)
    return MetricsExposition(m, daemon)


def test_text_exposition_adds_the_daemon_metrics() -> None:
    body, content_type = exposition(rich()).render("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert content_type == TEXT_CONTENT_TYPE
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["uptime_probe_schedule_lag_seconds"].type == "histogram"
    assert families["uptime_probe_config_last_reload_successful"].samples[0].value == 1
    build = families["uptime_probe_build_info"].samples[0]
    assert set(build.labels) == {"version", "shard"}
    assert "process_cpu_seconds" in families or "process_cpu_seconds_total" in families
    assert families["uptime_probe_check_runs"].type == "counter"


def test_openmetrics_exposition_parses() -> None:
    body, content_type = exposition(rich()).render("application/openmetrics-text;version=1.0.0")
    assert content_type == OPENMETRICS_CONTENT_TYPE
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["uptime_probe_check_runs"].type == "counter"
    assert families["uptime_probe_check_duration_seconds"].type == "histogram"
    assert families["uptime_probe_check_state"].type == "gauge"

    def value(family: str, name: str, **labels: str) -> float:
        matches = [
            s
            for s in families[family].samples
            if s.name == name and labels.items() <= s.labels.items()
        ]
        assert len(matches) == 1, (name, labels, matches)
        return float(matches[0].value)

    history = {"check": "history", "location": "eu-west"}
    assert (
        value(
            "uptime_probe_check_failures",
            "uptime_probe_check_failures_total",
            **history,
            reason="empty_history",
        )
        == 1
    )
    assert (
        value("uptime_probe_check_state", "uptime_probe_check_state", **history, state="down") == 1
    )
    assert (
        value("uptime_probe_schedule_lag_seconds", "uptime_probe_schedule_lag_seconds_count") == 1
    )
    # The same samples as the text path, for the per-check families.
    text_samples = {(name, labels): v for (name, labels), v in text_of(rich()).samples.items()}
    om_samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
        if "check" in s.labels
    }
    assert om_samples == text_samples


# --- label values from closed sets ----------------------------------------------------------


def test_label_values_come_from_closed_sets() -> None:
    config = load()
    m = rich()
    allowed_reasons = {c.name: {*COMMON_REASONS, *c.reasons()} for c in config.checks}
    allowed_steps = {c.name: {s.name for s in c.steps} for c in config.checks}
    for text in (m.render_text(), generate_latest(m).decode()):
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                assert set(labels) <= {
                    "check",
                    "location",
                    "step",
                    "reason",
                    "phase",
                    "state",
                    "le",
                }
                check = labels["check"]
                assert check in allowed_steps
                assert labels["location"] == "eu-west"
                if "step" in labels:
                    assert labels["step"] in allowed_steps[check]
                if "reason" in labels:
                    assert labels["reason"] in allowed_reasons[check]
                if "phase" in labels:
                    assert labels["phase"] in PHASES
                if "state" in labels:
                    assert labels["state"] in STATES
                if "le" in labels:
                    assert labels["le"] in {*map(str, DURATION_BUCKETS), "+Inf"}


def test_phase_names_match_the_timings_fields() -> None:
    assert set(PHASES) == set(PhaseTimings().as_dict())
