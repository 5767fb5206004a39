"""What the simulator's handlers share, kept on the application (no module-level state)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from uptime_probe.simulator.conversations import Conversation
from uptime_probe.simulator.player import Clock, ScenarioPlayer
from uptime_probe.simulator.tasks import TaskTable


@dataclass
class SimulatorState:
    """One per application."""

    token: str
    task_complete_after: float  # clock seconds, already divided by speed
    player: ScenarioPlayer
    tasks: TaskTable
    conversations: tuple[Conversation, ...]
    clock: Clock
    hanging: set[asyncio.Task[Any]] = field(default_factory=set)  # requests held by `hang`


SIM_STATE = web.AppKey("uptime_probe_simulator_state", SimulatorState)
