"""The benchmark, end to end: every figure, interleaved and repeated, then docs/benchmarks.md.

    python -m bench.run [--scale full|reduced] [--only throughput,cpu,...] [--doc PATH]
    python -m bench.run --report-only RESULTS.json      # rewrite the doc from saved figures

Results are saved after every figure (`results.json` in the work directory), so a run cut
short still leaves what it measured; the doc is written from that file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import figures, micro, reload_pause, report, status_page
from bench.common import REPO, Cores, Stack, loadavg, machine_busy_fraction, pin_self
from bench.targets import SLOW_DELAY_SECONDS, start_nginx, start_slow

SECTIONS = (
    "micro",
    "runcost",
    "statuspage",
    "reload",
    "throughput",
    "cpu",
    "latency",
    "scale",
    "quiet",
    "gc",
    "profile",
    "detection",
)


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem_kb = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    )

    def version(args: list[str]) -> str:
        try:
            out = subprocess.run(args, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
        lines = (out.stdout or out.stderr).decode(errors="replace").splitlines()
        return lines[0].strip() if lines else ""

    import aiohttp
    import uvloop

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": uvloop.__version__,
        "blackbox_exporter": version(["prometheus-blackbox-exporter", "--version"]),
        "nginx": version(["nginx", "-v"]),
        "prometheus": version(["prometheus", "--version"]),
        "alertmanager": version(["prometheus-alertmanager", "--version"]),
        "git_commit": version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(
            version(["git", "-C", str(REPO), "status", "--porcelain"]) not in ("", "not installed")
        ),
    }


class Recorder:
    def __init__(self, path: Path, results: dict[str, Any]) -> None:
        self.path = path
        self.results = results

    def save(self) -> None:
        self.path.write_text(json.dumps(self.results, indent=1, default=str))

    def section(self, name: str, fn: Callable[[], Any]) -> None:
        started = time.monotonic()
        print(f"[bench] {name} ...", flush=True)
        load_before = loadavg()
        try:
            self.results[name] = fn()
        except Exception as exc:  # one figure failing must not lose the others
            self.results[name] = {"error": f"{type(exc).__name__}: {exc}"[:4000]}
            print(f"[bench] {name} FAILED: {exc}", flush=True)
        self.results.setdefault("load", {})[name] = {
            "before": load_before,
            "after": loadavg(),
            "seconds": time.monotonic() - started,
        }
        self.save()
        print(f"[bench] {name} done in {time.monotonic() - started:.0f}s", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    scale = figures.FULL if args.scale == "full" else figures.REDUCED
    cores = Cores.detect()
    pin_self(cores.target)  # the harness's own polling stays off the contender's core
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="uptime-probe-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    previous = workdir / "results.json"
    earlier: dict[str, Any] = (
        json.loads(previous.read_text()) if args.resume and previous.exists() else {}
    )
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "bash scripts/bench.sh"
            + (f" --scale {args.scale}" if args.scale != "full" else ""),
            "scale": scale.__dict__,
            "cores": cores.describe(),
            "machine": machine(),
            "busy_fraction_at_start": machine_busy_fraction(3.0),
            "loadavg_at_start": loadavg(),
            "workdir": str(workdir),
        }
    }
    if earlier:  # keep the sections measured before; re-measure only those asked for
        for key, value in earlier.items():
            if key not in only and key != "meta":
                results[key] = value
        results["meta"]["resumed_from"] = earlier["meta"]["date"]
        results["meta"]["date"] = earlier["meta"]["date"] + ", resumed " + results["meta"]["date"]
    recorder = Recorder(workdir / "results.json", results)
    print(f"[bench] scale={scale.name} workdir={workdir} cores: {cores.describe()}", flush=True)
    with Stack(workdir / "targets") as targets:
        nginx = start_nginx(targets, cores.target)
        slow = start_slow(targets, cores.target)

        def one(name: str) -> Path:
            path = workdir / name
            path.mkdir(parents=True, exist_ok=True)
            return path

        if "micro" in only:
            recorder.section(
                "micro",
                lambda: {
                    "render": [micro.render_comparison(n) for n in scale.lag_checks],
                    "json": micro.json_comparison(),
                    "judging": [micro.judging_cost() for _ in range(scale.repeats)],
                },
            )

        if "runcost" in only:
            recorder.section(
                "runcost",
                lambda: {
                    "run_check": [
                        micro.run_cost(nginx.url, runs=2000, loop=loop)
                        for loop in ("uvloop", "asyncio", "uvloop", "asyncio")
                    ],
                    "scheduler": [micro.scheduler_cost(1000, 10.0) for _ in range(scale.repeats)],
                    "store_paced": [micro.store_cost(10_000) for _ in range(scale.repeats)],
                    "store_batched": [
                        micro.store_cost(10_000, per_second=0) for _ in range(scale.repeats)
                    ],
                },
            )

        if "statuspage" in only:
            recorder.section(
                "statuspage",
                lambda: [status_page.status_page_cost(n) for n in scale.page_checks],
            )

        if "reload" in only:
            recorder.section(
                "reload",
                lambda: [
                    reload_pause.reload_pause(n, repeats=scale.repeats) for n in scale.reload_checks
                ],
            )

        if "throughput" in only:

            def throughput() -> dict[str, Any]:
                out: dict[str, list[Any]] = {"ours": [], "ours_asyncio": [], "blackbox": []}
                for r in range(scale.repeats):  # interleaved: ours, blackbox, ours (asyncio)
                    out["ours"].append(
                        figures.ours_at_rate(
                            one(f"tp-ours-{r}"),
                            cores,
                            nginx,
                            checks=scale.sustained_checks,
                            interval=1.0,
                            window=scale.window,
                            saturated=True,
                        )
                    )
                    out["blackbox"].append(
                        figures.blackbox_sustained(one(f"tp-bb-{r}"), cores, nginx, scale)
                    )
                    out["ours_asyncio"].append(
                        figures.ours_at_rate(
                            one(f"tp-ours-asyncio-{r}"),
                            cores,
                            nginx,
                            checks=scale.sustained_checks,
                            interval=1.0,
                            window=scale.window,
                            loop="asyncio",
                            saturated=True,
                        )
                    )
                    recorder.results["throughput"] = out
                    recorder.save()
                return out

            recorder.section("throughput", throughput)

        if "cpu" in only:

            def cpu() -> dict[str, Any]:
                out: dict[str, Any] = {}
                for rate in scale.rates:
                    point: dict[str, list[Any]] = {"ours": [], "blackbox": []}
                    for r in range(scale.repeats):
                        point["ours"].append(
                            figures.ours_at_rate(
                                one(f"cpu-ours-{rate}-{r}"),
                                cores,
                                nginx,
                                checks=rate,
                                interval=1.0,
                                window=scale.window,
                            )
                        )
                        bb = figures.blackbox_at_rate(
                            one(f"cpu-bb-{rate}-{r}"), cores, nginx, rate, scale.window
                        )
                        bb.pop("probe_durations")
                        point["blackbox"].append(bb)
                    out[str(rate)] = point
                    recorder.results["cpu"] = out
                    recorder.save()
                return out

            recorder.section("cpu", cpu)

        if "latency" in only:

            def latency() -> dict[str, Any]:
                out: dict[str, Any] = {}
                for rate in scale.rates:
                    point: dict[str, list[Any]] = {
                        "ours": [],
                        "ours_asyncio": [],
                        "blackbox": [],
                        "floor": [],
                    }
                    for r in range(scale.repeats):  # floor, ours, blackbox, ours on asyncio's loop
                        floor = figures.floor_at_rate(
                            one(f"lat-floor-{rate}-{r}"), cores, slow, rate, scale.window
                        )
                        f_lat = floor.pop("latencies")
                        for key, loop in (
                            ("ours", "uvloop"),
                            ("blackbox", None),
                            ("ours_asyncio", "asyncio"),
                        ):
                            if loop is None:
                                bb = figures.blackbox_at_rate(
                                    one(f"lat-bb-{rate}-{r}"), cores, slow, rate, scale.window
                                )
                                bb["errors"] = figures.latency_errors(
                                    bb.pop("probe_durations"), f_lat, SLOW_DELAY_SECONDS
                                )
                                point[key].append(bb)
                                continue
                            ours = figures.ours_at_rate(
                                one(f"lat-{key}-{rate}-{r}"),
                                cores,
                                slow,
                                checks=rate,
                                interval=1.0,
                                window=scale.window,
                                durations=True,
                                loop=loop,
                            )
                            ours["errors"] = figures.latency_errors(
                                ours.pop("durations"), f_lat, SLOW_DELAY_SECONDS
                            )
                            point[key].append(ours)
                        errors = point["ours"][-1]["errors"]
                        floor["p50_ms"] = errors["floor_p50_ms"]
                        floor["p99_ms"] = errors["floor_p99_ms"]
                        point["floor"].append(floor)
                    out[str(rate)] = point
                    recorder.results["latency"] = out
                    recorder.save()
                return out

            recorder.section("latency", latency)

        if "scale" in only:

            def scale_points() -> dict[str, Any]:
                out: dict[str, Any] = {}
                for n in scale.lag_checks:  # one size failing keeps the other
                    try:
                        out[str(n)] = figures.scale_point(
                            one(f"scale-{n}"), cores, nginx, checks=n, scale=scale
                        )
                    except Exception as exc:
                        out[str(n)] = {"error": f"{type(exc).__name__}: {exc}"[:4000]}
                    recorder.results["scale"] = out
                    recorder.save()
                return out

            recorder.section("scale", scale_points)

        if "quiet" in only:
            recorder.section(
                "quiet",
                lambda: {
                    "ours": [
                        figures.quiet_daemon(
                            one(f"quiet-{r}"), cores, nginx, window=scale.quiet_window
                        )
                        for r in range(scale.repeats)
                    ]
                },
            )

        if "gc" in only:

            def gc_runs() -> dict[str, Any]:
                n = max(scale.lag_checks)
                out: dict[str, list[Any]] = {"default": [], "cpython": []}
                for r in range(scale.repeats):  # interleaved: as shipped, then CPython's
                    for key in ("default", "cpython"):
                        out[key].append(
                            figures.gc_experiment(
                                one(f"gc-{key}-{r}"),
                                cores,
                                nginx,
                                checks=n,
                                scale=scale,
                                thresholds="700,10,10" if key == "cpython" else None,
                            )
                        )
                        recorder.results["gc"] = out
                        recorder.save()
                return out

            recorder.section("gc", gc_runs)

        if "profile" in only:
            recorder.section(
                "profile", lambda: figures.profile_daemon(one("profile"), cores, nginx, scale)
            )

    if "detection" in only:
        recorder.section(
            "detection", lambda: figures.detection(workdir / "detection", cores, scale)
        )

    results["meta"]["loadavg_at_end"] = loadavg()
    results["meta"]["busy_fraction_at_end"] = machine_busy_fraction(3.0)
    recorder.save()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--scale", choices=["full", "reduced"], default="full")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument(
        "--workdir", help="where programs, logs and results.json go (a new temp dir)"
    )
    parser.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--report-only", metavar="RESULTS_JSON", help="only rewrite the doc")
    parser.add_argument(
        "--note", help="a sentence for the doc's header (who else used the machine)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --workdir: keep the sections of its results.json that --only leaves out",
    )
    args = parser.parse_args(argv)
    results = json.loads(Path(args.report_only).read_text()) if args.report_only else run(args)
    if args.note:
        results["meta"]["note"] = args.note
    Path(args.doc).write_text(report.render(results))
    print(f"[bench] wrote {args.doc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
