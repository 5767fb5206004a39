"""Every kind judges through the step's StepJudge (probe/judging.py), as the HTTP kinds do.

What a dns, tcp, certificate or websocket step received is judged on the loop when it is
small and in a worker process when it could be slow; when the journey's deadline passes
while a worker judges, the run is `timeout` naming what was being judged (not the kind's
own words for where its connection was), and the worker is killed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import ServeApp
from tests.hostile.dns_server import LoopbackDns, answer
from tests.hostile.tls import valid_cert
from uptime_probe.probe import judging as judging_module
from uptime_probe.probe.judging import JudgingPool

from ..journeys import plan_of, run
from ..test_judging import BIG, MARGIN, ONES, SLOW_QUERY, LoopGaps
from .conftest import ServeTcp, closes_after, silent_after

LINES = 5000  # about 40 KiB of document: over the inline budget for JSON (16 KiB)


@pytest.fixture
async def pool() -> AsyncIterator[JudgingPool]:
    async with JudgingPool() as judging:
        await judging.start()
        yield judging


@pytest.fixture
async def big_ws(serve_app: ServeApp) -> str:
    """`/big`: one 1 MiB JSON message, then the socket stays open."""

    async def big(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_bytes(BIG)
        async for _message in socket:
            pass
        return socket

    app = web.Application()
    app.router.add_get("/big", big)
    url = await serve_app(app)
    return url.replace("http://", "ws://") + "/big"


async def test_a_slow_query_on_a_websocket_message_is_cut_naming_the_judging(
    big_ws: str, pool: JudgingPool
) -> None:
    await test_a_heavy_websocket_message_is_judged_in_a_worker(big_ws, pool)  # one warm worker
    step = {
        "name": "push",
        "websocket": {"url": big_ws},
        "expect": {"json": [{"query": SLOW_QUERY, "gt": 0}]},
    }
    started = time.perf_counter()
    async with LoopGaps() as gaps:
        result = await run(plan_of(step, timeout="1s", judging=pool))
    wall = time.perf_counter() - started

    assert (result.status, result.reason) == ("down", "timeout"), result
    # The message was in: the websocket's own note ("no message in ...") would be wrong.
    assert result.message == (
        f"push: judging the body against json `{SLOW_QUERY}` did not finish before the "
        "deadline (journey deadline 1s)"
    )
    assert wall < 1.0 + MARGIN, wall
    assert gaps.longest < 0.5, f"the loop stalled {gaps.longest:.3f}s"
    assert pool.killed == 1


async def test_a_heavy_websocket_message_is_judged_in_a_worker(
    big_ws: str, pool: JudgingPool
) -> None:
    step = {
        "name": "push",
        "websocket": {"url": big_ws},
        "expect": {"json": [{"query": "length(items)", "equals": ONES}]},
        "extract": {"count": "length(items)"},
    }
    result = await run(plan_of(step, timeout="20s", judging=pool))

    assert result.status == "up", result
    assert result.steps[0].assertions[0].actual == str(ONES)
    assert pool.started == 1, "a 1 MiB message is judged off the loop"


async def test_a_long_tcp_exchange_is_judged_in_a_worker(
    serve_tcp: ServeTcp, pool: JudgingPool
) -> None:
    lines = b"".join(b"line %d\r\n" % n for n in range(LINES))
    server = await serve_tcp(closes_after(b"220 ready\r\n", lines, b"END\r\n"))
    step = {
        "name": "dump",
        "tcp": {"host": "127.0.0.1", "port": server.port},
        "expect": {
            "receive": "^END$",
            "json": [{"query": "length(lines)", "equals": LINES + 2}],
        },
    }
    result = await run(plan_of(step, judging=pool))

    assert result.status == "up", result
    assert result.steps[0].assertions[0].actual == str(LINES + 2)
    assert pool.started == 1, "a 40 KiB document is judged off the loop"


async def test_a_dns_answer_and_a_certificate_are_judged_on_the_loop(
    serve_tcp: ServeTcp, pool: JudgingPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # By their size, not by luck: a descheduled process could overrun the 2 ms query budget.
    monkeypatch.setattr(judging_module, "INLINE_SECONDS", 60.0)
    case = valid_cert(tmp_path)
    server = await serve_tcp(silent_after(), ssl=case.server_context)
    with LoopbackDns({"chat.test": answer("127.0.0.1")}) as dns:
        plan = plan_of(
            {
                "name": "resolve",
                "dns": {"name": "chat.test", "server": dns.nameserver},
                "expect": {"json": [{"query": "answers[0]", "equals": "127.0.0.1"}]},
            },
            {
                "name": "cert",
                "certificate": {"host": "127.0.0.1", "port": server.port},
                "tls": {"ca_file": str(case.ca_path)},
                "expect": {"json": [{"query": "verified", "equals": 1}]},
            },
            judging=pool,
        )
        result = await run(plan)

    assert result.status == "up", result
    assert pool.workers == 0, "documents of a few hundred bytes cost no round trip"
