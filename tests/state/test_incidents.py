"""IncidentTracker: runs in (through the real state machine), incident events out.

Pure: results are built by hand, one run every 10 s from T0, and fed with the state the
real `next_state` gives them, as the scheduler does.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from uptime_probe.probe.model import CheckResult, Status, StepResult
from uptime_probe.sinks import RunOutcome
from uptime_probe.state.incidents import (
    FLAPS_SHOWN,
    MAX_ENTRY_MESSAGE,
    MAX_TIMELINE,
    EntryKind,
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    IncidentTracker,
    TimelineEntry,
    add_entry,
)
from uptime_probe.state.machine import CheckState, next_state

T0 = 1_764_720_000.0  # 2025-12-03 00:00 UTC
STEP_SECONDS = 10.0
CHECK = "history_sidebar"

# Run codes: u up, g degraded, d down `empty_history` at `conversations` (with a sample),
# t down `timeout` at `page` (no sample).
DOWN_KINDS = {
    "d": ("empty_history", "conversations", "length(items) = 0, expected > 0"),
    "t": ("timeout", "page", "no response within 10s"),
}
EVENT_CODES = {
    IncidentEventKind.OPENED: "O",
    IncidentEventKind.UPDATED: "U",
    IncidentEventKind.COUNTED: "C",
    IncidentEventKind.RESOLVED: "R",
}
TIMELINE_CODES = {
    IncidentStatus.INVESTIGATING: "I",
    IncidentStatus.MONITORING: "M",
    IncidentStatus.RESOLVED: "R",
}


def run_result(
    code: str,
    at: float,
    *,
    sample: str | None = None,
    check: str = CHECK,
    http_status: int | None = 200,
    artifact: str | None = None,
) -> CheckResult:
    if code in "ug":
        status = Status.UP if code == "u" else Status.DEGRADED
        step = StepResult("conversations", status, None, "ok", 0.05, http_status=http_status)
        return CheckResult(check, status, None, None, "ok", at, 0.05, (step,))
    reason, step_name, message = DOWN_KINDS[code]
    if sample is None and code == "d":
        sample = f'{{"items": [], "at": {at}}}'
    failed = StepResult(
        step_name,
        Status.DOWN,
        reason,
        message,
        0.05,
        http_status=http_status,
        response_sample=sample,
        artifact=artifact,
    )
    return CheckResult(check, Status.DOWN, reason, step_name, message, at, 0.05, (failed,))


class Feed:
    """A tracker with a recording listener, fed runs through the real state machine."""

    def __init__(self, failure: int, success: int, tracker: IncidentTracker | None = None) -> None:
        self.failure, self.success = failure, success
        self.events: list[IncidentEvent] = []
        self.tracker = tracker or IncidentTracker()
        self.tracker.add_listener(self.events.append)
        self.state = CheckState()
        self.at = T0

    def run(
        self,
        code: str,
        *,
        sample: str | None = None,
        http_status: int | None = 200,
        artifact: str | None = None,
    ) -> list[IncidentEvent]:
        """One run; the events it produced."""
        result = run_result(
            code, self.at, sample=sample, http_status=http_status, artifact=artifact
        )
        before = self.state
        self.state = next_state(
            before,
            result.status,
            failure_threshold=self.failure,
            success_threshold=self.success,
        )
        mark = len(self.events)
        self.tracker.accept(RunOutcome(result, self.state.state, before.state, "local"))
        self.at += STEP_SECONDS
        return self.events[mark:]

    def runs(self, codes: Iterable[str]) -> str:
        """Feed `codes`; per run, the events it produced as codes (`-` for none)."""
        out = []
        for code in codes:
            out.append("".join(EVENT_CODES[e.kind] for e in self.run(code)) or "-")
        return "".join(out)


@pytest.mark.parametrize(
    ("runs", "failure", "success", "events", "timeline"),
    [
        # Below the failure threshold a down run opens nothing.
        ("d", 2, 1, "-", ""),
        ("dud", 2, 1, "---", ""),
        # It opens when the state turns down, once.
        ("dd", 2, 1, "-O", "I"),
        ("d", 1, 1, "O", "I"),
        ("uddd", 3, 1, "---O", "I"),
        # Further down runs: counted; a new reason is an update with a timeline entry.
        ("ddd", 2, 1, "-OC", "I"),
        ("ddt", 2, 1, "-OU", "II"),
        ("ddtt", 2, 1, "-OUC", "II"),
        # success_threshold 1: the first good run resolves, the timeline shows monitoring then
        # resolved; degraded counts as good.
        ("ddu", 2, 1, "-OR", "IMR"),
        ("ddg", 2, 1, "-OR", "IMR"),
        # success_threshold > 1: monitoring on the first good run while still down, back to
        # investigating on another failure, resolved when the state turns up.
        ("ddu", 2, 2, "-OU", "IM"),
        ("dduu", 2, 2, "-OUR", "IMR"),
        ("ddud", 2, 2, "-OUU", "IMI"),
        ("ddudd", 2, 2, "-OUUC", "IMI"),
        ("ddudduu", 2, 2, "-OUUCUR", "IMIMR"),
        ("ddgd", 2, 2, "-OUU", "IMI"),
        # A second good run while monitoring changes nothing until the threshold.
        ("dduuu", 2, 3, "-OU-R", "IMR"),
        # After it resolved, the check must turn down again for a new incident.
        ("dduddd", 2, 1, "-OR-OC", "I"),
    ],
)
def test_lifecycle(runs: str, failure: int, success: int, events: str, timeline: str) -> None:
    feed = Feed(failure, success)
    assert feed.runs(runs) == events
    if not feed.events:
        assert feed.tracker.open_incidents() == []
        return
    last = feed.events[-1].incident
    assert "".join(TIMELINE_CODES[e.status] for e in last.timeline) == timeline
    # An incident's status is its timeline's last entry; open while not resolved.
    assert last.status is last.timeline[-1].status
    open_now = feed.tracker.open_incidents()
    assert open_now == ([] if last.status is IncidentStatus.RESOLVED else [last])
    # Every event of one incident carries its id; OPENED and RESOLVED at most once per id.
    by_id: dict[str, list[IncidentEventKind]] = {}
    for event in feed.events:
        by_id.setdefault(event.incident.id, []).append(event.kind)
    for id_kinds in by_id.values():
        assert id_kinds[0] is IncidentEventKind.OPENED
        assert id_kinds.count(IncidentEventKind.OPENED) == 1
        assert id_kinds.count(IncidentEventKind.RESOLVED) <= 1
        if IncidentEventKind.RESOLVED in id_kinds:
            assert id_kinds[-1] is IncidentEventKind.RESOLVED


def test_opened_incident_records_the_first_failed_run() -> None:
    feed = Feed(failure=3, success=1)
    feed.run("u")
    feed.run("d", sample='{"items": [], "first": true}')  # T0+10: the first failed run
    feed.run("t")
    (opened,) = feed.run("d", sample='{"items": [], "third": true}')  # T0+30: opens
    incident = opened.incident
    assert opened.kind is IncidentEventKind.OPENED
    assert incident.check == CHECK
    assert incident.location == "local"
    assert incident.status is IncidentStatus.INVESTIGATING
    assert incident.first_failure_at == T0 + 10
    assert incident.opened_at == T0 + 30
    assert incident.time_to_detect == 20.0
    assert incident.first_reason == "empty_history"
    assert incident.first_message == "length(items) = 0, expected > 0"
    assert incident.response_sample == '{"items": [], "first": true}'
    assert incident.reasons == {"empty_history": 2, "timeout": 1}
    assert incident.failing_steps == ("conversations", "page")
    assert incident.last_reason == "empty_history"
    assert incident.resolved_at is None
    (entry,) = incident.timeline
    assert entry.at == T0 + 30
    assert "empty_history" in entry.message
    assert "conversations" in entry.message


def test_first_failure_is_the_first_of_the_current_streak() -> None:
    # A good run in between starts the count again: the earlier failure is not part of it.
    feed = Feed(failure=2, success=1)
    feed.run("t")  # T0: failed, then recovered
    feed.run("u")
    feed.run("d")  # T0+20
    (opened,) = feed.run("d")  # T0+30
    assert opened.incident.first_failure_at == T0 + 20
    assert opened.incident.time_to_detect == 10.0
    assert opened.incident.reasons == {"empty_history": 2}
    assert opened.incident.first_reason == "empty_history"
    assert opened.incident.failing_steps == ("conversations",)


def test_first_sample_stays_when_the_first_failure_had_none() -> None:
    feed = Feed(failure=2, success=1)
    feed.run("t")  # no sample
    (opened,) = feed.run("d")
    assert opened.incident.first_reason == "timeout"
    assert opened.incident.response_sample is None


def test_counts_and_steps_grow_while_open_and_resolution_is_recorded() -> None:
    feed = Feed(failure=2, success=2)
    feed.runs("dd")  # opened at T0+10
    feed.runs("tdd")
    feed.run("u")  # T0+50: monitoring
    (resolved,) = feed.run("u")  # T0+60
    incident = resolved.incident
    assert resolved.kind is IncidentEventKind.RESOLVED
    assert incident.reasons == {"empty_history": 4, "timeout": 1}
    assert incident.failing_steps == ("conversations", "page")
    assert incident.last_reason == "empty_history"
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.resolved_at == T0 + 60
    assert not incident.open
    # The first failure is not rewritten by later ones.
    assert incident.first_failure_at == T0
    assert incident.opened_at == T0 + 10
    assert incident.first_reason == "empty_history"
    assert [(e.at, e.status) for e in incident.timeline] == [
        (T0 + 10, IncidentStatus.INVESTIGATING),
        (T0 + 20, IncidentStatus.INVESTIGATING),  # new failure: timeout
        (T0 + 50, IncidentStatus.MONITORING),
        (T0 + 60, IncidentStatus.RESOLVED),
    ]
    assert "timeout" in incident.timeline[1].message


def test_the_incident_carries_the_http_status_of_its_latest_failing_run() -> None:
    """What a notification quotes next to `last_reason`, so the dispatcher needs nothing
    but the incident (and no sink has to run before the tracker)."""
    feed = Feed(failure=1, success=2)

    def last_http_status(code: str, http_status: int | None) -> int | None:
        events = feed.run(code, http_status=http_status)
        assert len(events) == 1, events
        return events[0].incident.last_http_status

    assert last_http_status("d", 200) == 200  # opened: the opening run's
    assert last_http_status("d", 503) == 503  # counted: the latest failing run's
    assert last_http_status("u", 200) == 503  # monitoring: a good run's status is not it
    # A failure without an HTTP status (a timeout before the response) does not quote an
    # earlier run's status next to its own reason.
    assert last_http_status("t", None) is None
    assert last_http_status("d", 502) == 502
    assert last_http_status("u", 200) == 502  # monitoring
    (resolved,) = feed.run("u", http_status=200)
    assert resolved.kind is IncidentEventKind.RESOLVED
    assert resolved.incident.last_http_status == 502


def test_the_incident_links_the_screenshot_of_its_latest_failing_run_that_left_one() -> None:
    """What the status page shows: the page as users saw it while the incident was on."""
    feed = Feed(failure=2, success=1)
    assert feed.run("d", artifact="history_sidebar/1-page.png") == []  # below the threshold
    (opened,) = feed.run("d")  # a failure without a screenshot keeps the streak's
    assert opened.incident.artifact == "history_sidebar/1-page.png"
    (counted,) = feed.run("d", artifact="history_sidebar/3-page.png")
    assert counted.incident.artifact == "history_sidebar/3-page.png"
    (updated,) = feed.run("t")  # a new reason, no screenshot: the last one stays linked
    assert updated.incident.artifact == "history_sidebar/3-page.png"
    (resolved,) = feed.run("u")
    assert resolved.kind is IncidentEventKind.RESOLVED
    assert resolved.incident.artifact == "history_sidebar/3-page.png"
    # The next incident starts without the old one's.
    feed.run("d")
    (again,) = feed.run("d")
    assert again.incident.artifact is None


def test_emitted_incidents_are_snapshots() -> None:
    # The store writes an event's incident later, off the probing path: a later run must not
    # change what an earlier event carried.
    feed = Feed(failure=2, success=1)
    feed.runs("dd")
    opened = feed.events[-1].incident
    feed.runs("dtd")
    assert opened.reasons == {"empty_history": 2}
    assert opened.failing_steps == ("conversations",)
    assert len(opened.timeline) == 1
    assert feed.events[-1].incident.reasons == {"empty_history": 4, "timeout": 1}


def test_checks_are_tracked_independently() -> None:
    tracker = IncidentTracker()
    events: list[IncidentEvent] = []
    tracker.add_listener(events.append)
    for check in ("a", "b"):
        result = run_result("d", T0, check=check)
        tracker.accept(RunOutcome(result, Status.DOWN, None, "local"))
    assert {i.check for i in tracker.open_incidents()} == {"a", "b"}
    good = run_result("u", T0 + 10, check="a")
    tracker.accept(RunOutcome(good, Status.UP, Status.DOWN, "local"))
    assert [i.check for i in tracker.open_incidents()] == ["b"]
    assert len({e.incident.id for e in events}) == 2


def test_every_listener_sees_every_event() -> None:
    first: list[IncidentEvent] = []
    second: list[IncidentEvent] = []
    tracker = IncidentTracker([first.append])
    tracker.add_listener(second.append)
    feed = Feed(2, 1, tracker)
    feed.runs("ddu")
    assert [e.kind for e in first] == [IncidentEventKind.OPENED, IncidentEventKind.RESOLVED]
    assert first == second


def _open_incident(failure: int = 2, success: int = 2) -> tuple[Feed, Incident]:
    feed = Feed(failure, success)
    feed.runs("dd")
    return feed, feed.events[-1].incident


@pytest.mark.parametrize(
    ("runs", "events", "timeline", "reasons"),
    [
        ("d", "C", "I", {"empty_history": 3}),
        ("t", "U", "II", {"empty_history": 2, "timeout": 1}),
        ("u", "U", "IM", {"empty_history": 2}),
        ("uu", "UR", "IMR", {"empty_history": 2}),
        ("udu", "UUU", "IMIM", {"empty_history": 3}),
    ],
)
def test_restored_incident_continues(
    runs: str, events: str, timeline: str, reasons: dict[str, int]
) -> None:
    """After a restart: the state (down) and the open incident come from storage; the next
    runs continue the same incident, never open a second one."""
    before, incident = _open_incident()
    tracker = IncidentTracker()
    tracker.restore([incident])
    assert tracker.open_incidents() == [incident]
    after = Feed(2, 2, tracker)
    after.state = CheckState(Status.DOWN)  # as Daemon._restore sets it
    after.at = before.at + 3600
    assert after.runs(runs) == events
    assert {e.incident.id for e in after.events} == {incident.id}
    last = after.events[-1].incident
    assert "".join(TIMELINE_CODES[e.status] for e in last.timeline) == timeline
    assert last.reasons == reasons
    assert last.first_failure_at == incident.first_failure_at
    assert last.opened_at == incident.opened_at


def test_restore_ignores_resolved_incidents() -> None:
    feed = Feed(2, 1)
    feed.runs("ddu")
    resolved = feed.events[-1].incident
    assert resolved.status is IncidentStatus.RESOLVED
    tracker = IncidentTracker()
    tracker.restore([resolved])
    assert tracker.open_incidents() == []


def test_forget_drops_an_open_incident_and_its_streak() -> None:
    feed = Feed(2, 1)
    feed.runs("dd")
    feed.tracker.forget(CHECK)
    assert feed.tracker.open_incidents() == []
    # A down run now is the start of a new streak, not the continuation of the old one.
    feed.state = CheckState()
    assert feed.runs("dd") == "-O"
    assert feed.events[-1].incident.first_failure_at == feed.at - 2 * STEP_SECONDS


def test_default_ids_differ_per_incident() -> None:
    feed = Feed(2, 1)
    feed.runs("ddudd")
    ids = [e.incident.id for e in feed.events if e.kind is IncidentEventKind.OPENED]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    assert all(i.startswith(f"{CHECK}-") for i in ids)


# --- a flapping check: counted, and a bounded timeline -------------------------------------------


def test_a_flapping_check_is_counted_not_appended() -> None:
    """success_threshold 2, down and up in turn: the incident never resolves and every run
    changes its status. 10,000 of them are one counted entry, not 10,000."""
    feed = Feed(failure=2, success=2)
    feed.runs("dd")  # opened at T0+10
    flips = 10_000
    for _ in range(flips // 2):
        feed.runs("ud")
    incident = feed.events[-1].incident
    assert incident.open
    opened, flapping = incident.timeline
    assert (opened.at, opened.kind) == (T0 + 10, EntryKind.UPDATE)
    assert flapping.kind is EntryKind.FLAPPING
    assert flapping.count == flips
    assert flapping.at == T0 + 20  # the first change of state
    assert flapping.until == T0 + 10 + flips * STEP_SECONDS  # the latest
    assert flapping.status is incident.status is IncidentStatus.INVESTIGATING
    assert flapping.message.startswith(
        "Flapped 10,000 times between investigating and monitoring; the latest: "
        "empty_history at step conversations"
    )


def test_a_few_changes_of_state_are_shown_one_by_one() -> None:
    feed = Feed(failure=2, success=2)
    feed.runs("dd" + "ud" * (FLAPS_SHOWN // 2))
    timeline = feed.events[-1].incident.timeline
    assert [e.kind for e in timeline] == [EntryKind.UPDATE] * (1 + FLAPS_SHOWN)
    feed.run("u")  # one more: they become one counted entry
    timeline = feed.events[-1].incident.timeline
    assert [(e.kind, e.count) for e in timeline] == [
        (EntryKind.UPDATE, 1),
        (EntryKind.FLAPPING, FLAPS_SHOWN + 1),
    ]
    assert timeline[-1].status is IncidentStatus.MONITORING


def test_flapping_then_resolution_and_a_new_reason_read_in_order() -> None:
    feed = Feed(failure=2, success=2)
    feed.runs("dd" + "ud" * 10)  # flapping on empty_history
    feed.runs("t")  # still investigating: a new reason is its own entry
    feed.runs("ut" * 10)  # flapping again
    feed.runs("uu")  # resolved
    incident = feed.events[-1].incident
    assert [(e.kind, e.status) for e in incident.timeline] == [
        (EntryKind.UPDATE, IncidentStatus.INVESTIGATING),
        (EntryKind.FLAPPING, IncidentStatus.INVESTIGATING),
        (EntryKind.UPDATE, IncidentStatus.INVESTIGATING),  # new failure: timeout
        (EntryKind.FLAPPING, IncidentStatus.MONITORING),
        (EntryKind.UPDATE, IncidentStatus.RESOLVED),
    ]
    assert incident.timeline[1].count == 20
    assert incident.timeline[3].count == 21  # 20 and the first good run of the recovery
    assert "timeout" in incident.timeline[2].message


def test_a_timeline_keeps_at_most_max_timeline_entries() -> None:
    timeline: tuple[TimelineEntry, ...] = ()
    for i in range(500):
        entry = TimelineEntry(T0 + i, IncidentStatus.INVESTIGATING, f"New failure: reason_{i}")
        timeline = add_entry(timeline, entry)
        assert len(timeline) <= MAX_TIMELINE
    first, omitted, *latest = timeline
    assert first.message == "New failure: reason_0"
    assert omitted.kind is EntryKind.OMITTED
    assert omitted.count == 500 - 1 - len(latest)
    assert (omitted.at, omitted.until) == (T0 + 1, T0 + 500 - len(latest) - 1)
    assert (
        omitted.message
        == f"{omitted.count:,} earlier updates not kept (a timeline keeps 50 entries)"
    )
    assert [e.message for e in latest] == [f"New failure: reason_{i}" for i in range(452, 500)]


def test_a_long_message_is_cut_in_the_timeline() -> None:
    entry = TimelineEntry(T0, IncidentStatus.INVESTIGATING, "x" * 10_000)
    (kept,) = add_entry((), entry)
    assert len(kept.message) == MAX_ENTRY_MESSAGE
    assert kept.message.endswith("...")
