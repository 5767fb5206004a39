"""Every hostile mode through the real engine: the exact reason, within the deadline, bounded.

Each case compiles a one-check plan from a small probes.yaml (``parse_config`` then
``compile_checks``, as the daemon does) and hands it to ``run_check``. It asserts:

* the exact ``FailureReason`` (never ``internal``: a target's misbehaviour is never our bug)
  and the words of the message that say what happened;
* that the run ended within its journey deadline plus ``MARGIN`` (and, for the silent
  modes, that it really waited for the deadline rather than failing early);
* that Python memory stayed bounded (``tracemalloc`` peak), and for ``/huge`` that the
  server could not push much more than the kernel's socket buffers: the run stopped reading.

Every mode runs under both of aiohttp's HTTP parsers: the C one (the default) and the
pure-Python one (used where the C extension is unavailable, or with
AIOHTTP_NO_EXTENSIONS=1). They report some misbehaviours differently; a mode whose
reason depends on the parser says so in its row.

Chosen reasons for the modes the taxonomy leaves open (model.py's closed set):

    /bad-status-line, /bad-chunked, /many-headers, /huge-header
        unexpected_status, "invalid HTTP response": the target answered, but not HTTP;
        aiohttp reports these as ClientResponseError(400) from its parser.
    /short-body (Content-Length longer than the body, then FIN)
        connection_reset: the response broke off mid-body, exactly like /reset-body.
    /bad-chunked?split_ms=50 (the bad chunk arrives after the head)
        pure-Python parser: unexpected_status, like a bad chunk in the head's segment.
        C parser: timeout at the journey deadline. aiohttp (3.x) records the error but
        never wakes the body reader, so only the deadline ends it (see
        tests/hostile/test_server.py::test_aiohttp_on_bad_chunk_after_the_head).
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.client_proto
import pytest
import yaml
from aiohttp import http_parser

from uptime_probe.config import parse_config
from uptime_probe.probe import CheckPlan, CheckResult, Status, compile_checks, run_check
from uptime_probe.probe.model import BUILTIN_REASONS

from .dns import StaticResolver
from .server import MODES, HostileServer, gzip_bomb_payload
from .tls import (
    TlsCase,
    expired_cert,
    self_signed_cert,
    untrusted_ca_cert,
    valid_cert,
    wrong_host_cert,
)

MARGIN = 1.0
"""Seconds a run may take beyond its deadline: task switches on a loaded 2-core machine."""
FAST_DEADLINE = 5.0
"""The deadline of modes that fail at once; they must end far sooner (see FAST_LIMIT)."""
FAST_LIMIT = 2.5
SILENT_DEADLINE = 0.8
"""The deadline of modes that stall: short, since each of them takes all of it."""
MAX_BODY = 1 << 20
MIB = 1 << 20
PEAK_OVER_CAP = 4 * MIB
"""Python memory a run may hold beyond max_body (parser buffers, one chunk, the result)."""
PEAK_ANY_MODE = 16 * MIB
"""Every other mode, /many-headers (20,000 parsed headers) and /huge-header included."""
SERVER_AHEAD = 64 * MIB
"""What /huge may hand to the kernel ahead of a client that stopped reading (socket
buffers auto-tune to a few MiB on loopback): far below the 1 GiB it declares."""
IDLE_TIMEOUT = 5.0

C_PARSER_AVAILABLE = http_parser.HttpResponseParser is not http_parser.HttpResponseParserPy
PARSERS = ["c", "python"]


@dataclass(frozen=True)
class Case:
    target: str
    reason: str | None  # None: the run is up
    says: str  # a fragment of the message
    deadline: float = FAST_DEADLINE
    expect: dict[str, Any] = field(default_factory=dict)
    by_parser: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Reason and fragment where a parser differs from `reason`/`says`."""

    def outcome(self, parser: str) -> tuple[str | None, str]:
        return self.by_parser.get(parser, (self.reason, self.says))


JSON_EXPECTED = {"json": [{"query": "ok", "equals": True}]}
DEADLINE_SAYS = "no complete response before the deadline"

