"""Phase progression against an injected clock: speed, loop, manual overrides, advance_to."""

from __future__ import annotations

import pytest

from uptime_probe.simulator import FaultSpec, PhaseStatus, ScenarioPlayer, load_scenario
from uptime_probe.simulator.faults import Endpoint, FaultMode
from uptime_probe.simulator.scenario import parse_scenario

from .fakes import FakeClock

THREE_PHASES = """
name: three
phases:
  - {name: a, duration: 10s, note: first}
  - {name: b, duration: 20s, faults: {chat: hang}}
  - {name: c, faults: {conversations: empty}}
"""
TWO_FINITE = """
name: two
phases:
  - {name: a, duration: 10s}
  - {name: b, duration: 10s, faults: {task_create: stuck}}
"""


def player_for(
    text: str, clock: FakeClock, *, speed: float = 1.0, loop: bool = False
) -> ScenarioPlayer:
    player = ScenarioPlayer(parse_scenario(text), speed=speed, loop=loop, clock=clock)
    player.start()
    return player


@pytest.mark.parametrize(
    ("speed", "elapsed", "phase", "seconds_in"),
    [
        (1.0, 0.0, "a", 0.0),
        (1.0, 9.99, "a", 9.99),
        (1.0, 10.0, "b", 0.0),
        (1.0, 29.5, "b", 19.5),
        (1.0, 30.0, "c", 0.0),
        (1.0, 10_000.0, "c", 9_970.0),
        (2.0, 4.99, "a", 4.99),
        (2.0, 5.0, "b", 0.0),
        (2.0, 15.0, "c", 0.0),
        (10.0, 1.5, "b", 0.5),
    ],
)
def test_the_phase_follows_the_clock_divided_by_speed(
    clock: FakeClock, speed: float, elapsed: float, phase: str, seconds_in: float
) -> None:
    player = player_for(THREE_PHASES, clock, speed=speed)
    clock.advance(elapsed)
    status = player.status()
    assert (status.name, status.lap, status.finished) == (phase, 0, False)
    assert status.seconds_in == pytest.approx(seconds_in)


def test_phase_durations_are_reported_in_clock_seconds(clock: FakeClock) -> None:
    player = player_for(THREE_PHASES, clock, speed=4.0)
    assert player.status().duration == 2.5
    assert player.advance_to(2).duration is None


def test_each_phase_sets_the_complete_fault_map(clock: FakeClock) -> None:
    player = player_for(THREE_PHASES, clock)
    assert {s.mode for s in player.faults().values()} == {FaultMode.OK}
    clock.advance(10)
    assert player.faults()[Endpoint.CHAT].mode is FaultMode.HANG
    clock.advance(20)
    faults = player.faults()
    assert faults[Endpoint.CHAT].mode is FaultMode.OK  # not carried over from b
    assert faults[Endpoint.CONVERSATIONS].mode is FaultMode.EMPTY


def test_without_loop_the_last_phase_holds_after_the_end(clock: FakeClock) -> None:
    player = player_for(TWO_FINITE, clock)
    clock.advance(25)
    status = player.status()
    assert (status.name, status.index, status.finished) == ("b", 1, True)
    assert status.seconds_in == pytest.approx(15)
    assert player.seconds_to_next_change() is None


@pytest.mark.parametrize(
    ("elapsed", "phase", "lap", "seconds_in"),
    [(19.0, "b", 0, 9.0), (20.0, "a", 1, 0.0), (25.0, "a", 1, 5.0), (35.0, "b", 1, 5.0),
     (61.0, "a", 3, 1.0)],
)  # fmt: skip
def test_with_loop_the_timeline_starts_over(
    clock: FakeClock, elapsed: float, phase: str, lap: int, seconds_in: float
) -> None:
    player = player_for(TWO_FINITE, clock, loop=True)
    clock.advance(elapsed)
    status = player.status()
    assert (status.name, status.lap, status.finished) == (phase, lap, False)
    assert status.seconds_in == pytest.approx(seconds_in)


def test_loop_with_an_endless_last_phase_stays_there(clock: FakeClock) -> None:
    player = player_for(THREE_PHASES, clock, loop=True)
    clock.advance(1_000)
    assert (player.status().name, player.status().lap) == ("c", 0)


def test_each_phase_change_is_announced_once(clock: FakeClock) -> None:
    seen: list[tuple[str, int]] = []
    player = ScenarioPlayer(parse_scenario(TWO_FINITE), loop=True, clock=clock)
    player.add_listener(lambda s: seen.append((s.name, s.lap)))
    for _ in range(3):  # repeated reads within a phase announce nothing new
        player.status()
    clock.advance(10)
    player.status()
    clock.advance(10)
    player.faults()
    assert seen == [("a", 0), ("b", 0), ("a", 1)]


def test_phase_changes_are_logged(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="uptime_probe.simulator")
    player = player_for(THREE_PHASES, clock)
    clock.advance(10)
    player.status()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("phase_changed scenario=three index=0 phase=a lap=0")
    assert messages[1].startswith("phase_changed scenario=three index=1 phase=b lap=0")
    assert len(messages) == 2


