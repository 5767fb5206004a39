"""The one place that builds and wires everything: start, reload, stop, signals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import pickle
import signal
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from uptime_probe.alerting import RESULTS, NotificationDispatcher
from uptime_probe.config import ConfigError
from uptime_probe.config.compact import share_equal_values
from uptime_probe.config.isolated import (
    ChildFailed,
    config_steps,
    load_with_location,
    parse_in_child,
    should_isolate,
)
from uptime_probe.config.model import Config
from uptime_probe.config.redaction import Redactor
from uptime_probe.config.validate import maintenance_warnings
from uptime_probe.descriptors import (
    LISTEN_BACKLOG,
    current_limits,
    raise_soft_limit,
    share_descriptors,
)
from uptime_probe.housekeeping import Housekeeping
from uptime_probe.logs import LogOutput
from uptime_probe.memory import release_free_memory
from uptime_probe.metrics import CheckMetrics, DaemonMetrics, MetricsExposition
from uptime_probe.probe import CheckPlan, CheckResult, TlsContexts, compile_each, run_check
from uptime_probe.probe.artifacts import ARTIFACTS, ArtifactStore
from uptime_probe.probe.browser_pool import BROWSER, BrowserPool
from uptime_probe.probe.judging import JudgingPool
from uptime_probe.probe.plan import judged_off_loop
from uptime_probe.probe.resolve import ProbeResolver
from uptime_probe.probe.sessions import SessionPool
from uptime_probe.scheduler import Scheduler
from uptime_probe.sharding import SINGLE, Shard, select
from uptime_probe.sinks import FanOut, LogSink, ResultSink
from uptime_probe.slices import Steps, run_all, run_in_slices
from uptime_probe.state.checks import CheckStates
from uptime_probe.state.incidents import IncidentTracker
from uptime_probe.state.latest import LatestOutcomes
from uptime_probe.state.maintenance import MaintenanceCalendar
from uptime_probe.state.store import Store
from uptime_probe.web.connections import CLOSE_REASONS, ConnectionGuard
from uptime_probe.web.server import DaemonControl, ReloadOutcome, build_web_app

log = structlog.get_logger("uptime_probe.app")

LOGGED_NAMES = 50  # check names per list in a `config_applied` event

DEFAULT_GRACE_SECONDS = 10.0


def log_chromium_started(sandboxed: bool, unsandboxed_because: str) -> None:
    """Each start of Chromium (the first browser run, and after it died), and whether its
    renderers, which run the probed pages' scripts, are in Chromium's own sandbox."""
    if sandboxed:
        log.info("chromium_started", sandbox=True)
    else:
        log.warning("chromium_started", sandbox=False, why=unsandboxed_because)


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    config_path: Path
    listen: str | None = None  # overrides server.listen (tests, demo)
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    data_dir: Path | None = None  # `--data-dir`; None: the config's `store.data_dir`
    shard: Shard = SINGLE
    location: str | None = None  # overrides the config's `location` (one per deployment)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A config made ready off the event loop, for `Daemon._apply_steps`."""

    config: Config  # this shard's checks only
    tls: TlsContexts
    redactor: Redactor | None  # for its secrets, when the daemon redacts its logs


def _release_steps(replaced: Config) -> Steps[None]:
    """Let go of a replaced config a check at a time (what is still in use stays). The
    caller keeps no other reference: the config itself goes with the first step."""
    checks = list(replaced.checks)
    del replaced
    while checks:
        checks.pop()
        yield


