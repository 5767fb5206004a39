"""`webhook`: a JSON POST of the incident, optionally signed with HMAC-SHA256.

Signature (when `hmac_secret` is set)::

    X-Uptime-Probe-Timestamp: <unix seconds>
    X-Uptime-Probe-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body bytes)>

The timestamp is inside the signed material, so a captured request cannot be replayed
later with a fresh timestamp; receivers recompute the HMAC over the raw body bytes (never
a re-serialised JSON) and reject timestamps far from their clock (docs/notifications.md).
The secret itself is only ever a key: it is in no body, header or log line.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from uptime_probe.alerting.notice import (
    USER_AGENT,
    HttpRequest,
    Notice,
    encode_json,
    failing_step,
    headline,
    iso_time,
    reason_text,
)
from uptime_probe.config.model import WebhookNotifier

SCHEMA_VERSION = 1
SIGNATURE_HEADER = "X-Uptime-Probe-Signature"
TIMESTAMP_HEADER = "X-Uptime-Probe-Timestamp"
EVENT_HEADER = "X-Uptime-Probe-Event"
DELIVERY_HEADER = "X-Uptime-Probe-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: `sha256=<hex>` over `"<timestamp>." + body`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def payload(notice: Notice) -> dict[str, Any]:
    incident = notice.incident
    resolved_at = incident.resolved_at
    return {
        "version": SCHEMA_VERSION,
        "event": notice.kind.value,
        "sent_at": iso_time(notice.sent_at),
        "summary": headline(notice),
        "incident": {
            "id": incident.id,
            "check": incident.check,
            "location": incident.location,
            "status": incident.status.value,
            "reason": incident.last_reason or incident.first_reason,
            "reason_text": reason_text(notice),
            "first_reason": incident.first_reason,
            "http_status": incident.last_http_status,
            "failing_step": failing_step(incident),
            "failing_steps": list(incident.failing_steps),
            "since": iso_time(incident.first_failure_at),
            "opened_at": iso_time(incident.opened_at),
            "resolved_at": iso_time(resolved_at) if resolved_at is not None else None,
            "time_to_detect_seconds": round(incident.time_to_detect, 3),
            "reasons": dict(incident.reasons),
            "message": incident.first_message,
            "held_back": list(incident.held_back),
        },
        "status_page": notice.status_page,
    }


def build_request(notifier: WebhookNotifier, notice: Notice) -> HttpRequest:
    body = encode_json(payload(notice))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **notifier.headers,
        EVENT_HEADER: notice.kind.value,
        DELIVERY_HEADER: notice.delivery_id,
    }
    if notifier.hmac_secret:
        timestamp = str(int(notice.sent_at))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(notifier.hmac_secret, timestamp, body)
    return HttpRequest("POST", notifier.url, headers, body)
