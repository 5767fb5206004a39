"""The webhook request: body per event, headers, and a signature a receiver can verify."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from uptime_probe.alerting import webhook
from uptime_probe.alerting.notice import HttpRequest, NoticeKind
from uptime_probe.config.model import WebhookNotifier

from .factories import MESSAGE, STATUS_PAGE, incident, notice

SECRET = "s3cret-hmac-key-0123"


def notifier(**changes: Any) -> WebhookNotifier:
    return WebhookNotifier.model_validate(
        {"kind": "webhook", "url": "http://hook.test/in", **changes}
    )


def verify(secret: str, request: HttpRequest, *, now: float, tolerance: float = 300) -> bool:
    """The receiver's side, exactly as docs/notifications.md tells it."""
    timestamp = request.headers["X-Uptime-Probe-Timestamp"]
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", request.headers["X-Uptime-Probe-Signature"])


INCIDENT_OPEN = {
    "id": "history_sidebar-1764742230000",
    "check": "history_sidebar",
    "location": "eu-west",
    "status": "investigating",
    "reason": "empty_history",
    "reason_text": "empty history (HTTP 200)",
    "first_reason": "empty_history",
    "http_status": 200,
    "failing_step": "conversations",
    "failing_steps": ["conversations"],
    "since": "2025-12-03T06:10:00.000Z",
    "opened_at": "2025-12-03T06:10:30.000Z",
    "resolved_at": None,
    "time_to_detect_seconds": 30.0,
    "reasons": {"empty_history": 2},
    "message": MESSAGE,
    "held_back": [],
}


@pytest.mark.parametrize(
    ("kind", "sent_at", "summary", "incident_changes"),
    [
        (
            NoticeKind.OPENED,
            "2025-12-03T06:10:31.000Z",
            "history_sidebar is DOWN — empty history (HTTP 200) at step conversations,"
            " since 06:10 UTC.",
            {},
        ),
        (
            NoticeKind.REMINDER,
            "2025-12-03T07:15:00.000Z",
            "history_sidebar is still DOWN after 1h 5m — empty history (HTTP 200)"
            " at step conversations, since 06:10 UTC.",
            {},
        ),
        (
            NoticeKind.RESOLVED,
            "2025-12-03T06:55:01.000Z",
            "history_sidebar recovered after 45m — it was down since 06:10 UTC:"
            " empty history (HTTP 200) at step conversations.",
            {"status": "resolved", "resolved_at": "2025-12-03T06:55:00.000Z"},
        ),
    ],
)
def test_body_per_event(
    kind: NoticeKind, sent_at: str, summary: str, incident_changes: dict[str, Any]
) -> None:
    request = webhook.build_request(notifier(), notice(kind))
    assert (request.method, request.url) == ("POST", "http://hook.test/in")
    assert request.json() == {
        "version": 1,
        "event": kind.value,
        "sent_at": sent_at,
        "summary": summary,
        "incident": {**INCIDENT_OPEN, **incident_changes},
        "status_page": STATUS_PAGE,
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Uptime-Probe-Event"] == kind.value
    assert request.headers["X-Uptime-Probe-Delivery"] == "d-1"
    assert "X-Uptime-Probe-Signature" not in request.headers


def test_signature_verifies_with_the_documented_procedure() -> None:
    sent = notice(NoticeKind.OPENED)
    request = webhook.build_request(notifier(hmac_secret=SECRET), sent)
    assert request.headers["X-Uptime-Probe-Timestamp"] == str(int(sent.sent_at))
    assert verify(SECRET, request, now=sent.sent_at + 2)
    assert not verify("another-key", request, now=sent.sent_at + 2)
    assert not verify(SECRET, request, now=sent.sent_at + 3600), "a stale timestamp is refused"
    tampered = HttpRequest(
        request.method, request.url, request.headers, request.body.replace(b"DOWN", b"UP!!")
    )
    assert not verify(SECRET, tampered, now=sent.sent_at + 2)
    replayed = HttpRequest(
        request.method,
        request.url,
        {**request.headers, "X-Uptime-Probe-Timestamp": str(int(sent.sent_at) + 600)},
        request.body,
    )
    assert not verify(SECRET, replayed, now=sent.sent_at + 600), "the timestamp is signed"


def test_the_secret_is_a_key_never_content() -> None:
    request = webhook.build_request(notifier(hmac_secret=SECRET), notice(NoticeKind.OPENED))
    assert SECRET.encode() not in request.body
    assert all(SECRET not in value for value in request.headers.values())


def test_custom_headers_are_sent_but_cannot_forge_the_signature() -> None:
    request = webhook.build_request(
        notifier(
            hmac_secret=SECRET,
            headers={"Authorization": "Bearer abc", "X-Uptime-Probe-Signature": "sha256=forged"},
        ),
        notice(NoticeKind.OPENED),
    )
    assert request.headers["Authorization"] == "Bearer abc"
    assert request.headers["X-Uptime-Probe-Signature"] != "sha256=forged"


def test_body_is_utf8_and_carries_text_as_is() -> None:
    subject = incident(first_message='items = [] — "empty" <b>')
    request = webhook.build_request(notifier(), notice(NoticeKind.OPENED, subject))
    assert request.json()["incident"]["message"] == 'items = [] — "empty" <b>'
    assert "—".encode() in request.body
