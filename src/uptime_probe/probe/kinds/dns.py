"""The `dns` kind: one query with dnspython, judged on its rcode and answers.

Queries go with `dns.asyncquery` straight to one server, so the step sees the
server's own rcode (a resolver library would turn NXDOMAIN, SERVFAIL and REFUSED
into exceptions and retries). Over UDP a truncated answer is asked again over TCP.
Without `server`, the servers probes resolve names with are asked in turn until one
answers: the top-level `dns.servers` (probe/resolve.py), each for the top-level
`dns.timeout`, else the system's (/etc/resolv.conf, read by dnspython), each for its
configured timeout. A `server` given by name is resolved as any host is (the run's
resolver, bounded).

The answer's records become the document `{"name", "type", "rcode", "answers", "ttl"}`
that `expect.json` and `extract` read, judged by the step's StepJudge (probe/judging.py)
as every kind's is; `answers` is a sorted list of strings (see `answer_text`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps.dns import DnsStep, parse_server
from uptime_probe.probe.assertions import NO_HEADERS, document_body
from uptime_probe.probe.classify import MESSAGE_LIMIT, classify_exception
from uptime_probe.probe.kinds.base import Attempt, RunContext
from uptime_probe.probe.kinds.sockets import (
    EXCHANGING,
    RESOLVING,
    Progress,
    classify_socket_error,
    resolve,
)
from uptime_probe.probe.model import FailureReason, Status
from uptime_probe.probe.plan import StepPlan
from uptime_probe.probe.resolve import ProbeResolver

# EDNS0 with the payload size of DNS flag day 2020: what today's resolvers offer.
EDNS_PAYLOAD = 1232
# Answers listed in a failure message, and the most of their text shown.
_SHOWN = 5
_SHOWN_CHARS = 200


@dataclass(frozen=True, slots=True)
class DnsFigures:
    """The query's time, who answered, and what."""

    key: ClassVar[str] = "dns"
    histograms: ClassVar[tuple[str, ...]] = ("query_seconds",)
    gauges: ClassVar[tuple[str, ...]] = ("answers",)
    descriptions: ClassVar[Mapping[str, str]] = {
        "query_seconds": "Time from sending a dns step's query to its answer (TCP retry included).",
        "answers": "Records of the asked type in a dns step's last answer.",
    }

    query_seconds: float | None = None
    server: str | None = None  # "ip:port" that answered (or was asked last)
    transport: str | None = None  # "udp", or "tcp" (asked so, or after a truncated answer)
    rcode: str | None = None
    answers: int = 0
    ttl: int | None = None  # the lowest TTL along the answer's chain
    truncated: int = 0  # 1 when the UDP answer was truncated and TCP asked again

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "query_seconds": self.query_seconds,
            "server": self.server,
            "transport": self.transport,
            "rcode": self.rcode,
            "answers": self.answers,
            "ttl": self.ttl,
            "truncated": self.truncated,
        }


def answer_text(rdata: dns.rdata.Rdata) -> str:
    """One record as a later step wants it: a TXT record's strings joined and unquoted,
    names without their final dot (`mail.example.com`, `10 mail.example.com` for MX),
    every other type in zone-file text (`1.2.3.4`, `0 issue "letsencrypt.org"`)."""
    kind = rdata.rdtype
    if kind == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    if kind in (dns.rdatatype.CNAME, dns.rdatatype.NS):
        return str(rdata.target.to_text(omit_final_dot=True))  # type: ignore[attr-defined]
    if kind == dns.rdatatype.MX:
        exchange = rdata.exchange.to_text(omit_final_dot=True)  # type: ignore[attr-defined]
        return f"{rdata.preference} {exchange}"  # type: ignore[attr-defined]
    if kind == dns.rdatatype.SRV:
        target = rdata.target.to_text(omit_final_dot=True)  # type: ignore[attr-defined]
        return f"{rdata.priority} {rdata.weight} {rdata.port} {target}"  # type: ignore[attr-defined]
    return str(rdata.to_text())


