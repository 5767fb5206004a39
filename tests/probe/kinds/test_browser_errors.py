"""Chromium's net::ERR_* codes onto our reasons: every code has a rule, the specific ones win.

The httpx way (tests/test_exceptions.py there): a lower layer's errors mapped to our
categories, and a test that fails when any of them is left to the fallback. The codes are
those of Chromium's net/base/net_error_list.h (chromium_net_errors.txt, one per line);
tests/probe/kinds/test_browser.py makes the real Chromium produce the ones a page load
meets (refused, DNS, TLS, reset, redirects, decoding) and checks the reason end to end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from uptime_probe.probe.kinds.browser import NET_ERROR_RULES, classify_net_error
from uptime_probe.probe.model import BUILTIN_REASONS, FailureReason

CODES = [
    line.strip()
    for line in (Path(__file__).parent / "chromium_net_errors.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def test_the_list_is_chromiums_and_complete_enough_to_mean_something() -> None:
    assert len(CODES) == len(set(CODES)) > 200
    assert {"CONNECTION_REFUSED", "NAME_NOT_RESOLVED", "CERT_AUTHORITY_INVALID"} <= set(CODES)


@pytest.mark.parametrize("code", CODES)
def test_every_chromium_code_has_a_rule(code: str) -> None:
    reason = classify_net_error(code)
    assert reason is not None, f"net::ERR_{code} falls to the fallback: give it a rule"
    assert reason in BUILTIN_REASONS


def test_every_rule_is_used_by_some_code() -> None:
    """A rule no code reaches is a typo (or a code Chromium renamed)."""
    for pattern, reason in NET_ERROR_RULES:
        for alternative in pattern.pattern.removeprefix("^(?:").removesuffix(")$").split("|"):
            assert any(re.fullmatch(alternative, code) for code in CODES), (
                f"{alternative!r} ({reason}) matches no code Chromium defines"
            )


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("NAME_NOT_RESOLVED", FailureReason.DNS),
        ("DNS_TIMED_OUT", FailureReason.DNS),
        ("CONNECTION_REFUSED", FailureReason.CONNECT_REFUSED),
        ("ADDRESS_UNREACHABLE", FailureReason.CONNECT_REFUSED),
        ("UNSAFE_PORT", FailureReason.CONNECT_REFUSED),
        ("CONNECTION_TIMED_OUT", FailureReason.CONNECT_TIMEOUT),
        ("TIMED_OUT", FailureReason.TIMEOUT),
        ("CERT_AUTHORITY_INVALID", FailureReason.TLS),
        ("CERT_DATE_INVALID", FailureReason.TLS),
        ("SSL_PROTOCOL_ERROR", FailureReason.TLS),
        # Most specific first: a proxy's certificate is TLS, not a proxy connection error.
        ("PROXY_CERTIFICATE_INVALID", FailureReason.TLS),
        ("PROXY_CONNECTION_FAILED", FailureReason.CONNECT_REFUSED),
        # ...and the certificate manager's own troubles are the probe's, not the target's.
        ("CERT_DATABASE_CHANGED", FailureReason.INTERNAL),
        ("CONNECTION_RESET", FailureReason.CONNECTION_RESET),
        ("EMPTY_RESPONSE", FailureReason.CONNECTION_RESET),
        ("CONTENT_LENGTH_MISMATCH", FailureReason.CONNECTION_RESET),
        ("HTTP2_PROTOCOL_ERROR", FailureReason.CONNECTION_RESET),
        ("HTTP2_PING_FAILED", FailureReason.TIMEOUT),
        ("TOO_MANY_REDIRECTS", FailureReason.TOO_MANY_REDIRECTS),
        ("INVALID_HTTP_RESPONSE", FailureReason.UNEXPECTED_STATUS),
        ("ABORTED", FailureReason.UNEXPECTED_STATUS),
        ("INVALID_AUTH_CREDENTIALS", FailureReason.HTTP_4XX),
        ("CONTENT_DECODING_FAILED", FailureReason.INVALID_ENCODING),
        ("RESPONSE_BODY_TOO_BIG_TO_DRAIN", FailureReason.BODY_TOO_LARGE),
        ("INVALID_URL", FailureReason.EXTRACTION_FAILED),
        ("BLOCKED_BY_CLIENT", FailureReason.INTERNAL),
        ("CACHE_MISS", FailureReason.INTERNAL),
    ],
)
def test_the_reason_of_each_kind_of_code(code: str, reason: FailureReason) -> None:
    assert classify_net_error(code) == reason


def test_a_code_chromium_adds_later_has_no_rule_and_the_kind_falls_back() -> None:
    assert classify_net_error("SOMETHING_NEW_IN_CHROMIUM_200") is None
