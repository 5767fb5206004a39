"""run_check against real aiohttp servers on 127.0.0.1: one scenario per failure reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from cryptography import x509

from tests.hostile.dns import StaticResolver
from uptime_probe.probe import Status

from .conftest import Target
from .journeys import plan_of, run, step

ServeApp = Callable[..., Awaitable[str]]
# How late a deadline may be noticed on a loaded machine; far below "never".
MARGIN = 1.0


# --- one GET, one reason -------------------------------------------------------------------

SINGLE_REQUEST_CASES = [
    pytest.param("/status/500", {}, "http_5xx", "HTTP 500, expected 2xx", id="http_5xx"),
    pytest.param("/status/503", {"expect": {"status": 200}}, "http_5xx", "HTTP 503", id="503"),
    pytest.param("/status/404", {}, "http_4xx", "HTTP 404, expected 2xx", id="http_4xx"),
    pytest.param(
        "/status/429", {}, "rate_limited", "HTTP 429, expected 2xx (Retry-After: 30)", id="429"
    ),
    pytest.param(
        "/status/200",
        {"expect": {"status": 201}},
        "unexpected_status",
        "HTTP 200, expected 201",
        id="200-when-201",
    ),
    pytest.param(
        "/status/302",
        {"follow_redirects": False, "expect": {"status": 200}},
        "unexpected_status",
        "HTTP 302, expected 200",
        id="redirect-not-followed",
    ),
    pytest.param("/loop", {}, "too_many_redirects", "more than 10 redirects", id="redirect-loop"),
    pytest.param("/chain/10", {}, "up", "", id="10-redirects-are-followed"),
    pytest.param(
        "/chain/11", {}, "too_many_redirects", "more than 10 redirects", id="11-redirects"
    ),
    pytest.param(
        "/bad-json",
        {"expect": {"json": [{"query": "items", "exists": True}]}},
        "invalid_json",
        "body is not valid JSON",
        id="invalid_json",
    ),
    pytest.param(
        "/json/full",
        {"expect": {"json_schema": "schema.json"}},
        "up",
        "HTTP 200",
        id="schema-match",
    ),
    pytest.param(
        "/json/wrong_type",
        {"expect": {"json_schema": "schema.json"}},
        "schema_mismatch",
        "body = items: 'nope' is not of type 'array', expected to match the JSON schema",
        id="schema_mismatch",
    ),
    pytest.param(
        "/huge",
        {"max_body": "64KiB"},
        "body_too_large",
        "body exceeds max_body 65536 bytes (decoded)",
        id="huge-chunked",
    ),
    pytest.param(
        "/huge?declared=1",
        {"max_body": "64KiB"},
        "body_too_large",
        "response declares 4194304 bytes, above max_body 65536",
        id="huge-declared",
    ),
    pytest.param(
        "/gzip-bomb",
        {},
        "body_too_large",
        "body exceeds max_body 1048576 bytes (decoded)",
        id="gzip-bomb",
    ),
    pytest.param(
        "/json/empty",
        {"expect": {"json": [{"query": "length(items)", "gt": 0}]}},
        "assertion_failed",
        "length(items) = 0, expected > 0",
        id="assertion_failed",
    ),
    pytest.param(
        "/json/empty",
        {"expect": {"json": [{"query": "length(items)", "gt": 0, "reason": "empty_history"}]}},
        "empty_history",
        "length(items) = 0, expected > 0",
        id="empty_history",
    ),
    pytest.param(
        "/json/none",
        {"expect": {"json": [{"query": "length(items)", "gt": 0, "reason": "empty_history"}]}},
        "empty_history",
        "length(items) = query error",
        id="query-error-takes-assertion-reason",
    ),
    pytest.param(
        "/json/none",
        {"expect": {"json": [{"query": "length(items)", "gt": 0}]}},
        "assertion_failed",
        "length(items) = query error",
        id="query-error-without-reason",
    ),
    pytest.param(
        "/json/none",
        {"extract": {"task_id": "id"}},
        "extraction_failed",
        "extract task_id: query id found nothing",
        id="extraction_failed",
    ),
    pytest.param(
        "/json/full",
        {"extract": {"count": "length(status)"}, "expect": {"status": 200}},
        "up",
        "HTTP 200",
        id="extraction-of-a-number",
    ),
    pytest.param(
        "/json/full",
        {"extract": {"count": "length(total)"}},
        "extraction_failed",
        "extract count: query length(total) failed",
        id="extraction-query-error",
    ),
    pytest.param(
        "/json/full",
        {"expect": {"headers": {"Content-Type": "^text/html"}}},
        "assertion_failed",
        "header Content-Type = \"application/json; charset=utf-8\", expected to match '^text/html'",
        id="header-mismatch",
    ),
    pytest.param(
        "/json/full",
        {"expect": {"body_contains": "SimChat"}},
        "assertion_failed",
        "expected to contain 'SimChat'",
        id="body_contains",
    ),
    pytest.param("/reset", {}, "connection_reset", "", id="fin-mid-body"),
    pytest.param("/reset?rst=1", {}, "connection_reset", "", id="rst-mid-body"),
]


@pytest.mark.parametrize(("path", "fields", "expected", "message"), SINGLE_REQUEST_CASES)
async def test_single_request_reason(
    target: Target, tmp_path: Path, path: str, fields: dict[str, Any], expected: str, message: str
) -> None:
    schema = {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array"}},
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    plan = plan_of(step(target.url + path, **fields), base_dir=tmp_path)

    result = await run(plan)

    if expected == "up":
        assert result.status is Status.UP, result
        return
    assert (result.status, result.reason, result.failed_step) == (Status.DOWN, expected, "fetch")
    assert message in result.message
    assert result.message.startswith("fetch: ")


async def test_http_status_and_sample_kept_on_failure(target: Target) -> None:
    result = await run(plan_of(step(target.url + "/status/429")))
    failed = result.steps[0]
    assert result.http_status == failed.http_status == 429
    assert failed.response_sample == '{"status": 429}'


async def test_response_sample_is_at_most_2_kib(target: Target) -> None:
    result = await run(plan_of(step(target.url + "/huge", max_body="8MiB", expect={"status": 201})))
    sample = result.steps[0].response_sample
    assert result.reason == "unexpected_status"
    assert sample is not None
    assert len(sample.encode()) == 2048


# --- transport -----------------------------------------------------------------------------


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that is bound (so nobody else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_refused_port_is_connect_refused(refused_url: str) -> None:
    result = await run(plan_of(step(refused_url + "/")))
    assert result.reason == "connect_refused"
    assert "refused" in result.message


@pytest.fixture
def full_backlog_url() -> Iterator[str]:
    """A listener whose accept queue is full: the kernel drops new SYNs, connect hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        with contextlib.ExitStack() as fillers:
            for _ in range(2):
                filler = socket.socket()
                fillers.enter_context(filler)
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(address)
            yield f"http://{address[0]}:{address[1]}"