class _Query:
    """One query's progress: for a deadline note and the figures."""

    def __init__(self, name: str, rdtype: str, transport: str, servers: list[tuple[str, int]]):
        self.name, self.rdtype, self.transport = name, rdtype, transport
        self.servers = servers
        self.progress = Progress(_where(*servers[0]) if servers else "the system's resolver")
        self.sent_at = 0.0
        self.truncated = False

    def note(self) -> tuple[str, str]:
        if self.progress.stage == RESOLVING:
            return FailureReason.DNS, f"resolving the DNS server {self.progress.peer}"
        return (
            FailureReason.TIMEOUT,
            f"DNS server {self.progress.peer} did not answer {self.rdtype} {self.name} "
            f"over {self.transport}",
        )


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _default_servers(run: RunContext) -> tuple[list[tuple[str, int]], float]:
    """The servers probes resolve names with, and the timeout of each: the top-level
    `dns.servers` when the daemon has some, else the system's."""
    resolver = run.resolver
    if isinstance(resolver, ProbeResolver) and resolver.servers:
        return [parse_server(server) for server in resolver.servers], resolver.timeout
    return _system_servers()


def _system_servers() -> tuple[list[tuple[str, int]], float]:
    """The system's resolvers (dnspython reads /etc/resolv.conf) and the timeout of each."""
    resolver = dns.asyncresolver.Resolver()
    servers = []
    for nameserver in resolver.nameservers:
        address = str(nameserver)
        port = int(getattr(nameserver, "port", resolver.port) or resolver.port)
        if address.startswith(("https://", "quic://", "h3://")):
            continue  # only plain DNS here
        servers.append((address.split("@")[0], port))
    return servers, float(resolver.timeout)


async def _server_address(run: RunContext, host: str, port: int) -> tuple[str, int]:
    """`server` may name a host: its first address, resolved as any host is (an IP
    literal is its own)."""
    return (await resolve(run, host, port))[0], port


class DnsKind:
    # The class of the figures its attempts carry: metrics declare its series from it.
    figures = DnsFigures

    async def attempt(self, plan: StepPlan, values: Mapping[str, str], run: RunContext) -> Attempt:
        config = plan.config
        assert isinstance(config, DnsStep)
        started = time.perf_counter()
        spec = config.dns
        rendered = spec.name.render(values)
        try:
            qname = dns.name.from_text(rendered)
        except dns.exception.DNSException as exc:
            # Literal names are checked at load: this one came from an extracted value.
            return Attempt(
                Status.DOWN,
                FailureReason.EXTRACTION_FAILED,
                plan.redact.cut(f"cannot ask about {rendered!r}: {_first_line(exc)}", 300),
                duration=time.perf_counter() - started,
            )
        configured = spec.server_address
        query = _Query(
            qname.to_text(omit_final_dot=True),
            spec.record_type,
            spec.transport,
            [] if configured is None else [configured],
        )
        run.deadline_note = query.note
        request = dns.message.make_query(
            qname, dns.rdatatype.from_text(spec.record_type), use_edns=0, payload=EDNS_PAYLOAD
        )
        try:
            per_server_timeout: float | None = None
            if configured is None:
                query.servers, per_server_timeout = _default_servers(run)
            response = await _ask(run, request, query, spec.transport, per_server_timeout)
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            ended = time.perf_counter()
            reason, message = classify_dns_error(exc, query, plan.redact)
            return Attempt(
                Status.DOWN,
                reason,
                message,
                figures=_figures(query, None, ended),
                ended=ended,
                duration=ended - started,
            )
        ended = time.perf_counter()
        run.recorder.processing += ended - query.sent_at
        attempt = await _judge(plan, run, query, response, ended)
        attempt.duration = ended - started
        return attempt


async def _ask(
    run: RunContext,
    request: dns.message.Message,
    query: _Query,
    transport: str,
    timeout: float | None,
) -> dns.message.Message:
    """Ask each server in turn until one answers (any rcode); the last error if none does."""
    if not query.servers:
        raise dns.resolver.NoResolverConfiguration()  # type: ignore[no-untyped-call]
    last: Exception | None = None
    for host, port in query.servers:
        query.progress.peer = _where(host, port)
        query.progress.stage = RESOLVING
        try:
            address, port = await _server_address(run, host, port)
            query.progress.stage = EXCHANGING
            query.sent_at = time.perf_counter()
            if transport == "tcp":
                return await dns.asyncquery.tcp(request, address, timeout=timeout, port=port)
            response, used_tcp = await dns.asyncquery.udp_with_fallback(
                request, address, timeout=timeout, port=port
            )
            query.truncated = used_tcp
            return response
        except (dns.exception.Timeout, OSError) as exc:
            # The next server, as a stub resolver moves on; a wrong answer is an answer.
            last = exc
    assert last is not None
    raise last


