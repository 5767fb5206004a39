"""A header or body that carries a secret goes only to the origin the config names.

Two real servers on 127.0.0.1 (`A`, the configured origin, and `OTHER`, another port),
and `localhost` standing for another host on A's own port: every byte each one receives
is kept (tests/hostile/recorder.py), so "OTHER never receives the secret" is checked on
what arrived, in the forms it could take on the way. The ways a request can change
origin: a redirect (301, 302, 303, 307, 308, and https to http), and an extracted value
that ends up in the URL's origin (`{{ base_url }}{{ next }}` with `next` =
`@OTHER/stolen`, or a whole URL from the target). A step opts in to more origins with
`send_secrets_to`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from yarl import URL

from tests.hostile.dns import StaticResolver
from tests.hostile.recorder import Received, RecordingServer
from tests.hostile.tls import valid_cert
from tests.probe.journeys import plan_of, run, step
from uptime_probe.config import ConfigError, parse_config
from uptime_probe.config.origin import parse_origin
from uptime_probe.probe import CheckResult, Status

SECRET = "sk_Origin/Secret+Key=42"
HEADERS = {"X-Api-Key": "{{ token }}", "Authorization": "Bearer {{ token }}"}
RESOLVER = StaticResolver({"localhost": "127.0.0.1"})


def secret_forms(secret: str = SECRET) -> dict[str, bytes]:
    return {
        "plain": secret.encode(),
        "url-encoded": quote(secret, safe="").encode(),
        "url-encoded, / kept": quote(secret).encode(),
        "form-encoded": quote_plus(secret).encode(),
        "base64": base64.b64encode(secret.encode()).rstrip(b"="),
        "json-escaped": json.dumps(secret)[1:-1].encode(),
    }


def carries_secret(request: Received) -> list[str]:
    return [name for name, form in secret_forms().items() if form in request.raw]


def assert_never_received(requests: list[Received]) -> None:
    for request in requests:
        found = carries_secret(request)
        assert not found, f"{request.request_line!r} carried the secret ({', '.join(found)})"


@pytest.fixture
async def a() -> AsyncIterator[RecordingServer]:
    async with RecordingServer() as server:
        yield server


@pytest.fixture
async def other() -> AsyncIterator[RecordingServer]:
    async with RecordingServer() as server:
        yield server


def by_host(server: RecordingServer, host: str) -> list[Received]:
    return [r for r in server.received if (r.header("Host") or "").startswith(host)]


def withheld(message: str) -> set[str]:
    """The header names a step's message says were withheld: `withheld A, B from ...`."""
    found = re.search(r"withheld (.+?) from ", message)
    return set(found.group(1).split(", ")) if found else set()


def message_of(result: CheckResult, name: str) -> str:
    return next(s.message for s in result.steps if s.name == name)


# --- redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("elsewhere", ["other-port", "other-host"])
async def test_a_redirect_to_another_origin_gets_no_secret_header(
    a: RecordingServer, other: RecordingServer, status: int, elsewhere: str
) -> None:
    if elsewhere == "other-port":
        location, landed = f"{other.url}/landing", other
    else:  # the same server, by a name that is another origin
        location, landed = f"http://localhost:{a.port}/landing", a
    a.route("/start", status, headers=[("Location", location)])
    plan = plan_of(step(a.url + "/start", headers=HEADERS), secrets={"token": SECRET})

    result = await run(plan, resolver=RESOLVER)

    assert result.status is Status.UP, result
    assert carries_secret(a.to("/start")[0]), "the configured origin gets the secret"
    assert len(landed.to("/landing")) == 1, "the redirect was followed"
    assert_never_received(landed.to("/landing"))
    message = message_of(result, "fetch")
    assert withheld(message) == {"X-Api-Key", "Authorization"}, message
    assert "/landing" not in message
    assert SECRET not in repr(result)


@pytest.mark.parametrize("where", ["defaults", "check"])
async def test_secret_headers_from_the_check_or_defaults_are_withheld_too(
    a: RecordingServer, other: RecordingServer, where: str
) -> None:
    a.route("/start", 302, headers=[("Location", f"{other.url}/landing")])
    plan = plan_of(
        step(a.url + "/start"),
        secrets={"token": SECRET},
        **{where: {"headers": {"X-Api-Key": "{{ token }}"}}},
    )

    result = await run(plan)

    assert result.status is Status.UP, result
    assert carries_secret(a.to("/start")[0])
    assert len(other.received) == 1
    assert_never_received(other.received)
    assert "X-Api-Key" in message_of(result, "fetch")