CASES: dict[str, Case] = {
    # Silence, before the head, mid-body, and one byte at a time.
    "/hang": Case("/hang", "timeout", DEADLINE_SAYS, SILENT_DEADLINE),
    "/stall-body": Case("/stall-body", "timeout", DEADLINE_SAYS, SILENT_DEADLINE),
    # A byte every 50 ms: no read ever waits long, so only the journey deadline stops it.
    "/drip": Case("/drip?interval_ms=50", "timeout", DEADLINE_SAYS, SILENT_DEADLINE),
    # Broken connections.
    "/close": Case("/close", "connection_reset", "server closed the connection"),
    "/reset-headers": Case("/reset-headers", "connection_reset", "Connection reset by peer"),
    "/reset-body": Case("/reset-body", "connection_reset", "response body incomplete"),
    "/short-body": Case("/short-body", "connection_reset", "response body incomplete"),
    # Not HTTP.
    "/bad-status-line": Case("/bad-status-line", "unexpected_status", "invalid HTTP response"),
    "/bad-chunked": Case("/bad-chunked", "unexpected_status", "invalid HTTP response"),
    "/many-headers": Case("/many-headers", "unexpected_status", "Too many headers"),
    "/huge-header": Case("/huge-header", "unexpected_status", "invalid HTTP response"),
    # Too much.
    "/huge": Case("/huge", "body_too_large", "above max_body"),
    "/gzip-bomb": Case("/gzip-bomb", "body_too_large", "(decoded)"),
    # Redirects.
    "/redirect-loop": Case("/redirect-loop", "too_many_redirects", "more than 10 redirects"),
    "/redirect-refused": Case("/redirect-refused", "connect_refused", "refused"),
    # Bodies that are not the JSON they claim to be.
    "/deep-json": Case("/deep-json", "invalid_json", "nested too deeply", expect=JSON_EXPECTED),
    "/non-utf8": Case("/non-utf8", "invalid_json", "not UTF-8", expect=JSON_EXPECTED),
    "/empty-json": Case("/empty-json", "invalid_json", "empty body", expect=JSON_EXPECTED),
    # Benign modes (used by the secret tests): up, so the harness itself is not the failure.
    "/echo-auth": Case("/echo-auth", None, "1 step ok"),
    "/redirect-echo-auth": Case("/redirect-echo-auth", None, "1 step ok"),
    "/landing": Case("/landing", None, "1 step ok"),
    "/script": Case("/script", None, "1 step ok"),
    "/ok": Case("/ok", None, "1 step ok", expect=JSON_EXPECTED),
    "/slow": Case("/slow?ms=20", None, "1 step ok", expect=JSON_EXPECTED),
    # Event streams met by a request step (tests/hostile/test_stream.py has the stream step):
    # read as one body, so a stream that never ends meets the deadline or max_body.
    "/sse-endless": Case("/sse-endless", "timeout", DEADLINE_SAYS, SILENT_DEADLINE),
    "/sse-huge-event": Case("/sse-huge-event", "body_too_large", "exceeds max_body"),
    "/sse-flood": Case("/sse-flood", "body_too_large", "exceeds max_body"),
    "/sse-comments": Case("/sse-comments", "timeout", DEADLINE_SAYS, SILENT_DEADLINE),
    "/sse-drip": Case("/sse-drip", "timeout", DEADLINE_SAYS, SILENT_DEADLINE),
}
EXTRA_CASES: dict[str, Case] = {
    "/bad-chunked?split_ms=50": Case(
        "/bad-chunked?split_ms=50",
        "unexpected_status",
        "invalid HTTP response",
        SILENT_DEADLINE,
        by_parser={"c": ("timeout", DEADLINE_SAYS)},
    ),
}
ALL_CASES = {**CASES, **EXTRA_CASES}


def plan_for(
    url: str,
    *,
    deadline: float = FAST_DEADLINE,
    expect: dict[str, Any] | None = None,
    tls: dict[str, Any] | None = None,
    max_body: int = MAX_BODY,
) -> CheckPlan:
    """A one-step check compiled the way the daemon compiles it."""
    step: dict[str, Any] = {"name": "fetch", "request": {"url": url}, "max_body": max_body}
    if expect:
        step["expect"] = expect
    if tls:
        step["tls"] = tls
    document = {
        "checks": [
            {
                "name": "hostile",
                "interval": "60s",
                "timeout": f"{int(deadline * 1000)}ms",
                "steps": [step],
            }
        ]
    }
    config = parse_config(yaml.safe_dump(document), base_dir=Path("/"))
    return compile_checks(config)["hostile"]


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which of aiohttp's response parsers the client uses for this test."""
    name: str = request.param
    if name == "c" and not C_PARSER_AVAILABLE:
        pytest.skip("aiohttp's C parser is not built here")
    if name == "python":
        # The client protocol looks the parser class up when each response starts.
        monkeypatch.setattr(
            aiohttp.client_proto, "HttpResponseParser", http_parser.HttpResponseParserPy
        )
    return name


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as hostile:
        yield hostile
    assert hostile.unexpected_errors == []


