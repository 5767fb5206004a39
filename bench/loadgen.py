"""A small HTTP load tool on uvloop: closed loop (C workers) or open loop (R requests/s).

It drives blackbox_exporter's `/probe` (one keep-alive pool, as Prometheus's scrapers
would) and measures the latency floor of `/slow` (`--fresh`: a new TCP connection per
request, as both probers do). Run as its own process on the target core:

    python -m bench.loadgen open --url URL --rate 1000 --seconds 10 --out result.json
    python -m bench.loadgen closed --url URL --concurrency 16 --seconds 10 --parse-probe

Bounded: it stops sending at `--seconds`, waits at most `--drain` seconds for what is in
flight, and never holds more than `--max-in-flight` requests (open loop: a request that
would exceed it is counted as dropped, never queued).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

PROBE_DURATION = re.compile(rb"^probe_duration_seconds (\S+)$", re.M)
PROBE_SUCCESS = re.compile(rb"^probe_success (\S+)$", re.M)
KEEP_SAMPLES = 50_000


@dataclass
class Tally:
    started: int = 0
    completed: int = 0
    ok: int = 0
    errors: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)
    probe_durations: list[float] = field(default_factory=list)
    probe_failures: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)


async def one_request(
    session: aiohttp.ClientSession, url: str, tally: Tally, parse_probe: bool, measuring: bool
) -> None:
    started = time.perf_counter()
    try:
        async with session.get(url) as response:
            body = await response.read()
            ok = response.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        if measuring:
            tally.errors += 1
            kind = type(exc).__name__
            tally.error_kinds[kind] = tally.error_kinds.get(kind, 0) + 1
        return
    elapsed = time.perf_counter() - started
    if not measuring:
        return
    tally.completed += 1
    if len(tally.latencies) < KEEP_SAMPLES:
        tally.latencies.append(elapsed)
    if parse_probe:
        success = PROBE_SUCCESS.search(body)
        duration = PROBE_DURATION.search(body)
        if success is None or float(success.group(1)) != 1.0:
            ok = False
            tally.probe_failures += 1
        if duration is not None and len(tally.probe_durations) < KEEP_SAMPLES:
            tally.probe_durations.append(float(duration.group(1)))
    tally.ok += ok


def _session(fresh: bool, limit: int, timeout: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(force_close=fresh, limit=limit, use_dns_cache=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))


async def closed_loop(args: argparse.Namespace, tally: Tally) -> float:
    async with _session(args.fresh, args.concurrency, args.timeout) as session:
        warm_until = time.perf_counter() + args.warmup
        end = warm_until + args.seconds

        async def worker() -> None:
            for _ in range(args.max_requests):
                now = time.perf_counter()
                if now >= end:
                    return
                await one_request(session, args.url, tally, args.parse_probe, now >= warm_until)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        return float(args.seconds)


async def open_loop(args: argparse.Namespace, tally: Tally) -> float:
    async with _session(args.fresh, args.max_in_flight, args.timeout) as session:
        in_flight: set[asyncio.Task[None]] = set()
        begin = time.perf_counter()
        warm_until = begin + args.warmup
        end = warm_until + args.seconds
        launched = 0
        while True:
            now = time.perf_counter()
            if now >= end or launched >= args.max_requests:
                break
            due = int((now - begin) * args.rate) - launched
            for _ in range(max(0, due)):
                launched += 1
                if len(in_flight) >= args.max_in_flight:
                    if now >= warm_until:
                        tally.dropped += 1
                    continue
                task = asyncio.create_task(
                    one_request(session, args.url, tally, args.parse_probe, now >= warm_until)
                )
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.sleep(0.002)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=args.drain)
        for task in list(in_flight):
            task.cancel()
        return float(args.seconds)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    seconds = await (closed_loop(args, tally) if args.mode == "closed" else open_loop(args, tally))
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    random.shuffle(tally.latencies)  # order carries no meaning; keep files comparable
    return {
        "mode": args.mode,
        "url": args.url,
        "rate": args.rate,
        "concurrency": args.concurrency,
        "fresh": args.fresh,
        "seconds": seconds,
        "completed": tally.completed,
        "ok": tally.ok,
        "errors": tally.errors,
        "error_kinds": tally.error_kinds,
        "dropped": tally.dropped,
        "probe_failures": tally.probe_failures,
        "completed_per_second": tally.completed / seconds,
        "ok_per_second": tally.ok / seconds,
        "cpu_seconds": cpu,
        "latencies": tally.latencies,
        "probe_durations": tally.probe_durations,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["open", "closed"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--drain", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--max-in-flight", type=int, default=2000)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--fresh", action="store_true", help="a new connection per request")
    parser.add_argument("--parse-probe", action="store_true", help="read blackbox's answer")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://127.", "http://localhost")):
        parser.error("loopback targets only")
    if args.seconds > 600:
        parser.error("--seconds is bounded at 600")
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    text = json.dumps(result)
    if args.out is not None:
        args.out.write_text(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
