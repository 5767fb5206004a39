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
import functools
import gzip
import math
import secrets
import sqlite3
import time
from array import array
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from typing import TYPE_CHECKING, Protocol, TypeVar

import structlog
from aiohttp import web
from markupsafe import Markup

from uptime_probe.config.model import CheckConfig, Config
from uptime_probe.probe.artifacts import ArtifactStore, kept_trace
from uptime_probe.probe.model import CheckResult, Status, describe_reason
from uptime_probe.sinks import RunOutcome
from uptime_probe.state.incidents import Incident, IncidentStatus, failed_artifact
from uptime_probe.state.maintenance import Opening, Window
from uptime_probe.state.store import DailyUptime, DayRow, RecentRow, RunRow, daily_uptime
from uptime_probe.web.offload import in_web_thread

if TYPE_CHECKING:
    from jinja2 import Template

log = structlog.get_logger("uptime_probe.web.status")

REFRESH_SECONDS = 10
ARTIFACTS_PATH = "/artifacts"  # where runs' files (screenshots, traces) are served
UPTIME_DAYS = 90
INCIDENT_DAYS = 30
MAINTENANCE_HORIZON_DAYS = 7  # upcoming windows listed on the page and by the API
SPARKLINE_RUNS = 60
# Where check.html's "... ago" and status.html's articles go: random, so that no text a
# target or a user wrote into the page can be taken for them.
_AGO_MARK = f"\x00ago-{secrets.token_hex(8)}\x00"
_ARTICLES_MARK = f"\x00articles-{secrets.token_hex(8)}\x00"
GZIP_MIN_BYTES = 4096
GZIP_FAST_BYTES = 1 << 20  # from here on the page is compressed at level 1
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

    async def daily_runs(self, checks: Collection[str], days: int, now: float) -> list[DayRow]: ...

    async def recent_runs(
        self, after: Mapping[str, float], limit: int = ...
    ) -> list[RecentRow]: ...

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
    # The latest failing run's screenshot (a browser step's), served under /artifacts/,
    # and the Playwright trace beside it.
    screenshot_url: str | None = None
    trace_url: str | None = None


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
    last_run_at: float | None  # "... ago" is rendered from it at each view (check.html)
    last_duration: str | None
    # The bars before today, rendered once a day (bars.html): 90 bars of 1,000 checks
    # rendered on every view took seconds. Today's bar is rendered with the page.
    past_bars: Markup
    today_bar: DayBar | None
    uptime: str | None
    spark: Sparkline | None
    incident_id: str | None
    screenshot_url: str | None = None
    trace_url: str | None = None
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
    now: float
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


def day_bars(
    days: Sequence[DailyUptime], slo: float, first: int = 0
) -> tuple[list[DayBar], str | None]:
    """One bar per day, oldest first (the first at position `first`), and the period's
    uptime; no runs means a grey bar."""
    bars = []
    for index, day in enumerate(days, start=first):
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
    peak = max(values)
    scale, bottom = (SPARK_HEIGHT - 4) / (peak or 1.0), SPARK_HEIGHT - 2
    # "%.2f" and x positions made once per number of runs: formatting 120 numbers with
    # round() and :g took 0.2 ms a line, redrawn for every check that ran since a view.
    ys = ["%.2f" % (bottom - value * scale) for value in values]
    if len(ys) == 1:
        ys = ys * 2
    return Sparkline(
        points=" ".join(map("{},{}".format, _spark_xs(len(ys)), ys)),
        latest=milliseconds(values[-1]),
        peak=milliseconds(peak),
        runs=len(values),
    )


@functools.cache
def _spark_xs(count: int) -> tuple[str, ...]:
    step = SPARK_WIDTH / (count - 1)
    return tuple(f"{round(i * step, 2):g}" for i in range(count))


def durations_ending_with(
    stored: Sequence[tuple[float, float]], last: CheckResult | None, limit: int = SPARKLINE_RUNS
) -> list[tuple[float, float]]:
    """The stored (started_at, duration) pairs, oldest first, ending with `last`, the run
    the page shows as the last one (from memory).

    The store trails memory: its writer commits in batches (0.1 s apart, longer behind a
    retention pass or a slow disk) and loses rows when its queue is full or writes fail.
    Read from the store alone, the summary beside "Last run ... took 3000 ms" said
    "latest 1 ms, highest 2 ms" (issue 17). So the last run is taken from memory, and
    anything stored as later than it (a clock stepped back) is left out.
    """
    if last is None:
        return list(stored[-limit:])
    earlier = [pair for pair in stored if pair[0] < last.started_at]
    return [*earlier, (last.started_at, last.duration_seconds)][-limit:]