async def _judge(
    plan: StepPlan, run: RunContext, query: _Query, response: dns.message.Message, ended: float
) -> Attempt:
    """The rcode and answers first, then `expect.json` and `extract` on the document."""
    config = plan.config
    assert isinstance(config, DnsStep)
    rcode = dns.rcode.to_text(response.rcode())
    answers: list[str] = []
    ttl: int | None = None
    if response.rcode() == dns.rcode.NOERROR and isinstance(response, dns.message.QueryMessage):
        chain = response.resolve_chaining()
        if chain.answer is not None:
            # Servers rotate their records' order; sorted, `answers[0]` is the same each run.
            answers = sorted(answer_text(rdata) for rdata in chain.answer)
            ttl = int(chain.minimum_ttl)
    figures = _figures(query, response, ended, len(answers), ttl)
    body = document_body(
        {"name": query.name, "type": query.rdtype, "rcode": rcode, "answers": answers, "ttl": ttl}
    )
    problem = _answer_problem(config, query, rcode, answers, figures, plan.redact)
    if problem is not None:
        reason, message = problem
        attempt = Attempt(Status.DOWN, reason, message, body=body, body_bytes=len(body))
        attempt.ended = ended
    else:
        passed = f"{rcode}, {len(answers)} {query.rdtype} record{'s' if len(answers) != 1 else ''}"
        assert plan.judge is not None, "a dns step always has its expect"
        judged = await plan.judge.judge(None, NO_HEADERS, body, run.recorder)
        attempt = Attempt.of_verdict(judged.verdict, body, passed=passed)
        attempt.ended = ended + judged.off_loop_seconds
    attempt.figures = figures
    return attempt


def _answer_problem(
    config: DnsStep,
    query: _Query,
    rcode: str,
    answers: list[str],
    figures: DnsFigures,
    redact: Redactor,
) -> tuple[str, str] | None:
    """What is wrong with the rcode or the answers (a reason and a message), or None."""
    expect = config.expect
    if rcode != expect.rcode:
        asked = f"{query.rdtype} {query.name}"
        return (
            FailureReason.DNS_RCODE,
            f"{rcode} for {asked} from {figures.server}, expected {expect.rcode}",
        )
    wanted = expect.min_answers
    if wanted and not answers:
        return (
            FailureReason.DNS_NO_ANSWER,
            f"no {query.rdtype} record for {query.name} ({rcode}, empty answer from "
            f"{figures.server})",
        )
    if len(answers) < wanted:
        return (
            FailureReason.ASSERTION_FAILED,
            f"{len(answers)} {query.rdtype} records for {query.name}, expected at least {wanted}",
        )
    pattern = expect.answers.matches
    if pattern is not None and not any(pattern.found_in(answer) for answer in answers):
        # The records are the server's text (a TXT record can be 64 KiB): redacted, then cut.
        shown = ", ".join(answers[:_SHOWN]) + (", ..." if len(answers) > _SHOWN else "")
        return (
            FailureReason.ASSERTION_FAILED,
            f"no {query.rdtype} record for {query.name} matches /{pattern.pattern}/: "
            f"{redact.cut(shown, _SHOWN_CHARS)}",
        )
    return None


