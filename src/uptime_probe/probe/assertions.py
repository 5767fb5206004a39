"""A step's `expect:` compiled into callables that judge one response.

Each callable returns an AssertionOutcome carrying the real value, so a failure
explains itself: `length(items) = 0, expected > 0`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import referencing.exceptions

from uptime_probe.config.steps import (
    ContentExpect,
    Expect,
    ExpectBase,
    JsonAssertion,
    JsonExpect,
)
from uptime_probe.probe.model import AssertionOutcome, FailureReason

_ACTUAL_LIMIT = 120


class InvalidJson(Exception):
    """The body had to be JSON and was not."""


@dataclass(slots=True)
class ResponseView:
    """What a step's assertions may look at; the body is decoded at most once, lazily."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    _text: str | None = field(default=None, repr=False)
    _json: Any = field(default=None, repr=False)
    _json_error: str | None = field(default=None, repr=False)
    _json_done: bool = field(default=False, repr=False)

    @classmethod
    def of_document(cls, document: Any) -> ResponseView:
        """A view of a JSON document a kind made of what it received (a DNS answer, a
        certificate): JSON assertions and extraction read it; its text is the sample."""
        body = json.dumps(document, ensure_ascii=False, indent=1).encode()
        return cls(0, {}, body, _json=document, _json_done=True)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.body.decode("utf-8", errors="replace")
        return self._text

    def json(self) -> Any:
        if not self._json_done:
            self._json_done = True
            try:
                if not self.body.strip():
                    raise ValueError("empty body")
                self._json = json.loads(self.body.decode("utf-8"))
            except UnicodeDecodeError as exc:
                self._json_error = f"body is not UTF-8 ({exc.reason} at byte {exc.start})"
            except RecursionError:
                self._json_error = "JSON nested too deeply to parse"
            except ValueError as exc:
                self._json_error = f"body is not valid JSON: {str(exc)[:200]}"
        if self._json_error is not None:
            raise InvalidJson(self._json_error)
        return self._json


Assertion = Callable[[ResponseView], AssertionOutcome]


