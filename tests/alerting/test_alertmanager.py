"""The Alertmanager request: one alert, stable labels, endsAt ahead while firing."""

from __future__ import annotations

from typing import Any

import pytest

from uptime_probe.alerting import alertmanager
from uptime_probe.alerting.notice import NoticeKind, description, headline, iso_time
from uptime_probe.config.model import AlertmanagerNotifier

from .factories import OPENED, RESOLVED, STATUS_PAGE, incident, notice


def notifier(**changes: Any) -> AlertmanagerNotifier:
    return AlertmanagerNotifier.model_validate(
        {"kind": "alertmanager", "url": "http://am.test:9093/", **changes}
    )


LABELS = {
    "alertname": "UptimeProbeIncident",
    "check": "history_sidebar",
    "location": "eu-west",
    "severity": "page",
}


@pytest.mark.parametrize(
    ("kind", "interval", "ends_at"),
    [
        (NoticeKind.OPENED, 60.0, lambda sent: sent + 180),
        (NoticeKind.REMINDER, 60.0, lambda sent: sent + 180),
        (NoticeKind.REMINDER, None, lambda sent: sent + 180),  # null: the default re-post
        (NoticeKind.OPENED, 0.2, lambda sent: sent + 0.6),
        (NoticeKind.RESOLVED, 60.0, lambda _sent: RESOLVED),
    ],
)
def test_alert_per_event(kind: NoticeKind, interval: float | None, ends_at: Any) -> None:
    sent = notice(kind)
    request = alertmanager.build_request(notifier(reminder_interval=interval), sent)
    assert (request.method, request.url) == ("POST", "http://am.test:9093/api/v2/alerts")
    [alert] = request.json()
    assert alert == {
        "labels": LABELS,
        "annotations": {
            "summary": headline(sent),
            "description": description(sent),
            "reason": "empty_history",
            "step": "conversations",
            "status_page": STATUS_PAGE,
            "incident": "history_sidebar-1764742230000",
        },
        "startsAt": iso_time(OPENED),
        "endsAt": iso_time(ends_at(sent.sent_at)),
        "generatorURL": STATUS_PAGE,
    }


def test_reason_changes_only_annotations_never_labels() -> None:
    before = alertmanager.alert(notifier(), notice(NoticeKind.OPENED))
    later = incident(
        last_reason="http_5xx", last_http_status=503, reasons={"empty_history": 2, "http_5xx": 3}
    )
    after = alertmanager.alert(notifier(), notice(NoticeKind.REMINDER, later))
    assert before["labels"] == after["labels"]
    assert (before["annotations"]["reason"], after["annotations"]["reason"]) == (
        "empty_history",
        "http_5xx",
    )
    assert (
        "a server error status (HTTP 503) (first: empty history)" in after["annotations"]["summary"]
    )


def test_ends_at_never_before_starts_at() -> None:
    # A resolve recorded in the same instant as the open is still a valid alert.
    subject = incident(resolved_at=OPENED)
    alert = alertmanager.alert(notifier(), notice(NoticeKind.RESOLVED, subject))
    assert alert["endsAt"] == alert["startsAt"]
