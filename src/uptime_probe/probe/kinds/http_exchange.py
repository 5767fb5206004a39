"""What every HTTP-based kind (`request`, `stream`) does the same way around its exchange
(and what websocket shares of it: its headers and its TLS server name).

Building the request (`prepare_request`: the URL as written, extracted values encoded by
their position, secrets kept to their origin), opening it on the run's shared session,
and turning a transport exception into an attempt. Each kind then reads and judges the
body its own way, with its step's StepJudge (probe/judging.py).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from uptime_probe.config.steps import MAX_REDIRECTS, MAX_RESPONSE_HEADERS, HttpStepBase, TlsConfig
from uptime_probe.config.template import render_json
from uptime_probe.probe.certificates import not_after_of
from uptime_probe.probe.classify import classify_exception
from uptime_probe.probe.kinds.base import Attempt, RunContext
from uptime_probe.probe.model import FailureReason, Status
from uptime_probe.probe.plan import StepPlan
from uptime_probe.probe.secret_origins import OriginGuard, SecretWithheld
from uptime_probe.probe.tracing import TimedConnector


def certificate_not_after(der: bytes | None) -> float | None:
    """The expiry of the certificate the handshake handed over (probe/certificates.py)."""
    return not_after_of(der)


async def fetch_certificate_not_after(
    url: URL, timeout: float, server_name: str | None = None
) -> float | None:
    """The expiry of the certificate a host presents, without verifying it.

    Used after verification failed, so an expired or wrong-host certificate still
    reports when it expires.
    """
    if url.scheme != "https" or url.host is None or timeout <= 0:
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to read the certificate, never to trust it
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                url.host, url.port or 443, ssl=context, server_hostname=server_name or url.host
            )
            try:
                ssl_object = writer.get_extra_info("ssl_object")
                der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            finally:
                writer.close()
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    return certificate_not_after(der)


# What aiohttp refuses in a header value (it raises ValueError while sending).
_FORBIDDEN_HEADER_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_value(name: str, value: str) -> str:
    if _FORBIDDEN_HEADER_CHARS.search(value):
        raise ValueError(f"request header {name} would contain a control character")
    return value


def render_headers(plan: StepPlan, values: Mapping[str, str]) -> dict[str, str]:
    """The step's merged headers, rendered; ValueError for one values made unsendable."""
    return {name: _header_value(name, template.render(values)) for name, template in plan.headers}


def server_name(tls: TlsConfig, headers: Mapping[str, str]) -> str | None:
    """SNI and the name verified: `tls.server_name`, else the Host header the step sends
    (the HTTP kinds and websocket); None: the URL's host."""
    if tls.server_name:
        return tls.server_name
    host = next((value for name, value in headers.items() if name.lower() == "host"), None)
    if not host:
        return None
    # A Host header may carry a port (`chat.example.com:8443`); SNI never does.
    name = URL.build(scheme="https", authority=host).host if ":" in host else host
    return name or None


@dataclass(slots=True)
class OutgoingRequest:
    """A step's request, ready for `session.request(method, url, **arguments)`."""

    url: URL
    arguments: dict[str, Any]
    # Set when the request carries a secret: say what it withheld (`guard.note`).
    guard: OriginGuard | None = None

    def noted(self, attempt: Attempt) -> Attempt:
        """The attempt, its message saying which headers were withheld from another origin."""
        if self.guard is not None:
            attempt.message = self.guard.noted(attempt.message)
        return attempt


