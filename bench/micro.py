"""In-process measurements of single choices: metric rendering, JSON parsing, one run's cost.

These isolate what the daemon-level figures cannot: how long `/metrics` takes to render
through our cached text renderer versus prometheus-client's generic exposition of the
same series, and what the JSON parser costs per run next to a run's whole CPU.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import Any

from bench.common import Spread
from bench.contenders import probes_config
from bench.targets import JSON_DOCUMENT


def synthetic_metrics(checks: int) -> Any:
    """A CheckMetrics holding `checks` one-step checks, each after one up run."""
    from uptime_probe.config.model import Config
    from uptime_probe.metrics import CheckMetrics
    from uptime_probe.probe.model import CheckResult, PhaseTimings, Status, StepResult
    from uptime_probe.sinks import RunOutcome

    config = Config.model_validate(
        probes_config(checks=checks, interval=30, url="http://127.0.0.1:9/json")
    )
    metrics = CheckMetrics("bench")
    metrics.sync_checks(config.checks)
    now = time.time()
    for check in config.checks:
        step = StepResult(
            name="get",
            status=Status.UP,
            reason=None,
            message="HTTP 200",
            duration_seconds=0.0042,
            http_status=200,
            timings=PhaseTimings(connect=0.0003, processing=0.003, transfer=0.0002),
        )
        result = CheckResult(
            check=check.name,
            status=Status.UP,
            reason=None,
            failed_step=None,
            message="1 step ok",
            started_at=now,
            duration_seconds=0.0045,
            steps=(step,),
        )
        metrics.accept(RunOutcome(result, Status.UP, None, "bench"))
    return metrics


def _best_of(fn: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def render_comparison(checks: int, repeats: int = 3) -> dict[str, Any]:
    """Our fast text renderer (cold: every check changed; warm: none changed) vs the library's."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest

    metrics = synthetic_metrics(checks)
    cold = []
    for _ in range(repeats):
        metrics._cache = {}  # as if every check had run since the last scrape
        cold.extend(_best_of(metrics.render_text, 1))
    warm = _best_of(metrics.render_text, repeats)
    text = metrics.render_text().encode()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    library = _best_of(lambda: generate_latest(registry), repeats)
    library_size = len(generate_latest(registry))
    return {
        "checks": checks,
        "ours_cold_seconds": Spread.of(cold).as_dict(),
        "ours_warm_seconds": Spread.of(warm).as_dict(),
        "library_seconds": Spread.of(library).as_dict(),
        "ours_bytes": len(text),
        "library_bytes": library_size,
        "series": text.count(b"\n") - text.count(b"\n#"),
    }


def json_comparison(iterations: int = 20_000) -> dict[str, Any]:
    """json.loads vs orjson.loads on the benchmark's JSON body (what a JSON assertion parses)."""
    body = json.dumps(JSON_DOCUMENT).encode()
    history = json.dumps(
        {
            "items": [
                {"id": f"conv_{i:04d}", "title": f"Conversation {i}", "update_time": 1.7e9}
                for i in range(20)
            ],
            "total": 57,
            "offset": 0,
            "limit": 20,
        }
    ).encode()
    out: dict[str, Any] = {"bodies": {"json": len(body), "history": len(history)}}

    def per_call(fn: Callable[[bytes], Any], data: bytes) -> float:
        started = time.perf_counter()
        for _ in range(iterations):
            fn(data)
        return (time.perf_counter() - started) / iterations

    def stdlib(data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))  # what ResponseView.json does

    parsers: dict[str, Callable[[bytes], Any]] = {"json": stdlib}
    try:
        import orjson

        parsers["orjson"] = orjson.loads
    except ImportError:
        out["orjson"] = "not installed"
    for name, fn in parsers.items():
        for label, data in (("json", body), ("history", history)):
            out[f"{name}_{label}_us"] = Spread.of(
                per_call(fn, data) * 1e6 for _ in range(3)
            ).as_dict()
    return out