async def test_an_https_to_http_downgrade_gets_no_secret(
    other: RecordingServer, tmp_path: Path
) -> None:
    case = valid_cert(tmp_path)
    async with RecordingServer(ssl_context=case.server_context) as secure:
        secure.route("/start", 302, headers=[("Location", f"{other.url}/landing")])
        plan = plan_of(
            step(secure.url + "/start", headers=HEADERS, tls={"ca_file": str(case.ca_path)}),
            secrets={"token": SECRET},
        )

        result = await run(plan)

        assert result.status is Status.UP, result
        assert carries_secret(secure.to("/start")[0])
    assert len(other.received) == 1
    assert_never_received(other.received)
    assert "X-Api-Key" in message_of(result, "fetch")


@pytest.mark.parametrize("status", [307, 308])
async def test_a_secret_body_is_never_replayed_to_another_origin(
    a: RecordingServer, other: RecordingServer, status: int
) -> None:
    a.route("/start", status, headers=[("Location", f"{other.url}/landing")])
    plan = plan_of(
        step(a.url + "/start", method="POST", json={"key": "{{ token }}"}),
        secrets={"token": SECRET},
    )

    result = await run(plan)

    assert carries_secret(a.to("/start")[0])
    assert other.received == [], "a 307/308 would replay the body: not followed"
    assert result.reason == "unexpected_status", result
    failed = result.steps[0]
    assert failed.http_status == status
    assert "body" in failed.message, failed.message
    assert "send_secrets_to" in failed.message
    assert SECRET not in repr(result)


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_a_redirect_that_drops_the_body_is_followed_without_it(
    a: RecordingServer, other: RecordingServer, status: int
) -> None:
    a.route("/start", status, headers=[("Location", f"{other.url}/landing")])
    plan = plan_of(
        step(a.url + "/start", method="POST", json={"key": "{{ token }}"}, headers=HEADERS),
        secrets={"token": SECRET},
    )

    result = await run(plan)

    assert result.status is Status.UP, result
    assert [r.method for r in other.received] == ["GET"]
    assert_never_received(other.received)


async def test_a_redirect_within_the_origin_keeps_the_secret(a: RecordingServer) -> None:
    a.route("/start", 302, headers=[("Location", "/landing")])
    plan = plan_of(step(a.url + "/start", headers=HEADERS), secrets={"token": SECRET})

    result = await run(plan)

    assert result.status is Status.UP, result
    assert carries_secret(a.to("/landing")[0])
    assert "withheld" not in message_of(result, "fetch")


async def test_a_chain_back_to_the_configured_origin_sends_the_secret_there_only(
    a: RecordingServer, other: RecordingServer
) -> None:
    a.route("/start", 302, headers=[("Location", f"{other.url}/bounce")])
    other.route("/bounce", 302, headers=[("Location", f"{a.url}/landing")])
    plan = plan_of(step(a.url + "/start", headers=HEADERS), secrets={"token": SECRET})

    result = await run(plan)

    assert result.status is Status.UP, result
    assert_never_received(other.received)
    assert carries_secret(a.to("/landing")[0])


async def test_send_secrets_to_allows_a_listed_origin(
    a: RecordingServer, other: RecordingServer
) -> None:
    a.route("/start", 307, headers=[("Location", f"{other.url}/landing")])
    plan = plan_of(
        step(
            a.url + "/start",
            method="POST",
            json={"key": "{{ token }}"},
            headers=HEADERS,
            send_secrets_to=[other.url.upper() + "/"],
        ),
        secrets={"token": SECRET},
    )

    result = await run(plan)

    assert result.status is Status.UP, result
    landed = other.to("/landing")[0]
    assert landed.header("X-Api-Key") == SECRET
    assert landed.header("Authorization") == f"Bearer {SECRET}"
    assert SECRET.encode() in landed.body
    assert "withheld" not in message_of(result, "fetch")


async def test_headers_without_a_secret_still_go_everywhere(
    a: RecordingServer, other: RecordingServer
) -> None:
    a.route("/start", 302, headers=[("Location", f"{other.url}/landing")])
    plan = plan_of(step(a.url + "/start", headers={"X-Trace": "probe-{{ trace }}"}),
                   variables={"trace": "t1"})  # fmt: skip

    result = await run(plan)

    assert result.status is Status.UP, result
    assert other.received[0].header("X-Trace") == "probe-t1"
    assert "withheld" not in message_of(result, "fetch")


# --- extracted values that move the request ------------------------------------------------


def journey(a: RecordingServer, url: str, **fields: Any) -> dict[str, Any]:
    """A first step that extracts `next` from A, then a step to `url` with the secret."""
    return {
        "steps": [
            step(a.url + "/next", name="first", extract={"next": "next"}),
            step(url, name="second", **{"headers": HEADERS, **fields}),
        ],
        "secrets": {"token": SECRET},
        "variables": {"base_url": a.url},
    }


