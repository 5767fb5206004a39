"""The dns kind against a real DNS server on 127.0.0.1 (UDP and TCP on one port)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.resolver
import pytest

from tests.hostile.dns_server import NXDOMAIN, SERVFAIL, LoopbackDns, Query, Reply, answer
from tests.hostile.server import refused_port
from uptime_probe.config.model import DnsConfig
from uptime_probe.config.redaction import Redactor
from uptime_probe.probe.kinds.dns import DNS_ERRORS, DnsFigures, _Query, classify_dns_error
from uptime_probe.probe.kinds.sockets import EXCHANGING
from uptime_probe.probe.resolve import ProbeResolver

from ..journeys import plan_of, run

ZONE = {
    "chat.test": answer("127.0.0.1", "127.0.0.2"),
    "gone.test": NXDOMAIN,
    "broken.test": SERVFAIL,
    "refused.test": Reply(rcode="REFUSED"),
    "slow.test": answer("127.0.0.1", delay=5.0),
    "big.test": Reply(records={"A": ("127.0.0.9",)}, truncated=True),
    "mail.test": Reply(records={"MX": ("20 mx2.mail.test.", "10 mx1.mail.test.")}),
    "text.test": Reply(records={"TXT": ('"v=spf1 " "-all"',)}),
    "alias.test": Reply(records={"CNAME": ("chat.test.",)}),
    "srv.test": Reply(records={"SRV": ("0 5 5222 xmpp.chat.test.",)}),
    "caa.test": Reply(records={"CAA": ('0 issue "letsencrypt.org"',)}),
}


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackDns]:
    with LoopbackDns(ZONE) as running:
        yield running


def dns_step(server: LoopbackDns, name: str, **fields: Any) -> dict[str, Any]:
    query = {"name": name, "server": server.nameserver}
    for key in ("type", "transport"):
        if key in fields:
            query[key] = fields.pop(key)
    return {"name": "resolve", "dns": query, **fields}


def figures(result: Any, index: int = 0) -> DnsFigures:
    found = result.steps[index].figures
    assert isinstance(found, DnsFigures)
    return found


def asked(server: LoopbackDns, name: str) -> list[Query]:
    return [query for query in server.queries if query.name == name]


async def test_an_answer_passes_with_its_records(server: LoopbackDns) -> None:
    result = await run(plan_of(dns_step(server, "chat.test")))

    assert result.status == "up", result
    step = result.steps[0]
    assert step.kind == "dns"
    assert step.message == "NOERROR, 2 A records"
    assert step.http_status is None
    seen = figures(result)
    assert seen.rcode == "NOERROR"
    assert seen.answers == 2
    assert seen.ttl == 60
    assert seen.server == server.nameserver
    assert seen.transport == "udp"
    assert seen.query_seconds is not None
    assert seen.query_seconds > 0


@pytest.mark.parametrize(
    ("name", "rcode"), [("gone.test", "NXDOMAIN"), ("broken.test", "SERVFAIL"),
                        ("refused.test", "REFUSED")]
)  # fmt: skip
async def test_an_unexpected_rcode_is_dns_rcode(server: LoopbackDns, name: str, rcode: str) -> None:
    result = await run(plan_of(dns_step(server, name)))

    assert result.reason == "dns_rcode"
    assert result.message == f"resolve: {rcode} for A {name} from {server.nameserver}, " + (
        "expected NOERROR"
    )
    assert figures(result).rcode == rcode


async def test_an_expected_nxdomain_passes(server: LoopbackDns) -> None:
    result = await run(plan_of(dns_step(server, "gone.test", expect={"rcode": "nxdomain"})))
    assert result.status == "up", result


async def test_no_record_of_the_type_is_dns_no_answer(server: LoopbackDns) -> None:
    result = await run(plan_of(dns_step(server, "chat.test", type="AAAA")))

    assert result.reason == "dns_no_answer"
    assert result.message == (
        f"resolve: no AAAA record for chat.test (NOERROR, empty answer from {server.nameserver})"
    )


async def test_a_truncated_udp_answer_is_asked_again_over_tcp(server: LoopbackDns) -> None:
    result = await run(plan_of(dns_step(server, "big.test", extract={"ip": "answers[0]"})))

    assert result.status == "up", result
    assert [query.transport for query in asked(server, "big.test")][-2:] == ["udp", "tcp"]
    seen = figures(result)
    assert seen.truncated == 1
    assert seen.transport == "tcp"


async def test_transport_tcp_asks_over_tcp_only(server: LoopbackDns) -> None:
    before = len(asked(server, "mail.test"))
    result = await run(plan_of(dns_step(server, "mail.test", type="MX", transport="TCP")))

    assert result.status == "up", result
    assert [query.transport for query in asked(server, "mail.test")[before:]] == ["tcp"]


async def test_a_slow_server_is_cut_by_the_deadline_with_what_it_asked(
    server: LoopbackDns,
) -> None:
    result = await run(plan_of(dns_step(server, "slow.test"), timeout="0.5s"))

    assert result.reason == "timeout"
    assert result.message == (
        f"resolve: DNS server {server.nameserver} did not answer A slow.test over udp "
        "(journey deadline 0.5s)"
    )


async def test_without_a_server_the_top_level_dns_servers_are_asked(
    server: LoopbackDns,
) -> None:
    """The servers probes resolve names with (`dns.servers`), not /etc/resolv.conf's."""
    before = len(asked(server, "chat.test"))
    resolver = ProbeResolver(DnsConfig(servers=[server.nameserver], timeout=2.0))
    try:
        step = {"name": "resolve", "dns": {"name": "chat.test"}}
        result = await run(plan_of(step), resolver=resolver)
    finally:
        await resolver.close()

    assert result.status == "up", result
    assert figures(result).server == server.nameserver
    assert len(asked(server, "chat.test")) == before + 1


