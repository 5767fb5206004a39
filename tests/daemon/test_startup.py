"""Starting the daemon: on a config it cannot use, and the shape of the one it can."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from uptime_probe import app
from uptime_probe.app import (
    FULL_COLLECTION_EVERY,
    DaemonOptions,
    load_deployment_config,
    tune_garbage_collector,
)
from uptime_probe.config import load_config
from uptime_probe.config.isolated import ISOLATE_FROM_BYTES
from uptime_probe.probe import compile_checks
from uptime_probe.simulator import RunningSimulator

from .conftest import StartDaemon
from .support import http_check, write_config, write_text

REPO = Path(__file__).resolve().parents[2]


async def test_a_config_error_at_start_exits_2_with_the_located_message(
    start_daemon: StartDaemon, config_path: Path
) -> None:
    write_text(
        config_path,
        "checks:\n"
        "  - name: chat_load\n"
        "    interval: soon\n"
        "    steps:\n"
        "      - name: page\n"
        "        request: {url: 'http://127.0.0.1:9/'}\n",
    )
    daemon = start_daemon(None)
    assert await daemon.wait_exit() == 2
    invalid = daemon.logs("config_invalid")
    assert len(invalid) == 1, daemon.log_text()
    assert re.fullmatch(
        r"probes\.yaml:3 checks\[0\]\.interval: invalid duration 'soon'.*", invalid[0]["error"]
    ), invalid
    assert daemon.logs("daemon_started") == []


async def test_a_large_config_with_an_error_is_refused_at_start_by_the_child(
    start_daemon: StartDaemon, config_path: Path
) -> None:
    # A file past ISOLATE_FROM_BYTES is parsed by a child process at start too (the
    # daemon never holds the parse's peak): its error reads the same, exit 2.
    padding = "x" * 400
    checks = [
        {**http_check(f"c{i:04d}", "http://127.0.0.1:9/", interval="1h"), "description": padding}
        for i in range(300)
    ]
    checks[7] = {**checks[7], "interval": "soon"}
    daemon = start_daemon(checks)
    assert config_path.stat().st_size >= ISOLATE_FROM_BYTES
    assert await daemon.wait_exit() == 2
    (invalid,) = daemon.logs("config_invalid")
    assert re.fullmatch(
        r"probes\.yaml:\d+ checks\[7\]\.interval: invalid duration 'soon'.*", invalid["error"]
    ), invalid
    assert daemon.logs("daemon_started") == []


async def test_an_unusable_ca_file_is_a_config_error(
    simulator: RunningSimulator, start_daemon: StartDaemon, config_path: Path
) -> None:
    (config_path.parent / "ca.pem").write_text("not a certificate\n")
    check = http_check(
        "chat_load", simulator.url.replace("http:", "https:"), tls={"ca_file": "ca.pem"}
    )
    daemon = start_daemon([check])
    assert await daemon.wait_exit() == 2
    assert daemon.logs("config_invalid"), daemon.log_text()


def test_the_daemon_makes_full_collections_rarer() -> None:
    """A full GC pass stops the loop 65-130 ms at 10,000 checks (docs/benchmarks.md): the
    daemon considers one every 100 young collections, not CPython's 10."""
    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_EVERY)
        assert FULL_COLLECTION_EVERY == 100
    finally:
        gc.set_threshold(*before)


def test_the_deployment_config_is_the_parsed_one_rebuilt(tmp_path: Path) -> None:
    """Rebuilt from a pickle to shed the parse's fragmentation (docs/benchmarks.md, figure
    6): equal to what the loader parsed, for the shipped example with every feature."""
    options = DaemonOptions(config_path=REPO / "probes.yaml", location="eu-west-9")
    deployed = load_deployment_config(options)
    parsed = load_config(REPO / "probes.yaml").model_copy(update={"location": "eu-west-9"})
    assert deployed == parsed
    assert compile_checks(deployed).keys() == compile_checks(parsed).keys()


def test_a_config_that_will_not_pickle_is_used_as_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> bytes:
        raise TypeError("cannot pickle 'x' object")

    monkeypatch.setattr(app.pickle, "dumps", refuse)
    with capture_logs() as logs:
        deployed = load_deployment_config(DaemonOptions(config_path=REPO / "probes.yaml"))
    assert deployed == load_config(REPO / "probes.yaml")
    assert [log["event"] for log in logs] == ["config_not_compacted"]


@pytest.mark.parametrize(
    ("flag", "setting", "expected"),
    [
        (None, None, "data"),  # the working folder's, as before
        (None, "history", "{config}/history"),  # relative to the config's folder
        ("elsewhere", "history", "elsewhere"),  # --data-dir wins
    ],
)
def test_the_data_dir_is_the_flag_else_the_configs(
    tmp_path: Path, flag: str | None, setting: str | None, expected: str
) -> None:
    config_path = tmp_path / "conf" / "probes.yaml"
    config_path.parent.mkdir()
    top = {"store": {"data_dir": setting}} if setting else {}
    write_config(config_path, [http_check("chat_load", "http://127.0.0.1:9/")], **top)
    options = DaemonOptions(config_path, data_dir=Path(flag) if flag else None)
    daemon = app.Daemon(load_deployment_config(options), options, None)
    assert daemon.store.path.parent == Path(expected.format(config=config_path.parent))
