"""Configs that validated but failed every run as `internal` (issue 13, items 10 and 20).

`internal` is reserved for uptime-probe's own bugs. Each input below, in the families the
issue names (YAML values with no JSON form in a `json:` body, header names and values
with control characters or outside the HTTP token, hosts a resolver cannot look up,
supplied by the config, by an extracted value or by a redirect), ends in exactly one of:

* a `ConfigError` at load, every issue on a line (`config_error` in the tables), or
* a real run against a real server on 127.0.0.1 with the named outcome, never `internal`.

Hosts run under three resolvers, because each fails on a bad name in its own way:
aiohttp's threaded one (`getaddrinfo` raises `UnicodeError` from the IDNA codec),
the default one, and one that answers 127.0.0.1 for any name, so that an `https` run
gets as far as the TLS server name (which `ssl` IDNA-encodes too).
"""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from uptime_probe.config import ConfigError
from uptime_probe.probe import CheckResult, Status

from .journeys import plan_of, run, step

ServeApp = Callable[..., Any]


class AnyNameResolver(AbstractResolver):
    """Every name resolves to 127.0.0.1: the run goes on to connect, and to TLS."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
        ]

    async def close(self) -> None:
        return None


RESOLVERS: dict[str, Callable[[], AbstractResolver | None]] = {
    "threaded": aiohttp.ThreadedResolver,
    "default": lambda: None,
    "any_name": AnyNameResolver,
}

BAD_HOSTS = {
    "empty_label": "a..b",
    "only_dots": "..",
    "leading_dot": ".example",
    "label_too_long": "x." + "a" * 64,
    "name_too_long": ".".join(["a" * 60] * 5),
    "non_ascii_empty_label": "b\u00fccher..de",
}


@pytest.fixture
async def target(serve_app: ServeApp) -> str:
    """`/ok`, `/echo` (the request's headers and JSON body), `/host?name=` (a document naming
    a host) and `/redirect?to=` (a 302 to exactly that text, unparsed)."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def echo(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response({"headers": dict(request.headers), "json": body})

    async def host(request: web.Request) -> web.Response:
        return web.json_response({"host": request.query["name"]})

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": request.query["to"]})

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/host", host)
    app.router.add_get("/redirect", redirect)
    return str(await serve_app(app))


async def outcome(
    *steps: dict[str, Any], resolver: AbstractResolver | None = None, **config: Any
) -> str:
    """`config_error` (every issue located), `up`, or the reason of a down run."""
    try:
        plan = plan_of(*steps, **config)
    except ConfigError as exc:
        unlocated = [str(issue) for issue in exc.issues if issue.line is None]
    else:
        unlocated = None
    if unlocated is not None:
        assert unlocated == []
        return "config_error"
    result = await run(plan, resolver=resolver)  # run() fails on any `internal`
    return result.reason or str(result.status)


# --- a json: body ----------------------------------------------------------------------------

JSON_BODIES = [
    pytest.param({"since": datetime.date(2025, 1, 1)}, "config_error", id="date"),
    pytest.param({"at": datetime.datetime(2025, 1, 1, 10, 0)}, "config_error", id="timestamp"),
    pytest.param(
        {"at": datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)}, "config_error", id="tz"
    ),
    pytest.param({"list": [1, {"deep": datetime.date(2025, 1, 1)}]}, "config_error", id="deep"),
    pytest.param({"blob": b"\x00\xff"}, "config_error", id="binary"),
    pytest.param({"tags": {"a", "b"}}, "config_error", id="set"),
    pytest.param({"ratio": float("nan")}, "config_error", id="nan"),
    pytest.param({"limit": float("inf")}, "config_error", id="infinity"),
    pytest.param({True: "on"}, "config_error", id="bool-key"),
    pytest.param({1: "one"}, "config_error", id="int-key"),
    pytest.param({None: "null"}, "config_error", id="null-key"),
    pytest.param({"since": "2025-01-01", "n": 10**30, "x": None, "f": 1.5}, "up", id="json"),
]


@pytest.mark.parametrize(("body", "expected"), JSON_BODIES)
async def test_a_json_body_is_json_or_a_config_error(target: str, body: Any, expected: str) -> None:
    sent = step(f"{target}/echo", method="POST", json=body, expect={"status": 200})
    assert await outcome(sent) == expected


async def test_a_json_expected_value_is_json_or_a_config_error(target: str) -> None:
    since = {"json": [{"query": "json.since", "equals": datetime.date(2025, 1, 1)}]}
    assert await outcome(step(f"{target}/echo", expect=since)) == "config_error"


# --- headers -------------------------------------------------------------------------------

HEADER_NAMES = [
    pytest.param("X-A\r\nX-Injected", "config_error", id="crlf"),
    pytest.param("X-A\n", "config_error", id="lf"),
    pytest.param("", "config_error", id="empty"),
    pytest.param("X Api Key", "config_error", id="space"),
    pytest.param("X-A:", "config_error", id="colon"),
    pytest.param("X\tA", "config_error", id="tab"),
    pytest.param("X\x00A", "config_error", id="nul"),
    pytest.param("X-\u00c4", "config_error", id="non-ascii"),
    pytest.param("X-A!#$%&'*+-.^_`|~9", "up", id="every-token-character"),
]