def judging_cost(iterations: int = 5_000, worker_jobs: int = 200) -> dict[str, Any]:
    """What judging one response costs the event loop, where the daemon judges it.

    - `inline_us`: the benchmark's body and JSON assertion (`length(items) > 0`) judged on
      the loop under its InlineBudget, as the daemon does for a small answer (CPU per
      response, in this thread);
    - `worker_round_trip_ms`: the same response sent to a worker process and its verdict
      read back (wall time; the loop is free meanwhile);
    - `worker_1mib_ms`: a 1 MiB `[1,1,...]` body with the same assertion, in a worker;
    - `thread_gil`: how a pure-Python query (about 1 s) run in a thread, instead of a
      process, slows the loop: 1 ms ticks per second and their lag, idle vs. during it.
    """
    import asyncio

    from multidict import CIMultiDict, CIMultiDictProxy

    from uptime_probe.config.model import Config
    from uptime_probe.probe import compile_checks
    from uptime_probe.probe.judging import JudgingPool
    from uptime_probe.probe.tracing import PhaseRecorder

    body = json.dumps(JSON_DOCUMENT).encode()
    big = b'{"items":[' + b",".join([b"1"] * 524_278) + b"]}"
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
    config = Config.model_validate(
        probes_config(checks=1, interval=30, url="http://127.0.0.1:9/json")
    )

    async def measure() -> dict[str, Any]:
        out: dict[str, Any] = {"body_bytes": len(body)}
        async with JudgingPool() as pool:
            await pool.start()
            judge = next(iter(compile_checks(config, judging=pool).values())).steps[0].judge
            recorder = PhaseRecorder()
            started = time.process_time()
            for _ in range(iterations):
                judged = await judge.judge(200, headers, body, recorder)
            out["inline_us"] = 1e6 * (time.process_time() - started) / iterations
            out["inline_status"] = str(judged.verdict.status)
            round_trips = []
            for _ in range(worker_jobs):
                started = time.perf_counter()
                await pool.judge(judge.spec(), 200, headers, body, lambda _what: None)
                round_trips.append(time.perf_counter() - started)
            out["worker_round_trip_ms"] = Spread.of(t * 1e3 for t in round_trips).as_dict()
            started = time.perf_counter()
            verdict = await pool.judge(judge.spec(), 200, headers, big, lambda _what: None)
            out["worker_1mib_ms"] = 1e3 * (time.perf_counter() - started)
            out["worker_1mib_status"] = str(verdict.status)
        out["thread_gil"] = await _thread_gil()
        return out

    return asyncio.run(measure())


