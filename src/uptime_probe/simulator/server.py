"""Running the simulator: in-process for tests and the demo, or blocking for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Self, TypedDict, Unpack

from aiohttp import web

from uptime_probe.simulator.app import build_app
from uptime_probe.simulator.faults import parse_fault_map
from uptime_probe.simulator.player import Clock, PhaseStatus, ScenarioPlayer
from uptime_probe.simulator.scenario import Scenario, ScenarioError, load_scenario
from uptime_probe.simulator.state import SIM_STATE

logger = logging.getLogger("uptime_probe.simulator")

# Requests still in flight at stop get this long to finish (hanging ones are cancelled at once).
SHUTDOWN_TIMEOUT = 2.0


class RunningSimulator:
    """A simulator serving on a real socket. Stop it with `await stop()` or `async with`."""

    def __init__(self, runner: web.AppRunner, app: web.Application, host: str, port: int) -> None:
        self._runner = runner
        self.app = app
        self.host = host
        self.port = port
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{port}"

    @property
    def player(self) -> ScenarioPlayer:
        return self.app[SIM_STATE].player

    def set_faults(self, faults: Mapping[str, object]) -> None:
        """Same as POST /_sim/faults: `{endpoint: spec or mode, ...}`, held until the next
        phase change. Raises FaultSpecError (a ValueError) and changes nothing if invalid."""
        self.player.set_faults(parse_fault_map(faults, where=""))

    def clear_faults(self) -> None:
        """Same as DELETE /_sim/faults: every endpoint ok until the next phase change."""
        self.player.clear_faults()

    def current_phase(self) -> PhaseStatus:
        return self.player.status()

    def advance_to(self, phase_index: int) -> PhaseStatus:
        """Jump to the start of a phase now."""
        return self.player.advance_to(phase_index)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class AppOptions(TypedDict, total=False):
    """The keyword arguments of `build_app`, passed through by `start_simulator`."""

    token: str
    task_complete_after: float
    scenario: Scenario | None
    speed: float
    loop: bool
    clock: Clock
    max_tasks: int


async def start_simulator(
    host: str = "127.0.0.1", port: int = 0, **build_app_kwargs: Unpack[AppOptions]
) -> RunningSimulator:
    """Build the app (see `build_app` for the keyword arguments) and serve it on host:port.

    With port 0 the system picks a free port; `.port` and `.url` give the one bound.
    """
    app = build_app(**build_app_kwargs)
    # handler_cancellation: a request held by `hang` ends when its client goes away.
    runner = web.AppRunner(
        app, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
    except BaseException:
        await runner.cleanup()
        raise
    return RunningSimulator(runner, app, host, bound_port)


def parse_listen(listen: str) -> tuple[str, int]:
    """`"127.0.0.1:8765"`, `"[::1]:8765"`, `":8765"` (loopback) -> (host, port)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address must look like 127.0.0.1:8765, got {listen!r}")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    return host, int(port_text)


def run_simulator(
    listen: str = "127.0.0.1:8765",
    scenario: str = "healthy",
    speed: float = 1.0,
    loop: bool = False,
    token: str = "demo-token",  # noqa: S107 - the documented demo credential
) -> int:
    """Serve until SIGINT or SIGTERM; log one line per phase change. Returns the exit code:
    0 after a clean stop, 2 for bad arguments or scenario, 1 if the address cannot be bound."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        host, port = parse_listen(listen)
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        loaded = load_scenario(scenario)
    except (ValueError, ScenarioError) as exc:
        print(f"uptime-probe simulator: {exc}", file=sys.stderr)
        return 2
    try:
        options = AppOptions(scenario=loaded, speed=speed, loop=loop, token=token)
        return asyncio.run(_serve(host, port, options))
    except OSError as exc:
        print(f"uptime-probe simulator: cannot listen on {listen}: {exc}", file=sys.stderr)
        return 1


async def _serve(host: str, port: int, options: AppOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    simulator = await start_simulator(host, port, **options)
    try:
        player = simulator.player
        logger.info(
            "simulator_started url=%s scenario=%s speed=%g loop=%s",
            simulator.url,
            player.scenario.name,
            player.speed,
            player.loop,
        )
        await stop.wait()
        logger.info("simulator_stopping")
    finally:
        await simulator.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
    logger.info("simulator_stopped")
    return 0