async def test_connect_that_never_completes_is_connect_timeout(full_backlog_url: str) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run(plan_of(step(full_backlog_url + "/"), timeout="300ms"))
    assert (result.reason, result.failed_step) == ("connect_timeout", "fetch")
    assert "journey deadline 0.3s" in result.message
    assert loop.time() - started < 0.3 + MARGIN


async def test_accepted_but_never_answered_is_timeout_within_the_deadline(target: Target) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run(plan_of(step(target.url + "/hang"), timeout="300ms"))
    elapsed = loop.time() - started
    assert (result.reason, result.failed_step) == ("timeout", "fetch")
    assert result.message == (
        "fetch: no complete response before the deadline (journey deadline 0.3s)"
    )
    assert 0.3 <= result.duration_seconds < 0.3 + MARGIN
    assert elapsed < 0.3 + MARGIN


async def test_deadline_covers_the_whole_journey_not_each_step(target: Target) -> None:
    plan = plan_of(
        step(target.url + "/slow?s=0.3", name="first"),
        step(target.url + "/slow?s=0.3", name="second"),
        timeout="500ms",
    )
    result = await run(plan)
    assert (result.reason, result.failed_step) == ("timeout", "second")
    assert [s.status for s in result.steps] == [Status.UP, Status.DOWN]


