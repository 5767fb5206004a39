"""A config loaded in a child process (config/isolated.py) is the one loaded in-process:
same model, same located errors, secrets kept out of them."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from uptime_probe.config import ConfigError, ConfigIssue, load_config
from uptime_probe.config.isolated import (
    CHUNK_CHECKS,
    ISOLATE_FROM_BYTES,
    config_steps,
    parse_in_child,
    should_isolate,
)
from uptime_probe.config.model import Config
from uptime_probe.slices import Steps, run_all

SECRET = "s3cr3t-token-value"


def write(path: Path, document: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _counting(steps: Steps[Config], pieces: list[None]) -> Steps[Config]:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        pieces.append(None)
        yield


async def load_in_child(path: Path, location: str | None) -> Config:
    return run_all(config_steps(await parse_in_child(path, location)))


def config_document(interval: str = "30s", checks: int = 1) -> dict[str, object]:
    return {
        "location": "eu",
        "secrets": {"token": SECRET},
        "checks": [
            {
                "name": f"history_{i}",
                "interval": interval,
                "steps": [
                    {
                        "name": "fetch",
                        "request": {
                            "url": "http://127.0.0.1:9/backend-api/conversations",
                            "headers": {"Authorization": "Bearer {{ token }}"},
                        },
                        "expect": {"json": [{"query": "length(items)", "gt": 0}]},
                    }
                ],
            }
            for i in range(checks)
        ],
    }


async def test_the_child_gives_the_model_loaded_in_process(tmp_path: Path) -> None:
    path = write(tmp_path / "probes.yaml", config_document(checks=2 * CHUNK_CHECKS + 1))
    pieces: list[None] = []

    steps = config_steps(await parse_in_child(path, None))
    config = run_all(_counting(steps, pieces))
    assert len(pieces) == 3  # a chunk of checks at a time
    assert config == load_config(path)
    moved = await load_in_child(path, "us")
    assert moved.location == "us"
    assert moved.checks == load_config(path).checks


async def test_the_childs_errors_are_the_loaders_located_and_without_secrets(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "probes.yaml", config_document(interval=SECRET))
    with pytest.raises(ConfigError) as in_process:
        load_config(path)
    with pytest.raises(ConfigError) as in_child:
        await load_in_child(path, None)
    assert in_child.value.issues == in_process.value.issues
    assert str(in_child.value) == str(in_process.value)
    assert "probes.yaml:" in str(in_child.value)
    assert SECRET not in str(in_child.value)


def test_a_config_error_survives_pickling_whole() -> None:
    error = ConfigError([ConfigIssue(("checks", 0), "bad", "probes.yaml", 3), ConfigIssue((), "x")])
    again = pickle.loads(pickle.dumps(error))
    assert again.issues == error.issues
    assert str(again) == str(error)


def test_only_a_large_file_goes_to_a_child(tmp_path: Path) -> None:
    small = write(tmp_path / "small.yaml", config_document())
    large = tmp_path / "large.yaml"
    large.write_text(small.read_text() + "#" * ISOLATE_FROM_BYTES)
    assert not should_isolate(small)
    assert should_isolate(large)
    assert not should_isolate(tmp_path / "missing.yaml")  # the loader says why
