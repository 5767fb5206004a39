"""A deploy pipeline's maintenance window, end to end: `uptime-probe run` as a child process
probing a real failing target on 127.0.0.1, a real webhook receiver, the window opened and
ended through the HTTP API, and a restart on the same data dir in between."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.alerting.receiver import Receiver

from .support import DEADLINE, DaemonProcess, Scrape, http_check, write_config

ServeApp = Callable[..., Awaitable[str]]
TOKEN = "pipeline-" + "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEY = {"check": "checkout", "location": "local"}


def failing_target() -> web.Application:
    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=503, text="down for upgrade")

    app = web.Application()
    app.router.add_get("/", broken)
    return app


def held(scrape: Scrape, runs: float = 0.0) -> bool:
    return (
        scrape.get("uptime_probe_check_in_maintenance", **KEY) == 1
        and scrape.get("uptime_probe_check_state", state="down", **KEY) == 1
        and scrape.get("uptime_probe_check_maintenance_failures_total", **KEY) > runs
    )


async def test_a_window_opened_through_the_api_mutes_a_down_check_across_a_restart(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    target = await serve_app(failing_target())
    receiver = Receiver()
    hook = await serve_app(receiver.app())
    config = tmp_path / "probes.yaml"
    write_config(
        config,
        # Three down runs before an incident: the window is opened through the API after
        # `daemon_started`, and the first run (at most one interval later, 0.5 s) may start
        # before it lands on a loaded machine; judged outside the window, with a threshold
        # of 1 it opened the incident and notified.
        [{**http_check("checkout", target + "/"), "tags": ["payments"], "failure_threshold": 3}],
        server={"enable_lifecycle": True, "auth": {"bearer_token": TOKEN}},
        notifiers={"oncall": {"kind": "webhook", "url": hook + "/"}},
        defaults={"notifiers": ["oncall"]},
    )
    data_dir = ["--data-dir", str(tmp_path / "data")]
    first = DaemonProcess(config, grace=2.0, extra_args=data_dir)
    second = DaemonProcess(config, grace=2.0, extra_args=data_dir)
    try:
        first.start()
        url = await first.started()
        timeout = aiohttp.ClientTimeout(total=DEADLINE)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            body = {"name": "deploy_42", "tags": ["payments"], "duration": "10m"}
            async with session.post(url + "/api/v1/maintenance", json=body) as denied:
                assert denied.status == 401  # the write API is behind auth
            async with session.post(
                url + "/api/v1/maintenance", json=body, headers=AUTH
            ) as response:
                assert response.status == 201, await response.text()
                window = await response.json()
        assert window["covers"] == ["checkout"]

        # Probed, recorded and exported as usual; nobody told.
        scrape = await first.wait_for_scrape(
            lambda s: held(s, runs=2), what="checkout down in maintenance"
        )
        assert scrape.get("uptime_probe_check_runs_total", **KEY) >= 3
        assert receiver.requests == []

        first.send(signal.SIGTERM)
        assert await first.wait_exit() == 0
        second.start()
        url = await second.started()
        # The window came back from the store: still held, still nobody told.
        await second.wait_for_scrape(held, what="the window restored after the restart")
        assert receiver.requests == []

        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.delete(url + f"/api/v1/maintenance/{window['id']}", headers=AUTH) as ended,
        ):
            assert ended.status == 200, await ended.text()
        await second.wait_for_scrape(
            lambda s: s.get("uptime_probe_check_in_maintenance", **KEY) == 0,
            what="the window ended",
        )
        # Still down after the window: the next down run opens the incident and notifies.
        await second.wait_for_log("notification_sent", notice="opened", check="checkout")
        assert receiver.events() == ["opened"]
    finally:
        first.kill()
        second.kill()
