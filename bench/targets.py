"""The local targets: nginx serving `/json`, and bench.slow_server serving `/slow` (50 ms).

Both run on the target core, so they never take CPU from the contender, and the harness
reads their CPU time over every measurement window to show they were not the bottleneck.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    LOOPBACK,
    PYTHON,
    REPO,
    BenchError,
    Program,
    Stack,
    free_port,
    reachable,
    wait_for,
)

NGINX_TEMPLATE = Path(__file__).with_name("nginx.conf.in")
# What the one-step check asserts on (`status == "ok"`) and blackbox's regexp matches.
JSON_DOCUMENT = {
    "status": "ok",
    "service": "bench",
    "items": [{"id": i, "name": f"item-{i}"} for i in range(5)],
}
SLOW_DELAY_SECONDS = 0.050


@dataclass
class Target:
    program: Program
    url: str  # the full URL a check requests

    @property
    def pid(self) -> int:
        return self.program.pid


def start_nginx(stack: Stack, core: int | None) -> Target:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        raise BenchError("nginx is not installed: scripts/bench.sh installs the Debian package")
    prefix = stack.directory / "nginx"
    for sub in ("www", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "www" / "json.json").write_text(json.dumps(JSON_DOCUMENT))
    # nginx's workers run as `nobody` when started by root: let them read the document.
    for path in (stack.directory, prefix, prefix / "www", prefix / "tmp"):
        path.chmod(0o755)
    (prefix / "www" / "json.json").chmod(0o644)
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    config = (
        NGINX_TEMPLATE.read_text()
        .replace("@PREFIX@", str(prefix))
        .replace("@PORT@", str(port))
        .replace("@USER@", user)
    )
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(config)
    program = stack.start(
        "nginx",
        [binary, "-c", str(conf_path), "-p", str(prefix), "-e", str(prefix / "nginx-error.log")],
        core=core,
    )
    url = f"http://{LOOPBACK}:{port}/json"
    wait_for("nginx", lambda: reachable(url), timeout=15, programs=[program])
    return Target(program, url)


def start_slow(stack: Stack, core: int | None, delay: float = SLOW_DELAY_SECONDS) -> Target:
    port = free_port()
    program = stack.start(
        "slow-server",
        [PYTHON, "-m", "bench.slow_server", "--port", str(port), "--delay", str(delay)],
        core=core,
        env={"PYTHONPATH": str(REPO)},
    )
    url = f"http://{LOOPBACK}:{port}/slow"
    wait_for("slow server", lambda: reachable(url), timeout=15, programs=[program])
    return Target(program, url)


def start_simulator(stack: Stack, core: int | None) -> Target:
    """The chat simulator (`uptime-probe simulator`); `url` is its base, with no path."""
    port = free_port()
    program = stack.start(
        "simulator",
        [PYTHON, "-m", "uptime_probe.cli", "simulator", "--listen", f"{LOOPBACK}:{port}"],
        core=core,
    )
    url = f"http://{LOOPBACK}:{port}"
    wait_for("simulator", lambda: reachable(f"{url}/_sim/faults"), timeout=30, programs=[program])
    return Target(program, url)
