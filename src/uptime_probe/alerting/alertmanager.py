"""`alertmanager`: one alert posted to a real Alertmanager's `/api/v2/alerts`.

Alertmanager resolves an alert by itself once its `endsAt` passes, so while the incident
is open the dispatcher re-posts it every `repost_interval` with `endsAt` three intervals
ahead: two lost posts in a row still do not resolve it, and a daemon that dies lets the
alert resolve within three intervals instead of firing forever. On resolve, `endsAt` is
the time the incident resolved.

The labels identify the alert and never change during an incident; the reason does
change (a timeout can turn into a 503), so it is an annotation, not a label.
"""

from __future__ import annotations

from typing import Any

from uptime_probe.alerting.notice import (
    USER_AGENT,
    HttpRequest,
    Notice,
    NoticeKind,
    description,
    encode_json,
    headline,
    iso_time,
)
from uptime_probe.config.model import AlertmanagerNotifier

ALERT_NAME = "UptimeProbeIncident"
SEVERITY = "page"
# Used when `reminder_interval` is null: re-posting is what keeps the alert firing.
DEFAULT_REPOST_SECONDS = 60.0
ENDS_AT_INTERVALS = 3


def repost_interval(notifier: AlertmanagerNotifier) -> float:
    return notifier.reminder_interval or DEFAULT_REPOST_SECONDS


def alert(notifier: AlertmanagerNotifier, notice: Notice) -> dict[str, Any]:
    incident = notice.incident
    if notice.kind is NoticeKind.RESOLVED and incident.resolved_at is not None:
        ends_at = incident.resolved_at
    else:
        ends_at = notice.sent_at + ENDS_AT_INTERVALS * repost_interval(notifier)
    return {
        "labels": {
            "alertname": ALERT_NAME,
            "check": incident.check,
            "location": incident.location,
            "severity": SEVERITY,
        },
        "annotations": {
            "summary": headline(notice),
            "description": description(notice),
            "reason": incident.last_reason or incident.first_reason,
            "step": ", ".join(incident.failing_steps),
            "status_page": notice.status_page,
            "incident": incident.id,
        },
        "startsAt": iso_time(incident.opened_at),
        "endsAt": iso_time(max(ends_at, incident.opened_at)),
        "generatorURL": notice.status_page,
    }


def build_request(notifier: AlertmanagerNotifier, notice: Notice) -> HttpRequest:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    url = f"{notifier.url.rstrip('/')}/api/v2/alerts"
    return HttpRequest("POST", url, headers, encode_json([alert(notifier, notice)]))