@dataclass(frozen=True)
class Measured:
    result: CheckResult
    elapsed: float
    peak: int


async def measured_run(
    plan: CheckPlan, resolver: aiohttp.abc.AbstractResolver | None = None
) -> Measured:
    """run_check with its wall time and the peak of Python memory allocated during it."""
    loop = asyncio.get_running_loop()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        started = loop.time()
        result = await run_check(plan, resolver=resolver)
        elapsed = loop.time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Measured(result, elapsed, peak)


def assert_never_internal(result: CheckResult) -> None:
    assert result.reason != "internal", result
    assert all(step.reason != "internal" for step in result.steps), result
    assert result.reason is None or result.reason in BUILTIN_REASONS, result


def test_every_mode_has_a_case() -> None:
    """A new hostile mode must be classified here before it can be used anywhere."""
    assert set(CASES) == MODES


@pytest.mark.parametrize("mode", sorted(ALL_CASES))
async def test_mode_gets_its_reason_within_the_deadline(
    server: HostileServer, parser: str, mode: str
) -> None:
    case = ALL_CASES[mode]
    reason, says = case.outcome(parser)
    plan = plan_for(server.url + case.target, deadline=case.deadline, expect=case.expect)
    if mode == "/gzip-bomb":
        await asyncio.to_thread(gzip_bomb_payload)  # the server's cached payload, not ours

    run = await measured_run(plan)

    result = run.result
    assert_never_internal(result)
    assert result.reason == reason, result
    assert result.status is (Status.UP if reason is None else Status.DOWN), result
    assert says in result.message, result
    assert result.failed_step == (None if reason is None else "fetch"), result
    # Within the deadline, and a silent target really held the run until it.
    assert run.elapsed <= case.deadline + MARGIN, run
    assert result.duration_seconds <= case.deadline + MARGIN, run
    if reason == "timeout":
        assert run.elapsed >= case.deadline - 0.05, run
        assert f"journey deadline {case.deadline:g}s" in result.message, result
    elif case.deadline == FAST_DEADLINE:
        assert run.elapsed < FAST_LIMIT, run
    assert run.peak < PEAK_ANY_MODE, f"{run.peak / MIB:.1f} MiB"
    if mode != "/hang":  # /hang never reads again, so it cannot see the client leave
        async with asyncio.timeout(IDLE_TIMEOUT):
            await server.wait_idle()  # the run closed every connection it opened


@pytest.mark.parametrize("mode", ["/huge", "/gzip-bomb"])
async def test_oversized_body_stops_at_max_body(
    server: HostileServer, parser: str, mode: str
) -> None:
    """1 GiB declared and streamed, or 100 MiB inflated from ~100 KiB: the run holds at most
    max_body plus a little, and /huge is refused without reading the rest."""
    await asyncio.to_thread(gzip_bomb_payload)
    plan = plan_for(server.url + mode, max_body=MAX_BODY)

    run = await measured_run(plan)

    assert run.result.reason == "body_too_large", run.result
    assert run.peak < MAX_BODY + PEAK_OVER_CAP, f"{run.peak / MIB:.1f} MiB"
    assert run.elapsed < FAST_LIMIT, run
    async with asyncio.timeout(IDLE_TIMEOUT):
        await server.wait_idle()
    assert server.bytes_sent < SERVER_AHEAD, server.bytes_sent
    if mode == "/gzip-bomb":
        # Judged on the decoded size: the compressed body is far below the cap.
        assert len(gzip_bomb_payload()) < MAX_BODY
        assert "decoded" in run.result.message


async def test_redirect_loop_stops_after_the_configured_hops(server: HostileServer) -> None:
    run = await measured_run(plan_for(f"{server.url}/redirect-loop"))

    assert run.result.reason == "too_many_redirects"
    # The first request and ten redirects followed: never an unbounded loop.
    assert server.connections_accepted == 11


