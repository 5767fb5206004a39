"""Incidents, configs and run outcomes for the alerting tests: plain values, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from uptime_probe.alerting.notice import Notice, NoticeKind
from uptime_probe.config.model import Config
from uptime_probe.probe.model import CheckResult, Status, StepResult
from uptime_probe.sinks import RunOutcome
from uptime_probe.state.incidents import Incident, IncidentStatus, TimelineEntry

# 3 December 2025: the history sidebar answered 200 with an empty list from 06:10 UTC.
FIRST_FAILURE = datetime(2025, 12, 3, 6, 10, tzinfo=UTC).timestamp()
OPENED = FIRST_FAILURE + 30
RESOLVED = FIRST_FAILURE + 45 * 60
STATUS_PAGE = "https://status.example.com/#check-history_sidebar"
MESSAGE = "conversations: length(items) = 0, expected > 0"


def incident(**changes: Any) -> Incident:
    """The 3 December incident, open; `changes` override fields."""
    base = Incident(
        id="history_sidebar-1764742230000",
        check="history_sidebar",
        location="eu-west",
        status=IncidentStatus.INVESTIGATING,
        opened_at=OPENED,
        first_failure_at=FIRST_FAILURE,
        first_message=MESSAGE,
        first_reason="empty_history",
        response_sample='{"items": [], "total": 0}',
        reasons={"empty_history": 2},
        failing_steps=("conversations",),
        timeline=(TimelineEntry(OPENED, IncidentStatus.INVESTIGATING, "empty_history"),),
        last_reason="empty_history",
        last_http_status=200,
    )
    return replace(base, **changes)


def resolved(source: Incident | None = None, at: float = RESOLVED) -> Incident:
    return replace(source or incident(), status=IncidentStatus.RESOLVED, resolved_at=at)


def notice(kind: NoticeKind, subject: Incident | None = None, **changes: Any) -> Notice:
    """A notice as the dispatcher builds it; `sent_at` defaults to a moment that fits `kind`."""
    subject = subject or (resolved() if kind is NoticeKind.RESOLVED else incident())
    sent_at = {
        NoticeKind.OPENED: OPENED + 1,
        NoticeKind.REMINDER: FIRST_FAILURE + 65 * 60,
        NoticeKind.RESOLVED: RESOLVED + 1,
    }[kind]
    fields: dict[str, Any] = {
        "kind": kind,
        "incident": subject,
        "sent_at": sent_at,
        "status_page": STATUS_PAGE,
        "delivery_id": "d-1",
        "status_page_title": "Chat status",
    }
    fields.update(changes)
    return Notice(**fields)


def config(
    notifiers: dict[str, dict[str, Any]],
    routes: dict[str, list[str]],
    *,
    public_url: str | None = "http://status.test/",
) -> Config:
    """A Config whose checks are `routes` (check -> notifier names)."""
    checks = [
        {
            "name": name,
            "notifiers": names,
            "steps": [{"name": "conversations", "request": {"url": "http://127.0.0.1:9/"}}],
        }
        for name, names in routes.items()
    ]
    return Config.model_validate(
        {
            "location": "eu-west",
            "checks": checks,
            "notifiers": notifiers,
            "server": {"public_url": public_url},
            "status_page": {"title": "Chat status"},
        }
    )


def outcome(
    check: str,
    ok: bool,
    at: float,
    *,
    state: Status,
    reason: str = "empty_history",
    message: str = MESSAGE,
    http_status: int | None = None,
) -> RunOutcome:
    """A run of `check` and the state after it, as CheckStates hands it to the tracker;
    `http_status` is its one step's."""
    status = Status.UP if ok else Status.DOWN
    steps: tuple[StepResult, ...] = ()
    if http_status is not None:
        step_reason, step_message = (None, "ok") if ok else (reason, message)
        steps = (
            StepResult(
                "conversations", status, step_reason, step_message, 0.05, http_status=http_status
            ),
        )
    result = CheckResult(
        check=check,
        status=status,
        reason=None if ok else reason,
        failed_step=None if ok else "conversations",
        message="1 step ok" if ok else message,
        started_at=at,
        duration_seconds=0.05,
        steps=steps,
    )
    return RunOutcome(result, state, None, "eu-west")