@pytest.mark.parametrize(("name", "expected"), HEADER_NAMES)
async def test_a_header_name_is_a_token_or_a_config_error(
    target: str, name: str, expected: str
) -> None:
    assert await outcome(step(f"{target}/echo", headers={name: "z"})) == expected


HEADER_VALUES = [
    pytest.param("a\nb", "config_error", id="lf"),
    pytest.param("a\r\nX-Injected: 1", "config_error", id="crlf"),
    pytest.param("a\rb", "config_error", id="cr"),
    pytest.param("a\x00b", "config_error", id="nul"),
    pytest.param("a\x7fb", "config_error", id="del"),
    pytest.param("token\n", "config_error", id="trailing-newline"),
    pytest.param("a\tb", "up", id="tab"),
    pytest.param("gr\u00fc\u00dfe", "up", id="non-ascii"),
]


@pytest.mark.parametrize(("value", "expected"), HEADER_VALUES)
async def test_a_static_header_value_is_one_line_or_a_config_error(
    target: str, value: str, expected: str
) -> None:
    assert await outcome(step(f"{target}/echo", headers={"X-Api-Key": value})) == expected
    # From a variable, the same: it is known at load.
    from_variable = step(f"{target}/echo", headers={"X-Api-Key": "{{ key }}"})
    try:
        plan = plan_of(from_variable, variables={"key": value})
    except ConfigError:
        assert expected == "config_error"
    else:
        assert expected == "up"
        assert (await run(plan)).status is Status.UP


async def test_an_extracted_header_value_with_a_line_break_is_extraction_failed(
    target: str,
) -> None:
    first = step(f"{target}/host?name=a%0D%0AX-Injected:%201", name="first", extract={"v": "host"})
    second = step(f"{target}/echo", name="second", headers={"X-Id": "{{ v }}"})
    assert await outcome(first, second) == "extraction_failed"


# --- hosts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", BAD_HOSTS.values(), ids=BAD_HOSTS.keys())
async def test_a_configured_host_no_resolver_can_look_up_is_a_config_error(host: str) -> None:
    for scheme in ("http", "HTTPS"):
        assert await outcome(step(f"{scheme}://{host}:8080/ok")) == "config_error"
        assert await outcome(step("{{ base }}/ok"), variables={"base": f"{scheme}://{host}"}) == (
            "config_error"
        )


def assert_named(result: CheckResult, resolver: str) -> None:
    """`dns` from a real resolver. The any-name resolver resolves what a real one refuses,
    so that run goes on as far as the name allows: plain HTTP never encodes an ASCII name
    (`up`), TLS encodes it as the server name (`dns` when the codec refuses it, else
    `tls` against the plain-HTTP test server). Never `internal` (run() asserts it), and
    never `extraction_failed`: the extraction worked."""
    outcome = result.reason or str(result.status)
    if resolver == "any_name":
        assert outcome in ("dns", "up", "tls"), result
    else:
        assert outcome == "dns", result
    if outcome == "dns":
        assert "valid DNS name" in result.message or "cannot resolve host" in result.message


@pytest.mark.parametrize("resolver", RESOLVERS.keys())
@pytest.mark.parametrize("host", BAD_HOSTS.values(), ids=BAD_HOSTS.keys())
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_an_extracted_host_no_resolver_can_look_up_fails_as_dns(
    target: str, scheme: str, host: str, resolver: str
) -> None:
    port = target.rsplit(":", 1)[1]
    first = step(f"{target}/host?name={host}", name="first", extract={"h": "host"})
    second = step(f"{scheme}://{{{{ h }}}}:{port}/ok", name="second")
    result = await run(plan_of(first, second), resolver=RESOLVERS[resolver]())
    assert_named(result, resolver)
    if result.reason is not None:
        assert result.failed_step == "second"


@pytest.mark.parametrize("resolver", RESOLVERS.keys())
@pytest.mark.parametrize("host", BAD_HOSTS.values(), ids=BAD_HOSTS.keys())
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_redirect_to_a_host_no_resolver_can_look_up_fails_as_dns(
    target: str, scheme: str, host: str, resolver: str
) -> None:
    port = target.rsplit(":", 1)[1]
    sent = step(f"{target}/redirect?to={scheme}://{host}:{port}/ok")
    result = await run(plan_of(sent), resolver=RESOLVERS[resolver]())
    assert_named(result, resolver)


# --- item 20: schemes in any case ------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["HTTP", "Http", "hTtP"])
async def test_an_http_scheme_in_any_case_loads_and_runs(target: str, scheme: str) -> None:
    url = scheme + target.removeprefix("http")
    ok = {"json": [{"query": "ok", "equals": True}]}
    assert await outcome(step(f"{url}/ok", expect=ok)) == "up"
    assert await outcome(step("{{ base }}/ok", expect=ok), variables={"base": url}) == "up"


async def test_an_https_scheme_in_any_case_loads_and_runs(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ok", ok)
    url = str(await serve_app(app, ssl_context=context))
    for scheme in ("HTTPS", "HtTpS"):
        mixed = scheme + url.removeprefix("https")
        plan = plan_of(step(f"{mixed}/ok", tls={"ca_file": "ca.pem"}), base_dir=tmp_path)
        result = await run(plan)
        assert result.status is Status.UP, result
