"""An Apprise URL is a secret everywhere: a real daemon notifies through one that works and
one whose service fails, and neither URL, nor the token and password in them, is in its log,
its pages, its API, its metrics, the config errors of `validate`, `check` or a rejected
reload, or the notification itself.

The working target is a JSON webhook on 127.0.0.1 whose path is the token (as Discord's,
Slack's and Teams' are); the failing one is a form webhook with a password, answering 503,
so its errors and retries are logged too.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from tests.alerting.receiver import Receiver, wait_until
from tests.conftest import ServeApp
from tests.daemon.support import DaemonProcess, write_text
from tests.secrets.test_secret_never_leaks import cli

TOKEN = "apprise-path-token-5f0c1d2e3a4b"
PASSWORD = "apprise-form-password-7c6b5a49"
REDACTED = "[REDACTED]"


def config(good: str, bad: str) -> dict[str, Any]:
    return {
        "server": {"watch_interval": "1h"},
        "notifiers": {
            "everywhere": {
                "kind": "apprise",
                "urls": [
                    f"json://{good.removeprefix('http://')}/{TOKEN}",
                    f"form://probe:{PASSWORD}@{bad.removeprefix('http://')}/hook",
                ],
                "timeout": "1s",
            }
        },
        "checks": [
            {
                "name": "always_down",
                "interval": "300ms",
                "timeout": "250ms",
                "failure_threshold": 1,
                "notifiers": ["everywhere"],
                "steps": [{"name": "fetch", "request": {"url": f"{bad}/down"}}],
            }
        ],
    }


def broken(document: dict[str, Any]) -> dict[str, Any]:
    """The URL pasted where a duration goes too: the error quotes the value it rejects."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    copy["notifiers"]["everywhere"]["timeout"] = copy["notifiers"]["everywhere"]["urls"][1]
    return copy


def assert_no_secret(where: str, text: str, urls: list[str]) -> None:
    forms = [TOKEN, PASSWORD, quote(PASSWORD), *urls, *(quote(url, safe="") for url in urls)]
    found = [form for form in forms if form in text]
    assert not found, f"{found} in {where}"


async def test_apprise_urls_never_leave_the_daemon(tmp_path: Path, serve_app: ServeApp) -> None:
    good, bad = Receiver(), Receiver(status=503)
    document = config(await serve_app(good.app()), await serve_app(bad.app()))
    urls = document["notifiers"]["everywhere"]["urls"]
    config_path = tmp_path / "probes.yaml"
    write_text(config_path, yaml.safe_dump(document, sort_keys=False))
    daemon = DaemonProcess(config_path, grace=2.0, extra_args=["--data-dir", str(tmp_path)])
    outputs: list[tuple[str, str]] = []
    try:
        daemon.start()
        await daemon.started()
        failed = await daemon.wait_for_log("notification_failed", timeout=20)
        # The good target got it; the bad one was tried three times and named by position.
        await wait_until(lambda: len(good.requests) >= 1, what="the good target's notification")
        assert len(bad.requests) >= 3
        assert failed["error"] == "urls[1] (Form): http_status: 503", failed
        assert failed["kind"] == "apprise"

        write_text(config_path, yaml.safe_dump(broken(document), sort_keys=False))
        mark = daemon.log_count
        daemon.send(signal.SIGHUP)
        rejected = await daemon.wait_for_log("config_reload_failed", after=mark)
        assert f"invalid duration '{REDACTED}'" in rejected["error"], rejected

        for path in ("/metrics", "/", "/api/v1/checks", "/api/v1/incidents"):
            status, text, headers = await daemon.request("GET", path)
            assert status == 200, (path, status)
            outputs.append((f"GET {path}", text + json.dumps(headers)))
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    finally:
        daemon.kill()
    outputs.append(("the daemon's log", "\n".join(daemon.raw_lines)))

    broken_path = tmp_path / "broken.yaml"
    write_text(broken_path, yaml.safe_dump(broken(document), sort_keys=False))
    results = await asyncio.gather(
        *(cli(command, "-c", str(broken_path), cwd=tmp_path) for command in ("validate", "check"))
    )
    for command, (code, output) in zip(("validate", "check"), results, strict=True):
        assert code == 2, output
        assert f"invalid duration '{REDACTED}'" in output, output
        outputs.append((f"uptime-probe {command} (config error)", output))
    for request in good.requests:
        outputs.append(("the notification", json.dumps(request.headers) + request.body.decode()))

    assert good.requests[0].path == f"/{TOKEN}"  # where the token belongs: its own service
    for where, text in outputs:
        assert_no_secret(where, text, urls)
