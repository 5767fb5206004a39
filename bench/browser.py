"""What one browser run costs: CPU and memory of Chromium, Playwright's driver and us.

    PYTHONPATH=src python -m bench.browser [--runs 30]

Runs the example's `sidebar_renders` step (the simulator's chat page: its script fetches
the history and renders the sidebar) against the simulator in its own process, through
the real browser kind and pool, one run at a time and then two at once (the default
`browser.max_concurrent`). Prints a Markdown table for docs/configuration.md, "What a
browser run costs".

CPU is counted from /proc for every process under this one (Playwright's Node.js driver,
Chromium's browser, zygotes, GPU and network processes, with what their exited children
used: a renderer's CPU reaches its zygote's `cutime` when the zygote reaps it) plus this
process's own; memory is the summed resident set of those processes, sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from uptime_probe.config import parse_config
from uptime_probe.config.chromium import find_chromium
from uptime_probe.probe import Status, compile_checks, run_check
from uptime_probe.probe.browser_pool import BROWSER, BrowserPool

TICKS = os.sysconf("SC_CLK_TCK")
CONFIG = """
variables: {{base_url: "{url}"}}
secrets: {{token: demo-token}}
checks:
  - name: sidebar_renders
    interval: 30s
    timeout: 10s
    steps:
      - name: sidebar
        browser:
          url: "{{{{ base_url }}}}/"
          headers: {{Authorization: "Bearer {{{{ token }}}}"}}
        expect:
          elements: [{{selector: "#history li", min_count: 1, reason: empty_history}}]
"""


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime + cutime + cstime of these processes (those still there)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])
    return total / TICKS


def resident(pids: list[int]) -> int:
    """Proportional set size, summed: Chromium's processes share much of their memory, so
    their resident sets (RSS) would count it once per process."""
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        found = re.search(r"^Pss:\s+(\d+) kB", rollup, flags=re.MULTILINE)
        total += int(found.group(1)) * 1024 if found else 0
    return total


class Sampler:
    """The peak resident memory of everything under this process, sampled in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, resident(descendants(os.getpid())))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(runs: int) -> list[tuple[str, str]]:
    port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "uptime_probe.cli", "simulator", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):  # until it listens, at most 10 s
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.1)
        config = parse_config(CONFIG.format(url=f"http://127.0.0.1:{port}"))
        plan = compile_checks(config)["sidebar_renders"]
        pool = BrowserPool(find_chromium(None))
        resources = {BROWSER: pool}

        async def one() -> float:
            async with pool.slot_for(plan):
                result = await run_check(plan, resources=resources)
            assert result.status is Status.UP, result
            return result.duration_seconds

        started = time.perf_counter()
        await one()  # the first run starts Chromium
        launch = time.perf_counter() - started
        idle = resident(descendants(os.getpid())) - resident([simulator.pid])
        for _ in range(3):
            await one()
        helpers = descendants(os.getpid())
        own_before = time.process_time()
        cpu_before = cpu_seconds(helpers) - cpu_seconds([simulator.pid])
        durations = []
        with Sampler() as sampler:
            for _ in range(runs):
                durations.append(await one())
        cpu_after = cpu_seconds(helpers) - cpu_seconds([simulator.pid])
        own = time.process_time() - own_before
        after = resident(descendants(os.getpid())) - resident([simulator.pid])
        with Sampler() as pair:
            for _ in range(runs // 2):
                await asyncio.gather(one(), one())
        await pool.close()
        simulator_rss = resident([simulator.pid])
        one_peak = sampler.peak
    finally:
        simulator.terminate()
        simulator.wait(10)
    mib = 1024 * 1024
    return [
        ("Chromium started (first run, launch included)", f"{launch:.2f} s"),
        ("a run, wall time (median, p90)", f"{statistics.median(durations):.2f} s, "
         f"{statistics.quantiles(durations, n=10)[-1]:.2f} s"),
        ("CPU per run: Chromium and Playwright's driver",
         f"{(cpu_after - cpu_before) / runs * 1000:.0f} ms"),
        ("CPU per run: the daemon's own (the kind, the engine)", f"{own / runs * 1000:.0f} ms"),
        ("memory (PSS), idle browser: Chromium and driver", f"{idle / mib:.0f} MiB"),
        ("memory (PSS), peak, one run at a time", f"{(one_peak - simulator_rss) / mib:.0f} MiB"),
        ("memory (PSS), peak, two runs at once", f"{(pair.peak - simulator_rss) / mib:.0f} MiB"),
        (f"memory (PSS) after {runs + 4} runs, no page open", f"{after / mib:.0f} MiB"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.runs))
    load = os.getloadavg()[0]
    cores = os.cpu_count()
    print(f"| what | measured ({args.runs} runs; load average {load:.1f} on {cores} cores) |")
    print("| --- | --- |")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
