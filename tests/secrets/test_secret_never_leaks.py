"""A secret never leaves the daemon, whatever the target echoes back.

One real daemon probes tests/hostile's echo modes with `Authorization: Bearer {{ token }}`,
`token` being a `secrets:` entry:

    echo_body      /echo-auth answers with the header in its body; the check then fails,
                   so the body is kept as the response sample and the failure message,
                   the incident and the notification all carry what the target said
    echo_redirect  /redirect-echo-auth redirects to /landing?token=<the header>, so the
                   secret is in a URL the client followed; the check fails too
    passing        /landing with the same header: up, so a healthy check is covered
    echo_FORM      an echo target on 127.0.0.1 answers with the header in one encoding
                   each (`ECHOES`: PHP's and Go's JSON escapes, `\\u` for every
                   character, base64 and base64url of the whole `Bearer <secret>`, upper-
                   cased, HTML entities, URL-encoded); the check fails, so it is the sample
    value_cut      a JSON value whose display (120 characters) is cut inside the secret
    sample_cut     a body whose 2 KiB sample is cut inside the secret

Every output is then read and searched for the secret in the forms it could take on the
way (`secret_forms`: every encoding the targets used and more, and what a cut made before
redacting would have left: all but the secret's last character), each also as the output
would carry it (HTML-escaped on the page, JSON-escaped in the API and the database):

    the daemon's log (every line, from start to exit), including the `config_reload_failed`
    of a rejected file that quotes the secret; /metrics; the status page `/`; the JSON API
    (checks, each check's runs, incidents); the SQLite file and its -wal, while running and
    after exit; the webhook a local receiver got (body and headers); `uptime-probe check`
    (table and --json); `uptime-probe incidents` (markdown and json); and `uptime-probe
    validate` and `check` on a config whose error quotes the secret.

The searches would find nothing if nothing had been echoed, so the test also checks that
the target did echo it (the receiver's notification and the API show `[REDACTED]` where
the target's text was).
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import yaml
from aiohttp import web

from tests.conftest import ServeApp
from tests.daemon.support import DaemonProcess, write_text
from tests.hostile.server import HostileServer
from uptime_probe.state.store import DB_FILE

# URL-, form-, HTML- and JSON-special characters: each encoded form differs from the rest.
SECRET = 'sk_live&Zx9/Qa+Vb=7%C "q"<x>?>'
REDACTED = "[REDACTED]"
CLI_TIMEOUT = 60.0
SAMPLE_BYTES = 2048
VALUE_SHOWN = 120  # the display of a JSON value in a message, "..." included


def json_escaped(text: str) -> str:
    return json.dumps(text)[1:-1]


def every_char_u(text: str) -> str:
    return "".join(f"\\u{ord(char):04x}" for char in text)


def html_entities(text: str) -> str:
    """Decimal, hex and named references in turn."""
    forms = (lambda c: f"&#{ord(c)};", lambda c: f"&#x{ord(c):x};", html.escape)
    return "".join(forms[i % 3](char) for i, char in enumerate(text))


def go_json(text: str) -> str:
    escaped = json_escaped(text)
    return escaped.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def json_object(escaped: str) -> str:
    """A JSON object whose one value is `escaped`, already escaped as a JSON string."""
    return '{"auth": "' + escaped + '"}'


def base64_core(text: str, *, urlsafe: bool = False) -> str:
    """base64 of `Bearer <text>`: the characters the secret alone decides (the 7 bytes of
    `Bearer ` put it 1 byte into a 3-byte group: 10 characters in, 2 short of the end)."""
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(f"Bearer {text}".encode()).decode()[10:-3]


# What the echo target answers with, given the request's Authorization header.
ECHOES: dict[str, Callable[[str], str]] = {
    "php_json": lambda header: json_object(json_escaped(header).replace("/", "\\/")),
    "go_json": lambda header: json_object(go_json(header)),
    "unicode_escaped": lambda header: json_object(every_char_u(header)),
    "base64": lambda header: base64.b64encode(header.encode()).decode(),
    "base64url": lambda header: base64.urlsafe_b64encode(header.encode()).decode().rstrip("="),
    "upper": str.upper,
    "html": lambda header: f"<p>{html_entities(header)}</p>",
    "url": lambda header: f"next=/cb?auth={quote(header, safe='')}",
}
CHECKS = (
    "echo_body",
    "echo_redirect",
    "passing",
    *(f"echo_{name}" for name in ECHOES),
    "value_cut",
    "sample_cut",
)


def secret_forms(secret: str = SECRET) -> dict[str, str]:
    raw = secret.encode()
    return {
        "plain": secret,
        "upper-cased": secret.upper(),
        "lower-cased": secret.lower(),
        "url-encoded": quote(secret, safe=""),
        "url-encoded, / kept": quote(secret),
        "form-encoded": quote_plus(secret),
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        # (its first half reads the same in both alphabets)
        "base64 of Bearer <secret>, its first half": base64_core(secret)[:20],
        "base64 of Bearer <secret>, its second half": base64_core(secret)[-20:],
        "base64url of Bearer <secret>, its second half": base64_core(secret, urlsafe=True)[-20:],
        "json-escaped": json_escaped(secret),
        "json-escaped, PHP style": json_escaped(secret).replace("/", "\\/"),
        "json-escaped, Go style": go_json(secret),
        "json, \\u for every character": every_char_u(secret),
        "html-escaped": html.escape(secret),
        "html entities": html_entities(secret),
        # What a cut before redaction kept: all but the last character.
        "all but the last character": secret[:-1],
        "json-escaped, all but the last character": json_escaped(secret)[:-1],
        "its first 10 characters": secret[:10],
    }


def searched_forms() -> dict[str, bytes]:
    """Each form as is, and as an output would carry it: HTML- or JSON-escaped."""
    searched = {}
    for name, form in secret_forms().items():
        for how, carried in (
            ("", form),
            (", HTML-escaped", html.escape(form)),
            (", JSON-escaped", json_escaped(form)),
        ):
            searched.setdefault(carried.encode(), name + how)
    return {name: data for data, name in searched.items()}


def assert_no_secret(where: str, text: str | bytes) -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    found = [name for name, form in searched_forms().items() if form in data]
    assert not found, f"the secret ({', '.join(found)}) is in {where}"


def value_cut_document() -> str:
    """A JSON value shown as `"<padding><secret>"`: the padding puts the secret's last
    character just past the display's cut, so a cut first kept all the rest of it."""
    escaped = json_escaped(SECRET)
    keep = VALUE_SHOWN - len("...")
    padding = "." * (keep - len(escaped) + 1 - len('"'))
    return json.dumps({"v": padding + SECRET + "," * 20})


