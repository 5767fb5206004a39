"""Maintenance windows and dependencies through the web app as served: the write API
(off unless enabled, behind auth), windows in the real Store, the checks JSON, and the
status page rendered by the real app."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from uptime_probe.metrics import CheckMetrics, DaemonMetrics, MetricsExposition
from uptime_probe.probe.model import Status
from uptime_probe.web.server import DaemonControl, ReloadOutcome, build_web_app

from .conftest import MakeClient, MakeHarness
from .harness import Harness, make_config
from .test_status_page import Page

TOKEN = "tok-" + "m" * 40
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = (
    {"name": "login_api"},
    {"name": "checkout", "tags": ["payments"], "depends_on": ["login_api"]},
    {"name": "refunds", "tags": ["payments"]},
)


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


async def served(
    make_harness: MakeHarness, *, lifecycle: bool = True, auth: bool = False, **top: Any
) -> tuple[Harness, TestClient[Any, Any]]:
    """The daemon's web app for a harness, the write API on or off as the config says."""
    server: dict[str, Any] = {"enable_lifecycle": lifecycle}
    if auth:
        server["auth"] = {"bearer_token": TOKEN}
    harness = await make_harness(
        make_config(*CHECKS, defaults={"failure_threshold": 2}, server=server, **top)
    )

    async def reload() -> ReloadOutcome:
        return ReloadOutcome(True, "config reloaded")

    control = DaemonControl(
        exposition=MetricsExposition(
            CheckMetrics("test"), DaemonMetrics(CollectorRegistry(auto_describe=True))
        ),
        readiness=lambda: (True, "ready"),
        reload=reload,
        enable_lifecycle=lambda: harness.config.server.enable_lifecycle,
        status=harness,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(build_web_app(control), host="127.0.0.1"))
    await client.start_server()
    return harness, client


async def test_the_write_api_is_off_unless_enabled(make_harness: MakeHarness) -> None:
    harness, client = await served(make_harness, lifecycle=False)
    try:
        opened = await client.post(
            "/api/v1/maintenance", json={"checks": ["checkout"], "duration": "30m"}
        )
        ended = await client.delete("/api/v1/maintenance/api-000000000000")
        assert (opened.status, ended.status) == (403, 403)
        assert (await opened.json())["error"]["code"] == "writes_disabled"
        assert list(harness.maintenance.windows()) == []
        assert await harness.store.windows(ending_after=0) == []
        listed = await client.get("/api/v1/maintenance")  # reading stays open
        assert listed.status == 200
    finally:
        await client.close()


async def test_the_write_api_is_behind_auth(make_harness: MakeHarness) -> None:
    harness, client = await served(make_harness, auth=True)
    try:
        body = {"checks": ["checkout"], "duration": "30m"}
        denied = await client.post("/api/v1/maintenance", json=body)
        assert denied.status == 401
        assert list(harness.maintenance.windows()) == []
        allowed = await client.post("/api/v1/maintenance", json=body, headers=BEARER)
        assert allowed.status == 201
        window_id = (await allowed.json())["id"]
        assert (await client.delete(f"/api/v1/maintenance/{window_id}")).status == 401
    finally:
        await client.close()


async def test_a_pipeline_opens_a_window_and_ends_it_early(make_harness: MakeHarness) -> None:
    harness, client = await served(make_harness)
    try:
        before = time.time()
        response = await client.post(
            "/api/v1/maintenance",
            json={"name": "deploy_1234", "tags": ["payments"], "duration": "30m",
                  "description": "release 1234"},
        )  # fmt: skip
        assert response.status == 201, await response.text()
        window = await response.json()
        assert response.headers["Location"] == f"/api/v1/maintenance/{window['id']}"
        assert window["covers"] == ["checkout", "refunds"]
        assert window["source"] == "api"
        assert before <= window["start"] <= time.time()
        assert window["end"] == pytest.approx(window["start"] + 1800)
        # In the store before the answer: a restart keeps it.
        (stored,) = await harness.store.windows(ending_after=time.time())
        assert (stored.id, stored.name, stored.tags) == (window["id"], "deploy_1234", ("payments",))

        checks = {
            c["name"]: c for c in (await (await client.get("/api/v1/checks")).json())["checks"]
        }
        assert checks["checkout"]["maintenance"] == {
            "window": "deploy_1234", "id": window["id"], "until": window["end"],
        }  # fmt: skip
        assert checks["login_api"]["maintenance"] is None
        listed = (await (await client.get("/api/v1/maintenance")).json())["windows"]
        assert [(w["id"], w["open"]) for w in listed] == [(window["id"], True)]

        # Down inside the window: state down, no incident.
        t = time.time()
        harness.run("refunds", Status.DOWN, at=t, reason="http_5xx")
        harness.run("refunds", Status.DOWN, at=t + 0.001, reason="http_5xx")
        assert harness.check_states.state_of("refunds") is Status.DOWN
        assert harness.incidents.open_incidents() == []

        ended = await client.delete(f"/api/v1/maintenance/{window['id']}")
        assert ended.status == 200
        assert (await ended.json())["end"] <= time.time()
        assert await harness.store.windows(ending_after=time.time()) == []
        checks = {
            c["name"]: c for c in (await (await client.get("/api/v1/checks")).json())["checks"]
        }
        assert checks["refunds"]["maintenance"] is None
        # Still down after it: the next down run opens the incident.
        harness.run("refunds", Status.DOWN, at=time.time() + 1, reason="http_5xx")
        assert [i.check for i in harness.incidents.open_incidents()] == ["refunds"]
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"checks": ["checkout"]}, "give either duration (like 30m) or end"),
        ({"duration": "30m"}, "give checks or tags to cover"),
        ({"checks": ["nope"], "duration": "30m"}, "unknown check 'nope'"),
        ({"tags": ["nope"], "duration": "30m"}, "no check has the tag 'nope'"),
        ({"checks": ["checkout"], "duration": "soon"}, "duration: invalid duration 'soon'"),
        ({"checks": ["checkout"], "duration": "8d"}, "a window lasts at most 7 days"),
        ({"checks": ["checkout"], "duration": "1h", "start": "2020-01-01T00:00:00Z"},
         "start is in the past"),
        ({"checks": ["checkout"], "end": "2030-01-01T00:00:00"}, "end must be ISO 8601 with an offset"),
        ({"checks": ["checkout"], "duration": "1h", "name": "Deploy 1"}, "name must be a slug"),
        ({"checks": ["checkout"], "duration": "1h", "silence": True}, "unknown field 'silence'"),
        ([], "the body must be a JSON object"),
    ],
)  # fmt: skip
async def test_a_bad_request_is_refused_with_its_reason(
    make_harness: MakeHarness, body: Any, message: str
) -> None:
    harness, client = await served(make_harness)
    try:
        response = await client.post("/api/v1/maintenance", json=body)
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "invalid_parameter"
        assert message in error["message"]
        assert list(harness.maintenance.windows()) == []
    finally:
        await client.close()