def _failed_sample(result: CheckResult) -> str | None:
    for step in result.steps:
        if step.name == result.failed_step and step.response_sample:
            return step.response_sample
    return None


def artifact_url(artifact: str | None) -> str | None:
    """Where the daemon serves a run's file (web/server.py), or None."""
    return f"{ARTIFACTS_PATH}/{artifact}" if artifact else None


def incident_view(
    incident: Incident, now: float, files: ArtifactStore | None = None
) -> IncidentView:
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
        trace_url=artifact_url(kept_trace(incident.artifact, files)),
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


@dataclass(frozen=True, slots=True)
class LiveCheck:
    """What the page shows of one check from memory, read on the loop in one pass."""

    check: CheckConfig
    state: Status | None
    outcome: RunOutcome | None
    incident: Incident | None
    maintenance: Opening | None = None
    failing_dependencies: tuple[str, ...] = ()

    @property
    def affected_by(self) -> tuple[str, ...]:
        """The failing checks it depends on, while it fails too: what holds its alerts."""
        result = self.outcome.result if self.outcome is not None else None
        failing = self.state is Status.DOWN or (result is not None and result.status is Status.DOWN)
        return self.failing_dependencies if failing else ()


def live_checks(
    source: StatusSource,
    checks: Sequence[CheckConfig],
    incidents: Mapping[str, Incident],
    maintained: Mapping[str, Opening],
) -> list[LiveCheck]:
    """Each check's live view, read from memory in one pass: the page's and the API's."""
    return [
        LiveCheck(
            check,
            check_state(source, check.name),
            source.latest.get(check.name),
            incidents.get(check.name),
            maintained.get(check.name),
            source.check_states.failing_dependencies(check.name),
        )
        for check in checks
    ]


@dataclass(frozen=True, slots=True)
class CheckHistory:
    """What the page shows of one check from the store."""

    past_bars: Markup
    today_bar: DayBar | None
    uptime: str | None
    spark: Sparkline | None


