"""`uptime-probe check | validate | schema` as a user runs them: a subprocess, a real target."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from jsonschema import Draft202012Validator

ServeApp = Callable[..., Awaitable[str]]
SECRET = "cli-s3cret-token"
JSON_KEYS = {"check", "status", "reason", "step", "duration_seconds", "message"}

CONFIG = """\
variables:
  base_url: "${TARGET_URL}"
secrets:
  token: "${PROBE_TOKEN}"
checks:
  - name: homepage
    steps:
      - name: page
        request: {url: "{{ base_url }}/ok"}
        expect: {status: 200, json: [{query: ok, equals: true}]}
  - name: history_sidebar
    steps:
      - name: conversations
        request:
          url: "{{ base_url }}/echo"
          headers: {Authorization: "Bearer {{ token }}"}
        expect:
          json: [{query: "length(items)", gt: 0, reason: empty_history}]
  - name: slow_page
    steps:
      - name: page
        request: {url: "{{ base_url }}/ok"}
        expect: {json: [{query: ok, equals: false, severity: warning}]}
  - name: leaky_redirect
    steps:
      - name: login
        request:
          url: "{{ base_url }}/leak"
          headers: {Authorization: "Bearer {{ token }}"}
"""


@dataclass
class Cli:
    config: Path
    env: dict[str, str]

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uptime_probe.cli",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        async with asyncio.timeout(60):
            out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


def _target() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def echo(request: web.Request) -> web.Response:
        # A target that echoes what it was sent, secrets included.
        auth = request.headers.get("Authorization", "")
        return web.json_response({"items": [], "seen": auth})

    async def leak(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
        raise web.HTTPFound(f"/missing?token={auth}")

    async def hostile(request: web.Request) -> web.Response:
        # Markup, a CDATA end, a terminal escape, NUL, and the secret it was sent.
        auth = request.headers.get("Authorization", "")
        return web.json_response({"msg": f"<b>&\"']]>\x1b[31m\x00 {auth}"})

    app = web.Application()
    app.router.add_get("/hostile", hostile)
    app.router.add_get("/ok", ok)
    app.router.add_get("/echo", echo)
    app.router.add_get("/leak", leak)
    return app


@pytest.fixture
async def cli(serve_app: ServeApp, tmp_path: Path) -> Cli:
    url = await serve_app(_target())
    config = tmp_path / "probes.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "TARGET_URL": url, "PROBE_TOKEN": SECRET}
    env.pop("UPTIME_PROBE_CONFIG", None)
    return Cli(config, env)


def _assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        assert SECRET not in output
        assert "s3cret" not in output


async def test_check_prints_a_table_and_exits_1_when_a_check_is_down(cli: Cli) -> None:
    code, out, err = await cli("check", "-c", str(cli.config))
    assert code == 1, err
    header, *rows = out.splitlines()
    assert header.split() == ["CHECK", "STATUS", "REASON", "STEP", "DURATION", "MESSAGE"]
    table = {row.split()[0]: row.split(maxsplit=5) for row in rows}
    assert set(table) == {"homepage", "history_sidebar", "slow_page", "leaky_redirect"}
    assert table["homepage"][1:4] == ["up", "-", "-"]
    assert table["history_sidebar"][1:4] == ["down", "empty_history", "conversations"]
    assert table["history_sidebar"][5] == "conversations: length(items) = 0, expected > 0"
    assert table["slow_page"][1:4] == ["degraded", "-", "page"]
    assert table["leaky_redirect"][1:4] == ["down", "http_4xx", "login"]
    assert all(cells[4].endswith("s") for cells in table.values())
    _assert_no_secret(out, err)


async def test_check_json_lines(cli: Cli) -> None:
    code, out, err = await cli("check", "-c", str(cli.config), "--json")
    assert code == 1, err
    lines = [json.loads(line) for line in out.splitlines()]
    for line in lines:
        assert JSON_KEYS <= set(line) <= JSON_KEYS | {"http_status", "steps"}
        assert isinstance(line["duration_seconds"], float)
    by_check = {line["check"]: line for line in lines}
    assert by_check["homepage"] == {
        **by_check["homepage"],
        "status": "up",
        "reason": None,
        "step": None,
    }
    assert by_check["history_sidebar"]["reason"] == "empty_history"
    assert by_check["history_sidebar"]["step"] == "conversations"
    assert by_check["history_sidebar"]["message"] == (
        "conversations: length(items) = 0, expected > 0"
    )
    assert by_check["leaky_redirect"]["status"] == "down"
    _assert_no_secret(out, err)


@pytest.mark.parametrize(
    ("selection", "code", "checks"),
    [
        (["homepage"], 0, ["homepage"]),
        (["slow_page"], 0, ["slow_page"]),
        (["homepage", "history_sidebar"], 1, ["homepage", "history_sidebar"]),
    ],
)
async def test_check_selection_and_exit_code(
    cli: Cli, selection: list[str], code: int, checks: list[str]
) -> None:
    flags = [arg for name in selection for arg in ("--check", name)]
    returned, out, err = await cli("check", "-c", str(cli.config), "--json", *flags)
    assert returned == code, err
    assert [json.loads(line)["check"] for line in out.splitlines()] == checks


async def test_unknown_check_exits_2(cli: Cli) -> None:
    code, out, err = await cli("check", "-c", str(cli.config), "--check", "nope")
    assert code == 2
    assert out == ""
    assert "unknown check 'nope'" in err


async def test_config_error_exits_2_with_the_located_message(cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(CONFIG.replace("gt: 0", "greater: 0"))
    for command in ("check", "validate"):
        code, out, err = await cli(command, "-c", str(broken))
        assert code == 2
        assert out == ""
        assert "broken.yaml:18 checks[1].steps[0].expect.json[0]: unknown operator 'greater'" in err
        _assert_no_secret(err)


# Issue 13, item 9: tags PyYAML's safe constructor cannot read raised KeyError and
# AttributeError tracebacks (exit 1) from every command that loads a config.
UNREADABLE_TAGS = [
    ("location: !!bool maybe", "cannot read 'maybe' as !!bool"),
    ("location: !!timestamp x", "cannot read 'x' as !!timestamp"),
]


@pytest.mark.parametrize("command", ["validate", "check", "run"])
async def test_a_yaml_tag_it_cannot_read_exits_2_with_a_located_message(
    cli: Cli, tmp_path: Path, command: str
) -> None:
    broken = tmp_path / "broken.yaml"
    daemon_args = ["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")]
    for line, message in UNREADABLE_TAGS:
        broken.write_text(f"{line}\n{CONFIG}")
        args = [command, "-c", str(broken), *(daemon_args if command == "run" else [])]
        code, out, err = await cli(*args)
        assert code == 2, err
        assert "Traceback" not in out + err
        assert f"broken.yaml:1 (top level): invalid YAML: {message}" in err


@pytest.mark.parametrize("command", ["validate", "run"])
async def test_an_auth_token_from_a_set_but_empty_variable_exits_2(
    cli: Cli, tmp_path: Path, command: str
) -> None:
    """Issue 13, item 8: it loaded, and `Authorization: Bearer ` then opened the API."""
    config = tmp_path / "probes.yaml"
    config.write_text(f'server:\n  auth: {{bearer_token: "${{STATUS_TOKEN}}"}}\n{CONFIG}')
    cli.env["STATUS_TOKEN"] = ""
    daemon_args = ["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")]
    args = [command, "-c", str(config), *(daemon_args if command == "run" else [])]
    code, _out, err = await cli(*args)
    assert code == 2, err
    assert "probes.yaml:2 server.auth.bearer_token: credential is empty" in err


async def test_missing_config_exits_2(cli: Cli, tmp_path: Path) -> None:
    code, _out, err = await cli("validate", "-c", str(tmp_path / "absent.yaml"))
    assert code == 2
    assert "absent.yaml (top level): cannot read config" in err


async def test_validate_ok(cli: Cli) -> None:
    code, out, err = await cli("validate", "-c", str(cli.config))
    assert (code, err) == (0, "")
    assert out == f"{cli.config}: ok, 4 checks\n"


async def test_validate_warns_of_a_window_already_over_and_still_passes(
    cli: Cli, tmp_path: Path
) -> None:
    # A window left in the file after its maintenance must not stop the next start.
    config = tmp_path / "probes.yaml"
    config.write_text(
        CONFIG
        + "maintenance:\n"
        + "  - {name: old_upgrade, checks: [homepage], "
        + "start: 2020-01-01T02:00:00Z, end: 2020-01-01T03:00:00Z}\n"
    )
    code, out, err = await cli("validate", "-c", str(config))
    assert code == 0
    assert out == f"{config}: ok, 4 checks\n"
    assert err == (
        "warning: probes.yaml maintenance[0].end: window 'old_upgrade' ended "
        "2020-01-01T03:00:00+00:00: it mutes nothing any more and can be removed\n"
    )


async def test_schema_prints_a_json_schema(cli: Cli) -> None:
    code, out, _err = await cli("schema")
    assert code == 0
    schema = json.loads(out)
    Draft202012Validator.check_schema(schema)
    assert {"checks", "defaults", "variables", "secrets"} <= set(schema["properties"])


def test_control_characters_from_a_target_never_reach_the_terminal() -> None:
    from uptime_probe.oneshot import as_table
    from uptime_probe.probe import CheckResult, Status

    result = CheckResult(
        check="c",
        status=Status.DOWN,
        reason="http_5xx",
        failed_step="s",
        message="s: \x1b[2J\x1b[31mred\nsecond line",
        started_at=0.0,
        duration_seconds=0.5,
    )
    row = as_table([result]).splitlines()[1]
    assert "\x1b" not in row
    assert row.endswith("s: ?[2J?[31mred second line")


STREAM_CONFIG = """\
checks:
  - name: chat_answer
    steps:
      - name: create
        request: {method: POST, url: "${TARGET_URL}/conversations"}
        extract: {conversation: id}
      - name: answer
        stream:
          method: POST
          url: "${TARGET_URL}/openai?need_conversation=1"
          json: {conversation_id: "{{ conversation }}"}
          collect: "choices[0].delta.content"
          done: "[DONE]"
  - name: chat_stall
    timeout: 5s
    steps:
      - name: answer
        stream:
          method: POST
          url: "${TARGET_URL}/openai?stall_after=2"
          json: {}
          collect: "choices[0].delta.content"
          done: "[DONE]"
        expect: {max_gap: 200ms}
