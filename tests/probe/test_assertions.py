"""Every `expect:` kind, compiled as the loader compiles it, judged against one response."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.conftest import ServeApp
from uptime_probe.probe.assertions import ResponseView, Verdict, judge_response
from uptime_probe.probe.model import Status
from uptime_probe.probe.plan import StepPlan

from .conftest import Target
from .journeys import plan_of, run, step

DOCUMENT = {
    "items": [1, 2, 3],
    "total": 3,
    "ratio": 0.5,
    "name": "chat-api",
    "status": "completed",
    "nested": {"a": 1},
    "none": None,
    "flag": False,
    "blank": "",
    "empty_list": [],
    "empty_object": {},
}
BODY = json.dumps(DOCUMENT).encode()
HEADERS = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json", "X-Version": "1.2.3"}))


def step_plan(expect: dict[str, Any], base_dir: Path | None = None, **fields: Any) -> StepPlan:
    return plan_of(step("http://127.0.0.1/", expect=expect, **fields), base_dir=base_dir).steps[0]


def judge(plan: StepPlan, status: int, headers: Any, body: bytes) -> Verdict:
    return judge_response(plan.judge.rules, status, headers, body)


def outcome_of(assertion: dict[str, Any], body: bytes = BODY) -> Any:
    plan = step_plan({"json": [assertion]})
    (check,) = plan.judge.rules.assertions
    return check(ResponseView(200, HEADERS, body))


# (query, operator, expected) -> passed, and the message a person reads.
OPERATORS = [
    ("status", "equals", "completed", True, "status = \"completed\", expected == 'completed'"),
    ("total", "equals", 4, False, "total = 3, expected == 4"),
    ("items", "equals", [1, 2, 3], True, "items = [1, 2, 3], expected == [1, 2, 3]"),
    ("nested", "equals", {"a": 2}, False, "nested = {\"a\": 1}, expected == {'a': 2}"),
    ("flag", "equals", False, True, "flag = false, expected == False"),
    ("flag", "equals", 0, False, "flag = false, expected == 0"),
    ("total", "equals", 3.0, True, "total = 3, expected == 3.0"),
    ("total", "not_equals", True, True, "total = 3, expected != True"),
    ("status", "not_equals", "failed", True, "status = \"completed\", expected != 'failed'"),
    ("status", "not_equals", "completed", False, "status = \"completed\", expected != 'completed'"),
    ("total", "gt", 2, True, "total = 3, expected > 2"),
    ("total", "gt", 3, False, "total = 3, expected > 3"),
    ("ratio", "gt", 0.25, True, "ratio = 0.5, expected > 0.25"),
    ("name", "gt", 1, False, 'name = "chat-api", expected > 1'),
    ("flag", "gt", -1, False, "flag = false, expected > -1"),
    ("missing", "gt", 0, False, "missing = null, expected > 0"),
    ("total", "gte", 3, True, "total = 3, expected >= 3"),
    ("total", "gte", 4, False, "total = 3, expected >= 4"),
    ("total", "lt", 4, True, "total = 3, expected < 4"),
    ("total", "lt", 3, False, "total = 3, expected < 3"),
    ("total", "lte", 3, True, "total = 3, expected <= 3"),
    ("total", "lte", 2.5, False, "total = 3, expected <= 2.5"),
    ("name", "contains", "chat", True, "name = \"chat-api\", expected to contain 'chat'"),
    ("name", "contains", "web", False, "name = \"chat-api\", expected to contain 'web'"),
    ("items", "contains", 2, True, "items = [1, 2, 3], expected to contain 2"),
    ("items", "contains", True, False, "items = [1, 2, 3], expected to contain True"),
    ("items", "contains", 9, False, "items = [1, 2, 3], expected to contain 9"),
    ("nested", "contains", "a", True, "nested = {\"a\": 1}, expected to contain 'a'"),
    ("nested", "contains", [1], False, 'nested = {"a": 1}, expected to contain [1]'),
    ("total", "contains", 3, False, "total = 3, expected to contain 3"),
    ("name", "matches", "^chat-", True, "name = \"chat-api\", expected to match '^chat-'"),
    ("name", "matches", "^api", False, "name = \"chat-api\", expected to match '^api'"),
    ("total", "matches", "3", False, "total = 3, expected to match '3'"),
    ("total", "exists", True, True, "total = 3, expected exists"),
    ("missing", "exists", True, False, "missing = null, expected exists"),
    ("missing", "exists", False, True, "missing = null, expected not exists"),
    ("flag", "exists", False, False, "flag = false, expected not exists"),
    ("empty_list", "empty", True, True, "empty_list = [], expected empty"),
    ("empty_object", "empty", True, True, "empty_object = {}, expected empty"),
    ("blank", "empty", True, True, 'blank = "", expected empty'),
    ("none", "empty", True, True, "none = null, expected empty"),
    ("items", "empty", True, False, "items = [1, 2, 3], expected empty"),
    ("flag", "empty", True, False, "flag = false, expected empty"),
    ("items", "empty", False, True, "items = [1, 2, 3], expected not empty"),
    ("empty_list", "empty", False, False, "empty_list = [], expected not empty"),
    ("length(items)", "equals", 3, True, "length(items) = 3, expected == 3"),
]


@pytest.mark.parametrize(
    ("query", "operator", "expected", "passed", "message"),
    [pytest.param(*case, id=f"{case[1]}-{case[0]}-{case[3]}") for case in OPERATORS],
)
def test_json_operator(
    query: str, operator: str, expected: Any, passed: bool, message: str
) -> None:
    outcome = outcome_of({"query": query, operator: expected})
    assert (outcome.passed, outcome.message) == (passed, message)
    assert outcome.reason == "assertion_failed"
    assert outcome.severity == "critical"


def test_every_operator_has_a_passing_and_a_failing_row() -> None:
    from uptime_probe.config.steps import JSON_OPERATORS

    covered = {(operator, passed) for _, operator, _, passed, _ in OPERATORS}
    assert covered == {(op, p) for op in JSON_OPERATORS for p in (True, False)}


@pytest.mark.parametrize(
    ("query", "actual"),
    [
        ("length(missing)", "query error (In function length(), invalid type for value: None"),
        ("to_number(name) > `1`", "null"),
        ("sort(@)", "query error (In function sort(), invalid type for value:"),
        ("abs(name)", "query error (In function abs(), invalid type for value:"),
    ],
)
def test_query_that_errors_fails_with_the_assertions_reason(query: str, actual: str) -> None:
    outcome = outcome_of(
        {"query": query, "gt": 0, "reason": "empty_history", "severity": "warning"}
    )
    assert not outcome.passed
    assert outcome.actual.startswith(actual)
    assert (outcome.reason, outcome.severity) == ("empty_history", "warning")


def test_query_error_on_deeply_nested_json_is_an_assertion_failure() -> None:
    body = ("[" * 700 + "]" * 700).encode()
    outcome = outcome_of({"query": "to_string(@)", "contains": "x"}, body)
    assert not outcome.passed


# --- headers and body -----------------------------------------------------------------------

EXPECTATIONS = [
    ({"headers": {"Content-Type": "^application/json$"}}, True, None),
    ({"headers": {"content-type": "json"}}, True, None),
    (
        {"headers": {"X-Version": r"^2\."}},
        False,
        "header X-Version = \"1.2.3\", expected to match '^2\\\\.'",
    ),
    ({"headers": {"X-Missing": "."}}, False, "header X-Missing = null, expected to match '.'"),
    ({"body_contains": "chat-api"}, True, None),
    ({"body_contains": ["chat-api", "completed"]}, True, None),
    (
        {"body_contains": "<title>"},
        False,
        f"body = {len(BODY)} bytes without it, expected to contain '<title>'",
    ),
    ({"body_not_contains": "error"}, True, None),
    (
        {"body_not_contains": "completed"},
        False,
        f"body = {len(BODY)} bytes with it, expected not to contain 'completed'",
    ),
    ({"body_matches": r'"total": \d+'}, True, None),
    (
        {"body_matches": "^<html"},
        False,
        f"body = {len(BODY)} bytes not matching, expected to match '^<html'",
    ),
]


@pytest.mark.parametrize(("expect", "passed", "message"), EXPECTATIONS)
def test_header_and_body_assertions(
    expect: dict[str, Any], passed: bool, message: str | None
) -> None:
    attempt = judge(step_plan(expect), 200, HEADERS, BODY)
    if passed:
        assert (attempt.status, attempt.message) == (Status.UP, "HTTP 200")
    else:
        assert (attempt.status, attempt.reason, attempt.message) == (
            Status.DOWN,
            "assertion_failed",
            message,
        )


def test_first_critical_failure_decides_and_all_outcomes_are_kept() -> None:
    expect = {
        "body_contains": "nope",
        "json": [{"query": "total", "equals": 0, "reason": "wrong_total"}],
    }
    attempt = judge(step_plan(expect), 200, HEADERS, BODY)
    assert attempt.reason == "assertion_failed"
    assert [o.passed for o in attempt.assertions] == [False, False]


def test_status_is_checked_before_any_assertion() -> None:
    attempt = judge(step_plan({"status": 200, "body_contains": "x"}), 503, HEADERS, b"")
    assert (attempt.reason, attempt.message, attempt.assertions) == (
        "http_5xx",
        "HTTP 503, expected 200",
        (),
    )


# --- invalid JSON ---------------------------------------------------------------------------

DEEP = 100_000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"", "body is not valid JSON: empty body", id="empty"),
        pytest.param(b"  \r\n", "body is not valid JSON: empty body", id="whitespace"),
        pytest.param(
            b'\xff\xfe{"a": 1}', "body is not UTF-8 (invalid start byte at byte 0)", id="non-utf8"
        ),
        pytest.param(b'{"items": [1, 2', "body is not valid JSON: Expecting", id="truncated"),
        pytest.param(b"<html>oops</html>", "body is not valid JSON: Expecting value", id="html"),
        pytest.param(
            b"[" * DEEP + b"]" * DEEP, "JSON nested too deeply to parse", id="100000-deep"
        ),
        pytest.param(
            b'{"a":' * DEEP + b"1" + b"}" * DEEP,
            "JSON nested too deeply to parse",
            id="deep-objects",
        ),
    ],
)
@pytest.mark.parametrize(
    "expect",
    [
        pytest.param({"json": [{"query": "items", "exists": True}]}, id="json-assertion"),
        pytest.param({}, id="extract-only"),
    ],
)
def test_invalid_json_is_invalid_json(body: bytes, message: str, expect: dict[str, Any]) -> None:
    extract = {} if expect else {"value": "items"}
    attempt = judge(step_plan(expect, extract=extract), 200, HEADERS, body)
    assert (attempt.status, attempt.reason) == (Status.DOWN, "invalid_json")
    assert attempt.message.startswith(message)


def test_body_not_needed_as_json_is_not_parsed() -> None:
    attempt = judge(step_plan({"body_contains": "oops"}), 200, HEADERS, b"<html>oops</html>")
    assert attempt.status is Status.UP


# --- JSON schema ----------------------------------------------------------------------------


@pytest.fixture
def recursive_schema(tmp_path: Path) -> Path:
    schema = {"anyOf": [{"type": "array", "items": {"$ref": "#"}}, {"type": "integer"}]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    return tmp_path


@pytest.mark.parametrize(
    ("body", "passed", "actual"),
    [
        pytest.param(b"[1, [2, [3]]]", True, "valid", id="valid"),
        pytest.param(b'[1, ["x"]]', False, "1/0: 'x' is not valid under any", id="invalid"),
        pytest.param(
            b"[" * 600 + b"]" * 600, False, "nested too deeply to validate", id="too-deep"
        ),
    ],
)
def test_json_schema(recursive_schema: Path, body: bytes, passed: bool, actual: str) -> None:
    plan = step_plan({"json_schema": "schema.json"}, base_dir=recursive_schema)
    attempt = judge(plan, 200, HEADERS, body)
    (outcome,) = attempt.assertions
    assert outcome.passed is passed
    assert outcome.actual.startswith(actual)
    if not passed:
        assert attempt.reason == "schema_mismatch"


async def test_deep_json_from_a_real_server_is_never_internal(
    target: Target, recursive_schema: Path
) -> None:
    deep = step(target.url + "/deep", expect={"json": [{"query": "@", "exists": True}]})
    result = await run(plan_of(deep))
    assert (result.reason, result.message) == (
        "invalid_json",
        "fetch: JSON nested too deeply to parse",
    )
    shallow = step(target.url + "/deep?depth=400", expect={"json_schema": "schema.json"})
    result = await run(plan_of(shallow, base_dir=recursive_schema))
    assert result.reason == "schema_mismatch"


# --- secrets: redacted before any cut -------------------------------------------------------

SECRET = "tok-Zq9xVal42AbCdEf"


def no_part_of_the_secret(text: str) -> bool:
    """Not even 5 characters in a row of it (a cut made first kept all but the last one)."""
    return not any(SECRET[i : i + 5] in text for i in range(len(SECRET) - 4))


def secret_plan(expect: dict[str, Any], base_dir: Path, **fields: Any) -> StepPlan:
    (base_dir / "schema.json").write_text(
        json.dumps({"type": "object", "properties": {"v": {"type": "integer"}}})
    )
    document = step("http://127.0.0.1/", expect=expect, **fields)
    return plan_of(document, secrets={"token": SECRET}, base_dir=base_dir).steps[0]


def json_body(value: str) -> bytes:
    return json.dumps({"v": value}).encode()


# What a target answers, given the text it was made to carry, and what the step expects:
# each puts the target's text in a message that is cut (its limit in the id).
CUT_MESSAGES = [
    pytest.param(
        lambda text: (200, {}, json_body(text)),
        {"json": [{"query": "v", "equals": "x"}]},
        {},
        id="json-value-120",
    ),
    pytest.param(
        lambda text: (200, {"X-Echo": text}, b"{}"),
        {"headers": {"X-Echo": "^never"}},
        {},
        id="header-value-120",
    ),
    pytest.param(
        lambda text: (200, {}, json_body(text)),
        {"json": [{"query": "abs(v)", "gt": 0}]},
        {},
        id="jmespath-error-100",
    ),
    pytest.param(
        lambda text: (200, {}, json_body(text)),
        {"json_schema": "schema.json"},
        {},
        id="schema-error-150",
    ),
    pytest.param(
        lambda text: (429, {"Retry-After": text}, b""),
        {},
        {},
        id="retry-after-20",
    ),
    pytest.param(
        lambda text: (200, {}, json_body(text)),
        {},
        {"extract": {"n": "abs(v)"}},
        id="extraction-error-100",
    ),
]


@pytest.mark.parametrize(("answer", "expect", "fields"), CUT_MESSAGES)
def test_a_message_quoting_the_target_is_redacted_before_it_is_cut(
    answer: Any, expect: dict[str, Any], fields: dict[str, Any], tmp_path: Path
) -> None:
    plan = secret_plan(expect, tmp_path, **fields)
    for padding in range(0, 160):
        status, headers, body = answer("." * padding + SECRET + "," * 40)
        view = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json", **headers}))
        attempt = judge(plan, status, view, body)
        assert attempt.status is Status.DOWN, attempt
        shown = [attempt.message, *(o.actual for o in attempt.assertions)]
        assert all(no_part_of_the_secret(text) for text in shown), (padding, shown)
        # The target's text really reaches the message (up to the cut).
        assert "." * min(padding, 10) in attempt.message, (padding, attempt.message)


# --- repeated headers: any value may match (blackbox_exporter's rule) -----------------------

COOKIES = CIMultiDictProxy(
    CIMultiDict(
        [
            ("Set-Cookie", "a=1; Domain=other.org; Path=/"),
            ("Set-Cookie", "b=2; Domain=.example.com; Path=/"),
        ]
    )
)


@pytest.mark.parametrize(
    ("pattern", "passed", "actual"),
    [
        pytest.param(r"Domain=\.example\.com", True, None, id="second-value-matches"),
        pytest.param(r"^a=1", True, None, id="first-value-matches"),
        pytest.param(
            r"Domain=\.nowhere\.net",
            False,
            '["a=1; Domain=other.org; Path=/", "b=2; Domain=.example.com; Path=/"]',
            id="no-value-matches",
        ),
    ],
)
def test_a_repeated_header_passes_when_any_value_matches(
    pattern: str, passed: bool, actual: str | None
) -> None:
    verdict = judge(step_plan({"headers": {"set-cookie": pattern}}), 200, COOKIES, BODY)
    (outcome,) = verdict.assertions
    assert outcome.passed is passed
    if actual is not None:
        assert outcome.actual == actual
        assert verdict.message == f"header set-cookie = {actual}, expected to match {pattern!r}"


async def test_repeated_headers_from_a_real_server(serve_app: ServeApp) -> None:
    async def cookies(request: web.Request) -> web.Response:
        response = web.Response(text="ok")
        response.headers.add("Set-Cookie", "session=x; Domain=other.org; Path=/")
        response.headers.add("Set-Cookie", "region=eu; Domain=.example.com; Path=/")
        return response

    app = web.Application()
    app.router.add_get("/cookies", cookies)
    url = await serve_app(app) + "/cookies"

    second = await run(
        plan_of(step(url, expect={"headers": {"Set-Cookie": r"Domain=\.example\.com"}}))
    )
    first = await run(plan_of(step(url, expect={"headers": {"Set-Cookie": "^session="}})))
    neither = await run(plan_of(step(url, expect={"headers": {"Set-Cookie": "Domain=nowhere"}})))

    assert (second.status, first.status) == ("up", "up"), (second, first)
    assert (neither.status, neither.reason) == ("down", "assertion_failed")
    assert neither.message == (
        'fetch: header Set-Cookie = ["session=x; Domain=other.org; Path=/", '
        "\"region=eu; Domain=.example.com; Path=/\"], expected to match 'Domain=nowhere'"
    )
