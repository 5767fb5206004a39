"""Against a real Alertmanager: an incident fires an alert, the resolve ends it."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from uptime_probe.probe.model import Status
from uptime_probe.state.incidents import IncidentTracker

from .alertmanager_process import Alertmanager, running_alertmanager
from .conftest import MakeDispatcher
from .factories import config, outcome
from .receiver import POLL_SECONDS

pytestmark = pytest.mark.e2e
WAIT = 10.0


async def ours(am: Alertmanager, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
    alerts = await am.alerts(session)
    return [a for a in alerts if a["labels"].get("alertname") == "UptimeProbeIncident"]


def ends_at(alert: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(alert["endsAt"])


async def poll(am: Alertmanager, session: aiohttp.ClientSession, want: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = await ours(am, session)
        found = want(seen)
        if found:
            return found
        await asyncio.sleep(POLL_SECONDS * 5)
    raise AssertionError(f"waited {WAIT}s for {what}; alerts: {seen}\n{am.tail()}")


async def test_incident_fires_then_resolves_in_a_real_alertmanager(
    tmp_path: Path, make_dispatcher: MakeDispatcher
) -> None:
    async with running_alertmanager(tmp_path) as am, aiohttp.ClientSession() as session:
        dispatcher, results = make_dispatcher(
            config(
                {"pager": {"kind": "alertmanager", "url": am.url, "reminder_interval": 0.5}},
                {"history_sidebar": ["pager"]},
            ),
        )
        tracker = IncidentTracker([dispatcher.notify])
        await dispatcher.start()
        now = time.time()
        tracker.accept(outcome("history_sidebar", False, now - 1, state=Status.UP, http_status=200))
        tracker.accept(outcome("history_sidebar", False, now, state=Status.DOWN, http_status=200))

        def firing(alerts: list[dict[str, Any]]) -> dict[str, Any] | None:
            active = [a for a in alerts if a["status"]["state"] == "active"]
            return active[0] if len(active) == 1 else None

        alert = await poll(am, session, firing, "the alert to fire")
        assert alert["labels"] == {
            "alertname": "UptimeProbeIncident",
            "check": "history_sidebar",
            "location": "eu-west",
            "severity": "page",
        }
        annotations = alert["annotations"]
        assert annotations["reason"] == "empty_history"
        assert annotations["step"] == "conversations"
        assert annotations["summary"].startswith(
            "history_sidebar is DOWN — empty history (HTTP 200) at step conversations, since "
        )
        assert annotations["status_page"] == "http://status.test/#check-history_sidebar"
        assert alert["generatorURL"] == "http://status.test/#check-history_sidebar"

        # Re-posted while firing: Alertmanager sees endsAt move forward.
        first_ends = ends_at(alert)
        await poll(
            am, session, lambda a: a and ends_at(a[0]) > first_ends, "a re-post to move endsAt"
        )

        tracker.accept(outcome("history_sidebar", True, time.time(), state=Status.UP))
        await poll(am, session, lambda a: a == [] or None, "the alert to leave the active set")
        await dispatcher.close(5)
    assert results.of("pager").get("sent", 0) >= 3  # open, at least one re-post, resolve
    assert set(results.of("pager")) == {"sent"}
