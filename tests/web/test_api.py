"""The JSON API against a real Store: shapes, filters and errors (docs/api.md)."""

from __future__ import annotations

import pytest

from tests.test_report import INCIDENT_KEYS
from uptime_probe.probe.model import Status
from uptime_probe.web.api import BadParameter, parse_limit, parse_since

from .conftest import MakeClient, MakeHarness
from .harness import FLAPS, HOSTILE, Harness, flapping, make_config, now

DAY = 86400.0

LAST_RUN_KEYS = {
    "status",
    "reason",
    "reason_text",
    "step",
    "message",
    "http_status",
    "duration_seconds",
    "at",
    "artifact_url",
    "trace_url",
}
RUN_KEYS = {
    "at",
    "status",
    "reason",
    "reason_text",
    "step",
    "http_status",
    "duration_seconds",
    "lag_seconds",
    "message",
}


async def history(make_harness: MakeHarness, *, flush: bool = True) -> tuple[Harness, float]:
    config = make_config(
        {"name": "chat_load", "description": "Chat page loads", "interval": "15s"},
        {"name": "history_sidebar", "description": "History is not empty", "slo": 0.995},
        {"name": "never_ran"},
        location="eu-1",
    )
    harness = await make_harness(config)
    t = now()
    harness.run("chat_load", Status.UP, at=t - 5 * DAY)
    harness.run("chat_load", Status.DOWN, at=t - 2 * DAY, reason="http_5xx", http_status=503)
    harness.run("chat_load", Status.DOWN, at=t - 2 * DAY + 30, reason="http_5xx", http_status=503)
    harness.run("chat_load", Status.UP, at=t - 2 * DAY + 60)
    for i in range(5):
        harness.run("chat_load", Status.UP, at=t - 50 + i * 10, duration=0.01 * (i + 1))
    harness.run("history_sidebar", Status.UP, at=t - 20)
    for at in (t - 10, t - 5):
        harness.run(
            "history_sidebar",
            Status.DOWN,
            at=at,
            reason="empty_history",
            step="conversations",
            message="conversations: length(items) = 0, expected > 0",
            sample=HOSTILE,
        )
    if flush:
        await harness.flush()
    return harness, t


async def test_checks(make_harness: MakeHarness, make_client: MakeClient) -> None:
    harness, t = await history(make_harness)
    client = await make_client(harness)
    response = await client.get("/api/v1/checks")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    body = await response.json()
    # One of the two checks with a state is down (never_ran has none): not most.
    assert body["status"] == {"indicator": "partial_outage", "description": "Partial outage"}
    checks = {check["name"]: check for check in body["checks"]}
    assert list(checks) == ["chat_load", "history_sidebar", "never_ran"]  # config order

    chat = checks["chat_load"]
    assert chat["description"] == "Chat page loads"
    assert chat["state"] == "up"
    assert chat["interval_seconds"] == 15.0
    assert chat["timeout_seconds"] == 10.0
    assert chat["slo"] == 0.999
    assert chat["open_incident"] is None
    assert set(chat["last_run"]) == LAST_RUN_KEYS
    assert chat["last_run"]["status"] == "up"
    assert chat["last_run"]["reason"] is None
    assert chat["last_run"]["duration_seconds"] == 0.05

    down = checks["history_sidebar"]
    assert down["state"] == "down"
    assert down["slo"] == 0.995
    assert down["last_run"] == {
        "status": "down",
        "reason": "empty_history",
        "reason_text": "empty history (HTTP 200)",
        "step": "conversations",
        "message": "conversations: length(items) = 0, expected > 0",
        "http_status": 200,
        "duration_seconds": 0.05,
        "at": t - 5,
        "artifact_url": None,
        "trace_url": None,
    }
    (incident,) = harness.incidents.open_incidents()
    assert down["open_incident"] == incident.id

    pending = checks["never_ran"]
    assert pending["state"] is None
    assert pending["last_run"] is None
    assert pending["description"] == ""


