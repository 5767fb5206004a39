"""The `certificate` kind: a TLS handshake, then a report on the certificate served.

The handshake verifies as the step's `tls:` says. When verification rejects the
certificate (expired, wrong host, unknown issuer), the step fails with `tls` and a
second handshake that trusts nothing reads the certificate anyway, so the report
(and the expiry metric) still says what was served and when it expires. A certificate
that verified is judged on `expect.json` and `extract` (the step's StepJudge, over the
document `_report` makes), then on `cert_min_days`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from uptime_probe.config.steps.certificate import CertificateStep
from uptime_probe.probe.assertions import NO_HEADERS, document_body
from uptime_probe.probe.certificates import CertificateDetails, certificate_problem, days_left
from uptime_probe.probe.classify import classify_exception
from uptime_probe.probe.kinds.base import Attempt, RunContext
from uptime_probe.probe.kinds.sockets import (
    CONNECTING,
    HANDSHAKING,
    RESOLVING,
    Connection,
    Progress,
    classify_socket_error,
    close,
    open_connection,
    reading_context,
    unverified_context,
)
from uptime_probe.probe.model import FailureReason, Status
from uptime_probe.probe.plan import StepPlan

# The second, report-only handshake after a rejected certificate gets at most this long.
REREAD_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class CertificateFigures:
    """What the handshake showed: its time, the protocol, and the certificate served."""

    key: ClassVar[str] = "certificate"
    histograms: ClassVar[tuple[str, ...]] = ("handshake_seconds",)
    gauges: ClassVar[tuple[str, ...]] = ("days_left",)
    descriptions: ClassVar[Mapping[str, str]] = {
        "handshake_seconds": "Time of the TLS handshake of a certificate step.",
        "days_left": "Days until the certificate a certificate step saw expires.",
    }

    handshake_seconds: float | None = None
    days_left: float | None = None
    not_after: float | None = None
    subject: str | None = None
    issuer: str | None = None
    names: str | None = None  # subjectAltNames, comma-separated
    protocol: str | None = None
    cipher: str | None = None
    verified: int = 0  # 1 when the step's verification accepted it

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "handshake_seconds": self.handshake_seconds,
            "days_left": self.days_left,
            "not_after": self.not_after,
            "subject": self.subject,
            "issuer": self.issuer,
            "names": self.names,
            "protocol": self.protocol,
            "cipher": self.cipher,
            "verified": self.verified,
        }


def _report(connection: Connection, verified: bool) -> tuple[CertificateFigures, dict[str, Any]]:
    """The figures and the document (what `json` and `extract` read) of one handshake."""
    ssl_object = connection.ssl_object
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    details = CertificateDetails.from_der(der) if der else None
    cipher = ssl_object.cipher() if ssl_object is not None else None
    protocol = ssl_object.version() if ssl_object is not None else None
    left = None if details is None else days_left(details.not_after)
    figures = CertificateFigures(
        handshake_seconds=connection.tls_seconds,
        days_left=None if left is None else round(left, 3),
        not_after=None if details is None else details.not_after,
        subject=None if details is None else details.subject,
        issuer=None if details is None else details.issuer,
        names=None if details is None else ", ".join(details.names),
        protocol=protocol,
        cipher=None if cipher is None else cipher[0],
        verified=int(verified),
    )
    document: dict[str, Any] = {
        **figures.as_dict(),
        "names": [] if details is None else list(details.names),
        "not_before": None if details is None else _iso(details.not_before),
        "not_after": None if details is None else _iso(details.not_after),
        "address": connection.address,
    }
    return figures, document


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CertificateKind:
    # The class of the figures its attempts carry: metrics declare its series from it.
    figures = CertificateFigures

    async def attempt(self, plan: StepPlan, values: Mapping[str, str], run: RunContext) -> Attempt:
        config = plan.config
        assert isinstance(config, CertificateStep)
        started = time.perf_counter()
        spec = config.certificate
        host = spec.host.render(values)
        server_name = config.tls.server_name or host
        progress = Progress(f"{host}:{spec.port}")
        rejected: list[Attempt] = []

        def note() -> tuple[str, str]:
            if rejected:  # cut while re-reading a rejected certificate: the rejection stands
                return rejected[0].reason or FailureReason.TLS, rejected[0].message
            if progress.stage == RESOLVING:
                return FailureReason.DNS, f"resolving {progress.peer}"
            if progress.stage == CONNECTING:
                return FailureReason.CONNECT_TIMEOUT, f"connecting to {progress.peer}"
            if progress.stage == HANDSHAKING:
                # As an HTTP step's (probe/classify.py): TCP is up, the TLS layer stalled.
                return FailureReason.TLS, f"TLS handshake with {progress.peer} stalled"
            return FailureReason.TIMEOUT, f"closing the connection to {progress.peer}"

        run.deadline_note = note
        try:
            connection = await open_connection(
                run,
                host,
                spec.port,
                progress,
                tls=reading_context(plan.ssl),
                server_name=server_name,
            )
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            ended = time.perf_counter()
            reason, message = classify_socket_error(
                exc, progress, plan.redact
            ) or classify_exception(exc, redact=plan.redact)
            failed = Attempt(Status.DOWN, reason, message, ended=ended, duration=ended - started)
            if reason == FailureReason.TLS:
                rejected.append(failed)
                await _reread(failed, run, host, spec.port, server_name)
            return failed
        ended = time.perf_counter()
        try:
            figures, document = _report(connection, verified=plan.ssl is not False)
        finally:
            await close(connection.writer)
        passed = f"{figures.protocol}, certificate expires in {figures.days_left} days"
        body = document_body(document)
        assert plan.judge is not None, "a certificate step always has its expect"
        judged = await plan.judge.judge(None, NO_HEADERS, body, run.recorder)
        attempt = Attempt.of_verdict(judged.verdict, body, passed=passed)
        attempt.figures = figures
        attempt.tls_not_after = figures.not_after
        # Judged last: a wrong answer is the more urgent news.
        if attempt.status is not Status.DOWN:
            attempt.fail(certificate_problem(figures.not_after, config.expect.cert_min_days))
        attempt.ended = ended + judged.off_loop_seconds
        attempt.duration = ended - started
        return attempt


async def _reread(failed: Attempt, run: RunContext, host: str, port: int, name: str) -> None:
    """Read the certificate that verification rejected, to report it (never to trust it)."""
    progress = Progress(f"{host}:{port}")
    try:
        async with asyncio.timeout(REREAD_SECONDS):
            connection = await open_connection(
                RunContext(run.resolver),
                host,
                port,
                progress,
                tls=unverified_context(),
                server_name=name,
            )
            try:
                figures, _document = _report(connection, verified=False)
            finally:
                await close(connection.writer)
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError):
            raise
        return  # the first handshake's reason stands; the report is a bonus
    failed.figures = figures
    failed.tls_not_after = figures.not_after


KIND = CertificateKind()
