"""The judging process (probe/judging.py) runs only once the daemon needs it.

A daemon whose answers are all small judges them on its event loop and runs no second
process (the zygote is a Python process of about 58 MB: docs/benchmarks.md, the quiet
daemon). A config with a step always judged in a worker (a JSON schema), or
`judging.start: at_start`, has it started before that config's first run.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from uptime_probe.simulator import RunningSimulator

from .conftest import StartDaemon
from .support import history_check, http_check, write_config

SERVER = {"watch_interval": "1h"}  # only SIGHUP reloads here


def judging_processes(pid: int) -> list[int]:
    """The daemon's children that run a judging zygote (from /proc)."""
    children = " ".join(
        Path(f"/proc/{pid}/task/{task}/children").read_text()
        for task in os.listdir(f"/proc/{pid}/task")
    ).split()
    found = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if b"serve_zygote" in command:
            found.append(int(child))
    return found


async def test_small_answers_need_no_judging_process_and_a_schema_starts_it(
    start_daemon: StartDaemon, simulator: RunningSimulator, config_path: Path
) -> None:
    daemon = start_daemon([history_check(simulator.url)], server=SERVER)
    await daemon.started()
    await daemon.wait_for_scrape(
        lambda s: s.get("uptime_probe_check_runs_total", check="history") >= 3, "three runs"
    )
    assert daemon.logs("check_failed") == [], "the small answers were judged, and passed"
    assert judging_processes(daemon.process.pid) == []

    (config_path.parent / "schema.json").write_text('{"type": "object", "required": ["items"]}')
    schema_check = http_check(
        "history",
        f"{simulator.url}/backend-api/conversations",
        headers={"Authorization": "Bearer demo-token"},
        expect={"json_schema": "schema.json"},
        interval="10s",
        timeout="10s",  # room for the zygote's imports and first fork on a loaded machine
    )
    write_config(config_path, [schema_check], server=SERVER)
    daemon.send(signal.SIGHUP)
    await daemon.wait_for_log("config_reloaded")
    assert len(judging_processes(daemon.process.pid)) == 1, "started before the schema's runs"
    runs = (await daemon.scrape()).get("uptime_probe_check_runs_total", check="history")
    await daemon.wait_for_scrape(
        lambda s: s.get("uptime_probe_check_runs_total", check="history") >= runs + 1,
        "a run judged against the schema",
    )
    assert daemon.logs("check_failed") == [], "the schema was judged in a worker, and passed"


async def test_at_start_starts_the_judging_process_with_the_daemon(
    start_daemon: StartDaemon, simulator: RunningSimulator
) -> None:
    daemon = start_daemon(
        [history_check(simulator.url)], server=SERVER, judging={"start": "at_start"}
    )
    await daemon.started()
    assert len(judging_processes(daemon.process.pid)) == 1, "ready before any run"