async def test_unknown_host_is_dns() -> None:
    resolver = StaticResolver({})
    result = await run(plan_of(step("http://missing.test:8080/")), resolver=resolver)
    assert (result.reason, result.message) == ("dns", "fetch: cannot resolve host 'missing.test'")
    assert resolver.lookups == ["missing.test"]


async def test_resolved_host_records_resolve_time(target: Target) -> None:
    port = target.url.rsplit(":", 1)[1]
    resolver = StaticResolver({"api.test": "127.0.0.1"})
    result = await run(plan_of(step(f"http://api.test:{port}/json/full")), resolver=resolver)
    assert result.status is Status.UP
    assert result.steps[0].timings.resolve > 0


class HangingResolver(StaticResolver):
    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> Any:
        await asyncio.Event().wait()


async def test_resolution_cut_by_the_deadline_is_dns() -> None:
    result = await run(
        plan_of(step("http://slow.test/"), timeout="200ms"), resolver=HangingResolver({})
    )
    assert (result.reason, result.message) == (
        "dns",
        "fetch: DNS lookup of 'slow.test' timed out at the deadline (journey deadline 0.2s)",
    )


# --- TLS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsTarget:
    url: str
    ca: trustme.CA
    not_after: float


@pytest.fixture
async def tls_target(serve_app: ServeApp) -> TlsTarget:
    """An https server with a certificate for 127.0.0.1 from a CA nobody trusts by default."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", ok)
    url = await serve_app(app, ssl_context=context)
    return TlsTarget(url, ca, cert.not_valid_after_utc.timestamp())


async def test_untrusted_certificate_is_tls_and_reports_expiry(tls_target: TlsTarget) -> None:
    result = await run(plan_of(step(tls_target.url + "/")))
    assert (result.reason, result.failed_step) == ("tls", "fetch")
    assert "TLS certificate rejected" in result.message
    assert result.steps[0].tls_not_after == tls_target.not_after


async def test_ca_file_makes_the_certificate_trusted(tls_target: TlsTarget, tmp_path: Path) -> None:
    tls_target.ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    plan = plan_of(
        step(tls_target.url + "/", tls={"ca_file": "ca.pem"}),
        step(tls_target.url + "/", name="again", tls={"ca_file": "ca.pem"}),
        base_dir=tmp_path,
    )
    result = await run(plan)
    assert result.status is Status.UP, result
    first, again = result.steps
    assert first.tls_not_after == tls_target.not_after
    assert first.timings.tls > 0
    # The second step reuses the connection: no handshake, the same certificate.
    assert again.timings.tls == 0
    assert again.tls_not_after == tls_target.not_after


async def test_verify_false_accepts_any_certificate(tls_target: TlsTarget) -> None:
    result = await run(plan_of(step(tls_target.url + "/", tls={"verify": False})))
    assert result.status is Status.UP, result
    assert result.steps[0].tls_not_after == tls_target.not_after


# --- polling -------------------------------------------------------------------------------

POLL = {"every": "20ms", "within": "200ms"}


@pytest.mark.parametrize(
    ("query", "poll", "expected"),
    [
        pytest.param("", {**POLL, "reason": "task_stuck"}, "task_stuck", id="named-reason"),
        pytest.param("", POLL, "poll_timeout", id="default-reason"),
        pytest.param("?pending=1&then=500", POLL, "http_5xx", id="last-attempt-500-stands"),
    ],
)
async def test_poll_that_never_completes(
    target: Target, query: str, poll: dict[str, str], expected: str
) -> None:
    plan = plan_of(
        step(
            target.url + "/task" + query,
            name="wait",
            poll=poll,
            expect={"json": [{"query": "status", "equals": "completed"}]},
        )
    )
    result = await run(plan)
    wait = result.steps[0]
    assert (result.reason, result.failed_step) == (expected, "wait")
    assert wait.attempts == target.polls >= 2
    assert wait.duration_seconds < 0.2 + MARGIN
    if expected != "http_5xx":
        assert "status = \"pending\", expected == 'completed' after" in result.message


async def test_poll_that_completes_is_up(target: Target) -> None:
    plan = plan_of(
        step(
            target.url + "/task?pending=2",
            poll=POLL,
            expect={"json": [{"query": "status", "equals": "completed"}]},
        )
    )
    result = await run(plan)
    assert result.status is Status.UP, result
    assert result.steps[0].attempts == 3


async def test_deadline_while_polling_keeps_the_poll_reason(target: Target) -> None:
    plan = plan_of(
        step(target.url + "/slow?s=0.3", name="first"),
        step(
            target.url + "/task",
            name="wait",
            # The first attempt starts after 0.3s, so the next is due after 1.2s and
            # within ends after 1.3s: the 1s deadline always falls in the wait between.
            poll={"every": "900ms", "within": "1s", "reason": "task_stuck"},
            expect={"json": [{"query": "status", "equals": "completed"}]},
        ),
        timeout="1s",
    )
    result = await run(plan)
    assert (result.reason, result.failed_step) == ("task_stuck", "wait")
    assert "journey deadline 1s reached while polling" in result.message


async def test_deadline_while_polling_after_a_500_keeps_http_5xx(target: Target) -> None:
    plan = plan_of(
        step(target.url + "/slow?s=0.3", name="first"),
        step(
            target.url + "/task?pending=0&then=500",
            name="wait",
            # The first attempt starts after 0.3s, so the next is due after 1.2s and
            # within ends after 1.3s: the 1s deadline always falls in the wait between.
            poll={"every": "900ms", "within": "1s", "reason": "task_stuck"},
            expect={"json": [{"query": "status", "equals": "completed"}]},
        ),
        timeout="1s",
    )
    result = await run(plan)
    assert (result.reason, result.failed_step) == ("http_5xx", "wait")
    assert "HTTP 500, expected 2xx; journey deadline 1s reached while polling" in result.message


# --- degraded ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expect", "message"),
    [
        pytest.param(
            "/json/full",
            {"json": [{"query": "total", "gt": 5, "severity": "warning"}]},
            "fetch: total = 2, expected > 5",
            id="warning-assertion",
        ),
        pytest.param(
            "/slow?s=0.05",
            {"max_latency": "10ms"},
            "above max_latency 0.01s",
            id="max_latency",
        ),
    ],
)
async def test_degraded(target: Target, path: str, expect: dict[str, Any], message: str) -> None:
    result = await run(plan_of(step(target.url + path, expect=expect)))
    assert (result.status, result.reason, result.failed_step) == (Status.DEGRADED, None, "fetch")
    assert message in result.message
    assert result.ok


async def test_critical_failure_wins_over_warning(target: Target) -> None:
    expect = {
        "json": [
            {"query": "total", "gt": 5, "severity": "warning"},
            {"query": "length(items)", "equals": 0, "reason": "too_many"},
        ]
    }
    result = await run(plan_of(step(target.url + "/json/full", expect=expect)))
    assert (result.status, result.reason) == (Status.DOWN, "too_many")
    assert [a.passed for a in result.steps[0].assertions] == [False, False]


# --- journeys ------------------------------------------------------------------------------


async def test_steps_share_cookies_and_extracted_variables(target: Target) -> None:
    plan = plan_of(
        step(
            target.url + "/login",
            name="login",
            method="POST",
            json={"user": "u"},
            expect={"status": 201},
            extract={"task_id": "id"},
        ),
        step(
            target.url + "/session/{{ task_id }}",
            name="use",
            headers={"X-Task": "t-{{ task_id }}"},
            expect={
                "status": 200,
                "json": [
                    {"query": "id", "equals": "t1"},
                    {"query": "header", "equals": "t-t1"},
                ],
            },
        ),
    )
    result = await run(plan)
    assert result.status is Status.UP, result
    assert result.message == "2 steps ok"


@pytest.mark.parametrize(
    ("field", "use", "reason"),
    [
        pytest.param(
            "crlf", {"headers": {"X-Id": "{{ value }}"}}, "extraction_failed", id="crlf-header"
        ),
        pytest.param(
            "surrogate",
            {"method": "POST", "body": "{{ value }}", "url_suffix": "/login"},
            "extraction_failed",
            id="surrogate-body",
        ),
        pytest.param(
            "surrogate",
            {"method": "POST", "json": {"v": "{{ value }}"}, "url_suffix": "/login"},
            None,
            id="surrogate-json",
        ),
        pytest.param("spaced", {"url_suffix": "/nowhere/{{ value }}"}, "http_4xx", id="odd-url"),
        pytest.param("crlf", {"url_suffix": "/nowhere/{{ value }}"}, "http_4xx", id="crlf-url"),
    ],
)
async def test_hostile_extracted_values_fail_the_step_not_the_engine(
    target: Target, field: str, use: dict[str, Any], reason: str | None
) -> None:
    suffix = use.pop("url_suffix", "/json/full")
    plan = plan_of(
        step(target.url + "/json/hostile", name="first", extract={"value": field}),
        step(target.url + suffix, name="second", **use),
    )
    result = await run(plan)
    assert result.reason == reason
    if reason is not None:
        assert result.failed_step == "second"
    if reason == "extraction_failed":
        assert result.message.startswith("second: cannot build the request: ")


async def test_a_run_never_reuses_cookies_from_the_previous_run(target: Target) -> None:
    login = step(target.url + "/login", name="login", method="POST", expect={"status": 201})
    use = step(target.url + "/session/t1", name="use", expect={"status": 200})
    assert (await run(plan_of(login, use))).status is Status.UP
    # Alone, the second step has no session: a fresh run starts with an empty jar.
    assert (await run(plan_of(use))).reason == "http_4xx"


async def test_steps_share_one_connection_and_each_run_opens_a_fresh_one(target: Target) -> None:
    plan = plan_of(*(step(target.url + "/json/full", name=f"s{i}") for i in range(3)))
    assert (await run(plan)).status is Status.UP
    assert target.connections == 1
    assert (await run(plan)).status is Status.UP
    assert target.connections == 2


@pytest.mark.parametrize("path", ["/json/full", "/slow?s=0.03", "/status/500"])
async def test_phase_timings_are_non_negative_and_fit_in_the_duration(
    target: Target, path: str
) -> None:
    result = await run(plan_of(step(target.url + path), step(target.url + path, name="again")))
    for result_step in result.steps:
        timings = result_step.timings.as_dict()
        assert all(value >= 0 for value in timings.values()), timings
        # For one request the phases are the step's latency, split: equal but for rounding.
        assert sum(timings.values()) <= result_step.duration_seconds + 1e-9
        assert timings["processing"] > 0
    assert sum(s.duration_seconds for s in result.steps) <= result.duration_seconds
    assert result.steps[0].timings.connect > 0
    assert result.steps[0].timings.tls == 0


# --- secrets -------------------------------------------------------------------------------

SECRET = "s3cr3t/T0ken+with=chars"


@pytest.mark.parametrize(
    ("path", "expect", "reason"),
    [
        pytest.param("/echo", {}, "http_5xx", id="echoed-in-body"),
        pytest.param("/redirect-echo", {}, "http_4xx", id="in-redirect-url"),
        pytest.param("/redirect-echo?scheme=ftp", {}, "unexpected_status", id="in-bad-redirect"),
        pytest.param(
            "/echo?status=200",
            {"json": [{"query": "auth", "equals": "nope"}]},
            "assertion_failed",
            id="in-assertion-value",
        ),
        pytest.param(
            "/echo?status=200",
            {"json": [{"query": "auth", "contains": "nope", "severity": "warning"}]},
            None,
            id="in-warning",
        ),
    ],
)
async def test_secret_echoed_by_the_target_never_reaches_the_result(
    target: Target, path: str, expect: dict[str, Any], reason: str | None
) -> None:
    plan = plan_of(
        step(target.url + path, headers={"Authorization": "Bearer {{ token }}"}, expect=expect),
        secrets={"token": SECRET},
    )
    result = await run(plan)
    assert result.reason == reason
    everything = repr(result)
    assert "[REDACTED]" in everything
    for leak in (SECRET, "s3cr3t", "T0ken"):
        assert leak not in everything
