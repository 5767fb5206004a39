"""What every notifier says about an incident: one `Notice`, and the plain words built from it.

A `Notice` is everything a request builder needs, fixed at the moment it is built: the
incident as last seen, why it is being sent (opened, resolved, reminder), when, and where
the status page is. Builders are pure functions of a `Notice` and a notifier's config, so
the same incident reads the same in Slack, in a webhook and in Alertmanager, and every
body is pinned by a table test.

Nothing here reads configuration secrets: the incident's messages were redacted by the
engine before they reached the incident tracker, and no builder adds a secret to a body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from uptime_probe import __version__
from uptime_probe.config.model import ServerConfig
from uptime_probe.probe.model import describe_reason
from uptime_probe.state.incidents import Incident

USER_AGENT = f"uptime-probe/{__version__}"


class NoticeKind(StrEnum):
    """Why a notification is sent. The incident tracker's UPDATED and COUNTED never are."""

    OPENED = "opened"
    RESOLVED = "resolved"
    REMINDER = "reminder"


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    incident: Incident
    sent_at: float  # unix seconds; builders use it instead of reading the clock
    status_page: str  # the check's anchor on the status page
    delivery_id: str  # the same for every retry of one notification
    status_page_title: str = "Service status"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request a notifier sends: built once, sent as is on every attempt."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def encode_json(payload: Any) -> bytes:
    """The exact bytes sent (and signed): compact, UTF-8, stable key order as built."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# --- the status page link --------------------------------------------------------------------

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - matched, never bound


def status_page_base(server: ServerConfig, hostname: str) -> str:
    """`server.public_url`, else `http://<listen>/` with a wildcard host named by `hostname`."""
    if server.public_url:
        return server.public_url
    host, _, port = server.listen.rpartition(":")
    host = host.strip("[]")
    if host in _WILDCARD_HOSTS:
        host = hostname
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def check_link(base: str, check: str) -> str:
    """The check's anchor on the status page: `https://status.example.com/#check-<name>`."""
    parts = urlsplit(base)
    path = parts.path or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, f"check-{check}"))


# --- times and durations as a person reads them ----------------------------------------------


def iso_time(at: float) -> str:
    """RFC 3339 in UTC with milliseconds: `2025-12-03T06:10:00.000Z`."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clock_time(at: float, now: float) -> str:
    """`06:10 UTC` on the day of `now`, `2 Dec 06:10 UTC` on another day."""
    moment = datetime.fromtimestamp(at, UTC)
    if moment.date() == datetime.fromtimestamp(now, UTC).date():
        return f"{moment:%H:%M} UTC"
    return f"{moment.day} {moment:%b %H:%M} UTC"


def human_duration(seconds: float) -> str:
    """`45s`, `45m`, `1h 5m`, `2d 3h`: the largest unit and the next, rounded down."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    first = next((i for i, (value, _unit) in enumerate(parts) if value), len(parts) - 1)
    shown = [f"{value}{unit}" for value, unit in parts[first : first + 2] if value]
    return " ".join(shown) or "0s"


# --- the words -------------------------------------------------------------------------------


def reason_text(notice: Notice) -> str:
    """The current reason in plain words; the first one too when it was different.

    `empty history (HTTP 200)`, or `a server error status (HTTP 503) (first: no response
    before the deadline)`. The HTTP status belongs to the latest failing run, so it is
    attached to the latest reason only.
    """
    incident = notice.incident
    current = incident.last_reason or incident.first_reason or "internal"
    words = describe_reason(current, incident.last_http_status)
    first = incident.first_reason
    if first and first != current:
        words = f"{words} (first: {describe_reason(first)})"
    return words


def failing_step(incident: Incident) -> str | None:
    """Where the journey first broke; `failing_steps` lists every step that failed since."""
    return incident.failing_steps[0] if incident.failing_steps else None


def _at_step(incident: Incident) -> str:
    steps = incident.failing_steps
    if not steps:
        return ""
    label = "step" if len(steps) == 1 else "steps"
    return f" at {label} {', '.join(steps)}"


def down_for(notice: Notice) -> float:
    """Seconds from the first failed run to the resolution (or to now, while open)."""
    incident = notice.incident
    end = incident.resolved_at if incident.resolved_at is not None else notice.sent_at
    return end - incident.first_failure_at


def headline(notice: Notice) -> str:
    """One line a person understands at a glance, in every notifier's words."""
    incident = notice.incident
    since = clock_time(incident.first_failure_at, notice.sent_at)
    what = f"{reason_text(notice)}{_at_step(incident)}"
    if notice.kind is NoticeKind.RESOLVED:
        return (
            f"{incident.check} recovered after {human_duration(down_for(notice))}"
            f" — it was down since {since}: {what}."
        )
    if notice.kind is NoticeKind.REMINDER:
        return (
            f"{incident.check} is still DOWN after {human_duration(down_for(notice))}"
            f" — {what}, since {since}."
        )
    return f"{incident.check} is DOWN — {what}, since {since}."


def reason_counts(incident: Incident) -> str:
    """`empty_history: 12, timeout: 1`, most frequent first."""
    ranked = sorted(incident.reasons.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{reason}: {count}" for reason, count in ranked)


def description(notice: Notice) -> str:
    """A few lines of detail under the headline, for Alertmanager and the webhook."""
    incident = notice.incident
    lines = [headline(notice)]
    if incident.first_message:
        lines.append(f"First failure: {incident.first_message}")
    if incident.reasons:
        lines.append(f"Failed runs by reason: {reason_counts(incident)}")
    if incident.held_back:
        lines.append(
            f"Holding back (their alerts wait on this one): {', '.join(incident.held_back)}"
        )
    lines.append(
        f"Opened {iso_time(incident.opened_at)}"
        f" ({human_duration(incident.time_to_detect)} after the first failed run)"
        f" from location {incident.location}."
    )
    lines.append(f"Status page: {notice.status_page}")
    return "\n".join(lines)
