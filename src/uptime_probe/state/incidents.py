"""Incidents from check state changes: pure, no I/O.

An incident opens when a check's state turns down and resolves when it turns back
up (or degraded). It reads like a public status page: `investigating` while down,
`monitoring` after the first good run, `resolved` once the success threshold is met.

A timeline stays small whatever the check does (`add_entry`). A check that flaps (down,
up, down... without ever meeting its success threshold) would add an entry every run:
after FLAPS_SHOWN changes between investigating and monitoring in a row, they become one
counted entry, "Flapped 4,321 times between investigating and monitoring", from the first
to the latest. And a timeline keeps at most MAX_TIMELINE entries: the opening one, then
one counted entry for those left out, then the latest.

A run whose alerting is held back (`RunOutcome.hold`: a maintenance window, or a failing
check it depends on) opens no incident: the check's down streak goes on, and its first
down run once nothing holds it opens one. A check held back by a dependency is listed on
that dependency's open incident (`held_back`), or, down a chain, on the incident of the
first check up the chain that has one. An incident already open is never held back, so
its resolution always follows its opening.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from uptime_probe.probe.model import CheckResult, Status
from uptime_probe.sinks import Hold, HoldKind, RunOutcome


class IncidentStatus(StrEnum):
    INVESTIGATING = "investigating"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class EntryKind(StrEnum):
    UPDATE = "update"  # one change
    FLAPPING = "flapping"  # `count` changes between investigating and monitoring in a row
    OMITTED = "omitted"  # `count` earlier entries left out to keep the timeline bounded


FLAPS_SHOWN = 4  # changes of state in a row shown one by one before they are counted
MAX_TIMELINE = 50  # entries kept: the first, one for those left out, the latest
MAX_ENTRY_MESSAGE = 500  # characters of a message kept in the timeline


class IncidentEventKind(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"  # a timeline entry: investigating <-> monitoring, or a new reason
    COUNTED = "counted"  # only the reason counts moved; stored, never notified
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One update; or, for a counted kind, `count` of them from `at` to `until`."""

    at: float
    status: IncidentStatus  # the incident's status after it (after the latest, if counted)
    message: str
    kind: EntryKind = EntryKind.UPDATE
    count: int = 1
    until: float | None = None


_FLAPPING_STATES = frozenset({IncidentStatus.INVESTIGATING, IncidentStatus.MONITORING})


def _flips(before: TimelineEntry, entry: TimelineEntry) -> bool:
    """A change between investigating and monitoring (a new reason is not one)."""
    return (
        entry.kind is not EntryKind.OMITTED
        and before.status is not entry.status
        and {before.status, entry.status} <= _FLAPPING_STATES
    )


def _flapping(at: float, latest: TimelineEntry, count: int) -> TimelineEntry:
    return TimelineEntry(
        at,
        latest.status,
        f"Flapped {count:,} times between investigating and monitoring; "
        f"the latest: {latest.message}",
        EntryKind.FLAPPING,
        count,
        latest.at,
    )


def add_entry(
    timeline: tuple[TimelineEntry, ...], entry: TimelineEntry
) -> tuple[TimelineEntry, ...]:
    """`timeline` with `entry` at its end: flapping counted, the length capped."""
    if len(entry.message) > MAX_ENTRY_MESSAGE:
        # Messages were redacted before they got here: a cut cannot expose a secret.
        entry = replace(entry, message=entry.message[: MAX_ENTRY_MESSAGE - 3] + "...")
    if timeline and _flips(timeline[-1], entry):
        last = timeline[-1]
        if last.kind is EntryKind.FLAPPING:
            return (*timeline[:-1], _flapping(last.at, entry, last.count + 1))
        shown = 0  # changes of state in a row at the timeline's end, each shown alone
        while shown < min(FLAPS_SHOWN, len(timeline) - 1) and _flips(
            timeline[-shown - 2], timeline[-shown - 1]
        ):
            shown += 1
        if shown >= FLAPS_SHOWN:
            first = timeline[-shown]
            return _capped((*timeline[:-shown], _flapping(first.at, entry, shown + 1)))
    return _capped((*timeline, entry))