async def test_config_windows_cannot_be_deleted_and_unknown_ones_are_404(
    make_harness: MakeHarness,
) -> None:
    t = time.time()
    window = {
        "name": "db_upgrade",
        "checks": ["refunds"],
        "start": iso(t - 60),
        "end": iso(t + 3600),
    }
    _harness, client = await served(make_harness, maintenance=[window])
    try:
        assert (await client.delete("/api/v1/maintenance/db_upgrade")).status == 409
        assert (await client.delete("/api/v1/maintenance/api-123")).status == 404
    finally:
        await client.close()


async def test_the_page_shows_maintenance_and_what_a_dependency_holds_back(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    t = time.time()
    windows = [
        {"name": "db_upgrade", "description": "PostgreSQL 17", "checks": ["refunds"],
         "start": iso(t - 60), "end": iso(t + 3600)},
        {"name": "weekly", "tags": ["payments"], "cron": "0 3 * * 0", "duration": "1h"},
    ]  # fmt: skip
    harness, client = await served(make_harness, maintenance=windows)
    try:
        for at in (t - 2, t - 1):
            harness.run("login_api", Status.DOWN, at=at, reason="connect_refused")
            harness.run("checkout", Status.DOWN, at=at + 0.1, reason="http_5xx")
            harness.run("refunds", Status.DOWN, at=at + 0.2, reason="http_5xx")
        await harness.flush()
        page = Page(await (await client.get("/")).text())

        refunds = page.by_id("check-refunds")
        assert refunds.attrs["data-state"] == "down"  # monitoring goes on
        assert refunds.attrs["data-maintenance"] == "db_upgrade"
        until = datetime.fromtimestamp(t + 3600, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        assert f"Under maintenance (db_upgrade) until {until}" in page.text_of("check-refunds")

        checkout = page.by_id("check-checkout")
        assert checkout.attrs["data-affected-by"] == "login_api"
        assert "Affected by login_api" in page.text_of("check-checkout")

        (incident,) = harness.incidents.open_incidents()  # login_api's only
        assert incident.held_back == ("checkout",)
        assert "Holding back: checkout" in page.text_of(f"incident-{incident.id}")

        listed = [
            (e.attrs["data-window"], e.attrs["data-open"])
            for e in page.elements
            if "data-window" in e.attrs
        ]
        assert listed[0] == ("db_upgrade", "true")  # open now, first
        assert ("weekly", "false") in listed  # upcoming within 7 days
        # Outside the window, login_api and checkout are down for users (held back is only
        # alerting): the banner says so; refunds, under maintenance, is counted apart.
        assert page.by_id("banner").attrs["data-banner"] == "major_outage"

        api = await (await client.get("/api/v1/checks")).json()
        checks = {c["name"]: c for c in api["checks"]}
        assert checks["checkout"]["affected_by"] == ["login_api"]
        assert checks["refunds"]["affected_by"] == []
        incidents = (await (await client.get("/api/v1/incidents")).json())["incidents"]
        assert [i["held_back"] for i in incidents] == [["checkout"]]
    finally:
        await client.close()


async def test_the_banner_says_maintenance_when_only_covered_checks_are_down(
    make_harness: MakeHarness,
) -> None:
    t = time.time()
    window = {"name": "db_upgrade", "tags": ["payments"], "start": iso(t - 60), "end": iso(t + 60)}
    harness, client = await served(make_harness, maintenance=[window])
    try:
        harness.run("login_api", Status.UP, at=t - 1)
        for at in (t - 2, t - 1):
            harness.run("refunds", Status.DOWN, at=at, reason="http_5xx")
        page = Page(await (await client.get("/")).text())
        assert page.by_id("banner").attrs["data-banner"] == "maintenance"
        assert page.text_of("banner") == "Maintenance in progress"
    finally:
        await client.close()
