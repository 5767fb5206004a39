"""The control API: read, set and clear faults, jump phases; loopback only."""

from __future__ import annotations

from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from uptime_probe.simulator import RunningSimulator, build_app, start_simulator
from uptime_probe.simulator.control import is_loopback_peer, peer_host
from uptime_probe.simulator.scenario import parse_scenario

from .fakes import FakeClock

FAULTS = "/_sim/faults"
ALL_OK = {
    e: {"mode": "ok"} for e in ("chat", "conversations", "task_create", "task_status", "answer")
}
TWO_PHASES = parse_scenario(
    """
name: two
phases:
  - {name: first, duration: 10s, note: all good}
  - {name: second, duration: 10s, faults: {conversations: empty}}
"""
)


async def _json(response: aiohttp.ClientResponse) -> Any:
    return await response.json()


async def test_get_shows_faults_scenario_and_phase(
    sim: RunningSimulator, client: aiohttp.ClientSession, clock: FakeClock
) -> None:
    clock.advance(12.5)
    async with client.get(sim.url + FAULTS) as response:
        assert response.status == 200
        body = await _json(response)
    assert body == {
        "scenario": "healthy",
        "phase": "healthy",
        "phase_index": 0,
        "note": "All systems operational.",
        "seconds_into_phase": 12.5,
        "phase_duration": None,
        "lap": 0,
        "finished": False,
        "speed": 1.0,
        "loop": False,
        "faults": ALL_OK,
        "manual": [],
    }


async def test_post_sets_only_the_named_endpoints(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    async with client.post(sim.url + FAULTS, json={"conversations": "empty"}) as response:
        assert response.status == 200
    spec = {"mode": "slow", "latency": 0.5}
    async with client.post(sim.url + FAULTS, json={"chat": spec}) as response:
        assert response.status == 200
        body = await _json(response)
    assert body["faults"] == ALL_OK | {"chat": spec, "conversations": {"mode": "empty"}}
    assert body["manual"] == ["chat", "conversations"]
    async with client.get(sim.url + FAULTS) as response:
        assert (await _json(response))["faults"] == body["faults"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"database": "hang"}', "unknown endpoint 'database' (expected one of chat, "),
        (b'{"chat": "explode"}', "chat.mode: Input should be 'ok', 'slow', 'hang'"),
        (b'{"chat": {"mode": "stuck"}}', "chat: mode 'stuck' applies only to task_create"),
        (b'{"chat": {"mode": "error", "latency": 1}}', "'latency' does not apply to mode"),
        (b'{"chat": {"mode": "error", "status": 200}}', "chat.status: Input should be greater"),
        (b'{"chat": {"mode": "slow", "latency": -1}}', "chat.latency: Input should be greater"),
        (b'{"chat": {}}', "chat.mode: Field required"),
        (b'["chat"]', "expected a mapping of endpoint to fault spec, got list"),
        (b"not json", "body is not valid JSON"),
        (b"", "body is not valid JSON"),
    ],
)
async def test_post_rejects_a_bad_body_with_a_clear_message(
    sim: RunningSimulator, client: aiohttp.ClientSession, body: bytes, message: str
) -> None:
    async with client.post(sim.url + FAULTS, data=body) as response:
        assert response.status == 400
        error = (await _json(response))["error"]
    assert error["code"] == "invalid_request"
    assert message in error["message"]


