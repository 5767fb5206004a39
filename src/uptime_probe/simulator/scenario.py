"""Scenarios: a YAML timeline of phases, each setting the complete fault map.

```yaml
name: example
description: what it replays
phases:
  - name: lead-in
    duration: 5m          # "250ms", "10s", "5m", "1h", "1m30s" or a number of seconds
    note: All systems operational.
    faults: {}            # endpoints not named are ok
  - name: outage
    duration: 10m         # only the last phase may leave it out: it then lasts for ever
    faults:
      task_create: hang
      chat: {mode: slow, latency: 3}
```
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from uptime_probe.simulator.faults import (
    Endpoint,
    FaultSpec,
    FaultSpecError,
    all_ok,
    format_validation_error,
    parse_fault_map,
)

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_MAX_FILE_BYTES = 1_000_000


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message says which file and where in it."""


def parse_duration(value: object) -> float:
    """`"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"1m30s"` or a plain number of seconds -> seconds > 0."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        while pos < len(text):
            match = _DURATION_PART.match(text, pos)
            if match is None:
                raise ValueError(
                    f"invalid duration {value!r}; use a number with a unit: ms, s, m or h "
                    "(e.g. '250ms', '10s', '5m', '1m30s')"
                )
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if not text:
            raise ValueError("invalid duration ''")
    else:
        raise ValueError(f"invalid duration {value!r}")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"duration must be positive and finite, got {value!r}")
    return seconds


class Phase(BaseModel):
    """One step of the timeline. `faults` is always the complete map (missing endpoints are ok)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    duration: float | None = None  # seconds at speed 1; None: lasts for ever
    note: str = ""
    faults: Mapping[Endpoint, FaultSpec] = Field(default_factory=all_ok)

    @field_validator("duration", mode="before")
    @classmethod
    def _parse_duration(cls, value: object) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("faults", mode="before")
    @classmethod
    def _complete_fault_map(cls, value: object) -> dict[Endpoint, FaultSpec]:
        try:
            named = parse_fault_map(value, where="")  # pydantic adds the path to `faults`
        except FaultSpecError as exc:
            raise ValueError(str(exc)) from None
        return all_ok() | named


class Scenario(BaseModel):
    """A named timeline of phases."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    phases: tuple[Phase, ...]

    @field_validator("phases")
    @classmethod
    def _at_least_one_phase(cls, phases: tuple[Phase, ...]) -> tuple[Phase, ...]:
        # Checked here rather than with min_length, which pydantic also reports when a
        # phase is invalid, as if the list were empty.
        if not phases:
            raise ValueError("a scenario needs at least one phase")
        return phases

    @model_validator(mode="after")
    def _check_phases(self) -> Scenario:
        for index, phase in enumerate(self.phases[:-1]):
            if phase.duration is None:
                raise ValueError(
                    f"phases.{index} ({phase.name!r}): only the last phase may omit 'duration'"
                )
        seen: set[str] = set()
        for phase in self.phases:
            if phase.name in seen:
                raise ValueError(f"phase name {phase.name!r} is used twice")
            seen.add(phase.name)
        return self

    @property
    def total_duration(self) -> float | None:
        """Seconds at speed 1, or None when the last phase lasts for ever."""
        if self.phases[-1].duration is None:
            return None
        return sum(p.duration or 0.0 for p in self.phases)

    def phase_starts(self) -> tuple[float, ...]:
        """Start of each phase, in seconds at speed 1 from the start of the scenario."""
        starts, at = [], 0.0
        for phase in self.phases:
            starts.append(at)
            at += phase.duration or 0.0
        return tuple(starts)


def bundled_scenario_names() -> tuple[str, ...]:
    """Names of the scenarios shipped in `uptime_probe/simulator/scenarios/`."""
    folder = importlib.resources.files(__package__ or "uptime_probe.simulator") / "scenarios"
    return tuple(
        sorted(
            entry.name.removesuffix(".yaml")
            for entry in folder.iterdir()
            if entry.name.endswith(".yaml")
        )
    )


def load_scenario(name_or_path: str) -> Scenario:
    """A bundled scenario by name (`healthy`, `dec-3-2025`) or a YAML file by path.

    Raises ScenarioError naming the file and, for a validation problem, the path inside it.
    """
    if name_or_path in bundled_scenario_names():
        folder = importlib.resources.files(__package__ or "uptime_probe.simulator") / "scenarios"
        resource = folder / f"{name_or_path}.yaml"
        return parse_scenario(
            resource.read_text(encoding="utf-8"), source=f"bundled scenario {name_or_path!r}"
        )
    path = Path(name_or_path)
    if not path.is_file():
        names = ", ".join(bundled_scenario_names())
        raise ScenarioError(
            f"unknown scenario {name_or_path!r}: not a bundled scenario ({names}) and no such file"
        )
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise ScenarioError(f"scenario file {str(path)!r}: larger than {_MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"scenario file {str(path)!r}: cannot be read: {exc}") from exc
    return parse_scenario(text, source=f"scenario file {str(path)!r}")


def parse_scenario(text: str, *, source: str = "scenario") -> Scenario:
    """Scenario YAML text -> Scenario; errors are prefixed with `source`."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{source}: expected a mapping with 'name' and 'phases', got {type(data).__name__}"
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{source}: {format_validation_error(exc)}") from exc