async def test_without_a_server_a_silent_top_level_server_is_timeout_after_its_bound() -> None:
    with LoopbackDns({"chat.test": Reply(silent=True)}) as silent:
        resolver = ProbeResolver(DnsConfig(servers=[silent.nameserver], timeout=0.3))
        try:
            step = {"name": "resolve", "dns": {"name": "chat.test"}}
            result = await run(plan_of(step, timeout="5s"), resolver=resolver)
        finally:
            await resolver.close()

    assert result.reason == "timeout", result
    assert result.message == (
        f"resolve: no DNS answer to A chat.test from {silent.nameserver} over udp"
    )
    assert result.duration_seconds < 2.0, "bounded by dns.timeout, not the journey's 5s"


async def test_a_refused_tcp_port_is_connect_refused() -> None:
    port = await refused_port()
    step = {"name": "resolve", "dns": {"name": "chat.test", "server": f"127.0.0.1:{port}",
                                       "transport": "tcp"}}  # fmt: skip
    result = await run(plan_of(step))
    assert result.reason == "connect_refused", result


@pytest.mark.parametrize(
    ("name", "record_type", "answers"),
    [
        ("mail.test", "MX", ["10 mx1.mail.test", "20 mx2.mail.test"]),
        ("text.test", "TXT", ["v=spf1 -all"]),
        ("alias.test", "CNAME", ["chat.test"]),
        ("srv.test", "SRV", ["0 5 5222 xmpp.chat.test"]),
        ("caa.test", "CAA", ['0 issue "letsencrypt.org"']),
    ],
)
async def test_answers_are_strings_a_later_step_can_use(
    server: LoopbackDns, name: str, record_type: str, answers: list[str]
) -> None:
    # The document's answers, shown by a JSON assertion that fails on purpose.
    step = dns_step(
        server, name, type=record_type, expect={"json": [{"query": "answers", "equals": []}]}
    )
    result = await run(plan_of(step))

    assert result.reason == "assertion_failed"
    assert result.steps[0].assertions[0].actual == json.dumps(answers)


async def test_answers_matches_and_min_count(server: LoopbackDns) -> None:
    matches = dns_step(server, "chat.test", expect={"answers": {"matches": r"^10\."}})
    result = await run(plan_of(matches))
    assert result.reason == "assertion_failed"
    assert result.message == "resolve: no A record for chat.test matches /^10\\./: " + (
        "127.0.0.1, 127.0.0.2"
    )

    enough = dns_step(server, "chat.test", expect={"answers": {"min_count": 3}})
    result = await run(plan_of(enough))
    assert result.reason == "assertion_failed"
    assert result.message == "resolve: 2 A records for chat.test, expected at least 3"


async def test_an_extracted_name_that_is_no_dns_name_is_extraction_failed(
    server: LoopbackDns,
) -> None:
    first = dns_step(server, "text.test", type="TXT", extract={"label": "answers[0]"})
    second = {**dns_step(server, "x{{ label }}" + "a" * 60 + ".test"), "name": "again"}
    result = await run(plan_of(first, second))

    assert result.reason == "extraction_failed"
    assert result.failed_step == "again"
    assert "cannot ask about" in result.message


def test_every_dnspython_error_of_the_modules_called_has_a_row() -> None:
    modules = ["dns.exception", "dns.message", "dns.query", "dns.name", "dns.rcode"]
    raised = {
        cls
        for name in modules
        for cls in vars(importlib.import_module(name)).values()
        if isinstance(cls, type)
        and issubclass(cls, dns.exception.DNSException)
        and cls.__module__ == name
    }
    missing = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in raised - set(DNS_ERRORS))
    assert not missing, f"add a row to dns.DNS_ERRORS for: {', '.join(missing)}"
    assert len(raised) >= 35


@pytest.mark.parametrize(
    ("exc", "reason", "message"),
    [
        (dns.exception.Timeout(), "timeout",
         "no DNS answer to A chat.test from 127.0.0.1:5353 over udp"),
        (dns.query.BadResponse(), "unexpected_status",
         "an answer to another question from 127.0.0.1:5353: A DNS query response does not "
         "respond to the question asked."),
        (dns.message.ShortHeader(), "unexpected_status",
         "invalid DNS response from 127.0.0.1:5353: The DNS packet passed to from_wire() is "
         "too short."),
        (dns.resolver.NoResolverConfiguration(), "dns",
         "no DNS server to ask: set server, or configure /etc/resolv.conf"),
        (ConnectionRefusedError(111, "Connection refused"), "connect_refused",
         "connection refused by 127.0.0.1:5353: [Errno 111] Connection refused"),
    ],
)  # fmt: skip
def test_error_reason(exc: BaseException, reason: str, message: str) -> None:
    query = _Query("chat.test", "A", "udp", [("127.0.0.1", 5353)])
    query.progress.stage = EXCHANGING
    assert classify_dns_error(exc, query, Redactor(())) == (reason, message)
