"""Maintenance windows and dependencies hold incidents back, never monitoring: the real
CheckStates, MaintenanceCalendar and IncidentTracker, fed runs as the scheduler feeds them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from uptime_probe.config.model import Config
from uptime_probe.probe.model import CheckResult, Status
from uptime_probe.sinks import FanOut, HoldKind, RunOutcome
from uptime_probe.state.checks import CheckStates
from uptime_probe.state.incidents import IncidentEvent, IncidentEventKind, IncidentTracker
from uptime_probe.state.maintenance import MaintenanceCalendar

T0 = 1_900_000_000.0  # 2030-03-17 17:46:40 UTC
STEP = {"name": "fetch", "request": {"url": "http://127.0.0.1:9/"}}


@dataclass
class World:
    config: Config
    outcomes: list[RunOutcome] = field(default_factory=list)
    events: list[IncidentEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.calendar = MaintenanceCalendar()
        self.calendar.apply(self.config)
        self.tracker = IncidentTracker([self.events.append])
        self.states = CheckStates(
            FanOut([self, self.tracker]), location="local", calendar=self.calendar
        )
        self.states.apply(self.config.checks)

    def accept(self, outcome: RunOutcome) -> None:
        self.outcomes.append(outcome)

    def run(self, check: str, code: str, at: float) -> RunOutcome:
        down = code == "d"
        self.states.accept(
            CheckResult(
                check,
                Status.DOWN if down else Status.UP,
                "connect_refused" if down else None,
                "fetch" if down else None,
                "refused" if down else "ok",
                at,
                0.01,
            )
        )
        return self.outcomes[-1]

    def kinds(self, check: str) -> list[IncidentEventKind]:
        return [e.kind for e in self.events if e.incident.check == check]


def world(*checks: dict[str, Any], maintenance: Sequence[dict[str, Any]] = ()) -> World:
    config = Config.model_validate(
        {
            "defaults": {"failure_threshold": 2},
            "checks": [{"steps": [STEP], **check} for check in checks],
            "maintenance": list(maintenance),
        }
    )
    return World(config)


WINDOW = {
    "name": "db_upgrade",
    "checks": ["checkout"],
    "start": "2030-03-17T18:00:00Z",  # T0 + 800
    "end": "2030-03-17T19:00:00Z",  # T0 + 4400
}


def test_in_a_window_runs_and_states_go_on_but_no_incident_opens() -> None:
    w = world({"name": "checkout"}, maintenance=[WINDOW])
    first = w.run("checkout", "d", T0 + 900)
    second = w.run("checkout", "d", T0 + 960)

    assert second.state is Status.DOWN  # monitoring is never held
    assert first.hold is not None
    assert (first.hold.kind, first.hold.by, first.hold.until) == (
        HoldKind.MAINTENANCE, "db_upgrade", T0 + 4400,
    )  # fmt: skip
    assert w.events == []
    assert w.tracker.open_incidents() == []


def test_still_down_after_the_window_the_next_down_run_opens_the_incident() -> None:
    w = world({"name": "checkout"}, maintenance=[WINDOW])
    w.run("checkout", "d", T0 + 4300)
    w.run("checkout", "d", T0 + 4360)
    assert w.events == []
    w.run("checkout", "d", T0 + 4400)  # the window's end is excluded

    assert w.kinds("checkout") == [IncidentEventKind.OPENED]
    incident = w.events[0].incident
    assert incident.first_failure_at == T0 + 4300  # the streak began inside the window
    assert incident.reasons == {"connect_refused": 3}


def test_an_incident_open_before_the_window_stays_open_and_its_resolution_is_sent() -> None:
    w = world({"name": "checkout"}, maintenance=[WINDOW])
    w.run("checkout", "d", T0)
    w.run("checkout", "d", T0 + 60)
    w.run("checkout", "d", T0 + 900)  # inside the window
    w.run("checkout", "u", T0 + 960)

    assert w.kinds("checkout") == [
        IncidentEventKind.OPENED,
        IncidentEventKind.COUNTED,
        IncidentEventKind.RESOLVED,
    ]


def test_a_failing_dependency_holds_back_its_dependents_incident_and_lists_it() -> None:
    w = world({"name": "login_api"}, {"name": "checkout", "depends_on": ["login_api"]})
    w.run("login_api", "d", T0)
    held_early = w.run("checkout", "d", T0 + 1)  # login_api failing, not down yet: held
    w.run("login_api", "d", T0 + 60)  # login_api down: its incident opens
    held = w.run("checkout", "d", T0 + 61)  # checkout down too: held, and listed

    assert held_early.hold is not None
    assert (held_early.hold.kind, held_early.hold.by) == (HoldKind.DEPENDENCY, "login_api")
    assert held.state is Status.DOWN
    assert w.kinds("checkout") == []
    assert w.kinds("login_api") == [IncidentEventKind.OPENED, IncidentEventKind.UPDATED]
    (incident,) = w.tracker.open_incidents()
    assert incident.held_back == ("checkout",)
    assert incident.timeline[-1].message == "Holding back checkout, which depends on login_api."
    assert w.tracker.held("checkout") is not None

    # The dependency recovers; a dependent still down has a fault of its own: it opens.
    w.run("login_api", "u", T0 + 120)
    w.run("checkout", "d", T0 + 121)
    assert w.kinds("checkout") == [IncidentEventKind.OPENED]
    assert w.kinds("login_api")[-1] is IncidentEventKind.RESOLVED


def test_down_a_chain_the_held_check_is_listed_on_the_first_incident_up_the_chain() -> None:
    w = world(
        {"name": "database"},
        {"name": "api", "depends_on": ["database"]},
        {"name": "checkout", "depends_on": ["api"]},
    )
    for at in (T0, T0 + 60):
        w.run("database", "d", at)
        w.run("api", "d", at + 1)
        w.run("checkout", "d", at + 2)

    (incident,) = w.tracker.open_incidents()
    assert incident.check == "database"
    assert incident.held_back == ("api", "checkout")


def test_an_incident_already_open_is_never_held_back() -> None:
    w = world({"name": "login_api"}, {"name": "checkout", "depends_on": ["login_api"]})
    w.run("checkout", "d", T0)
    w.run("checkout", "d", T0 + 60)  # opens: nothing holds it
    w.run("login_api", "d", T0 + 61)
    w.run("login_api", "d", T0 + 62)
    w.run("checkout", "d", T0 + 120)  # now held, but its incident is open: counted
    w.run("checkout", "u", T0 + 180)

    assert w.kinds("checkout") == [
        IncidentEventKind.OPENED,
        IncidentEventKind.COUNTED,
        IncidentEventKind.RESOLVED,
    ]


def test_a_dependency_this_process_does_not_run_never_holds_back() -> None:
    config = Config.model_validate(
        {
            "checks": [
                {"name": "login_api", "steps": [STEP]},
                {"name": "checkout", "depends_on": ["login_api"], "steps": [STEP],
                 "failure_threshold": 1},
            ]
        }
    )  # fmt: skip
    events: list[IncidentEvent] = []
    states = CheckStates(IncidentTracker([events.append]), location="local")
    # This shard runs checkout only.
    mine = [check for check in config.checks if check.name == "checkout"]
    assert states.apply(mine) == [("checkout", "login_api")]
    states.accept(CheckResult("checkout", Status.DOWN, "timeout", "fetch", "x", T0, 0.1))
    assert [e.kind for e in events] == [IncidentEventKind.OPENED]
