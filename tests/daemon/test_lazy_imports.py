"""What a daemon imports follows its config: heavy libraries only for the checks that use them.

A resident megabyte is what a quiet daemon costs (docs/benchmarks.md, issue 19: a daemon
of 100 plain HTTP checks): `cryptography` (about 8 MB, for reading certificates),
`jsonschema` (2-3 MB, for `json_schema`), Jinja2 (2 MB, for the status page), Playwright
(browser steps), dnspython (dns steps) and Apprise (`kind: apprise` notifiers) are imported
by the first thing that needs them. Each case runs a real daemon (app.Daemon: its store,
web server and scheduler) in a fresh interpreter until its checks ran, then reads
`sys.modules`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ServeApp
from tests.probe.test_judging import hostile_app

HEAVY = ("cryptography", "jsonschema", "jinja2", "playwright", "dns", "apprise")

# Runs in the child interpreter: the daemon on probes.yaml until every check ran, then
# stopped; prints the heavy libraries it imported, and each check's status.
DAEMON = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from uptime_probe.app import Daemon, DaemonOptions, load_deployment_config

    async def main() -> None:
        options = DaemonOptions(
            Path("probes.yaml"), listen="127.0.0.1:0", grace_seconds=1.0, data_dir=Path("data")
        )
        daemon = Daemon(load_deployment_config(options), options, None)
        await daemon.start()
        deadline = time.monotonic() + 30
        names = [check.name for check in daemon.config.checks]
        while any(daemon.latest.get(name) is None for name in names):
            assert time.monotonic() < deadline, "the checks did not all run"
            await asyncio.sleep(0.05)  # a bounded poll for the first runs
        statuses = {name: daemon.latest.get(name).result.status.value for name in names}
        await daemon.stop()
        heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1:]))
        print(json.dumps({"imported": heavy, "statuses": statuses}))

    asyncio.run(main())
    """
)


async def run_daemon(tmp_path: Path, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The child's report. Awaited, not blocking: the target runs on this test's loop."""
    config = {"checks": checks, "server": {"watch_interval": "1h"}}
    (tmp_path / "probes.yaml").write_text(yaml.safe_dump(config))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DAEMON,
        *HEAVY,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(120):
            out, err = await child.communicate()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0, (out + err).decode()
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return report


def check(name: str, url: str, expect: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        # Room for a schema's first judging process to import on a loaded machine.
        "interval": "10s",
        "timeout": "10s",
        "steps": [{"name": "get", "request": {"url": url}, "expect": expect}],
    }


@pytest.fixture
async def target(serve_app: ServeApp) -> str:
    return await serve_app(hostile_app())


async def test_a_plain_http_daemon_imports_none_of_the_heavy_libraries(
    target: str, tmp_path: Path
) -> None:
    report = await run_daemon(
        tmp_path,
        [
            check("json", target + "/ones?n=3", {"json": [{"query": "length(items)", "gt": 0}]}),
            check("text", target + "/evil-text", {"body_contains": "aaa"}),
        ],
    )
    assert report["statuses"] == {"json": "up", "text": "up"}
    assert report["imported"] == []


async def test_a_json_schema_brings_jsonschema_and_nothing_else(
    target: str, tmp_path: Path
) -> None:
    (tmp_path / "schema.json").write_text(json.dumps({"type": "object", "required": ["items"]}))
    report = await run_daemon(
        tmp_path,
        [check("schema", target + "/ones?n=3", {"json_schema": str(tmp_path / "schema.json")})],
    )
    assert report["statuses"] == {"schema": "up"}
    assert report["imported"] == ["jsonschema"]
