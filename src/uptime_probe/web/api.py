"""The JSON API (documented with examples in docs/api.md).

    GET /api/v1/checks                           every check: state, last run, interval, slo
    GET /api/v1/checks/{name}/runs?since=&limit= one check's run history, newest first
    GET /api/v1/incidents?since=&check=&status=&limit=
                                                  incidents, newest first
    GET /api/v1/maintenance                      windows open now or within 7 days
    POST /api/v1/maintenance                     open a window (write API)
    DELETE /api/v1/maintenance/{id}              end a window opened through the API early

Errors are JSON too: `{"error": {"code": "...", "message": "..."}}` with 400 for a bad
parameter, 404 for an unknown check, 503 when the history store cannot be read.

The write API changes what alerts: it answers 403 unless `server.enable_lifecycle` is
on (as `POST /-/reload` does), and like every path but /metrics, /healthz and /readyz it
sits behind `server.auth` when that is set.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from uptime_probe.config.model import CheckConfig
from uptime_probe.config.types import SLUG_PATTERN
from uptime_probe.config.units import parse_duration
from uptime_probe.probe.artifacts import ArtifactStore, kept_trace
from uptime_probe.probe.model import describe_reason
from uptime_probe.report import incident_json
from uptime_probe.sinks import RunOutcome
from uptime_probe.state.incidents import Incident, IncidentStatus, failed_artifact
from uptime_probe.state.maintenance import Opening, Window, WindowSource, new_window_id
from uptime_probe.state.store import RunRow
from uptime_probe.web.offload import in_web_thread
from uptime_probe.web.status import (
    HISTORY_ERRORS,
    MAINTENANCE_HORIZON_DAYS,
    LiveCheck,
    StatusSource,
    artifact_url,
    live_checks,
    open_incident_by_check,
    page_banner,
)

log = structlog.get_logger("uptime_probe.web.api")

DEFAULT_RUNS_SINCE = 86400.0
DEFAULT_RUNS_LIMIT = 100
MAX_RUNS_LIMIT = 1000
DEFAULT_INCIDENTS_SINCE = 30 * 86400.0
DEFAULT_INCIDENTS_LIMIT = 100
MAX_INCIDENTS_LIMIT = 1000
# An API window must end within this: a pipeline that dies before its DELETE must not
# mute a check for good.
MAX_WINDOW_SECONDS = 7 * 86400.0
# How far in the past an API window may start (the caller's clock may lag ours).
START_SLACK_SECONDS = 300.0
MAX_BODY_BYTES = 64 * 1024
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


def last_run_json(
    outcome: RunOutcome | None, files: ArtifactStore | None = None
) -> dict[str, Any] | None:
    if outcome is None:
        return None
    result = outcome.result
    reason = result.shown_reason
    return {
        "status": result.status.value,
        "reason": reason,
        "reason_text": describe_reason(reason, result.http_status) if reason else None,
        "step": result.failed_step,
        "message": result.message,
        "http_status": result.http_status,
        "duration_seconds": round(result.duration_seconds, 6),
        "at": result.started_at,
        "artifact_url": artifact_url(failed_artifact(result)),
        "trace_url": artifact_url(kept_trace(failed_artifact(result), files)),
    }


def check_json(live: LiveCheck, files: ArtifactStore | None = None) -> dict[str, Any]:
    check, state, incident, maintenance = live.check, live.state, live.incident, live.maintenance
    return {
        "name": check.name,
        "description": check.description,
        "state": state.value if state is not None else None,
        "interval_seconds": check.interval_seconds,
        "timeout_seconds": check.timeout_seconds,
        "slo": check.slo_objective,
        "last_run": last_run_json(live.outcome, files),
        "open_incident": incident.id if incident is not None else None,
        "tags": list(check.tags),
        "depends_on": list(check.depends_on),
        "maintenance": (
            {
                "window": maintenance.window.name,
                "id": maintenance.window.id,
                "until": maintenance.end,
            }
            if maintenance is not None
            else None
        ),
        "affected_by": list(live.affected_by),
    }


def window_json(
    window: Window, covers: frozenset[str], opening: Opening | None, now: float
) -> dict[str, Any]:
    """A window, with its next (or current) opening when it has one."""
    return {
        "id": window.id,
        "name": window.name,
        "source": window.source.value,
        "description": window.description,
        "checks": list(window.checks),
        "tags": list(window.tags),
        "covers": sorted(covers),
        "cron": window.cron,
        "timezone": window.timezone if window.cron is not None else None,
        "duration_seconds": window.duration,
        "start": opening.start if opening is not None else window.start,
        "end": opening.end if opening is not None else window.end,
        "open": opening is not None and opening.start <= now < opening.end,
    }


def run_json(run: RunRow) -> dict[str, Any]:
    return {
        "at": run.started_at,
        "status": run.status,
        "reason": run.reason,  # a degraded run's cause too (store.py writes shown_reason)
        "reason_text": describe_reason(run.reason, run.http_status) if run.reason else None,
        "step": run.step,
        "http_status": run.http_status,
        "duration_seconds": round(run.duration_seconds, 6),
        # How late the daemon started it: a busy prober, not a slow target (None: not kept).
        "lag_seconds": round(run.lag_seconds, 6) if run.lag_seconds is not None else None,
        "message": run.message,
    }


def incident_api_json(incident: Incident, files: ArtifactStore | None) -> dict[str, Any]:
    """An incident as `uptime-probe incidents --format json` has it, and where its
    screenshot and the trace beside it (if `files` kept one) are served."""
    shared = incident_json(incident, files)
    return {
        **shared,
        "artifact_url": artifact_url(incident.artifact),
        "trace_url": artifact_url(shared["trace"]),
    }


class StatusApi:
    def __init__(
        self,
        source: StatusSource,
        *,
        writes_enabled: Callable[[], bool] = lambda: False,
        files: ArtifactStore | None = None,
    ) -> None:
        self.source = source
        self._writes_enabled = writes_enabled
        self.files = files  # runs' screenshots and traces: a trace is linked if kept

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v1/checks", self.checks)
        app.router.add_get("/api/v1/checks/{name}/runs", self.runs)
        app.router.add_get("/api/v1/incidents", self.incidents)
        app.router.add_get("/api/v1/maintenance", self.maintenance)
        app.router.add_post("/api/v1/maintenance", self.open_window)
        app.router.add_delete("/api/v1/maintenance/{id}", self.end_window)

    async def checks(self, _request: web.Request) -> web.Response:
        incidents = open_incident_by_check(self.source)
        maintained = self.source.maintenance.checks_in_maintenance(time.time())
        # Building and encoding every check's entry is O(checks) CPU work (60 ms for 1,000
        # on a loaded machine, tests/faults): off the event loop, as the status page does.
        text = await in_web_thread(
            self._checks_text, self.source.config.checks, incidents, maintained
        )
        return web.Response(
            text=text, content_type="application/json", headers={"Cache-Control": "no-store"}
        )

    def _checks_text(
        self,
        checks: list[CheckConfig],
        incidents: dict[str, Incident],
        maintained: dict[str, Opening],
    ) -> str:
        source = self.source
        banner = page_banner(source, checks, maintained)
        return json.dumps(
            {
                "status": {"indicator": banner.value, "description": banner.text},
                "checks": [
                    check_json(live, self.files)
                    for live in live_checks(source, checks, incidents, maintained)
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
        # Linking each trace looks for its file: off the event loop.
        shown = await in_web_thread(
            lambda: [incident_api_json(incident, self.files) for incident in found[:limit]]
        )
        return answer({"incidents": shown})

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

    # -- maintenance windows -----------------------------------------------------------

    async def maintenance(self, _request: web.Request) -> web.Response:
        now = time.time()
        calendar = self.source.maintenance
        openings = calendar.openings(now, MAINTENANCE_HORIZON_DAYS * 86400)
        return answer(
            {
                "windows": [
                    window_json(o.window, calendar.covers(o.window), o, now) for o in openings
                ]
            }
        )

    async def open_window(self, request: web.Request) -> web.Response:
        refused = self._refuse_writes()
        if refused is not None:
            return refused
        now = time.time()
        try:
            window = self._window_from(await _json_body(request), now)
        except BadParameter as exc:
            return error(400, "invalid_parameter", str(exc))
        try:
            await self.source.store.save_window(window)
        except HISTORY_ERRORS as exc:
            log.error("maintenance_window_not_saved", error=str(exc))
            return error(503, "store_unavailable", "the window cannot be stored right now")
        calendar = self.source.maintenance
        calendar.put(window)
        log.info(
            "maintenance_window_opened",
            window=window.id,
            name=window.name,
            checks=sorted(calendar.covers(window)),
            start=window.start,
            end=window.end,
        )
        body = window_json(window, calendar.covers(window), None, now)
        response = answer(body, 201)
        response.headers["Location"] = f"/api/v1/maintenance/{window.id}"
        return response

    async def end_window(self, request: web.Request) -> web.Response:
        refused = self._refuse_writes()
        if refused is not None:
            return refused
        window_id = request.match_info["id"]
        calendar = self.source.maintenance
        window = calendar.api_window(window_id)
        if window is None:
            if any(w.id == window_id for w in calendar.windows()):
                return error(
                    409,
                    "config_window",
                    f"window {window_id!r} comes from the config: remove or change it there",
                )
            return error(404, "unknown_window", f"no open or upcoming window {window_id!r}")
        now = time.time()
        if window.end is not None and window.end > now:
            # Not started yet: it never opens. Started: it ends now.
            ended = replace(window, end=max(window.start or now, now))
            try:
                await self.source.store.save_window(ended)
            except HISTORY_ERRORS as exc:
                log.error("maintenance_window_not_saved", error=str(exc))
                return error(503, "store_unavailable", "the window cannot be stored right now")
            calendar.put(ended)
            log.info("maintenance_window_ended", window=window.id, name=window.name)
            window = ended
        return answer(window_json(window, calendar.covers(window), None, now))

    def _refuse_writes(self) -> web.Response | None:
        if self._writes_enabled():
            return None
        return error(
            403,
            "writes_disabled",
            "the write API is off: set server.enable_lifecycle: true (and server.auth)",
        )

    def _window_from(self, body: Any, now: float) -> Window:
        if not isinstance(body, dict):
            raise BadParameter("the body must be a JSON object")
        known = {"name", "description", "checks", "tags", "start", "duration", "end"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise BadParameter(f"unknown field {unknown[0]!r}; known: {', '.join(sorted(known))}")
        name = body.get("name", "api")
        if not isinstance(name, str) or not re.fullmatch(SLUG_PATTERN, name) or len(name) > 63:
            raise BadParameter(f"name must be a slug like deploy_1234, got {name!r}")
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 500:
            raise BadParameter("description must be a string of at most 500 characters")
        checks = _names(body, "checks")
        tags = _names(body, "tags")
        if not checks and not tags:
            raise BadParameter("give checks or tags to cover")
        config = self.source.config
        known_checks = {check.name for check in config.checks}
        for name_ in checks:
            if name_ not in known_checks:
                raise BadParameter(f"unknown check {name_!r}")
        known_tags = {tag for check in config.checks for tag in check.tags}
        for tag in tags:
            if tag not in known_tags:
                raise BadParameter(f"no check has the tag {tag!r}")
        start = _instant(body["start"], "start") if "start" in body else now
        if start < now - START_SLACK_SECONDS:
            raise BadParameter("start is in the past: leave it out to start now")
        if ("duration" in body) == ("end" in body):
            raise BadParameter("give either duration (like 30m) or end")
        if "duration" in body:
            raw = body["duration"]
            try:
                duration = parse_duration(raw) if isinstance(raw, str | int | float) else None
            except ValueError as exc:
                raise BadParameter(f"duration: {exc}") from None
            if duration is None or isinstance(raw, bool):
                raise BadParameter("duration must be a duration like 30m")
            end = start + duration
        else:
            end = _instant(body["end"], "end")
        if end <= start:
            raise BadParameter("end must be after start")
        if end - start > MAX_WINDOW_SECONDS:
            raise BadParameter(
                f"a window lasts at most {MAX_WINDOW_SECONDS / 86400:g} days; "
                "open a new one if the work runs on"
            )
        return Window(
            id=new_window_id(),
            name=name,
            source=WindowSource.API,
            checks=checks,
            tags=tags,
            description=description,
            start=start,
            end=end,
            created_at=now,
        )


async def _json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadParameter("the body is too large")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise BadParameter("the body is too large")
    try:
        return json.loads(raw)
    except ValueError:
        raise BadParameter("the body must be JSON") from None


def _names(body: dict[str, Any], key: str) -> tuple[str, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadParameter(f"{key} must be a list of names")
    return tuple(dict.fromkeys(value))


def _instant(value: Any, key: str) -> float:
    """ISO 8601 with an offset, as in probes.yaml."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
        if moment is not None and moment.utcoffset() is not None:
            return moment.timestamp()
    raise BadParameter(
        f"{key} must be ISO 8601 with an offset, like 2025-12-03T06:00:00+01:00 or ...Z"
    )
