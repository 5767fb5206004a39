"""A step's `expect:` and `extract:` compiled into rules that judge one response.

Each assertion returns an AssertionOutcome carrying the real value, so a failure
explains itself: `length(items) = 0, expected > 0`. `judge_response` applies them all
and gives the step's Verdict. It is a pure function of (rules, status, headers, body), so
it gives the same verdict on the event loop and in a worker process (probe/judging.py
decides where): on the loop it runs under an InlineBudget and raises OverBudget rather
than hold the loop longer than the budget allows.

Every kind judges this way. The HTTP kinds judge a status, headers and body; a kind that
receives no HTTP response judges what it has as a body without a status (`status` None):
a WebSocket message, or the JSON document it made of what it received (a DNS answer, a
certificate, a TCP exchange's lines; `document_body`), which `expect.json` and `extract`
read as they read an HTTP body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping

from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps import ContentExpect, Expect, ExpectBase, JsonAssertion, JsonExpect
from uptime_probe.config.types import (
    CpuBudget,
    LinearPattern,
    Query,
    QueryTooSlow,
    StatusMatcher,
)
from uptime_probe.probe.classify import classify_status
from uptime_probe.probe.model import AssertionOutcome, FailureReason, Status

_ACTUAL_LIMIT = 120


class InvalidJson(Exception):
    """The body had to be JSON and was not."""


class OverBudget(Exception):
    """Judging this response on the event loop would cost more than its InlineBudget."""


@dataclass(frozen=True, slots=True)
class InlineBudget:
    """What judging on the event loop may cost: text and JSON work is linear in the body's
    size (so a size bounds it), a JMESPath query is not (so a clock does)."""

    text_bytes: int
    json_bytes: int
    cpu: CpuBudget  # of the event loop's thread


Progress = Callable[[str], None]

# The headers of what a kind that speaks no HTTP judges: none.
NO_HEADERS: MultiMapping[str] = CIMultiDictProxy(CIMultiDict())


def document_body(document: Any) -> bytes:
    """The JSON text a kind's document is judged as (and a failure's sample shows)."""
    return json.dumps(document, ensure_ascii=False, indent=1).encode()


@dataclass(slots=True)
class ResponseView:
    """What a step's assertions may look at; the body is decoded at most once, lazily.

    With a budget, every costly look first checks that it fits, and raises OverBudget
    when it does not; `progress` hears what is about to be judged, for a deadline's message.
    """

    status: int | None  # None: not an HTTP response (see the module docstring)
    headers: MultiMapping[str]
    body: bytes
    budget: InlineBudget | None = None
    progress: Progress | None = None
    _text: str | None = field(default=None, repr=False)
    _json: Any = field(default=None, repr=False)
    _json_error: str | None = field(default=None, repr=False)
    _json_done: bool = field(default=False, repr=False)
    _judging: str = field(default="", repr=False)

    def judging(self, what: str) -> None:
        """Tell `progress` what is judged from now on."""
        self._judging = what
        if self.progress is not None:
            self.progress(what)

    @property
    def text(self) -> str:
        if self._text is None:
            if self.budget is not None and len(self.body) > self.budget.text_bytes:
                raise OverBudget
            self._text = self.body.decode("utf-8", errors="replace")
        return self._text

    def json(self) -> Any:
        if not self._json_done:
            if self.budget is not None and len(self.body) > self.budget.json_bytes:
                raise OverBudget
            judging = self._judging
            self.judging(f"parsing the body as JSON ({len(self.body)} bytes)")
            self._json_done = True
            try:
                if not self.body.strip():
                    raise ValueError("empty body")
                self._json = json.loads(self.body.decode("utf-8"))
            except UnicodeDecodeError as exc:
                self._json_error = f"body is not UTF-8 ({exc.reason} at byte {exc.start})"
            except RecursionError:
                self._json_error = "JSON nested too deeply to parse"
            except ValueError as exc:  # json's messages quote no part of the body
                self._json_error = f"body is not valid JSON: {str(exc)[:200]}"
            self.judging(judging)
        if self._json_error is not None:
            raise InvalidJson(self._json_error)
        return self._json

    def search(self, query: Query) -> Any:
        """A JMESPath query's value in the JSON body (InvalidJson when it is not JSON)."""
        document = self.json()
        if self.budget is None:
            return query.search(document)
        try:
            return query.search(document, budget=self.budget.cpu)
        except QueryTooSlow:
            raise OverBudget from None

    def within_budget(self) -> None:
        if self.budget is not None and self.budget.cpu.check():
            raise OverBudget


