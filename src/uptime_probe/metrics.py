"""Prometheus metrics: per-check series read at scrape time from immutable snapshots.

Each check's series live in one frozen `CheckSeries`; a run replaces it whole. The
scrape renders from those snapshots, so a removed check's series vanish with it and
a scrape never sees half an update.

Why a hand-written text renderer next to prometheus-client: rendering 10,000 checks
through the library's generic exposition took seconds (docs/benchmarks.md), and a
scrape must not stall probing. The fast path caches each check's lines, as bytes,
until its snapshot changes, and produces the page as a stream of ~256 KiB chunks in
small steps on the event loop (`CheckMetrics.text_chunks`); OpenMetrics requests, and
the tests that pin the fast path's output, go through prometheus-client's own
exposition of the same data via `collect()`.

Why a stream in steps rather than one body built in a worker thread: at 10,000 checks
the page is ~60 MB, and joining then encoding it are single C calls that hold the GIL
for tens of milliseconds each, so a thread did not keep the loop free: the schedule
lag p99 went from 75 ms unscraped to 171 ms scraped every second, and the whole-body
copies added ~55 MiB RSS during a scrape. No step of the stream holds the loop for
more than a couple of milliseconds, and no copy of the whole body is ever made.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

from uptime_probe import __version__
from uptime_probe.config.model import CheckConfig
from uptime_probe.config.steps import StepBase
from uptime_probe.probe.kinds import kind_of
from uptime_probe.probe.model import (
    COMMON_REASONS,
    KIND_REASONS,
    PHASES,
    PhaseTimings,
    Status,
    StepFigures,
    StepResult,
)
from uptime_probe.sinks import RunOutcome
from uptime_probe.slices import Steps, run_all

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATES = (Status.UP, Status.DEGRADED, Status.DOWN)

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# The text stream's chunk size: large enough that per-chunk costs (a loop turn, a write,
# a compress call) vanish, small enough that joining one takes ~0.1 ms.
CHUNK_BYTES = 256 * 1024
# Checks re-rendered per step of the stream: ~40 us each, so ~1.3 ms per step.
_RENDER_SLICE = 32
# Checks whose cached blocks are looked up per step when none needs rendering (~0.3 us each).
_VISIT_SLICE = 4096
# Checks whose block of one family is gathered at a time; bounds how far a chunk can run
# past CHUNK_BYTES (32 blocks of at most ~2 KB).
_GATHER_SLICE = 32


@dataclass(frozen=True, slots=True)
class HistogramData:
    """Per-bucket (not cumulative) counts; the last bucket is +Inf."""

    counts: tuple[int, ...]
    total: float = 0.0

    @classmethod
    def empty(cls, buckets: Sequence[float] = DURATION_BUCKETS) -> HistogramData:
        return cls((0,) * (len(buckets) + 1))

    def observe(self, value: float, buckets: Sequence[float] = DURATION_BUCKETS) -> HistogramData:
        index = bisect.bisect_left(buckets, value)
        counts = list(self.counts)
        counts[index] += 1
        return HistogramData(tuple(counts), self.total + value)

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for count in self.counts:
            running += count
            out.append(running)
        return out


@dataclass(frozen=True, slots=True)
class FigureSeries:
    """A step kind's own figures (StepFigures) over the step's runs: one histogram per
    `kind.histograms` field, and per `kind.gauges` field the last run's value (None, no
    series, when the last run did not measure it, or before the first run)."""

    kind: type[StepFigures]
    histograms: tuple[HistogramData, ...]
    gauges: tuple[float | None, ...]

    @classmethod
    def empty(cls, kind: type[StepFigures]) -> FigureSeries:
        return cls(
            kind, tuple(HistogramData.empty() for _ in kind.histograms), (None,) * len(kind.gauges)
        )

    def after(self, figures: StepFigures | None) -> FigureSeries:
        """With one more run's figures (None: the run measured none)."""
        if not isinstance(figures, self.kind):
            figures = None
        return FigureSeries(
            self.kind,
            tuple(
                data if (value := _figure(figures, name)) is None else data.observe(value)
                for data, name in zip(self.histograms, self.kind.histograms, strict=True)
            ),
            tuple(_figure(figures, name) for name in self.kind.gauges),
        )


