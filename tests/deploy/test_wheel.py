"""The wheel the image installs: built the way the Dockerfile's builder builds it, from the
files the builder COPYs (filtered by .dockerignore), then installed into a clean venv.

This is the closest to `docker build` that runs without an engine: a file the package needs
but the Dockerfile does not copy, package data left out of pyproject.toml, or a dependency
missing from it, all fail here. Installing pulls the runtime dependencies from the package
index, hence the `slow` mark; it still runs in CI.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest
import yaml
from dockerfile_syntax import Dockerfile, dockerignore_excludes, load_dockerignore

SUBCOMMANDS = ["run", "simulator", "demo", "check", "validate", "init", "incidents"]


def _project(repo_root: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((repo_root / "pyproject.toml").read_text())
    return project


def _context_copy(repo_root: Path, dockerfile: Dockerfile, target: Path) -> None:
    """Lay out what the builder stage sees: its COPY sources, minus what .dockerignore drops."""
    rules = load_dockerignore(repo_root)
    builder = dockerfile.stages[0]
    copies = [copy for copy in builder.all("COPY") if "from" not in copy.flags]
    assert copies, "the builder stage copies nothing"
    for copy in copies:
        for source in copy.words[:-1]:
            origin = repo_root / source
            assert origin.exists(), f"Dockerfile line {copy.line} COPYs missing {source}"
            files = [origin] if origin.is_file() else sorted(origin.rglob("*"))
            for file in files:
                relative = file.relative_to(repo_root).as_posix()
                if file.is_dir() or dockerignore_excludes(rules, relative):
                    continue
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target / relative)


@pytest.fixture(scope="module")
def wheel(
    repo_root: Path, dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    builder_runs = " ".join(run.raw for run in dockerfile.stages[0].all("RUN"))
    assert "pip wheel --no-deps" in builder_runs, "keep this build in step with the Dockerfile"
    context = tmp_path_factory.mktemp("context")
    _context_copy(repo_root, dockerfile, context)
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    wheels = list(out.glob("uptime_probe-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_is_named_for_the_project_version(wheel: Path, repo_root: Path) -> None:
    project = _project(repo_root)["project"]
    assert isinstance(project, dict)
    assert wheel.name == f"uptime_probe-{project['version']}-py3-none-any.whl"


@pytest.mark.parametrize(
    "required",
    [
        "uptime_probe/py.typed",
        "uptime_probe/simulator/scenarios/*.yaml",
        "uptime_probe/examples/probes.yaml",
    ],
)
def test_wheel_carries_required_package_data(wheel_names: set[str], required: str) -> None:
    assert fnmatch.filter(wheel_names, required), f"no {required} in the wheel"


def test_wheel_bundles_the_scenario_compose_plays(wheel_names: set[str], repo_root: Path) -> None:
    compose = yaml.safe_load((repo_root / "deploy" / "compose" / "compose.yaml").read_text())
    command = compose["services"]["simulator"]["command"]
    scenario = command[command.index("--scenario") + 1]
    assert f"uptime_probe/simulator/scenarios/{scenario}.yaml" in wheel_names


def test_wheel_carries_every_declared_package_data_file(
    wheel_names: set[str], repo_root: Path
) -> None:
    """Every file in src/ that pyproject's package-data patterns select ends up in the wheel
    (a pattern whose files do not exist yet requires nothing)."""
    tool = _project(repo_root)["tool"]
    assert isinstance(tool, dict)
    patterns = tool["setuptools"]["package-data"]["uptime_probe"]
    package = repo_root / "src" / "uptime_probe"
    declared = {
        "uptime_probe/" + file.relative_to(package).as_posix()
        for pattern in patterns
        for file in package.glob(pattern)
        if file.is_file() and "__pycache__" not in file.parts
    }
    assert declared <= wheel_names, f"missing from the wheel: {sorted(declared - wheel_names)}"


def test_wheel_holds_only_our_package(wheel_names: set[str]) -> None:
    tops = {name.split("/")[0] for name in wheel_names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"uptime_probe"}


def test_wheel_declares_the_console_script(wheel: Path, wheel_names: set[str]) -> None:
    (entry_points,) = [name for name in wheel_names if name.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(entry_points).decode()
    assert "uptime-probe = uptime_probe.cli:main" in text


# --- installed into a clean venv ---------------------------------------------------------


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"} and not key.startswith("UPTIME_")
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel and the dependencies it declares."""
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    result = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "--no-input", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=_clean_env(),
    )
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    return root


