"""One invalid config per validation rule, each with the exact line a user would read.

`invalid/NAME.yaml` is loaded as a file; `invalid/NAME.expected` holds one line of the
error, `{folder}` standing for the folder's absolute path. Add a rule: add a pair.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from uptime_probe.config import ConfigError, load_config

FOLDER = Path(__file__).parent / "invalid"
CASES = sorted(FOLDER.glob("*.yaml"))


def test_every_case_has_its_expected_message() -> None:
    configs = {path.stem for path in CASES}
    expectations = {path.stem for path in FOLDER.glob("*.expected")}
    assert configs == expectations
    assert len(configs) >= 40


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_invalid_config_is_a_located_config_error(path: Path) -> None:
    expected = path.with_suffix(".expected").read_text().strip()
    expected = expected.replace("{folder}", str(FOLDER.resolve()))

    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})

    error = raised.value
    assert expected in str(error).splitlines()
    for issue in error.issues:
        assert issue.source == path.name
        assert str(issue).startswith(f"{path.name}:" if issue.line else f"{path.name} ")


def test_python_object_tag_is_never_executed(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args) or 0)
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: calls.append(args))

    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_config(FOLDER / "python-object-tag.yaml", env={})

    assert calls == []
    assert "executed-python-tag" not in capfd.readouterr().out


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "probes.yaml")
    assert (
        str(raised.value)
        == "probes.yaml (top level): cannot read config: No such file or directory"
    )


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text("# padding\n" * 500_000)
    with pytest.raises(ConfigError, match="config file is larger than 4 MiB"):
        load_config(path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "checks:\n"
        "  - name: Bad\n"
        "    steps:\n"
        "      - name: page\n"
        "        request: {url: 'http://x/', verb: GET}\n"
        "        expect: {status: 700}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).splitlines() == [
        "probes.yaml:2 checks[0].name: String should match pattern '^[a-z][a-z0-9_]*$'",
        "probes.yaml:5 checks[0].steps[0].request: unknown key 'verb'",
        "probes.yaml:6 checks[0].steps[0].expect.status: invalid status 700: must be 100..599",
    ]


def test_control_characters_in_the_file_are_escaped_one_issue_per_line(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text('"bad\\nkey\\u001b[31m": 1\nchecks: [{name: c, steps: []}]\n')
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    lines = str(raised.value).splitlines()
    assert len(lines) == len(raised.value.issues) == 2
    assert "probes.yaml:1 (top level): unknown key 'bad\\nkey\\x1b[31m'" in lines
    assert "\x1b" not in str(raised.value)