@dataclass(frozen=True, slots=True)
class Assertion:
    """One expectation, and what it judges in words: "judging the body against json ..."."""

    judging: str
    check: Callable[[ResponseView], AssertionOutcome]

    def __call__(self, response: ResponseView) -> AssertionOutcome:
        return self.check(response)


@dataclass(frozen=True, slots=True)
class ResponseRules:
    """Everything that judges a step's response: its expect and extract, compiled."""

    status: StatusMatcher | None  # None: the kind has no HTTP status to judge
    assertions: tuple[Assertion, ...]
    extract: tuple[tuple[str, Query], ...]
    redact: Redactor  # the check's: every cut of a target's text redacts first
    # How many of `assertions`, from the first, judge the head alone (`expect.headers`).
    head: int = 0
    # Judged in a worker process whatever the response (a JSON schema: see `_schema`).
    always_off_loop: bool = False

    @property
    def needs_body(self) -> bool:
        return bool(self.assertions or self.extract)

    @property
    def judges_body(self) -> bool:
        """Whether an assertion reads the body (a stream keeps its answer only then)."""
        return len(self.assertions) > self.head


@dataclass(frozen=True, slots=True)
class Verdict:
    """A step's judgement of one response: plain data, picklable, the same wherever made."""

    status: Status
    reason: str | None
    message: str
    assertions: tuple[AssertionOutcome, ...] = ()
    extracted: Mapping[str, str] = field(default_factory=dict)