def _capped(timeline: tuple[TimelineEntry, ...]) -> tuple[TimelineEntry, ...]:
    if len(timeline) <= MAX_TIMELINE:
        return timeline
    latest = MAX_TIMELINE - 2
    left_out = timeline[1:-latest]
    count = sum(entry.count for entry in left_out)
    end = left_out[-1].until or left_out[-1].at
    omitted = TimelineEntry(
        left_out[0].at,
        left_out[-1].status,
        f"{count:,} earlier updates not kept (a timeline keeps {MAX_TIMELINE} entries)",
        EntryKind.OMITTED,
        count,
        end,
    )
    return (timeline[0], omitted, *timeline[-latest:])


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    check: str
    location: str
    status: IncidentStatus
    opened_at: float
    first_failure_at: float
    first_message: str
    first_reason: str
    response_sample: str | None
    reasons: dict[str, int]
    failing_steps: tuple[str, ...]
    timeline: tuple[TimelineEntry, ...]
    resolved_at: float | None = None
    last_reason: str = ""
    # The HTTP status of the failing run `last_reason` is from, when it got one: recorded
    # here so a notification can say "empty history (HTTP 200)" from the incident alone.
    last_http_status: int | None = None
    # The file the latest failing run that left one left (a browser step's screenshot of
    # the page as users saw it), relative to the artifact folder: the status page shows it.
    artifact: str | None = None
    # Checks depending on this one whose own incidents it held back while open.
    held_back: tuple[str, ...] = ()

    @property
    def time_to_detect(self) -> float:
        return self.opened_at - self.first_failure_at

    @property
    def open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    kind: IncidentEventKind
    incident: Incident


@dataclass(slots=True)
class _Streak:
    """The down runs seen since the check's last good run, before an incident opens."""

    first_at: float = 0.0
    first_message: str = ""
    first_reason: str = ""
    sample: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    artifact: str | None = None


def _sample(result: CheckResult) -> str | None:
    for step in result.steps:
        if step.name == result.failed_step and step.response_sample:
            return step.response_sample
    return None


def failed_artifact(result: CheckResult) -> str | None:
    """The file the run's failing step left, if any (a screenshot)."""
    for step in result.steps:
        if step.name == result.failed_step and step.artifact:
            return step.artifact
    return None


def _reason_phrase(result: CheckResult) -> str:
    return f"{result.reason} at step {result.failed_step}: {result.message}"