def _figures(
    query: _Query,
    response: dns.message.Message | None,
    ended: float,
    answers: int = 0,
    ttl: int | None = None,
) -> DnsFigures:
    answered = response is not None
    return DnsFigures(
        query_seconds=ended - query.sent_at if answered and query.sent_at else None,
        server=query.progress.peer,
        transport="tcp" if query.truncated else query.transport,
        rcode=dns.rcode.to_text(response.rcode()) if response is not None else None,
        answers=answers,
        ttl=ttl,
        truncated=int(query.truncated),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__  # cut by the caller, redacted first


_Handler = Callable[[BaseException, _Query], tuple[str, str]]


def _fixed(reason: str, text: str) -> _Handler:
    def classify(exc: BaseException, query: _Query) -> tuple[str, str]:
        detail = _first_line(exc)
        shown = f": {detail}" if detail != type(exc).__name__ else ""
        return reason, f"{text} from {query.progress.peer}{shown}"

    return classify


def _timeout(exc: BaseException, query: _Query) -> tuple[str, str]:
    servers = ", ".join(_where(*server) for server in query.servers)
    return (
        FailureReason.TIMEOUT,
        f"no DNS answer to {query.rdtype} {query.name} from {servers} over {query.transport}",
    )


def _no_resolver(exc: BaseException, query: _Query) -> tuple[str, str]:
    return FailureReason.DNS, "no DNS server to ask: set server, or configure /etc/resolv.conf"


_INVALID = _fixed(FailureReason.UNEXPECTED_STATUS, "invalid DNS response")
_NAME = _fixed(FailureReason.EXTRACTION_FAILED, "the name cannot be asked")

# Every exception of the dnspython modules this kind calls, most specific first
# (tests/probe/kinds/test_dns.py fails when one is missing). A reply that is not
# valid DNS is `unexpected_status`, as an answer that is not valid HTTP is.
DNS_ERRORS: dict[type[BaseException], _Handler] = {
    dns.exception.Timeout: _timeout,
    dns.resolver.NoResolverConfiguration: _no_resolver,
    dns.query.UnexpectedSource: _fixed(FailureReason.UNEXPECTED_STATUS, "answer from elsewhere"),
    dns.query.BadResponse: _fixed(FailureReason.UNEXPECTED_STATUS, "an answer to another question"),
    dns.query.NoDOH: _fixed(FailureReason.INTERNAL, "DNS over HTTPS is not available"),
    dns.query.NoDOQ: _fixed(FailureReason.INTERNAL, "DNS over QUIC is not available"),
    dns.message.Truncated: _fixed(FailureReason.UNEXPECTED_STATUS, "a truncated answer over TCP"),
    dns.message.ChainTooLong: _fixed(FailureReason.UNEXPECTED_STATUS, "a CNAME chain too long"),
    dns.message.AnswerForNXDOMAIN: _INVALID,
    dns.message.NotQueryResponse: _INVALID,
    dns.message.ShortHeader: _INVALID,
    dns.message.TrailingJunk: _INVALID,
    dns.message.UnknownHeaderField: _INVALID,
    dns.message.BadEDNS: _INVALID,
    dns.message.BadTSIG: _INVALID,
    dns.message.UnknownTSIGKey: _INVALID,
    dns.message.NoPreviousName: _INVALID,
    dns.name.BadPointer: _INVALID,
    dns.name.PointerChainTooLong: _INVALID,
    dns.name.BadLabelType: _INVALID,
    dns.name.DecompressionForbidden: _INVALID,
    dns.name.EmptyLabel: _NAME,
    dns.name.BadEscape: _NAME,
    dns.name.NameTooLong: _NAME,
    dns.name.LabelTooLong: _NAME,
    dns.name.NeedAbsoluteNameOrOrigin: _NAME,
    dns.name.AbsoluteConcatenation: _NAME,
    dns.name.NoParent: _NAME,
    dns.name.NoIDNA2008: _NAME,
    dns.name.IDNAException: _NAME,
    dns.name.NeedSubdomainOfOrigin: _NAME,
    dns.rcode.UnknownRcode: _INVALID,
    dns.exception.FormError: _INVALID,
    dns.exception.SyntaxError: _INVALID,
    dns.exception.UnexpectedEnd: _INVALID,
    dns.exception.TooBig: _fixed(FailureReason.INTERNAL, "the query is too big"),
    dns.exception.UnsupportedAlgorithm: _INVALID,
    dns.exception.AlgorithmKeyMismatch: _INVALID,
    dns.exception.ValidationFailure: _INVALID,
    dns.exception.DeniedByPolicy: _INVALID,
    dns.exception.DNSException: _INVALID,
}


def classify_dns_error(exc: BaseException, query: _Query, redact: Redactor) -> tuple[str, str]:
    """dnspython's errors by the nearest mapped class, then the network stack's; the
    message redacted with the check's `redact`, then cut."""
    if isinstance(exc, dns.exception.DNSException):
        for cls in type(exc).__mro__:
            handler = DNS_ERRORS.get(cls)
            if handler is not None:
                reason, message = handler(exc, query)
                return reason, redact.cut(message, MESSAGE_LIMIT)
    found = classify_socket_error(exc, query.progress, redact)
    if found is not None:
        return found
    return classify_exception(exc, redact=redact)


KIND = DnsKind()
