"""`uptime-probe demo`, the README's first command: starts, probes, serves, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def test_demo_starts_probes_serves_and_stops_cleanly(tmp_path: Path) -> None:
    """From a folder with no probes.yaml and without -c: the journeys the package carries."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uptime_probe.cli", "demo",
            "--listen", "127.0.0.1:0",
            "--data-dir", str(tmp_path),
        ],
        cwd=elsewhere,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        status_page = None
        deadline = time.monotonic() + 30
        # Read the banner, then frames until every journey has run once.
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"status page\s+(http://127\.0\.0\.1:\d+/)", line)
            if found:
                status_page = found.group(1)
            if sum(1 for entry in lines[-8:] if re.search(r"\s(up|degraded|down)\s", entry)) >= 4:
                break
        assert status_page is not None, "".join(lines)
        with urllib.request.urlopen(status_page + "healthz", timeout=10) as response:
            assert response.status == 200
        with urllib.request.urlopen(status_page, timeout=10) as response:
            page = response.read().decode()
        assert "SimChat status" in page
        assert 'id="check-chat_answer"' in page  # the fourth journey, like the others
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, "".join(lines) + rest
    assert "demo stopped." in rest
    assert (tmp_path / "uptime-probe.sqlite3").exists()