@dataclass(frozen=True, slots=True)
class StepSeries:
    name: str
    duration: HistogramData
    phases: PhaseTimings = field(default_factory=PhaseTimings)
    http_status: int = 0
    tls_not_after: float | None = None
    # The HTTP series (status code, phases) exist only for a kind that exchanges HTTP.
    http: bool = True
    figures: FigureSeries | None = None

    @classmethod
    def of(cls, step: StepBase) -> StepSeries:
        """A step's series before its first run, shaped by its kind."""
        kind = kind_of(step).figures
        figures = FigureSeries.empty(kind) if kind is not None else None
        return cls(step.name, HistogramData.empty(), http=step.exchanges_http, figures=figures)

    def same_shape(self, other: StepSeries) -> bool:
        mine = self.figures.kind if self.figures is not None else None
        theirs = other.figures.kind if other.figures is not None else None
        return self.http == other.http and mine is theirs

    def after(self, step: StepResult) -> StepSeries:
        """These series with one more run of the step. Built directly rather than by
        `replace`: it runs for every step of every run."""
        return StepSeries(
            self.name,
            self.duration.observe(step.duration_seconds),
            step.timings,
            step.http_status or 0,
            self.tls_not_after if step.tls_not_after is None else step.tls_not_after,
            self.http,
            None if self.figures is None else self.figures.after(step.figures),
        )


def _figure(figures: StepFigures | None, name: str) -> float | None:
    value = getattr(figures, name, None)
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class FigureFamily:
    """One field of a kind's figures, exported as `uptime_probe_step_<key>_<field>`.

    Declared by the figures class itself (`histograms`, `gauges`, `descriptions`), so a
    new kind's figures reach /metrics without code of their own here.
    """

    name: str
    kind: str  # "histogram" or "gauge"
    help: str
    figures: type[StepFigures]
    index: int  # the field's place in its class's `histograms` or `gauges`

    @property
    def header(self) -> bytes:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n".encode()


def figure_families(classes: Iterable[type[StepFigures]]) -> tuple[FigureFamily, ...]:
    """The families of every figures class in use, in a stable order (by key, then field)."""
    families: list[FigureFamily] = []
    for figures in sorted(set(classes), key=lambda cls: cls.key):
        for kind, fields in (("histogram", figures.histograms), ("gauge", figures.gauges)):
            families.extend(
                FigureFamily(
                    f"uptime_probe_step_{figures.key}_{name}",
                    kind,
                    figures.descriptions[name],
                    figures,
                    index,
                )
                for index, name in enumerate(fields)
            )
    return tuple(families)


@dataclass(frozen=True, slots=True)
class CheckSeries:
    check: str
    location: str
    reasons: tuple[str, ...]
    failures: tuple[int, ...]
    steps: tuple[StepSeries, ...]
    slo: float
    interval: float
    runs: int = 0
    degraded: int = 0
    skipped: int = 0
    duration: HistogramData = field(default_factory=HistogramData.empty)
    state: Status | None = None
    success: int = 0
    last_run: float = 0.0
    last_success: float = 0.0
    last_failure: tuple[str, str] | None = None
    retries: int = 0
    maintenance_runs: int = 0
    maintenance_failures: int = 0
    depends_on: tuple[str, ...] = ()


# (name as exposed, type, help): the one list both renderers follow, in order.
FAMILIES: tuple[tuple[str, str, str], ...] = (
    (
        "uptime_probe_check_success",
        "gauge",
        "1 if the check's last run was up or degraded, else 0.",
    ),
    ("uptime_probe_check_state", "gauge", "The check's state after thresholds (stateset)."),
    ("uptime_probe_check_runs_total", "counter", "Runs of the check."),
    ("uptime_probe_check_failures_total", "counter", "Down runs of the check, by reason."),
    ("uptime_probe_check_degraded_total", "counter", "Degraded runs of the check."),
    ("uptime_probe_check_duration_seconds", "histogram", "Whole-journey duration of a run."),
    ("uptime_probe_check_last_run_timestamp_seconds", "gauge", "When the last run started."),
    (
        "uptime_probe_check_last_success_timestamp_seconds",
        "gauge",
        "When the last up or degraded run started.",
    ),
    ("uptime_probe_check_slo_objective", "gauge", "The check's availability objective."),
    ("uptime_probe_check_interval_seconds", "gauge", "The check's schedule interval."),
    (
        "uptime_probe_check_last_failure_info",
        "gauge",
        "Reason and failing step of the check's most recent down run.",
    ),
    ("uptime_probe_runs_skipped_total", "counter", "Runs skipped: the previous still in flight."),
    (
        "uptime_probe_check_retries_total",
        "counter",
        "Down tries made again within a run (retries:); the run's last try is what counts.",
    ),
    (
        "uptime_probe_check_maintenance_runs_total",
        "counter",
        "Runs that started inside a maintenance window covering the check.",
    ),
    (
        "uptime_probe_check_maintenance_failures_total",
        "counter",
        "Down runs that started inside a maintenance window covering the check.",
    ),
    ("uptime_probe_step_duration_seconds", "histogram", "Duration of a step, polls included."),
    ("uptime_probe_step_phase_seconds", "gauge", "Time in each phase of the step's last run."),
    ("uptime_probe_step_http_status_code", "gauge", "HTTP status of the step's last run."),
    (
        "uptime_probe_step_tls_cert_expiry_timestamp_seconds",
        "gauge",
        "Expiry of the certificate the step's target presented.",
    ),
)

