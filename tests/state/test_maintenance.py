"""MaintenanceCalendar: which checks a window covers and when it is open, through the real
config model (cron in a time zone, across DST, overlapping openings, API windows)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from uptime_probe.config.model import Config
from uptime_probe.state.maintenance import MaintenanceCalendar, Window, WindowSource

STEP = {"name": "fetch", "request": {"url": "http://127.0.0.1:9/"}}
PARIS = ZoneInfo("Europe/Paris")


def at(*fields: int, zone: Any = UTC) -> float:
    return datetime(*fields, tzinfo=zone).timestamp()


def calendar(*windows: dict[str, Any]) -> MaintenanceCalendar:
    config = Config.model_validate(
        {
            "checks": [
                {"name": "checkout", "tags": ["payments"], "steps": [STEP]},
                {"name": "refunds", "tags": ["payments", "backoffice"], "steps": [STEP]},
                {"name": "search", "steps": [STEP]},
            ],
            "maintenance": list(windows),
        }
    )
    found = MaintenanceCalendar()
    found.apply(config)
    return found


ONE_OFF = {
    "name": "db_upgrade",
    "checks": ["search"],
    "tags": ["payments"],
    "start": "2030-06-01T02:00:00+02:00",
    "end": "2030-06-01T04:00:00+02:00",
}
WEEKLY = {
    "name": "weekly",
    "tags": ["backoffice"],
    "cron": "0 3 * * 0",
    "duration": "1h",
    "timezone": "Europe/Paris",
}


def test_a_window_covers_its_checks_and_every_check_with_one_of_its_tags() -> None:
    found = calendar(ONE_OFF, WEEKLY)
    windows = {w.name: found.covers(w) for w in found.windows()}
    assert windows == {
        "db_upgrade": {"search", "checkout", "refunds"},
        "weekly": {"refunds"},
    }


@pytest.mark.parametrize(
    ("moment", "open_for"),
    [
        (at(2030, 6, 1, 1, 59, 59, zone=PARIS), set()),
        (at(2030, 6, 1, 2, 0, zone=PARIS), {"search", "checkout", "refunds"}),  # start included
        (at(2030, 6, 1, 3, 59, 59, zone=PARIS), {"search", "checkout", "refunds"}),
        (at(2030, 6, 1, 4, 0, zone=PARIS), set()),  # end excluded
    ],
)
def test_a_one_off_window_is_open_from_start_to_end(moment: float, open_for: set[str]) -> None:
    assert set(calendar(ONE_OFF).checks_in_maintenance(moment)) == open_for


@pytest.mark.parametrize(
    ("moment", "end"),
    [
        # Sunday 2 June 2030, 03:00 Paris (summer time, UTC+2) for an hour.
        (at(2030, 6, 2, 3, 0, zone=PARIS), at(2030, 6, 2, 4, 0, zone=PARIS)),
        (at(2030, 6, 2, 3, 59, zone=PARIS), at(2030, 6, 2, 4, 0, zone=PARIS)),
        (at(2030, 6, 2, 4, 0, zone=PARIS), None),
        (at(2030, 6, 2, 2, 59, zone=PARIS), None),
        (at(2030, 6, 3, 3, 30, zone=PARIS), None),  # a Monday
        # Winter time (UTC+1): the cron is read in Paris, so still 03:00 there.
        (at(2030, 12, 1, 3, 30, zone=PARIS), at(2030, 12, 1, 4, 0, zone=PARIS)),
        (at(2030, 12, 1, 3, 30), None),  # 03:30 UTC is 04:30 in Paris: closed
    ],
)
def test_a_cron_window_opens_in_its_time_zone(moment: float, end: float | None) -> None:
    found = calendar(WEEKLY).open_for("refunds", moment)
    assert (found.end if found is not None else None) == end
    assert calendar(WEEKLY).open_for("checkout", moment) is None  # not covered


def test_a_cron_window_on_the_night_clocks_go_forward_lasts_its_real_duration() -> None:
    # 31 March 2030: Paris goes from 02:00 to 03:00. A 2h window at 01:30 lasts 2 real hours.
    found = calendar(
        {"name": "n", "checks": ["search"], "cron": "30 1 * * *", "duration": "2h",
         "timezone": "Europe/Paris"}
    )  # fmt: skip
    opening = found.open_for("search", at(2030, 3, 31, 1, 45, zone=PARIS))
    assert opening is not None
    assert opening.end - opening.start == 7200
    assert datetime.fromtimestamp(opening.end, PARIS).hour == 4  # 01:30 + 2h, an hour skipped


def test_overlapping_openings_merge_into_one() -> None:
    # Every 10 minutes for 15 minutes: open all along, and the end is the merged one.
    found = calendar({"name": "n", "checks": ["search"], "cron": "*/10 1 * * *", "duration": "15m"})
    moment = at(2030, 6, 1, 1, 22)
    opening = found.open_for("search", moment)
    assert opening is not None
    assert opening.end == at(2030, 6, 1, 2, 5)  # the 01:50 firing + 15 minutes
    assert found.open_for("search", at(2030, 6, 1, 2, 5)) is None


def test_upcoming_openings_are_listed_in_order_within_the_horizon() -> None:
    found = calendar(ONE_OFF, WEEKLY)
    since = at(2030, 5, 30)
    openings = found.openings(since, 7 * 86400)
    assert [(o.window.name, o.start) for o in openings] == [
        ("db_upgrade", at(2030, 6, 1, 2, 0, zone=PARIS)),
        ("weekly", at(2030, 6, 2, 3, 0, zone=PARIS)),
    ]
    # An opening in progress is listed first; one that ended is not.
    during = found.openings(at(2030, 6, 1, 3, 0, zone=PARIS), 2 * 86400)
    assert [o.window.name for o in during] == ["db_upgrade", "weekly"]
    assert found.openings(at(2030, 6, 1, 5, 0, zone=PARIS), 3600) == []


def test_api_windows_cover_by_the_current_config_and_are_forgotten_once_over() -> None:
    found = calendar()
    window = Window(
        id="api-1", name="deploy", source=WindowSource.API, tags=("payments",),
        start=1000.0, end=2000.0,
    )  # fmt: skip
    found.put(window)
    assert set(found.checks_in_maintenance(1500.0)) == {"checkout", "refunds"}
    assert found.open_for("search", 1500.0) is None
    found.forget_before(1999.0)
    assert found.api_window("api-1") == window
    found.forget_before(2000.0)
    assert found.api_window("api-1") is None
    assert found.checks_in_maintenance(1500.0) == {}


def test_the_longest_open_window_wins() -> None:
    found = calendar(ONE_OFF)
    moment = at(2030, 6, 1, 3, 0, zone=PARIS)
    longer = Window(
        id="api-2", name="deploy", source=WindowSource.API, checks=("search",),
        start=moment - 60, end=moment + 86400,
    )  # fmt: skip
    found.put(longer)
    opening = found.open_for("search", moment)
    assert opening is not None
    assert opening.window.name == "deploy"
    checkout = found.open_for("checkout", moment)
    assert checkout is not None
    assert checkout.window.name == "db_upgrade"