async def test_runs(make_harness: MakeHarness, make_client: MakeClient) -> None:
    harness, t = await history(make_harness)
    client = await make_client(harness)

    body = await (await client.get("/api/v1/checks/chat_load/runs")).json()
    # Default: the last 24 hours, newest first.
    assert body["check"] == "chat_load"
    assert body["limit"] == 100
    assert body["since"] == pytest.approx(t - DAY, abs=5)
    assert [run["at"] for run in body["runs"]] == [t - 10, t - 20, t - 30, t - 40, t - 50]
    assert all(set(run) == RUN_KEYS for run in body["runs"])

    week = await (await client.get("/api/v1/checks/chat_load/runs?since=7d")).json()
    assert len(week["runs"]) == 9
    failed = [run for run in week["runs"] if run["status"] == "down"]
    assert failed[0] == {
        "at": t - 2 * DAY + 30,
        "status": "down",
        "reason": "http_5xx",
        "reason_text": "a server error status (HTTP 503)",
        "step": "fetch",
        "http_status": 503,
        "duration_seconds": 0.05,
        "lag_seconds": 0.0,
        "message": "failed",
    }

    epoch = await (await client.get(f"/api/v1/checks/chat_load/runs?since={t - 35:.3f}")).json()
    assert [run["at"] for run in epoch["runs"]] == [t - 10, t - 20, t - 30]

    limited = await (await client.get("/api/v1/checks/chat_load/runs?since=30d&limit=2")).json()
    assert [run["at"] for run in limited["runs"]] == [t - 10, t - 20]

    empty = await (await client.get("/api/v1/checks/never_ran/runs")).json()
    assert empty["runs"] == []


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/checks/nope/runs", 404, "unknown_check"),
        ("/api/v1/checks/%3Cscript%3E/runs", 404, "unknown_check"),
        ("/api/v1/checks/chat_load/runs?since=yesterday", 400, "invalid_parameter"),
        ("/api/v1/checks/chat_load/runs?since=-5", 400, "invalid_parameter"),
        ("/api/v1/checks/chat_load/runs?since=nan", 400, "invalid_parameter"),
        ("/api/v1/checks/chat_load/runs?since=inf", 400, "invalid_parameter"),
        ("/api/v1/checks/chat_load/runs?since=1e9", 400, "invalid_parameter"),
        ("/api/v1/checks/chat_load/runs?since=0s", 400, "invalid_parameter"),
        ("/api/v1/checks/chat_load/runs?limit=0", 400, "invalid_parameter"),
        ("/api/v1/checks/chat_load/runs?limit=abc", 400, "invalid_parameter"),
        ("/api/v1/checks/chat_load/runs?limit=1001", 400, "invalid_parameter"),
        ("/api/v1/incidents?status=closed", 400, "invalid_parameter"),
        ("/api/v1/incidents?since=soon", 400, "invalid_parameter"),
        ("/api/v1/incidents?limit=-1", 400, "invalid_parameter"),
        ("/api/v1/nothing", 404, None),
    ],
)
async def test_errors(
    make_harness: MakeHarness, make_client: MakeClient, path: str, status: int, code: str | None
) -> None:
    harness, _t = await history(make_harness)
    client = await make_client(harness)
    response = await client.get(path)
    assert response.status == status
    if code is not None:
        body = await response.json()
        assert body["error"]["code"] == code
        assert body["error"]["message"]


async def test_incidents(make_harness: MakeHarness, make_client: MakeClient) -> None:
    harness, t = await history(make_harness)
    client = await make_client(harness)

    async def incidents(query: str = "") -> list[dict[str, object]]:
        response = await client.get(f"/api/v1/incidents{query}")
        assert response.status == 200, await response.text()
        found: list[dict[str, object]] = (await response.json())["incidents"]
        return found

    every = await incidents()
    assert [(i["check"], i["status"]) for i in every] == [
        ("history_sidebar", "investigating"),  # newest first
        ("chat_load", "resolved"),
    ]
    assert all(set(i) == INCIDENT_KEYS | {"artifact_url", "trace_url"} for i in every)
    open_one, resolved = every
    assert open_one["location"] == "eu-1"
    assert open_one["first_reason"] == "empty_history"
    assert open_one["response_sample"] == HOSTILE  # JSON carries the text as it was
    assert open_one["opened_at"] == t - 5
    assert open_one["first_failure_at"] == t - 10
    assert open_one["time_to_detect_seconds"] == 5.0
    assert resolved["resolved_at"] == t - 2 * DAY + 60
    assert [e["status"] for e in resolved["timeline"]] == [  # type: ignore[attr-defined]
        "investigating",
        "monitoring",
        "resolved",
    ]

    assert [i["check"] for i in await incidents("?status=open")] == ["history_sidebar"]
    assert [i["check"] for i in await incidents("?status=resolved")] == ["chat_load"]
    assert [i["check"] for i in await incidents("?check=chat_load")] == ["chat_load"]
    assert await incidents("?check=unknown") == []
    # Resolved before `since` is left out; open ones are always in.
    assert [i["check"] for i in await incidents("?since=1h")] == ["history_sidebar"]
    assert await incidents("?since=1h&status=resolved") == []
    assert [i["check"] for i in await incidents("?limit=1")] == ["history_sidebar"]