def sample_cut_body() -> str:
    """A body whose 2 KiB sample ends one character before the secret's end."""
    return "." * (SAMPLE_BYTES - len(SECRET) + 1) + SECRET + "," * 100


def echo_app() -> web.Application:
    """The echo target: the request's Authorization header back, encoded one way a path."""

    async def echo(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        body = ECHOES[request.match_info["form"]](header)
        return web.Response(text=body, content_type="text/plain")

    async def value_cut(request: web.Request) -> web.Response:
        assert request.headers.get("Authorization") == f"Bearer {SECRET}"
        return web.Response(text=value_cut_document(), content_type="application/json")

    async def sample_cut(request: web.Request) -> web.Response:
        assert request.headers.get("Authorization") == f"Bearer {SECRET}"
        return web.Response(text=sample_cut_body(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/echo/{form}", echo)
    app.router.add_get("/value-cut", value_cut)
    app.router.add_get("/sample-cut", sample_cut)
    return app


@dataclass
class Receiver:
    """A webhook endpoint that keeps what it is sent."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=204)


def probes(hostile: str, receiver: str, echo: str) -> dict[str, Any]:
    auth = {"Authorization": "Bearer {{ token }}"}

    def check(name: str, path: str, expect: dict[str, Any], base: str = hostile) -> dict[str, Any]:
        return {
            "name": name,
            "interval": "300ms",
            "timeout": "250ms",
            "failure_threshold": 1,
            "notifiers": ["hook"],
            "steps": [
                {
                    "name": "fetch",
                    "request": {"url": f"{base}{path}", "headers": auth},
                    "expect": expect,
                }
            ],
        }

    return {
        "secrets": {"token": SECRET},
        "server": {"watch_interval": "1h"},
        "notifiers": {"hook": {"kind": "webhook", "url": f"{receiver}/hook"}},
        "checks": [
            # 201 is never sent: the 200 body (the header, echoed) becomes the sample.
            check("echo_body", "/echo-auth", {"status": 201}),
            check("echo_redirect", "/redirect-echo-auth", {"body_contains": "never-there"}),
            check("passing", "/landing", {"body_contains": "ok"}),
            *(check(f"echo_{name}", f"/echo/{name}", {"status": 201}, echo) for name in ECHOES),
            check("value_cut", "/value-cut", {"json": [{"query": "v", "equals": "x"}]}, echo),
            check("sample_cut", "/sample-cut", {"status": 201}, echo),
        ],
    }


def broken(config: dict[str, Any]) -> dict[str, Any]:
    """The same config, with the secret pasted where a duration goes: the error quotes it."""
    copy: dict[str, Any] = json.loads(json.dumps(config))
    copy["checks"][0]["timeout"] = SECRET
    return copy


def file_bytes(*paths: Path) -> Iterator[tuple[str, bytes]]:
    for path in paths:
        if path.exists():
            yield str(path.name), path.read_bytes()


async def cli(*args: str, cwd: Path) -> tuple[int, str]:
    """`uptime-probe ARGS` in a subprocess; stdout and stderr together. Async, so the targets
    in this test's loop keep answering while it runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uptime_probe.cli", *args,
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(CLI_TIMEOUT):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", "replace")


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DaemonProcess]:
    process = DaemonProcess(tmp_path / "probes.yaml", grace=2.0)
    yield process
    process.kill()


async def test_secret_never_leaves_the_daemon(
    tmp_path: Path, serve_app: ServeApp, daemon: DaemonProcess
) -> None:
    receiver = Receiver()
    receiver_url = await serve_app(receiver.app())
    config_path = tmp_path / "probes.yaml"
    data_dir = tmp_path / "data"
    db_files = (data_dir / DB_FILE, data_dir / f"{DB_FILE}-wal")
    outputs: list[tuple[str, str | bytes]] = []

    echo_url = await serve_app(echo_app())
    async with HostileServer() as hostile:
        config = probes(hostile.url, receiver_url, echo_url)
        write_text(config_path, yaml.safe_dump(config, sort_keys=False))
        daemon.start()
        await daemon.started()

        # Every failing check has opened its incident, notified, and been stored.
        await daemon.wait_for_scrape(
            lambda s: all(s.get("uptime_probe_check_runs_total", check=c) >= 3 for c in CHECKS),
            "three runs of each check",
        )
        for check in CHECKS:
            if check != "passing":
                await daemon.wait_for_log("notification_sent", check=check)
        for _ in range(200):  # the store writes in batches: wait for the runs to be there
            status, text, _ = await daemon.request("GET", "/api/v1/checks/echo_body/runs")
            if status == 200 and json.loads(text)["runs"]:
                break
            await asyncio.sleep(0.05)

        # A rejected reload whose error quotes the secret.
        write_text(config_path, yaml.safe_dump(broken(config), sort_keys=False))
        mark = daemon.log_count
        daemon.send(signal.SIGHUP)
        failed = await daemon.wait_for_log("config_reload_failed", after=mark)
        assert f"invalid duration '{REDACTED}'" in failed["error"], failed

        for path in ("/metrics", "/", "/api/v1/checks", "/api/v1/incidents"):
            status, text, headers = await daemon.request("GET", path)
            assert status == 200, (path, status)
            outputs.append((f"GET {path}", text + json.dumps(headers)))
            if path == "/api/v1/incidents":
                incidents = json.loads(text)["incidents"]
        for check in CHECKS:
            path = f"/api/v1/checks/{check}/runs"
            status, text, _ = await daemon.request("GET", path)
            assert status == 200, (path, status)
            outputs.append((f"GET {path}", text))
        outputs.extend((f"{name} (running)", data) for name, data in file_bytes(*db_files))

        # The one-shot command, on the valid config and on the broken one.
        write_text(config_path, yaml.safe_dump(config, sort_keys=False))
        for args in (["check"], ["check", "--json"]):
            code, output = await cli(*args, "-c", str(config_path), cwd=tmp_path)
            assert code == 1, output  # echo_body and echo_redirect are down
            assert "echo_body" in output
            outputs.append((f"uptime-probe {' '.join(args)}", output))
        broken_path = tmp_path / "broken.yaml"
        write_text(broken_path, yaml.safe_dump(broken(config), sort_keys=False))
        for command in ("validate", "check"):
            code, output = await cli(command, "-c", str(broken_path), cwd=tmp_path)
            assert code == 2, output
            assert f"invalid duration '{REDACTED}'" in output, output
            outputs.append((f"uptime-probe {command} (config error)", output))

        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit() == 0

    outputs.extend((f"{name} (after exit)", data) for name, data in file_bytes(*db_files))
    for fmt in ("markdown", "json"):
        code, output = await cli(
            "incidents", "--data-dir", str(data_dir), "--format", fmt, cwd=tmp_path
        )
        assert code == 0, output
        outputs.append((f"uptime-probe incidents --format {fmt}", output))
    outputs.append(("the daemon's log", "\n".join(daemon.raw_lines)))
    for headers, body in receiver.requests:
        outputs.append(("a webhook notification", json.dumps(headers).encode() + body))

    # The target really echoed the secret, and what it said reached these outputs redacted.
    assert receiver.requests, "no notification was sent"
    api_runs = dict(outputs)["GET /api/v1/checks/echo_body/runs"]
    assert isinstance(api_runs, str)
    assert "HTTP 200, expected 201" in api_runs
    by_check = {incident["check"]: incident for incident in incidents}
    # echo_body's response sample, scrubbed
    assert by_check["echo_body"]["response_sample"] == f"Bearer {REDACTED}"
    # Every echo target's answer is in its incident, with the secret's place redacted.
    for name in ECHOES:
        sample = by_check[f"echo_{name}"]["response_sample"]
        assert REDACTED in sample, (name, sample)
    assert by_check["value_cut"]["first_message"].endswith(f"{REDACTED}..., expected == 'x'")
    assert by_check["sample_cut"]["response_sample"].endswith(f".{REDACTED}")
    for where, seen in outputs:
        assert_no_secret(where, seen)


def test_every_form_is_searched_for() -> None:
    """The forms differ from each other, so none of the searches is a duplicate."""
    forms = secret_forms()
    assert len(set(forms.values())) == len(forms)


def test_the_cut_targets_cut_inside_the_secret() -> None:
    """The two cut targets put the cut where a cut made before redacting keeps all but the
    secret's last character (the defect they guard against)."""
    shown = json.dumps(json.loads(value_cut_document())["v"], ensure_ascii=False)
    assert len(shown) > VALUE_SHOWN
    kept = shown[: VALUE_SHOWN - len("...")]
    assert kept.endswith(json_escaped(SECRET)[:-1])
    assert sample_cut_body()[:SAMPLE_BYTES].endswith(SECRET[:-1])
