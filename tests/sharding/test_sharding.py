"""Rendezvous sharding: every check on exactly one shard, and few move when one is added."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.daemon.support import DaemonProcess
from uptime_probe.config import parse_config
from uptime_probe.sharding import Shard, owner, parse_shard, select

NAMES = [f"check_{i:03d}" for i in range(200)]


@pytest.mark.parametrize(
    ("text", "hostname", "expected"),
    [
        ("0/1", None, Shard(0, 1)),
        ("2/5", None, Shard(2, 5)),
        (" 1 / 3 ", None, Shard(1, 3)),
        ("auto/3", "uptime-probe-2", Shard(2, 3)),
        ("auto/10", "probe-eu-west-7", Shard(7, 10)),
    ],
)
def test_parse_shard(text: str, hostname: str | None, expected: Shard) -> None:
    assert parse_shard(text, hostname) == expected


@pytest.mark.parametrize(
    ("text", "hostname", "message"),
    [
        ("3/3", None, "INDEX must be below COUNT"),
        ("0/0", None, "COUNT must be at least 1"),
        ("x/3", None, "use INDEX/COUNT"),
        ("auto/3", "laptop", "no trailing ordinal"),
        ("auto/3", "probe-3", "INDEX must be below COUNT"),
    ],
)
def test_parse_shard_rejects(text: str, hostname: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard(text, hostname)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_every_check_has_exactly_one_owner(count: int) -> None:
    owners = {name: [i for i in range(count) if Shard(i, count).owns(name)] for name in NAMES}
    assert all(len(found) == 1 for found in owners.values())
    # And the load is spread: no shard is empty or holds more than twice its share.
    sizes = [sum(1 for found in owners.values() if found == [i]) for i in range(count)]
    assert min(sizes) > 0
    assert max(sizes) < 2 * len(NAMES) / count


@pytest.mark.parametrize("count", [1, 2, 4, 8])
def test_adding_a_shard_moves_only_checks_to_the_new_one(count: int) -> None:
    moved = [name for name in NAMES if owner(name, count) != owner(name, count + 1)]
    assert all(owner(name, count + 1) == count for name in moved)
    # About 1/(N+1) of the checks move: 200/(N+1), within a generous binomial margin.
    expected = len(NAMES) / (count + 1)
    assert abs(len(moved) - expected) < 4 * (expected**0.5) + 1


def test_locations_limit_where_a_check_runs() -> None:
    config = parse_config(
        """
checks:
  - name: everywhere
    steps: [{name: s, request: {url: "http://127.0.0.1/"}}]
  - name: eu_only
    locations: [eu-west]
    steps: [{name: s, request: {url: "http://127.0.0.1/"}}]
"""
    )
    single = Shard(0, 1)
    assert [c.name for c in select(config.checks, single, "eu-west")] == ["everywhere", "eu_only"]
    assert [c.name for c in select(config.checks, single, "us-east")] == ["everywhere"]


async def _runs_by_check(daemon: DaemonProcess) -> dict[str, float]:
    scrape = await daemon.scrape()
    return {
        labels["check"]: value for labels, value in scrape.find("uptime_probe_check_runs_total")
    }


async def _run_shards(config: Path, tmp_path: Path, count: int) -> list[dict[str, float]]:
    daemons = [
        DaemonProcess(
            config,
            extra_args=["--shard", f"{i}/{count}", "--data-dir", str(tmp_path / f"d{count}-{i}")],
        )
        for i in range(count)
    ]
    try:
        for daemon in daemons:
            daemon.start()
        for daemon in daemons:
            await daemon.started()
        # Every check runs at 1 s; wait until each daemon has run each of its checks.
        deadline = time.monotonic() + 30
        while True:
            scrapes = [await _runs_by_check(d) for d in daemons]
            if all(value > 0 for scrape in scrapes for value in scrape.values()):
                return scrapes
            assert time.monotonic() < deadline, f"not every check ran on {count} shards"
            await asyncio.sleep(0.1)  # polling outside processes
    finally:
        for daemon in daemons:
            daemon.send(signal.SIGTERM)
        for daemon in daemons:
            assert await daemon.wait_exit() == 0
            daemon.kill()


async def test_four_then_five_shard_processes(tmp_path: Path) -> None:
    async def ok(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ok", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    checks = "\n".join(
        f"  - name: {name}\n    steps: [{{name: get, request: {{url: 'http://127.0.0.1:{port}/ok'}}}}]"
        for name in NAMES
    )
    config = tmp_path / "probes.yaml"
    config.write_text(f"defaults: {{interval: 1s, timeout: 900ms}}\nchecks:\n{checks}\n")
    try:
        four = await _run_shards(config, tmp_path, 4)
        five = await _run_shards(config, tmp_path, 5)
    finally:
        await runner.cleanup()

    for scrapes in (four, five):
        seen = [name for scrape in scrapes for name in scrape]
        assert sorted(seen) == NAMES, "every check runs on exactly one shard"
    where_four = {name: i for i, scrape in enumerate(four) for name in scrape}
    where_five = {name: i for i, scrape in enumerate(five) for name in scrape}
    moved = [name for name in NAMES if where_four[name] != where_five[name]]
    assert all(where_five[name] == 4 for name in moved), "checks only move to the new shard"
    assert 20 <= len(moved) <= 60, f"{len(moved)} of 200 moved; about 40 expected"
