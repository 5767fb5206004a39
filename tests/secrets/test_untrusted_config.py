"""Untrusted input in probes.yaml and the defaults that guard the control surfaces.

What already exists, and is not repeated here (docs/reliability.md lists it):
  * tests/config/invalid/python-object-tag.yaml and
    tests/config/test_invalid_configs.py::test_python_object_tag_is_never_executed:
    `!!python/object/apply:os.system` is a located config error, never run;
  * tests/config/invalid/json-schema-escapes-folder.yaml: a `json_schema` path with `..`
    out of the config's folder is refused;
  * tests/config/test_loader_fuzz.py: hypothesis-generated YAML and mutations of the real
    probes.yaml either load or fail with a located ConfigError;
  * tests/daemon/test_endpoints.py::test_health_readiness_and_formats: `/-/reload` is 403
    unless `server.enable_lifecycle`; tests/web/test_auth.py: behind `server.auth` too;
  * tests/simulator/test_control.py: `/_sim/*` answers loopback peers only.

Added here: every other Python tag PyYAML knows, `..` and symlinks in `tls.ca_file` (the
other path a config names), and the listen defaults of the commands that serve a control
surface.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import trustme
import yaml

import uptime_probe.config.loader as loader
from uptime_probe.cli import build_parser
from uptime_probe.config import ConfigError, load_config
from uptime_probe.config.model import ServerConfig

PYTHON_TAGS = [
    "!!python/object/apply:os.system ['echo owned']",
    "!!python/object/new:os.system ['echo owned']",
    "!!python/object:os.system {}",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/tuple [1, 2]",
    "!!python/bytes 'b3duZWQ='",
    "!!python/complex 1+2j",
    "!!python/unicode owned",
    "!python/object/apply:os.system ['echo owned']",  # a local tag, not the !! shorthand
]


def probes_text(description: str = "'x'", step_extra: str = "") -> str:
    return (
        "checks:\n"
        "  - name: chat_load\n"
        f"    description: {description}\n"
        "    steps:\n"
        "      - name: page\n"
        "        request: {url: 'https://127.0.0.1:8443/'}\n"
        f"{step_extra}"
    )


@pytest.mark.parametrize("tag", PYTHON_TAGS)
def test_python_tags_are_config_errors_and_never_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    tag: str,
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args))
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: calls.append(args))
    path = tmp_path / "probes.yaml"
    path.write_text(probes_text(description=tag))

    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})

    assert str(raised.value).startswith("probes.yaml:3 (top level): invalid YAML: could not ")
    assert calls == []
    assert "owned" not in capfd.readouterr().out


def test_yaml_is_parsed_only_with_the_safe_loader() -> None:
    """Belt and braces: the loader never names an unsafe PyYAML loader, and the tags above
    fail because the safe one has no constructor for them, not by luck."""
    source = Path(loader.__file__).read_text()
    for unsafe in ("yaml.load(", "FullLoader", "UnsafeLoader", "yaml.Loader", "unsafe_load"):
        assert unsafe not in source, unsafe
    known = [*yaml.SafeLoader.yaml_constructors, *yaml.SafeLoader.yaml_multi_constructors]
    assert not [tag for tag in known if tag is not None and "python/" in tag]
    unsafe_tags = [t for t in yaml.UnsafeLoader.yaml_multi_constructors if t is not None]
    assert any("python/object/apply" in tag for tag in unsafe_tags)


@pytest.fixture
def ca_pem(tmp_path: Path) -> Path:
    """A real CA certificate, outside the config's folder."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    return folder


def load_with_ca_file(config_dir: Path, ca_file: str) -> str:
    """Load a config naming `ca_file`; the resolved path, or the error's text."""
    path = config_dir / "probes.yaml"
    path.write_text(probes_text(step_extra=f"        tls: {{ca_file: '{ca_file}'}}\n"))
    try:
        config = load_config(path, env={})
    except ConfigError as exc:
        return str(exc)
    resolved = config.checks[0].steps[0].tls.ca_file
    assert resolved is not None
    return resolved


def test_ca_file_cannot_climb_out_of_the_config_folder(config_dir: Path, ca_pem: Path) -> None:
    error = load_with_ca_file(config_dir, "../outside/ca.pem")

    assert error == (
        "probes.yaml:7 checks[0].steps[0].tls.ca_file: path '../outside/ca.pem' leaves "
        "the config's folder; use an absolute path"
    )


def test_a_symlink_cannot_smuggle_a_path_out_either(config_dir: Path, ca_pem: Path) -> None:
    (config_dir / "certs").symlink_to(ca_pem.parent, target_is_directory=True)

    error = load_with_ca_file(config_dir, "certs/ca.pem")

    assert "path 'certs/ca.pem' leaves the config's folder" in error


def test_paths_inside_the_folder_and_absolute_ones_are_what_the_user_named(
    config_dir: Path, ca_pem: Path
) -> None:
    inside = config_dir / "certs"
    inside.mkdir()
    (inside / "ca.pem").write_bytes(ca_pem.read_bytes())

    assert load_with_ca_file(config_dir, "certs/ca.pem") == str(inside / "ca.pem")
    assert load_with_ca_file(config_dir, "./certs/../certs/ca.pem") == str(inside / "ca.pem")
    assert load_with_ca_file(config_dir, str(ca_pem)) == str(ca_pem)


def test_reload_endpoint_is_off_unless_the_config_turns_it_on() -> None:
    assert ServerConfig().enable_lifecycle is False
    assert ServerConfig().auth is None  # so, when turned on, protect it with server.auth


@pytest.mark.parametrize(
    ("argv", "listen"),
    [
        (["simulator"], "127.0.0.1:8765"),  # serves the /_sim control API
        (["demo"], "127.0.0.1:9713"),  # runs a simulator and a daemon for one person
    ],
)
def test_commands_with_a_control_surface_listen_on_loopback_by_default(
    argv: list[str], listen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("UPTIME_PROBE_"):
            monkeypatch.delenv(name)
    assert build_parser().parse_args(argv).listen == listen