async def test_redirect_to_a_refused_port_names_the_port(server: HostileServer) -> None:
    run = await measured_run(plan_for(f"{server.url}/redirect-refused"))

    assert run.result.reason == "connect_refused"
    assert f"127.0.0.1:{server.refused_port}" in run.result.message


# --- TLS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsRow:
    make: Callable[[Path], TlsCase]
    host: str
    says: str | None  # None: verifies, the run is up
    expiry_reported: bool = True


TLS_ROWS = {
    "self-signed": TlsRow(self_signed_cert, "127.0.0.1", "self-signed certificate"),
    "expired": TlsRow(expired_cert, "127.0.0.1", "certificate has expired"),
    "wrong-ip": TlsRow(wrong_host_cert, "127.0.0.1", "IP address mismatch"),
    # By name, through the test's resolver. The expiry is read on a second, unverified
    # connection that resolves with the system resolver, which does not know api.test
    # (in production both use the same resolver), so it is not asserted here.
    "wrong-name": TlsRow(wrong_host_cert, "api.test", "Hostname mismatch", False),
    "unknown-issuer": TlsRow(untrusted_ca_cert, "127.0.0.1", "unable to get local issuer"),
    "valid": TlsRow(valid_cert, "127.0.0.1", None),
}


@pytest.mark.parametrize("row", sorted(TLS_ROWS))
async def test_certificate_problem_is_tls_and_says_which(tmp_path: Path, row: str) -> None:
    """The client trusts the case's CA (tls.ca_file), so the only fault is the one named."""
    spec = TLS_ROWS[row]
    case = spec.make(tmp_path)
    resolver = StaticResolver({"api.test": "127.0.0.1"})
    async with HostileServer(ssl_context=case.server_context) as server:
        plan = plan_for(
            f"https://{spec.host}:{server.port}/ok",
            tls={"ca_file": str(case.ca_path)},
            expect=JSON_EXPECTED,
        )
        run = await measured_run(plan, resolver=resolver)

    result = run.result
    assert_never_internal(result)
    assert run.elapsed < FAST_LIMIT, run
    if spec.says is None:
        assert result.status is Status.UP, result
    else:
        assert result.reason == "tls", result
        assert result.message.startswith("fetch: TLS certificate rejected: "), result
        assert spec.says in result.message, result
    if spec.expiry_reported:
        # Reported even though verification failed: an expired certificate is exactly
        # when its expiry matters.
        assert result.steps[0].tls_not_after == case.not_after.timestamp(), result
    if row == "wrong-name":
        assert resolver.lookups == ["api.test"]
        assert "'api.test'" in result.message  # the name asked for; the cert is for another


async def test_https_to_a_plain_http_server_is_tls(server: HostileServer) -> None:
    run = await measured_run(plan_for(f"https://127.0.0.1:{server.port}/ok"))

    assert run.result.reason == "tls", run.result
    assert "TLS handshake failed" in run.result.message


async def test_tls_verify_false_still_reports_expiry(tmp_path: Path) -> None:
    case = expired_cert(tmp_path)
    async with HostileServer(ssl_context=case.server_context) as server:
        run = await measured_run(
            plan_for(f"{server.url}/ok", tls={"verify": False}, expect=JSON_EXPECTED)
        )

    assert run.result.status is Status.UP, run.result
    assert run.result.steps[0].tls_not_after == case.not_after.timestamp()


# --- DNS ---------------------------------------------------------------------------------


async def test_name_that_does_not_resolve_is_dns(server: HostileServer) -> None:
    resolver = StaticResolver({"known.test": "127.0.0.1"})
    missing = await measured_run(
        plan_for(f"http://missing.test:{server.port}/ok"), resolver=resolver
    )
    known = await measured_run(
        plan_for(f"http://known.test:{server.port}/ok", expect=JSON_EXPECTED), resolver=resolver
    )

    assert missing.result.reason == "dns", missing.result
    assert "cannot resolve host 'missing.test'" in missing.result.message
    assert missing.elapsed < FAST_LIMIT
    # The same resolver answers for a name it knows: the failure is the name, not the setup.
    assert known.result.status is Status.UP, known.result
    assert resolver.lookups == ["missing.test", "known.test"]
    assert server.connections_accepted == 1
