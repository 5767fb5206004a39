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

from uptime_probe.starter import EXAMPLE_CONFIG


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


def test_where_chromium_is_missing_the_demo_runs_the_rest_and_says_so(tmp_path: Path) -> None:
    probes = EXAMPLE_CONFIG.read_text()
    assert "  when_missing: skip\n" in probes
    config = tmp_path / "probes.yaml"
    config.write_text(
        probes.replace(
            "  when_missing: skip\n", "  when_missing: skip\n  executable: /nonexistent/chromium\n"
        )
    )
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uptime_probe.cli", "demo",
            "-c", str(config), "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 45  # a 15 s interval, started anywhere in it
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            # Until the journey asserted on below has run: each check first runs at its own
            # offset in its 15 s interval, so which run first depends on the clock. Waiting
            # for any three states failed when this one came third or fourth.
            if re.search(r"history_sidebar\s+(up|degraded|down)", line):
                break
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    (note,) = [line for line in lines if "browser journeys" in line]
    assert "skipped (sidebar_renders)" in note
    assert "/nonexistent/chromium" in note
    assert "apt-get install chromium" in note
    # The other journeys ran; the skipped one is not shown as a check.
    assert re.search(r"history_sidebar\s+(up|degraded|down)", output), output
    assert not re.search(r"^\s+sidebar_renders\s", output, flags=re.MULTILINE), output