"""
STEP_KEYS = {"name", "kind", "status", "reason", "message", "duration_seconds"}
HTTP_KEYS = {"http_status", "phases"}
STREAM_FIGURES = {
    "head_seconds", "first_event_seconds", "first_token_seconds", "longest_gap_seconds",
    "events", "answer_chars", "total_seconds",
}  # fmt: skip


async def test_check_json_lists_every_step_with_its_kinds_figures(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    """The `steps` list of `check --json`, a contract CI users parse (docs/configuration.md)."""
    from tests.probe.kinds.sse_target import ANSWER, build_sse_app

    url = await serve_app(build_sse_app())
    config = tmp_path / "probes.yaml"
    config.write_text(STREAM_CONFIG)
    cli = Cli(config, {**os.environ, "TARGET_URL": url})

    code, out, err = await cli("check", "-c", str(config), "--json")

    assert code == 1, err
    by_check = {line["check"]: line for line in map(json.loads, out.splitlines())}
    create, answer = by_check["chat_answer"]["steps"]
    assert set(create) == STEP_KEYS | HTTP_KEYS
    assert create | {"duration_seconds": 0, "phases": {}} == {
        "name": "create", "kind": "request", "status": "up", "reason": None,
        "message": "HTTP 201", "duration_seconds": 0, "http_status": 201, "phases": {},
    }  # fmt: skip
    assert set(create["phases"]) == {"resolve", "connect", "tls", "processing", "transfer"}
    assert set(answer) == STEP_KEYS | HTTP_KEYS | {"stream"}
    assert (answer["kind"], answer["status"], answer["http_status"]) == ("stream", "up", 200)
    assert set(answer["stream"]) == STREAM_FIGURES
    assert answer["stream"]["events"] == 9
    assert answer["stream"]["answer_chars"] == len(ANSWER)
    assert 0 < answer["stream"]["first_event_seconds"] <= answer["stream"]["total_seconds"]
    assert answer["stream"]["first_token_seconds"] >= answer["stream"]["first_event_seconds"]
    (stalled,) = by_check["chat_stall"]["steps"]
    assert (stalled["status"], stalled["reason"]) == ("down", "stream_stalled")
    assert by_check["chat_stall"]["reason"] == "stream_stalled"
    assert stalled["stream"]["events"] == 3
    assert stalled["stream"]["longest_gap_seconds"] >= 0.2
    assert stalled["stream"]["total_seconds"] is None


BROWSER_CONFIG = """\
variables:
  base_url: "${TARGET_URL}"
