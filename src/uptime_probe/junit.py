"""`uptime-probe check --junit FILE`: the results as JUnit XML, the test report CI reads.

One `<testsuite>` for the run, one `<testcase>` per check (its name; `classname`
`uptime-probe.<location>`, so two locations' reports do not merge). A down check carries a
`<failure>`: `type` is its reason, `message` the reason in plain words and the step, the
text the step, reason, HTTP status and message one per line. A degraded check passes (as
the exit code says) with a note in `<system-out>`; every check lists its steps there.

The shape is the one Jenkins (JUnit and xUnit plugins), GitLab and GitHub test reporters
read: `tests/junit/junit.xsd` holds it, and the tests validate every report against it.
Messages were redacted by the engine (they never hold a secret); characters XML 1.0
cannot carry (a target's terminal escapes, NUL) become U+FFFD, so a hostile answer cannot
make the report unreadable.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime

from uptime_probe.probe.model import CheckResult, Status, describe_reason

SUITE_NAME = "uptime-probe check"
# Everything XML 1.0 allows in text (its `Char` production); the rest is replaced.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.3f}"


def _steps(result: CheckResult) -> str:
    lines = []
    for step in result.steps:
        fields = [step.name, step.status.value]
        if step.status is not Status.UP and step.reason:
            fields.append(step.reason)
        if step.http_status:
            fields.append(f"HTTP {step.http_status}")
        fields.append(f"{_seconds(step.duration_seconds)}s")
        lines.append("  " + "  ".join(fields))
    return "steps:\n" + "\n".join(lines) if lines else "steps: none ran"


def _details(result: CheckResult, reason: str) -> str:
    lines = [
        f"step: {result.failed_step or '-'}",
        f"reason: {reason} ({describe_reason(reason, result.http_status)})",
    ]
    if result.http_status:
        lines.append(f"http_status: {result.http_status}")
    if result.retries:
        lines.append(f"retries: {result.retries} before this try")
    lines.append(f"message: {result.message}")
    return "\n".join(lines)


def _testcase(result: CheckResult, classname: str) -> ET.Element:
    case = ET.Element(
        "testcase",
        name=_text(result.check),
        classname=classname,
        time=_seconds(result.duration_seconds),
    )
    reason = result.shown_reason
    out = [_steps(result)]
    if result.status is Status.DOWN:
        reason = reason or "internal"
        words = describe_reason(reason, result.http_status)
        at = f" at step {result.failed_step}" if result.failed_step else ""
        failure = ET.SubElement(case, "failure", type=reason, message=_text(f"{words}{at}"))
        failure.text = _text(_details(result, reason))
    elif result.status is Status.DEGRADED and reason:
        out.insert(0, "degraded: " + _details(result, reason).replace("\n", "\n  "))
    ET.SubElement(case, "system-out").text = _text("\n".join(out))
    return case


def as_junit(
    results: Sequence[CheckResult],
    *,
    location: str,
    hostname: str | None = None,
    at: float | None = None,
) -> bytes:
    """The report: UTF-8 bytes with an XML declaration."""
    failures = sum(1 for result in results if result.status is Status.DOWN)
    # The suite took as long as its slowest check: they run at once.
    elapsed = _seconds(max((result.duration_seconds for result in results), default=0.0))
    started = at if at is not None else min((r.started_at for r in results), default=0.0)
    counts = {"tests": str(len(results)), "failures": str(failures), "errors": "0"}
    root = ET.Element("testsuites", {"name": "uptime-probe", "time": elapsed, **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": SUITE_NAME,
            **counts,
            "skipped": "0",
            "time": elapsed,
            "timestamp": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": _text(hostname or socket.gethostname()),
        },
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="location", value=location)
    classname = f"uptime-probe.{location}"
    suite.extend(_testcase(result, classname) for result in results)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
