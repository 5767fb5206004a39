"""The certificate kind, and cert_min_days on request steps, against trustme certificates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServeApp
from tests.hostile.server import refused_port
from tests.hostile.tls import (
    WRONG_HOST,
    TlsCase,
    expired_cert,
    expiring_cert,
    incomplete_chain_cert,
    self_signed_cert,
    valid_cert,
    wrong_host_cert,
)
from uptime_probe.metrics import CheckMetrics
from uptime_probe.probe.kinds.certificate import CertificateFigures
from uptime_probe.sinks import RunOutcome

from ..conftest import Target, build_target_app
from ..journeys import plan_of, run
from .conftest import ServeTcp, silent_after


def certificate_step(port: int, case: TlsCase | None, **fields: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "name": "cert",
        "certificate": {"host": "127.0.0.1", "port": port},
        **fields,
    }
    if case is not None:
        step.setdefault("tls", {"ca_file": str(case.ca_path)})
    return step


def figures(result: Any) -> CertificateFigures:
    found = result.steps[0].figures
    assert isinstance(found, CertificateFigures)
    return found


async def test_a_valid_certificate_is_reported(serve_tcp: ServeTcp, tmp_path: Path) -> None:
    case = valid_cert(tmp_path)
    server = await serve_tcp(silent_after(), ssl=case.server_context)
    result = await run(plan_of(certificate_step(server.port, case)))

    assert result.status == "up", result
    step = result.steps[0]
    assert step.kind == "certificate"
    assert step.http_status is None
    assert step.tls_not_after == case.not_after.timestamp()
    seen = figures(result)
    assert seen.names == "localhost, 127.0.0.1"
    assert seen.protocol == "TLSv1.3"
    assert seen.cipher is not None
    assert seen.issuer is not None
    assert seen.issuer.startswith("OU=Testing CA #")
    assert seen.verified == 1
    assert seen.handshake_seconds is not None
    assert step.timings.tls > 0
    assert step.message == f"TLSv1.3, certificate expires in {seen.days_left} days"


async def test_three_days_left_below_cert_min_days_is_cert_expiring(
    serve_tcp: ServeTcp, tmp_path: Path
) -> None:
    case = expiring_cert(tmp_path, days=3)
    server = await serve_tcp(silent_after(), ssl=case.server_context)
    result = await run(plan_of(certificate_step(server.port, case, expect={"cert_min_days": 14})))

    assert result.reason == "cert_expiring"
    when = case.not_after.strftime("%Y-%m-%d %H:%M UTC")
    assert result.message == (
        f"cert: certificate expires in 3.0 days ({when}), below cert_min_days 14"
    )
    assert figures(result).days_left == pytest.approx(3.0, abs=0.01)


@pytest.mark.parametrize(
    ("make_case", "detail"),
    [
        (expired_cert, "certificate has expired"),
        (wrong_host_cert, "IP address mismatch, certificate is not valid for '127.0.0.1'."),
        (self_signed_cert, "self-signed certificate"),
        (incomplete_chain_cert, "unable to get local issuer certificate"),
    ],
)
async def test_a_rejected_certificate_is_tls_and_still_reported(
    serve_tcp: ServeTcp, tmp_path: Path, make_case: Callable[[Path], TlsCase], detail: str
) -> None:
    case = make_case(tmp_path)
    server = await serve_tcp(silent_after(), ssl=case.server_context)
    result = await run(plan_of(certificate_step(server.port, case)))

    assert result.reason == "tls"
    assert result.message == f"cert: TLS certificate of 127.0.0.1:{server.port} rejected: {detail}"
    # Read again without trusting it: the report and the expiry metric still have it.
    assert result.steps[0].tls_not_after == case.not_after.timestamp()
    assert figures(result).verified == 0


async def test_verify_false_judges_an_expired_certificate_by_its_days(
    serve_tcp: ServeTcp, tmp_path: Path
) -> None:
    case = expired_cert(tmp_path)
    server = await serve_tcp(silent_after(), ssl=case.server_context)
    step = certificate_step(server.port, None, tls={"verify": False}, expect={"cert_min_days": 14})
    result = await run(plan_of(step))

    assert result.reason == "cert_expiring"
    assert result.message.startswith("cert: certificate expired 1.0 days ago (")


async def test_json_assertions_read_the_certificate_document(
    serve_tcp: ServeTcp, tmp_path: Path
) -> None:
    case = valid_cert(tmp_path)
    server = await serve_tcp(silent_after(), ssl=case.server_context)
    step = certificate_step(
        server.port,
        case,
        expect={"json": [{"query": "names", "contains": "chat.example.com"}]},
        extract={"issuer": "issuer"},
    )
    result = await run(plan_of(step))

    assert result.reason == "assertion_failed"
    assert result.message == (
        'cert: names = ["localhost", "127.0.0.1"], expected to contain \'chat.example.com\''
    )


async def test_a_refused_port_is_connect_refused() -> None:
    port = await refused_port()
    result = await run(plan_of(certificate_step(port, None)))
    assert result.reason == "connect_refused"


async def test_a_server_that_never_handshakes_is_cut_in_the_handshake(
    serve_tcp: ServeTcp,
) -> None:
    server = await serve_tcp(silent_after())  # plain TCP: the ClientHello gets no answer
    result = await run(plan_of(certificate_step(server.port, None), timeout="0.5s"))

    # As an HTTP step's stalled handshake reads (tests/probe/test_tls_handshake.py).
    assert result.reason == "tls"
    assert result.message == (
        f"cert: TLS handshake with 127.0.0.1:{server.port} stalled (journey deadline 0.5s)"
    )


async def test_plain_http_on_the_port_is_tls(serve_app: ServeApp) -> None:
    url = await serve_app(build_target_app(Target(url="")))
    port = int(url.rsplit(":", 1)[1])
    result = await run(plan_of(certificate_step(port, None)))
    assert result.reason == "tls"


async def test_the_certificate_expiry_metric_reads_a_certificate_step(
    serve_tcp: ServeTcp, tmp_path: Path
) -> None:
    case = valid_cert(tmp_path)
    server = await serve_tcp(silent_after(), ssl=case.server_context)
    plan = plan_of(certificate_step(server.port, case))
    result = await run(plan)

    metrics = CheckMetrics("here")
    metrics.sync_checks([plan.check])
    metrics.accept(RunOutcome(result=result, state=None, previous_state=None, location="here"))

    series = (
        'uptime_probe_step_tls_cert_expiry_timestamp_seconds{check="journey",location="here",'
        'step="cert"} '
    )
    values = [
        float(line.removeprefix(series))
        for line in metrics.render_text().splitlines()
        if line.startswith(series)
    ]
    assert values == [case.not_after.timestamp()]


# --- cert_min_days on a request step ------------------------------------------------------


@pytest.mark.parametrize(("days", "reason"), [(3, "cert_expiring"), (90, None)])
async def test_cert_min_days_on_a_request_step(
    serve_app: ServeApp, tmp_path: Path, days: int, reason: str | None
) -> None:
    case = expiring_cert(tmp_path, days=days)
    url = await serve_app(build_target_app(Target(url="")), ssl_context=case.server_context)
    step = {
        "name": "page",
        "request": {"url": f"{url}/json/full"},
        "tls": {"ca_file": str(case.ca_path)},
        "expect": {"cert_min_days": 14},
    }
    result = await run(plan_of(step))

    assert result.reason == reason, result
    assert result.steps[0].http_status == 200
    if reason is not None:
        assert result.message.startswith(f"page: certificate expires in {days}.0 days")


async def test_cert_min_days_on_a_request_answered_wrongly_reports_the_answer_first(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    case = expiring_cert(tmp_path, days=3)
    url = await serve_app(build_target_app(Target(url="")), ssl_context=case.server_context)
    step = {
        "name": "page",
        "request": {"url": f"{url}/status/503"},
        "tls": {"ca_file": str(case.ca_path)},
        "expect": {"cert_min_days": 14},
    }
    result = await run(plan_of(step))
    assert result.reason == "http_5xx"


async def test_tls_server_name_is_the_name_sent_and_verified(
    serve_tcp: ServeTcp, tmp_path: Path
) -> None:
    case = wrong_host_cert(tmp_path)  # for other.example only
    server = await serve_tcp(silent_after(), ssl=case.server_context)
    tls = {"ca_file": str(case.ca_path), "server_name": WRONG_HOST}
    result = await run(plan_of(certificate_step(server.port, case, tls=tls)))

    assert result.status == "up", result
    assert figures(result).names == WRONG_HOST