secrets:
  token: "${PROBE_TOKEN}"
checks:
  - name: sidebar_renders
    steps:
      - name: sidebar
        browser:
          url: "{{ base_url }}/page"
          headers: {Authorization: "Bearer {{ token }}"}
        expect:
          elements: [{selector: "#history li", reason: empty_history}]
"""


async def test_check_json_names_a_failed_browser_steps_screenshot_and_its_figures(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    async def page(request: web.Request) -> web.Response:
        seen = request.headers.get("Authorization", "")
        html = f"<!doctype html><ul id='history'></ul><p>No conversations yet {seen}</p>"
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/page", page)
    url = await serve_app(app)
    config = tmp_path / "probes.yaml"
    config.write_text(BROWSER_CONFIG)
    env = {**os.environ, "TARGET_URL": url, "PROBE_TOKEN": SECRET}
    env.pop("UPTIME_PROBE_DATA_DIR", None)
    artifacts = tmp_path / "shots"
    code, out, err = await Cli(config, env)(
        "check", "-c", str(config), "--json", "--artifacts", str(artifacts)
    )
    assert code == 1, err
    (line,) = [json.loads(text) for text in out.splitlines()]
    assert (line["reason"], line["step"]) == ("empty_history", "sidebar")
    (step,) = line["steps"]
    assert (step["kind"], step["status"], step["http_status"]) == ("browser", "down", 200)
    shot = Path(step["artifact"])
    assert shot.parent == artifacts / "sidebar_renders"
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # Its Playwright trace beside it, the token it sent and the page showed redacted.
    trace = Path(step["trace"])
    assert trace == shot.with_suffix(".zip")
    with zipfile.ZipFile(trace) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    assert {"trace.trace", "trace.network"} <= set(entries)
    assert b"Bearer [REDACTED]" in entries["trace.network"]
    assert not any(SECRET.encode() in data for data in entries.values())
    figures = step["browser"]
    assert set(figures) == {
        "ttfb_seconds", "dom_content_loaded_seconds", "load_seconds", "lcp_seconds",
        "requests", "failed_requests", "transferred_bytes",
    }  # fmt: skip
    assert figures["ttfb_seconds"] > 0
    assert figures["requests"] >= 1
    _assert_no_secret(out, err)  # the page showed the token; the text we write never does
    # Without --artifacts: under the config's store.data_dir, where the daemon keeps them.
    config.write_text(f"store: {{data_dir: {tmp_path / 'state'}}}\n" + BROWSER_CONFIG)
    code, out, err = await Cli(config, env)("check", "-c", str(config), "--json")
    assert code == 1, err
    (step,) = json.loads(out)["steps"]
    assert Path(step["artifact"]).parent == tmp_path / "state" / "artifacts" / "sidebar_renders"


async def test_validate_and_check_say_which_browser_checks_they_skip(
    cli: Cli, tmp_path: Path
) -> None:
    config = tmp_path / "skip.yaml"
    config.write_text(
        "browser: {when_missing: skip, executable: /nonexistent/chromium}\n"
        + CONFIG
        + BROWSER_CONFIG.split("checks:\n", 1)[1]
    )
    code, out, err = await cli("validate", "-c", str(config))
    assert code == 0, err
    assert out == f"{config}: ok, 4 checks\n"
    assert err.startswith("skipped sidebar_renders: browser.executable '/nonexistent/chromium'")
    assert "pip install 'uptime-probe[browser]'" in err
    code, out, err = await cli("check", "-c", str(config), "--json")
    assert "sidebar_renders" not in out  # stdout stays the other checks' JSON
    assert err.startswith("skipped sidebar_renders:")


JUNIT_CONFIG = (
    CONFIG
    + """\
  - name: hostile
    steps:
      - name: page
        request:
          url: "{{ base_url }}/hostile"
          headers: {Authorization: "Bearer {{ token }}"}
        expect: {json: [{query: msg, equals: fine}]}