def show(value: Any) -> str:
    """A short, JSON-like rendering of a real value for messages."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= _ACTUAL_LIMIT else text[: _ACTUAL_LIMIT - 3] + "..."


def compile_expect(expect: ExpectBase) -> tuple[Assertion, ...]:
    """Everything after the status line, in the order a person would check it.

    Each kind's `expect` has the parts it can judge: headers (HTTP), body text (HTTP,
    WebSocket messages), JSON assertions (any body or document).
    """
    compiled: list[Assertion] = []
    if isinstance(expect, Expect):
        for name, pattern in expect.headers.items():
            compiled.append(_header(name, pattern.pattern, pattern.search))
    if isinstance(expect, ContentExpect):
        for needle in expect.body_contains:
            compiled.append(_body_contains(needle, present=True))
        for needle in expect.body_not_contains:
            compiled.append(_body_contains(needle, present=False))
        if expect.body_matches is not None:
            compiled.append(_body_matches(expect.body_matches.pattern, expect.body_matches.search))
    if isinstance(expect, JsonExpect):
        for assertion in expect.json_assertions:
            compiled.append(_json(assertion))
    if isinstance(expect, ContentExpect) and expect.schema_document is not None:
        compiled.append(_schema(expect.schema_document))
    return tuple(compiled)


def _outcome(
    subject: str,
    expectation: str,
    passed: bool,
    actual: str,
    reason: str = FailureReason.ASSERTION_FAILED,
    severity: str = "critical",
) -> AssertionOutcome:
    return AssertionOutcome(subject, expectation, passed, actual, reason, severity)


def _header(name: str, pattern: str, search: Callable[[str], Any]) -> Assertion:
    def check(response: ResponseView) -> AssertionOutcome:
        value = response.headers.get(name)
        passed = value is not None and search(value) is not None
        return _outcome(f"header {name}", f"to match {pattern!r}", passed, show(value))

    return check


def _body_contains(needle: str, *, present: bool) -> Assertion:
    def check(response: ResponseView) -> AssertionOutcome:
        found = needle in response.text
        expectation = f"{'to contain' if present else 'not to contain'} {needle!r}"
        actual = f"{len(response.body)} bytes {'with' if found else 'without'} it"
        return _outcome("body", expectation, found is present, actual)

    return check


def _body_matches(pattern: str, search: Callable[[str], Any]) -> Assertion:
    def check(response: ResponseView) -> AssertionOutcome:
        passed = search(response.text) is not None
        actual = f"{len(response.body)} bytes {'matching' if passed else 'not matching'}"
        return _outcome("body", f"to match {pattern!r}", passed, actual)

    return check


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON means it: `true` is not `1` and `false` is not `0` (Python says they are).

    Recursion is bounded by the expected value's depth, which comes from the config.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[key], b[key]) for key in a)
    return bool(a == b)


def _compare(operator: str, value: Any, expected: Any) -> bool:
    """One JSON operator; a value of the wrong kind fails rather than raising."""
    if operator == "equals":
        return json_equal(value, expected)
    if operator == "not_equals":
        return not json_equal(value, expected)
    if operator in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return bool(
            {
                "gt": value > expected,
                "gte": value >= expected,
                "lt": value < expected,
                "lte": value <= expected,
            }[operator]
        )
    if operator == "contains":
        if isinstance(value, str):
            return str(expected) in value
        if isinstance(value, list):
            return any(json_equal(item, expected) for item in value)
        if isinstance(value, dict):
            # Keys are strings: `contains` on an object asks for a key.
            return isinstance(expected, str) and expected in value
        return False
    if operator == "matches":
        return isinstance(value, str) and expected.search(value) is not None
    if operator == "exists":
        return (value is not None) is expected
    if operator == "empty":
        return (value in (None, "", [], {})) is expected
    raise AssertionError(f"operator {operator!r} is validated at load")


def _json(assertion: JsonAssertion) -> Assertion:
    subject, expectation = str(assertion.query), assertion.expectation()
    reason = assertion.reason or FailureReason.ASSERTION_FAILED
    query, operator, expected = assertion.query, assertion.operator, assertion.expected

    def check(response: ResponseView) -> AssertionOutcome:
        document = response.json()
        try:
            value = query.search(document)
        except Exception as exc:  # JMESPathError, and RecursionError from to_string on deep JSON
            # e.g. length(items) when items is missing: the query fails, so does the assertion.
            detail = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
            actual = f"query error ({detail})"
            return AssertionOutcome(subject, expectation, False, actual, reason, assertion.severity)
        passed = _compare(operator, value, expected)
        return AssertionOutcome(
            subject, expectation, passed, show(value), reason, assertion.severity
        )

    return check


def _schema(document: Any) -> Assertion:
    validator = jsonschema.validators.validator_for(document)(document)

    def check(response: ResponseView) -> AssertionOutcome:
        try:
            error = jsonschema.exceptions.best_match(validator.iter_errors(response.json()))
        except RecursionError:
            # A recursive schema ($ref "#") walks as deep as the body nests.
            return _outcome(
                "body",
                "to match the JSON schema",
                False,
                "nested too deeply to validate",
                FailureReason.SCHEMA_MISMATCH,
            )
        except referencing.exceptions.Unresolvable as exc:
            # A $ref the loader cannot see is broken: it is met only on the path it guards.
            return _outcome(
                "body",
                "to match the JSON schema",
                False,
                f"schema $ref cannot be resolved ({str(exc).splitlines()[0][:100]})",
                FailureReason.SCHEMA_MISMATCH,
            )
        if error is None:
            return _outcome("body", "to match the JSON schema", True, "valid")
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return _outcome(
            "body",
            "to match the JSON schema",
            False,
            f"{where}: {error.message[:150]}",
            FailureReason.SCHEMA_MISMATCH,
        )

    return check
