"""The status page: what the daemon knows, read through `StatusSource`, rendered by Jinja2.

The page is server-rendered with autoescape on, so every string a user or a target
supplied (descriptions, messages, response samples, names) reaches the browser as
text. It carries no script at all (it refreshes itself with `<meta http-equiv=refresh>`),
so its Content-Security-Policy can forbid every script; its one inline `<style>`
block is allowed by a per-response nonce.

`web` never imports `app`: the daemon is seen only through the protocols below,
which `app.Daemon` satisfies as it is.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from typing import TYPE_CHECKING, Protocol, TypeVar

import structlog
from aiohttp import web
from markupsafe import Markup

from uptime_probe.config.model import CheckConfig, Config
from uptime_probe.probe.model import CheckResult, Status, describe_reason
from uptime_probe.sinks import RunOutcome
from uptime_probe.state.incidents import Incident, IncidentStatus, failed_artifact
from uptime_probe.state.maintenance import Opening, Window
from uptime_probe.state.store import DailyUptime, RunRow
from uptime_probe.web.offload import in_web_thread

if TYPE_CHECKING:
    from jinja2 import Template

log = structlog.get_logger("uptime_probe.web.status")

REFRESH_SECONDS = 10
ARTIFACTS_PATH = "/artifacts"  # where runs' files (screenshots) are served
UPTIME_DAYS = 90
INCIDENT_DAYS = 30
MAINTENANCE_HORIZON_DAYS = 7  # upcoming windows listed on the page and by the API
SPARKLINE_RUNS = 60
GZIP_MIN_BYTES = 4096
HISTORY_ERRORS = (sqlite3.Error, OSError)


# -- what the web layer reads of the daemon -------------------------------------------


class CheckStateReader(Protocol):
    """The reads of `state.checks.CheckStates` the page and the API use."""

    def state_of(self, check: str) -> Status | None: ...

    def failing_dependencies(self, check: str) -> tuple[str, ...]: ...


class MaintenanceWindows(Protocol):
    """The reads and writes of `state.maintenance.MaintenanceCalendar` the web layer uses."""

    def checks_in_maintenance(self, now: float) -> dict[str, Opening]: ...

    def openings(self, now: float, horizon: float) -> list[Opening]: ...

    def covers(self, window: Window) -> frozenset[str]: ...

    def windows(self) -> Iterable[Window]: ...

    def api_window(self, window_id: str) -> Window | None: ...

    def put(self, window: Window) -> None: ...


class LatestRuns(Protocol):
    def get(self, check: str) -> RunOutcome | None: ...


class OpenIncidents(Protocol):
    def open_incidents(self) -> list[Incident]: ...


class History(Protocol):
    """The reads of `state.store.Store` the page and the API use."""

    async def incidents(
        self, since: float = ..., check: str | None = ..., limit: int = ...
    ) -> list[Incident]: ...

    async def open_incidents(self) -> list[Incident]: ...

    async def runs(self, check: str, since: float = ..., limit: int = ...) -> list[RunRow]: ...

    async def daily_uptime(self, check: str, days: int, now: float) -> list[DailyUptime]: ...

    async def recent_durations(self, check: str, limit: int = ...) -> list[tuple[float, float]]: ...

    @property
    def problem(self) -> str | None:
        """Why runs are not being recorded now (cannot open, writes failing); else None."""

    async def save_window(self, window: Window) -> None: ...


class StatusSource(Protocol):
    """What the status page and the JSON API read of the daemon; `app.Daemon` is one.

    Read on every request, so a reload's new checks, descriptions and auth settings
    show at once.
    """

    @property
    def config(self) -> Config: ...

    @property
    def check_states(self) -> CheckStateReader: ...

    @property
    def latest(self) -> LatestRuns: ...

    @property
    def incidents(self) -> OpenIncidents: ...

    @property
    def store(self) -> History: ...

    @property
    def maintenance(self) -> MaintenanceWindows: ...


def check_state(source: StatusSource, check: str) -> Status | None:
    return source.check_states.state_of(check)


def open_incident_by_check(source: StatusSource) -> dict[str, Incident]:
    return {incident.check: incident for incident in source.incidents.open_incidents()}


# -- the overall banner -----------------------------------------------------------------


class Banner(StrEnum):
    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    # Nothing wrong outside the checks a maintenance window covers now.
    MAINTENANCE = "maintenance"
    # Not one of the four a status page usually shows: right after a first start no
    # check has a state, and "all systems operational" would be a claim with no run
    # behind it.
    PENDING = "pending"

    @property
    def text(self) -> str:
        return _BANNER_TEXT[self][0]

    @property
    def colour(self) -> str:
        """RGB hex, for the favicon (the page's own colours are in status.css)."""
        return _BANNER_TEXT[self][1]


_BANNER_TEXT = {
    Banner.OPERATIONAL: ("All systems operational", "2e9e5b"),
    Banner.DEGRADED: ("Degraded performance", "c98f00"),
    Banner.PARTIAL_OUTAGE: ("Partial outage", "e5660b"),
    Banner.MAJOR_OUTAGE: ("Major outage", "d33a2c"),
    Banner.MAINTENANCE: ("Maintenance in progress", "2f6fd6"),
    Banner.PENDING: ("Waiting for the first results", "8a8f98"),
}


def derive_banner(states: Iterable[Status | None], in_maintenance: int = 0) -> Banner:
    """The page's headline from the checks' states (after thresholds, not single runs).

    Checks without a state yet are left out: "most" is counted among those that have one.
    `states` leaves out the checks under maintenance; `in_maintenance` counts them, and the
    banner says so when nothing else is wrong.
    """
    known = [state for state in states if state is not None]
    if not known:
        return Banner.MAINTENANCE if in_maintenance else Banner.PENDING
    down = sum(1 for state in known if state is Status.DOWN)
    if down * 2 > len(known):
        return Banner.MAJOR_OUTAGE
    if down:
        return Banner.PARTIAL_OUTAGE
    if any(state is Status.DEGRADED for state in known):
        return Banner.DEGRADED
    return Banner.MAINTENANCE if in_maintenance else Banner.OPERATIONAL


def page_banner(
    source: StatusSource, checks: Iterable[CheckConfig], maintained: Collection[str]
) -> Banner:
    """The banner over `checks`, those under maintenance counted apart."""
    names = [check.name for check in checks]
    return derive_banner(
        (check_state(source, name) for name in names if name not in maintained),
        sum(1 for name in names if name in maintained),
    )


# -- formatting -------------------------------------------------------------------------


def clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def span(seconds: float) -> str:
    """`42s`, `3m 05s`, `2h 07m`, `3d 4h`: a duration as a person reads it."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}".removesuffix(".0") + "s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def ago(at: float, now: float) -> str:
    return "just now" if now - at < 1 else f"{span(now - at)} ago"


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def percent(ratio: float) -> str:
    """Never rounds a bad day up to 100%: 99.996% shows as 99.99%."""
    if ratio >= 1:
        return "100%"
    return f"{math.floor(ratio * 10000) / 100:.2f}%"


# -- the page's model -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayBar:
    x: int
    css: str  # none | ok | warn | bad
    title: str


@dataclass(frozen=True, slots=True)
class Sparkline:
    points: str
    latest: str
    peak: str
    runs: int


@dataclass(frozen=True, slots=True)
class TimelineView:
    at: str
    at_iso: str
    status: str
    message: str
    until: str | None = None  # a counted entry (flapping, or entries left out) ends here
    until_iso: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentView:
    id: str
    check: str
    status: str
    open: bool
    opened: str
    opened_iso: str
    resolved: str | None
    duration: str
    reason_text: str
    reasons: list[str]
    failing_steps: list[str]
    held_back: list[str]
    first_message: str
    response_sample: str | None
    time_to_detect: str
    timeline: list[TimelineView]
    # The latest failing run's screenshot (a browser step's), served under /artifacts/.
    screenshot_url: str | None = None


@dataclass(frozen=True, slots=True)
class CheckView:
    name: str
    description: str
    state: str  # up | degraded | down | pending
    reason_text: str | None
    step: str | None
    message: str | None
    response_sample: str | None
    last_run: str | None
    last_run_iso: str | None
    last_run_ago: str | None
    last_duration: str | None
    bars: list[DayBar]
    uptime: str | None
    spark: Sparkline | None
    incident_id: str | None
    screenshot_url: str | None = None
    maintenance: str | None = None  # the window covering it now
    maintenance_until: str | None = None
    maintenance_until_iso: str | None = None
    affected_by: tuple[str, ...] = ()  # failing checks it depends on, while it fails too


@dataclass(frozen=True, slots=True)
class WindowView:
    id: str
    name: str
    description: str
    source: str
    open: bool
    start: str
    start_iso: str
    end: str
    end_iso: str
    checks: list[str]


@dataclass(frozen=True, slots=True)
class PageView:
    title: str
    banner: Banner
    generated: str
    generated_iso: str
    refresh_seconds: int
    checks: list[CheckView]
    open_incidents: list[IncidentView]
    past_incidents: list[IncidentView]
    incident_days: int
    uptime_days: int
    history_available: bool
    # False while the store cannot be opened or written: what the page shows is not kept.
    history_recording: bool = True
    maintenance: list[WindowView] = field(default_factory=list)
    maintenance_days: int = MAINTENANCE_HORIZON_DAYS


BAR_WIDTH = 5  # viewBox units per day: 4 of bar, 1 of gap


def day_bars(days: Sequence[DailyUptime], slo: float) -> tuple[list[DayBar], str | None]:
    """One bar per day, oldest first, and the period's uptime; no runs means a grey bar."""
    bars = []
    for index, day in enumerate(days):
        date = datetime.fromtimestamp(day.day, UTC).strftime("%Y-%m-%d")
        ratio = day.ratio
        if ratio is None:
            bars.append(DayBar(index * BAR_WIDTH, "none", f"{date}: no data"))
            continue
        css = "ok" if ratio >= slo else "warn" if ratio >= 0.95 else "bad"
        count = f"{day.runs} run{'s' if day.runs != 1 else ''}"
        bars.append(DayBar(index * BAR_WIDTH, css, f"{date}: {percent(ratio)} up ({count})"))
    runs = sum(day.runs for day in days)
    uptime = percent(sum(day.good for day in days) / runs) if runs else None
    return bars, uptime


SPARK_WIDTH, SPARK_HEIGHT = 120.0, 30.0


def sparkline(durations: Sequence[tuple[float, float]]) -> Sparkline | None:
    """An SVG polyline of run durations, oldest left; the top is the largest shown."""
    if not durations:
        return None
    values = [duration for _at, duration in durations]
    peak = max(values) or 1.0
    step = SPARK_WIDTH / (len(values) - 1) if len(values) > 1 else 0.0
    coords = [
        (round(i * step, 2), round(SPARK_HEIGHT - 2 - value / peak * (SPARK_HEIGHT - 4), 2))
        for i, value in enumerate(values)
    ]
    if len(coords) == 1:
        coords = [(0.0, coords[0][1]), (SPARK_WIDTH, coords[0][1])]
    return Sparkline(
        points=" ".join(f"{x:g},{y:g}" for x, y in coords),
        latest=milliseconds(values[-1]),
        peak=milliseconds(max(values)),
        runs=len(values),
    )


def _failed_sample(result: CheckResult) -> str | None:
    for step in result.steps:
        if step.name == result.failed_step and step.response_sample:
            return step.response_sample
    return None


def artifact_url(artifact: str | None) -> str | None:
    """Where the daemon serves a run's file (web/server.py), or None."""
    return f"{ARTIFACTS_PATH}/{artifact}" if artifact else None


def incident_view(incident: Incident, now: float) -> IncidentView:
    end = incident.resolved_at if incident.resolved_at is not None else now
    reason = incident.last_reason if incident.open else incident.first_reason
    return IncidentView(
        id=incident.id,
        check=incident.check,
        status=incident.status.value,
        open=incident.open,
        opened=clock(incident.opened_at),
        opened_iso=iso(incident.opened_at),
        resolved=clock(incident.resolved_at) if incident.resolved_at is not None else None,
        duration=span(end - incident.opened_at),
        reason_text=describe_reason(reason or incident.first_reason),
        reasons=[
            f"{describe_reason(name)} \u00d7{count}"
            for name, count in sorted(incident.reasons.items(), key=lambda kv: -kv[1])
        ],
        failing_steps=list(incident.failing_steps),
        held_back=list(incident.held_back),
        first_message=incident.first_message,
        response_sample=incident.response_sample,
        time_to_detect=span(incident.time_to_detect),
        timeline=[
            TimelineView(
                clock(entry.at),
                iso(entry.at),
                entry.status.value,
                entry.message,
                clock(entry.until) if entry.until not in (None, entry.at) else None,
                iso(entry.until) if entry.until not in (None, entry.at) else None,
            )
            for entry in reversed(incident.timeline)  # newest first, like a status page
        ],
        screenshot_url=artifact_url(incident.artifact),
    )


def window_view(opening: Opening, covers: Iterable[str], now: float) -> WindowView:
    window = opening.window
    return WindowView(
        id=window.id,
        name=window.name,
        description=window.description,
        source=window.source.value,
        open=opening.start <= now < opening.end,
        start=clock(opening.start),
        start_iso=iso(opening.start),
        end=clock(opening.end),
        end_iso=iso(opening.end),
        checks=sorted(covers),
    )


def check_view(
    check: CheckConfig,
    state: Status | None,
    outcome: RunOutcome | None,
    incident: Incident | None,
    uptime_days: Sequence[DailyUptime],
    durations: Sequence[tuple[float, float]],
    now: float,
    maintenance: Opening | None = None,
    failing_dependencies: Sequence[str] = (),
) -> CheckView:
    result = outcome.result if outcome is not None else None
    failing = state is Status.DOWN or (result is not None and result.status is Status.DOWN)
    reason_text = step = message = sample = screenshot = None
    if result is not None and result.status is Status.DOWN:
        reason_text = describe_reason(result.reason or "internal", result.http_status)
        step, message, sample = result.failed_step, result.message, _failed_sample(result)
        screenshot = artifact_url(failed_artifact(result))
    elif result is not None and result.status is Status.DEGRADED:
        reason_text = describe_reason(result.shown_reason or "", result.http_status)
        step, message = result.failed_step, result.message
    elif result is not None and state is Status.DOWN:
        # The last run passed but the success threshold is not met yet.
        reason_text = "recovering: the last run succeeded"
    bars, uptime = day_bars(uptime_days, check.slo_objective)
    return CheckView(
        name=check.name,
        description=check.description,
        state=state.value if state is not None else "pending",
        reason_text=reason_text,
        step=step,
        message=message,
        response_sample=sample,
        last_run=clock(result.started_at) if result else None,
        last_run_iso=iso(result.started_at) if result else None,
        last_run_ago=ago(result.started_at, now) if result else None,
        last_duration=milliseconds(result.duration_seconds) if result else None,
        bars=bars,
        uptime=uptime,
        spark=sparkline(durations),
        incident_id=incident.id if incident is not None else None,
        screenshot_url=screenshot,
        maintenance=maintenance.window.name if maintenance is not None else None,
        maintenance_until=clock(maintenance.end) if maintenance is not None else None,
        maintenance_until_iso=iso(maintenance.end) if maintenance is not None else None,
        affected_by=tuple(failing_dependencies) if failing else (),
    )


T = TypeVar("T")


class _Reads:
    """One page's history reads: a broken store shows the live state without history."""

    def __init__(self) -> None:
        self.ok = True

    async def __call__(self, what: str, read: Awaitable[T], fallback: T) -> T:
        try:
            return await read
        except HISTORY_ERRORS as exc:
            if self.ok:  # once a page: a store that is away fails every read alike
                log.error("status_history_failed", read=what, error=str(exc))
            self.ok = False
            return fallback


class StatusPage:
    """Builds the page's model from a `StatusSource` and renders it."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source
        self._template: Template | None = None  # loaded by the first render
        # Our own stylesheet, shipped in the package: the one string inserted unescaped.
        # Escaping it would break it (a <style> element does not decode `&#34;`).
        css = resources.files("uptime_probe.web").joinpath("static/status.css").read_text("utf-8")
        if "</" in css:
            raise ValueError("status.css must not contain '</': it would end the <style> block")
        self._css = Markup(css)  # noqa: S704 - a package file, never user input
        # Daily uptime is the heaviest read (90 days of hourly rollups per check), and
        # only today's bar moves: past days are read once per UTC day and check.
        self._uptime_cache: dict[str, tuple[float, list[DailyUptime]]] = {}
        self._building: asyncio.Future[PageView] | None = None

    async def _uptime(self, reads: _Reads, check: str, now: float) -> list[DailyUptime]:
        """90 days of bars: the past days from a cache (they no longer change), today fresh."""
        store = self.source.store
        today = math.floor(now / 86400) * 86400
        cached = self._uptime_cache.get(check)
        if cached is None or cached[0] != today:
            days = await reads("daily_uptime", store.daily_uptime(check, UPTIME_DAYS, now), [])
            if days:
                self._uptime_cache[check] = (today, days[:-1])
            return days
        current = await reads("daily_uptime", store.daily_uptime(check, 1, now), [])
        return [*cached[1], *current] if current else []

    async def model(self, now: float) -> PageView:
        source = self.source
        config = source.config
        reads = _Reads()
        incidents = open_incident_by_check(source)
        names = {check.name for check in config.checks}
        for stale in [name for name in self._uptime_cache if name not in names]:
            del self._uptime_cache[stale]
        maintained = source.maintenance.checks_in_maintenance(now)
        checks = []
        for check in config.checks:
            durations = await reads(
                "recent_durations", source.store.recent_durations(check.name, SPARKLINE_RUNS), []
            )
            checks.append(
                check_view(
                    check,
                    check_state(source, check.name),
                    source.latest.get(check.name),
                    incidents.get(check.name),
                    await self._uptime(reads, check.name, now),
                    durations,
                    now,
                    maintained.get(check.name),
                    source.check_states.failing_dependencies(check.name),
                )
            )
        stored = await reads(
            "incidents", source.store.incidents(since=now - INCIDENT_DAYS * 86400, limit=200), []
        )
        past = [
            incident_view(incident, now)
            for incident in stored
            if incident.status is IncidentStatus.RESOLVED
        ]
        open_now = sorted(incidents.values(), key=lambda incident: -incident.opened_at)
        return PageView(
            title=config.status_page.title,
            banner=page_banner(source, config.checks, maintained),
            generated=clock(now),
            generated_iso=iso(now),
            refresh_seconds=REFRESH_SECONDS,
            checks=checks,
            open_incidents=[incident_view(incident, now) for incident in open_now],
            past_incidents=past,
            incident_days=INCIDENT_DAYS,
            uptime_days=UPTIME_DAYS,
            history_available=reads.ok,
            history_recording=source.store.problem is None,
            maintenance=[
                window_view(opening, source.maintenance.covers(opening.window), now)
                for opening in source.maintenance.openings(now, MAINTENANCE_HORIZON_DAYS * 86400)
            ],
        )

    async def current(self) -> PageView:
        """The page's model; requests that arrive while one is being built share it."""
        if self._building is None or self._building.done():
            self._building = asyncio.ensure_future(self.model(time.time()))
        # Shielded: one viewer closing their tab does not cancel the others' page.
        return await asyncio.shield(self._building)

    def render(self, page: PageView, nonce: str) -> str:
        if self._template is None:  # two first renders at once both load it: harmless
            self._template = _load_template()
        return self._template.render(page=page, css=self._css, nonce=nonce)

    def body(self, page: PageView, nonce: str, gzip_ok: bool) -> tuple[bytes, bool]:
        # A target's JSON can escape a lone surrogate into a message: not encodable as
        # UTF-8, it would fail the whole page. It shows as "?" instead.
        body = self.render(page, nonce).encode("utf-8", "replace")
        if gzip_ok and len(body) >= GZIP_MIN_BYTES:
            # The markup repeats (90 bars a check): it compresses about tenfold.
            return gzip.compress(body, compresslevel=5), True
        return body, False

    async def handle(self, request: web.Request) -> web.Response:
        page = await self.current()
        nonce = secrets.token_urlsafe(16)
        gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "")
        # Rendering and compressing a large page is CPU work: keep it off the event loop.
        body, compressed = await in_web_thread(self.body, page, nonce, gzip_ok)
        response = web.Response(body=body, content_type="text/html", charset="utf-8")
        if compressed:
            response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        response.headers["Content-Security-Policy"] = page_csp(nonce)
        response.headers["Cache-Control"] = "no-store"
        return response


def _load_template() -> Template:
    """The page's template. Jinja2 (about 2 MB resident) is imported by the first page
    view rather than by every daemon: most are scraped, and never visited."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("uptime_probe.web", "templates"),
        autoescape=True,  # every template, whatever its name: nothing is trusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("status.html")


def page_csp(nonce: str) -> str:
    """No script of any kind; the one inline style block by nonce; images only from the
    daemon itself (screenshots); nothing loaded from afar."""
    return (
        "default-src 'none'; script-src 'none'; "
        f"style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
