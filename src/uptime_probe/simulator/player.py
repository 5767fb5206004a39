"""Plays a scenario against a clock: which phase holds now, and the faults in force.

Time comes from an injectable clock (the running loop's `time()` by default), and the position
is computed from it on every read, so nothing has to tick for the faults to be right: a test
moves a fake clock, or calls `advance_to`, and the next request sees the new phase.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from uptime_probe.simulator.faults import Endpoint, FaultSpec, all_ok
from uptime_probe.simulator.scenario import Scenario

logger = logging.getLogger("uptime_probe.simulator")

Clock = Callable[[], float]


def loop_clock() -> float:
    """The running event loop's monotonic time: the default clock."""
    return asyncio.get_running_loop().time()


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    """Where the scenario stands. Times are clock seconds, i.e. already divided by speed."""

    scenario: str
    name: str
    index: int
    note: str
    seconds_in: float
    duration: float | None  # None: the phase lasts for ever
    lap: int  # how many times a looping scenario has wrapped around
    finished: bool  # a non-looping scenario past the end of its last phase (which then holds)

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "phase": self.name,
            "phase_index": self.index,
            "note": self.note,
            "seconds_into_phase": round(self.seconds_in, 3),
            "phase_duration": None if self.duration is None else round(self.duration, 3),
            "lap": self.lap,
            "finished": self.finished,
        }


PhaseChangeListener = Callable[[PhaseStatus], None]


class ScenarioPlayer:
    """The fault map in force: the current phase's, overlaid with manual settings.

    A manual setting (`set_faults`, `clear_faults`) holds until the next phase change, which
    includes a looping scenario coming back round and any `advance_to`.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        loop: bool = False,
        clock: Clock = loop_clock,
        on_phase_change: PhaseChangeListener | None = None,
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        self.scenario = scenario
        self.speed = float(speed)
        self.loop = loop
        self._clock = clock
        self._listeners: list[PhaseChangeListener] = []
        if on_phase_change is not None:
            self._listeners.append(on_phase_change)
        self._starts = tuple(s / speed for s in scenario.phase_starts())
        total = scenario.total_duration
        self._total = None if total is None else total / speed
        self._origin: float | None = None
        self._epoch = 0  # bumped by advance_to, so re-entering a phase counts as a change
        self._key: tuple[int, int, int] | None = None
        self._overrides: dict[Endpoint, FaultSpec] = {}

    def add_listener(self, listener: PhaseChangeListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        """Start the timeline now and announce the first phase (idempotent); a read before
        it starts the timeline implicitly."""
        if self._origin is None:
            self._origin = self._clock()
            self.status()

    def status(self) -> PhaseStatus:
        """The current phase; notices (and announces) a phase change since the last read."""
        self.start()
        assert self._origin is not None
        now = self._clock()
        elapsed = max(0.0, now - self._origin)
        lap = 0
        if self.loop and self._total is not None:
            laps, elapsed = divmod(elapsed, self._total)
            lap = int(laps)
        phases = self.scenario.phases
        finished = self._total is not None and not self.loop and elapsed >= self._total
        index = len(phases) - 1 if finished else bisect.bisect_right(self._starts, elapsed) - 1
        phase = phases[index]
        status = PhaseStatus(
            scenario=self.scenario.name,
            name=phase.name,
            index=index,
            note=phase.note,
            seconds_in=elapsed - self._starts[index],
            duration=None if phase.duration is None else phase.duration / self.speed,
            lap=lap,
            finished=finished,
        )
        key = (self._epoch, lap, index)
        if key != self._key:
            self._key = key
            self._overrides.clear()
            self._announce(status)
        return status

    def seconds_to_next_change(self) -> float | None:
        """Clock seconds until the phase changes by itself; None if it never will."""
        status = self.status()
        if status.duration is None or status.finished:
            return None
        return max(0.0, status.duration - status.seconds_in)

    def faults(self) -> dict[Endpoint, FaultSpec]:
        """The complete fault map in force now."""
        phase = self.scenario.phases[self.status().index]
        return dict(phase.faults) | self._overrides

    def overridden(self) -> frozenset[Endpoint]:
        """Endpoints whose fault was set by hand in the current phase."""
        self.status()
        return frozenset(self._overrides)

    def set_faults(self, faults: Mapping[Endpoint, FaultSpec]) -> None:
        """Override the named endpoints until the next phase change; the others are unchanged."""
        self.status()  # a phase change that is due must clear old overrides, not these
        self._overrides.update(faults)

    def clear_faults(self) -> None:
        """Every endpoint ok until the next phase change."""
        self.set_faults(all_ok())

    def advance_to(self, index: int) -> PhaseStatus:
        """Jump to the start of phase `index` (in the current lap) now."""
        count = len(self.scenario.phases)
        if not 0 <= index < count:
            raise IndexError(f"phase index {index} out of range 0..{count - 1}")
        lap = self.status().lap
        lap_start = lap * self._total if self._total is not None else 0.0
        self._origin = self._clock() - lap_start - self._starts[index]
        self._epoch += 1
        return self.status()

    def _announce(self, status: PhaseStatus) -> None:
        logger.info(
            "phase_changed scenario=%s index=%d phase=%s lap=%d duration=%s note=%r",
            status.scenario,
            status.index,
            status.name,
            status.lap,
            "forever" if status.duration is None else f"{status.duration:g}s",
            status.note,
        )
        for listener in self._listeners:
            listener(status)
