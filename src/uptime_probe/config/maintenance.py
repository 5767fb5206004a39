"""The config model of maintenance windows: one-off (`start`/`end`) or recurring (`cron`).

Cron expressions are parsed by cronsim (Healthchecks.io's parser), not by hand, and not
by APScheduler's CronTrigger although it is installed: `config/` must not import
APScheduler (docs/architecture.md), and CronTrigger numbers weekdays from Monday = 0
where cron means Sunday. cronsim is typed, has no dependencies, follows Debian cron
(day-of-month OR day-of-week, DST like cron), and rejects at parse time a day that no
month of the expression has, so a window that can never occur is a load error.

When each window is open is computed in `state/maintenance.py`; this module only says
what a valid window is.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BeforeValidator, WithJsonSchema, model_validator

from uptime_probe.config.base import Model
from uptime_probe.config.types import Duration, Slug

# Where a cron expression is first tried from: any instant works, the rules are periodic.
_PROBE_FROM = datetime(2000, 1, 1, tzinfo=UTC)


def cron_expression(value: Any) -> str:
    """A standard five-field cron expression that fires at least once, normalised."""
    if not isinstance(value, str):
        raise ValueError(f"expected a cron expression string, got {type(value).__name__}")
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {value!r} must have 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}"
        )
    text = " ".join(fields)
    try:
        schedule = CronSim(text, _PROBE_FROM)
    except CronSimError as exc:
        if _impossible_day(fields):
            raise ValueError(
                f"cron {value!r} never fires: no month it names has day {fields[2]}"
            ) from None
        raise ValueError(f"invalid cron {value!r}: {str(exc).lower()}") from None
    try:
        next(schedule)
    except StopIteration:  # cronsim looks 50 years ahead
        raise ValueError(f"cron {value!r} never fires") from None
    return text


def _impossible_day(fields: list[str]) -> bool:
    """cronsim says "Bad day-of-month" both for a malformed field and for a day no month
    of the expression has (`30 2`): valid with every month, it is the second case."""
    try:
        CronSim(" ".join([*fields[:3], "*", fields[4]]), _PROBE_FROM)
    except CronSimError:
        return False
    return True


def instant(value: Any) -> datetime:
    """ISO 8601 with an offset. YAML reads an unquoted timestamp as a datetime already."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"invalid time {value!r}: use ISO 8601 with an offset, like "
                "2025-12-03T06:00:00+01:00 or 2025-12-03T05:00:00Z"
            ) from None
    if not isinstance(value, datetime):
        what = "a date without a time" if isinstance(value, date) else type(value).__name__
        raise ValueError(f"expected a time with an offset, got {what}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"time {value.isoformat()} has no offset: write it as "
            f"{value.isoformat()}+00:00 (or the offset it is meant in)"
        )
    return value


def timezone_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a time zone name, got {type(value).__name__}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name like 'UTC' or 'Europe/Paris'"
        ) from None
    return value


CronExpression = Annotated[
    str,
    BeforeValidator(cron_expression),
    WithJsonSchema(
        {"type": "string", "description": 'A five-field cron expression, like "0 2 * * 0".'}
    ),
]
Instant = Annotated[
    datetime,
    BeforeValidator(instant),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "description": "ISO 8601 with an offset."}
    ),
]
TimeZoneName = Annotated[
    str,
    BeforeValidator(timezone_name),
    WithJsonSchema({"type": "string", "description": "An IANA time zone, like Europe/Paris."}),
]


class MaintenanceConfig(Model):
    """A window during which the checks it covers keep running but alert nobody."""

    name: Slug
    description: str = ""
    checks: list[Slug] = []
    tags: list[Slug] = []
    # One-off: ISO 8601 with an offset (`2025-12-03T06:00:00+01:00`).
    start: Instant | None = None
    end: Instant | None = None
    # Recurring: opens at each time `cron` fires in `timezone`, for `duration`.
    cron: CronExpression | None = None
    duration: Duration | None = None
    timezone: TimeZoneName | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceConfig:
        one_off = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration is not None
        if one_off and recurring:
            raise ValueError(
                "a window is one-off (start and end) or recurring (cron and duration), not both"
            )
        if not one_off and not recurring:
            raise ValueError(
                "a window needs start and end (one-off) or cron and duration (recurring)"
            )
        if one_off and (self.start is None or self.end is None):
            raise ValueError("a one-off window needs both start and end")
        if recurring and (self.cron is None or self.duration is None):
            raise ValueError("a recurring window needs both cron and duration")
        if one_off and self.timezone is not None:
            raise ValueError("timezone is for cron windows: start and end carry their own offset")
        if not self.checks and not self.tags:
            raise ValueError("a window needs checks or tags to cover")
        return self

    @property
    def recurring(self) -> bool:
        return self.cron is not None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")
