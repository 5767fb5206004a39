"""A secret never leaves the daemon, whatever the target echoes back.

One real daemon probes tests/hostile's echo modes with `Authorization: Bearer {{ token }}`,
`token` being a `secrets:` entry:

    echo_body      /echo-auth answers with the header in its body; the check then fails,
                   so the body is kept as the response sample and the failure message,
                   the incident and the notification all carry what the target said
    echo_redirect  /redirect-echo-auth redirects to /landing?token=<the header>, so the
                   secret is in a URL the client followed; the check fails too
    passing        /landing with the same header: up, so a healthy check is covered

Every output is then read and searched for the secret in the forms it could take on the
way (as is, URL-encoded three ways, base64 and base64url, JSON- and HTML-escaped):

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
from collections.abc import AsyncIterator, Iterator
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
CHECKS = ("echo_body", "echo_redirect", "passing")
CLI_TIMEOUT = 60.0


def secret_forms(secret: str = SECRET) -> dict[str, str]:
    raw = secret.encode()
    return {
        "plain": secret,
        "url-encoded": quote(secret, safe=""),
        "url-encoded, / kept": quote(secret),
        "form-encoded": quote_plus(secret),
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "json-escaped": json.dumps(secret)[1:-1],
        "html-escaped": html.escape(secret),
    }


def assert_no_secret(where: str, text: str | bytes) -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    found = [name for name, form in secret_forms().items() if form.encode() in data]
    assert not found, f"the secret ({', '.join(found)}) is in {where}"


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


def probes(hostile: str, receiver: str) -> dict[str, Any]:
    auth = {"Authorization": "Bearer {{ token }}"}

    def check(name: str, path: str, expect: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "interval": "300ms",
            "timeout": "250ms",
            "failure_threshold": 1,
            "notifiers": ["hook"],
            "steps": [
                {
                    "name": "fetch",
                    "request": {"url": f"{hostile}{path}", "headers": auth},
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

    async with HostileServer() as hostile:
        config = probes(hostile.url, receiver_url)
        write_text(config_path, yaml.safe_dump(config, sort_keys=False))
        daemon.start()
        await daemon.started()

        # Every failing check has opened its incident, notified, and been stored.
        await daemon.wait_for_scrape(
            lambda s: all(s.get("uptime_probe_check_runs_total", check=c) >= 3 for c in CHECKS),
            "three runs of each check",
        )
        await daemon.wait_for_log("notification_sent", check="echo_body")
        await daemon.wait_for_log("notification_sent", check="echo_redirect")
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
    incidents = dict(outputs)["GET /api/v1/incidents"]
    assert isinstance(incidents, str)
    assert f"Bearer {REDACTED}" in incidents  # echo_body's response sample, scrubbed
    for where, seen in outputs:
        assert_no_secret(where, seen)


def test_every_form_is_searched_for() -> None:
    """The forms differ from each other, so none of the searches is a duplicate."""
    forms = secret_forms()
    assert len(set(forms.values())) == len(forms)