# Families whose values move without a run of their check (a window opens, a dependency
# starts failing): computed at each scrape from the calendar and the states, never cached,
# and exposed after the families above. One line per check, and per dependency.
LIVE_FAMILIES: tuple[tuple[str, str, str], ...] = (
    (
        "uptime_probe_check_in_maintenance",
        "gauge",
        "1 while a maintenance window covers the check: it runs, but alerts nobody.",
    ),
    (
        "uptime_probe_check_suppressed",
        "gauge",
        "1 while the check `by`, which this check depends on, is failing: "
        "this check's alerting is held back.",
    ),
)
_LIVE_HEADERS: tuple[bytes, ...] = tuple(
    f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n".encode()
    for name, kind, help_text in LIVE_FAMILIES
)

_HEADERS: tuple[bytes, ...] = tuple(
    f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n".encode()
    for name, kind, help_text in FAMILIES
)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _num(value: float) -> str:
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


# Each bucket's `le` label and what follows it up to the count: the same in every
# histogram, so formatted once. Formatted per line, the bounds were 24 of a check's 35
# number formats, and half of a cold render's time (bench/micro.py, render).
_BUCKET_TAILS = tuple(f',le="{bound}"}} ' for bound in (*map(_num, DURATION_BUCKETS), "+Inf"))


def _histogram_lines(name: str, labels: str, data: HistogramData) -> str:
    head = f"{name}_bucket{{{labels}"
    lines = []
    running = 0
    for tail, count in zip(_BUCKET_TAILS, data.counts, strict=True):
        running += count
        lines.append(f"{head}{tail}{running}.0\n")
    lines.append(
        f"{name}_count{{{labels}}} {running}.0\n{name}_sum{{{labels}}} {_num(data.total)}\n"
    )
    return "".join(lines)


