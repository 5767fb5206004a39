"""Probes resolve names through c-ares (probe/resolve.py), against a real DNS server on loopback.

`LoopbackDns` (tests/hostile/dns_server.py) answers, never answers or refuses per name;
the resolver is pointed at it as `dns: {servers: [...]}` would point the daemon.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvloop
import yaml
from aiohttp import web
from aiohttp.abc import ResolveResult

from tests.conftest import RefusingExecutor
from tests.hostile.dns_server import NEVER, NXDOMAIN, LoopbackDns, answer
from uptime_probe.config import parse_config
from uptime_probe.config.model import DnsConfig
from uptime_probe.oneshot import run_checks_once
from uptime_probe.probe import CheckResult, Status
from uptime_probe.probe.resolve import ProbeResolver

from .conftest import Target
from .journeys import plan_of, run, step

NEVER_NAMES = ("never-1.test", "never-2.test", "never-3.test", "never-4.test")


@pytest.fixture
def dns_server() -> Iterator[LoopbackDns]:
    replies = {
        "api.test": answer("127.0.0.1"),
        "gone.test": NXDOMAIN,
        **dict.fromkeys(NEVER_NAMES, NEVER),
    }
    with LoopbackDns(replies) as server:
        yield server


def resolver_for(server: LoopbackDns, timeout: float = 5.0) -> ProbeResolver:
    return ProbeResolver(DnsConfig(servers=[server.nameserver], timeout=timeout))


def port_of(target: Target) -> int:
    return int(target.url.rsplit(":", 1)[1])


async def test_a_name_resolves_through_the_configured_server(
    target: Target, dns_server: LoopbackDns
) -> None:
    resolver = resolver_for(dns_server)
    try:
        url = f"http://api.test:{port_of(target)}/json/full"
        result = await run(plan_of(step(url)), resolver=resolver)
    finally:
        await resolver.close()
    assert result.status is Status.UP, result
    assert "api.test" in dns_server.names_asked()
    assert result.steps[0].timings.resolve > 0


async def test_a_lookup_without_an_answer_is_dns_and_says_it_timed_out(
    dns_server: LoopbackDns,
) -> None:
    resolver = resolver_for(dns_server, timeout=0.5)
    try:
        result = await run(plan_of(step("http://never-1.test/"), timeout="5s"), resolver=resolver)
    finally:
        await resolver.close()
    assert result.reason == "dns"
    # The resolver's bound, not the journey's deadline, ended it.
    assert result.message.startswith("fetch: DNS lookup of 'never-1.test' timed out (no answer in ")
    assert "journey deadline" not in result.message
    assert "never-1.test" in dns_server.names_asked()


async def test_the_journey_deadline_cuts_a_lookup_and_names_it(dns_server: LoopbackDns) -> None:
    resolver = resolver_for(dns_server, timeout=5.0)
    try:
        plan = plan_of(step("http://never-2.test/"), timeout="300ms")
        result = await run(plan, resolver=resolver)
    finally:
        await resolver.close()
    assert (result.reason, result.message) == (
        "dns",
        "fetch: DNS lookup of 'never-2.test' timed out at the deadline (journey deadline 0.3s)",
    )


async def test_a_name_that_does_not_exist_is_dns(dns_server: LoopbackDns) -> None:
    resolver = resolver_for(dns_server)
    try:
        result = await run(plan_of(step("http://gone.test/")), resolver=resolver)
    finally:
        await resolver.close()
    assert (result.reason, result.message) == ("dns", "fetch: cannot resolve host 'gone.test'")


async def test_localhost_never_asks_a_dns_server(target: Target) -> None:
    # Every name is silent here: localhost must not even be asked.
    with LoopbackDns(default=NEVER) as server:
        resolver = resolver_for(server, timeout=2.0)
        try:
            results = [
                await run(
                    plan_of(step(f"http://{host}:{port_of(target)}/json/full")), resolver=resolver
                )
                for host in ("localhost", "LocalHost.", "app.localhost")
            ]
        finally:
            await resolver.close()
        assert [r.status for r in results] == [Status.UP] * 3, results
        assert server.queries == []


class CountingResolver(ProbeResolver):
    def __init__(self, config: DnsConfig) -> None:
        super().__init__(config)
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return await super().resolve(host, port, family)


async def test_ip_literals_never_reach_the_resolver(target: Target) -> None:
    with LoopbackDns(default=NEVER) as server:
        resolver = CountingResolver(DnsConfig(servers=[server.nameserver], timeout=2.0))
        try:
            result = await run(plan_of(step(target.url + "/json/full")), resolver=resolver)
        finally:
            await resolver.close()
        assert result.status is Status.UP, result
        assert (resolver.asked, server.queries) == ([], [])


async def test_probes_never_use_the_loops_default_executor(
    target: Target, dns_server: LoopbackDns, default_executor: RefusingExecutor
) -> None:
    """asyncio's getaddrinfo runs in the default executor, which the web layer shared."""
    resolver = resolver_for(dns_server, timeout=0.5)
    port = port_of(target)
    default_executor.refuse()
    urls = [
        f"http://api.test:{port}/json/full",
        f"http://localhost:{port}/json/full",
        f"http://127.0.0.1:{port}/json/full",
        "http://gone.test/",
        "http://never-3.test/",
    ]
    try:
        results = await asyncio.gather(
            *(run(plan_of(step(url)), resolver=resolver) for url in urls)
        )
    finally:
        await resolver.close()
    assert [r.reason for r in results] == [None, None, None, "dns", "dns"], results
    assert default_executor.refused == []


