"""The new kinds inside one journey, with values extracted by one kind used by the next."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServeApp
from tests.hostile.dns_server import LoopbackDns, answer
from tests.hostile.tls import TlsCase, expiring_cert

from ..conftest import Target, build_target_app
from ..journeys import plan_of, run


@pytest.fixture(scope="module")
def resolver() -> Iterator[LoopbackDns]:
    with LoopbackDns({"chat.test": answer("127.0.0.1")}) as running:
        yield running


def journey(resolver: LoopbackDns, port: int, case: TlsCase) -> list[dict[str, Any]]:
    """Resolve the chat host, check its certificate has 14 days left, then load the API."""
    tls = {"ca_file": str(case.ca_path)}
    return [
        {
            "name": "resolve",
            "dns": {"name": "chat.test", "server": resolver.nameserver},
            "extract": {"chat_ip": "answers[0]"},
        },
        {
            "name": "certificate",
            "certificate": {"host": "{{ chat_ip }}", "port": port},
            "tls": tls,
            "expect": {"cert_min_days": 14},
            "extract": {"cert_issuer": "issuer"},
        },
        {
            "name": "history",
            "request": {
                "url": f"https://{{{{ chat_ip }}}}:{port}/echo?status=200",
                "headers": {"Authorization": "{{ cert_issuer }}"},
            },
            "tls": tls,
            # The origin comes from the DNS answer: Authorization goes only where listed.
            "send_secrets_to": [f"https://127.0.0.1:{port}"],
            "expect": {"json": [{"query": "auth", "contains": "Testing CA"}]},
        },
    ]


async def test_dns_then_certificate_then_request(
    resolver: LoopbackDns, serve_app: ServeApp, tmp_path: Path
) -> None:
    case = expiring_cert(tmp_path, days=60)
    url = await serve_app(build_target_app(Target(url="")), ssl_context=case.server_context)
    port = int(url.rsplit(":", 1)[1])
    result = await run(plan_of(*journey(resolver, port, case)))

    assert result.status == "up", result
    assert [step.kind for step in result.steps] == ["dns", "certificate", "request"]
    assert [step.http_status for step in result.steps] == [None, None, 200]


async def test_a_certificate_with_three_days_left_stops_the_journey_there(
    resolver: LoopbackDns, serve_app: ServeApp, tmp_path: Path
) -> None:
    case = expiring_cert(tmp_path, days=3)
    url = await serve_app(build_target_app(Target(url="")), ssl_context=case.server_context)
    port = int(url.rsplit(":", 1)[1])
    result = await run(plan_of(*journey(resolver, port, case)))

    assert result.reason == "cert_expiring"
    assert result.failed_step == "certificate"
    assert [step.name for step in result.steps] == ["resolve", "certificate"]