def render_check(series: CheckSeries, figures: Sequence[FigureFamily] = ()) -> tuple[str, ...]:
    """One text block per family in FAMILIES, then per figure family, for one check."""
    base = f'check="{series.check}",location="{_escape(series.location)}"'
    state_lines = "".join(
        f'uptime_probe_check_state{{{base},state="{s.value}"}} {1 if series.state is s else 0}.0\n'
        for s in STATES
    )
    failures = "".join(
        [
            f'uptime_probe_check_failures_total{{{base},reason="{reason}"}} {count}.0\n'
            for reason, count in zip(series.reasons, series.failures, strict=True)
        ]
    )
    info = ""
    if series.last_failure is not None:
        reason, failed_step = series.last_failure
        info = (
            "uptime_probe_check_last_failure_info"
            f'{{{base},reason="{reason}",step="{failed_step}"}} 1.0\n'
        )
    step_hist: list[str] = []
    phases: list[str] = []
    statuses: list[str] = []
    expiry: list[str] = []
    for step in series.steps:
        labels = f'{base},step="{step.name}"'
        step_hist.append(
            _histogram_lines("uptime_probe_step_duration_seconds", labels, step.duration)
        )
        if step.http:
            phases.extend(
                f'uptime_probe_step_phase_seconds{{{labels},phase="{phase}"}} '
                f"{_num(getattr(step.phases, phase))}\n"
                for phase in PHASES
            )
            statuses.append(
                f"uptime_probe_step_http_status_code{{{labels}}} {step.http_status}.0\n"
            )
        if step.tls_not_after is not None:
            expiry.append(
                f"uptime_probe_step_tls_cert_expiry_timestamp_seconds{{{labels}}} "
                f"{_num(step.tls_not_after)}\n"
            )
    return (
        f"uptime_probe_check_success{{{base}}} {series.success}.0\n",
        state_lines,
        f"uptime_probe_check_runs_total{{{base}}} {series.runs}.0\n",
        failures,
        f"uptime_probe_check_degraded_total{{{base}}} {series.degraded}.0\n",
        _histogram_lines("uptime_probe_check_duration_seconds", base, series.duration),
        f"uptime_probe_check_last_run_timestamp_seconds{{{base}}} {_num(series.last_run)}\n",
        f"uptime_probe_check_last_success_timestamp_seconds{{{base}}} "
        f"{_num(series.last_success)}\n",
        f"uptime_probe_check_slo_objective{{{base}}} {_num(series.slo)}\n",
        f"uptime_probe_check_interval_seconds{{{base}}} {_num(series.interval)}\n",
        info,
        f"uptime_probe_runs_skipped_total{{{base}}} {series.skipped}.0\n",
        f"uptime_probe_check_retries_total{{{base}}} {series.retries}.0\n",
        f"uptime_probe_check_maintenance_runs_total{{{base}}} {series.maintenance_runs}.0\n",
        f"uptime_probe_check_maintenance_failures_total{{{base}}} "
        f"{series.maintenance_failures}.0\n",
        "".join(step_hist),
        "".join(phases),
        "".join(statuses),
        "".join(expiry),
        *(_figure_lines(family, base, series.steps) for family in figures),
    )


def _figure_lines(family: FigureFamily, base: str, steps: Sequence[StepSeries]) -> str:
    lines: list[str] = []
    for step in steps:
        figures = step.figures
        if figures is None or figures.kind is not family.figures:
            continue
        labels = f'{base},step="{step.name}"'
        if family.kind == "histogram":
            lines.append(_histogram_lines(family.name, labels, figures.histograms[family.index]))
        elif (value := figures.gauges[family.index]) is not None:
            lines.append(f"{family.name}{{{labels}}} {_num(value)}\n")
    return "".join(lines)


def _reasons(check: CheckConfig) -> tuple[str, ...]:
    """The reasons a check's runs can have, declared at 0 before its first run: the common
    ones, those of the kinds of step it has, and those its config names."""
    kinds = sorted({step.kind for step in check.steps})
    kind_reasons = [reason for kind in kinds for reason in KIND_REASONS.get(kind, ())]
    return tuple(dict.fromkeys((*COMMON_REASONS, *kind_reasons, *sorted(check.reasons()))))


def _kept_or_new(old: StepSeries | None, step: StepBase) -> StepSeries:
    """A reloaded step keeps its series, unless its kind changed their shape."""
    new = StepSeries.of(step)
    return old if old is not None and old.same_shape(new) else new