async def test_a_rejected_post_changes_nothing(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    body = {"chat": "hang", "nope": "ok"}
    async with client.post(sim.url + FAULTS, json=body) as response:
        assert response.status == 400
    async with client.get(sim.url + FAULTS) as response:
        assert (await _json(response))["faults"] == ALL_OK


async def test_delete_sets_every_endpoint_ok(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    sim.set_faults({"chat": "hang", "task_create": "stuck"})
    async with client.delete(sim.url + FAULTS) as response:
        assert response.status == 200
        body = await _json(response)
    assert body["faults"] == ALL_OK
    assert body["manual"] == ["answer", "chat", "conversations", "task_create", "task_status"]


async def test_a_manual_setting_holds_until_the_next_phase(
    clock: FakeClock, client: aiohttp.ClientSession
) -> None:
    async with await start_simulator(clock=clock, scenario=TWO_PHASES) as sim:
        async with client.post(sim.url + FAULTS, json={"chat": "error"}) as response:
            assert response.status == 200
        clock.advance(9.9)
        async with client.get(sim.url + "/") as response:
            assert response.status == 500
        clock.advance(0.1)
        async with client.get(sim.url + "/") as response:
            assert response.status == 200
        async with client.get(sim.url + FAULTS) as response:
            body = await _json(response)
        assert (body["phase"], body["phase_index"], body["manual"]) == ("second", 1, [])
        assert body["faults"]["conversations"] == {"mode": "empty"}


@pytest.mark.parametrize(
    ("body", "phase"), [({"index": 1}, "second"), ({"name": "first"}, "first")]
)
async def test_post_phase_jumps_to_a_phase(
    clock: FakeClock, client: aiohttp.ClientSession, body: dict[str, object], phase: str
) -> None:
    async with await start_simulator(clock=clock, scenario=TWO_PHASES) as sim:
        clock.advance(3)
        async with client.post(sim.url + "/_sim/phase", json=body) as response:
            assert response.status == 200
            state = await _json(response)
        assert (state["phase"], state["seconds_into_phase"]) == (phase, 0.0)
        assert sim.current_phase().name == phase


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"index": 2}, '{"index": 0..1}'),
        ({"index": -1}, '{"index": 0..1}'),
        ({"index": True}, '{"index": 0..1}'),
        ({"index": "1"}, '{"index": 0..1}'),
        ({}, '{"index": 0..1}'),
        ({"name": "third"}, "unknown phase 'third'; expected one of first, second"),
    ],
)
async def test_post_phase_rejects_a_bad_body(
    clock: FakeClock, client: aiohttp.ClientSession, body: dict[str, object], message: str
) -> None:
    async with (
        await start_simulator(clock=clock, scenario=TWO_PHASES) as sim,
        client.post(sim.url + "/_sim/phase", json=body) as response,
    ):
        assert response.status == 400
        assert message in (await _json(response))["error"]["message"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("192.168.1.20", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1", False),
        ("localhost", False),  # a peer is an address, never a name
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_peer(host: str | None, loopback: bool) -> None:
    assert is_loopback_peer(host) is loopback


def _transport(peername: object) -> mock.Mock:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        peername if name == "peername" else default
    )
    return transport


@pytest.mark.parametrize(
    ("peername", "host"),
    [
        (("127.0.0.1", 5000), "127.0.0.1"),
        (("::1", 5000, 0, 0), "::1"),
        ("/run/sim.sock", None),  # a unix socket
        (None, None),
    ],
)
def test_peer_host_reads_the_socket_peer(peername: object, host: str | None) -> None:
    request = make_mocked_request("GET", FAULTS, transport=_transport(peername))
    assert peer_host(request) == host


@pytest.mark.parametrize(
    ("method", "peername", "status"),
    [
        ("GET", ("10.0.0.5", 40000), 403),
        ("POST", ("10.0.0.5", 40000), 403),
        ("DELETE", ("192.168.1.20", 40000), 403),
        ("GET", ("::ffff:10.0.0.1", 40000, 0, 0), 403),
        ("GET", ("127.0.0.1", 40000), 200),
        ("DELETE", ("::1", 40000, 0, 0), 200),
    ],
)
async def test_the_control_api_answers_loopback_peers_only(
    method: str, peername: object, status: int
) -> None:
    app = build_app(clock=FakeClock())
    request = make_mocked_request(
        method,
        FAULTS,
        headers={"X-Forwarded-For": "127.0.0.1"},  # the client's to claim: ignored
        transport=_transport(peername),
        app=app,
    )
    match = await app.router.resolve(request)
    response = await match.handler(request)
    assert isinstance(response, web.Response)
    assert response.status == status
    if status == 403:
        assert response.text is not None
        assert '"forbidden"' in response.text


async def test_the_phase_endpoint_is_loopback_only_too() -> None:
    app = build_app(clock=FakeClock())
    request = make_mocked_request(
        "POST", "/_sim/phase", transport=_transport(("10.0.0.5", 1)), app=app
    )
    match = await app.router.resolve(request)
    assert (await match.handler(request)).status == 403