@pytest.mark.parametrize("elsewhere", ["other-port", "other-host"])
async def test_an_extracted_value_that_moves_the_origin_gets_no_secret(
    a: RecordingServer, other: RecordingServer, elsewhere: str
) -> None:
    if elsewhere == "other-port":
        value, landed, host = f"@127.0.0.1:{other.port}/stolen", other, "127.0.0.1"
    else:
        value, landed, host = f"@localhost:{a.port}/stolen", a, "localhost"
    a.route("/next", json_body={"next": value})
    spec = journey(a, "{{ base_url }}{{ next }}")
    plan = plan_of(*spec.pop("steps"), **spec)

    # Before: OTHER got the key; with Authorization the run failed as `internal`.
    result = await run(plan, resolver=RESOLVER)

    stolen = [r for r in landed.to("/stolen") if (r.header("Host") or "").startswith(host)]
    assert len(stolen) == 1, landed.received
    assert_never_received(stolen)
    message = message_of(result, "second")
    assert withheld(message) == {"X-Api-Key", "Authorization"}, message
    assert SECRET not in repr(result)


async def test_a_whole_url_from_the_target_gets_no_secret_unless_listed(
    a: RecordingServer, other: RecordingServer
) -> None:
    a.route("/next", json_body={"next": f"{other.url}/status"})
    spec = journey(a, "{{ next }}")
    result = await run(plan_of(*spec.pop("steps"), **spec))

    assert len(other.to("/status")) == 1
    assert_never_received(other.received)
    assert "withheld" in message_of(result, "second")

    spec = journey(a, "{{ next }}", send_secrets_to=[other.url])
    result = await run(plan_of(*spec.pop("steps"), **spec))

    assert result.status is Status.UP, result
    assert other.to("/status")[-1].header("X-Api-Key") == SECRET


async def test_an_extracted_origin_change_with_a_secret_body_is_not_sent(
    a: RecordingServer, other: RecordingServer
) -> None:
    a.route("/next", json_body={"next": f"@127.0.0.1:{other.port}/stolen"})
    spec = journey(a, "{{ base_url }}{{ next }}", method="POST", json={"k": "{{ token }}"})
    result = await run(plan_of(*spec.pop("steps"), **spec))

    assert other.received == []
    assert result.reason == "extraction_failed", result
    assert "body" in message_of(result, "second")
    assert SECRET not in repr(result)


async def test_an_extracted_origin_change_with_a_secret_in_the_url_is_not_sent(
    a: RecordingServer, other: RecordingServer
) -> None:
    a.route("/next", json_body={"next": f"{other.url}/stolen"})
    spec = journey(a, "{{ next }}?key={{ token }}")
    result = await run(plan_of(*spec.pop("steps"), **spec))

    assert other.received == []
    assert result.reason == "extraction_failed", result
    assert "URL carries a secret" in message_of(result, "second")


async def test_an_extracted_path_on_the_configured_origin_keeps_the_secret(
    a: RecordingServer,
) -> None:
    a.route("/next", json_body={"next": "/landing?page=2"})
    spec = journey(a, "{{ base_url }}{{ next }}")
    result = await run(plan_of(*spec.pop("steps"), **spec))

    assert result.status is Status.UP, result
    assert a.to("/landing")[0].target == "/landing?page=2"
    assert carries_secret(a.to("/landing")[0])


# --- origins and the allow-list at load ----------------------------------------------------


@pytest.mark.parametrize(
    ("one", "two", "same"),
    [
        ("https://h.example:8443", "http://h.example:8443", False),
        ("http://127.0.0.1:8080", "http://localhost:8080", False),
        ("http://h.example", "http://h.example:80", True),
        ("https://H.Example", "HTTPS://h.example:443", True),
        ("http://h.example:8080", "http://h.example:8081", False),
    ],
)
def test_an_origin_is_scheme_host_and_port(one: str, two: str, same: bool) -> None:
    assert (parse_origin(one) == parse_origin(two)) is same
    assert (parse_origin(one) == parse_origin(str(URL(two)))) is same


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("https://auth.example.com/login", "an origin has no path"),
        ("ftp://auth.example.com", "http:// or https://"),
        ("auth.example.com", "http:// or https://"),
        ("https://user@auth.example.com", "no user"),
        ("https://auth.example.com?x=1", "no path, query or fragment"),
        ("https://", "no host"),
    ],
)
def test_send_secrets_to_takes_origins_only(value: str, words: str) -> None:
    document = {
        "checks": [
            {
                "name": "c",
                "steps": [
                    {
                        "name": "s",
                        "request": {"url": "http://127.0.0.1:1/"},
                        "send_secrets_to": [value],
                    }
                ],
            }
        ]
    }
    with pytest.raises(ConfigError) as error:
        parse_config(json.dumps(document), env={})
    issue = error.value.issues[0]
    assert issue.path == ("checks", 0, "steps", 0, "send_secrets_to", 0), issue
    assert words in issue.message, issue.message
