"""`uptime-probe incidents`: the incident timeline, as a first draft of a postmortem.

The Markdown is pasted where it will be rendered (an issue, a wiki), so every text that
came from a target, a message or a response sample, goes in code: a code span or a fenced
block shows its content as it is. `<!--` would otherwise hide the rest of the document,
`[x](http://...)` and `![x](...)` would become a link and an image loaded by every reader.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from uptime_probe.probe.artifacts import ArtifactStore, kept_trace
from uptime_probe.state.incidents import Incident, TimelineEntry
from uptime_probe.state.store import Store


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    if minutes or hours:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def _code(text: str) -> str:
    """A code span on one line: no HTML, link, image or emphasis in it is rendered, and a
    line break would end the list item or the table row. Its fence is longer than any run
    of backticks inside; a space pads content that starts or ends with one (CommonMark
    strips one space from each end)."""
    flat = " ".join(text.splitlines())
    if not flat.strip():
        return "-"
    fence = "`" * (max((len(run) for run in re.findall("`+", flat)), default=0) + 1)
    pad = " " if flat[0] in "` " or flat[-1] in "` " else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _cell(text: str) -> str:
    """A code span in a table cell: GFM splits cells on `|` before reading code spans, so
    each pipe is escaped (`\\|` shows as `|`, in a code span too)."""
    return _code(text).replace("|", "\\|")


def _when(entry: TimelineEntry) -> str:
    if entry.until is not None and entry.until != entry.at:
        return f"{_clock(entry.at)} to {_clock(entry.until)}"
    return _clock(entry.at)


def _fence(text: str) -> str:
    """A code block that the sample cannot break out of."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def incident_markdown(incident: Incident, now: float, files: ArtifactStore | None = None) -> str:
    reasons = ", ".join(
        f"{_code(reason)} x{count}"
        for reason, count in sorted(incident.reasons.items(), key=lambda kv: -kv[1])
    )
    steps = ", ".join(_code(step) for step in incident.failing_steps) or "-"
    end = incident.resolved_at if incident.resolved_at is not None else now
    lines = [
        f"## {incident.check}: {incident.first_reason} ({incident.status.value})",
        "",
        f"- Check: {_code(incident.check)} (location {_code(incident.location)})",
        f"- Opened: {_clock(incident.opened_at)}"
        + (
            f"; resolved {_clock(incident.resolved_at)}"
            if incident.resolved_at is not None
            else "; still open"
        )
        + f" (duration {_span(end - incident.opened_at)})",
        f"- Detected {_span(incident.time_to_detect)} after the first failed run "
        f"({_clock(incident.first_failure_at)})",
        f"- Reasons seen: {reasons}",
        f"- Failing steps: {steps}",
        f"- First failure: {_code(incident.first_message)}",
    ]
    if incident.artifact:
        lines.append(f"- Screenshot of the latest failing run: `artifacts/{incident.artifact}`")
    trace = kept_trace(incident.artifact, files)
    if trace is not None:
        lines.append(
            f"- Its Playwright trace: `artifacts/{trace}` (`npx playwright show-trace FILE`)"
        )
    if incident.response_sample:
        lines += [
            "- First response sample (secrets redacted):",
            "",
            _fence(incident.response_sample),
        ]
    lines += ["", "| time | status | update |", "| --- | --- | --- |"]
    for entry in incident.timeline:
        lines.append(f"| {_when(entry)} | {entry.status.value} | {_cell(entry.message)} |")
    return "\n".join(lines) + "\n"


def incident_json(incident: Incident, files: ArtifactStore | None = None) -> dict[str, Any]:
    """The incident JSON contract; `trace` names the trace beside the screenshot only when
    `files` holds it (a daemon with `keep_traces: false`, or a trace that could not be
    saved, has none)."""
    return {
        "id": incident.id,
        "check": incident.check,
        "location": incident.location,
        "status": incident.status.value,
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "first_failure_at": incident.first_failure_at,
        "time_to_detect_seconds": round(incident.time_to_detect, 3),
        "first_reason": incident.first_reason,
        "first_message": incident.first_message,
        "response_sample": incident.response_sample,
        "artifact": incident.artifact,
        "trace": kept_trace(incident.artifact, files),
        "reasons": incident.reasons,
        "failing_steps": list(incident.failing_steps),
        "held_back": list(incident.held_back),
        "timeline": [
            {
                "at": e.at,
                "status": e.status.value,
                "message": e.message,
                "kind": e.kind.value,
                "count": e.count,
                "until": e.until,
            }
            for e in incident.timeline
        ],
    }


def render_incidents(
    incidents: Sequence[Incident], fmt: str, now: float, files: ArtifactStore | None = None
) -> str:
    if fmt == "json":
        return json.dumps([incident_json(i, files) for i in incidents], indent=2) + "\n"
    if not incidents:
        return "No incidents in this period.\n"
    header = f"# Incidents ({len(incidents)})\n\n"
    return header + "\n".join(incident_markdown(i, now, files) for i in reversed(incidents))


async def print_incidents(
    data_dir: Path,
    since_seconds: float,
    fmt: str,
    check: str | None,
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """The report on `out`; a problem on `err` (stderr), so `--format json` stays JSON."""
    err = err or sys.stderr
    store = Store(data_dir)
    if not store.path.is_file():
        print(f"no history in {data_dir}/ (start the daemon with --data-dir {data_dir})", file=err)
        return 1
    now = time.time()
    try:
        await store.open(readonly=True)
        try:
            incidents = await store.incidents(since=now - since_seconds, check=check)
        finally:
            await store.close()
    except sqlite3.Error as exc:
        print(f"cannot read the history in {store.path}: {exc}", file=err)
        return 1
    # Where the daemon keeps them (`app.Daemon`); read only, to say which traces exist.
    files = ArtifactStore(data_dir / "artifacts", keep=0)
    out.write(render_incidents(incidents, fmt, now, files))
    return 0