async def _thread_gil() -> dict[str, Any]:
    import asyncio

    import jmespath

    big = b'{"items":[' + b",".join([b"1"] * 524_278) + b"]}"
    query = jmespath.compile("length(items[?@ > `0`])")
    out: dict[str, Any] = {}
    for label in ("idle", "query_in_a_thread"):
        lags: list[float] = []
        stop = asyncio.Event()

        async def tick(lags: list[float] = lags, stop: asyncio.Event = stop) -> None:
            while not stop.is_set():
                started = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - started - 0.001)

        ticker = asyncio.create_task(tick())
        started = time.perf_counter()
        if label == "idle":
            await asyncio.sleep(1.0)
        else:
            await asyncio.to_thread(lambda: query.search(json.loads(big)))
        stop.set()
        await ticker
        elapsed = time.perf_counter() - started
        lags.sort()
        out[label] = {
            "ticks_per_second": len(lags) / elapsed,
            "lag_p50_ms": 1e3 * lags[len(lags) // 2],
            "lag_max_ms": 1e3 * lags[-1],
        }
    return out


def main() -> None:
    print(
        json.dumps(
            {
                "render": render_comparison(1000),
                "json": json_comparison(),
                "judging": judging_cost(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()


def run_cost(url: str, runs: int = 2000, loop: str = "uvloop") -> dict[str, Any]:
    """Where one run's CPU goes, in-process and sequential (no scheduler, no overlap).

    As the daemon runs a check: on its one `ProbeResolver`, borrowing the run's HTTP
    session from its `SessionPool` (probe/sessions.py), judging small answers on the loop.

    - `run_check`: the product's whole probe of `url` (a clean pooled session, a new
      connection, request, JSON assertion), CPU time per run;
    - `run_check_own_session`: the same, each run building and closing its own session,
      connector and jar (what every run did before the pool);
    - `session_only`: a run's session with no request: borrowed and handed back clean
      (`session_pooled`), built and closed (`session_built`);
    - `sinks`: CheckMetrics, LatestOutcomes, LogSink and IncidentTracker `accept` for one
      outcome (the store only enqueues on the loop; its writes run on aiosqlite's thread).
    """
    import asyncio
    import os

    from uptime_probe.config.model import Config
    from uptime_probe.logs import configure_logging
    from uptime_probe.metrics import CheckMetrics
    from uptime_probe.probe import compile_checks, run_check
    from uptime_probe.probe.kinds.base import RunContext
    from uptime_probe.probe.resolve import ProbeResolver
    from uptime_probe.probe.sessions import SessionPool
    from uptime_probe.sinks import FanOut, LogSink, RunOutcome
    from uptime_probe.state.incidents import IncidentTracker
    from uptime_probe.state.latest import LatestOutcomes

    # As the daemon runs: info level, JSON lines (to nowhere), so a passing run logs nothing.
    configure_logging("info", stream=open(os.devnull, "w"), force_json=True)  # noqa: SIM115
    from uptime_probe.probe.judging import JudgingPool

    config = Config.model_validate(probes_config(checks=1, interval=30, url=url))
    judging = JudgingPool()  # as the daemon judges: small answers on the loop, under budget
    plan = next(iter(compile_checks(config, judging=judging).values()))

    def cpu_per(fn: Callable[[], Any], count: int) -> float:
        started = time.process_time()
        fn_result = fn()
        if asyncio.iscoroutine(fn_result):
            raise TypeError("use acpu_per for coroutines")
        return (time.process_time() - started) / count

    async def measure() -> dict[str, Any]:
        out: dict[str, Any] = {"url": url, "runs": runs, "loop": loop}
        resolver = ProbeResolver(config.dns)
        sessions = SessionPool(resolver)
        last = None
        for label, pool in (("run_check_us", sessions), ("run_check_own_session_us", None)):
            for _ in range(50):  # warm the path
                await run_check(plan, resolver=resolver, sessions=pool)
            started = time.process_time()
            for _ in range(runs):
                last = await run_check(plan, resolver=resolver, sessions=pool)
            out[label] = 1e6 * (time.process_time() - started) / runs
            out[label.replace("_us", "_status")] = str(last.status) if last else None
        out["last_status"] = out["run_check_status"]

        async def session_cycle(pool: SessionPool | None) -> None:
            async with RunContext(resolver, sessions=pool) as run:
                run.http()

        for label, pool in (("session_pooled_us", sessions), ("session_built_us", None)):
            started = time.process_time()
            for _ in range(runs):
                await session_cycle(pool)
            out[label] = 1e6 * (time.process_time() - started) / runs
        await sessions.close()
        await resolver.close()

        assert last is not None
        metrics = CheckMetrics("bench")
        metrics.sync_checks(config.checks)
        latest = LatestOutcomes()
        latest.retain(compile_checks(config))
        tracker = IncidentTracker()
        outcome = RunOutcome(last, last.status, last.status, "bench")
        for label, sink in (
            ("sink_metrics_us", metrics),
            ("sink_latest_us", latest),
            ("sink_log_us", LogSink()),
            ("sink_incidents_us", tracker),
            ("sinks_fanout_us", FanOut([metrics, latest, LogSink(), tracker])),
        ):
            out[label] = 1e6 * cpu_per(
                lambda s=sink: [s.accept(outcome) for _ in range(runs)], runs
            )
        await judging.close()
        return out

    if loop == "uvloop":
        import uvloop

        return dict(uvloop.run(measure()))
    return asyncio.run(measure())


def scheduler_cost(
    checks: int = 1000, seconds: float = 10.0, loop: str = "uvloop"
) -> dict[str, Any]:
    """CPU per run of the product's Scheduler alone: the check's loop timer, our task, the state
    machine, with a `run` that returns at once and a sink that drops the outcome.

    What is left of a daemon run's CPU after this and `run_cost` is storage and metrics.
    """
    import asyncio

    from uptime_probe.config.model import Config
    from uptime_probe.probe import CheckResult, compile_checks
    from uptime_probe.probe.model import Status
    from uptime_probe.scheduler import Scheduler
    from uptime_probe.state.checks import CheckStates

    config = Config.model_validate(
        probes_config(checks=checks, interval=1.0, url="http://127.0.0.1:9/json")
    )
    plans = compile_checks(config)
    counted = [0]

    async def instant(plan: Any) -> CheckResult:
        counted[0] += 1
        return CheckResult(plan.name, Status.UP, None, None, "ok", time.time(), 0.0)

    class Drop:
        def accept(self, _outcome: Any) -> None:
            pass

    async def measure() -> dict[str, Any]:
        states = CheckStates(Drop(), location="bench")  # the state machine, as in the daemon
        states.apply(config.checks)
        scheduler = Scheduler(
            on_result=states.accept,
            max_concurrency=1024,
            observe_lag=lambda _lag: None,
            on_skip=lambda _name: None,
            run=instant,
        )
        scheduler.apply(plans)
        scheduler.start()
        await asyncio.sleep(2.0)  # past the first round
        runs0, cpu0, wall0 = counted[0], time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        runs, cpu = counted[0] - runs0, time.process_time() - cpu0
        elapsed = time.monotonic() - wall0
        await scheduler.stop(1.0)
        return {
            "checks": checks,
            "loop": loop,
            "runs_per_second": runs / elapsed,
            "cpu_us_per_run": 1e6 * cpu / runs if runs else float("nan"),
            "cpu_utilisation": cpu / elapsed,
        }

    if loop == "uvloop":
        import uvloop

        return dict(uvloop.run(measure()))
    return asyncio.run(measure())


def store_cost(
    rows: int = 20_000, loop: str = "uvloop", per_second: float = 1000.0
) -> dict[str, Any]:
    """CPU per run of the SQLite history: enqueue on the loop, batched writes on its thread.

    Rows arrive paced at `per_second` (10 every 10 ms at 1,000/s), as runs finish in the
    daemon, so the writer sees the small batches it really gets; `per_second=0` enqueues
    everything at once (the batching best case).
    """
    import asyncio
    import tempfile
    from pathlib import Path

    from uptime_probe.probe.model import CheckResult, Status
    from uptime_probe.sinks import RunOutcome
    from uptime_probe.state.store import Store

    async def measure() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as directory:
            store = Store(Path(directory), queue_size=rows + 10)
            await store.open()
            now = time.time()
            outcomes = [
                RunOutcome(
                    CheckResult(
                        f"c{i % 1000:05d}",
                        Status.UP,
                        None,
                        None,
                        "1 step ok",
                        now + i / 1000,
                        0.004,
                    ),
                    Status.UP,
                    Status.UP,
                    "bench",
                )
                for i in range(rows)
            ]
            started = time.process_time()
            step = max(1, int(per_second / 100)) if per_second else rows
            for index in range(0, rows, step):
                for outcome in outcomes[index : index + step]:
                    store.accept(outcome)
                if per_second:
                    await asyncio.sleep(0.01)
            await store.flush(timeout=120)
            cpu = time.process_time() - started
            await store.close()
        return {
            "rows": rows,
            "loop": loop,
            "per_second": per_second,
            "cpu_us_per_run": 1e6 * cpu / rows,
            "lost": store.lost,
        }

    if loop == "uvloop":
        import uvloop

        return dict(uvloop.run(measure()))
    return asyncio.run(measure())
