"""`retries:` against a real target on 127.0.0.1 that fails its first answers, then recovers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest
import yaml
from aiohttp import web

from uptime_probe.config import parse_config
from uptime_probe.probe import CheckPlan, Status, compile_checks

from .journeys import run

ServeApp = Callable[..., Awaitable[str]]


class Flaky:
    """Answers 503 to its first `failures` requests, then 200; records when each came."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.seen: list[float] = []

    def app(self) -> web.Application:
        async def handle(_request: web.Request) -> web.Response:
            self.seen.append(time.monotonic())
            if len(self.seen) <= self.failures:
                return web.json_response({"ok": False}, status=503)
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/", handle)
        return app


def plan(url: str, retries: dict[str, object] | None) -> CheckPlan:
    check: dict[str, object] = {
        "name": "flaky",
        "interval": "30s",
        "timeout": "2s",
        "steps": [{"name": "page", "request": {"url": url}}],
    }
    if retries is not None:
        check["retries"] = retries
    config = parse_config(yaml.safe_dump({"checks": [check]}), env={})
    return compile_checks(config)["flaky"]


@pytest.mark.parametrize(
    ("failures", "retries", "status", "counted_retries", "requests"),
    [
        (1, {"count": 2, "delay": "50ms"}, Status.UP, 1, 2),  # the second try counts
        (2, {"count": 2, "delay": "50ms"}, Status.UP, 2, 3),
        (5, {"count": 2, "delay": "50ms"}, Status.DOWN, 2, 3),  # the last try counts
        (1, None, Status.DOWN, 0, 1),  # no retries: the first failure counts
        (0, {"count": 2, "delay": "50ms"}, Status.UP, 0, 1),  # nothing to retry
    ],
)
async def test_a_down_run_is_tried_again_and_the_last_try_counts(
    serve_app: ServeApp,
    failures: int,
    retries: dict[str, object] | None,
    status: Status,
    counted_retries: int,
    requests: int,
) -> None:
    target = Flaky(failures)
    url = await serve_app(target.app())

    result = await run(plan(url + "/", retries))

    assert result.status is status
    assert result.retries == counted_retries
    assert len(target.seen) == requests
    if status is Status.DOWN:
        assert (result.reason, result.http_status) == ("http_5xx", 503)


async def test_tries_are_spaced_by_the_delay(serve_app: ServeApp) -> None:
    target = Flaky(2)
    url = await serve_app(target.app())

    result = await run(plan(url + "/", {"count": 2, "delay": "200ms"}))

    assert result.status is Status.UP
    gaps = [later - earlier for earlier, later in zip(target.seen, target.seen[1:], strict=False)]
    assert len(gaps) == 2
    assert all(gap >= 0.2 for gap in gaps), gaps


async def test_a_degraded_run_is_not_retried(serve_app: ServeApp) -> None:
    target = Flaky(0)
    url = await serve_app(target.app())
    check = {
        "name": "flaky",
        "interval": "30s",
        "timeout": "2s",
        "retries": {"count": 3, "delay": "10ms"},
        "steps": [
            {
                "name": "page",
                "request": {"url": url + "/"},
                "expect": {"json": [{"query": "ok", "equals": False, "severity": "warning"}]},
            }
        ],
    }
    config = parse_config(yaml.safe_dump({"checks": [check]}), env={})

    result = await run(compile_checks(config)["flaky"])

    assert (result.status, result.retries, len(target.seen)) == (Status.DEGRADED, 0, 1)
