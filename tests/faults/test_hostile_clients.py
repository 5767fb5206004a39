"""Strangers' connections: a slowloris crowd larger than the daemon's descriptor limit.

The daemon runs under RLIMIT_NOFILE 150 soft / 300 hard, set in its own process before it
starts (fdlimit.py). 400 clients, more than the hard limit, connect to its server and
each sends a request line and then one header line a second, never finishing; a client
that is cut off comes back a second later. Before the fix, aiohttp's server accepted
them all: the process ran out of descriptors, `/healthz` and `/metrics` refused
connections and a healthy check failed as `connect_refused` ("Too many open files").

What must hold:
- the soft limit was raised to the hard one at start, and both are exported;
- the server holds at most its connection cap, which leaves descriptors for the probes;
- a client still sending headers after `header_timeout` gets a 408 and is closed,
  however steadily it trickles;
- under the crowd, `/healthz` and `/metrics` answer every time, and a healthy check
  against a local target runs at its pace without a single failure;
- uptime_probe never holds its event loop for more than 50 ms (loopwatch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

from tests.conftest import ServeApp
from tests.daemon.support import Scrape, http_check
from uptime_probe.descriptors import share_descriptors

from .conftest import StartDaemon
from .support import CountingTarget, assert_loop_never_blocked, open_fds

SOFT, HARD = 150, 300
CROWD = 400  # more than HARD: the crowd alone could take every descriptor
LINE_EVERY = 1.0  # seconds between a slow client's header lines (and its reconnects)
HEADER_TIMEOUT = 2.0

RUNS = "uptime_probe_check_runs_total"
FAILURES = "uptime_probe_check_failures_total"
CLOSED = "uptime_probe_server_connections_closed_total"


class SlowClients:
    """`count` clients that never finish their request headers, reconnecting when cut."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.stop = asyncio.Event()
        self.connected = 0  # connections made, in all
        self.open = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> SlowClients:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.count)]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.stop.set()
        await asyncio.gather(*self._tasks)

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), LINE_EVERY)

    async def _client(self) -> None:
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await self._pause()
                continue
            self.connected += 1
            self.open += 1
            try:
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: daemon\r\n")
                while not self.stop.is_set():
                    try:
                        data = await asyncio.wait_for(reader.read(4096), LINE_EVERY)
                    except TimeoutError:
                        writer.write(b"X-Still-Coming: 1\r\n")  # one more header line
                        continue
                    if not data:
                        break  # the server hung up
            except OSError:
                pass
            finally:
                self.open -= 1
                writer.close()
            await self._pause()


async def trickle_until_cut(port: int, lines: int) -> tuple[float, bytes]:
    """Send a header line every quarter second; how long until the server hung up, and
    what it said."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    answer = b""
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: daemon\r\n")
        for _ in range(lines):
            try:
                data = await asyncio.wait_for(reader.read(4096), 0.25)
            except TimeoutError:
                writer.write(b"X-Trickle: 1\r\n")
                continue
            if not data:
                return time.monotonic() - started, answer
            answer += data
    except OSError:
        return time.monotonic() - started, answer
    finally:
        writer.close()
    raise AssertionError(f"still connected after {lines} header lines: {answer!r}")


async def test_a_slowloris_crowd_starves_neither_the_server_nor_the_probes(
    start_daemon: StartDaemon, serve_app: ServeApp
) -> None:
    target = CountingTarget()
    url = await serve_app(target.app())
    healthy = http_check("healthy", f"{url}/healthy", interval="500ms", timeout="500ms")
    daemon = start_daemon(
        [healthy],
        nofile=(SOFT, HARD),
        server={"header_timeout": f"{HEADER_TIMEOUT}s", "watch_interval": "1h"},
    )
    await daemon.started()
    port = int(daemon.url.rpartition(":")[2])
    pid = daemon.process.pid

    # 1. The soft limit was raised to the hard one, and both are exported.
    first = await daemon.wait_for_scrape(
        lambda s: s.get(RUNS, check="healthy") >= 2, "the healthy check's first runs"
    )
    assert first.value("uptime_probe_fd_limit", limit="soft") == HARD
    assert first.value("uptime_probe_fd_limit", limit="hard") == HARD
    # The cap leaves room for the probes within the limit (descriptors.py's share).
    cap = first.value("uptime_probe_server_connections_limit")
    share = share_descriptors(HARD, max_connections=256, max_concurrency=512, checks=1)
    assert cap == share.server_connections < HARD - 150, cap

    # 2. A client trickling header lines is cut at the header deadline, with a 408.
    elapsed, answer = await trickle_until_cut(port, lines=int(4 * HEADER_TIMEOUT * 3))
    assert HEADER_TIMEOUT - 0.1 <= elapsed < HEADER_TIMEOUT + 2.0, elapsed
    assert answer.startswith(b"HTTP/1.1 408 "), answer

    # 3. The crowd: more clients than descriptors.
    before = await daemon.scrape()
    async with SlowClients(port, CROWD) as crowd:
        # Under full pressure: the cap reached, and newcomers taking the oldest's place.
        await daemon.wait_for_scrape(
            lambda s: s.value(CLOSED, why="evicted") >= CROWD - cap and crowd.connected >= CROWD,
            "the crowd at the connection cap",
            timeout=60,
        )
        started_runs = (await daemon.scrape()).value(RUNS, check="healthy")
        most_fds = 0
        for _ in range(10):
            status, text, _headers = await daemon.request("GET", "/healthz")
            assert (status, text) == (200, "ok\n")
            scrape = await daemon.scrape()
            assert scrape.value("uptime_probe_server_connections") <= cap
            most_fds = max(most_fds, open_fds(pid))
            assert most_fds < HARD
        # The healthy check keeps its pace (2 runs a second) and never fails.
        during = await daemon.wait_for_scrape(
            lambda s: s.value(RUNS, check="healthy") >= started_runs + 10,
            "the healthy check's runs under the crowd",
        )
        assert crowd.open > 0  # still pressing
        assert crowd.connected > CROWD  # and some were cut and came back
    assert sum(value for _labels, value in during.find(FAILURES, check="healthy")) == 0, [
        line for line in during.text.splitlines() if "check=" in line and "healthy" in line
    ]
    assert during.value("uptime_probe_check_success", check="healthy") == 1
    assert during.value(CLOSED, why="header_timeout") + during.value(CLOSED, why="evicted") > (
        before.value(CLOSED, why="header_timeout") + before.value(CLOSED, why="evicted")
    )
    assert not daemon.logs("check_failed"), daemon.log_text()
    # The figures docs/reliability.md quotes (shown with pytest -s).
    print(
        f"crowd: {crowd.connected} connections, cap {cap:.0f}, daemon fds up to {most_fds}; "
        f"closed: {during.value(CLOSED, why='evicted'):.0f} evicted, "
        f"{during.value(CLOSED, why='header_timeout'):.0f} at the header deadline, "
        f"{during.value(CLOSED, why='refused'):.0f} refused; healthy check "
        f"{during.value(RUNS, check='healthy'):.0f} runs, 0 failed"
    )

    # 4. The crowd gone, the server is back to its own connections.
    quiet = await daemon.wait_for_scrape(
        lambda s: s.value("uptime_probe_server_connections") <= 2, "the crowd's connections closed"
    )
    assert isinstance(quiet, Scrape)
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit() == 0
    assert_loop_never_blocked(daemon)
