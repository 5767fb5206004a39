"""The plain words every notifier shares: durations, times, reasons, the status page link."""

from __future__ import annotations

import pytest

from uptime_probe.alerting.notice import (
    NoticeKind,
    check_link,
    clock_time,
    description,
    headline,
    human_duration,
    iso_time,
    reason_text,
    status_page_base,
)
from uptime_probe.config.model import ServerConfig

from .factories import FIRST_FAILURE, MESSAGE, STATUS_PAGE, incident, notice


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0s"),
        (-3, "0s"),
        (45.9, "45s"),
        (60, "1m"),
        (45 * 60, "45m"),
        (45 * 60 + 12, "45m 12s"),
        (3600 + 5 * 60 + 59, "1h 5m"),
        (3600 + 30, "1h"),  # the unit after the largest is zero: not "1h 30s"
        (2 * 86400 + 3 * 3600 + 120, "2d 3h"),
    ],
)
def test_human_duration(seconds: float, words: str) -> None:
    assert human_duration(seconds) == words


@pytest.mark.parametrize(
    ("now_offset", "words"),
    [(60, "06:10 UTC"), (86400, "3 Dec 06:10 UTC")],
    ids=["same-day", "next-day"],
)
def test_clock_time_names_the_day_only_when_it_is_not_today(now_offset: int, words: str) -> None:
    assert clock_time(FIRST_FAILURE, FIRST_FAILURE + now_offset) == words


def test_iso_time_is_rfc3339_utc() -> None:
    assert iso_time(FIRST_FAILURE + 0.25) == "2025-12-03T06:10:00.250Z"


@pytest.mark.parametrize(
    ("server", "hostname", "base"),
    [
        ({"public_url": "https://status.example.com"}, "box", "https://status.example.com"),
        ({"listen": "0.0.0.0:9713"}, "probe-1", "http://probe-1:9713/"),
        ({"listen": "127.0.0.1:8080"}, "probe-1", "http://127.0.0.1:8080/"),
        ({"listen": "[::]:9713"}, "probe-1", "http://probe-1:9713/"),
        ({"listen": "[::1]:9713"}, "probe-1", "http://[::1]:9713/"),
    ],
)
def test_status_page_base(server: dict[str, str], hostname: str, base: str) -> None:
    assert status_page_base(ServerConfig.model_validate(server), hostname) == base


@pytest.mark.parametrize(
    ("base", "link"),
    [
        ("https://status.example.com", "https://status.example.com/#check-api"),
        ("https://status.example.com/", "https://status.example.com/#check-api"),
        ("https://example.com/status/", "https://example.com/status/#check-api"),
        ("https://example.com/?team=a", "https://example.com/?team=a#check-api"),
    ],
)
def test_check_link_anchors_the_check(base: str, link: str) -> None:
    assert check_link(base, "api") == link


@pytest.mark.parametrize(
    ("changes", "http_status", "words"),
    [
        ({}, 200, "empty history (HTTP 200)"),
        ({}, None, "empty history"),
        (
            {"last_reason": "http_5xx"},
            503,
            "a server error status (HTTP 503) (first: empty history)",
        ),
        (
            {"first_reason": "timeout", "last_reason": "timeout"},
            None,
            "no response before the deadline",
        ),
        ({"first_reason": "", "last_reason": ""}, None, "an internal error in uptime-probe"),
    ],
)
def test_reason_text(changes: dict[str, str], http_status: int | None, words: str) -> None:
    subject = incident(**changes, last_http_status=http_status)
    assert reason_text(notice(NoticeKind.OPENED, subject)) == words


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        (
            NoticeKind.OPENED,
            "history_sidebar is DOWN — empty history (HTTP 200) at step conversations,"
            " since 06:10 UTC.",
        ),
        (
            NoticeKind.REMINDER,
            "history_sidebar is still DOWN after 1h 5m — empty history (HTTP 200)"
            " at step conversations, since 06:10 UTC.",
        ),
        (
            NoticeKind.RESOLVED,
            "history_sidebar recovered after 45m — it was down since 06:10 UTC:"
            " empty history (HTTP 200) at step conversations.",
        ),
    ],
)
def test_headline_names_check_reason_step_and_since(kind: NoticeKind, line: str) -> None:
    assert headline(notice(kind)) == line


def test_headline_lists_every_failing_step() -> None:
    subject = incident(failing_steps=("create", "wait_completed"))
    assert "at steps create, wait_completed," in headline(notice(NoticeKind.OPENED, subject))


def test_description_carries_first_message_counts_and_link() -> None:
    text = description(
        notice(NoticeKind.OPENED, incident(reasons={"timeout": 1, "empty_history": 4}))
    )
    assert f"First failure: {MESSAGE}" in text
    assert "Failed runs by reason: empty_history: 4, timeout: 1" in text
    assert "(30s after the first failed run) from location eu-west" in text
    assert text.endswith(f"Status page: {STATUS_PAGE}")


def test_description_names_the_checks_an_incident_holds_back() -> None:
    assert "Holding back" not in description(notice(NoticeKind.OPENED, incident()))
    text = description(notice(NoticeKind.RESOLVED, incident(held_back=("checkout", "cart"))))
    assert "Holding back (their alerts wait on this one): checkout, cart" in text
