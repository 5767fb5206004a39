"""2,000 checks against a target that never answers: the cap holds, healthy checks keep time.

The hanging target is tests/hostile's raw-socket `/hang` (accepts, reads the request line,
never answers). Each hanging run holds a slot for its whole 1 s timeout, and 2,000 of them
every 2 s want 1,000 slots: five times the cap of 200, so the daemon is overloaded for the
whole test, by design.

What must hold, at every scrape (bounded: at most SCRAPES, about one a second):
  * the cap: the daemon never has more than CAP + FD_MARGIN descriptors open (each hanging
    run is one socket), and the hanging server never accepted more than CAP new
    connections per second of runs (each lasts at least its 1 s timeout);
  * `uptime_probe_runs_in_flight` (runs holding a slot, docs/metrics.md) never exceeds the
    cap, while `uptime_probe_runs_waiting` shows the overload;
  * healthy checks (5, every 1 s, on another target) keep their schedule once every
    hanging check has run once: as many runs as ticks (one may straddle the window's
    edge), and the p99 of how late each started after its tick (seen by their target)
    under the 1 s at which the project's own lag alert fires;
  * the event loop is never held for more than 50 ms by uptime_probe (loopwatch.py).

Before each check's first run nothing tells a healthy check from a hanging one, so the
first round (2,000 runs through 200 slots: about 10 s) is served in arrival order; from
then on the scheduler serves quick checks first (scheduler.RunSlots).
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from dataclasses import dataclass

from tests.conftest import ServeApp
from tests.daemon.support import http_check
from tests.hostile.server import HostileServer
from uptime_probe.scheduler import planned_start, start_offset

from .conftest import StartDaemon
from .support import CountingTarget, assert_loop_never_blocked, open_fds, poll_until, sample

HANGING = 2_000
HEALTHY = 5
CAP = 200
FD_MARGIN = 100
HEALTHY_INTERVAL = 1.0
FIRST_ROUND_TIMEOUT = 20.0
WINDOW = 4.0
"""Seconds of healthy schedule measured after the first round."""
SCRAPES = 40
LATE_P99 = 1.0
"""Seconds a healthy run may start after its tick (p99): UptimeProbeScheduleLagHigh's
threshold (prometheus/rules), i.e. what the project itself calls "runs start late"."""


@dataclass(frozen=True)
class Observed:
    at: float
    in_flight: float
    waiting: float
    fds: int
    accepted: int


def lateness(name: str, arrivals: list[float]) -> list[float]:
    offset = start_offset(name, HEALTHY_INTERVAL)
    return [at - planned_start(at, HEALTHY_INTERVAL, offset) for at in arrivals]


async def test_hanging_checks_cannot_break_the_cap_or_delay_healthy_ones(
    start_daemon: StartDaemon, serve_app: ServeApp
) -> None:
    healthy = CountingTarget()
    healthy_url = await serve_app(healthy.app())
    async with HostileServer() as hanging:
        checks = [
            http_check(f"hang_{i:04d}", f"{hanging.url}/hang", interval="2s", timeout="1s")
            for i in range(HANGING)
        ]
        names = [f"healthy_{i}" for i in range(HEALTHY)]
        checks += [
            http_check(name, f"{healthy_url}/{name}", interval="1s", timeout="1s") for name in names
        ]
        daemon = start_daemon(
            checks, grace=1.0, max_concurrency=CAP, server={"watch_interval": "1h"}
        )
        await daemon.started(timeout=60)
        pid = daemon.process.pid
        began = time.monotonic()
        observed: list[Observed] = []

        async def observe() -> None:
            text = (await daemon.request("GET", "/metrics"))[1]
            in_flight = sample(text, "uptime_probe_runs_in_flight")
            waiting = sample(text, "uptime_probe_runs_waiting")
            assert in_flight is not None
            assert waiting is not None
            observed.append(
                Observed(
                    time.monotonic(),
                    in_flight,
                    waiting,
                    open_fds(pid),
                    hanging.connections_accepted,
                )
            )

        # Phase 1: the first round, every hanging check run (or running) once.
        for _ in range(SCRAPES):
            await observe()
            if hanging.connections_accepted >= HANGING:
                break
            assert time.monotonic() - began < FIRST_ROUND_TIMEOUT, observed[-1]
            await asyncio.sleep(1.0)  # the scrape interval, not a synchronisation
        first_round_done = time.time() + 1.0  # the last of them holds its slot for 1 s
        await poll_until(lambda: time.time() > first_round_done, "the first round", 5.0)

        # Phase 2: a window of healthy schedule, still overloaded.
        window_start = time.time()
        for _ in range(SCRAPES):
            await observe()
            if time.time() - window_start >= WINDOW:
                break
            await asyncio.sleep(1.0)
        window_end = time.time()
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(timeout=15) == 0

    # The cap, seen from both ends.
    assert max(o.in_flight for o in observed) <= CAP, observed
    assert max(o.waiting for o in observed) > 0, "never overloaded: the test proves nothing"
    assert max(o.fds for o in observed) <= CAP + FD_MARGIN, observed
    for o in observed:
        assert o.accepted <= CAP * (o.at - began + 2), o

    # Healthy checks kept their schedule through the window.
    window = {
        name: [at for at in healthy.arrivals[name] if window_start <= at <= window_end]
        for name in names
    }
    ticks = int((window_end - window_start) / HEALTHY_INTERVAL)
    for name, arrivals in window.items():
        assert len(arrivals) >= ticks - 1, (name, ticks, arrivals)
    late = sorted(x for name, arrivals in window.items() for x in lateness(name, arrivals))
    p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
    print(
        f"figures: in flight max {max(o.in_flight for o in observed):.0f}, "
        f"waiting max {max(o.waiting for o in observed):.0f}, fds max {max(o.fds for o in observed)}, "
        f"hanging connections {hanging.connections_accepted} in {observed[-1].at - began:.1f}s, "
        f"healthy runs {sum(map(len, window.values()))} in a {window_end - window_start:.1f}s "
        f"window ({HEALTHY} checks at 1 s), late "
        f"median {statistics.median(late):.3f}s p99 {p99:.3f}s"
    )
    assert p99 <= LATE_P99, f"p99 {p99:.3f}s, median {statistics.median(late):.3f}s"
    assert healthy.max_open_per_check == 1  # never two runs of one check at once
    assert_loop_never_blocked(daemon)
