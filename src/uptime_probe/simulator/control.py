"""The control API under `/_sim/`: read and switch faults at run time, jump between phases.

It answers only requests whose socket peer is a loopback address (403 otherwise): headers such
as X-Forwarded-For are ignored, as they are the client's to choose.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from aiohttp import web

from uptime_probe.simulator.faults import FaultSpecError, parse_fault_map
from uptime_probe.simulator.state import SIM_STATE, SimulatorState

FAULTS_PATH = "/_sim/faults"
PHASE_PATH = "/_sim/phase"


def is_loopback_peer(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything else or None."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def peer_host(request: web.BaseRequest) -> str | None:
    """The IP address of the socket peer, or None (no transport, or not an IP socket)."""
    transport = request.transport
    if transport is None:
        return None
    peername = transport.get_extra_info("peername")
    if isinstance(peername, tuple) and peername and isinstance(peername[0], str):
        return peername[0]
    return None


def add_control_routes(app: web.Application) -> None:
    app.router.add_get(FAULTS_PATH, _get_faults)
    app.router.add_post(FAULTS_PATH, _set_faults)
    app.router.add_delete(FAULTS_PATH, _clear_faults)
    app.router.add_post(PHASE_PATH, _set_phase)


def control_state(state: SimulatorState) -> dict[str, object]:
    """What GET /_sim/faults answers."""
    player = state.player
    status = player.status()
    faults = player.faults()
    return {
        **status.to_json(),
        "speed": player.speed,
        "loop": player.loop,
        "faults": {endpoint.value: spec.to_json() for endpoint, spec in faults.items()},
        "manual": sorted(endpoint.value for endpoint in player.overridden()),
    }


def _forbidden_unless_loopback(request: web.Request) -> web.Response | None:
    if is_loopback_peer(peer_host(request)):
        return None
    body = {"error": {"code": "forbidden", "message": "The control API answers loopback only."}}
    return web.json_response(body, status=403)


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": {"code": "invalid_request", "message": message}}, status=400)


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None


async def _get_faults(request: web.Request) -> web.Response:
    if (denied := _forbidden_unless_loopback(request)) is not None:
        return denied
    return web.json_response(control_state(request.app[SIM_STATE]))


async def _set_faults(request: web.Request) -> web.Response:
    """Body `{endpoint: spec, ...}`: set those endpoints, all or none, until the next phase."""
    if (denied := _forbidden_unless_loopback(request)) is not None:
        return denied
    try:
        faults = parse_fault_map(await _json_body(request), where="")
    except (ValueError, FaultSpecError) as exc:
        return _bad_request(str(exc))
    state = request.app[SIM_STATE]
    state.player.set_faults(faults)
    return web.json_response(control_state(state))


async def _clear_faults(request: web.Request) -> web.Response:
    if (denied := _forbidden_unless_loopback(request)) is not None:
        return denied
    state = request.app[SIM_STATE]
    state.player.clear_faults()
    return web.json_response(control_state(state))


async def _set_phase(request: web.Request) -> web.Response:
    """Body `{"index": N}` or `{"name": "..."}`: jump to the start of that phase now."""
    if (denied := _forbidden_unless_loopback(request)) is not None:
        return denied
    state = request.app[SIM_STATE]
    phases = state.player.scenario.phases
    try:
        body = await _json_body(request)
    except ValueError as exc:
        return _bad_request(str(exc))
    index: object = None
    if isinstance(body, dict) and isinstance(body.get("name"), str):
        names = [p.name for p in phases]
        if body["name"] not in names:
            return _bad_request(
                f"unknown phase {body['name']!r}; expected one of {', '.join(names)}"
            )
        index = names.index(body["name"])
    elif isinstance(body, dict):
        index = body.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(phases):
        return _bad_request(
            f'body must be {{"index": 0..{len(phases) - 1}}} or {{"name": "<phase name>"}}'
        )
    state.player.advance_to(index)
    return web.json_response(control_state(state))