class CheckMetrics:
    """The per-check series: a result sink, and a collector read at scrape time.

    `in_maintenance(now)` and `failing(check)` are read at each scrape for the live
    families (app.py passes the maintenance calendar's and the check states' answers).
    """

    def __init__(
        self,
        location: str,
        *,
        in_maintenance: Callable[[float], Collection[str]] = lambda _now: (),
        failing: Callable[[str], bool] = lambda _check: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.location = location
        self._in_maintenance = in_maintenance
        self._failing = failing
        self._clock = clock
        self._series: dict[str, CheckSeries] = {}
        # Each check's rendered blocks (bytes, one per family), valid while its snapshot is
        # the same object. Only ever touched by single dict operations, which are atomic
        # under the GIL, so concurrent scrapes (interleaved on the loop, or render_text in
        # a thread) need no lock; at worst one re-renders what the other dropped.
        self._cache: dict[str, tuple[CheckSeries, tuple[FigureFamily, ...], tuple[bytes, ...]]] = {}
        # The figure families of the kinds the checks use; replaced whole by sync_checks.
        self._figures: tuple[FigureFamily, ...] = ()

    def sync_checks(self, checks: Sequence[CheckConfig]) -> None:
        """Create series for new checks, refresh changed ones, drop removed ones."""
        run_all(self.sync_steps(checks))

    def sync_steps(self, checks: Sequence[CheckConfig]) -> Steps[None]:
        """`sync_checks` a check at a time (slices.py); each series is replaced whole, as a
        run replaces it, so a scrape between steps reads every check old or new."""
        wanted: dict[str, CheckConfig] = {}
        for check in checks:  # a check a step, as every pass over them: slices.py
            wanted[check.name] = check
            yield
        for name in list(self._series):
            if name not in wanted:
                self._series.pop(name, None)
            yield
        kinds: set[type[StepFigures]] = set()
        for name, check in wanted.items():
            self._sync_one(name, check)
            kinds.update(
                step.figures.kind for step in self._series[name].steps if step.figures is not None
            )
            yield
        # After the last check: a scrape between the steps renders the families of the
        # kinds in use before this reload (a new check's own kind shows from here on).
        self._figures = figure_families(kinds)

    def _sync_one(self, name: str, check: CheckConfig) -> None:
        reasons = _reasons(check)
        old = self._series.get(name)
        if old is None:
            self._series[name] = CheckSeries(
                check=name,
                location=self.location,
                reasons=reasons,
                failures=(0,) * len(reasons),
                steps=tuple(StepSeries.of(s) for s in check.steps),
                slo=check.slo_objective,
                interval=check.interval_seconds,
                depends_on=tuple(check.depends_on),
            )
            return
        counts = dict(zip(old.reasons, old.failures, strict=True))
        old_steps = {step.name: step for step in old.steps}
        self._series[name] = replace(
            old,
            reasons=reasons,
            failures=tuple(counts.get(reason, 0) for reason in reasons),
            steps=tuple(_kept_or_new(old_steps.get(s.name), s) for s in check.steps),
            slo=check.slo_objective,
            interval=check.interval_seconds,
            depends_on=tuple(check.depends_on),
        )

    def accept(self, outcome: RunOutcome) -> None:
        result = outcome.result
        old = self._series.get(result.check)
        if old is None:  # removed by a reload while it ran
            return
        up = result.status is not Status.DOWN
        failures = old.failures
        reasons = old.reasons
        last_failure = old.last_failure
        if not up:
            reason = result.reason or "internal"
            if reason not in reasons:
                reasons, failures = (*reasons, reason), (*failures, 0)
            index = reasons.index(reason)
            failures = (*failures[:index], failures[index] + 1, *failures[index + 1 :])
            last_failure = (reason, result.failed_step or "")
        by_name = {step.name: step for step in result.steps}
        steps = []
        for series in old.steps:
            step = by_name.get(series.name)
            steps.append(series if step is None else series.after(step))
        self._series[result.check] = replace(
            old,
            reasons=reasons,
            failures=failures,
            steps=tuple(steps),
            runs=old.runs + 1,
            degraded=old.degraded + (result.status is Status.DEGRADED),
            duration=old.duration.observe(result.duration_seconds),
            state=outcome.state,
            success=int(up),
            last_run=result.started_at,
            last_success=result.started_at if up else old.last_success,
            last_failure=last_failure,
            retries=old.retries + result.retries,
            maintenance_runs=old.maintenance_runs + outcome.in_maintenance,
            maintenance_failures=old.maintenance_failures + (outcome.in_maintenance and not up),
        )

    def restore_state(self, check: str, state: Status | None) -> None:
        """The state a check had before a restart, shown until its first run."""
        old = self._series.get(check)
        if old is not None and old.runs == 0:
            self._series[check] = replace(old, state=state)

    def record_skip(self, check: str) -> None:
        old = self._series.get(check)
        if old is not None:
            self._series[check] = replace(old, skipped=old.skipped + 1)

    def series(self, check: str) -> CheckSeries | None:
        return self._series.get(check)

    def render_text(self) -> str:
        """Text exposition 0.0.4 of every check's series, whole: the chunks of
        `text_chunks` joined. For tests and benchmarks; /metrics streams the chunks."""
        return b"".join(self.text_chunks()).decode()

    def text_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """Text exposition 0.0.4 of every check's series as chunks of about `chunk_bytes`.

        Family-major, as the format requires: each family's `# HELP`/`# TYPE` header, then
        that family's block of every check. One snapshot of the checks is taken at the
        first `next()`, so the page is consistent however long it takes to send.

        Every `next()` does bounded work (at most `_RENDER_SLICE` checks re-rendered, or
        `_VISIT_SLICE` looked up, or one chunk gathered), so a consumer on the event loop
        can give the loop a turn between them. An empty chunk is such a point with
        nothing to send: it comes between slices of re-rendering the checks that changed.
        """
        snapshot = list(self._series.values())  # one atomic copy of the current references
        figures = self._figures
        headers = (*_HEADERS, *(family.header for family in figures))
        cache = self._cache
        blocks: list[tuple[bytes, ...]] = []
        names: set[str] = set()
        rendered = visited = 0
        for series in snapshot:
            cached = cache.get(series.check)
            if cached is None or cached[0] is not series or cached[1] is not figures:
                lines = render_check(series, figures)
                cached = (series, figures, tuple(map(str.encode, lines)))
                cache[series.check] = cached
                rendered += 1
            blocks.append(cached[2])
            names.add(series.check)
            visited += 1
            if rendered == _RENDER_SLICE or visited == _VISIT_SLICE:
                rendered = visited = 0
                yield b""
        for removed in cache.keys() - names:  # checks no longer configured
            cache.pop(removed, None)
        yield b""

        pending: list[bytes] = []
        size = 0
        for index, header in enumerate(headers):
            pending.append(header)
            size += len(header)
            take = itemgetter(index)
            for start in range(0, len(blocks), _GATHER_SLICE):
                parts = list(map(take, blocks[start : start + _GATHER_SLICE]))
                pending += parts
                size += sum(map(len, parts))
                if size >= chunk_bytes:
                    yield b"".join(pending)
                    pending, size = [], 0
        maintained = self._in_maintenance(self._clock())
        for index, header in enumerate(_LIVE_HEADERS):
            pending.append(header)
            size += len(header)
            for start in range(0, len(snapshot), _VISIT_SLICE):
                text = "".join(
                    self._live_lines(index, series, maintained)
                    for series in snapshot[start : start + _VISIT_SLICE]
                ).encode()
                pending.append(text)
                size += len(text)
                if size >= chunk_bytes:
                    yield b"".join(pending)
                    pending, size = [], 0
                else:
                    yield b""  # a turn for the loop between slices
        if pending:
            yield b"".join(pending)

    def _live_lines(self, family: int, series: CheckSeries, maintained: Collection[str]) -> str:
        base = f'check="{series.check}",location="{_escape(series.location)}"'
        if family == 0:
            return (
                f"uptime_probe_check_in_maintenance{{{base}}} {int(series.check in maintained)}.0\n"
            )
        return "".join(
            f'uptime_probe_check_suppressed{{{base},by="{needed}"}} '
            f"{int(self._failing(needed))}.0\n"
            for needed in series.depends_on
        )

    def collect(self) -> Iterator[Metric]:
        """The same series as prometheus-client families (OpenMetrics, and tests)."""
        snapshot = list(self._series.values())
        labels = ["check", "location"]
        fam = {name: (kind, help_text) for name, kind, help_text in FAMILIES}

        def gauge(name: str, extra: Sequence[str] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, fam[name][1], labels=[*labels, *extra])

        def counter(name: str, extra: Sequence[str] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(name, fam[name][1], labels=[*labels, *extra])

        def histogram(name: str, extra: Sequence[str] = ()) -> HistogramMetricFamily:
            return HistogramMetricFamily(name, fam[name][1], labels=[*labels, *extra])

        success = gauge("uptime_probe_check_success")
        state = gauge("uptime_probe_check_state", ["state"])
        runs = counter("uptime_probe_check_runs_total")
        failures = counter("uptime_probe_check_failures_total", ["reason"])
        degraded = counter("uptime_probe_check_degraded_total")
        duration = histogram("uptime_probe_check_duration_seconds")
        last_run = gauge("uptime_probe_check_last_run_timestamp_seconds")
        last_success = gauge("uptime_probe_check_last_success_timestamp_seconds")
        slo = gauge("uptime_probe_check_slo_objective")
        interval = gauge("uptime_probe_check_interval_seconds")
        info = gauge("uptime_probe_check_last_failure_info", ["reason", "step"])
        skipped = counter("uptime_probe_runs_skipped_total")
        retries = counter("uptime_probe_check_retries_total")
        maintenance_runs = counter("uptime_probe_check_maintenance_runs_total")
        maintenance_failures = counter("uptime_probe_check_maintenance_failures_total")
        live = {name: help_text for name, _kind, help_text in LIVE_FAMILIES}
        in_maintenance = GaugeMetricFamily(
            "uptime_probe_check_in_maintenance",
            live["uptime_probe_check_in_maintenance"],
            labels=labels,
        )
        suppressed = GaugeMetricFamily(
            "uptime_probe_check_suppressed",
            live["uptime_probe_check_suppressed"],
            labels=[*labels, "by"],
        )
        maintained = self._in_maintenance(self._clock())
        step_duration = histogram("uptime_probe_step_duration_seconds", ["step"])
        phase = gauge("uptime_probe_step_phase_seconds", ["step", "phase"])
        http_status = gauge("uptime_probe_step_http_status_code", ["step"])
        expiry = gauge("uptime_probe_step_tls_cert_expiry_timestamp_seconds", ["step"])
        figure_families = self._figures
        figures: list[GaugeMetricFamily | HistogramMetricFamily] = [
            HistogramMetricFamily(f.name, f.help, labels=[*labels, "step"])
            if f.kind == "histogram"
            else GaugeMetricFamily(f.name, f.help, labels=[*labels, "step"])
            for f in figure_families
        ]

        def buckets(data: HistogramData) -> list[tuple[str, float]]:
            bounds = (*map(_num, DURATION_BUCKETS), "+Inf")
            return list(zip(bounds, map(float, data.cumulative()), strict=True))

        for s in snapshot:
            key = [s.check, s.location]
            success.add_metric(key, s.success)
            for st in STATES:
                state.add_metric([*key, st.value], 1 if s.state is st else 0)
            runs.add_metric(key, s.runs)
            for reason, count in zip(s.reasons, s.failures, strict=True):
                failures.add_metric([*key, reason], count)
            degraded.add_metric(key, s.degraded)
            duration.add_metric(key, buckets(s.duration), s.duration.total)
            last_run.add_metric(key, s.last_run)
            last_success.add_metric(key, s.last_success)
            slo.add_metric(key, s.slo)
            interval.add_metric(key, s.interval)
            if s.last_failure is not None:
                info.add_metric([*key, *s.last_failure], 1)
            skipped.add_metric(key, s.skipped)
            retries.add_metric(key, s.retries)
            maintenance_runs.add_metric(key, s.maintenance_runs)
            maintenance_failures.add_metric(key, s.maintenance_failures)
            in_maintenance.add_metric(key, int(s.check in maintained))
            for needed in s.depends_on:
                suppressed.add_metric([*key, needed], int(self._failing(needed)))
            for step in s.steps:
                step_key = [*key, step.name]
                step_duration.add_metric(step_key, buckets(step.duration), step.duration.total)
                if step.http:
                    for name in PHASES:
                        phase.add_metric([*step_key, name], getattr(step.phases, name))
                    http_status.add_metric(step_key, step.http_status)
                if step.tls_not_after is not None:
                    expiry.add_metric(step_key, step.tls_not_after)
                for family, metric in zip(figure_families, figures, strict=True):
                    own = step.figures
                    if own is None or own.kind is not family.figures:
                        continue
                    if isinstance(metric, HistogramMetricFamily):
                        data = own.histograms[family.index]
                        metric.add_metric(step_key, buckets(data), data.total)
                    elif (value := own.gauges[family.index]) is not None:
                        metric.add_metric(step_key, value)
        yield from (
            success, state, runs, failures, degraded, duration, last_run, last_success, slo,
            interval, info, skipped, retries, maintenance_runs, maintenance_failures,
            step_duration, phase, http_status, expiry, in_maintenance, suppressed, *figures,
        )  # fmt: skip


class _LogDrops:
    """uptime_probe_log_records_dropped_total, read from the log writer at scrape time
    (logs.py counts; it exists before the daemon and its registry do)."""

    def __init__(self, dropped: Callable[[], int]) -> None:
        self._dropped = dropped

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "uptime_probe_log_records_dropped",
            "Log lines dropped because the log's reader did not keep up (stderr not read).",
            value=self._dropped(),
        )

    def describe(self) -> Iterator[CounterMetricFamily]:
        return self.collect()


class DaemonMetrics:
    """The daemon's own metrics, on a registry passed in (never the global one)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        shard: str = "0/1",
        log_records_dropped: Callable[[], int] | None = None,
    ) -> None:
        self.registry = registry
        registry.register(_LogDrops(log_records_dropped or (lambda: 0)))
        self.schedule_lag = Histogram(
            "uptime_probe_schedule_lag_seconds",
            "Delay between a run's planned and actual start.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.runs_in_flight = Gauge(
            "uptime_probe_runs_in_flight",
            "Runs probing now, each holding one of max_concurrency slots.",
            registry=registry,
        )
        self.runs_waiting = Gauge(
            "uptime_probe_runs_waiting",
            "Runs due but waiting for a slot under max_concurrency.",
            registry=registry,
        )
        self.reload_successful = Gauge(
            "uptime_probe_config_last_reload_successful",
            "1 if the last configuration load succeeded.",
            registry=registry,
        )
        self.reload_timestamp = Gauge(
            "uptime_probe_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully.",
            registry=registry,
        )
        self.build_info = Gauge(
            "uptime_probe_build_info",
            "Build and shard of this process.",
            ["version", "shard"],
            registry=registry,
        )
        self.build_info.labels(version=__version__, shard=shard).set(1)
        self.shard_checks = Gauge(
            "uptime_probe_shard_checks",
            "Checks this shard runs.",
            ["shard"],
            registry=registry,
        )
        self.shard = shard
        self.store_errors = Counter(
            "uptime_probe_store_errors",
            "Run summaries the store failed to write (lost).",
            registry=registry,
        )
        self.notifications = Counter(
            "uptime_probe_notifications",
            "Notification deliveries by notifier and result.",
            ["notifier", "result"],
            registry=registry,
        )
        self.store_available = Gauge(
            "uptime_probe_store_available",
            "1 while the history store is open and its last write succeeded, else 0.",
            registry=registry,
        )
        self.fd_limit = Gauge(
            "uptime_probe_fd_limit",
            "RLIMIT_NOFILE of the process, soft and hard (+Inf for unlimited).",
            ["limit"],
            registry=registry,
        )
        self.server_connections = Gauge(
            "uptime_probe_server_connections",
            "Connections the daemon's HTTP server holds open now.",
            registry=registry,
        )
        self.server_connections_limit = Gauge(
            "uptime_probe_server_connections_limit",
            "The most connections the HTTP server holds at once (after the descriptor share).",
            registry=registry,
        )
        self.server_connections_closed = Counter(
            "uptime_probe_server_connections_closed",
            "Connections the HTTP server closed to protect itself, by why.",
            ["why"],
            registry=registry,
        )
        ProcessCollector(registry=registry)


def wants_openmetrics(accept: str) -> bool:
    """OpenMetrics only for a scraper that cannot take the text format.

    Prometheus accepts both, OpenMetrics first (q=1 against 0.5), and is answered in text,
    as client_golang's exporters answer it by default: the same samples, and the text format
    is the streamed path. prometheus-client's OpenMetrics exposition took about 5 s at
    10,000 checks (docs/benchmarks.md, figure 5). Hand-parsed: aiohttp has no Accept parser,
    and only "is text/plain acceptable" is asked of it.
    """
    if "application/openmetrics-text" not in accept:
        return False
    for media_range in accept.split(","):
        media, *parameters = (part.strip() for part in media_range.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and media.lower() in ("text/plain", "text/*", "*/*"):
            return False
    return True


class MetricsExposition:
    """Renders /metrics in the format the scraper asked for."""

    def __init__(self, checks: CheckMetrics, daemon: DaemonMetrics) -> None:
        self.checks = checks
        self.daemon = daemon

    def render(self, accept: str = "") -> tuple[bytes, str]:
        if wants_openmetrics(accept):
            body: bytes = generate_openmetrics(_Union(self))  # type: ignore[no-untyped-call]
            return body, OPENMETRICS_CONTENT_TYPE
        return b"".join(self.text_chunks()), TEXT_CONTENT_TYPE

    def text_chunks(self) -> Iterator[bytes]:
        """The text exposition as `CheckMetrics.text_chunks` streams it (empty chunks are
        points to give the event loop a turn), then the daemon's own metrics: a few KB."""
        yield from self.checks.text_chunks()
        yield generate_latest(self.daemon.registry)


class _Union:
    def __init__(self, exposition: MetricsExposition) -> None:
        self._exposition = exposition

    def collect(self) -> Iterator[Metric]:
        yield from self._exposition.checks.collect()
        yield from self._exposition.daemon.registry.collect()