# --- one slow name must not hold the others, on either event loop -----------------------

ROUNDS = 10
LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


async def serve_ok() -> tuple[web.AppRunner, int]:
    async def ok(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ok", ok)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def healthy_checks_while_four_names_hang(server: LoopbackDns) -> None:
    runner, port = await serve_ok()
    resolver = resolver_for(server, timeout=3.0)
    try:
        hanging = [
            asyncio.create_task(
                run(plan_of(step(f"http://{name}/"), timeout="5s"), resolver=resolver)
            )
            for name in NEVER_NAMES
        ]
        for _ in range(100):  # until the server has heard every question: they are in flight
            if server.names_asked() >= set(NEVER_NAMES):
                break
            await asyncio.sleep(0.02)
        assert server.names_asked() >= set(NEVER_NAMES)
        healthy: list[CheckResult] = []
        for _ in range(ROUNDS):
            for host in ("127.0.0.1", "localhost"):
                plan = plan_of(step(f"http://{host}:{port}/ok"), timeout="2s")
                healthy.append(await run(plan, resolver=resolver))
        # Every healthy run finished while all four lookups were still waiting.
        assert not any(task.done() for task in hanging)
        assert [r.status for r in healthy] == [Status.UP] * (2 * ROUNDS), [
            (r.reason, r.message) for r in healthy if r.status is not Status.UP
        ]
        down = await asyncio.gather(*hanging)
        assert [(r.reason, r.message.split(" (")[0]) for r in down] == [
            ("dns", f"fetch: DNS lookup of {name!r} timed out") for name in NEVER_NAMES
        ]
    finally:
        await resolver.close()
        await runner.cleanup()


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_names_that_never_resolve_do_not_delay_other_checks(
    loop_name: str, dns_server: LoopbackDns
) -> None:
    LOOPS[loop_name](healthy_checks_while_four_names_hang(dns_server))


async def test_check_command_uses_the_configured_dns(
    target: Target, dns_server: LoopbackDns
) -> None:
    """`uptime-probe check` resolves as the daemon does: `dns.servers`, `dns.timeout`."""
    port = port_of(target)
    document = {
        "dns": {"servers": [dns_server.nameserver], "timeout": "500ms"},
        "checks": [
            {"name": "by_name", "steps": [step(f"http://api.test:{port}/json/full")]},
            {"name": "silent", "steps": [step("http://never-4.test/")]},
        ],
    }
    config = parse_config(yaml.safe_dump(document), env={})
    results = {r.check: r for r in await run_checks_once(config)}
    assert results["by_name"].status is Status.UP, results["by_name"]
    assert results["silent"].reason == "dns"
    assert "DNS lookup of 'never-4.test' timed out (no answer in " in results["silent"].message
