"""SIGHUP 50 times in a row, valid and invalid configs alternating, while probing.

Each round rewrites probes.yaml atomically, sends SIGHUP and waits for the daemon's
verdict in its log (`config_reloaded` or `config_reload_failed`) before the next: the
signals come as fast as the daemon can answer them. Valid configs keep four steady checks
and rotate a fifth (`rot_0`, `rot_1`, `rot_2`); invalid ones are the last valid config
broken in one of five ways (a bad duration, a YAML syntax error, an unknown key, a Python
object tag, a duplicate check name).

After every round, and at the end:
  * the daemon is alive, and the checks it exports are exactly the last valid config's;
  * `uptime_probe_config_last_reload_successful` says how the last attempt went;
  * every steady check's `runs_total` never went back, and grew over the storm;
  * nothing ran twice: the target never saw two requests of one check at once, and the
    requests per steady check are no more than the schedule allows (a duplicated job
    would double them); no more than a couple of runs were skipped;
  * the event loop was never held for more than 50 ms by uptime_probe (loopwatch.py).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ServeApp
from tests.daemon.support import DEADLINE, DaemonProcess, LogRecord, http_check, write_text

from .conftest import StartDaemon
from .support import CountingTarget, assert_loop_never_blocked

ROUNDS = 50
STEADY = [f"steady_{i}" for i in range(4)]
INTERVAL = 0.3
RUNS = "uptime_probe_check_runs_total"
RELOAD_OK = "uptime_probe_config_last_reload_successful"
SKIPPED = "uptime_probe_runs_skipped_total"
SERVER = {"watch_interval": "1h"}  # only SIGHUP reloads


def config_text(url: str, rotating: int) -> str:
    names = [*STEADY, f"rot_{rotating}"]
    checks = [http_check(n, f"{url}/{n}", interval="300ms", timeout="250ms") for n in names]
    return yaml.safe_dump({"server": SERVER, "checks": checks}, sort_keys=False)


BREAKAGES = [
    lambda text: text.replace("interval: 300ms", "interval: soon", 1),
    lambda text: text + "checks: [unclosed\n",
    lambda text: text.replace("server:", "servre:", 1),
    lambda text: text.replace(
        "- name: steady_0", "- name: steady_0\n  description: !!python/object/apply:os.getpid []"
    ),
    lambda text: text.replace("- name: steady_1", "- name: steady_0", 1),
]


async def verdict(daemon: DaemonProcess, after: int) -> LogRecord:
    """The daemon's answer to the SIGHUP sent after log index `after`."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for record in daemon.logs(after=after):
            if record.get("event") in ("config_reloaded", "config_reload_failed"):
                assert record["trigger"] == "SIGHUP", record
                return record
        assert daemon.process.poll() is None, daemon.log_text()
        await asyncio.sleep(0.02)
    raise AssertionError(f"no reload verdict within {DEADLINE}s\n{daemon.log_text()}")


async def test_fifty_sighups_alternating_valid_and_invalid(
    start_daemon: StartDaemon, serve_app: ServeApp, config_path: Path
) -> None:
    target = CountingTarget()
    url = await serve_app(target.app())
    first: list[dict[str, Any]] = yaml.safe_load(config_text(url, 0))["checks"]
    daemon = start_daemon(first, server=SERVER)
    await daemon.started()
    began = time.time()
    before = await daemon.wait_for_scrape(
        lambda s: all(s.get(RUNS, check=n) >= 1 for n in STEADY), "a first run of each check"
    )
    last_runs = {n: before.value(RUNS, check=n) for n in STEADY}
    valid_text = config_text(url, 0)
    expected_checks = {*STEADY, "rot_0"}

    for round_ in range(ROUNDS):
        valid = round_ % 2 == 0
        if valid:
            rotating = (round_ // 2) % 3
            valid_text = config_text(url, rotating)
            write_text(config_path, valid_text)
        else:
            broken = BREAKAGES[(round_ // 2) % len(BREAKAGES)](valid_text)
            assert broken != valid_text
            write_text(config_path, broken)
        mark = daemon.log_count
        daemon.send(signal.SIGHUP)
        record = await verdict(daemon, mark)

        assert record["event"] == ("config_reloaded" if valid else "config_reload_failed"), (
            round_,
            record,
        )
        if valid:
            expected_checks = {*STEADY, f"rot_{rotating}"}
        scrape = await daemon.scrape()
        assert scrape.checks() == expected_checks, round_
        assert scrape.value(RELOAD_OK) == (1 if valid else 0), round_
        for name in STEADY:
            runs = scrape.value(RUNS, check=name)
            assert runs >= last_runs[name], (round_, name)  # never reset, never back
            last_runs[name] = runs

    # Probing goes on under the last (invalid) file, with the last valid config.
    after = await daemon.wait_for_scrape(
        lambda s: all(s.value(RUNS, check=n) >= last_runs[n] + 2 for n in STEADY),
        "the steady checks running on after the storm",
    )
    elapsed = time.time() - began
    assert daemon.process.poll() is None
    assert after.checks() == expected_checks == {*STEADY, f"rot_{rotating}"}
    assert after.value(RELOAD_OK) == 0  # the last attempt was invalid
    assert len(daemon.logs("config_reloaded")) == ROUNDS // 2
    assert len(daemon.logs("config_reload_failed")) == ROUNDS // 2
    # No check lost or duplicated: one request at a time per check, and no more requests
    # than its schedule allows (a duplicated job would double them).
    assert target.max_open_per_check == 1
    for name in STEADY:
        assert after.value(RUNS, check=name) >= before.value(RUNS, check=name) + 2
        assert target.count(name) <= elapsed / INTERVAL + 3, (name, target.count(name), elapsed)
    skipped = sum(value for _, value in after.find(SKIPPED))
    print(
        f"figures: {ROUNDS} reloads and the runs after them in {elapsed:.1f}s, {skipped:.0f} skipped"
    )
    assert skipped <= 2, f"{skipped} runs skipped"
    assert len(daemon.logs("run_skipped")) <= 2
    assert daemon.logs("run_crashed") == []

    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit() == 0
    assert_loop_never_blocked(daemon)
