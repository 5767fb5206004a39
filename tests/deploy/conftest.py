"""Shared fixtures for the deployment tests: the repository root and the parsed Dockerfile."""

from __future__ import annotations

from pathlib import Path

import pytest
from container_image import NOTES
from dockerfile_syntax import Dockerfile, parse_dockerfile

REPO_ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml (not ours to edit) runs with --strict-markers and declares only `e2e`.
    config.addinivalue_line(
        "markers", "slow: takes more than 30 s (network installs); still runs in CI"
    )


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    # test_image.py says which way the image ran and what it cost, even when it passes.
    notes = config.stash.get(NOTES, [])
    if notes:
        terminalreporter.write_sep("-", "container image")
        for line in notes:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return parse_dockerfile((REPO_ROOT / "Dockerfile").read_text(encoding="utf-8"))
