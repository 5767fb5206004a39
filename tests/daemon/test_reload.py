"""Reload of the real daemon: SIGHUP and the file watcher, valid and broken configs."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from uptime_probe.config.isolated import ISOLATE_FROM_BYTES
from uptime_probe.simulator import RunningSimulator

from .conftest import StartDaemon
from .support import Scrape, history_check, http_check, write_config, write_text

RUNS = "uptime_probe_check_runs_total"
FAILURES = "uptime_probe_check_failures_total"
RELOAD_OK = "uptime_probe_config_last_reload_successful"
RELOAD_TIME = "uptime_probe_config_last_reload_success_timestamp_seconds"
LOCATED = r"probes\.yaml:(\d+) checks\[1\]\.interval: invalid duration 'soon'"


def with_bad_interval(text: str, check: str) -> str:
    """The same probes.yaml with `check`'s interval made invalid (`soon`)."""
    broken = re.sub(rf"(- name: {check}\n\s+interval:) 500ms\n", r"\1 soon\n", text)
    assert broken != text, text
    return broken


def runs(scrape: Scrape, check: str) -> float:
    return scrape.value(RUNS, check=check)


async def test_sighup_applies_a_valid_config_as_a_diff_and_survives_a_broken_one(
    simulator: RunningSimulator, start_daemon: StartDaemon, config_path: Path
) -> None:
    server = {"watch_interval": "1h"}  # only SIGHUP reloads here
    keep = http_check("chat_load", f"{simulator.url}/", step="page")
    gone = history_check(simulator.url, name="history")
    new = history_check(simulator.url, name="sidebar")
    daemon = start_daemon([keep, gone], server=server)
    await daemon.started()
    before = await daemon.wait_for_scrape(
        lambda s: runs(s, "chat_load") >= 3 and runs(s, "history") >= 1, "runs of both checks"
    )

    # 1. Valid: one check added, one removed, one unchanged.
    write_config(config_path, [keep, new], server=server)
    mark = daemon.log_count
    daemon.send(signal.SIGHUP)
    applied = await daemon.wait_for_log("config_applied", after=mark)
    assert (applied["added"], applied["removed"], applied["updated"]) == (
        ["sidebar"],
        ["history"],
        [],
    )
    await daemon.wait_for_log("config_reloaded", after=mark, trigger="SIGHUP", parsed_in="thread")
    after = await daemon.scrape()
    assert after.checks() == {"chat_load", "sidebar"}  # every series of `history` is gone
    assert runs(after, "chat_load") >= runs(before, "chat_load")  # not reset
    assert after.value("uptime_probe_check_state", check="chat_load", state="up") == 1  # kept
    assert after.value(FAILURES, check="sidebar", reason="empty_history") == 0
    assert after.value(RELOAD_OK) == 1
    reloaded_at = after.value(RELOAD_TIME)
    assert reloaded_at >= before.value(RELOAD_TIME)
    grown = await daemon.wait_for_scrape(
        lambda s: runs(s, "chat_load") >= runs(after, "chat_load") + 2 and runs(s, "sidebar") >= 2,
        "the kept check counting on and the new one running",
    )

    # 2. Broken: nothing changes but the gauge; the located error is logged.
    valid_text = config_path.read_text()
    broken_text = with_bad_interval(valid_text, "sidebar")
    write_text(config_path, broken_text)
    mark = daemon.log_count
    daemon.send(signal.SIGHUP)
    failed = await daemon.wait_for_log("config_reload_failed", after=mark, trigger="SIGHUP")
    located = re.search(LOCATED, failed["error"])
    assert located, failed
    assert broken_text.splitlines()[int(located.group(1)) - 1].strip() == "interval: soon"
    assert failed["level"] == "error"
    broken = await daemon.wait_for_scrape(lambda s: s.value(RELOAD_OK) == 0, "the gauge at 0")
    assert broken.value(RELOAD_TIME) == reloaded_at
    still = await daemon.wait_for_scrape(
        lambda s: (
            runs(s, "chat_load") >= runs(broken, "chat_load") + 2
            and runs(s, "sidebar") >= runs(broken, "sidebar") + 2
        ),
        "the old checks running on under the broken file",
    )
    assert still.checks() == {"chat_load", "sidebar"}
    assert runs(still, "chat_load") > runs(grown, "chat_load")
    assert daemon.logs("config_applied", after=mark) == []

    # 3. Valid again: the gauge back to 1, a newer success timestamp.
    write_text(config_path, valid_text)
    mark = daemon.log_count
    daemon.send(signal.SIGHUP)
    await daemon.wait_for_log("config_reloaded", after=mark, trigger="SIGHUP")
    fixed = await daemon.scrape()
    assert fixed.value(RELOAD_OK) == 1
    assert fixed.value(RELOAD_TIME) > reloaded_at
    assert fixed.checks() == {"chat_load", "sidebar"}
    assert runs(fixed, "chat_load") >= runs(still, "chat_load")