"""
)
JUNIT_SCHEMA = Path(__file__).parent / "junit" / "junit.xsd"


async def test_check_junit_report(cli: Cli, tmp_path: Path) -> None:
    """One testcase per check, a failure with the step, reason and message for each down
    one; valid against the JUnit schema CI systems read, whatever the targets answered,
    and without the secret a target echoed. stdout keeps its --json shape."""
    import xml.etree.ElementTree as ET

    import xmlschema

    cli.config.write_text(JUNIT_CONFIG)
    report = tmp_path / "reports" / "uptime.xml"
    report.parent.mkdir()
    code, out, err = await cli("check", "-c", str(cli.config), "--json", "--junit", str(report))
    assert code == 1, err
    assert all(set(json.loads(line)) >= JSON_KEYS for line in out.splitlines())
    text = report.read_text(encoding="utf-8")
    _assert_no_secret(text, out, err)

    xmlschema.XMLSchema(JUNIT_SCHEMA).validate(str(report))
    root = ET.fromstring(report.read_bytes())
    (suite,) = root.findall("testsuite")
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "3", "0")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "3", "0")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == ["homepage", "history_sidebar", "slow_page", "leaky_redirect", "hostile"]
    assert {case.get("classname") for case in cases.values()} == {"uptime-probe.local"}

    assert cases["homepage"].find("failure") is None
    slow = cases["slow_page"]
    assert slow.find("failure") is None  # degraded passes, as the exit code says
    # Degraded by a severity: warning assertion: its reason is the cause.
    assert (slow.findtext("system-out") or "").startswith(
        "degraded: step: page\n  reason: assertion_failed"
    )

    failure = cases["history_sidebar"].find("failure")
    assert failure is not None
    assert failure.get("type") == "empty_history"
    assert failure.get("message") == "empty history (HTTP 200) at step conversations"
    assert (failure.text or "").splitlines() == [
        "step: conversations",
        "reason: empty_history (empty history (HTTP 200))",
        "http_status: 200",
        "message: conversations: length(items) = 0, expected > 0",
    ]

    hostile = cases["hostile"].find("failure")
    assert hostile is not None
    assert hostile.get("type") == "assertion_failed"
    details = hostile.text or ""
    # Markup escaped in the file and read back as the engine quoted it (control characters
    # as JSON escapes), the echoed secret redacted.
    assert 'msg = "<b>&\\"\']]>\\u001b[31m\\u0000 Bearer [REDACTED]"' in details


async def test_check_junit_to_a_folder_that_does_not_exist(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "uptime.xml"
    code, out, err = await cli("check", "-c", str(cli.config), "--junit", str(missing))
    assert code == 2
    assert out.startswith("CHECK")  # the results were still printed
    assert f"error: cannot write {missing}: No such file or directory" in err
