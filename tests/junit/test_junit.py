"""The JUnit report of `uptime-probe check --junit`: any text a target sends stays a
readable report, valid against the schema CI systems read (junit.xsd here)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from uptime_probe.junit import as_junit
from uptime_probe.probe.model import CheckResult, Status, StepResult

SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "junit.xsd")
T0 = 1_764_756_000.0  # 2025-12-03 10:00:00 UTC
# Every character XML 1.0 cannot carry that a target could put in a message, and the
# ones that need escaping.
HOSTILE = "".join(chr(c) for c in range(0x20) if c not in (9, 10, 13)) + "\x7f\ufffe\uffff"
MARKUP = '<testcase name="x"/> & \' " ]]> <!-- --> <![CDATA[ x ]]>'


def down(check: str, message: str, step: str = "conversations") -> CheckResult:
    failed = StepResult(step, Status.DOWN, "empty_history", message, 0.25, http_status=200)
    return CheckResult(check, Status.DOWN, "empty_history", step, message, T0, 0.25, (failed,))


def report(*results: CheckResult) -> ET.Element:
    document = as_junit(results, location="eu-west", hostname="probe-1", at=T0)
    SCHEMA.validate(document.decode())
    return ET.fromstring(document)


def as_xml_reads_it(text: str, *, content: bool = True) -> str:
    """What a reader gets back: XML 1.0's forbidden characters as U+FFFD; in text content
    (not in an attribute, where they are escaped) line ends as LF."""
    allowed = "".join(
        ch
        if ch in "\t\n\r"
        or "\x20" <= ch <= "\ud7ff"
        or "\ue000" <= ch <= "\ufffd"
        or ch >= "\U00010000"
        else "\ufffd"
        for ch in text
    )
    return allowed.replace("\r\n", "\n").replace("\r", "\n") if content else allowed


@pytest.mark.parametrize(
    "text", [HOSTILE, MARKUP, "🙂 é ☃ \t tab\r\nline"], ids=["controls", "markup", "unicode"]
)
def test_any_message_makes_a_valid_report_read_back_as_sent(text: str) -> None:
    root = report(down(f"check {text}", f"conversations: {text}"))
    (case,) = root.iter("testcase")
    assert case.get("name") == as_xml_reads_it(f"check {text}", content=False)
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("type") == "empty_history"
    assert (failure.text or "").endswith(f"message: conversations: {as_xml_reads_it(text)}")


def test_counts_times_and_names() -> None:
    up = CheckResult("chat_load", Status.UP, None, None, "ok", T0, 0.1234)
    slow_step = StepResult("page", Status.DEGRADED, "slow", "took 3.000s", 3.0, http_status=200)
    slow = CheckResult(
        "history", Status.DEGRADED, None, "page", "page: took 3.000s", T0, 3.0, (slow_step,)
    )
    root = report(up, slow, down("tasks", "create: HTTP 503"))
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("time")) == (
        "3",
        "1",
        "0",
        "3.000",
    )
    (suite,) = root
    assert suite.get("timestamp") == "2025-12-03T10:00:00"
    assert suite.get("hostname") == "probe-1"
    assert [(c.get("name"), c.get("classname"), c.get("time")) for c in suite.iter("testcase")] == [
        ("chat_load", "uptime-probe.eu-west", "0.123"),
        ("history", "uptime-probe.eu-west", "3.000"),
        ("tasks", "uptime-probe.eu-west", "0.250"),
    ]
    assert [c.find("failure") is None for c in suite.iter("testcase")] == [True, True, False]


def test_no_checks_is_still_a_report() -> None:
    root = report()
    assert root.get("tests") == "0"