def check_view(
    live: LiveCheck, history: CheckHistory, files: ArtifactStore | None = None
) -> CheckView:
    state, outcome = live.state, live.outcome
    result = outcome.result if outcome is not None else None
    reason_text = step = message = sample = screenshot = trace = None
    if result is not None and result.status is Status.DOWN:
        reason_text = describe_reason(result.reason or "internal", result.http_status)
        step, message, sample = result.failed_step, result.message, _failed_sample(result)
        screenshot = artifact_url(failed_artifact(result))
        trace = artifact_url(kept_trace(failed_artifact(result), files))
    elif result is not None and result.status is Status.DEGRADED:
        reason_text = describe_reason(result.shown_reason or "", result.http_status)
        step, message = result.failed_step, result.message
    elif result is not None and state is Status.DOWN:
        # The last run passed but the success threshold is not met yet.
        reason_text = "recovering: the last run succeeded"
    maintenance = live.maintenance
    return CheckView(
        name=live.check.name,
        description=live.check.description,
        state=state.value if state is not None else "pending",
        reason_text=reason_text,
        step=step,
        message=message,
        response_sample=sample,
        last_run=clock(result.started_at) if result else None,
        last_run_iso=iso(result.started_at) if result else None,
        last_run_at=result.started_at if result else None,
        last_duration=milliseconds(result.duration_seconds) if result else None,
        past_bars=history.past_bars,
        today_bar=history.today_bar,
        uptime=history.uptime,
        spark=history.spark,
        incident_id=live.incident.id if live.incident is not None else None,
        screenshot_url=screenshot,
        trace_url=trace,
        maintenance=maintenance.window.name if maintenance is not None else None,
        maintenance_until=clock(maintenance.end) if maintenance is not None else None,
        maintenance_until_iso=iso(maintenance.end) if maintenance is not None else None,
        affected_by=live.affected_by,
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


def day_start(now: float) -> float:
    return math.floor(now / 86400) * 86400


@dataclass(slots=True)
class _PastDays:
    """A check's uptime before today, read once a UTC day; its bars rendered once."""

    today: float  # the day it was read on
    days: tuple[DailyUptime, ...]
    runs: int
    good: int
    bars: tuple[float, Markup] | None = None  # (the slo they are coloured for, markup)


class PageHistory:
    """What the page shows from the store, read in one query of each kind per view, and
    kept between views where it cannot have changed.

    - Uptime before today, per check: read once a UTC day (90 days of hourly rollups), its
      bars rendered once; today's uptime is read for every check on every view.
    - Each check's last SPARKLINE_RUNS runs: read once, then only the runs stored since,
      and only for checks that ran since (their latest run in memory is newer).
    - The sparkline: redrawn only when those runs change.

    A query per check and read cost 0.7 s at 500 checks (a trip to the store's thread
    each); rendering 90 bars for each of 1,000 checks on every view took seconds.

    `read` runs on the event loop and only awaits the store (whose thread does the work);
    `history_of` shapes what was read and renders, in a web thread. `StatusPage.model`
    makes one build at a time, so the two never overlap.
    """

    def __init__(self, render_bars: Callable[[Sequence[DayBar]], Markup]) -> None:
        self._render_bars = render_bars
        self._past: dict[str, _PastDays] = {}
        self._today: dict[str, DailyUptime] = {}  # read again when the check ran
        self._today_bars: dict[str, tuple[DailyUptime, float, DayBar]] = {}
        # (started_at, duration) pairs, flat, oldest first: floats in an array are not
        # objects the garbage collector walks, and take 16 bytes a run.
        self._recent: dict[str, array[float]] = {}
        self._sparks: dict[str, tuple[tuple[float, ...], Sparkline | None]] = {}
        # This view's rows, as read: shaped by `digest`, off the loop.
        self._read: list[tuple[list[str], int, float, list[DayRow]]] = []
        self._recent_rows: list[RecentRow] = []

    async def read(
        self, store: History, reads: _Reads, live: Sequence[LiveCheck], now: float
    ) -> None:
        """This view's reads: at most three queries, whatever the number of checks, and
        for the checks that ran since they were last read (or not read yet) only."""
        today = day_start(now)
        self._read, self._recent_rows = [], []
        after: dict[str, float] = {}  # checks to read runs of: those after this time
        for check in live:
            name = check.check.name
            kept = self._recent.get(name)
            newest = kept[-2] if kept else 0.0
            ran = check.outcome is not None and check.outcome.result.started_at > newest
            if kept is None or ran:
                after[name] = newest
        if after:
            recent = await reads("recent_runs", store.recent_runs(after, SPARKLINE_RUNS), None)
            if recent is not None:
                self._recent_rows = recent
                for name in after:  # read: what it has now is all there is
                    self._recent.setdefault(name, array("d"))
        # Read after the runs: a run stored by then is in today's rollup as well (one
        # transaction writes both).
        names = [check.check.name for check in live]
        cold = [name for name in names if name not in self._past or self._past[name].today != today]
        warm = [
            name
            for name in names
            if name in self._past
            and self._past[name].today == today
            and (name in after or name not in self._today)
        ]
        for group, days in ((cold, UPTIME_DAYS), (warm, 1)):
            if group:
                rows = await reads("daily_runs", store.daily_runs(group, days, now), None)
                if rows is not None:
                    self._read.append((group, days, now, rows))

    def digest(self, names: Collection[str]) -> None:
        """Fold this view's rows into what is kept (in a web thread)."""
        for cache in (self._past, self._today, self._recent, self._sparks, self._today_bars):
            for stale in [name for name in cache if name not in names]:
                del cache[stale]
        for group, days, now, rows in self._read:
            for name, found in daily_uptime(rows, group, days, now).items():
                if days > 1:
                    past = found[:-1]
                    self._past[name] = _PastDays(
                        day_start(now),
                        tuple(past),
                        sum(day.runs for day in past),
                        sum(day.good for day in past),
                    )
                self._today[name] = found[-1]
        for name, at, duration in self._recent_rows:
            runs = self._recent[name]
            if not runs or at > runs[-2]:
                runs.extend((at, duration))
        for runs in self._recent.values():
            del runs[: max(0, len(runs) - 2 * SPARKLINE_RUNS)]
        self._read, self._recent_rows = [], []

    def history_of(self, live: LiveCheck) -> CheckHistory:
        name = live.check.name
        return CheckHistory(*self._uptime(name, live.check.slo_objective), self._spark(live))

    def _uptime(self, name: str, slo: float) -> tuple[Markup, DayBar | None, str | None]:
        past, today = self._past.get(name), self._today.get(name)
        if past is None or today is None:  # history unavailable: no bars rather than wrong ones
            return Markup(""), None, None
        if past.bars is None or past.bars[0] != slo:
            past.bars = (slo, self._render_bars(day_bars(past.days, slo)[0]))
        cached = self._today_bars.get(name)
        if cached is None or cached[0] != today or cached[1] != slo:
            (today_bar,), _ = day_bars([today], slo, first=len(past.days))
            cached = (today, slo, today_bar)
            self._today_bars[name] = cached
        today_bar = cached[2]
        runs = past.runs + today.runs
        return past.bars[1], today_bar, percent((past.good + today.good) / runs) if runs else None

    def _spark(self, live: LiveCheck) -> Sparkline | None:
        name = live.check.name
        result = live.outcome.result if live.outcome is not None else None
        kept = self._recent.get(name) or array("d")
        # What the line is drawn from: the stored runs (only ever appended to and cut from
        # the front) and the latest run in memory.
        key = (
            float(len(kept)),
            *kept[:1],
            *kept[-2:-1],
            *((result.started_at, result.duration_seconds) if result else ()),
        )
        cached = self._sparks.get(name)
        if cached is None or cached[0] != key:
            stored = list(zip(kept[::2], kept[1::2], strict=True))
            cached = (key, sparkline(durations_ending_with(stored, result)))
            self._sparks[name] = cached
        return cached[1]


def _same_view(before: LiveCheck, now: LiveCheck) -> bool:
    """Whether a check's view from `before` still holds: the same config, run, state,
    incident, window and failing dependencies (objects compared by identity where a
    change replaces them)."""
    return (
        before.check is now.check
        and before.outcome is now.outcome
        and before.state is now.state
        and before.incident is now.incident
        and before.maintenance == now.maintenance
        and before.failing_dependencies == now.failing_dependencies
    )


@dataclass(frozen=True, slots=True)
class _Templates:
    page: Template
    bars: Callable[[Sequence[DayBar]], str]
    article: Callable[[CheckView, str, int], str]


def _load_templates() -> _Templates:
    """The page's templates. Jinja2 (about 2 MB resident) is imported by the first page
    view rather than by every daemon: most are scraped, and never visited."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("uptime_probe.web", "templates"),
        autoescape=True,  # every template, whatever its name: nothing is trusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # A macro is an attribute Jinja makes at run time: nothing a type checker can see.
    return _Templates(
        page=env.get_template("status.html"),
        bars=getattr(env.get_template("bars.html").module, "day_bars"),  # noqa: B009
        article=getattr(env.get_template("check.html").module, "check_article"),  # noqa: B009
    )


class StatusPage:
    """Builds the page's model from a `StatusSource` and renders it."""

    def __init__(self, source: StatusSource, files: ArtifactStore | None = None) -> None:
        self.source = source
        self.files = files  # runs' screenshots and traces: a trace is linked if kept
        self._loaded: _Templates | None = None  # by the first view (_load_templates)
        # Kept between views: each check's view while its inputs are the same, and its
        # article while its view is the same object (both rebuilt only for what changed).
        self._views: dict[str, tuple[LiveCheck, CheckHistory, CheckView]] = {}
        self._articles: dict[str, tuple[CheckView, bytes, bytes]] = {}
        # Our own stylesheet, shipped in the package: the one string inserted unescaped.
        # Escaping it would break it (a <style> element does not decode `&#34;`).
        css = resources.files("uptime_probe.web").joinpath("static/status.css").read_text("utf-8")
        if "</" in css:
            raise ValueError("status.css must not contain '</': it would end the <style> block")
        self._css = Markup(css)  # noqa: S704 - a package file, never user input
        self._history = PageHistory(
            lambda days: Markup(self._templates().bars(days))  # noqa: S704 - escaped
        )
        self._lock = asyncio.Lock()
        self._building: asyncio.Future[PageView] | None = None

    def _templates(self) -> _Templates:
        if self._loaded is None:  # two first views at once both load them: harmless
            self._loaded = _load_templates()
        return self._loaded

    async def model(self, now: float) -> PageView:
        async with self._lock:  # one build at a time: they share what PageHistory keeps
            return await self._model(now)

    async def _model(self, now: float) -> PageView:
        source = self.source
        config = source.config
        reads = _Reads()
        incidents = open_incident_by_check(source)
        maintained = source.maintenance.checks_in_maintenance(now)
        live = live_checks(source, config.checks, incidents, maintained)
        await self._history.read(source.store, reads, live, now)
        stored = await reads(
            "incidents", source.store.incidents(since=now - INCIDENT_DAYS * 86400, limit=200), []
        )
        # Shaping what was read and 1,000 checks' views (their bars, once a day) is CPU
        # work, and linking a trace looks for its file: off the event loop.
        checks = await in_web_thread(self._check_views, live)
        open_now = sorted(incidents.values(), key=lambda incident: -incident.opened_at)
        shown, past = await in_web_thread(
            self._incident_views,
            open_now,
            [incident for incident in stored if incident.status is IncidentStatus.RESOLVED],
            now,
        )
        return PageView(
            title=config.status_page.title,
            banner=page_banner(source, config.checks, maintained),
            generated=clock(now),
            generated_iso=iso(now),
            now=now,
            refresh_seconds=REFRESH_SECONDS,
            checks=checks,
            open_incidents=shown,
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

    def _incident_views(
        self, open_now: Sequence[Incident], resolved: Sequence[Incident], now: float
    ) -> tuple[list[IncidentView], list[IncidentView]]:
        return (
            [incident_view(incident, now, self.files) for incident in open_now],
            [incident_view(incident, now, self.files) for incident in resolved],
        )

    def _check_views(self, live: Sequence[LiveCheck]) -> list[CheckView]:
        self._history.digest({check.check.name for check in live})
        views = []
        for check in live:
            history = self._history.history_of(check)
            kept = self._views.get(check.check.name)
            if kept is None or not _same_view(kept[0], check) or kept[1] != history:
                kept = (check, history, check_view(check, history, self.files))
                self._views[check.check.name] = kept
            views.append(kept[2])
        if len(self._views) > len(live):  # checks a reload removed
            shown = {check.check.name for check in live}
            for name in [name for name in self._views if name not in shown]:
                del self._views[name]
        return views

    async def current(self) -> PageView:
        """The page's model; requests that arrive while one is being built share it."""
        if self._building is None or self._building.done():
            self._building = asyncio.ensure_future(self.model(time.time()))
        # Shielded: one viewer closing their tab does not cancel the others' page.
        return await asyncio.shield(self._building)

    def render(self, page: PageView, nonce: str) -> bytes:
        """The page as UTF-8. Each check's article is kept encoded between views and
        joined in as bytes: at 1,000 checks the page is 12 MB, 11 of them the checks' bars,
        and passing them through the template and encoding them again cost 25 ms a view."""
        # A target's JSON can escape a lone surrogate into a message: not encodable as
        # UTF-8, it would fail the whole page. It shows as "?" instead.
        html = self._templates().page.render(
            page=page, articles=[_ARTICLES_MARK], css=self._css, nonce=nonce
        )
        top, _mark, bottom = html.partition(_ARTICLES_MARK)
        parts = [top.encode("utf-8", "replace")]
        for check in page.checks:
            head, tail = self._article(check)
            parts.append(head)
            if check.last_run_at is not None:
                parts.append(ago(check.last_run_at, page.now).encode())
            parts.append(tail)
        parts.append(bottom.encode("utf-8", "replace"))
        if len(self._articles) > len(page.checks):  # checks a reload removed
            shown = {check.name for check in page.checks}
            for name in [name for name in self._articles if name not in shown]:
                self._articles.pop(name, None)
        return b"".join(parts)

    def _article(self, check: CheckView) -> tuple[bytes, bytes]:
        """The check's article, encoded, before and after its "... ago": rendered again
        only when its view changed (a run, a state, a window). Concurrent renders may
        both render one: dict reads and writes are atomic."""
        cached = self._articles.get(check.name)
        if cached is None or cached[0] is not check:
            html = str(self._templates().article(check, _AGO_MARK, UPTIME_DAYS))
            # The last mark: a message or sample above it could contain the same text.
            head, mark, tail = html.rpartition(_AGO_MARK)
            if not mark:
                head, tail = html, ""
            cached = (check, head.encode("utf-8", "replace"), tail.encode("utf-8", "replace"))
            self._articles[check.name] = cached
        return cached[1], cached[2]

    def body(self, page: PageView, nonce: str, gzip_ok: bool) -> tuple[bytes, bool]:
        body = self.render(page, nonce)
        if gzip_ok and len(body) >= GZIP_MIN_BYTES:
            # The markup repeats (90 bars a check): it compresses about tenfold at level 5,
            # thirtyfold at 1. A large page takes level 1: 12 MB (1,000 checks) in 20 ms of
            # CPU instead of 35, for 410 KB sent instead of 225 (docs/benchmarks.md).
            level = 5 if len(body) < GZIP_FAST_BYTES else 1
            return gzip.compress(body, compresslevel=level), True
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


def page_csp(nonce: str) -> str:
    """No script of any kind; the one inline style block by nonce; images only from the
    daemon itself (screenshots); nothing loaded from afar."""
    return (
        "default-src 'none'; script-src 'none'; "
        f"style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
