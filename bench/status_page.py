"""What the status page costs at 500 and 1,000 checks, in process, on the real parts.

The daemon's page (`web.status.StatusPage`) over a real SQLite store holding, per check,
one run a day for 90 days and the last 60 runs of today, the states and latest outcomes in
memory as the daemon keeps them. Measured, each repeated:

- `model_cold_seconds`: building the page's model the first time (90 days of bars read);
- `model_seconds`: building it again, what every later view costs; before each view a
  third of the checks ran once (1,000 checks at a 30 s interval, viewed every 10 s, the
  page's own refresh): past days are kept, what those runs changed is read and redrawn;
- `render_seconds`: rendering and gzipping it (in the web layer's thread in the daemon);
- `first_request_seconds`: the first `GET /` (what `model_cold_seconds` is, and more);
- `request_seconds`: every later `GET /` through the daemon's web app on 127.0.0.1, gzip accepted,
  as a browser sends it: model, render and transfer; `request_cpu_seconds` the CPU time
  of the whole process meanwhile (every thread; the client's share is small), which a
  shared machine disturbs less than wall time;
- `loop_held_ms`: the longest the event loop was held during those requests
  (`LoopTicker`): what a scrape or a run's timer waiting behind the page would see.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import LoopTicker, Spread, run_daemon_measure
from bench.contenders import probes_config

DAY = 86400.0
HISTORY_DAYS = 90
RECENT_RUNS = 60
# Between two views, a third of the checks ran: 1,000 checks at a 30 s interval, viewed
# every 10 s (the page's own refresh).
RAN_BETWEEN_VIEWS = 3


def _source(checks: int, directory: Path) -> Any:
    """A `StatusSource` of real parts, wired as app.Daemon wires them."""
    from uptime_probe.config.model import Config
    from uptime_probe.sinks import FanOut
    from uptime_probe.state.checks import CheckStates
    from uptime_probe.state.incidents import IncidentTracker
    from uptime_probe.state.latest import LatestOutcomes
    from uptime_probe.state.maintenance import MaintenanceCalendar
    from uptime_probe.state.store import Store

    class Source:
        def __init__(self) -> None:
            self.config = Config.model_validate(
                probes_config(checks=checks, interval=30, url="http://127.0.0.1:9/json")
            )
            self.store = Store(directory, queue_size=checks * (HISTORY_DAYS + RECENT_RUNS) + 10)
            self.latest = LatestOutcomes()
            self.incidents = IncidentTracker([self.store.record_incident])
            self.maintenance = MaintenanceCalendar()
            self.check_states = CheckStates(
                FanOut([self.latest, self.store, self.incidents]),
                location="bench",
                calendar=self.maintenance,
            )
            self.check_states.apply(self.config.checks)
            self.maintenance.apply(self.config)

    return Source()


async def _fill(source: Any, now: float) -> None:
    from uptime_probe.probe.model import CheckResult, Status

    await source.store.open()
    today = now - now % DAY
    for check in source.config.checks:
        for day in range(HISTORY_DAYS, 0, -1):
            at = today - day * DAY + 3600
            source.check_states.accept(
                CheckResult(check.name, Status.UP, None, None, "1 step ok", at, 0.004)
            )
        for run in range(RECENT_RUNS):
            at = now - (RECENT_RUNS - run) * 0.5
            source.check_states.accept(
                CheckResult(check.name, Status.UP, None, None, "1 step ok", at, 0.004)
            )
    if not await source.store.flush(timeout=600):
        raise RuntimeError("the store did not write the history")


def _runs_since_last_view(source: Any, view: int) -> None:
    """A new run for every RAN_BETWEEN_VIEWS-th check, a different third each view."""
    from uptime_probe.probe.model import CheckResult, Status

    now = time.time()
    for index, check in enumerate(source.config.checks):
        if index % RAN_BETWEEN_VIEWS == view % RAN_BETWEEN_VIEWS:
            source.check_states.accept(
                CheckResult(check.name, Status.UP, None, None, "1 step ok", now, 0.004)
            )


async def _measure(checks: int, repeats: int) -> dict[str, Any]:
    import aiohttp
    from aiohttp.test_utils import TestServer
    from prometheus_client import CollectorRegistry

    from uptime_probe.metrics import CheckMetrics, DaemonMetrics, MetricsExposition
    from uptime_probe.web.server import DaemonControl, ReloadOutcome, build_web_app
    from uptime_probe.web.status import StatusPage

    async def no_reload() -> ReloadOutcome:
        return ReloadOutcome(False, "not in the benchmark")

    out: dict[str, Any] = {"checks": checks}
    with tempfile.TemporaryDirectory() as directory:
        source = _source(checks, Path(directory))
        now = time.time()
        await _fill(source, now)
        try:
            page = StatusPage(source)
            started = time.perf_counter()
            model = await page.model(time.time())
            out["model_cold_seconds"] = time.perf_counter() - started
            models, renders = [], []
            for view in range(repeats):
                _runs_since_last_view(source, view)
                await source.store.flush()
                started = time.perf_counter()
                model = await page.model(time.time())
                models.append(time.perf_counter() - started)
                started = time.perf_counter()
                body, _zipped = page.body(model, "nonce", True)
                renders.append(time.perf_counter() - started)
            out["model_seconds"] = Spread.of(models).as_dict()
            out["render_seconds"] = Spread.of(renders).as_dict()
            out["page_bytes_gzip"] = len(body)
            out["page_bytes"] = len(page.render(model, "nonce"))
            control = DaemonControl(
                exposition=MetricsExposition(
                    CheckMetrics("bench"), DaemonMetrics(CollectorRegistry(auto_describe=True))
                ),
                readiness=lambda: (True, "ready"),
                reload=no_reload,
                enable_lifecycle=lambda: False,
                status=source,
            )
            server = TestServer(build_web_app(control), host="127.0.0.1")
            await server.start_server()
            requests, cpus, held = [], [], []
            try:
                # Not decompressed: the client's work is not the daemon's.
                async with aiohttp.ClientSession(auto_decompress=False) as session:
                    url, gzip_ok = server.make_url("/"), {"Accept-Encoding": "gzip"}
                    started = time.perf_counter()
                    async with session.get(url, headers=gzip_ok) as response:
                        await response.read()
                    out["first_request_seconds"] = time.perf_counter() - started
                    for view in range(repeats):
                        _runs_since_last_view(source, view)
                        await source.store.flush()
                        ticker = LoopTicker()
                        ticker.start()
                        cpu = time.process_time()
                        started = time.perf_counter()
                        async with session.get(url, headers=gzip_ok) as response:
                            await response.read()
                            if response.status != 200:
                                raise RuntimeError(f"GET / answered {response.status}")
                        requests.append(time.perf_counter() - started)
                        cpus.append(time.process_time() - cpu)
                        await ticker.stop()
                        held.append(max(ticker.held, default=0.0))
            finally:
                await server.close()
            out["request_seconds"] = Spread.of(requests).as_dict()
            out["request_cpu_seconds"] = Spread.of(cpus).as_dict()
            out["loop_held_ms"] = Spread.of(h * 1e3 for h in held).as_dict()
        finally:
            await source.store.close()
    return out


def status_page_cost(checks: int, repeats: int = 5) -> dict[str, Any]:
    """The page's build, render and request times at `checks` checks (uvloop)."""
    return run_daemon_measure(_measure(checks, repeats))


if __name__ == "__main__":
    import json
    import sys

    for count in [int(arg) for arg in sys.argv[1:]] or [500, 1000]:
        print(json.dumps(status_page_cost(count), indent=1), flush=True)