def prepare_request(plan: StepPlan, values: Mapping[str, str]) -> OutgoingRequest:
    """The request's URL and arguments.

    ValueError (or UnicodeError) when values (extracted ones) make it unsendable;
    SecretWithheld when they send it, carrying a secret that cannot be left out, to
    another origin.
    """
    config = plan.config
    assert isinstance(config, HttpStepBase)
    assert plan.url is not None, "HTTP-based steps compile their URL"
    request = config.http_request
    url = plan.url.render(values)
    headers = render_headers(plan, values)
    guard, url, headers = OriginGuard.for_request(
        plan.secret_policy, url, headers, plan.url.origin_varies
    )
    arguments: dict[str, Any] = {
        "headers": headers,
        "allow_redirects": config.follow_redirects,
        # aiohttp raises on the max_redirects-th redirect response, so it follows one fewer.
        "max_redirects": MAX_REDIRECTS + 1,
        "ssl": plan.ssl,
        # aiohttp's 8,190-byte default fails answers that Go, curl and browsers read
        # (a 12 KB Content-Security-Policy); the limit is the step's, per line.
        "max_line_size": config.max_header_size,
        "max_field_size": config.max_header_size,
        "max_headers": MAX_RESPONSE_HEADERS,
    }
    if guard is not None and config.follow_redirects:
        arguments["middlewares"] = (guard,)
    if url.scheme == "https":
        name = server_name(config.tls, headers)
        if name is not None:
            arguments["server_hostname"] = name
    if request.body is not None:
        arguments["data"] = request.body.render(values).encode()
    elif request.json_body is not None:
        arguments["json"] = render_json(request.json_body, values)
    return OutgoingRequest(url, arguments, guard)


@dataclass(slots=True)
class Exchange:
    """One HTTP exchange made ready: the run's session, and the request to send on it."""

    session: aiohttp.ClientSession
    connector: TimedConnector
    method: str
    outgoing: OutgoingRequest
    # outgoing.arguments, with our own decoding (probe/decoding.py, which knows when a
    # compressed body was cut short; aiohttp's does not). The phases are stamped by the
    # connector, on the recorder it is given here.
    arguments: dict[str, Any]

    @property
    def url(self) -> URL:
        return self.outgoing.url


def prepare_exchange(
    plan: StepPlan, values: Mapping[str, str], run: RunContext, started: float
) -> Exchange | Attempt:
    """The exchange to send, or the down attempt saying why it cannot be sent."""
    config = plan.config
    assert isinstance(config, HttpStepBase)
    try:
        session, connector = run.http()
    except Exception as exc:  # building a session cannot fail on the target's account
        reason, message = classify_exception(exc, redact=plan.redact)
        return Attempt(Status.DOWN, reason, message, duration=time.perf_counter() - started)
    connector.recorder = run.recorder
    connector.peer_certificate = None
    try:
        outgoing = prepare_request(plan, values)
    except SecretWithheld as exc:
        return Attempt(Status.DOWN, exc.reason, exc.message, duration=time.perf_counter() - started)
    except (ValueError, UnicodeError) as exc:
        # Values a target sent back (a line break, a lone surrogate) cannot be sent on;
        # a host name no resolver could look up is `dns`, as when aiohttp meets one.
        reason, message = classify_exception(exc, redact=plan.redact)
        if reason is not FailureReason.DNS:
            reason = FailureReason.EXTRACTION_FAILED
            message = f"cannot build the request: {plan.redact.cut(str(exc), 200)}"
        return Attempt(Status.DOWN, reason, message, duration=time.perf_counter() - started)
    arguments = {**outgoing.arguments, "auto_decompress": False}
    return Exchange(session, connector, config.http_request.method, outgoing, arguments)


async def transport_failure(
    exc: BaseException, plan: StepPlan, run: RunContext, exchange: Exchange, started: float
) -> Attempt:
    """The down attempt for an exception raised by the exchange (never CancelledError)."""
    if isinstance(exc, SecretWithheld):
        reason, message = exc.reason, exc.message
    else:
        reason, message = classify_exception(exc, run.recorder.state, redact=plan.redact)
    not_after = None
    if reason is FailureReason.TLS:
        not_after = await fetch_certificate_not_after(
            exchange.url,
            timeout=2.0,
            server_name=exchange.outgoing.arguments.get("server_hostname"),
        )
    return exchange.outgoing.noted(
        Attempt(
            Status.DOWN,
            reason,
            message,
            http_status=exc.status if isinstance(exc, SecretWithheld) else None,
            tls_not_after=not_after,
            duration=time.perf_counter() - started,
        )
    )