async def test_incidents_are_live_before_the_store_writes_them(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    """The store's writer batches; an incident opened a moment ago is in the API already."""
    harness, _t = await history(make_harness, flush=False)
    client = await make_client(harness)
    body = await (await client.get("/api/v1/incidents?status=open")).json()
    assert [i["check"] for i in body["incidents"]] == ["history_sidebar"]


async def test_monitoring_incident_shows_its_latest_status(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    config = make_config({"name": "flaky", "success_threshold": 2})
    harness = await make_harness(config)
    t = now()
    harness.run("flaky", Status.DOWN, at=t - 3, reason="timeout")
    harness.run("flaky", Status.DOWN, at=t - 2, reason="timeout")
    await harness.flush()
    harness.run("flaky", Status.UP, at=t - 1)  # not flushed: the tracker is newer
    client = await make_client(harness)
    (incident,) = (await (await client.get("/api/v1/incidents")).json())["incidents"]
    assert incident["status"] == "monitoring"
    checks = (await (await client.get("/api/v1/checks")).json())["checks"]
    assert checks[0]["state"] == "down"
    assert checks[0]["last_run"]["status"] == "up"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, 1000.0 - 60),
        ("", 1000.0 - 60),
        ("90s", 910.0),
        ("1h", 1000.0 - 3600),
        ("7d", 1000.0 - 7 * 86400),
        ("250ms", 999.75),
        ("500", 500.0),
        ("1764740000.25", 1764740000.25),
        (" 12 ", 12.0),
    ],
)
def test_parse_since(text: str | None, expected: float) -> None:
    assert parse_since(text, 1000.0, 60.0) == expected


@pytest.mark.parametrize("text", ["-1", "1e5", "nan", "inf", "0s", "1w", "1h30", "x" * 100])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(BadParameter, match="since must be"):
        parse_since(text, 1000.0, 60.0)


@pytest.mark.parametrize(("text", "expected"), [(None, 7), ("1", 1), ("50", 50)])
def test_parse_limit(text: str | None, expected: int) -> None:
    assert parse_limit(text, 7, 50) == expected


@pytest.mark.parametrize("text", ["0", "51", "-1", "1.5", "ten"])
def test_parse_limit_rejects(text: str) -> None:
    with pytest.raises(BadParameter, match="limit must be"):
        parse_limit(text, 7, 50)


async def test_a_flapping_incident_is_one_counted_entry(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    start = now() - 2 * DAY
    harness = await flapping(make_harness, start)
    client = await make_client(harness)
    response = await client.get("/api/v1/incidents?check=flappy")
    assert response.status == 200
    (incident,) = (await response.json())["incidents"]
    assert incident["status"] == "investigating"
    opened, counted = incident["timeline"]
    assert (opened["kind"], opened["count"], opened["until"]) == ("update", 1, None)
    assert (counted["kind"], counted["count"]) == ("flapping", FLAPS)
    assert (counted["at"], counted["until"]) == (start + 20, start + 10 * (FLAPS + 1))
    assert counted["message"].startswith(f"Flapped {FLAPS:,} times between")


@pytest.mark.parametrize(
    ("step_reason", "reason", "reason_text"),
    [
        ("slow", "slow", "slower than expected"),  # above max_latency
        ("stale_data", "stale_data", "stale data (HTTP 200)"),  # a severity: warning assertion
        (None, "slow", "slower than expected"),  # as a run from before the cause was kept
    ],
)
async def test_a_degraded_run_says_why_as_the_page_and_the_terminal_do(
    make_harness: MakeHarness,
    make_client: MakeClient,
    step_reason: str | None,
    reason: str,
    reason_text: str,
) -> None:
    """A degraded run has no failure reason, but it has a cause: it was slow, or a warning
    failed. The API says so in `reason` and `reason_text`, in the latest run and in the
    history alike (it said `null`)."""
    harness = await make_harness(make_config({"name": "chat_load"}))
    t = now()
    harness.run(
        "chat_load",
        Status.DEGRADED,
        at=t - 5,
        reason=step_reason,
        step="page",
        message="page: took 3.012s, above max_latency 2s",
        duration=3.012,
    )
    await harness.flush()
    client = await make_client(harness)

    checks = (await (await client.get("/api/v1/checks")).json())["checks"]
    last = checks[0]["last_run"]
    assert (last["status"], last["reason"], last["step"]) == ("degraded", reason, "page")
    assert last["reason_text"] == reason_text

    (run,) = (await (await client.get("/api/v1/checks/chat_load/runs")).json())["runs"]
    assert (run["status"], run["reason"], run["step"]) == ("degraded", reason, "page")
    assert run["reason_text"] == reason_text
    assert run["message"] == "page: took 3.012s, above max_latency 2s"
