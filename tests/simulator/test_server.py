"""Running the simulator: in-process on a real port, and the blocking CLI entry point."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time

import aiohttp
import pytest

from uptime_probe.simulator import (
    FaultSpecError,
    PhaseStatus,
    RunningSimulator,
    load_scenario,
    run_simulator,
    start_simulator,
)
from uptime_probe.simulator.faults import Endpoint, FaultMode
from uptime_probe.simulator.server import parse_listen
from uptime_probe.simulator.state import SIM_STATE

from .fakes import FakeClock, wait_until


async def test_port_zero_exposes_the_real_port(client: aiohttp.ClientSession) -> None:
    sim = await start_simulator()
    try:
        assert sim.port > 0
        assert sim.url == f"http://127.0.0.1:{sim.port}"
        async with client.get(sim.url + "/") as response:
            assert response.status == 200
    finally:
        await sim.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.get(sim.url + "/")


async def test_stop_is_prompt_while_requests_hang(client: aiohttp.ClientSession) -> None:
    sim = await start_simulator()
    sim.set_faults({"chat": "hang", "conversations": "hang"})
    pending = [
        asyncio.create_task(client.get(sim.url + path))
        for path in ("/", "/backend-api/conversations") * 2
    ]
    state = sim.app[SIM_STATE]
    await wait_until(lambda: len(state.hanging) == 4)
    started = time.monotonic()
    await asyncio.wait_for(sim.stop(), timeout=1.5)
    assert time.monotonic() - started < 1.0
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(r, aiohttp.ClientError) for r in results)  # no answer came


async def test_set_faults_validates_and_changes_nothing_when_invalid(sim: RunningSimulator) -> None:
    with pytest.raises(FaultSpecError, match="unknown endpoint 'nope'"):
        sim.set_faults({"chat": "hang", "nope": "ok"})
    assert sim.player.faults()[Endpoint.CHAT].mode is FaultMode.OK
    sim.set_faults({"chat": {"mode": "error", "status": 502}})
    assert sim.player.faults()[Endpoint.CHAT].status == 502
    sim.clear_faults()
    assert sim.player.faults()[Endpoint.CHAT].mode is FaultMode.OK


async def test_current_phase_and_advance_to(clock: FakeClock) -> None:
    scenario = load_scenario("dec-3-2025")
    async with await start_simulator(clock=clock, scenario=scenario, speed=10.0) as sim:
        phase = sim.current_phase()
        assert isinstance(phase, PhaseStatus)
        assert (phase.scenario, phase.name, phase.index) == ("dec-3-2025", "lead-in", 0)
        clock.advance(30.0)  # 5 min at speed 10
        assert sim.current_phase().name == "task-creation-hang"
        assert sim.advance_to(4).name == "monitoring"


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9000", ("::1", 9000)),
        (":8765", ("127.0.0.1", 8765)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["8765", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ""])
def test_parse_listen_rejects_bad_addresses(listen: str) -> None:
    with pytest.raises(ValueError, match="listen address must look like"):
        parse_listen(listen)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenario": "nope"}, "unknown scenario 'nope'"),
        ({"listen": "nowhere"}, "listen address must look like"),
        ({"speed": 0.0}, "speed must be a positive number"),
    ],
)
def test_run_simulator_returns_2_for_bad_arguments(
    kwargs: dict[str, object], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_simulator(**kwargs) == 2  # type: ignore[arg-type]
    assert message in capsys.readouterr().err


def test_run_simulator_returns_1_when_the_port_is_taken(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_simulator(listen=f"127.0.0.1:{port}") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


_RUN = (
    "import sys; from uptime_probe.simulator import run_simulator; "
    "sys.exit(run_simulator(listen='127.0.0.1:0', scenario='dec-3-2025', speed=600, loop=True))"
)


async def _read_until(stream: asyncio.StreamReader, marker: str, lines: list[str]) -> str:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"output ended before {marker!r}: {lines}")
        lines.append(line)
        if marker in line:
            return line


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_run_simulator_serves_logs_phases_and_stops_on_a_signal(
    signum: signal.Signals, client: aiohttp.ClientSession
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RUN,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(15):
            started = await _read_until(process.stderr, "simulator_started url=", lines)
            url = started.split("url=")[1].split()[0]
            async with client.get(url + "/") as response:
                assert response.status == 200
            # at speed 600 the 5 min lead-in lasts 0.5 s: the next phase is logged by itself
            await _read_until(process.stderr, "phase=task-creation-hang", lines)
            process.send_signal(signum)
            assert await process.wait() == 0
            rest = (await process.stderr.read()).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = "".join(lines) + rest
    assert "phase_changed scenario=dec-3-2025 index=0 phase=lead-in" in output
    assert "simulator_stopped" in output
