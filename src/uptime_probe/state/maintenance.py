"""When maintenance windows are open, and which checks they cover: pure, no I/O.

    probes.yaml `maintenance:` --apply(config)--> MaintenanceCalendar <--add/end-- POST/DELETE
                                                  (windows, covered checks)     /api/v1/maintenance
                                                   |
       CheckStates (a run's Hold) <-- open_for(check, at)
       metrics (scrape time)      <-- checks_in_maintenance(now)
       status page, API           <-- openings(now, horizon)

A window covers the checks it names and every check carrying one of its tags, as the
config is now (a reload recomputes it). A one-off or ad-hoc window is open from `start`
(included) to `end` (excluded); a recurring one from each time its cron expression fires
in its time zone, for `duration` of real time, overlapping openings merged.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from cronsim import CronSim

from uptime_probe.config.maintenance import MaintenanceConfig
from uptime_probe.config.model import Config
from uptime_probe.slices import Steps, run_all

# Merging overlapping openings of a cron window stops after this many: `* * * * *` for an
# hour never closes, and the end shown is then this many firings ahead.
MAX_MERGED = 100
# Upcoming openings listed per window.
MAX_UPCOMING = 20


class WindowSource(StrEnum):
    CONFIG = "config"
    API = "api"


@dataclass(frozen=True, slots=True)
class Window:
    """A maintenance window as the daemon applies it, from the config or from the API."""

    id: str  # a config window's name; `api-<hex>` for one opened through the API
    name: str
    source: WindowSource
    checks: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    start: float | None = None  # one-off and API windows
    end: float | None = None
    cron: str | None = None  # recurring windows
    duration: float | None = None
    timezone: str = "UTC"
    created_at: float | None = None  # API windows: when it was asked for

    @classmethod
    def from_config(cls, config: MaintenanceConfig) -> Window:
        return cls(
            id=config.name,
            name=config.name,
            source=WindowSource.CONFIG,
            checks=tuple(config.checks),
            tags=tuple(config.tags),
            description=config.description,
            start=config.start.timestamp() if config.start is not None else None,
            end=config.end.timestamp() if config.end is not None else None,
            cron=config.cron,
            duration=config.duration,
            timezone=config.timezone or "UTC",
        )

    @property
    def recurring(self) -> bool:
        return self.cron is not None

    def opening_at(self, now: float) -> Opening | None:
        """The opening of this window that covers `now`, if one does.

        For a recurring window whose openings overlap, `start` is that of the latest
        firing at or before `now`; `end` is the merged end.
        """
        if not self.recurring:
            start, end = self._span()
            return Opening(self, start, end) if start <= now < end else None
        firings = self._firings_after(now - self._duration())
        for opening in itertools.islice(self._merged(firings), 3):
            if opening.start > now:
                return None
            if opening.end > now:  # else cronsim rounded its start down to the second
                return opening
        return None

    def openings(self, since: float, until: float) -> list[Opening]:
        """Openings open at `since` or beginning before `until`, earliest first."""
        if not self.recurring:
            start, end = self._span()
            return [Opening(self, start, end)] if end > since and start < until else []
        current = self.opening_at(since)
        found = [current] if current is not None else []
        for opening in self._merged(self._firings_after(current.end if current else since)):
            if opening.start >= until or len(found) >= MAX_UPCOMING:
                break
            found.append(opening)
        return found

    def _span(self) -> tuple[float, float]:
        if self.start is None or self.end is None:
            raise ValueError(f"window {self.id} has neither cron nor start and end")
        return self.start, self.end

    def _duration(self) -> float:
        assert self.duration is not None
        return self.duration

    def _firings_after(self, after: float) -> Iterator[float]:
        """Each time the cron expression fires strictly after `after`, as epoch seconds."""
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        try:
            for at in CronSim(self.cron, datetime.fromtimestamp(after, zone)):
                yield at.timestamp()
        except StopIteration:  # cronsim looks at most 50 years ahead
            return

    def _merged(self, firings: Iterator[float]) -> Iterator[Opening]:
        """Openings from successive firings, those that overlap (or touch) merged into one.

        A merge stops after MAX_MERGED firings: `* * * * *` for an hour never closes, and
        its end is then shown that many firings ahead.
        """
        duration = self._duration()
        pending = next(firings, None)
        while pending is not None:
            start, end = pending, pending + duration
            pending = next(firings, None)
            for _ in range(MAX_MERGED):
                if pending is None or pending > end:
                    break
                end = max(end, pending + duration)
                pending = next(firings, None)
            else:
                yield Opening(self, start, end)
                return
            yield Opening(self, start, end)


@dataclass(frozen=True, slots=True)
class Opening:
    """One opening of a window: open from `start` (included) to `end` (excluded)."""

    window: Window
    start: float
    end: float


def new_window_id() -> str:
    return f"api-{secrets.token_hex(6)}"


@dataclass
class MaintenanceCalendar:
    """The windows in force, and which checks each covers under the current config."""

    _config_windows: tuple[Window, ...] = ()
    _api_windows: dict[str, Window] = field(default_factory=dict)
    _tags: dict[str, frozenset[str]] = field(default_factory=dict)  # check -> its tags
    _covered: dict[str, frozenset[str]] = field(default_factory=dict)  # window id -> checks

    def apply(self, config: Config) -> None:
        """A config (re)load: its windows, and its checks' tags, from now on."""
        run_all(self.apply_steps(config))

    def apply_steps(self, config: Config) -> Steps[None]:
        """`apply` in pieces (slices.py): the checks' tags and what each window covers are
        gathered a check at a time and swapped in at once."""
        tags: dict[str, frozenset[str]] = {}
        for check in config.checks:
            tags[check.name] = frozenset(check.tags)
            yield
        config_windows = tuple(Window.from_config(w) for w in config.maintenance)
        covered: dict[str, frozenset[str]] = {}
        for window in (*config_windows, *self._api_windows.values()):
            covered[window.id] = yield from self._cover_steps(window, tags)
        self._tags, self._config_windows, self._covered = tags, config_windows, covered
        for window in self._api_windows.values():  # opened through the API meanwhile
            if window.id not in covered:
                covered[window.id] = self._cover(window)

    def _cover(self, window: Window) -> frozenset[str]:
        return run_all(self._cover_steps(window, self._tags))

    @staticmethod
    def _cover_steps(window: Window, tags: dict[str, frozenset[str]]) -> Steps[frozenset[str]]:
        found = {name for name in window.checks if name in tags}
        if window.tags:
            wanted = set(window.tags)
            for name, check_tags in tags.items():
                if check_tags & wanted:
                    found.add(name)
                yield
        return frozenset(found)

    def windows(self) -> Iterable[Window]:
        yield from self._config_windows
        yield from self._api_windows.values()

    def api_window(self, window_id: str) -> Window | None:
        return self._api_windows.get(window_id)

    def put(self, window: Window) -> None:
        """An API window, new or changed (ended early), or restored after a restart."""
        self._api_windows[window.id] = window
        self._covered[window.id] = self._cover(window)

    def restore(self, windows: Iterable[Window]) -> None:
        for window in windows:
            self.put(window)

    def forget_before(self, now: float) -> None:
        """Drop API windows over before `now`: they no longer matter to any decision."""
        for window_id in [i for i, w in self._api_windows.items() if (w.end or 0) <= now]:
            del self._api_windows[window_id]
            self._covered.pop(window_id, None)

    def covers(self, window: Window) -> frozenset[str]:
        return self._covered.get(window.id, frozenset())

    def open_for(self, check: str, now: float) -> Opening | None:
        """The open window covering `check` at `now` that ends last, if any."""
        found: Opening | None = None
        for window in self.windows():
            if check not in self._covered.get(window.id, ()):
                continue
            opening = window.opening_at(now)
            if opening is not None and (found is None or opening.end > found.end):
                found = opening
        return found

    def checks_in_maintenance(self, now: float) -> dict[str, Opening]:
        """Every check in maintenance at `now`, with the opening that ends last."""
        found: dict[str, Opening] = {}
        for window in self.windows():
            opening = window.opening_at(now)
            if opening is None:
                continue
            for check in self._covered.get(window.id, ()):
                held = found.get(check)
                if held is None or opening.end > held.end:
                    found[check] = opening
        return found

    def openings(self, now: float, horizon: float) -> list[Opening]:
        """Openings open at `now` or beginning within `horizon` seconds, earliest first."""
        found = [o for w in self.windows() for o in w.openings(now, now + horizon)]
        return sorted(found, key=lambda o: (o.start, o.window.name))
