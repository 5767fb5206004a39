"""The JSON API (documented with examples in docs/api.md).

    GET /api/v1/checks                           every check: state, last run, interval, slo
    GET /api/v1/checks/{name}/runs?since=&limit= one check's run history, newest first
    GET /api/v1/incidents?since=&check=&status=&limit=
                                                  incidents, newest first

Errors are JSON too: `{"error": {"code": "...", "message": "..."}}` with 400 for a bad
parameter, 404 for an unknown check, 503 when the history store cannot be read.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import structlog
from aiohttp import web

from uptime_probe.config.model import CheckConfig
from uptime_probe.config.units import parse_duration
from uptime_probe.probe.model import Status, describe_reason
from uptime_probe.report import incident_json
from uptime_probe.sinks import RunOutcome
from uptime_probe.state.incidents import Incident, IncidentStatus, failed_artifact
from uptime_probe.state.store import RunRow
from uptime_probe.web.offload import in_web_thread
from uptime_probe.web.status import (
    HISTORY_ERRORS,
    StatusSource,
    artifact_url,
    check_state,
    derive_banner,
    open_incident_by_check,
)

log = structlog.get_logger("uptime_probe.web.api")

DEFAULT_RUNS_SINCE = 86400.0
DEFAULT_RUNS_LIMIT = 100
MAX_RUNS_LIMIT = 1000
DEFAULT_INCIDENTS_SINCE = 30 * 86400.0
DEFAULT_INCIDENTS_LIMIT = 100
MAX_INCIDENTS_LIMIT = 1000
INCIDENT_FILTERS = {
    "open": frozenset({IncidentStatus.INVESTIGATING, IncidentStatus.MONITORING}),
    "resolved": frozenset({IncidentStatus.RESOLVED}),
}

# Plain epoch seconds: digits, an optional fraction. No sign, exponent, nan or inf.
_EPOCH = re.compile(r"^\d{1,12}(?:\.\d{1,9})?$")


class BadParameter(ValueError):
    pass


def parse_since(value: str | None, now: float, default: float) -> float:
    """`since` as epoch seconds (`1764740000`) or a duration back from now (`1h`, `7d`)."""
    if value is None or not value.strip():
        return now - default
    text = value.strip()
    if _EPOCH.match(text):
        return float(text)
    try:
        return now - parse_duration(text)
    except ValueError:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise BadParameter(
            f"since must be epoch seconds (like 1764740000) or a duration "
            f"(like 90s, 30m, 1h, 7d), got {shown!r}"
        ) from None


def parse_limit(value: str | None, default: int, maximum: int) -> int:
    if value is None or not value.strip():
        return default
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        shown = text if len(text) <= 20 else text[:17] + "..."
        raise BadParameter(f"limit must be a whole number from 1 to {maximum}, got {shown!r}")
    return int(text)


def answer(data: dict[str, Any], status: int = 200) -> web.Response:
    # Live state, possibly behind auth: never kept by a browser or a proxy.
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


def error(status: int, code: str, message: str) -> web.Response:
    return answer({"error": {"code": code, "message": message}}, status)


def last_run_json(outcome: RunOutcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    result = outcome.result
    return {
        "status": result.status.value,
        "reason": result.reason,
        "reason_text": (
            describe_reason(result.reason, result.http_status) if result.reason else None
        ),
        "step": result.failed_step,
        "message": result.message,
        "http_status": result.http_status,
        "duration_seconds": round(result.duration_seconds, 6),
        "at": result.started_at,
        "artifact_url": artifact_url(failed_artifact(result)),
    }


def check_json(
    check: CheckConfig,
    state: Status | None,
    outcome: RunOutcome | None,
    incident: Incident | None,
) -> dict[str, Any]:
    return {
        "name": check.name,
        "description": check.description,
        "state": state.value if state is not None else None,
        "interval_seconds": check.interval_seconds,
        "timeout_seconds": check.timeout_seconds,
        "slo": check.slo_objective,
        "last_run": last_run_json(outcome),
        "open_incident": incident.id if incident is not None else None,
    }


def run_json(run: RunRow) -> dict[str, Any]:
    return {
        "at": run.started_at,
        "status": run.status,
        "reason": run.reason,
        "reason_text": describe_reason(run.reason, run.http_status) if run.reason else None,
        "step": run.step,
        "http_status": run.http_status,
        "duration_seconds": round(run.duration_seconds, 6),
        "message": run.message,
    }


def incident_api_json(incident: Incident) -> dict[str, Any]:
    """An incident as `uptime-probe incidents --format json` has it, and where its
    screenshot is served."""
    return {**incident_json(incident), "artifact_url": artifact_url(incident.artifact)}


class StatusApi:
    def __init__(self, source: StatusSource) -> None:
        self.source = source

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v1/checks", self.checks)
        app.router.add_get("/api/v1/checks/{name}/runs", self.runs)
        app.router.add_get("/api/v1/incidents", self.incidents)

    async def checks(self, _request: web.Request) -> web.Response:
        incidents = open_incident_by_check(self.source)
        # Building and encoding every check's entry is O(checks) CPU work (60 ms for 1,000
        # on a loaded machine, tests/faults): off the event loop, as the status page does.
        text = await in_web_thread(self._checks_text, self.source.config.checks, incidents)
        return web.Response(
            text=text, content_type="application/json", headers={"Cache-Control": "no-store"}
        )

    def _checks_text(self, checks: list[CheckConfig], incidents: dict[str, Incident]) -> str:
        source = self.source
        banner = derive_banner(check_state(source, check.name) for check in checks)
        return json.dumps(
            {
                "status": {"indicator": banner.value, "description": banner.text},
                "checks": [
                    check_json(
                        check,
                        check_state(source, check.name),
                        source.latest.get(check.name),
                        incidents.get(check.name),
                    )
                    for check in checks
                ],
            }
        )

    async def runs(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if all(check.name != name for check in self.source.config.checks):
            return error(404, "unknown_check", f"no check named {name!r}")
        try:
            since = parse_since(request.query.get("since"), time.time(), DEFAULT_RUNS_SINCE)
            limit = parse_limit(request.query.get("limit"), DEFAULT_RUNS_LIMIT, MAX_RUNS_LIMIT)
        except BadParameter as exc:
            return error(400, "invalid_parameter", str(exc))
        try:
            rows = await self.source.store.runs(name, since=since, limit=limit)
        except HISTORY_ERRORS as exc:
            log.error("api_history_failed", read="runs", error=str(exc))
            return error(503, "history_unavailable", "the run history cannot be read right now")
        return answer(
            {
                "check": name,
                "since": since,
                "limit": limit,
                "runs": [run_json(row) for row in rows],
            }
        )

    async def incidents(self, request: web.Request) -> web.Response:
        query = request.query
        check = query.get("check") or None
        status = query.get("status") or None
        if status is not None and status not in INCIDENT_FILTERS:
            return error(400, "invalid_parameter", "status must be open or resolved")
        try:
            since = parse_since(query.get("since"), time.time(), DEFAULT_INCIDENTS_SINCE)
            limit = parse_limit(query.get("limit"), DEFAULT_INCIDENTS_LIMIT, MAX_INCIDENTS_LIMIT)
        except BadParameter as exc:
            return error(400, "invalid_parameter", str(exc))
        try:
            found = await self._incidents(since, check, limit)
        except HISTORY_ERRORS as exc:
            log.error("api_history_failed", read="incidents", error=str(exc))
            return error(503, "history_unavailable", "incidents cannot be read right now")
        if status is not None:
            wanted = INCIDENT_FILTERS[status]
            found = [incident for incident in found if incident.status in wanted]
        return answer({"incidents": [incident_api_json(i) for i in found[:limit]]})

    async def _incidents(self, since: float, check: str | None, limit: int) -> list[Incident]:
        """Stored incidents with the live ones laid over them, newest first.

        The store always returns open incidents whatever `since`; asking for that many
        more than `limit` keeps a status filter from cutting resolved ones short. The
        tracker's open incidents are newer than their stored copies (writes are batched).
        """
        store = self.source.store
        stored_open = len(await store.open_incidents())
        stored = await store.incidents(since=since, check=check, limit=limit + stored_open)
        by_id = {incident.id: incident for incident in stored}
        for live in self.source.incidents.open_incidents():
            if check is None or live.check == check:
                by_id[live.id] = live
        return sorted(by_id.values(), key=lambda incident: -incident.opened_at)