def show(value: Any, redact: Redactor) -> str:
    """A short, JSON-like rendering of a real value for messages, secrets redacted before
    it is cut (a cut first could keep all but the end of one)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        text = repr(value)
    return redact.cut(text, _ACTUAL_LIMIT)


def compile_rules(
    expect: ExpectBase, extract: Mapping[str, Query], redact: Redactor
) -> ResponseRules:
    status = expect.status if isinstance(expect, Expect) else None
    return ResponseRules(
        status,
        compile_expect(expect, redact=redact),
        tuple(extract.items()),
        redact,
        head=len(expect.headers) if isinstance(expect, Expect) else 0,
        always_off_loop=isinstance(expect, ContentExpect) and expect.schema_document is not None,
    )


def compile_expect(expect: ExpectBase, *, redact: Redactor) -> tuple[Assertion, ...]:
    """Everything after the status line, in the order a person would check it: the
    header expectations first (ResponseRules.head counts them), then the body's.

    Each kind's `expect` has the parts it can judge (config/steps/parts.py): headers (the
    HTTP kinds), body text (an HTTP body, a WebSocket message), JSON assertions (any body,
    or the document a kind made of what it received).
    """
    compiled: list[Assertion] = []
    if isinstance(expect, Expect):
        for name, pattern in expect.headers.items():
            compiled.append(_header(name, pattern, redact))
    if isinstance(expect, ContentExpect):
        for needle in expect.body_contains:
            compiled.append(_body_contains(needle, present=True))
        for needle in expect.body_not_contains:
            compiled.append(_body_contains(needle, present=False))
        if expect.body_matches is not None:
            compiled.append(_body_matches(expect.body_matches))
    if isinstance(expect, JsonExpect):
        for assertion in expect.json_assertions:
            compiled.append(_json(assertion, redact))
    if isinstance(expect, ContentExpect) and expect.schema_document is not None:
        compiled.append(_schema(expect.schema_document, redact))
    return tuple(compiled)


def judge_response(
    rules: ResponseRules,
    status: int | None,
    headers: MultiMapping[str],
    body: bytes,
    *,
    budget: InlineBudget | None = None,
    progress: Progress | None = None,
) -> Verdict:
    """Status, then assertions in order, then extraction; the first critical failure decides.

    With a budget, raises OverBudget as soon as the rest would not fit in it. Without an
    HTTP status (`status` None, rules without one), judging starts at the assertions, and
    a pass says "as expected": the kind says better what passed.
    """
    if rules.status is not None:
        assert status is not None, "rules with a status judge HTTP responses"
        if status not in rules.status:
            return _wrong_status(rules, status, headers)
    view = ResponseView(status, headers, body, budget, progress)
    outcomes: list[AssertionOutcome] = []
    try:
        for assertion in rules.assertions:
            view.within_budget()
            view.judging(assertion.judging)
            outcomes.append(assertion(view))
        extracted = _extract(rules.extract, view, rules.redact)
    except InvalidJson as exc:
        return Verdict(Status.DOWN, FailureReason.INVALID_JSON, str(exc), tuple(outcomes))
    return _decide(status, outcomes, extracted)


def judge_head(rules: ResponseRules, status: int, headers: MultiMapping[str]) -> Verdict:
    """What the response head alone decides: the status, then the header expectations.

    For a kind that reads a long body as it comes (a stream): it fails on a wrong head
    at once, and judges the whole response with `judge_response` once the body is in.
    Header values are bounded by `max_header_size`, so this is cheap on the loop.
    """
    if rules.status is not None and status not in rules.status:
        return _wrong_status(rules, status, headers)
    view = ResponseView(status, headers, b"")
    return _decide(status, [check(view) for check in rules.assertions[: rules.head]], {})


def _wrong_status(rules: ResponseRules, status: int, headers: MultiMapping[str]) -> Verdict:
    """The down verdict for a status the step does not expect."""
    reason = classify_status(status)
    retry = headers.get("Retry-After")
    hint = (
        f" (Retry-After: {rules.redact.cut(retry, 20)})"
        if reason is FailureReason.RATE_LIMITED and retry
        else ""
    )
    return Verdict(Status.DOWN, reason, f"HTTP {status}, expected {rules.status}{hint}")


def _decide(
    status: int | None, outcomes: Sequence[AssertionOutcome], extracted: dict[str, str] | str
) -> Verdict:
    failed = [o for o in outcomes if not o.passed]
    critical = next((o for o in failed if o.severity == "critical"), None)
    if critical is not None:
        return Verdict(Status.DOWN, critical.reason, critical.message, tuple(outcomes))
    if isinstance(extracted, str):
        return Verdict(Status.DOWN, FailureReason.EXTRACTION_FAILED, extracted, tuple(outcomes))
    if failed:
        message = "; ".join(o.message for o in failed)
        # The cause of the degradation (model.DEGRADED_REASON): the first warning's reason.
        return Verdict(Status.DEGRADED, failed[0].reason, message, tuple(outcomes), extracted)
    passed = "as expected" if status is None else f"HTTP {status}"
    return Verdict(Status.UP, None, passed, tuple(outcomes), extracted)


def _extract(
    extract: Sequence[tuple[str, Query]], view: ResponseView, redact: Redactor
) -> dict[str, str] | str:
    """Extracted values, or a message saying which one could not be found."""
    values: dict[str, str] = {}
    for name, query in extract:
        view.within_budget()
        view.judging(f"extracting {name} with `{query}`")
        try:
            value = view.search(query)
        except (InvalidJson, OverBudget):
            raise
        except Exception as exc:  # JMESPath raises several types for runtime type errors
            return f"extract {name}: query {query} failed ({redact.cut(str(exc), 100)})"
        if value is None:
            return f"extract {name}: query {query} found nothing"
        values[name] = value if isinstance(value, str) else json.dumps(value)
    return values


def _outcome(
    subject: str,
    expectation: str,
    passed: bool,
    actual: str,
    reason: str = FailureReason.ASSERTION_FAILED,
    severity: str = "critical",
) -> AssertionOutcome:
    return AssertionOutcome(subject, expectation, passed, actual, reason, severity)


def _header(name: str, pattern: LinearPattern, redact: Redactor) -> Assertion:
    def check(response: ResponseView) -> AssertionOutcome:
        # A header sent several times (Set-Cookie) passes when any of its values matches,
        # as blackbox_exporter judges it.
        values = response.headers.getall(name, [])
        passed = any(pattern.found_in(value) for value in values)
        actual = show(values[0] if len(values) == 1 else values or None, redact)
        return _outcome(f"header {name}", f"to match {pattern.pattern!r}", passed, actual)

    return Assertion(f"judging the header {name} against `{pattern.pattern}`", check)


def _body_contains(needle: str, *, present: bool) -> Assertion:
    expectation = f"{'to contain' if present else 'not to contain'} {needle!r}"

    def check(response: ResponseView) -> AssertionOutcome:
        found = needle in response.text
        actual = f"{len(response.body)} bytes {'with' if found else 'without'} it"
        return _outcome("body", expectation, found is present, actual)

    return Assertion(f"judging the body {expectation}", check)


def _body_matches(pattern: LinearPattern) -> Assertion:
    def check(response: ResponseView) -> AssertionOutcome:
        passed = pattern.found_in(response.text)
        actual = f"{len(response.body)} bytes {'matching' if passed else 'not matching'}"
        return _outcome("body", f"to match {pattern.pattern!r}", passed, actual)

    return Assertion(f"judging the body against body_matches `{pattern.pattern}`", check)


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
        return isinstance(value, str) and bool(expected.found_in(value))
    if operator == "exists":
        return (value is not None) is expected
    if operator == "empty":
        return (value in (None, "", [], {})) is expected
    raise AssertionError(f"operator {operator!r} is validated at load")


def _json(assertion: JsonAssertion, redact: Redactor) -> Assertion:
    subject, expectation = str(assertion.query), assertion.expectation()
    reason = assertion.reason or FailureReason.ASSERTION_FAILED
    query, operator, expected = assertion.query, assertion.operator, assertion.expected

    def check(response: ResponseView) -> AssertionOutcome:
        try:
            value = response.search(query)
        except (InvalidJson, OverBudget):
            raise
        except Exception as exc:  # JMESPathError, and RecursionError from to_string on deep JSON
            # e.g. length(items) when items is missing: the query fails, so does the assertion.
            # JMESPath quotes the value it choked on: the target's text.
            detail = redact.cut(str(exc).splitlines()[0], 100) if str(exc) else type(exc).__name__
            actual = f"query error ({detail})"
            return AssertionOutcome(subject, expectation, False, actual, reason, assertion.severity)
        passed = _compare(operator, value, expected)
        return AssertionOutcome(
            subject, expectation, passed, show(value, redact), reason, assertion.severity
        )

    return Assertion(f"judging the body against json `{query}`", check)


def _schema(document: Any, redact: Redactor) -> Assertion:
    # Imported by the first schema compiled: jsonschema and what it brings (referencing,
    # rpds, attrs) are 2-3 MB that a config without `json_schema` never needs.
    import jsonschema
    import referencing.exceptions

    validator = jsonschema.validators.validator_for(document)(document)

    def check(response: ResponseView) -> AssertionOutcome:
        if response.budget is not None:
            # Never on the loop: jsonschema's `pattern` is Python's backtracking `re`, and
            # keywords such as `uniqueItems` are quadratic in the body.
            raise OverBudget
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
            f"{where}: {redact.cut(error.message, 150)}",  # quotes the target's value
            FailureReason.SCHEMA_MISMATCH,
        )

    return Assertion("judging the body against its JSON schema", check)
