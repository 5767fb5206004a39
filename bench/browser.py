"""What one browser run costs: CPU and memory of Chromium, Playwright's driver and us.

    PYTHONPATH=src python -m bench.browser [--runs 30]
    PYTHONPATH=src python -m bench.browser --tracing [--runs 36]

Runs the example's `sidebar_renders` step (the simulator's chat page: its script fetches
the history and renders the sidebar) against the simulator in its own process, through
the real browser kind and pool, one run at a time and then two at once (the default
`browser.max_concurrent`). Prints a Markdown table for docs/configuration.md, "What a
browser run costs".

`--tracing` measures what recording a Playwright trace costs every run (the kind records
one when failed steps' traces are kept, and drops a passing run's): runs with and without
it, in pairs of blocks (ABBA order, so drift in the machine's load falls on both), then
what saving one costs a failed run, and what the driver leaves on disk meanwhile.

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
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from uptime_probe.config import parse_config
from uptime_probe.config.chromium import find_chromium
from uptime_probe.probe import Status, compile_checks, run_check
from uptime_probe.probe.artifacts import ARTIFACTS, ArtifactStore
from uptime_probe.probe.browser_pool import BROWSER, BrowserPool

TICKS = os.sysconf("SC_CLK_TCK")
FAILED_RUNS = 8  # of each, with --tracing
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


def folder_size(folders: list[Path]) -> tuple[int, int]:
    """(files, bytes) under these folders."""
    files = size = 0
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                files += 1
                size += path.stat().st_size
    return files, size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_simulator() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "uptime_probe.cli", "simulator", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):  # until it listens, at most 10 s
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return simulator, port
        await asyncio.sleep(0.1)
    simulator.terminate()
    simulator.wait(10)
    raise RuntimeError("the simulator did not listen within 10 s")


async def measure(runs: int) -> list[tuple[str, str]]:
    simulator, port = await start_simulator()
    try:
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


async def measure_tracing(runs: int, block: int = 4) -> list[tuple[str, str, str, str]]:
    simulator, port = await start_simulator()
    scratch = Path(tempfile.mkdtemp(prefix="bench-tracing-"))
    try:
        config = parse_config(CONFIG.format(url=f"http://127.0.0.1:{port}"))
        plan = compile_checks(config)["sidebar_renders"]
        failing = parse_config(
            CONFIG.replace("min_count: 1", "min_count: 1000").format(url=f"http://127.0.0.1:{port}")
        )
        failing_plan = compile_checks(failing)["sidebar_renders"]
        pool = BrowserPool(find_chromium(None))
        stores = {
            traced: ArtifactStore(scratch / str(traced), keep=1000, traces=traced)
            for traced in (False, True)
        }

        async def one(traced: bool, check: object = plan) -> tuple[float, float, float, object]:
            """(wall seconds, CPU seconds of Chromium and the driver, our CPU, result)."""
            helpers = descendants(os.getpid())
            cpu_before = cpu_seconds(helpers) - cpu_seconds([simulator.pid])
            own_before = time.process_time()
            started = time.perf_counter()
            async with pool.slot():
                result = await run_check(
                    check,  # type: ignore[arg-type]
                    resources={BROWSER: pool, ARTIFACTS: stores[traced]},
                )
            wall = time.perf_counter() - started
            own = time.process_time() - own_before
            # The context closes after the run (the pool's own task): its cost is the run's.
            await pool.settled()
            cpu_after = cpu_seconds(helpers) - cpu_seconds([simulator.pid])
            return wall, cpu_after - cpu_before, own, result

        for traced in (False, True, False, True):  # Chromium started, both paths warm
            await one(traced)
        assert pool.traces_folder is not None
        on_disk_before = folder_size([pool.traces_folder])
        samples: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
        # Per pair of blocks, traced minus not, of the mean wall time and of all CPU.
        paired: list[tuple[float, float]] = []
        for index in range(runs // block):
            order = (False, True) if index % 2 == 0 else (True, False)  # ABBA
            means: dict[bool, tuple[float, float]] = {}
            for traced in order:
                taken = []
                for _ in range(block):
                    wall, cpu, own, result = await one(traced)
                    assert result.status is Status.UP, result  # type: ignore[attr-defined]
                    taken.append((wall, cpu + own))
                    samples[traced].append((wall, cpu, own))
                means[traced] = (
                    statistics.fmean(t[0] for t in taken),
                    statistics.fmean(t[1] for t in taken),
                )
            paired.append((means[True][0] - means[False][0], means[True][1] - means[False][1]))
        on_disk_after = folder_size([pool.traces_folder])
        saves: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(FAILED_RUNS):
            for traced in (False, True):
                wall, _, _, result = await one(traced, failing_plan)
                step = result.steps[-1]  # type: ignore[attr-defined]
                assert step.artifact, step
                assert (step.trace is not None) is traced, step
                saves[traced].append(wall)
        traces = sorted((scratch / "True").rglob("*.zip"))
        await pool.close()
    finally:
        simulator.terminate()
        simulator.wait(10)
    trace_bytes = statistics.median(path.stat().st_size for path in traces)
    shutil.rmtree(scratch)

    def med(traced: bool, column: int) -> float:
        return statistics.median(sample[column] for sample in samples[traced])

    def mean(traced: bool, column: int) -> float:
        return statistics.fmean(sample[column] for sample in samples[traced])

    rows = []
    for column, what in ((0, "wall time per run"), (1, "CPU per run, Chromium and driver"),
                         (2, "CPU per run, ours")):  # fmt: skip
        off, on = mean(False, column), mean(True, column)
        rows.append(
            (
                f"{what} (mean; median)",
                f"{off * 1000:.0f} ms; {med(False, column) * 1000:.0f} ms",
                f"{on * 1000:.0f} ms; {med(True, column) * 1000:.0f} ms",
                f"{(on - off) * 1000:+.0f} ms ({(on - off) / off * 100:+.0f}%)",
            )
        )
    off_cpu = mean(False, 1) + mean(False, 2)
    on_cpu = mean(True, 1) + mean(True, 2)
    rows.append(
        (
            "CPU per run, all (mean)",
            f"{off_cpu * 1000:.0f} ms",
            f"{on_cpu * 1000:.0f} ms",
            f"{(on_cpu - off_cpu) * 1000:+.0f} ms ({(on_cpu - off_cpu) / off_cpu * 100:+.0f}%)",
        )
    )
    for column, what in ((0, "wall time"), (1, "CPU, all")):
        differences = [pair[column] for pair in paired]
        spread = 2 * statistics.stdev(differences) / len(differences) ** 0.5
        rows.append(
            (
                f"{what}: traced minus not, per pair of blocks (mean, +- 2 standard errors)",
                "",
                "",
                f"{statistics.fmean(differences) * 1000:+.0f} ms +- {spread * 1000:.0f} ms",
            )
        )
    save_off, save_on = statistics.median(saves[False]), statistics.median(saves[True])
    rows.append(
        (
            f"a failed run, wall time (median of {FAILED_RUNS}): screenshot; and trace",
            f"{save_off * 1000:.0f} ms",
            f"{save_on * 1000:.0f} ms",
            f"{(save_on - save_off) * 1000:+.0f} ms; trace zip {trace_bytes / 1024:.0f} KiB",
        )
    )
    files = on_disk_after[0] - on_disk_before[0]
    size = on_disk_after[1] - on_disk_before[1]
    rows.append(
        (
            f"left in the traces folder by {len(samples[True])} traced passing runs",
            "",
            f"{files} files, {size / 1024:.0f} KiB",
            "",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tracing", action="store_true", help="what recording a trace costs")
    args = parser.parse_args()
    if args.tracing:
        tracing_rows = asyncio.run(measure_tracing(args.runs))
        load = os.getloadavg()[0]
        print(f"| what ({args.runs} runs each; load average {load:.1f} on {os.cpu_count()} "
              "cores) | no trace | trace recorded | difference |")  # fmt: skip
        print("| --- | --- | --- | --- |")
        for cells in tracing_rows:
            print("| " + " | ".join(cells) + " |")
        return
    rows = asyncio.run(measure(args.runs))
    load = os.getloadavg()[0]
    cores = os.cpu_count()
    print(f"| what | measured ({args.runs} runs; load average {load:.1f} on {cores} cores) |")
    print("| --- | --- |")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
