"""The overall banner, as a table: the checks' states in, the headline out."""

from __future__ import annotations

import pytest

from uptime_probe.probe.model import Status
from uptime_probe.web.status import Banner, derive_banner

CODES = {"U": Status.UP, "G": Status.DEGRADED, "D": Status.DOWN, "-": None}


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        # Nothing known yet: no claim either way.
        ("", Banner.PENDING),
        ("-", Banner.PENDING),
        ("---", Banner.PENDING),
        # None down, none degraded.
        ("U", Banner.OPERATIONAL),
        ("UUU", Banner.OPERATIONAL),
        ("UU-", Banner.OPERATIONAL),  # a check still waiting for its first run is not down
        # Some degraded, none down.
        ("G", Banner.DEGRADED),
        ("UUG", Banner.DEGRADED),
        ("GGG", Banner.DEGRADED),
        # Some down, not most.
        ("UD", Banner.PARTIAL_OUTAGE),  # half is not most
        ("UUD", Banner.PARTIAL_OUTAGE),
        ("GGD", Banner.PARTIAL_OUTAGE),  # down outranks degraded
        ("UUGD", Banner.PARTIAL_OUTAGE),
        ("UUDD", Banner.PARTIAL_OUTAGE),
        # All or most down.
        ("D", Banner.MAJOR_OUTAGE),
        ("DD", Banner.MAJOR_OUTAGE),
        ("UDD", Banner.MAJOR_OUTAGE),
        ("GDD", Banner.MAJOR_OUTAGE),
        ("UUDDD", Banner.MAJOR_OUTAGE),
        # "Most" is counted among checks with a state.
        ("D--", Banner.MAJOR_OUTAGE),
        ("UD-", Banner.PARTIAL_OUTAGE),
    ],
)
def test_banner_table(states: str, expected: Banner) -> None:
    assert derive_banner(CODES[code] for code in states) is expected


@pytest.mark.parametrize(
    ("banner", "text"),
    [
        (Banner.OPERATIONAL, "All systems operational"),
        (Banner.DEGRADED, "Degraded performance"),
        (Banner.PARTIAL_OUTAGE, "Partial outage"),
        (Banner.MAJOR_OUTAGE, "Major outage"),
        (Banner.PENDING, "Waiting for the first results"),
    ],
)
def test_banner_words(banner: Banner, text: str) -> None:
    assert banner.text == text
