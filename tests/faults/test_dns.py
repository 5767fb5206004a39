"""One slow DNS name must not blind the daemon (issue 13, item 2), on uvloop and on asyncio.

The daemon's probes resolve through a real DNS server on loopback (tests/hostile's
`LoopbackDns`, set as `dns.servers`) that never answers four names. Four checks on those
names keep lookups in flight the whole time; meanwhile a check of `127.0.0.1` and one of
`localhost` must stay up run after run, and `/metrics` with gzip (what Prometheus asks
for), the status page and `/healthz` must answer while those lookups still wait: the
scrape itself shows that none of the four has finished a run yet. When the lookups time
out, the four checks are down as `dns`, saying which lookup timed out.

Before: on uvloop the lookups held libuv's 4 threads and the `127.0.0.1` check failed 9
runs in 10 as `connect_timeout`; on asyncio's loop they held the default executor that
the web layer shared, and a gzip scrape took 20 s.
"""

from __future__ import annotations

import asyncio
import gzip
import signal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ServeApp
from tests.daemon.support import DaemonProcess, Scrape, http_check, write_config
from tests.hostile.dns_server import NEVER, NXDOMAIN, LoopbackDns, answer

from .support import (
    assert_loop_never_blocked,
    give_log_pipe_room,
    names_firing_together,
    poll_until,
    watched_daemon,
)

NEVER_NAMES = ("never-1.test", "never-2.test", "never-3.test", "never-4.test")
INTERVAL = 8.0
# Four checks whose runs start within half a second of each other, lookups and all.
HANGING = tuple(names_firing_together("hanging", 4, INTERVAL, 0.5))
HEALTHY = ("by_ip", "by_localhost")
LOOKUP_TIMEOUT = "4s"
ROUNDS = 8  # runs each healthy check must have, all up
RUNS = "uptime_probe_check_runs_total"
FAILURES = "uptime_probe_check_failures_total"


async def ok_app(serve_app: ServeApp) -> int:
    async def ok(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ok", ok)
    url = await serve_app(app)
    return int(url.rsplit(":", 1)[1])


async def get(daemon: DaemonProcess, path: str, **headers: str) -> tuple[int, bytes, str]:
    """Status, body as sent (not decompressed) and Content-Encoding."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(daemon.url + path, headers=headers) as response,
    ):
        return response.status, await response.read(), response.headers.get("Content-Encoding", "")


@pytest.mark.parametrize("loop_name", ["uvloop", "asyncio"])
async def test_names_that_never_resolve_do_not_blind_the_daemon(
    loop_name: str, serve_app: ServeApp, tmp_path: Path
) -> None:
    port = await ok_app(serve_app)
    checks = [
        http_check(check, f"http://{name}:{port}/ok", interval=INTERVAL, timeout="8s")
        for check, name in zip(HANGING, NEVER_NAMES, strict=True)
    ] + [
        http_check("by_ip", f"http://127.0.0.1:{port}/ok", interval="250ms", timeout="250ms"),
        http_check(
            "by_localhost", f"http://localhost:{port}/ok", interval="250ms", timeout="250ms"
        ),
    ]
    with LoopbackDns(dict.fromkeys(NEVER_NAMES, NEVER)) as dns_server:
        config = tmp_path / "probes.yaml"
        dns = {"servers": [dns_server.nameserver], "timeout": LOOKUP_TIMEOUT}
        write_config(config, checks, dns=dns)
        daemon = watched_daemon(config)
        daemon.env["UPTIME_PROBE_EVENT_LOOP"] = loop_name
        try:
            daemon.start()
            give_log_pipe_room(daemon)
            await daemon.started()
            assert daemon.logs("daemon_started")[0]["event_loop"] == loop_name

            await poll_until(
                lambda: dns_server.names_asked() >= set(NEVER_NAMES), "all four lookups", 15
            )
            metrics, page, health = await asyncio.gather(
                get(daemon, "/metrics", **{"Accept-Encoding": "gzip"}),
                get(daemon, "/", **{"Accept-Encoding": "gzip"}),
                get(daemon, "/healthz"),
            )
            assert (metrics[0], metrics[2], page[0], page[2]) == (200, "gzip", 200, "gzip")
            assert health == (200, b"ok\n", "")
            # Answered while every lookup was still waiting: no hanging check has a run yet.
            scrape = Scrape(gzip.decompress(metrics[1]).decode())
            assert [scrape.value(RUNS, check=check) for check in HANGING] == [0] * 4
            assert "by_localhost" in gzip.decompress(page[1]).decode()

            # Healthy checks stay up run after run; the four end as dns timeouts.
            scrape = await daemon.wait_for_scrape(
                lambda s: (
                    all(s.value(RUNS, check=c) >= ROUNDS for c in HEALTHY)
                    and all(s.value(RUNS, check=c) >= 1 for c in HANGING)
                ),
                "every check to have run",
            )
            assert [scrape.get(FAILURES, check=c) for c in HEALTHY] == [0, 0], [
                (r["check"], r["reason"], r["message"])
                for r in daemon.logs("check_failed")
                if r["check"] in HEALTHY
            ]
            # The log is written by a thread of its own: a run counted in the metrics may
            # not have its line on stderr yet.
            for check in HANGING:
                await daemon.wait_for_log("check_failed", check=check, timeout=10)
            failed = {r["check"]: r for r in daemon.logs("check_failed")}
            for check, name in zip(HANGING, NEVER_NAMES, strict=True):
                assert failed[check]["reason"] == "dns"
                assert failed[check]["message"].startswith(
                    f"fetch: DNS lookup of {name!r} timed out (no answer in "
                ), failed[check]
            assert_loop_never_blocked(daemon)
        finally:
            daemon.kill()


async def test_a_reload_keeps_the_running_dns_settings(serve_app: ServeApp, tmp_path: Path) -> None:
    port = await ok_app(serve_app)
    check = http_check("by_name", f"http://api.test:{port}/ok", interval="250ms", timeout="250ms")
    server = {"watch_interval": "1h"}  # only SIGHUP reloads here
    with (
        LoopbackDns({"api.test": answer("127.0.0.1", ttl=0)}) as first,  # asked every run
        LoopbackDns({"api.test": NXDOMAIN}) as second,
    ):
        config = tmp_path / "probes.yaml"
        write_config(config, [check], server=server, dns={"servers": [first.nameserver]})
        daemon = watched_daemon(config)
        try:
            daemon.start()
            await daemon.started()
            await daemon.wait_for_scrape(lambda s: s.value(RUNS, check="by_name") >= 2, "runs")

            write_config(config, [check], server=server, dns={"servers": [second.nameserver]})
            mark = daemon.log_count
            daemon.send(signal.SIGHUP)
            await daemon.wait_for_log("config_dns_ignored", after=mark)
            await daemon.wait_for_log("config_reloaded", after=mark)
            asked = len(first.queries)
            scrape = await daemon.wait_for_scrape(
                lambda s: s.value(RUNS, check="by_name") >= 6 and len(first.queries) > asked,
                "runs after the reload, resolved by the first server",
            )
            assert scrape.get(FAILURES, check="by_name", reason="dns") == 0
            assert second.queries == []
        finally:
            daemon.kill()
