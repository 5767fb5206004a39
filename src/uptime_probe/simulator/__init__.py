"""A simulated chat service with scripted faults, for demos and tests of the prober.

It imports nothing from the rest of `uptime_probe`. See docs/simulator.md.
"""

from uptime_probe.simulator.app import build_app
from uptime_probe.simulator.faults import Endpoint, FaultMode, FaultSpec, FaultSpecError
from uptime_probe.simulator.player import PhaseStatus, ScenarioPlayer
from uptime_probe.simulator.scenario import (
    Phase,
    Scenario,
    ScenarioError,
    bundled_scenario_names,
    load_scenario,
    parse_duration,
)
from uptime_probe.simulator.server import RunningSimulator, run_simulator, start_simulator

__all__ = [
    "Endpoint",
    "FaultMode",
    "FaultSpec",
    "FaultSpecError",
    "Phase",
    "PhaseStatus",
    "RunningSimulator",
    "Scenario",
    "ScenarioError",
    "ScenarioPlayer",
    "build_app",
    "bundled_scenario_names",
    "load_scenario",
    "parse_duration",
    "run_simulator",
    "start_simulator",
]