class IncidentTracker:
    """A result sink turning state changes into incident events for its listeners."""

    def __init__(
        self,
        listeners: Sequence[Callable[[IncidentEvent], None]] = (),
        *,
        new_id: Callable[[str, float], str] | None = None,
    ) -> None:
        self._listeners = list(listeners)
        self._open: dict[str, Incident] = {}
        self._streaks: dict[str, _Streak] = {}
        self._held: dict[str, Hold] = {}  # down checks whose incident is held back, by check
        self._new_id = new_id or (lambda check, at: f"{check}-{int(at * 1000)}")

    def add_listener(self, listener: Callable[[IncidentEvent], None]) -> None:
        self._listeners.append(listener)

    def restore(self, incidents: Iterable[Incident]) -> None:
        """Open incidents from storage, after a restart."""
        for incident in incidents:
            if incident.open:
                self._open[incident.check] = incident

    def open_incidents(self) -> list[Incident]:
        return list(self._open.values())

    def forget(self, check: str) -> None:
        """A check removed by a reload: its open incident stays in storage, untracked."""
        self._open.pop(check, None)
        self._streaks.pop(check, None)
        self._held.pop(check, None)

    def held(self, check: str) -> Hold | None:
        """What holds the check's incident back now, while it is down without one."""
        return self._held.get(check)

    def accept(self, outcome: RunOutcome) -> None:
        result = outcome.result
        check = result.check
        incident = self._open.get(check)
        if result.status is Status.DOWN:
            streak = self._streaks.get(check)
            if streak is None:
                streak = _Streak(
                    result.started_at, result.message, result.reason or "", _sample(result)
                )
                self._streaks[check] = streak
            reason = result.reason or "internal"
            streak.reasons[reason] = streak.reasons.get(reason, 0) + 1
            streak.artifact = failed_artifact(result) or streak.artifact
            if result.failed_step and result.failed_step not in streak.steps:
                streak.steps.append(result.failed_step)
            if incident is None and outcome.state is Status.DOWN:
                if outcome.hold is None:
                    self._held.pop(check, None)
                    self._opened(outcome, streak)
                else:
                    self._hold(check, outcome.hold, result.started_at)
            elif incident is not None:
                self._failed_again(incident, result)
            return
        self._streaks.pop(check, None)
        self._held.pop(check, None)
        if incident is None:
            return
        if outcome.state is Status.DOWN:
            if incident.status is IncidentStatus.INVESTIGATING:
                self._update(
                    incident,
                    IncidentStatus.MONITORING,
                    result.started_at,
                    "A run succeeded; watching for recovery.",
                )
            return
        self._resolved(incident, result)

    def _hold(self, check: str, hold: Hold, at: float) -> None:
        """A down check whose incident waits; listed on its dependency's incident."""
        self._held[check] = hold
        if hold.kind is not HoldKind.DEPENDENCY:
            return
        holder = self._holding_incident(hold.by)
        if holder is None or check in holder.held_back:
            return
        updated = replace(
            holder,
            held_back=(*holder.held_back, check),
            timeline=(
                *holder.timeline,
                TimelineEntry(
                    at,
                    holder.status,
                    f"Holding back {check}, which depends on {hold.by}.",
                ),
            ),
        )
        self._open[holder.check] = updated
        self._emit(IncidentEventKind.UPDATED, updated)

    def _holding_incident(self, check: str) -> Incident | None:
        """The open incident of `check`, or of the first check up its chain of held
        dependencies that has one (the config has no cycles; bounded all the same)."""
        for _ in range(len(self._held) + 1):
            incident = self._open.get(check)
            if incident is not None:
                return incident
            hold = self._held.get(check)
            if hold is None or hold.kind is not HoldKind.DEPENDENCY:
                return None
            check = hold.by
        return None

    def _emit(self, kind: IncidentEventKind, incident: Incident) -> None:
        for listener in self._listeners:
            listener(IncidentEvent(kind, incident))

    def _opened(self, outcome: RunOutcome, streak: _Streak) -> None:
        result = outcome.result
        now = result.started_at
        incident = Incident(
            id=self._new_id(result.check, now),
            check=result.check,
            location=outcome.location,
            status=IncidentStatus.INVESTIGATING,
            opened_at=now,
            first_failure_at=streak.first_at,
            first_message=streak.first_message,
            first_reason=streak.first_reason,
            response_sample=streak.sample,
            reasons=dict(streak.reasons),
            failing_steps=tuple(streak.steps),
            timeline=(TimelineEntry(now, IncidentStatus.INVESTIGATING, _reason_phrase(result)),),
            last_reason=result.reason or "",
            last_http_status=result.http_status,
            artifact=streak.artifact,
        )
        self._open[result.check] = incident
        self._emit(IncidentEventKind.OPENED, incident)

    def _failed_again(self, incident: Incident, result: CheckResult) -> None:
        reason = result.reason or "internal"
        reasons = dict(incident.reasons)
        reasons[reason] = reasons.get(reason, 0) + 1
        steps = incident.failing_steps
        if result.failed_step and result.failed_step not in steps:
            steps = (*steps, result.failed_step)
        timeline = incident.timeline
        kind = None
        if incident.status is IncidentStatus.MONITORING:
            entry = TimelineEntry(
                result.started_at, IncidentStatus.INVESTIGATING, _reason_phrase(result)
            )
            timeline, kind = add_entry(timeline, entry), IncidentEventKind.UPDATED
        elif reason not in incident.reasons:
            entry = TimelineEntry(
                result.started_at,
                IncidentStatus.INVESTIGATING,
                f"New failure: {_reason_phrase(result)}",
            )
            timeline, kind = add_entry(timeline, entry), IncidentEventKind.UPDATED
        updated = replace(
            incident,
            status=IncidentStatus.INVESTIGATING,
            reasons=reasons,
            failing_steps=steps,
            timeline=timeline,
            last_reason=reason,
            last_http_status=result.http_status,
            artifact=failed_artifact(result) or incident.artifact,
        )
        self._open[incident.check] = updated
        # Every failure updates counts in storage; only status changes notify.
        self._emit(kind or IncidentEventKind.COUNTED, updated)

    def _update(self, incident: Incident, status: IncidentStatus, at: float, message: str) -> None:
        updated = replace(
            incident,
            status=status,
            timeline=add_entry(incident.timeline, TimelineEntry(at, status, message)),
        )
        self._open[incident.check] = updated
        self._emit(IncidentEventKind.UPDATED, updated)

    def _resolved(self, incident: Incident, result: CheckResult) -> None:
        now = result.started_at
        timeline = incident.timeline
        if incident.status is not IncidentStatus.MONITORING:
            timeline = add_entry(
                timeline, TimelineEntry(now, IncidentStatus.MONITORING, "A run succeeded.")
            )
        timeline = add_entry(
            timeline,
            TimelineEntry(now, IncidentStatus.RESOLVED, f"Check is {result.status.value} again."),
        )
        resolved = replace(
            incident, status=IncidentStatus.RESOLVED, resolved_at=now, timeline=timeline
        )
        del self._open[incident.check]
        self._emit(IncidentEventKind.RESOLVED, resolved)
