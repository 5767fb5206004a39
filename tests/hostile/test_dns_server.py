"""The loopback DNS server answers each name as told, over UDP and TCP (dnspython as client)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from .dns_server import NEVER, NXDOMAIN, SERVFAIL, LoopbackDns, Query, Reply, answer


@pytest.fixture
def server() -> Iterator[LoopbackDns]:
    with LoopbackDns(
        {
            "api.test": answer("127.0.0.1", "::1"),
            "never.test": NEVER,
            "slow.test": answer("127.0.0.2", delay=0.4),
            "broken.test": SERVFAIL,
            "text.test": Reply(records={"TXT": ('"hello"',)}),
        }
    ) as running:
        yield running


async def ask(
    server: LoopbackDns, name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 5
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, "127.0.0.1", port=server.port, timeout=timeout)


def addresses(response: dns.message.Message) -> list[str]:
    return [rdata.to_text() for rrset in response.answer for rdata in rrset]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_answers_each_family_from_its_records(server: LoopbackDns, tcp: bool) -> None:
    a = await ask(server, "API.test.", tcp=tcp)  # any case, trailing dot or not
    aaaa = await ask(server, "api.test", "AAAA", tcp=tcp)
    assert (a.rcode(), addresses(a)) == (dns.rcode.NOERROR, ["127.0.0.1"])
    assert (aaaa.rcode(), addresses(aaaa)) == (dns.rcode.NOERROR, ["::1"])
    transport = "tcp" if tcp else "udp"
    assert server.queries == [
        Query("API.test", "A", transport),
        Query("api.test", "AAAA", transport),
    ]


async def test_a_type_the_name_lacks_is_an_empty_answer(server: LoopbackDns) -> None:
    response = await ask(server, "text.test", "A")
    assert (response.rcode(), addresses(response)) == (dns.rcode.NOERROR, [])
    txt = await ask(server, "text.test", "TXT")
    assert addresses(txt) == ['"hello"']


async def test_unknown_names_are_nxdomain_and_errors_are_sent_as_told(server: LoopbackDns) -> None:
    assert (await ask(server, "other.test")).rcode() == dns.rcode.NXDOMAIN
    assert (await ask(server, "broken.test")).rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_a_silent_name_gets_no_answer_but_is_heard(server: LoopbackDns, tcp: bool) -> None:
    with pytest.raises(dns.exception.Timeout):
        await ask(server, "never.test", tcp=tcp, timeout=0.3)
    assert server.names_asked() == {"never.test"}
    # The server is not stuck behind it.
    assert addresses(await ask(server, "api.test", tcp=tcp)) == ["127.0.0.1"]


async def test_a_slow_name_answers_after_its_delay(server: LoopbackDns) -> None:
    started = time.monotonic()
    response = await ask(server, "slow.test")
    assert addresses(response) == ["127.0.0.2"]
    assert time.monotonic() - started >= 0.4


async def test_replies_change_while_it_runs(server: LoopbackDns) -> None:
    server.set("api.test", NXDOMAIN)
    assert (await ask(server, "api.test")).rcode() == dns.rcode.NXDOMAIN


def test_a_typo_in_a_reply_fails_at_once() -> None:
    with pytest.raises(dns.rdatatype.UnknownRdatatype):
        Reply(records={"AA": ("127.0.0.1",)})
    with pytest.raises(ValueError, match="delay"):
        answer("127.0.0.1", delay=600)