async def test_file_watcher_reloads_a_changed_file(
    simulator: RunningSimulator, start_daemon: StartDaemon, config_path: Path
) -> None:
    server = {"watch_interval": "250ms"}
    first = http_check("chat_load", f"{simulator.url}/", step="page")
    second = history_check(simulator.url)
    daemon = start_daemon([first], server=server)
    await daemon.started()

    write_config(config_path, [first, second], server=server)
    await daemon.wait_for_log("config_reloaded", trigger="file_changed")
    scrape = await daemon.wait_for_scrape(
        lambda s: s.get(RUNS, check="history") >= 1, "the added check running"
    )
    assert scrape.checks() == {"chat_load", "history"}

    write_text(config_path, with_bad_interval(config_path.read_text(), "history"))
    failed = await daemon.wait_for_log("config_reload_failed", trigger="file_changed")
    assert re.search(LOCATED, failed["error"]), failed
    await daemon.wait_for_scrape(lambda s: s.value(RELOAD_OK) == 0, "the gauge at 0")

    write_config(config_path, [second], server=server)
    mark = daemon.log_count
    await daemon.wait_for_log("config_reloaded", after=mark, trigger="file_changed")
    scrape = await daemon.wait_for_scrape(lambda s: s.value(RELOAD_OK) == 1, "the gauge at 1")
    assert scrape.checks() == {"history"}


async def test_a_yaml_tag_it_cannot_read_fails_the_reload_in_json_and_zeroes_the_gauge(
    simulator: RunningSimulator, start_daemon: StartDaemon, config_path: Path
) -> None:
    """Issue 13, item 9: `!!bool maybe` raised a KeyError through the reload: `POST /-/reload`
    answered a 500 traceback, SIGHUP printed a plain-text traceback, the gauge stayed 1."""
    server = {"enable_lifecycle": True, "watch_interval": "1h"}
    check = http_check("chat_load", f"{simulator.url}/", step="page")
    daemon = start_daemon([check], server=server)
    await daemon.started()
    valid_text = config_path.read_text()

    write_text(config_path, f"location: !!bool maybe\n{valid_text}")
    mark = daemon.log_count
    daemon.send(signal.SIGHUP)
    failed = await daemon.wait_for_log("config_reload_failed", after=mark, trigger="SIGHUP")
    assert failed["level"] == "error"
    assert failed["error"].startswith(
        "probes.yaml:1 (top level): invalid YAML: cannot read 'maybe' as !!bool"
    ), failed
    await daemon.wait_for_scrape(lambda s: s.value(RELOAD_OK) == 0, "the gauge at 0")

    write_text(config_path, valid_text)
    status, text, _ = await daemon.request("POST", "/-/reload")
    assert (status, text) == (200, "config reloaded\n")
    await daemon.wait_for_scrape(lambda s: s.value(RELOAD_OK) == 1, "the gauge back at 1")

    write_text(config_path, f"location: !!timestamp x\n{valid_text}")
    status, text, _ = await daemon.request("POST", "/-/reload")
    assert status == 500
    assert text.startswith(
        "config error:\nprobes.yaml:1 (top level): invalid YAML: cannot read 'x' as !!timestamp"
    ), text
    assert "Traceback" not in text
    await daemon.wait_for_log("config_reload_failed", after=mark, trigger="http")
    assert (await daemon.scrape()).value(RELOAD_OK) == 0
    # Every line the daemon wrote is a JSON log record: no traceback in between.
    assert len(daemon.raw_lines) == len(daemon.records), daemon.log_text()


async def test_a_large_config_is_parsed_in_a_child_and_applied_as_a_diff(
    simulator: RunningSimulator, start_daemon: StartDaemon, config_path: Path
) -> None:
    """Issue 17: a reload of 1,000+ checks held the event loop 100-190 ms. A file of
    ISOLATE_FROM_BYTES or more is parsed in a child process (config/isolated.py) and
    applied in slices; what it does is the same: a diff applied, a broken file refused
    with its located error, the running config kept."""
    server = {"watch_interval": "1h"}
    padding = "x" * 400  # a few hundred checks make a file past the threshold
    checks = [
        {**http_check(f"c{i:04d}", f"{simulator.url}/", interval="1h"), "description": padding}
        for i in range(700)
    ]
    daemon = start_daemon(checks, server=server)
    await daemon.started(timeout=60)
    assert config_path.stat().st_size >= ISOLATE_FROM_BYTES
    (read,) = daemon.logs("config_read")
    assert read["parsed_in"] == "child"  # at start as on a reload

    broken = [*checks[:1], {**checks[1], "interval": "soon"}, *checks[2:]]
    write_config(config_path, broken, server=server)
    mark = daemon.log_count
    daemon.send(signal.SIGHUP)
    failed = await daemon.wait_for_log("config_reload_failed", after=mark, timeout=60)
    assert re.match(
        r"probes\.yaml:\d+ checks\[1\]\.interval: invalid duration 'soon'", failed["error"]
    )
    assert (await daemon.scrape()).value(RELOAD_OK) == 0

    added = {**http_check("added", f"{simulator.url}/", interval="1h"), "description": padding}
    write_config(config_path, [*checks[1:], added], server=server)
    mark = daemon.log_count
    daemon.send(signal.SIGHUP)
    reloaded = await daemon.wait_for_log("config_reloaded", after=mark, timeout=60)
    assert reloaded["parsed_in"] == "child"
    applied = daemon.logs("config_applied", after=mark)[-1]
    assert (applied["added"], applied["removed"], applied["updated"]) == (["added"], ["c0000"], [])
    scrape = await daemon.scrape()
    assert scrape.value(RELOAD_OK) == 1
    assert "c0000" not in scrape.checks()
    assert {"added", "c0001", "c0699"} <= scrape.checks()
