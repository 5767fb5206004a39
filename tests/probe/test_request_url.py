"""The request target a step sends, byte for byte, read off the socket by a real server.

- the URL as configured goes out with the encoding it was written in
  (`?next=https%3A%2F%2Fexample.com%2F` stays so, `%7E` is not turned into `~`);
- a value extracted from a target is one path segment in a path and one value in a
  query: it can never add segments, climb with `..`, start a query or a fragment;
- configured `variables` and `secrets` are inserted as written, and `{{ name | raw }}`
  inserts an extracted value as written when a config really wants a path from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.hostile.recorder import RecordingServer
from tests.probe.journeys import plan_of, run, step
from uptime_probe.config import ConfigError, parse_config
from uptime_probe.config.template import Template
from uptime_probe.probe import Status
from uptime_probe.probe.request_url import RequestUrl

SECRET = "tok-123"


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    async with RecordingServer() as recording:
        yield recording


async def sent_target(server: RecordingServer, url: str, value: Any = None, **fields: Any) -> str:
    """The request target of a step to `url`, after a step that extracted `value`."""
    variables = {"base_url": server.url, **fields.pop("variables", {})}
    steps = []
    if value is not None:
        server.route("/create", json_body={"value": value})
        steps.append(step(server.url + "/create", name="create", extract={"value": "value"}))
    steps.append(step(url, name="use", **fields))
    plan = plan_of(
        *steps,
        variables=variables,
        secrets={"token": SECRET},
    )
    result = await run(plan)
    assert result.status is Status.UP, result
    return server.received[-1].target


# --- item 6: extracted values are encoded for where they stand -------------------------


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        pytest.param(
            "../../admin/delete?all=1#", "..%2F..%2Fadmin%2Fdelete%3Fall%3D1%23", id="issue"
        ),
        pytest.param("..", "%2E%2E", id="dot-dot"),
        pytest.param(".", "%2E", id="dot"),
        pytest.param("a/b", "a%2Fb", id="slash"),
        pytest.param("50%", "50%25", id="percent"),
        pytest.param("%2e%2e", "%252e%252e", id="encoded-dots"),
        pytest.param("a\r\nX-Injected: 1", "a%0D%0AX-Injected%3A%201", id="crlf"),
        pytest.param("\x00\x1f\x7f", "%00%1F%7F", id="controls"),
        pytest.param("ü b", "%C3%BC%20b", id="non-ascii-space"),
        pytest.param("a;b=c,d:e@f&g+h", "a%3Bb%3Dc%2Cd%3Ae%40f%26g%2Bh", id="sub-delims"),
        pytest.param("t-1.2_x~", "t-1.2_x~", id="unreserved-as-is"),
        pytest.param("...", "...", id="three-dots-is-a-name"),
    ],
)
async def test_an_extracted_value_in_a_path_is_one_segment(
    server: RecordingServer, value: str, segment: str
) -> None:
    target = await sent_target(
        server,
        "{{ base_url }}/tasks/{{ value }}/cancel",
        value,
        method="POST",
        headers={"Authorization": "Bearer {{ token }}"},
    )
    # Before: `POST /admin/delete?all=1` with the bearer token.
    assert target == f"/tasks/{segment}/cancel"
    cancel = server.received[-1]
    assert cancel.request_line == f"POST /tasks/{segment}/cancel HTTP/1.1"
    assert cancel.header("Authorization") == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a&b=c#d e+f", "a%26b%3Dc%23d%20e%2Bf"),
        ("https://example.com/?x=1", "https%3A%2F%2Fexample.com%2F%3Fx%3D1"),
        ("..", ".."),  # dots only climb in a path
    ],
)
async def test_an_extracted_value_in_a_query_is_one_value(
    server: RecordingServer, value: str, encoded: str
) -> None:
    target = await sent_target(server, "{{ base_url }}/search?q={{ value }}&page=1", value)
    assert target == f"/search?q={encoded}&page=1"


async def test_raw_inserts_an_extracted_value_as_written(server: RecordingServer) -> None:
    target = await sent_target(server, "{{ base_url }}/files/{{ value | raw }}", "a/b/c.txt?v=2")
    assert target == "/files/a/b/c.txt?v=2"


async def test_configured_variables_are_inserted_as_written(server: RecordingServer) -> None:
    target = await sent_target(
        server,
        "{{ base_url }}{{ api }}/items/{{ value }}?key={{ token }}",
        "a/b",
        variables={"api": "/api/v2;tenant=a%2Fb"},
    )
    assert target == f"/api/v2;tenant=a%2Fb/items/a%2Fb?key={SECRET}"


def test_raw_is_the_only_filter() -> None:
    assert Template("{{ a|raw }}/{{  b  |  raw  }}/{{ c }}").names == {"a", "b", "c"}
    for bad in ("{{ a | upper }}", "{{ a | }}", "{{ raw a }}", "{{ a | raw | raw }}"):
        document = (
            "checks: [{name: c, steps: [{name: s, request: {url: "
            f'"http://127.0.0.1:1/{bad}"'
            "}}]}]"
        )
        with pytest.raises(ConfigError, match=r"expected \{\{ name \}\} or \{\{ name \| raw \}\}"):
            parse_config(document, env={})


# --- item 17: the configured encoding goes out verbatim ---------------------------------


@pytest.mark.parametrize(
    ("written", "target"),
    [
        pytest.param(
            "/cb?next=https%3A%2F%2Fexample.com%2F",
            "/cb?next=https%3A%2F%2Fexample.com%2F",
            id="issue",
        ),
        pytest.param("/a%2Fb/%7Euser/x%3Fy", "/a%2Fb/%7Euser/x%3Fy", id="path-escapes"),
        pytest.param("/s?x=a+b&y=%20&z=%2B&w=", "/s?x=a+b&y=%20&z=%2B&w=", id="query-escapes"),
        pytest.param("/p;v=1/q:r@s!$'()*,", "/p;v=1/q:r@s!$'()*,", id="sub-delims"),
        pytest.param("/caf%C3%A9/ü x?q=a b", "/caf%C3%A9/%C3%BC%20x?q=a%20b", id="unsendable-only"),
        pytest.param("", "/", id="no-path"),
        pytest.param("?q=%2F", "/?q=%2F", id="query-without-path"),
    ],
)
async def test_the_configured_url_is_sent_as_written(
    server: RecordingServer, written: str, target: str
) -> None:
    assert await sent_target(server, server.url + written) == target
    assert server.received[-1].request_line == f"GET {target} HTTP/1.1"


async def test_substitution_keeps_the_configured_encoding(server: RecordingServer) -> None:
    target = await sent_target(
        server,
        "{{ base_url }}/cb/{{ value }}?redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state={{ value }}",
        "x/y",
    )
    assert target == "/cb/x%2Fy?redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=x%2Fy"


# --- where a placeholder stands, without a server ---------------------------------------


@pytest.mark.parametrize(
    ("template", "rendered", "origin", "varies"),
    [
        (
            "{{ base }}/t/{{ v }}?q={{ v }}#{{ v }}",
            "http://h.test/t/a%2Fb?q=a%2Fb#a%2Fb",
            "http://h.test",
            False,
        ),
        ("{{ base }}{{ v }}", "http://h.testa/b", "http://h.test", True),
        ("{{ v }}/t/{{ w }}", "(not a URL)", None, True),
        ("http://{{ v }}.test/{{ w }}", "http://a/b.test/..%2F", None, True),
        ("{{ base }}/{{ v | raw }}/{{ w }}", "http://h.test/a/b/..%2F", "http://h.test", False),
        ("HTTP://H.Test:80/x?{{ w }}", "http://h.test/x?..%2F", "http://h.test", False),
    ],
)
def test_each_placeholder_is_encoded_for_where_it_stands(
    template: str, rendered: str, origin: str | None, varies: bool
) -> None:
    url = RequestUrl.compile(Template(template), {"base": "http://h.test"})
    assert (str(url.configured_origin) if url.configured_origin else None) == origin
    assert url.origin_varies is varies
    try:
        built = str(url.render({"v": "a/b", "w": "../"}))
    except ValueError:
        built = "(not a URL)"
    assert built == rendered