@pytest.mark.slow
def test_installed_package_comes_from_the_wheel(installed: Path, repo_root: Path) -> None:
    result = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import uptime_probe; print(uptime_probe.__file__); print(uptime_probe.__version__)",
        ],
        cwd=installed,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stderr
    location, version = result.stdout.split()
    assert Path(location).is_relative_to(installed), "imported from the source tree, not the venv"
    project = _project(repo_root)["project"]
    assert isinstance(project, dict)
    assert version == project["version"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [["--help"], *[[command, "--help"] for command in SUBCOMMANDS]],
    ids=lambda args: " ".join(args),
)
def test_console_script_runs(installed: Path, args: list[str]) -> None:
    result = subprocess.run(
        [str(installed / "bin" / "uptime-probe"), *args],
        cwd=installed,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_clean_env(),
    )
    assert result.returncode == 0, f"uptime-probe {' '.join(args)}:\n{result.stderr}"
    assert result.stdout.strip(), "help printed nothing"


def _deployed_command_lines(repo_root: Path, dockerfile: Dockerfile) -> dict[str, list[str]]:
    """Every uptime-probe command line the deployment files run, by where it comes from."""
    cmd = dockerfile.final.last("CMD")
    assert cmd is not None
    assert cmd.exec_form is not None
    lines = {"Dockerfile CMD": cmd.exec_form}
    compose = yaml.safe_load((repo_root / "deploy" / "compose" / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if "build" in service:
            lines[f"compose {name}"] = service["command"]
    statefulset = yaml.safe_load(
        (repo_root / "deploy" / "kubernetes" / "base" / "statefulset.yaml").read_text()
    )
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    lines["StatefulSet args"] = container["args"]
    return lines


@pytest.mark.slow
def test_deployed_command_lines_use_options_the_cli_has(
    installed: Path, repo_root: Path, dockerfile: Dockerfile
) -> None:
    helps: dict[str, str] = {}
    problems: list[str] = []
    for origin, line in _deployed_command_lines(repo_root, dockerfile).items():
        command, options = line[0], [word for word in line[1:] if word.startswith("-")]
        if command not in helps:
            result = subprocess.run(
                [str(installed / "bin" / "uptime-probe"), command, "--help"],
                cwd=installed,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=_clean_env(),
            )
            assert result.returncode == 0, f"{origin}: no subcommand {command}: {result.stderr}"
            helps[command] = result.stdout
        missing = [
            option
            for option in options
            if not re.search(rf"(^|[\s,\[]){re.escape(option)}\b", helps[command])
        ]
        if missing:
            problems.append(f"{origin} passes {missing}, which `{command} --help` does not list")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_installed_cli_validates_the_example_config(installed: Path, repo_root: Path) -> None:
    # The config reads these from the environment; the image gets them at run time too.
    env = _clean_env(CHAT_BASE_URL="http://127.0.0.1:8765", CHAT_API_TOKEN="test-token")
    result = subprocess.run(
        [str(installed / "bin" / "uptime-probe"), "validate", "-c", str(repo_root / "probes.yaml")],
        cwd=installed,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, f"validate failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_installed_demo_runs_its_bundled_journeys_from_an_empty_folder(
    installed: Path, tmp_path: Path
) -> None:
    """`pip install` then `uptime-probe demo` anywhere: no probes.yaml where it runs, no -c.
    It probes the journeys the wheel carries, serves /metrics, and stops on SIGTERM."""
    folder = tmp_path / "empty"
    folder.mkdir()
    process = subprocess.Popen(
        [str(installed / "bin" / "uptime-probe"), "demo", "--listen", "127.0.0.1:0"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(PYTHONUNBUFFERED="1"),
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        metrics_url = None
        deadline = time.monotonic() + 60
        while metrics_url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"metrics\s+(http://127\.0\.0\.1:\d+/metrics)", line)
            metrics_url = found.group(1) if found else None
        assert metrics_url is not None, "".join(lines)
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            exposition = response.read().decode()
        assert response.status == 200
        # The bundled journeys, by name, even before their first run ends.
        for check in ("chat_load", "history_sidebar", "task_creation"):
            assert f'check="{check}"' in exposition, check
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, "".join(lines) + rest
    assert "demo stopped." in rest
    assert (folder / "data" / "uptime-probe.sqlite3").is_file()