def test_a_manual_setting_holds_until_the_next_phase_change(clock: FakeClock) -> None:
    player = player_for(TWO_FINITE, clock, loop=True)
    player.set_faults({Endpoint.CHAT: FaultSpec(mode=FaultMode.ERROR, status=503)})
    player.set_faults({Endpoint.CONVERSATIONS: FaultSpec(mode=FaultMode.EMPTY)})
    clock.advance(9.9)
    faults = player.faults()
    assert faults[Endpoint.CHAT].status == 503  # the others set earlier are unchanged
    assert faults[Endpoint.CONVERSATIONS].mode is FaultMode.EMPTY
    assert player.overridden() == {Endpoint.CHAT, Endpoint.CONVERSATIONS}
    clock.advance(0.1)
    faults = player.faults()
    assert faults[Endpoint.CHAT].mode is FaultMode.OK
    assert faults[Endpoint.TASK_CREATE].mode is FaultMode.STUCK
    assert player.overridden() == frozenset()
    # a looping scenario coming back round is a phase change too
    player.set_faults({Endpoint.CHAT: FaultSpec(mode=FaultMode.HANG)})
    clock.advance(10)
    assert player.faults()[Endpoint.CHAT].mode is FaultMode.OK


def test_a_setting_made_after_a_due_change_belongs_to_the_new_phase(clock: FakeClock) -> None:
    player = player_for(TWO_FINITE, clock)
    clock.advance(12)  # b is due but nothing has read the player yet
    player.set_faults({Endpoint.CHAT: FaultSpec(mode=FaultMode.HANG)})
    assert player.faults()[Endpoint.CHAT].mode is FaultMode.HANG


def test_clear_faults_sets_every_endpoint_ok_until_the_phase_changes(clock: FakeClock) -> None:
    player = player_for(TWO_FINITE, clock)
    clock.advance(10)
    player.clear_faults()
    assert {s.mode for s in player.faults().values()} == {FaultMode.OK}
    assert player.status().name == "b"


def test_advance_to_jumps_to_the_start_of_a_phase(clock: FakeClock) -> None:
    player = player_for(THREE_PHASES, clock)
    clock.advance(3)
    player.set_faults({Endpoint.CHAT: FaultSpec(mode=FaultMode.EMPTY)})
    status = player.advance_to(1)
    assert (status.name, status.index, status.seconds_in) == ("b", 1, 0.0)
    assert player.faults()[Endpoint.CHAT].mode is FaultMode.HANG  # override dropped
    clock.advance(20)
    assert player.status().name == "c"  # and the timeline goes on from there
    player.set_faults({Endpoint.CHAT: FaultSpec(mode=FaultMode.EMPTY)})
    assert player.advance_to(2).seconds_in == 0.0  # re-entering the same phase is a change
    assert player.faults()[Endpoint.CHAT].mode is FaultMode.OK


def test_advance_to_keeps_the_current_lap(clock: FakeClock) -> None:
    player = player_for(TWO_FINITE, clock, loop=True)
    clock.advance(45)
    status = player.advance_to(1)
    assert (status.name, status.lap, status.seconds_in) == ("b", 2, 0.0)


@pytest.mark.parametrize("index", [-1, 3])
def test_advance_to_rejects_an_index_out_of_range(clock: FakeClock, index: int) -> None:
    with pytest.raises(IndexError, match=r"out of range 0\.\.2"):
        player_for(THREE_PHASES, clock).advance_to(index)


def test_seconds_to_next_change(clock: FakeClock) -> None:
    player = player_for(THREE_PHASES, clock, speed=2.0)
    clock.advance(1)
    assert player.seconds_to_next_change() == pytest.approx(4)
    clock.advance(14)
    assert player.seconds_to_next_change() is None  # c lasts for ever


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_speed_must_be_positive_and_finite(clock: FakeClock, speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be a positive number"):
        ScenarioPlayer(parse_scenario(TWO_FINITE), speed=speed, clock=clock)


def _modes(player: ScenarioPlayer) -> dict[str, str]:
    return {e.value: s.mode.value for e, s in player.faults().items() if s.mode is not FaultMode.OK}


# (phase, start in seconds at speed 1, faults other than ok)
DEC_3_TIMELINE = [
    ("lead-in", 0, {}),
    ("task-creation-hang", 300, {"task_create": "hang", "answer": "slow_first_token"}),
    (
        "tasks-stuck-history-empty",
        900,
        {"task_create": "stuck", "conversations": "empty", "chat": "slow", "answer": "stall"},
    ),
    (
        "history-empty",
        1500,
        {"conversations": "empty", "chat": "slow", "answer": "slow_first_token"},
    ),
    ("monitoring", 2100, {"chat": "slow"}),
    ("resolved", 3000, {}),
]


@pytest.mark.parametrize("speed", [1.0, 11.0])
def test_dec_3_2025_plays_its_timeline(clock: FakeClock, speed: float) -> None:
    player = ScenarioPlayer(load_scenario("dec-3-2025"), speed=speed, clock=clock)
    player.start()
    origin = clock.now
    for name, start, modes in DEC_3_TIMELINE:
        clock.now = origin + start / speed + 0.001
        status: PhaseStatus = player.status()
        assert status.name == name
        assert _modes(player) == modes
    clock.now = origin + 3300 / speed
    assert player.status().finished  # at speed 11 the whole file takes exactly 5 minutes
    assert 3300 / 11 == 300


def test_dec_3_2025_page_is_slower_during_the_incident_than_when_monitoring(
    clock: FakeClock,
) -> None:
    scenario = load_scenario("dec-3-2025")
    latency = {p.name: p.faults[Endpoint.CHAT].latency for p in scenario.phases}
    assert latency["tasks-stuck-history-empty"] == latency["history-empty"] == 3.0
    assert latency["monitoring"] == 1.5
