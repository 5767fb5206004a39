"""The tcp kind against real TCP servers on 127.0.0.1: banners, silence, resets, TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hostile.server import refused_port
from tests.hostile.tls import (
    WRONG_HOST,
    expired_cert,
    self_signed_cert,
    valid_cert,
    wrong_host_cert,
)
from uptime_probe.probe.kinds.tcp import TcpFigures

from ..journeys import plan_of, run
from .conftest import (
    ServeTcp,
    answers_then_silent,
    banner,
    closes_after,
    floods,
    resets,
    silent_after,
)

SMTP = [
    {"receive": "^220 "},
    {"send": "EHLO probe.test\r\n", "receive": "^250 "},
    {"send": "QUIT\r\n", "receive": "^221 "},
]


def tcp_step(port: int, name: str = "smtp", **fields: Any) -> dict[str, Any]:
    tcp = {"host": "127.0.0.1", "port": port}
    for key in ("tls", "send", "exchanges"):
        if key in fields:
            tcp[key] = fields.pop(key)
    return {"name": name, "tcp": tcp, **fields}


def figures(result: Any, index: int = 0) -> TcpFigures:
    found = result.steps[index].figures
    assert isinstance(found, TcpFigures)
    return found


async def test_an_smtp_conversation_passes_exchange_by_exchange(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(banner)
    result = await run(plan_of(tcp_step(server.port, exchanges=SMTP)))

    assert result.status == "up", result
    step = result.steps[0]
    assert step.kind == "tcp"
    assert step.message == f"connected to 127.0.0.1:{server.port}, 3 exchanges"
    assert step.http_status is None
    seen = figures(result)
    assert seen.exchanges == 3
    assert seen.connect_seconds is not None
    assert seen.first_byte_seconds is not None
    assert seen.tls_seconds is None
    # "250-" continuation lines do not match "^250 ": the read went on to the last one.
    assert seen.bytes_received == len(
        b"220 mail.test ESMTP ready\r\n250-mail.test greets you\r\n250 SIZE 1000\r\n221 bye\r\n"
    )
    assert step.timings.connect > 0


async def test_send_and_receive_is_one_exchange(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(banner)
    result = await run(
        plan_of(tcp_step(server.port, send="PING\r\n", expect={"receive": r"^\+PONG$"}))
    )
    assert result.status == "up", result
    assert figures(result).exchanges == 1


async def test_connecting_alone_is_a_port_check(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(silent_after())
    result = await run(plan_of(tcp_step(server.port)))
    assert result.status == "up", result
    assert server.connections == 1


async def test_a_wrong_banner_then_close_is_assertion_failed(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(closes_after(b"554 no service here\r\n"))
    result = await run(plan_of(tcp_step(server.port, exchanges=SMTP)))

    assert result.reason == "assertion_failed"
    assert result.message == (
        f"smtp: 127.0.0.1:{server.port} closed the connection after 1 line without a line "
        "matching /^220 / (after 0 of 3 exchanges); last: '554 no service here'"
    )
    assert result.steps[0].response_sample == "554 no service here\r\n"


async def test_a_wrong_banner_on_an_open_connection_is_assertion_failed_at_the_deadline(
    serve_tcp: ServeTcp,
) -> None:
    server = await serve_tcp(silent_after(b"554 no service here\r\n"))
    result = await run(plan_of(tcp_step(server.port, exchanges=SMTP), timeout="0.5s"))

    assert result.reason == "assertion_failed"
    assert result.message == (
        f"smtp: connected to 127.0.0.1:{server.port}, no line matching /^220 / in 1 line "
        "received (after 0 of 3 exchanges) (journey deadline 0.5s)"
    )


async def test_a_silent_server_is_timeout_saying_where_it_waited(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(silent_after())
    result = await run(plan_of(tcp_step(server.port, exchanges=SMTP), timeout="0.5s"))

    assert result.reason == "timeout"
    assert result.message == (
        f"smtp: connected to 127.0.0.1:{server.port}, waiting for /^220 / after 0 of 3 "
        "exchanges (journey deadline 0.5s)"
    )


async def test_a_server_silent_mid_conversation_says_how_far_it_got(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(answers_then_silent(b"220 hi\r\n", b"250 ok\r\n"))
    result = await run(plan_of(tcp_step(server.port, exchanges=SMTP), timeout="0.5s"))

    assert result.reason == "timeout"
    assert result.message == (
        f"smtp: connected to 127.0.0.1:{server.port}, waiting for /^221 / after 2 of 3 "
        "exchanges (journey deadline 0.5s)"
    )


async def test_a_reset_is_connection_reset(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(resets)
    result = await run(plan_of(tcp_step(server.port, exchanges=SMTP)))
    assert result.reason == "connection_reset", result


async def test_a_refused_port_is_connect_refused() -> None:
    port = await refused_port()
    result = await run(plan_of(tcp_step(port, exchanges=SMTP)))
    assert result.reason == "connect_refused"
    assert result.message == (
        f"smtp: connection refused by 127.0.0.1:{port}: "
        f"[Errno 111] Connect call failed ('127.0.0.1', {port})"
    )


async def test_what_is_read_is_bounded_by_max_body(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(floods(64 * 1024 * 1024))
    result = await run(
        plan_of(tcp_step(server.port, expect={"receive": "^220 "}, max_body="256KiB"))
    )

    assert result.reason == "body_too_large"
    assert result.message == "smtp: received more than max_body 262144 bytes"
    assert figures(result).bytes_received <= 262144 + 65536


async def test_named_groups_and_lines_are_extracted_for_later_steps(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(banner)
    first = tcp_step(
        server.port,
        expect={"receive": r"^220 (?P<host>\S+) ESMTP"},
        extract={"mail_host": "groups.host", "banner": "lines[0]"},
    )
    second = tcp_step(server.port, name="again", send="EHLO {{ mail_host }}\r\n")
    result = await run(plan_of(first, second))
    assert result.status == "up", result
    assert server.connections == 2


async def test_json_assertions_judge_the_lines(serve_tcp: ServeTcp) -> None:
    server = await serve_tcp(banner)
    step = tcp_step(
        server.port,
        expect={"receive": "^220 ", "json": [{"query": "lines[0]", "contains": "Postfix"}]},
    )
    result = await run(plan_of(step))
    assert result.reason == "assertion_failed"
    assert result.message == (
        "smtp: lines[0] = \"220 mail.test ESMTP ready\", expected to contain 'Postfix'"
    )


async def test_over_tls_with_the_steps_tls_settings(serve_tcp: ServeTcp, tmp_path: Path) -> None:
    case = valid_cert(tmp_path)
    server = await serve_tcp(banner, ssl=case.server_context)
    step = {
        **tcp_step(server.port, tls=True, exchanges=SMTP),
        "tls": {"ca_file": str(case.ca_path)},
    }
    result = await run(plan_of(step))

    assert result.status == "up", result
    assert figures(result).tls_seconds is not None
    assert result.steps[0].timings.tls > 0


@pytest.mark.parametrize(
    ("make_case", "detail"),
    [
        (expired_cert, "certificate has expired"),
        (self_signed_cert, "self-signed certificate"),
    ],
)
async def test_a_rejected_certificate_is_tls(
    serve_tcp: ServeTcp, tmp_path: Path, make_case: Any, detail: str
) -> None:
    case = make_case(tmp_path)
    server = await serve_tcp(banner, ssl=case.server_context)
    step = {
        **tcp_step(server.port, tls=True, exchanges=SMTP),
        "tls": {"ca_file": str(case.ca_path)},
    }
    result = await run(plan_of(step))

    assert result.reason == "tls"
    assert result.message == (
        f"smtp: TLS certificate of 127.0.0.1:{server.port} rejected: {detail}"
    )


async def test_verify_false_talks_to_a_self_signed_server(
    serve_tcp: ServeTcp, tmp_path: Path
) -> None:
    case = self_signed_cert(tmp_path)
    server = await serve_tcp(banner, ssl=case.server_context)
    step = {**tcp_step(server.port, tls=True, exchanges=SMTP), "tls": {"verify": False}}
    result = await run(plan_of(step))
    assert result.status == "up", result


async def test_tls_server_name_is_the_name_sent_and_verified(
    serve_tcp: ServeTcp, tmp_path: Path
) -> None:
    """`tls.server_name`, as on an HTTP step: one backend, reached by IP, for its name."""
    case = wrong_host_cert(tmp_path)  # for other.example only
    server = await serve_tcp(banner, ssl=case.server_context)
    tls = {"ca_file": str(case.ca_path)}
    step = tcp_step(server.port, tls=True, exchanges=SMTP)

    named = await run(plan_of({**step, "tls": {**tls, "server_name": WRONG_HOST}}))
    unnamed = await run(plan_of({**step, "tls": tls}))

    assert named.status == "up", named
    assert unnamed.reason == "tls"
    assert "127.0.0.1" in unnamed.message