@contextlib.contextmanager
def full_collections_paused() -> Iterator[None]:
    """No full (generation 2) collection meanwhile; young ones go on as usual."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, 2**30)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - scraped from outside


class Daemon:
    def __init__(
        self,
        config: Config,
        options: DaemonOptions,
        logs: LogOutput | None,
        extra_sinks: Sequence[ResultSink] = (),
    ) -> None:
        self.options = options
        self.config = config
        self._redact = logs.redact if logs is not None else None
        self._config_digest = self._digest()
        self.registry = CollectorRegistry(auto_describe=True)
        self.daemon_metrics = DaemonMetrics(
            self.registry,
            shard=options.shard.label,
            log_records_dropped=(lambda: logs.writer.dropped) if logs is not None else None,
        )
        # Config windows from the file, API windows from the store (restored at start).
        self.maintenance = MaintenanceCalendar()
        self.check_metrics = CheckMetrics(
            config.location,
            in_maintenance=self.maintenance.checks_in_maintenance,
            failing=lambda check: self.check_states.failing(check),
        )
        self.store = Store(
            options.data_dir or config.store.data_dir_path,
            on_loss=self.daemon_metrics.store_errors.inc,
            raw_retention=config.store.raw_retention,
            rollup_retention=config.store.rollup_retention,
        )
        self.latest = LatestOutcomes()
        # Judges heavy responses in worker processes, started when first needed; shared by
        # every config's plans, so a reload keeps the workers (probe/judging.py).
        self.judging = JudgingPool()
        self.notifications = NotificationDispatcher(
            config,
            on_result=self._count_notification,
            in_maintenance=lambda check: self.maintenance.open_for(check, time.time()) is not None,
        )
        self.incidents = IncidentTracker([self.store.record_incident, self.notifications.notify])
        # scheduler -> check states -> every sink. Each sink reads only the outcome it is
        # given, so their order does not matter, and one raising does not stop the others.
        self.check_states = CheckStates(
            FanOut(
                [
                    self.check_metrics,
                    self.latest,
                    LogSink(),
                    self.store,
                    self.incidents,
                    *extra_sinks,
                ]
            ),
            location=config.location,
            calendar=self.maintenance,
        )
        self.scheduler = Scheduler(
            on_result=self.check_states.accept,
            max_concurrency=config.max_concurrency,
            observe_lag=self.daemon_metrics.schedule_lag.observe,
            on_skip=self.check_metrics.record_skip,
            run=self._run_check,
        )
        self.daemon_metrics.runs_in_flight.set_function(lambda: self.scheduler.runs_probing)
        self.daemon_metrics.runs_waiting.set_function(lambda: self.scheduler.runs_waiting)
        self.connections = ConnectionGuard(
            max_connections=config.server.max_connections,
            header_timeout=config.server.header_timeout,
            on_close=self._count_connection_closed,
        )
        self._wire_resource_metrics()
        self.exposition = MetricsExposition(self.check_metrics, self.daemon_metrics)
        self._reload_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.housekeeping = Housekeeping()  # periodic upkeep; check runs are the scheduler's
        self._tasks: set[asyncio.Task[object]] = set()  # kept until they end
        self.address: tuple[str, int] | None = None
        # Made in start(): c-ares binds to the running loop (docs/reliability.md, DNS).
        self._resolver: ProbeResolver | None = None
        # HTTP sessions runs borrow and hand back clean, on that resolver (probe/sessions.py).
        self._sessions: SessionPool | None = None
        # One Chromium for the daemon, started by the first browser step that runs; failed
        # browser steps' screenshots under the data directory.
        self.browsers = BrowserPool(
            config.browser.executable,
            max_concurrent=config.browser.max_concurrent,
            on_launch=log_chromium_started,
        )
        self.artifacts = ArtifactStore(
            (options.data_dir or config.store.data_dir_path) / "artifacts",
            config.browser.keep_screenshots,
            traces=config.browser.keep_traces,
        )
        self._resources: dict[str, object] = {BROWSER: self.browsers, ARTIFACTS: self.artifacts}

    async def _run_check(self, plan: CheckPlan) -> CheckResult:
        # A browser run waits for a browser slot before its deadline starts: late, never
        # failed for the wait (probe/browser_pool.py).
        async with self.browsers.slot_for(plan):
            return await run_check(
                plan, resolver=self._resolver, resources=self._resources, sessions=self._sessions
            )

    def _digest(self) -> str:
        try:
            return hashlib.sha256(self.options.config_path.read_bytes()).hexdigest()
        except OSError:
            return ""

    def _wire_resource_metrics(self) -> None:
        """Gauges read at scrape time: descriptors, the server's connections, the store."""
        metrics = self.daemon_metrics
        metrics.fd_limit.labels(limit="soft").set_function(
            lambda: _limit_value(current_limits().soft)
        )
        metrics.fd_limit.labels(limit="hard").set_function(
            lambda: _limit_value(current_limits().hard)
        )
        metrics.server_connections.set_function(lambda: self.connections.open)
        metrics.server_connections_limit.set_function(lambda: self.connections.max_connections)
        for why in CLOSE_REASONS:  # every series from 0, so increase() sees the first
            metrics.server_connections_closed.labels(why=why)
        metrics.store_available.set_function(lambda: 1.0 if self.store.available else 0.0)

    def _count_connection_closed(self, why: str) -> None:
        self.daemon_metrics.server_connections_closed.labels(why=why).inc()

    def _share_descriptors(self, config: Config, checks: int) -> int:
        """Cap the server's connections and the runs in flight to what the descriptor
        limit holds for both (descriptors.py); the runs allowed in flight."""
        limits = current_limits()
        share = share_descriptors(
            limits.soft,
            max_connections=config.server.max_connections,
            max_concurrency=config.max_concurrency,
            checks=checks,
        )
        self.connections.configure(config.server, share.server_connections)
        if not share.fits:
            log.warning(
                "descriptor_limit_short",
                soft_limit=limits.soft,
                hard_limit=limits.hard,
                server_connections=share.server_connections,
                max_concurrency=share.max_concurrency,
                why="raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower "
                "server.max_connections or max_concurrency",
            )
        return share.max_concurrency

    def _count_notification(self, notifier: str, result: str) -> None:
        self.daemon_metrics.notifications.labels(notifier=notifier, result=result).inc()

    def _prepare(self, config: Config) -> Prepared:
        """This shard's checks, their TLS contexts and a redactor for the secrets (tens of
        milliseconds of C code each, which lets the event loop run): done in a thread."""
        mine = select(config.checks, self.options.shard, config.location)
        config = config.model_copy(update={"checks": mine})
        redactor = Redactor(config.secret_values()) if self._redact is not None else None
        return Prepared(config, TlsContexts.of(config), redactor)

    def _start_judging(self) -> None:
        """Start the judging zygote now rather than at the first answer over the inline
        budget (probe/judging.py): a JSON schema is always judged in a worker, and
        `judging.start: at_start` asks for it. In the background: runs go on meanwhile."""

        async def start() -> None:
            try:
                await self.judging.start()
            except OSError as exc:  # tried again by the first answer that needs it
                log.warning("judging_not_started", error=str(exc))

        task = asyncio.create_task(start(), name="judging-start")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _apply_steps(self, prepared: Prepared) -> Steps[None]:
        """Make the daemon run `prepared`, a check at a time (slices.py).

        Applied whole, 10,000 checks held the event loop more than a second (compiling,
        series, thresholds, windows, routes, timers). Checks are compiled here rather than
        in a thread: a thread computing takes the interpreter lock from the loop in 5 ms
        turns, longer when the machine is busy. Between steps runs go on, so the order
        keeps every run judged consistently: what judges and routes a check's runs (series,
        thresholds, windows, notification routes) is in place before the scheduler starts
        it, and a removed check is unscheduled before what it leaves behind is forgotten.
        """
        config = prepared.config
        plans: dict[str, CheckPlan] = {}
        off_loop = False  # a check at a time: over 10,000 plans at once, 5 ms
        for name, plan in compile_each(config, prepared.tls, self.judging):
            plans[name] = plan
            off_loop = off_loop or judged_off_loop((plan,))
            yield
        if config.judging.start == "at_start" or off_loop:
            self._start_judging()
        if self._redact is not None and prepared.redactor is not None:
            self._redact.redactor = prepared.redactor
        self.check_metrics.location = config.location
        yield from self.check_metrics.sync_steps(config.checks)
        self.browsers.configure(
            executable=config.browser.executable, max_concurrent=config.browser.max_concurrent
        )
        self.artifacts.keep = config.browser.keep_screenshots
        self.artifacts.traces = config.browser.keep_traces
        if config.skipped_checks:
            log.warning(
                "browser_checks_skipped",
                checks=list(config.skipped_checks[:LOGGED_NAMES]),
                why=config.skipped_because,
            )
        not_local = yield from self.check_states.apply_steps(config.checks)
        for check, needed in not_local:
            log.warning(
                "dependency_not_local",
                check=check,
                depends_on=needed,
                why="this process does not run it (shard or locations): it never holds back",
            )
        yield from self.maintenance.apply_steps(config)
        now = time.time()
        for warning in maintenance_warnings(config, now):
            log.warning("maintenance_window_over", where=str(warning))
        self.maintenance.forget_before(now)
        yield from self.notifications.update_steps(config)
        for name in config.notifiers:  # every series from 0, so increase() sees the first
            for result in RESULTS:
                self.daemon_metrics.notifications.labels(notifier=name, result=result)
        self.scheduler.set_max_concurrency(self._share_descriptors(config, len(plans)))
        change = yield from self.scheduler.apply_steps(plans)
        for name in change.removed:
            self.incidents.forget(name)
            yield
        self.latest.retain(plans)
        yield
        # Freed whole, the replaced config's 10,000 checks took 40 ms: one at a time.
        release = _release_steps(self.config)
        self.config = config
        self.housekeeping.every(config.server.watch_interval, "config-watch", self._watch_config)
        self.daemon_metrics.shard_checks.labels(shard=self.daemon_metrics.shard).set(len(plans))
        self.daemon_metrics.reload_successful.set(1)
        self.daemon_metrics.reload_timestamp.set(time.time())
        yield from release
        # What a config builds (plans, jobs, series) lives until the next reload: move it
        # out of the cyclic GC's full passes, which with 2,000 checks each held the event
        # loop for 80-160 ms (tests/faults). Measured: nothing frozen leaks across reloads.
        gc.freeze()
        # The first names of each list, and how many: a start with 10,000 checks logged one
        # 130 KB line of names.
        log.info(
            "config_applied",
            checks=len(plans),
            added=list(change.added[:LOGGED_NAMES]),
            removed=list(change.removed[:LOGGED_NAMES]),
            updated=list(change.updated[:LOGGED_NAMES]),
            counts={"added": len(change.added), "removed": len(change.removed),
                    "updated": len(change.updated)},
        )  # fmt: skip

    async def reload(self, trigger: str) -> ReloadOutcome:
        async with self._reload_lock:
            try:
                return await self._reload(trigger)
            except ConfigError as exc:
                self.daemon_metrics.reload_successful.set(0)
                log.error("config_reload_failed", trigger=trigger, error=str(exc))
                return ReloadOutcome(False, f"config error:\n{exc}")

    async def _reload(self, trigger: str) -> ReloadOutcome:
        loaded, parsed_in = await read_config(self.options)
        # From the config's objects until they are frozen (gc.freeze, at the end of the
        # apply), a full collection would walk them all: 0.5 s at 10,000 checks. Not
        # during a child's parse: runs' garbage waiting for a full collection meanwhile
        # would be frozen with the config.
        with full_collections_paused():
            config = loaded if isinstance(loaded, Config) else await run_in_slices(loaded)
            self._config_digest = await asyncio.to_thread(self._digest)
            if config.location != self.config.location:
                log.warning("config_location_ignored", why="location changes need a restart")
                config = config.model_copy(update={"location": self.config.location})
            if config.dns != self.config.dns:
                # Runs in flight hold the resolver; swapping it under them is not worth it.
                log.warning("config_dns_ignored", why="dns changes need a restart")
                config = config.model_copy(update={"dns": self.config.dns})
            prepared = await asyncio.to_thread(self._prepare, config)
            if self._stop.is_set():  # stopping began while it was read: keep what runs
                return ReloadOutcome(False, "daemon is stopping")
            await run_in_slices(self._apply_steps(prepared))
            release_free_memory()  # what loading and compiling the config freed (memory.py)
        log.info("config_reloaded", trigger=trigger, parsed_in=parsed_in)
        return ReloadOutcome(True, "config reloaded")

    def reload_in_background(self, trigger: str) -> None:
        """For signal handlers: reload without awaiting, keeping the task until it ends."""
        task = asyncio.create_task(self.reload(trigger), name=f"reload-{trigger}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def readiness(self) -> tuple[bool, str]:
        if not self.scheduler.running:
            return False, "scheduler not running"
        detail = f"ready: {len(self.scheduler.checks)} checks scheduled"
        problem = self.store.problem
        if problem is not None:
            # Still ready: probing and /metrics do not need the store, and an orchestrator
            # that pulled the daemon out of service would end the monitoring too.
            detail += f"; history store unavailable ({problem}): runs are not recorded"
        return True, detail

    async def _restore(self) -> None:
        """Each check's state and the open incidents, as they were before a restart."""
        states = await self.store.check_states()
        for name, state in self.check_states.restore(states).items():
            self.check_metrics.restore_state(name, state)
        # A check removed from the config while down keeps its incident in storage;
        # only incidents of checks this process runs can resolve, so only they are tracked.
        open_incidents = [
            i for i in await self.store.open_incidents() if i.check in self.scheduler.checks
        ]
        self.incidents.restore(open_incidents)
        self.notifications.restore(open_incidents)
        windows = await self.store.windows(ending_after=time.time())
        self.maintenance.restore(windows)
        if states or open_incidents or windows:
            log.info(
                "state_restored",
                checks=len(states),
                open_incidents=len(open_incidents),
                maintenance_windows=len(windows),
            )

    async def _store_opened(self) -> None:
        """The store opened after the start: history resumes from here.

        Incidents stored open before the restart, of checks with none open now, are
        tracked again, so a good run resolves them; incidents opened while the store was
        away are written now rather than at their next change.
        """
        tracked = {incident.check for incident in self.incidents.open_incidents()}
        orphans = [
            incident
            for incident in await self.store.open_incidents()
            if incident.check in self.scheduler.checks and incident.check not in tracked
        ]
        self.incidents.restore(orphans)
        self.notifications.restore(orphans)
        for incident in self.incidents.open_incidents():
            self.store.save_incident(incident)

    async def start(self) -> None:
        self._resolver = ProbeResolver(self.config.dns)
        # A store that cannot be opened (full or read-only data dir) is retried in the
        # background: probing and /metrics matter more than history.
        opened = await self.store.start(
            retry_interval=self.config.store.retry_interval, on_opened=self._store_opened
        )
        run_all(self._apply_steps(self._prepare(self.config)))  # nothing runs yet: at once
        if opened:
            try:
                await self._restore()
            except (sqlite3.Error, OSError) as exc:  # opened, but unreadable: start fresh
                log.error("state_not_restored", error=str(exc))
        await self.notifications.start()
        self._sessions = SessionPool(self._resolver)
        self.scheduler.start()
        control = DaemonControl(
            exposition=self.exposition,
            readiness=self.readiness,
            reload=lambda: self.reload("http"),
            enable_lifecycle=lambda: self.config.server.enable_lifecycle,
            status=self,
            artifacts=self.artifacts,
        )
        self._runner = web.AppRunner(
            build_web_app(control, self.connections), access_log=None, handle_signals=False
        )
        await self._runner.setup()
        host, port = _split_listen(self.options.listen or self.config.server.listen)
        self._server = await self.connections.start_server(
            self._runner, host, port, backlog=LISTEN_BACKLOG
        )
        bound = self._server.sockets[0].getsockname()  # the real port when asked for port 0
        self.address = (str(bound[0]), int(bound[1]))
        self.housekeeping.start()
        release_free_memory()  # what loading and compiling the config freed (memory.py)
        log.info(
            "daemon_started",
            listen=f"{self.address[0]}:{self.address[1]}",
            checks=len(self.config.checks),
            event_loop=type(asyncio.get_running_loop()).__module__.partition(".")[0],
        )

    async def _watch_config(self) -> None:
        digest = await asyncio.to_thread(self._digest)  # 10,000 checks: 3 MB to hash
        if digest and digest != self._config_digest:
            self._config_digest = digest
            try:
                await self.reload("file_changed")
            except Exception:
                # A bug in applying a config must not end watching for the next one.
                log.exception("config_watch_failed")

    def request_stop(self, why: str) -> None:
        if not self._stop.is_set():
            log.info("stop_requested", why=why)
        self._stop.set()

    async def close_resolver(self) -> None:
        if self._sessions is not None:
            await self._sessions.close()
            self._sessions = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def wait_for_stop(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        await self.housekeeping.stop()
        cancelled = await self.scheduler.stop(self.options.grace_seconds)
        await self.judging.close()
        await self.notifications.close(self.options.grace_seconds)
        if self._server is not None:
            self._server.close()  # no new connections; the runner ends the open ones
        if self._runner is not None:
            await self._runner.cleanup()
        await self.close_resolver()
        await self.browsers.close()
        self.artifacts.close()
        await self.store.close()
        log.info("daemon_stopped", cancelled_runs=cancelled, store_lost_rows=self.store.lost)


def _limit_value(limit: int | None) -> float:
    return float("inf") if limit is None else float(limit)


def load_deployment_config(options: DaemonOptions) -> Config:
    """The config file as this deployment sees it: `--location` overrides its location.

    Returned rebuilt from a pickle, once everything its parse allocated is gone. Parsing
    10,000 checks allocates ~190 MB of short-lived YAML objects, and the config's own
    objects (strings from the document, models) are allocated among them. Freed, they leave
    CPython's allocator arenas mostly empty but pinned by the config: RSS stayed 207 MB up
    for a config whose objects take 48 MB. Rebuilt after the original is dropped, its
    objects sit together: 87 MB (figure 6 of docs/benchmarks.md is the whole daemon's RSS).
    """
    parsed = _parse_and_pickle(options)  # nothing of the parse outlives this call
    if isinstance(parsed, bytes):
        rebuilt: Config = pickle.loads(parsed)  # noqa: S301 - our own bytes, made just above
        return rebuilt
    return parsed


async def read_config(options: DaemonOptions) -> tuple[Config | Steps[Config], str]:
    """The config file read off the event loop, and where: a large one by a child process
    (config/isolated.py; made a config by the steps returned, which raise its ConfigError:
    on the loop in slices for a reload, at once for a start), a small one in a thread.

    The daemon then never holds a large parse's ~190 MB of YAML objects, whose freed arenas
    stayed resident: at 10,000 checks the config takes 45 MB parsed by the child, 58-69 MB
    parsed in the daemon and rebuilt (docs/benchmarks.md)."""
    path, location = options.config_path, options.location
    if await asyncio.to_thread(should_isolate, path):
        try:
            return config_steps(await parse_in_child(path, location)), "child"
        except (ChildFailed, OSError) as exc:
            log.warning("config_child_failed", error=str(exc), why="parsed in a thread")
    return await asyncio.to_thread(load_deployment_config, options), "thread"


def _parse_and_pickle(options: DaemonOptions) -> bytes | Config:
    config = load_with_location(options.config_path, options.location)
    share_equal_values(config)  # 10,000 checks repeat the same strings and field sets
    try:
        return pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        log.warning("config_not_compacted", error=str(exc))  # a bug, but no reason to stop
        return config


# How many young-generation collections CPython lets pass before it considers a full one
# (its default is 10). A full pass walks every live object not frozen and stops the loop
# meanwhile: at 10,000 checks 65-130 ms, because every run replaces its check's snapshots
# and the promoted replacements keep a pass due. With 100 there, 1 full pass came in 90 s
# instead of 8, and the longest schedule lag was 65-74 ms instead of 69-130 ms
# (docs/benchmarks.md, the garbage collector experiment). Cyclic garbage that reaches the
# oldest generation waits that much longer to be freed.
FULL_COLLECTION_EVERY = 100


def tune_garbage_collector() -> None:
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


async def serve(options: DaemonOptions, logs: LogOutput | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT; SIGHUP reloads. Returns the exit code."""
    tune_garbage_collector()
    limits = raise_soft_limit()  # before anything holds a descriptor it could run out of
    log.info("descriptor_limits", soft=limits.soft, hard=limits.hard)
    try:
        loaded, parsed_in = await read_config(options)
        config = loaded if isinstance(loaded, Config) else run_all(loaded)
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        return 2
    log.info("config_read", path=str(options.config_path), parsed_in=parsed_in)
    daemon = Daemon(config, options, logs)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, daemon.request_stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, daemon.request_stop, "SIGINT")
    loop.add_signal_handler(signal.SIGHUP, daemon.reload_in_background, "SIGHUP")
    try:
        await daemon.start()
    except (OSError, sqlite3.Error) as exc:
        log.error("start_failed", error=str(exc))
        await daemon.scheduler.stop(0)
        await daemon.judging.close()
        await daemon.notifications.close(0)
        await daemon.close_resolver()
        await daemon.browsers.close()
        await daemon.store.close()
        return 1
    await daemon.wait_for_stop()
    await daemon.stop()
    return 0
